//! `CondaLayers`: a conda environment as image layers.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use imgtool_archive::{LayerOptions, Owner, PathFilter, SpooledLayer, entries_for_files, write_layer};
use imgtool_core::{BuildContext, History, LayerProducer, NewLayer, rfc3339};
use serde::Deserialize;

use crate::cache::{BuildCache, layer_key, package_key};
use crate::error::{Error, Result};
use crate::install::{link, write_in_prefix};
use crate::layers::group;
use crate::package::{CachedPackage, InstalledPackage};
use crate::solve::{channel_url, conda_subdir, solve, virtual_packages};

/// Files left out of the image unless `exclude` says otherwise (the seeds' `conda_file_filter`).
pub const DEFAULT_EXCLUDE: &[&str] = &["**/*.a", "**/*.js.map", "**/__pycache__", "pkgs"];

fn default_prefix() -> String {
    "/opt/conda".into()
}

/// What to install and how to layer it: the `conda` step of a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondaSpec {
    /// Channels in priority order: directories, `file://`/`http(s)://` URLs or names
    /// (not needed with `lock`).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Match specs (`numpy>=1.26`, `python=3.12`).
    #[serde(default)]
    pub specs: Vec<String>,
    /// Where the environment lives in the image.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The conda subdir or image platform (`linux-aarch64`, `linux/arm64`); default: the image's.
    #[serde(default)]
    pub platform: Option<String>,
    /// Packages that always get a layer of their own (`mkl`).
    #[serde(default)]
    pub separate: Vec<String>,
    /// The most layers the whole image may have: the base's, the packages' and the conda-meta
    /// layer (default 100). The smallest packages share layers to stay under it.
    #[serde(default)]
    pub max_layers: Option<usize>,
    /// `.dockerignore`-style patterns of prefix paths to leave out; default [`DEFAULT_EXCLUDE`].
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
    /// Virtual package overrides, `__glibc=2.28`, `__cuda=12.2`.
    #[serde(default)]
    pub virtual_packages: Vec<String>,
    /// The package cache (default `$XDG_CACHE_HOME/imgtool/pkgs` or `~/.cache/imgtool/pkgs`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// A `pixi.lock` or `conda-lock.yml`: install exactly its records, no solve.
    #[serde(default)]
    pub lock: Option<PathBuf>,
    /// Reuse linked packages and their layers from earlier builds (kept next to the
    /// package cache); default on.
    #[serde(default = "yes")]
    pub layer_cache: bool,
}

fn yes() -> bool {
    true
}

impl CondaSpec {
    /// A spec installing `specs` from `channels` into `/opt/conda`.
    pub fn new(channels: Vec<String>, specs: Vec<String>) -> Self {
        Self {
            channels,
            specs,
            prefix: default_prefix(),
            platform: None,
            separate: Vec::new(),
            max_layers: None,
            exclude: None,
            virtual_packages: Vec::new(),
            cache_dir: None,
            lock: None,
            layer_cache: true,
        }
    }
}

/// The default package cache directory.
pub fn default_cache_dir() -> PathBuf {
    imgtool_core::cache_dir("pkgs")
}

/// A [`LayerProducer`] that solves, fetches and links a conda environment in-process and
/// emits one layer per package (or group), then a small layer with `conda-meta`.
#[derive(Debug, Clone)]
pub struct CondaLayers {
    spec: CondaSpec,
    base_dir: PathBuf,
}

impl CondaLayers {
    /// `base_dir` resolves relative channel paths (a pipeline file's directory).
    pub fn new(spec: CondaSpec, base_dir: impl Into<PathBuf>) -> Self {
        Self { spec, base_dir: base_dir.into() }
    }

    fn prefix_rel(&self) -> Result<String> {
        let p = imgtool_archive::image_path(&self.spec.prefix, "conda prefix")?;
        if p.is_empty() {
            return Err(Error::Spec { spec: self.spec.prefix.clone(), why: "the prefix cannot be /".into() });
        }
        Ok(p)
    }

