//! The interpreter: stages, instructions, RUN in the sandbox, the step cache.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use imgtool_archive::{EntryKind, ExtractOptions, FileData, LayerOptions, Origin, Owner, TarEntry, host_entry, write_layer};
use imgtool_core::{Compression, ConfigEdit, Flavor, History, Image, Platform, rfc3339};
use serde_json::{Value, json};

use crate::cache::StepCache;
use crate::context::{FileHashes, Source, Tree, clean};
use crate::error::{Error, Result};
use crate::parse::{Command, Dockerfile, Flag, Instruction, Kind, parse};
use crate::subst::expand;

mod copy;
mod instructions;
mod layers;
mod words;

use copy::{copy_tree, missing_dirs};
use words::*;

/// Where `FROM` and `COPY --from` images come from: the caller knows the transports
/// (registries, archives, layouts); `scratch` and stage names never reach it.
#[async_trait]
pub trait Images: Send + Sync {
    /// The image `reference` names, for `platform` when it is an index.
    async fn load(&self, reference: &str, platform: Option<&Platform>) -> std::result::Result<Image, crate::BoxError>;
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build (default the last).
    pub target: Option<String>,
    /// The platform to build for (default the host's).
    pub platform: Option<Platform>,
    /// The step cache directory; `None` builds everything afresh and keeps nothing.
    pub cache_dir: Option<PathBuf>,
    /// Where layers and stage filesystems are spooled.
    pub spool_dir: PathBuf,
    /// The time stamped on files and history (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
    /// New layers' compression.
    pub compression: Compression,
    /// Media types of images started from `scratch`.
    pub flavor: Flavor,
    /// Give `RUN` the host's network (otherwise only a loopback interface).
    pub host_network: bool,
    /// Do every step afresh (results are still stored in the cache).
    pub no_cache: bool,
    /// A repository that shares step results between builders (`--cache-repo`).
    pub cache_repo: Option<std::sync::Arc<crate::cache::RepoCache>>,
    /// Seccomp and limits for every `RUN` (like docker's flags, not part of the cache key).
    pub sandbox: imgtool_sandbox::Security,
    /// Who hears of each instruction as it is built (none by default).
    pub progress: Option<crate::BuildProgress>,
}

impl BuildOptions {
    /// Defaults for building `context`: no cache, gzip, OCI, epoch 0.
    pub fn new(context: impl Into<PathBuf>, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            context: context.into(),
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            cache_dir: None,
            spool_dir: spool_dir.into(),
            epoch: 0,
            compression: Compression::Gzip,
            flavor: Flavor::Oci,
            host_network: false,
            no_cache: false,
            cache_repo: None,
            sandbox: Default::default(),
            progress: None,
        }
    }
}

/// A stage being built, or done.
struct Stage {
    name: Option<String>,
    image: Image,
    /// The stage's filesystem, made when first needed, with `applied` of its layers.
    root: Option<tempfile::TempDir>,
    applied: usize,
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    cmd_set: bool,
    /// The cache chain: everything this stage's state was built from.
    key: String,
    /// Layers of the image it started from: the rest are the stage's own.
    base_layers: usize,
}

impl Stage {
    /// A stage starting from `image`, its cache chain at `key`.
    fn new(name: Option<String>, image: Image, key: String) -> Self {
        let base_layers = image.layers().len();
        Self { name, image, root: None, applied: 0, args: BTreeMap::new(), shell: default_shell(), cmd_set: false, key, base_layers }
    }

    /// A string field of the container config (`User`, `WorkingDir`), empty when unset.
    fn config_str(&self, field: &str) -> String {
        self.image.config().container().and_then(|c| c.get(field)).and_then(Value::as_str).unwrap_or("").to_string()
    }
}

/// Build `dockerfile` and return the target stage's image.
pub async fn build(dockerfile: &Dockerfile, images: &dyn Images, opts: &BuildOptions) -> Result<Image> {
    build_from(None, dockerfile, images, opts).await
}

