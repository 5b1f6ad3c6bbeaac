//! `build`, `run` and `conda build`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Dockerfile (default CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// The image's name, NAME:TAG (the docker-archive tag, and where --push goes).
    #[arg(short, long)]
    pub tag: Option<String>,
    /// Where to write the image (any transport; a path is a docker-archive).
    #[arg(short, long)]
    pub output: Option<String>,
    /// Push to the registry the tag names.
    #[arg(long)]
    pub push: bool,
    /// The media types to write: oci or docker (default: OCI's).
    #[arg(long, value_parser = super::parse_format)]
    pub format: Option<imgtool_core::Flavor>,
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
    /// Give the command this standard input (otherwise it reads nothing).
    #[arg(short, long)]
    pub interactive: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command and its arguments (default: the image's entrypoint and cmd).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// The sandbox flags `imgtool run` and `imgtool build` share, spelled as docker's.
#[derive(Debug, Clone, Default, Args)]
pub struct SandboxArgs {
    /// A security option: only `seccomp=unconfined` (no system call filter) for now.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// The most processes and threads at once (0 or -1: no limit).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// A memory limit: bytes, or a number with b, k, m or g (512m, 1g); 0: no limit.
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
}

/// The options of `imgtool conda build`.
#[derive(Debug, Args)]
pub struct CondaBuild {
    /// The base image (any source transport, or `scratch` for a fully static environment).
    #[arg(short = 'b', long = "base", value_name = "BASE")]
    pub base: String,
    /// The image name, NAME:TAG (used for docker-archive outputs and --push).
    #[arg(short = 'i', long = "image", value_name = "NAME:TAG")]
    pub image: String,
    /// Where to write the image (any sink transport; a path alone is a docker-archive).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<String>,
    /// Push the image to NAME:TAG.
    #[arg(long)]
    pub push: bool,
    /// A channel (directory, file:// or http(s):// URL, or name), highest priority first.
    #[arg(short = 'c', long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// Build for this platform (repeatable: several make a multi-platform index).
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,
    /// Read channels and specs from an environment.yml.
    #[arg(short = 'f', long = "file", value_name = "ENVIRONMENT_YML", conflicts_with = "lock")]
    pub file: Option<PathBuf>,
    /// Install exactly the records of a pixi.lock or conda-lock.yml (no solve).
    #[arg(long, value_name = "LOCKFILE")]
    pub lock: Option<PathBuf>,
    /// The prefix inside the image.
    #[arg(long, default_value = "/opt/conda")]
    pub prefix: String,
    /// A package that gets a layer of its own (repeatable).
    #[arg(long = "separate", value_name = "NAME")]
    pub separate: Vec<String>,
    /// The most layers the whole image may have: the base's, the packages' and conda-meta.
    #[arg(long, default_value_t = 100)]
    pub max_layers: usize,
    /// A virtual package override such as __glibc=2.28 (repeatable).
    #[arg(long = "virtual-package", value_name = "NAME=VERSION")]
    pub virtual_packages: Vec<String>,
    /// The package cache directory.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Link and compress every package again instead of reusing earlier builds' results.
    #[arg(long)]
    pub no_layer_cache: bool,
    /// Package specs (`numpy`, `python=3.12`).
    pub specs: Vec<String>,
}
