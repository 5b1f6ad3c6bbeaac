//! `imgtool build` and `imgtool run`: Dockerfiles without a daemon, and running images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use imgtool_core::{Compression, Flavor, Image, Platform, StepContext, StepError, source_date_epoch};
use imgtool_dockerfile::DockerfileStep;
use imgtool_registry::Registries;

use crate::args::{BuildArgs, RunArgs};
use crate::printer::Printer;
use crate::transport::Transport;

/// `FROM` and `COPY --from` images: a transport string, or a registry reference as Docker
/// reads one.
pub struct CliImages<'a> {
    pub reg: &'a Registries,
    pub base: PathBuf,
    /// Take a single image of another platform (a pipeline's `any_platform`).
    pub any_platform: bool,
}

#[async_trait]
impl imgtool_dockerfile::Images for CliImages<'_> {
    async fn load(&self, reference: &str, platform: Option<&Platform>) -> std::result::Result<Image, imgtool_dockerfile::BoxError> {
        let t = if crate::transport::has_prefix(reference) {
            Transport::parse(reference, &self.base, crate::transport::Role::Source)?
        } else {
            // A name as Docker reads it: the local store's image, else the registry's.
            crate::store::find(reference).unwrap_or_else(|| Transport::Registry(reference.to_string()))
        };
        let (source, selector) = t.open_source(self.reg)?;
        Ok(crate::images::load(source, selector.as_deref(), platform, self.any_platform).await?)
    }
}

fn parse_build_args(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None => std::env::var(kv)
                .map(|v| (kv.clone(), v))
                .with_context(|| format!("--build-arg {kv}: no = and no such environment variable")),
        })
        .collect()
}

/// Read and parse the Dockerfile for `context`.
pub fn read_dockerfile(file: Option<&Path>, context: &Path) -> Result<(imgtool_dockerfile::Dockerfile, String)> {
    let (text, name) = match file {
        Some(f) if f == Path::new("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the Dockerfile from standard input")?;
            (s, "<stdin>".to_string())
        }
        Some(f) => {
            // Named by the user (it may be a pipe): read as it is, within the size limit.
            let mut s = String::new();
            let file = std::fs::File::open(f).with_context(|| format!("reading {}", f.display()))?;
            std::io::Read::read_to_string(&mut std::io::Read::take(file, imgtool_dockerfile::CONTEXT_FILE_LIMIT), &mut s)
                .with_context(|| format!("reading {}", f.display()))?;
            (s, f.display().to_string())
        }
        None => {
            // Inside the context, which someone else may have written: a regular file only.
            let f = context.join("Dockerfile");
            let text = imgtool_dockerfile::read_context_file(&f)
                .with_context(|| format!("reading {}", f.display()))?
                .with_context(|| format!("{} does not exist (give another with -f)", f.display()))?;
            (text, f.display().to_string())
        }
    };
    let df = imgtool_dockerfile::parse(&text).map_err(|e| anyhow::anyhow!(e.in_file(&name)))?;
    Ok((df, name))
}

/// Where paths written in the Dockerfile (`FROM docker-archive:base.tar`) are relative to:
/// the file's own directory, as for every file imgtool reads; those of standard input or a
/// pipe (`-f <(...)`) are the working directory's.
pub fn dockerfile_dir(file: Option<&Path>, context: &Path) -> PathBuf {
    match file {
        Some(f) if f == Path::new("-") || !f.is_file() => std::env::current_dir().unwrap_or_default(),
        Some(f) => std::path::absolute(f).ok().and_then(|f| f.parent().map(Path::to_path_buf)).unwrap_or_default(),
        None => std::path::absolute(context).unwrap_or_else(|_| context.to_path_buf()),
    }
}

/// `--network` of `build` and `run` (and a pipeline's dockerfile step): whether the
/// sandbox shares the host's network. `default` is docker's word for none here.
pub(crate) fn host_network(flag: Option<&str>) -> Result<bool> {
    match flag {
        None | Some("none") | Some("default") => Ok(false),
        Some("host") => Ok(true),
        Some(n) => bail!("--network {n}: expected host or none"),
    }
}

/// What a Dockerfile build needs, resolved once from `build`'s flags or a pipeline's
/// `dockerfile` table.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// The Dockerfile, when not CONTEXT/Dockerfile.
    pub file: Option<PathBuf>,
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<Platform>,
    pub no_cache: bool,
    pub cache_dir: Option<PathBuf>,
    pub host_network: bool,
    /// REGISTRY/REPO sharing step results, as written.
    pub cache_repo: Option<String>,
    pub sandbox: imgtool_sandbox::Security,
}

impl BuildSettings {
    /// `imgtool build CONTEXT` with no other flag.
    pub fn for_context(context: PathBuf) -> Self {
        Self {
            file: None,
            context,
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            no_cache: false,
            cache_dir: None,
            host_network: false,
            cache_repo: None,
            sandbox: Default::default(),
        }
    }

