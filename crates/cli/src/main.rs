//! `imgtool`: pull, edit, build and push container images without a daemon.

mod args;
mod blob_cmd;
mod build_cmd;
mod commands;
mod conda_cmd;
mod creds;
mod edit_cmds;
mod export;
mod images;
mod inspect_cmds;
mod layout_cmds;
mod man;
mod map_cmd;
mod pipe_cmd;
mod pipeline;
mod printer;
mod registry_cmds;
mod sandbox_args;
mod store;
mod transport;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

fn registry_options(cli: &Cli) -> imgtool_registry::ClientOptions {
    let mut o = imgtool_registry::ClientOptions { insecure: cli.insecure_registries.clone(), ..Default::default() };
    o.cert_dirs.splice(0..0, cli.cert_dirs.iter().cloned());
    if let Some(f) = &cli.authfile {
        o.auth_files = imgtool_registry::AuthFiles::only(f);
    }
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
    // Logs are RUST_LOG's. Without it, only imgtool's own warnings show (a post-link script
    // not run, a device node skipped): other crates' logs are theirs, not the user's. No
    // colour codes unless a terminal reads them.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "imgtool=warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
    let printer = printer::Printer { quiet: cli.quiet, json: cli.json };
    images::set_any_platform(cli.any_platform);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            printer.error(format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let opts = registry_options(&cli);
    let given = match creds::parse("--creds", cli.creds.as_ref()) {
        Ok(c) => creds::CliCreds { creds: c, ..Default::default() },
        Err(e) => {
            printer.error(format!("{e:#}"));
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
    outcome.unwrap_or_else(|e| {
        printer.error(format!("{e:#}"));
        ExitCode::FAILURE
    })
}
