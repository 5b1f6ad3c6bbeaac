//! `imgtool man DIR`: man pages from the command line's own definitions.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::printer::Printer;

/// Write imgtool.1 and imgtool-COMMAND.1 (and imgtool-COMMAND-SUB.1) into `dir`.
pub fn write(dir: &Path, p: Printer) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = crate::args::Cli::command();
    // Built, subcommands know their full names (`imgtool conda build`) and the global flags.
    cmd.build();
    let mut written = 0;
    page(&cmd, "imgtool", dir, &mut written)?;
    p.status(format!("wrote {written} man pages to {}", dir.display()));
    Ok(())
}

fn page(cmd: &clap::Command, name: &str, dir: &Path, written: &mut usize) -> Result<()> {
    let cmd = cmd.clone().display_name(name);
    let mut out = Vec::new();
    let source = format!("imgtool {}", env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(cmd.clone()).source(source).render(&mut out).with_context(|| format!("rendering {name}.1"))?;
    let path = dir.join(format!("{name}.1"));
    let (mut tmp, _tracked) = imgtool_core::temp_file_beside(&path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, &out).with_context(|| format!("writing {}", path.display()))?;
    imgtool_core::publish_file(tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