/// Apply a Dockerfile without `FROM` to `base`: its instructions as one stage on top of the
/// image (the pipeline's `dockerfile` step).
pub async fn build_on(base: Image, dockerfile: &Dockerfile, images: &dyn Images, opts: &BuildOptions) -> Result<Image> {
    if let Some(&n) = dockerfile.stage_starts().first() {
        let i = &dockerfile.instructions[n];
        return Err(Error::step(
            i.line,
            "FROM",
            "this Dockerfile is applied to the image built so far, so it cannot have FROM: remove it, or build the file as the source",
        ));
    }
    build_from(Some(base), dockerfile, images, opts).await
}

async fn build_from(base: Option<Image>, dockerfile: &Dockerfile, images: &dyn Images, opts: &BuildOptions) -> Result<Image> {
    // A Dockerfile written with the builder API brings its own context: the files it added.
    let assembled = if dockerfile.files.is_empty() {
        None
    } else {
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(&opts.spool_dir)
            .map_err(|e| Error::step(0, "context", format!("creating a build context: {e}")))?;
        for (src, name) in &dockerfile.files {
            copy_tree(src, &dir.path().join(name)).map_err(|e| Error::step(0, "context", format!("{}: {e}", src.display())))?;
        }
        Some(dir)
    };
    let root = assembled.as_ref().map_or(opts.context.as_path(), |d| d.path());
    let context = Tree::context(root).map_err(|m| Error::step(0, "context", m))?;
    let cache = match &opts.cache_dir {
        Some(d) => Some(StepCache::open(d)?),
        None => None,
    };
    let hashes = match &cache {
        Some(c) => FileHashes::load(c.hashes_file()),
        None => FileHashes::default(),
    };
    let mut b = Builder {
        df: dockerfile,
        images,
        opts,
        cache,
        hashes,
        context,
        stages: Vec::new(),
        external: HashMap::new(),
        expanded: Default::default(),
        cached: Default::default(),
    };
    let image = match base {
        None => b.run().await,
        Some(base) => b.run_on(base).await,
    };
    b.hashes.save();
    image
}

struct Builder<'a> {
    df: &'a Dockerfile,
    images: &'a dyn Images,
    opts: &'a BuildOptions,
    cache: Option<StepCache>,
    hashes: FileHashes,
    context: Tree,
    stages: Vec<Stage>,
    /// Images named by `COPY --from`, loaded once.
    external: HashMap<String, Stage>,
    /// Bytes every substitution so far produced: a chain of ARGs that double each other
    /// must stop long before memory does.
    expanded: std::cell::Cell<usize>,
    /// Whether the step just built came from the cache.
    cached: std::cell::Cell<bool>,
}

