//! crane's edits, each one step over the image, written over it or to `-t DEST`:
//! `mutate` (config edits: `--env`, `--label`, `--entrypoint`, `--cmd`, `--workdir`,
//! `--user`, `--exposed-ports`, `--annotation`, the pipeline's `config` step), `flatten`
//! (the pipeline's `squash` step) and `rebase`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::{ConfigEdit, EditConfig, Flavor, Rebase, Step, StepContext, source_date_epoch};
use imgtool_registry::Registries;

use crate::args::{FlattenArgs, MutateArgs, RebaseArgs};
use crate::printer::Printer;
use crate::transport::Transport;

/// The registries an edit's command line names: where it reads (the image, and `more`
/// images), and where it writes.
pub fn names(image: &str, tag: Option<&str>, more: &[&str]) -> (Vec<String>, Vec<String>) {
    let of = |t: Result<Transport>| t.ok().map(|t| crate::commands::names(&t)).unwrap_or_default();
    let mut sources = of(Transport::source_arg(image));
    sources.extend(more.iter().flat_map(|m| of(Transport::source_arg(m))));
    (sources, of(Transport::sink_arg(tag.unwrap_or(image))))
}

/// Load `image`, apply `step`, write the result over it or to `tag`.
async fn edit(image: &str, tag: Option<&str>, platform: Option<&str>, step: &dyn Step, p: Printer, reg: &Registries) -> Result<()> {
    let src = Transport::source_arg(image)?;
    // Over the image itself: where it was read from, whatever a sink would make of the name.
    let dst = match (tag, &src) {
        (Some(t), _) => Transport::sink_arg(t)?,
        // Written back where it was read, but never to Docker Hub by default.
        (None, Transport::Registry(_)) if !crate::transport::names_a_registry(image) => {
            bail!("{image} names no registry of its own: give the destination, -t REGISTRY/REPO:TAG (or -t docker://{image})")
        }
        (None, _) => src.clone(),
    };
    if dst == Transport::Scratch {
        bail!("scratch cannot be written: name where the result goes with -t DEST");
    }
    let image = crate::commands::load(&src, platform, Flavor::Oci, reg).await?;
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let cx = StepContext { spool: spool.path(), compression: imgtool_core::Compression::Gzip, epoch: source_date_epoch() };
    let image = match step.progress() {
        Some(line) => {
            let bar = p.spinner(line);
            let image = step.apply(image, &cx).await.map_err(|e| anyhow!(e))?;
            p.done(bar, format!("done: {}", step.describe()));
            image
        }
        None => step.apply(image, &cx).await.map_err(|e| anyhow!(e))?,
    };
    crate::commands::write(&image, &dst, &[], p, reg).await
}

pub async fn flatten(args: FlattenArgs, p: Printer, reg: &Registries) -> Result<()> {
    edit(&args.image, args.tag.as_deref(), args.platform.as_deref(), &imgtool_archive::Squash(true), p, reg).await
}

pub async fn rebase(args: RebaseArgs, p: Printer, reg: &Registries) -> Result<()> {
    let platform = args.platform.as_deref();
    let old = crate::commands::load(&Transport::source_arg(&args.old_base)?, platform, Flavor::Oci, reg).await.context("--old-base")?;
    let new = crate::commands::load(&Transport::source_arg(&args.new_base)?, platform, Flavor::Oci, reg).await.context("--new-base")?;
    let step = Rebase { old, new, shown: format!("{} -> {}", args.old_base, args.new_base) };
    edit(&args.image, args.tag.as_deref(), args.platform.as_deref(), &step, p, reg).await
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

pub async fn mutate(args: MutateArgs, p: Printer, reg: &Registries) -> Result<()> {
    let change = ConfigEdit {
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
    if change == ConfigEdit::default() {
        bail!("nothing to change: give --env, --label, --annotation, --entrypoint, --cmd, --workdir, --user or --exposed-ports");
    }
    // The pipeline's `config` step, the one implementation of config edits.
    edit(&args.image, args.tag.as_deref(), args.platform.as_deref(), &EditConfig(change), p, reg).await
}