    /// Package layers under `max_layers`, which counts the whole image: the base's layers,
    /// the packages' and the conda-meta layer. A budget that cannot be kept is refused.
    fn groups(&self, packages: &[InstalledPackage], base: usize) -> Result<Vec<Vec<usize>>> {
        let max = self.spec.max_layers.unwrap_or(100);
        let Some(budget) = max.checked_sub(base + 1).filter(|b| *b >= 1) else {
            return Err(Error::Budget(format!(
                "at most {max} layers: the base has {base} and the environment needs at least 2 (its packages and conda-meta); allow {} or more",
                base + 2
            )));
        };
        let groups = group(packages, budget, &self.spec.separate);
        if groups.len() > budget {
            return Err(Error::Budget(format!(
                "at most {max} layers: the base has {base}, conda-meta takes one, and the packages need at least {} since `separate` keeps some apart; allow {} or more",
                groups.len(),
                base + 1 + groups.len()
            )));
        }
        Ok(groups)
    }

    async fn build(&self, cx: &mut BuildContext) -> Result<Vec<NewLayer>> {
        let subdir = match &self.spec.platform {
            Some(p) => conda_subdir(p)?,
            None => conda_subdir(&cx.image.platform().to_string())?,
        };
        let prefix = format!("/{}", self.prefix_rel()?);
        let records = match &self.spec.lock {
            Some(lock) => {
                let path = if lock.is_absolute() { lock.clone() } else { self.base_dir.join(lock) };
                crate::lock::locked_records(&path, subdir)?
            }
            None => {
                let channels = self.spec.channels.iter().map(|c| channel_url(c, &self.base_dir)).collect::<Result<Vec<_>>>()?;
                if channels.is_empty() {
                    return Err(Error::Channel { channel: String::new(), why: "name at least one channel".into() });
                }
                if self.spec.specs.is_empty() {
                    return Err(Error::Spec { spec: String::new(), why: "name at least one package to install".into() });
                }
                let mut overrides = self.spec.virtual_packages.clone();
                if !overrides.iter().any(|v| v.starts_with("__glibc")) {
                    if let Some(v) = crate::base_glibc(&cx.image).await {
                        tracing::info!(version = %v, "the base image's glibc sets __glibc");
                        overrides.push(format!("__glibc={v}"));
                    }
                }
                solve(&channels, &self.spec.specs, subdir, virtual_packages(subdir, &overrides)?).await?
            }
        };
        tracing::info!(packages = records.len(), "solved");
        let staging_root =
            tempfile::Builder::new().prefix("conda-").tempdir_in(&cx.spool_dir).map_err(crate::error::io("creating a staging prefix"))?;
        let staging = staging_root.path().join("prefix");
        let pkg_cache = self.spec.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let mut store = if self.spec.layer_cache { Some(BuildCache::open(&pkg_cache)?) } else { None };
        let keys: Vec<String> = records.iter().map(|r| package_key(r, &records, &prefix, subdir.as_str())).collect();

        // Link only what no earlier build has linked with the same key.
        let mut known: Vec<Option<CachedPackage>> = keys.iter().map(|k| store.as_ref().and_then(|c| c.package(k))).collect();
        let mut is_linked: Vec<bool> = known.iter().map(Option::is_none).collect();
        let linked = link(&records, &is_linked, &staging, &prefix, &pkg_cache, subdir).await?;
        for (k, l) in known.iter_mut().zip(linked) {
            if l.is_some() {
                *k = l;
            }
        }
        let mut known: Vec<CachedPackage> = known.into_iter().flatten().collect();
        if clobbers(&known) {
            // Packages writing the same paths are settled by linking them together, so
            // nothing of this environment comes from or goes into the cache.
            if is_linked.iter().any(|l| !l) {
                tracing::info!("packages of this environment write the same paths; linking all of them afresh");
                std::fs::remove_dir_all(&staging).map_err(crate::error::io("clearing the staging prefix"))?;
                is_linked = vec![true; records.len()];
                known = link(&records, &is_linked, &staging, &prefix, &pkg_cache, subdir).await?.into_iter().flatten().collect();
            }
            store = None;
        }
        if known.len() != records.len() {
            return Err(Error::install("a solved package was neither linked nor found in the layer cache"));
        }
        if let Some(c) = &store {
            for (i, p) in known.iter().enumerate().filter(|(i, _)| is_linked[*i]) {
                c.store_package(&keys[i], p);
            }
        }
        let packages: Vec<InstalledPackage> = known.iter().map(|c| c.package.clone()).collect();
        for p in &packages {
            if let Some(script) = &p.post_link {
                tracing::warn!(package = %p.id, script = %script, "this package has a post-link script; it was not run");
            }
        }
        let patterns: Vec<String> = match &self.spec.exclude {
            Some(e) => e.clone(),
            None => DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect(),
        };
        let filter = PathFilter::new(&patterns)?;
        let groups = self.groups(&packages, cx.image.layers().len())?;
        let opts = LayerOptions { compression: cx.compression, flavor: cx.image.flavor(), ..Default::default() };
        let mtime = cx.epoch.max(0) as u64;
        let shape = serde_json::json!({
            "dest": self.spec.prefix, "exclude": patterns, "mtime": mtime,
            "compression": format!("{:?}", opts.compression), "level": opts.level, "flavor": format!("{:?}", opts.flavor),
        });
        let layer_keys: Vec<String> =
            groups.iter().map(|g| layer_key(&g.iter().map(|&i| keys[i].as_str()).collect::<Vec<_>>(), &shape)).collect();
        let reused: Vec<Option<imgtool_core::Layer>> = layer_keys.iter().map(|k| store.as_ref().and_then(|c| c.layer(k))).collect();

        // Layers to write need their packages' files, which a cached package does not have yet.
        let mut missing = vec![false; records.len()];
        for (g, r) in groups.iter().zip(&reused) {
            if r.is_none() {
                g.iter().filter(|&&i| !is_linked[i]).for_each(|&i| missing[i] = true);
            }
        }
        if missing.iter().any(|m| *m) {
            link(&records, &missing, &staging, &prefix, &pkg_cache, subdir).await?;
            for (l, m) in is_linked.iter_mut().zip(&missing) {
                *l |= m;
            }
        }
        // Layers are written a few at a time: a small package's layer is mostly file reads,
        // which a single writer would leave the other cores idle through.
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
        let store_ref = store.as_ref();
        let cx_ref: &BuildContext = cx;
        let (staging_ref, filter_ref, packages_ref) = (&staging, &filter, &packages);
        let mut out: Vec<NewLayer> = futures::stream::iter(groups.into_iter().zip(layer_keys).zip(reused))
            .map(|((g, key), cached)| async move {
                let ids: Vec<&str> = g.iter().map(|&i| packages_ref[i].id.as_str()).collect();
                let history = self.history(format!("imgtool conda {}", ids.join(" ")), cx_ref);
                if let Some(layer) = cached {
                    return Ok(NewLayer { layer, history });
                }
                let files: Vec<String> = g
                    .iter()
                    .flat_map(|&i| packages_ref[i].files.iter())
                    .filter(|f| !f.starts_with("conda-meta/") && !filter_ref.matches(f))
                    .cloned()
                    .collect();
                let spool = store_ref.map_or_else(|| cx_ref.spool_dir.clone(), BuildCache::spool_dir);
                let spooled = self.spooled(staging_ref, files, mtime, opts, spool).await?;
                let layer = match store_ref {
                    Some(c) => c.store_layer(&key, spooled),
                    None => spooled.into_layer(),
                };
                Ok::<_, Error>(NewLayer { layer, history })
            })
            .buffered(parallel)
            .try_collect()
            .await?;
        // Every record as the image holds it, rattler's own replaced: linking is over. (With
        // every package cached nothing was linked and the prefix is still to be made.)
        std::fs::create_dir_all(&staging).map_err(crate::error::io("creating the staging prefix"))?;
        for p in &known {
            write_in_prefix(&staging, "conda-meta", &p.meta_name, p.meta_json.as_bytes())?;
        }
        // The records last: a change to any package changes this small layer, not the others.
        let env_script = format!("export CONDA_PREFIX={prefix}\nexport PATH={prefix}/bin:$PATH\n");
        write_in_prefix(&staging, "etc/profile.d", "imgtool-conda.sh", env_script.as_bytes())?;
        let listed = imgtool_rootfs::Root::open(&staging)
            .and_then(|r| r.dir("conda-meta"))
            .and_then(|d| d.map(|d| d.names()).transpose())
            .map_err(|e| Error::install_from("reading conda-meta", e))?
            .unwrap_or_default();
        let mut meta_files: Vec<String> =
            listed.iter().map(|n| format!("conda-meta/{}", n.to_string_lossy())).filter(|f| !f.ends_with("/history")).collect();
        meta_files.push("etc/profile.d/imgtool-conda.sh".into());
        let spooled = self.spooled(&staging, meta_files, mtime, opts, cx.spool_dir.clone()).await?;
        out.push(NewLayer { layer: spooled.into_layer(), history: self.history("imgtool conda conda-meta".into(), cx) });

        let config = cx.image.config_mut();
        if self.spec.platform.is_some() {
            // Asked for another platform: the image is that platform's now.
            config.apply(&imgtool_core::ConfigEdit { platform: Some(crate::image_platform(subdir).to_string()), ..Default::default() })?;
        }
        let path = config.env().into_iter().find_map(|e| e.strip_prefix("PATH=").map(str::to_string));
        let path = match path {
            Some(p) => format!("{prefix}/bin:{p}"),
            None => format!("{prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        };
        config.set_env(&format!("PATH={path}"))?;
        config.set_env(&format!("CONDA_PREFIX={prefix}"))?;
        if !config.env().iter().any(|e| e.starts_with("LANG=")) {
            config.set_env("LANG=C.UTF-8")?;
        }
        let ids: Vec<&str> = packages.iter().map(|p| p.id.as_str()).collect();
        let edit =
            imgtool_core::ConfigEdit { labels: [("org.imgtool.conda.packages".to_string(), ids.join(" "))].into(), ..Default::default() };
        config.apply(&edit)?;
        Ok(out)
    }

    async fn spooled(&self, staging: &Path, files: Vec<String>, mtime: u64, opts: LayerOptions, spool: PathBuf) -> Result<SpooledLayer> {
        let staging = staging.to_path_buf();
        let dest = self.spec.prefix.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let mut entries = entries_for_files(&staging, &files, &dest, mtime, Owner::Root)?;
            // Modes as packages mean them, not as this host's umask made them.
            for e in &mut entries {
                e.mode = match e.kind {
                    imgtool_archive::EntryKind::Dir => 0o755,
                    imgtool_archive::EntryKind::Symlink(_) => 0o777,
                    _ if e.mode & 0o111 != 0 => 0o755,
                    _ => 0o644,
                };
            }
            Ok(write_layer(entries, &spool, opts)?)
        })
        .await
        .map_err(|e| Error::install_from("the layer writer stopped", e))?
    }

