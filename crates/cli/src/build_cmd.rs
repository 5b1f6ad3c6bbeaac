//! `imgtool build` and `imgtool run`: Dockerfiles without a daemon, and running images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use clap::Args;
use imgtool_core::{Flavor, Image, Platform, source_date_epoch};
use imgtool_registry::Registries;

use crate::printer::Printer;
use crate::sandbox_args::SandboxArgs;
use crate::transport::Transport;

/// The exit code a command wants the process to end with (after printing nothing more).
#[derive(Debug)]
pub struct ExitWith(pub i32);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Dockerfile (default CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// The image's name, NAME:TAG (the docker-archive tag, and where --push goes).
    #[arg(short, long)]
    pub tag: Option<String>,
    /// Where to write the image (any transport; a bare path is a docker-archive).
    #[arg(short, long)]
    pub output: Option<String>,
    /// Push to the registry the tag names.
    #[arg(long)]
    pub push: bool,
    /// A build argument, KEY=VALUE (repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The stage to build (default the last).
    #[arg(long)]
    pub target: Option<String>,
    /// The platform to build for (default the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Build every step afresh (results are still stored for later builds).
    #[arg(long)]
    pub no_cache: bool,
    /// The step cache directory (default ~/.cache/imgtool/build).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// `host` gives RUN the host's network; default none (loopback only).
    #[arg(long)]
    pub network: Option<String>,
    /// A registry repository (REGISTRY/REPO) that shares step results between builders.
    #[arg(long, value_name = "REPO")]
    pub cache_repo: Option<String>,
    // Applied to every RUN.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The build context directory.
    pub context: PathBuf,
}

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
    async fn load(&self, reference: &str, platform: Option<&Platform>) -> std::result::Result<Image, String> {
        let t = if crate::transport::has_prefix(reference) {
            Transport::parse(reference, &self.base).map_err(|e| format!("{e:#}"))?
        } else {
            Transport::Registry(reference.to_string())
        };
        let (source, selector) = t.open_source(self.reg).map_err(|e| format!("{e:#}"))?;
        crate::images::load(source, selector.as_deref(), platform, self.any_platform).await.map_err(|e| format!("{e:#}"))
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
fn host_network(flag: Option<&str>) -> Result<bool> {
    match flag {
        None | Some("none") | Some("default") => Ok(false),
        Some("host") => Ok(true),
        Some(n) => bail!("--network {n}: expected host or none"),
    }
}

/// Build options from the command line (or a pipeline step, which fills the same fields).
pub fn options(args: &BuildArgs, spool: &Path, reg: &Registries) -> Result<imgtool_dockerfile::BuildOptions> {
    let mut o = imgtool_dockerfile::BuildOptions::new(&args.context, spool);
    o.build_args = parse_build_args(&args.build_args)?;
    o.target = args.target.clone();
    o.platform = args.platform.as_deref().map(str::parse).transpose()?;
    o.epoch = source_date_epoch();
    o.host_network = host_network(args.network.as_deref())?;
    o.cache_dir = Some(args.cache_dir.clone().unwrap_or_else(|| imgtool_core::cache_dir("build")));
    o.no_cache = args.no_cache;
    o.sandbox = args.sandbox.security()?;
    if let Some(repo) = &args.cache_repo {
        let r = crate::transport::strip_docker(repo);
        let reference: imgtool_core::Reference = r.parse().with_context(|| format!("--cache-repo {repo}"))?;
        let source = std::sync::Arc::new(reg.source(&reference)?);
        let sink = Box::new(reg.sink(&reference)?);
        o.cache_repo = Some(std::sync::Arc::new(imgtool_dockerfile::RepoCache::new(source, sink)));
    }
    Ok(o)
}

impl BuildArgs {
    /// `imgtool build CONTEXT` with no other flag.
    pub fn for_context(context: PathBuf) -> Self {
        Self {
            file: None,
            tag: None,
            output: None,
            push: false,
            build_args: Vec::new(),
            target: None,
            platform: None,
            no_cache: false,
            cache_dir: None,
            network: None,
            cache_repo: None,
            sandbox: Default::default(),
            context,
        }
    }
}

/// The image `imgtool build CONTEXT` makes (a container map's `build:CONTEXT`), new layers
/// under `spool`, which must outlive it.
pub async fn context_image(context: &Path, reg: &Registries, spool: &Path) -> Result<Image> {
    if !context.is_dir() {
        bail!("the build context {} is not a directory", context.display());
    }
    let args = BuildArgs::for_context(context.to_path_buf());
    let (df, file) = read_dockerfile(None, context)?;
    let opts = options(&args, spool, reg)?;
    let images = CliImages { reg, base: dockerfile_dir(None, context), any_platform: false };
    imgtool_dockerfile::build(&df, &images, &opts).await.map_err(|e| anyhow::anyhow!(e.in_file(&file)))
}

pub async fn build(args: BuildArgs, reg: &Registries, p: Printer) -> Result<()> {
    if !args.context.is_dir() {
        bail!("the build context {} is not a directory", args.context.display());
    }
    let name: Option<imgtool_core::Reference> = args.tag.as_deref().map(|t| t.parse().with_context(|| format!("-t {t}"))).transpose()?;
    let sink = match (&args.output, args.push, &name) {
        (Some(o), false, _) => match Transport::parse_arg(o)? {
            Transport::DockerArchive(path, None) => Transport::DockerArchive(path, name.as_ref().map(|n| n.familiar())),
            t => t,
        },
        (None, true, Some(n)) => Transport::Registry(n.to_string()),
        (None, true, None) => bail!("--push needs -t NAME:TAG to know where to push"),
        (Some(_), true, _) => bail!("give either -o OUT or --push, not both"),
        (None, false, _) => bail!("say where the image goes: -o OUT (a path is a docker-archive) or --push with -t NAME:TAG"),
    };
    let (df, file) = read_dockerfile(args.file.as_deref(), &args.context)?;
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let opts = options(&args, spool.path(), reg)?;
    let images = CliImages { reg, base: dockerfile_dir(args.file.as_deref(), &args.context), any_platform: false };
    let bar = p.spinner(format!("building {}", args.context.display()));
    let image = match imgtool_dockerfile::build(&df, &images, &opts).await {
        Ok(i) => i,
        Err(e) => {
            p.done(bar, "build failed".into());
            p.error(e.in_file(&file));
            return Err(ExitWith(e.exit_code().unwrap_or(1)).into());
        }
    };
    p.done(bar, format!("built {} layers", image.layers().len()));
    crate::commands::write(&image, &sink, &[], p, reg).await
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image, as a transport string or a registry reference.
    pub image: String,
    /// An environment variable, KEY=VALUE (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The working directory inside.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// The user (name or id, optionally :group).
    #[arg(short, long)]
    pub user: Option<String>,
    /// A bind mount, HOST:CONTAINER[:ro] (repeatable).
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<String>,
    /// `host` shares the host's network; default none (loopback only).
    #[arg(long)]
    pub network: Option<String>,
    /// Platform to pick from a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command and its arguments (default: the image's entrypoint and cmd).
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub async fn run(args: RunArgs, reg: &Registries) -> Result<()> {
    // Flag mistakes before the image is fetched and unpacked.
    let security = args.sandbox.security()?;
    let cwd = std::env::current_dir()?;
    let platform = args.platform.as_deref().map(str::parse::<Platform>).transpose()?;
    let images = CliImages { reg, base: cwd.clone(), any_platform: false };
    let image = if args.image == "scratch" {
        Image::scratch(&platform.clone().unwrap_or_else(Platform::host), Flavor::Oci)
    } else if cwd.join(&args.image).exists() {
        // A path here (an archive or a layout) is meant as one, as in `imgtool copy`.
        let t = Transport::parse_arg(&args.image)?;
        let (source, selector) = t.open_source(reg)?;
        crate::images::load(source, selector.as_deref(), platform.as_ref(), false).await.with_context(|| format!("reading {t}"))?
    } else {
        imgtool_dockerfile::Images::load(&images, &args.image, platform.as_ref())
            .await
            .map_err(|m| anyhow::anyhow!("{}: {m}", args.image))?
    };
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
    };
    let rootp = root.path().to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || imgtool_sandbox::run(&rootp, &spec, imgtool_sandbox::Output::Inherit)).await??;
    if outcome.code != 0 {
        return Err(ExitWith(outcome.code).into());
    }
    Ok(())
}
