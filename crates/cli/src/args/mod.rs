//! The command line as clap reads it: types only. Nothing here imports the commands back;
//! each command resolves its arguments into settings where it runs.

mod build;
mod edit;
mod map;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use build::{BuildArgs, CondaBuild, RunArgs, SandboxArgs};
pub use edit::{FlattenArgs, MutateArgs, RebaseArgs};
pub use map::{MapAction, MapArgs};

/// Pull, edit, build and push container images without a daemon.
#[derive(Debug, Parser)]
#[command(name = "imgtool", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print only results (no progress or status lines).
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// Print results as JSON (one object per line; `inspect` prints one document).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// A registry (HOST[:PORT]) that may use plain HTTP or unverified TLS (repeatable).
    #[arg(
        long = "insecure-registry",
        global = true,
        help_heading = "Global options",
        value_name = "HOST",
        value_delimiter = ',',
        env = "IMGTOOL_INSECURE_REGISTRIES"
    )]
    pub insecure_registries: Vec<String>,
    /// A directory of HOST[:PORT]/*.crt certificates (CAs, or a registry's own self-signed
    /// certificate), like /etc/containers/certs.d (repeatable).
    #[arg(long = "cert-dir", global = true, help_heading = "Global options", value_name = "DIR")]
    pub cert_dirs: Vec<PathBuf>,
    /// USER:PASSWORD for the registry this command names as its target (where it pushes,
    /// or the one it reads when it pushes nowhere); other registries use stored logins.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "USER:PASSWORD",
        env = "IMGTOOL_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<SecretArg>,
    /// The credentials file to read (alone) and to write with login, as skopeo's --authfile
    /// (default: REGISTRY_AUTH_FILE, containers' auth.json files, ~/.docker/config.json).
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// With --platform: take a single-platform image of another platform instead of
    /// refusing it (a warning says so).
    #[arg(long = "any-platform", global = true, help_heading = "Global options")]
    pub any_platform: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline file: a source, steps, sinks (see docs/pipeline.md).
    #[command(after_help = PIPE_HELP)]
    Pipe {
        /// The pipeline TOML file.
        file: PathBuf,
        /// Print what would be read, built and written, and stop.
        #[arg(long)]
        dry_run: bool,
        /// USER:PASSWORD for the source image's registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        src_creds: Option<SecretArg>,
        /// USER:PASSWORD for the registry of the registry sinks.
        #[arg(long, value_name = "USER:PASSWORD")]
        dest_creds: Option<SecretArg>,
    },
    /// Copy an image between any two transports.
    Copy {
        /// Source (docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG], oci-archive:PATH[:TAG],
        /// docker://REF, a path, or a registry reference).
        src: String,
        /// Destination, in the same syntax.
        dst: String,
        /// Platform to pick from a multi-platform source (default: the host's).
        #[arg(long, conflicts_with = "all")]
        platform: Option<String>,
        /// Copy every platform of an index, and the index itself, byte for byte.
        #[arg(long)]
        all: bool,
        /// The media types to write: oci or docker (default: OCI's in an OCI layout or
        /// archive, which skopeo and umoci need there; the image's own elsewhere).
        #[arg(long, value_parser = parse_format, conflicts_with = "all")]
        format: Option<imgtool_core::Flavor>,
        /// Refuse to write the image if its digest would change (a media type conversion).
        #[arg(long)]
        preserve_digests: bool,
        /// Another name for the image at the destination (repeatable), as in the
        /// destination's syntax (`NAME:TAG` for docker-archive, a tag for OCI).
        #[arg(long = "additional-tag", value_name = "TAG")]
        additional_tags: Vec<String>,
        /// USER:PASSWORD for the source registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        src_creds: Option<SecretArg>,
        /// USER:PASSWORD for the destination registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        dest_creds: Option<SecretArg>,
    },
    /// Show an image's manifest, config and layers.
    Inspect {
        /// The image, as a transport string.
        image: String,
        /// Platform to pick from a multi-platform source.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Add layers (files, inline contents) and config edits to an image and write it.
    Append {
        /// The base image (or `scratch`).
        src: String,
        /// Where to write the result.
        dst: String,
        /// A host path and its destination, FROM:TO (repeatable).
        #[arg(long = "path", value_name = "FROM:TO")]
        paths: Vec<String>,
        /// A file with inline text, IMAGE_PATH=TEXT (repeatable; all go in one layer).
        #[arg(long = "contents", value_name = "PATH=TEXT")]
        contents: Vec<String>,
        /// An environment variable to set, KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Platform to pick from a multi-platform source, or to declare for scratch.
        #[arg(long)]
        platform: Option<String>,
        /// Compression of the new layers: gzip, zstd or none.
        #[arg(long, default_value = "gzip")]
        compression: imgtool_core::Compression,
        /// The media types to write: oci or docker (default as for copy).
        #[arg(long, value_parser = parse_format)]
        format: Option<imgtool_core::Flavor>,
    },
    /// Edit an image's config as crane mutate does (env, labels, entrypoint, cmd, workdir,
    /// user, ports, annotations), over the image or to -t DEST.
    Mutate(MutateArgs),
    /// Squash an image's layers into one, as crane flatten does, over the image or to -t DEST.
    Flatten(FlattenArgs),
    /// Swap the base under an image, as crane rebase does: the old base's layers must be the
    /// image's bottom ones; the new base's take their place.
    Rebase(RebaseArgs),
    /// Pull an image from a registry into the local image store, or to -o DEST.
    Pull {
        /// The image, `REF` or `docker://REF`.
        image: String,
        /// Where to write it (any transport; a path is a docker-archive, replaced if it
        /// exists). Default: the local image store (imgtool images).
        #[arg(short, long)]
        output: Option<String>,
        /// Platform to pick from a multi-platform image (default: the host's).
        #[arg(long, conflicts_with = "all")]
        platform: Option<String>,
        /// Pull every platform of an index, and the index itself, byte for byte.
        #[arg(long)]
        all: bool,
    },
    /// Push a local image to a registry (blobs it has are skipped, others in it mounted).
    /// A multi-platform source needs --all or --platform.
    Push {
        /// The local image, as a transport string.
        src: String,
        /// The destination, `REF` or `docker://REF` (default: the name a docker-archive
        /// holds, as `docker push NAME` takes it).
        dest: Option<String>,
        /// The platform to push from a multi-platform source.
        #[arg(long, conflicts_with = "all")]
        platform: Option<String>,
        /// Push every platform of an index, and the index itself, byte for byte.
        #[arg(long)]
        all: bool,
    },
    /// List a repository's tags.
    #[command(visible_alias = "ls")]
    Tags {
        /// `REGISTRY/REPO`, `docker://REGISTRY/REPO`.
        repo: String,
    },
    /// List the repositories of a registry.
    Catalog {
        /// `HOST[:PORT]`.
        registry: String,
    },
    /// Print an image's manifest exactly as stored.
    Manifest {
        /// The image reference.
        image: String,
        /// From an index, the manifest of this platform.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Print an image's config.
    Config {
        /// The image reference.
        image: String,
        /// Platform to pick from a multi-platform image.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Write one blob (a layer, a config) to standard output or a file, verified: REPO@DIGEST
    /// as crane takes it, or IMAGE DIGEST for a blob of an image on any transport.
    Blob(BlobArgs),
    /// Print completions for a shell: `source <(imgtool completions bash)`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (imgtool.1 and one per command) into a directory.
    Man {
        /// Where to write them (created if missing).
        dir: PathBuf,
    },
    /// Print the digest a reference resolves to.
    Digest {
        /// The image reference.
        image: String,
    },
    /// Delete an image's manifest from its registry (every tag on it goes with it), or a tag
    /// from an OCI layout (oci:DIR:TAG), freeing the blobs no other tag reaches.
    Delete {
        /// The image reference.
        image: String,
        /// Say what would be deleted (the manifest, and every tag on it), and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Give an image another tag in its repository, moving no blobs.
    Tag {
        /// The image reference.
        image: String,
        /// The new tag (or a full reference in the same repository).
        new_tag: String,
    },
    /// Store credentials for a registry, after checking them against it.
    Login {
        /// `HOST[:PORT]` (docker.io for Docker Hub).
        registry: String,
        /// User name.
        #[arg(short, long)]
        username: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The password (visible to other users in the process list; prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
    },
    /// Remove stored credentials for a registry.
    Logout {
        /// `HOST[:PORT]`.
        registry: String,
    },
    /// Build a Dockerfile without a daemon (RUN included), with a step cache.
    Build(BuildArgs),
    /// Run a command in an image, in a sandbox (runc), and exit with its code (127: no such
    /// command, 126: it cannot be run, as podman). Like `podman run --rm`, nothing is left
    /// behind: the root and the container go when it ends.
    Run(RunArgs),
    /// Conda environments as images, without conda or docker.
    #[command(subcommand)]
    Conda(CondaCommand),
    /// Bring a container map (docker-map's YAML, or TOML) up, update it, take it down, or say
    /// how it stands, on a Docker Engine (DOCKER_HOST, --host).
    Map(MapArgs),
    /// List the local image store (what build -t NAME and pull keep).
    Images,
    /// Remove images from the local image store, and the blobs no other image needs.
    Rmi {
        /// Image names, as given to build -t or pull.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove what an OCI layout no longer needs: blobs no tag reaches, and temporary files
    /// of writers that died (it waits for imgtool writers of the layout to finish).
    Gc {
        /// The OCI layout directory.
        layout: PathBuf,
        /// List what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Flatten an image into a directory or a tar of its root filesystem.
    Export {
        /// The image, as a transport string.
        image: String,
        /// A directory; a file ending in .tar, .tar.gz (.tgz) or .tar.zst; or - for a tar on
        /// standard output.
        dest: PathBuf,
        /// Platform to pick from a multi-platform source.
        #[arg(long)]
        platform: Option<String>,
    },
}

/// What `pipe --help` shows of the file: docs are not shipped with the binary.
const PIPE_HELP: &str = "\
A pipeline file:
  [source]   image = \"TRANSPORT\" (or scratch), or dockerfile = { file, context, build_args, target };
             platform, media_types = \"oci\"|\"docker\", any_platform
  [options]  compression = \"gzip\"|\"zstd\"|\"none\"
  [[step]]   one of:
    remove_layers = N             drop the top N layers
    remove_layer = I              drop layer I (0 the base, -1 the top)
    add_path = { from, to, include, exclude, owner, mode, xattrs }
    add_contents = { \"/path\" = \"text\" or { text | file, mode } }
    config = { env, env_unset, entrypoint, cmd, workdir, user, labels, labels_unset,
               exposed_ports, volumes, annotations, stop_signal, author, created, platform }
    conda = { channels, specs, prefix, platform, separate, max_layers, lock, ... }
    squash = true                 every layer so far in one
    dockerfile = { file, context, build_args }   instructions on the image so far (no FROM)
  [[sink]]   to = \"TRANSPORT\", format = \"oci\"|\"docker\", additional_tags = [..]";

/// `--format`: skopeo's names for the two media type families.
pub fn parse_format(s: &str) -> Result<imgtool_core::Flavor, String> {
    match s.to_ascii_lowercase().as_str() {
        "oci" => Ok(imgtool_core::Flavor::Oci),
        "docker" | "v2s2" => Ok(imgtool_core::Flavor::Docker),
        _ => Err(format!("{s:?}: expected oci or docker")),
    }
}

#[derive(Debug, clap::Args)]
pub struct BlobArgs {
    /// REPO@DIGEST (a registry), or an image on any transport with DIGEST after it.
    pub image: String,
    /// The blob's digest, when IMAGE names an image.
    pub digest: Option<String>,
    /// Write it to FILE (replaced whole, or not at all) instead of standard output, which
    /// gets the bytes as they come (a blob that fails verification ends with an error).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The platform to pick from a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CondaCommand {
    /// Solve specs, install them in-process, write one layer per package on top of a base.
    Build(CondaBuild),
}

/// A `USER:PASSWORD` argument as given: it always parses (so clap never echoes it in an
/// error) and never shows in `Debug`.
#[derive(Clone)]
pub struct SecretArg(pub String);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretArg(***)")
    }
}