    fn history(&self, created_by: String, cx: &BuildContext) -> History {
        History { created: Some(rfc3339(cx.epoch)), created_by: Some(created_by), ..Default::default() }
    }
}

/// Whether two packages write the same path (then rattler settles the clash by renaming,
/// which depends on the whole environment).
fn clobbers(packages: &[CachedPackage]) -> bool {
    let mut seen = std::collections::HashSet::new();
    packages.iter().flat_map(|p| p.package.files.iter()).any(|f| f.contains("__clobber-from-") || !seen.insert(f.as_str()))
}

#[async_trait]
impl LayerProducer for CondaLayers {
    fn describe(&self) -> String {
        format!("imgtool conda {}", self.spec.specs.join(" "))
    }

    async fn produce(&self, cx: &mut BuildContext) -> imgtool_core::Result<Vec<NewLayer>> {
        Ok(self.build(cx).await?)
    }
}

impl CondaSpec {
    /// Read an `environment.yml`: its channels and dependencies. A `pip:` section is
    /// refused, naming the packages, since nothing here installs from PyPI.
    pub fn from_environment_yaml(path: &Path) -> Result<Self> {
        let env = rattler_conda_types::EnvironmentYaml::from_path(path)
            .map_err(|e| Error::Spec { spec: path.display().to_string(), why: format!("not a readable environment.yml: {e}") })?;
        if let Some(pip) = env.pip_specs() {
            return Err(Error::Spec {
                spec: path.display().to_string(),
                why: format!(
                    "its pip: section ({}) cannot be installed without running pip; build those into conda packages or add them in a later step",
                    pip.join(", ")
                ),
            });
        }
        // A directory written in the file is relative to the file, as every path in a file
        // imgtool reads is.
        let dir = path.parent().unwrap_or(Path::new(""));
        let channels =
            env.channels.iter().map(|c| crate::channel_url(&c.to_string(), dir).map(|u| u.to_string())).collect::<Result<Vec<_>>>()?;
        let specs = env.match_specs().map(ToString::to_string).collect();
        Ok(Self::new(channels, specs))
    }
}