    /// The build options these settings make, new layers under `spool`.
    pub fn options(&self, spool: &Path, reg: &Registries) -> Result<imgtool_dockerfile::BuildOptions> {
        let mut o = imgtool_dockerfile::BuildOptions::new(&self.context, spool);
        o.build_args = self.build_args.clone();
        o.target = self.target.clone();
        o.platform = self.platform.clone();
        o.epoch = source_date_epoch();
        o.host_network = self.host_network;
        o.cache_dir = Some(self.cache_dir.clone().unwrap_or_else(|| imgtool_core::cache_dir("build")));
        o.no_cache = self.no_cache;
        o.sandbox = self.sandbox.clone();
        if let Some(repo) = &self.cache_repo {
            let r = crate::transport::strip_docker(repo);
            let reference: imgtool_core::Reference = r.parse().with_context(|| format!("--cache-repo {repo}"))?;
            let source = std::sync::Arc::new(reg.source(&reference)?);
            let sink = Box::new(reg.sink(&reference)?);
            o.cache_repo = Some(std::sync::Arc::new(imgtool_dockerfile::RepoCache::new(source, sink)));
        }
        Ok(o)
    }

    /// The Dockerfile, parsed, and its name for messages.
    pub fn dockerfile(&self) -> Result<(imgtool_dockerfile::Dockerfile, String)> {
        read_dockerfile(self.file.as_deref(), &self.context)
    }

    /// What paths in the Dockerfile are relative to.
    pub fn dir(&self) -> PathBuf {
        dockerfile_dir(self.file.as_deref(), &self.context)
    }
}

impl BuildArgs {
    /// The flags, checked and resolved.
    pub fn settings(&self) -> Result<BuildSettings> {
        Ok(BuildSettings {
            file: self.file.clone(),
            context: self.context.clone(),
            build_args: parse_build_args(&self.build_args)?,
            target: self.target.clone(),
            platform: self.platform.as_deref().map(str::parse).transpose()?,
            no_cache: self.no_cache,
            cache_dir: self.cache_dir.clone(),
            host_network: host_network(self.network.as_deref())?,
            cache_repo: self.cache_repo.clone(),
            sandbox: self.sandbox.security()?,
        })
    }
}

impl BuildSettings {
    /// The build as a step, over scratch: the Dockerfile read and checked, the images it
    /// names found through `images` (see [`BuildSettings::images`]). Spool, compression and
    /// time come from the fold.
    pub fn step<'a>(&self, images: &'a CliImages<'a>, reg: &Registries) -> Result<DockerfileStep<'a>> {
        let (df, name) = self.dockerfile()?;
        Ok(DockerfileStep::source(df, name, images, self.options(Path::new(""), reg)?))
    }

    /// How the Dockerfile's images are found: paths in it are relative to it.
    pub fn images<'a>(&self, reg: &'a Registries, any_platform: bool) -> CliImages<'a> {
        CliImages { reg, base: self.dir(), any_platform }
    }
}

