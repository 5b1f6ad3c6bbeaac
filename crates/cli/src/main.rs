//! `imgtool`: pull, edit, build and push container images without a daemon.

mod build_cmd;
mod commands;
mod conda_cmd;
mod creds;
mod export;
mod images;
mod layout_cmds;
mod map_cmd;
mod mutate_cmd;
mod pipe_cmd;
mod pipeline;
mod printer;
mod registry_cmds;
mod sandbox_args;
mod transport;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Pull, edit, build and push container images without a daemon.
#[derive(Debug, Parser)]
#[command(name = "imgtool", version, about, max_term_width = 100)]
struct Cli {
    /// Print only results (no progress or status lines).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print results as JSON (one object per line; `inspect` prints one document).
    #[arg(long, global = true)]
    json: bool,
    /// A registry (HOST[:PORT]) that may use plain HTTP or unverified TLS (repeatable).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST", value_delimiter = ',', env = "IMGTOOL_INSECURE_REGISTRIES")]
    insecure_registries: Vec<String>,
    /// A directory of HOST[:PORT]/*.crt certificates (CAs, or a registry's own self-signed
    /// certificate), like /etc/containers/certs.d (repeatable).
    #[arg(long = "cert-dir", global = true, value_name = "DIR")]
    cert_dirs: Vec<PathBuf>,
    /// USER:PASSWORD for the registry this command names as its target (where it pushes,
    /// or the one it reads when it pushes nowhere); other registries use stored logins.
    #[arg(long, global = true, value_name = "USER:PASSWORD", env = "IMGTOOL_CREDS", hide_env_values = true)]
    creds: Option<creds::SecretArg>,
    /// With --platform: take a single-platform image of another platform instead of
    /// refusing it (a warning says so).
    #[arg(long = "any-platform", global = true)]
    any_platform: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline file: a source, steps, sinks (see docs/pipeline.md).
    Pipe {
        /// The pipeline TOML file.
        file: PathBuf,
        /// Print what would be read, built and written, and stop.
        #[arg(long)]
        dry_run: bool,
        /// USER:PASSWORD for the source image's registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        src_creds: Option<creds::SecretArg>,
        /// USER:PASSWORD for the registry of the registry sinks.
        #[arg(long, value_name = "USER:PASSWORD")]
        dest_creds: Option<creds::SecretArg>,
    },
    /// Copy an image between any two transports.
    Copy {
        /// Source (docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG], oci-archive:PATH[:TAG]).
        src: String,
        /// Destination, in the same syntax.
        dst: String,
        /// Platform to pick from a multi-platform source (default: the host's).
        #[arg(long, conflicts_with = "all")]
        platform: Option<String>,
        /// Copy every platform of an index, and the index itself, byte for byte.
        #[arg(long)]
        all: bool,
        /// Another name for the image at the destination (repeatable), as in the
        /// destination's syntax (`NAME:TAG` for docker-archive, a tag for OCI).
        #[arg(long = "additional-tag", value_name = "TAG")]
        additional_tags: Vec<String>,
        /// USER:PASSWORD for the source registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        src_creds: Option<creds::SecretArg>,
        /// USER:PASSWORD for the destination registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        dest_creds: Option<creds::SecretArg>,
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
    },
    /// Edit an image's config as crane mutate does (env, labels, entrypoint, cmd, workdir,
    /// user, ports, annotations), over the image or to -t DEST.
    Mutate(mutate_cmd::MutateArgs),
    /// Pull an image from a registry into a local transport (default: NAME.tar in the current directory).
    Pull {
        /// The image, `REF` or `docker://REF`.
        image: String,
        /// Where to write it (any transport; a bare path is a docker-archive). A file named
        /// here is replaced.
        #[arg(short, long)]
        output: Option<String>,
        /// Replace NAME.tar when it exists (without -o).
        #[arg(long)]
        force: bool,
        /// Platform to pick from a multi-platform image (default: the host's).
        #[arg(long)]
        platform: Option<String>,
    },
    /// Push a local image to a registry (blobs it has are skipped, others in it mounted).
    Push {
        /// The local image, as a transport string.
        src: String,
        /// The destination, `REF` or `docker://REF`.
        dest: String,
    },
    /// List a repository's tags.
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
    Build(build_cmd::BuildArgs),
    /// Run a command in an image, in a sandbox (runc), and exit with its code.
    Run(build_cmd::RunArgs),
    /// Conda environments as images, without conda or docker.
    #[command(subcommand)]
    Conda(CondaCommand),
    /// Bring a container map (docker-map's YAML, or TOML) up, update it, take it down, or say
    /// how it stands, on a Docker Engine (DOCKER_HOST, --host).
    Map(map_cmd::MapArgs),
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
        /// A directory, or a file ending in .tar.
        dest: PathBuf,
        /// Platform to pick from a multi-platform source.
        #[arg(long)]
        platform: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CondaCommand {
    /// Solve specs, install them in-process, write one layer per package on top of a base.
    Build(conda_cmd::CondaBuild),
}

fn registry_options(cli: &Cli) -> imgtool_registry::ClientOptions {
    let mut o = imgtool_registry::ClientOptions { insecure: cli.insecure_registries.clone(), ..Default::default() };
    o.cert_dirs.splice(0..0, cli.cert_dirs.iter().cloned());
    o
}

/// Watch for SIGINT and SIGTERM from now on, in a task of its own (a command may keep its
/// thread busy for a while): on the first, undo what the command made and registered (see
/// `imgtool_core::interrupted`) and exit with 130 or 143 without waiting for the command.
/// Outputs are renamed into place only when complete, so none is left half-written.
fn watch_interrupts(rt: &tokio::runtime::Runtime, printer: printer::Printer) {
    use tokio::signal::unix::{SignalKind, signal};
    let _entered = rt.enter();
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else { return };
    rt.spawn(async move {
        let code = tokio::select! {
            _ = int.recv() => 130,
            _ = term.recv() => 143,
        };
        if !printer.quiet && !printer.json {
            // Not eprintln!: with stderr gone (a pipe whose reader was interrupted too) it
            // would panic, and the signal would be lost.
            let _ = writeln!(std::io::stderr(), "interrupted: removing temporary files and ending started processes");
        }
        // The undoing may wait on a runtime (`runc delete`): a second signal ends it at once.
        let undo = tokio::task::spawn_blocking(imgtool_core::interrupted);
        tokio::select! {
            _ = undo => {}
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        std::process::exit(code);
    });
}

fn main() -> ExitCode {
    // Before anything starts a thread: the conda linker's isolated child is this program.
    if let Some(code) = imgtool_conda::link_helper_main() {
        return code;
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let printer = printer::Printer { quiet: cli.quiet, json: cli.json };
    images::set_any_platform(cli.any_platform);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = registry_options(&cli);
    let given = match creds::parse("--creds", cli.creds.as_ref()) {
        Ok(c) => creds::CliCreds { creds: c, ..Default::default() },
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    watch_interrupts(&rt, printer);
    let outcome = rt.block_on(commands::run(cli.command, printer, &opts, given));
    if imgtool_core::is_interrupted() {
        // The watcher is undoing the command's work and will exit with the signal's code.
        loop {
            std::thread::park();
        }
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<build_cmd::ExitWith>() {
            // The command said what it had to; end with its code.
            Some(build_cmd::ExitWith(code)) => ExitCode::from(u8::try_from(*code).unwrap_or(1)),
            None => {
                printer.error(format!("{e:#}"));
                ExitCode::FAILURE
            }
        },
    }
}