impl Builder<'_> {
    async fn run_on(&mut self, base: Image) -> Result<Image> {
        let key = format!("image {}", base.digest());
        let header =
            Instruction { line: 0, column: 0, text: String::new(), kind: Kind::From { image: String::new(), name: None, flags: vec![] } };
        let globals = BTreeMap::new();
        let mut stage = self.start(&header, &None, base, key, &globals).await?;
        for (n, i) in self.df.instructions.iter().enumerate() {
            self.told_step(&mut stage, n, &globals).await.map_err(|e| e.at_column(i.line, i.column))?;
        }
        self.tell(crate::BuildEvent::Built { new_layers: stage.image.layers().len().saturating_sub(stage.base_layers) });
        Ok(stage.image)
    }

    async fn run(&mut self) -> Result<Image> {
        let ins = &self.df.instructions;
        let starts = self.df.stage_starts();
        let Some(&first_from) = starts.first() else {
            return Err(Error::step(1, "FROM", "the Dockerfile has no FROM: start it with FROM IMAGE (or FROM scratch)"));
        };
        // Global ARGs: usable in FROM lines, and as defaults for stages that redeclare them.
        let mut globals: BTreeMap<String, String> = BTreeMap::new();
        for i in &ins[..first_from] {
            match &i.kind {
                Kind::Arg(pairs) => {
                    for (name, default) in pairs {
                        let value = match self.opts.build_args.get(name) {
                            Some(v) => Some(v.clone()),
                            None => match default {
                                Some(d) => Some(self.expand(i, d, &|n| globals.get(n).cloned())?),
                                None => platform_arg(name, &target_platform(self.opts)),
                            },
                        };
                        if let Some(v) = value {
                            globals.insert(name.clone(), v);
                        }
                    }
                }
                _ => return Err(Error::step(i.line, "ARG", "only ARG may come before the first FROM")),
            }
        }
        let target_index = match &self.opts.target {
            None => starts.len() - 1,
            Some(t) => starts
                .iter()
                .position(|&s| matches!(&ins[s].kind, Kind::From { name: Some(n), .. } if n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| Error::step(0, "--target", format!("no stage is named {t:?}")))?,
        };
        let needed = self.needed_stages(&starts, target_index, &globals);
        for (n, &start) in starts.iter().enumerate().take(target_index + 1) {
            let end = starts.get(n + 1).copied().unwrap_or(ins.len());
            if !needed[n] {
                tracing::debug!(stage = n, "not needed for the target, skipped");
                self.stages.push(self.placeholder(&ins[start]));
                continue;
            }
            self.tell_step(start);
            let mut stage = self.from(&ins[start], &globals).await.map_err(|e| e.at_column(ins[start].line, ins[start].column))?;
            for (n, i) in ins.iter().enumerate().take(end).skip(start + 1) {
                self.told_step(&mut stage, n, &globals).await.map_err(|e| e.at_column(i.line, i.column))?;
            }
            self.stages.push(stage);
        }
        let last = self.stages.pop().ok_or_else(|| Error::step(0, "FROM", "no stage was built"))?;
        self.tell(crate::BuildEvent::Built { new_layers: last.image.layers().len().saturating_sub(last.base_layers) });
        Ok(last.image)
    }

    /// Which stages the target needs: itself, and the stages its FROM and `COPY --from`
    /// name, transitively.
    fn needed_stages(&self, starts: &[usize], target: usize, globals: &BTreeMap<String, String>) -> Vec<bool> {
        let ins = &self.df.instructions;
        let lookup = |n: &str| globals.get(n).cloned();
        let names: Vec<Option<String>> =
            starts.iter().map(|&s| if let Kind::From { name, .. } = &ins[s].kind { name.clone() } else { None }).collect();
        let index_of = |word: &str| -> Option<usize> {
            let w = expand(word, self.df.escape, &lookup).unwrap_or_else(|_| word.to_string()).to_ascii_lowercase();
            names.iter().position(|n| n.as_deref() == Some(w.as_str())).or_else(|| w.parse().ok())
        };
        let mut needed = vec![false; starts.len()];
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if needed[s] {
                continue;
            }
            needed[s] = true;
            let end = starts.get(s + 1).copied().unwrap_or(ins.len());
            for i in &ins[starts[s]..end] {
                let deps: Vec<&str> = match &i.kind {
                    Kind::From { image, .. } => vec![image.as_str()],
                    Kind::Copy { flags, .. } => flags.iter().filter(|f| f.name == "from").filter_map(|f| f.value.as_deref()).collect(),
                    _ => vec![],
                };
                for d in deps {
                    if let Some(j) = index_of(d).filter(|&j| j < s) {
                        todo.push(j);
                    }
                }
            }
        }
        needed
    }

    fn placeholder(&self, from: &Instruction) -> Stage {
        let name = if let Kind::From { name, .. } = &from.kind { name.clone() } else { None };
        Stage::new(name, Image::scratch(&target_platform(self.opts), self.opts.flavor), String::new())
    }

    async fn from(&mut self, i: &Instruction, globals: &BTreeMap<String, String>) -> Result<Stage> {
        let Kind::From { image, name, flags } = &i.kind else { unreachable!("called on FROM") };
        let lookup = |n: &str| globals.get(n).cloned();
        check_flags(i, flags, &["platform"])?;
        let platform = match flag(flags, "platform") {
            Some(p) => Some(
                self.expand(i, p, &lookup)?.parse::<Platform>().map_err(|e| Error::step(i.line, "FROM", format!("--platform={p}: {e}")))?,
            ),
            None => self.opts.platform.clone(),
        };
        let reference = self.expand(i, image, &lookup)?;
        if reference.is_empty() {
            return Err(Error::step(i.line, "FROM", format!("{image} expands to nothing: set the ARG it uses")));
        }
        let lower = reference.to_ascii_lowercase();
        let earlier = self.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str()));
        let (image, key) = if let Some(s) = earlier {
            (self.stages[s].image.clone(), self.stages[s].key.clone())
        } else if lower == "scratch" {
            let p = platform.clone().unwrap_or_else(|| target_platform(self.opts));
            (Image::scratch(&p, self.opts.flavor), format!("scratch {p}"))
        } else {
            let img = self
                .images
                .load(&reference, platform.as_ref())
                .await
                .map_err(|e| Error::step_from(i.line, "FROM", reference.clone(), e))?;
            let key = format!("image {}", img.digest());
            (img, key)
        };
        if !image.config().env().iter().any(|e| e.starts_with("PATH=")) {
            // As BuildKit does: a stage without PATH gets the default one, kept in the image.
            let mut image = image;
            image.config_mut().set_env(&format!("PATH={DEFAULT_PATH}")).map_err(|e| Error::step(i.line, "FROM", e.to_string()))?;
            return self.start(i, name, image, key, globals).await;
        }
        self.start(i, name, image, key, globals).await
    }

    async fn start(
        &mut self,
        i: &Instruction,
        name: &Option<String>,
        image: Image,
        key: String,
        globals: &BTreeMap<String, String>,
    ) -> Result<Stage> {
        let mut stage = Stage::new(name.clone(), image, imgtool_core::Digest::sha256_of(key.as_bytes()).hex().to_string());
        // ONBUILD triggers of the base run now, and are not inherited.
        let triggers: Vec<String> = stage
            .image
            .config()
            .container()
            .and_then(|c| c.get("OnBuild"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if !triggers.is_empty() {
            stage.image.config_mut().container_mut().remove("OnBuild");
            for t in triggers {
                // A trigger is what followed ONBUILD, so it is parsed as one: the same rules
                // (no FROM, ONBUILD or MAINTAINER; one instruction) hold for an image's
                // triggers as for a Dockerfile's.
                let bad = |why: String| Error::step(i.line, "ONBUILD", format!("the base image's trigger {:?}: {why}", shown(&t)));
                let parsed = parse(&format!("ONBUILD {t}")).map_err(|e| bad(e.to_string()))?;
                let mut ti = match <[Instruction; 1]>::try_from(parsed.instructions) {
                    Ok([Instruction { kind: Kind::Onbuild(inner), .. }]) => *inner,
                    _ => return Err(bad("a trigger must be exactly one instruction".into())),
                };
                ti.line = i.line;
                Box::pin(self.step(&mut stage, &ti, globals)).await?;
            }
        }
        Ok(stage)
    }

    fn history(&self, i: &Instruction, empty: bool) -> History {
        History { created: Some(rfc3339(self.opts.epoch)), created_by: Some(i.text.clone()), empty_layer: empty, ..Default::default() }
    }

    fn chain(st: &mut Stage, what: &str) -> String {
        let key = imgtool_core::Digest::sha256_of(format!("{}\n{what}", st.key).as_bytes()).hex().to_string();
        st.key = key.clone();
        key
    }
}
