//! `imgtool mutate IMAGE`: crane's config edits (`--env`, `--label`, `--entrypoint`, `--cmd`,
//! `--workdir`, `--user`, `--exposed-ports`, `--annotation`) as the pipeline's `config` step,
//! written over the image or to `-t DEST`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use imgtool_core::{ConfigEdit, EditConfig, Flavor, Step, StepContext, source_date_epoch};
use imgtool_registry::Registries;

use crate::printer::Printer;
use crate::transport::Transport;

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// The image to edit (any transport; a registry reference as crane reads it).
    image: String,
    /// Where to write the result (default: over IMAGE, as crane does).
    #[arg(short = 't', long = "tag", value_name = "DEST")]
    tag: Option<String>,
    /// An environment variable to set, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A label to set, KEY=VALUE (repeatable).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// A manifest annotation to set, KEY=VALUE (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// The entrypoint: comma-separated words, as crane takes them, or a JSON array; "" clears it.
    #[arg(long)]
    entrypoint: Option<String>,
    /// The default command, as --entrypoint.
    #[arg(long)]
    cmd: Option<String>,
    /// The working directory.
    #[arg(long)]
    workdir: Option<String>,
    /// The user (`name`, `uid`, `uid:gid`).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Ports to expose, PORT[/PROTO] (comma-separated or repeated).
    #[arg(long = "exposed-ports", value_name = "PORT[/PROTO]", value_delimiter = ',')]
    exposed_ports: Vec<String>,
    /// The platform to pick from a multi-platform image.
    #[arg(long)]
    platform: Option<String>,
}

impl MutateArgs {
    /// The registries the command line names: where it reads, and where it writes.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let of = |s: &str| Transport::parse_arg(s).ok().map(|t| crate::commands::names(&t)).unwrap_or_default();
        (of(&self.image), of(self.tag.as_deref().unwrap_or(&self.image)))
    }
}

fn pairs(flag: &str, list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{flag} {kv:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// crane's words (`a,b,c`), or a JSON array; "" is the empty list, which clears.
fn words(flag: &str, s: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s).with_context(|| format!("{flag} {s:?}: not a JSON array of strings"));
    }
    Ok(if s.is_empty() { Vec::new() } else { s.split(',').map(str::to_string).collect() })
}

pub async fn run(args: MutateArgs, p: Printer, reg: &Registries) -> Result<()> {
    let src = Transport::parse_arg(&args.image)?;
    let dst = Transport::parse_arg(args.tag.as_deref().unwrap_or(&args.image))?;
    if dst == Transport::Scratch {
        bail!("scratch cannot be written: name where the result goes with -t DEST");
    }
    let edit = ConfigEdit {
        env: args.env.clone(),
        labels: pairs("--label", &args.labels)?,
        annotations: pairs("--annotation", &args.annotations)?,
        entrypoint: args.entrypoint.as_deref().map(|s| words("--entrypoint", s)).transpose()?,
        cmd: args.cmd.as_deref().map(|s| words("--cmd", s)).transpose()?,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        exposed_ports: args.exposed_ports.clone(),
        ..ConfigEdit::default()
    };
    if edit == ConfigEdit::default() {
        bail!("nothing to change: give --env, --label, --annotation, --entrypoint, --cmd, --workdir, --user or --exposed-ports");
    }
    let image = crate::commands::load(&src, args.platform.as_deref(), Flavor::Oci, reg).await?;
    // The pipeline's `config` step, the one implementation of config edits.
    let step = EditConfig(edit);
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let cx = StepContext { spool: spool.path(), compression: imgtool_core::Compression::Gzip, epoch: source_date_epoch() };
    let image = step.apply(image, &cx).await.map_err(|e| anyhow!(e))?;
    crate::commands::write(&image, &dst, &[], p, reg).await
}