/// The image `step` builds over scratch, new layers under `spool` (which must outlive it).
pub async fn build_image(step: DockerfileStep<'_>, platform: Option<&Platform>, spool: &Path) -> Result<Image, StepError> {
    let scratch = Image::scratch(&platform.cloned().unwrap_or_else(Platform::host), Flavor::Oci);
    let cx = StepContext { spool, compression: Compression::Gzip, epoch: source_date_epoch() };
    let steps: [Box<dyn imgtool_core::Step + '_>; 1] = [Box::new(step)];
    imgtool_core::fold_steps(scratch, &steps, &cx, &mut |_, _, _| {}).await.map_err(|(_, e)| e)
}

/// The image `imgtool build CONTEXT` makes (a container map's `build:CONTEXT`), new layers
/// under `spool`, which must outlive it.
pub async fn context_image(context: &Path, reg: &Registries, spool: &Path) -> Result<Image> {
    if !context.is_dir() {
        bail!("the build context {} is not a directory", context.display());
    }
    let settings = BuildSettings::for_context(context.to_path_buf());
    let images = settings.images(reg, false);
    let step = settings.step(&images, reg)?;
    build_image(step, None, spool).await.map_err(|e| anyhow!(e))
}

pub async fn build(args: BuildArgs, reg: &Registries, p: Printer) -> Result<ExitCode> {
    if !args.context.is_dir() {
        bail!("the build context {} is not a directory", args.context.display());
    }
    let settings = args.settings()?;
    let name: Option<imgtool_core::Reference> = args.tag.as_deref().map(|t| t.parse().with_context(|| format!("-t {t}"))).transpose()?;
    let sink = match (&args.output, args.push, &name) {
        (Some(o), false, _) => match Transport::sink_arg(o)? {
            Transport::DockerArchive(path, None) => Transport::DockerArchive(path, name.as_ref().map(|n| n.familiar())),
            t => t,
        },
        (None, true, Some(n)) => Transport::Registry(n.to_string()),
        (None, true, None) => bail!("--push needs -t NAME:TAG to know where to push"),
        (Some(_), true, _) => bail!("give either -o OUT or --push, not both"),
        (None, false, Some(_)) => crate::store::sink(args.tag.as_deref().unwrap_or_default())?,
        (None, false, None) => bail!("say where the image goes: -t NAME:TAG (the local image store), -o OUT, or --push with -t NAME:TAG"),
    };
    let images = settings.images(reg, false);
    // STEP lines as buildah prints them, `cached` where the step cache had the result.
    let new_layers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = new_layers.clone();
    let progress = imgtool_dockerfile::BuildProgress(std::sync::Arc::new(move |e| match e {
        imgtool_dockerfile::BuildEvent::Step { number, total, text } => p.status(format!("STEP {number}/{total}: {text}")),
        imgtool_dockerfile::BuildEvent::Cached => p.status("--> cached"),
        imgtool_dockerfile::BuildEvent::Built { new_layers } => counted.store(new_layers, std::sync::atomic::Ordering::Relaxed),
    }));
    let step = settings.step(&images, reg)?.with_progress(progress);
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let image = match build_image(step, settings.platform.as_ref(), spool.path()).await {
        Ok(i) => i,
        Err(e) => {
            p.status("build failed");
            p.error(imgtool_core::error_chain(e.as_ref()));
            let code = e.downcast_ref::<imgtool_dockerfile::InFile>().and_then(|f| f.error.exit_code()).unwrap_or(1);
            return Ok(exit_code(code));
        }
    };
    p.status(format!("built {} new layers ({} in all)", new_layers.load(std::sync::atomic::Ordering::Relaxed), image.layers().len()));
    let format = crate::commands::Format { flavor: args.format, preserve_digests: false };
    crate::commands::write_images(&[image], &sink, &[], format, p, reg).await?;
    Ok(ExitCode::SUCCESS)
}

/// A process's exit status as this process's (codes past 255 as failure).
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

pub async fn run(args: RunArgs, reg: &Registries, p: Printer) -> Result<ExitCode> {
    // Flag mistakes before the image is fetched and unpacked.
    let security = args.sandbox.security()?;
    let t = Transport::image_arg(&args.image)?;
    let image = crate::commands::load(&t, args.platform.as_deref(), Flavor::Oci, reg).await?;
    let cfg = image.config().container().cloned().unwrap_or_default();
    let list = |k: &str| -> Vec<String> {
        cfg.get(k).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let text = |k: &str| cfg.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let mut command = list("Entrypoint");
    command.extend(if args.command.is_empty() { list("Cmd") } else { args.command.clone() });
    if command.is_empty() {
        bail!("{} has no entrypoint or cmd: give a command after --", args.image);
    }
    let mut env = image.config().env();
    for kv in &args.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(if kv.contains('=') { kv.clone() } else { format!("{kv}={}", std::env::var(kv).unwrap_or_default()) });
    }
    let binds = args
        .volumes
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            let (host, target, ro) = match parts.as_slice() {
                [h, t] => (h, t, false),
                [h, t, "ro"] => (h, t, true),
                [h, t, "rw"] => (h, t, false),
                _ => bail!("-v {v}: expected HOST:CONTAINER[:ro]"),
            };
            let host = std::fs::canonicalize(host).with_context(|| format!("-v {v}: the host path"))?;
            if !target.starts_with('/') {
                bail!("-v {v}: the container path must be absolute");
            }
            Ok(imgtool_sandbox::Bind { host, target: target.to_string(), readonly: ro })
        })
        .collect::<Result<Vec<_>>>()?;
    let host_network = host_network(args.network.as_deref())?;
    let root = tempfile::tempdir().context("creating the container's root")?;
    let _root_tracked = imgtool_core::track_path(root.path());
    let opts =
        imgtool_archive::ExtractOptions { devices: imgtool_archive::Devices::Create, same_owner: true, xattrs: true, package: false };
    imgtool_archive::extract_image(&image, root.path(), opts).await.with_context(|| format!("unpacking {}", args.image))?;
    let spec = imgtool_sandbox::RunSpec {
        args: command,
        env,
        cwd: args.workdir.clone().unwrap_or_else(|| text("WorkingDir")),
        user: args.user.clone().unwrap_or_else(|| text("User")),
        host_network,
        binds,
        hostname: None,
        security,
        stdin: args.interactive,
    };
    let rootp = root.path().to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || imgtool_sandbox::run(&rootp, &spec, imgtool_sandbox::Output::Inherit)).await??;
    if let Some(why) = &outcome.not_started {
        p.error(why);
    }
    Ok(exit_code(outcome.code))
}
