//! `imgtool pipe PIPELINE.toml`: a source, steps, sinks. The image a pipeline makes is also
//! what a container map's `pipe:FILE` image names.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::{Image, LayerProducer, Platform, source_date_epoch};
use imgtool_registry::{ClientOptions, Registries};

use crate::build_cmd::BuildArgs;
use crate::commands::{load_any, names, produce, write};
use crate::creds::CliCreds;
use crate::pipeline::{PipelineFile, Step};
use crate::printer::Printer;
use crate::transport::Transport;

/// Where a pipeline's image starts.
enum Source {
    Image(Transport),
    // Boxed: the build flags make it several times the size of the other.
    Dockerfile(Box<BuildArgs>),
}

/// A pipeline's source and steps, read and checked, nothing done yet: a typo late in the
/// file costs nothing.
struct Prepared {
    source: Source,
    platform: Option<Platform>,
    producers: Vec<Option<Box<dyn LayerProducer>>>,
    dockerfiles: Vec<Option<(BuildArgs, imgtool_dockerfile::Dockerfile, String)>>,
}

fn prepare(pf: &PipelineFile) -> Result<Prepared> {
    let pl = &pf.pipeline;
    let at = |s: std::ops::Range<usize>| pf.at(s);
    let source = match (&pl.source.image, &pl.source.dockerfile) {
        (Some(image), None) => Source::Image(Transport::parse(image.get_ref(), &pf.dir).map_err(|e| anyhow!("{}: {e}", at(image.span())))?),
        (None, Some(d)) => Source::Dockerfile(Box::new(pf.dockerfile_args(d.get_ref()))),
        _ => bail!("{}: [source] takes either image = \"...\" or dockerfile = {{ file = \"...\" }}", pf.path.display()),
    };
    let platform = match &pl.source.platform {
        Some(s) => Some(s.get_ref().parse::<Platform>().map_err(|e| anyhow!("{}: {e}", at(s.span())))?),
        None => None,
    };
    let mut producers: Vec<Option<Box<dyn LayerProducer>>> = Vec::new();
    for step in &pl.steps {
        producers.push(match step.get_ref() {
            Step::AddPath(a) => Some(Box::new(pf.path_layer(a)?)),
            Step::AddContents(c) => Some(Box::new(pf.contents_layer(c, step.span())?)),
            Step::Conda(spec) => Some(Box::new(imgtool_conda::CondaLayers::new(spec.clone(), &pf.dir))),
            _ => None,
        });
    }
    // Dockerfiles are read and parsed up front too.
    let mut dockerfiles = Vec::new();
    for step in &pl.steps {
        dockerfiles.push(match step.get_ref() {
            Step::Dockerfile(d) => {
                if d.target.is_some() {
                    bail!("{}: a dockerfile step has no target (it builds on the image so far, with no stages); remove it", at(step.span()));
                }
                let args = pf.dockerfile_args(d);
                let (df, name) = crate::build_cmd::read_dockerfile(args.file.as_deref(), &args.context).with_context(|| at(step.span()))?;
                if let Some(&n) = df.stage_starts().first() {
                    bail!(
                        "{}: {name}:{}: a dockerfile step applies to the image built so far, so it cannot have FROM; remove it, or build the file as the [source]",
                        at(step.span()),
                        df.instructions[n].line
                    );
                }
                Some((args, df, name))
            }
            _ => None,
        });
    }
    Ok(Prepared { source, platform, producers, dockerfiles })
}

/// What `--dry-run` prints: the source and one line per step.
fn plan_lines(pf: &PipelineFile, prep: &Prepared) -> Vec<String> {
    let shown = match &prep.source {
        Source::Image(t) => t.to_string(),
        Source::Dockerfile(a) => format!("build {}", a.file.as_deref().unwrap_or(&a.context).display()),
    };
    let mut lines = vec![format!("source: {shown}{}", prep.platform.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())];
    for (step, prod) in pf.pipeline.steps.iter().zip(&prep.producers) {
        let line = match (step.get_ref(), prod) {
            (_, Some(prod)) => prod.describe(),
            (Step::RemoveLayers(n), _) => format!("remove the top {n} layer(s)"),
            (Step::RemoveLayer(i), _) => format!("remove layer {i}"),
            (Step::Config(c), _) => format!("config {}", c.summary()),
            (Step::Squash(true), _) => "squash every layer into one".into(),
            (Step::Squash(false), _) => "no squash".into(),
            (Step::Dockerfile(d), _) => format!("dockerfile {}", d.file.display()),
            _ => String::new(),
        };
        lines.push(format!("step: {line}"));
    }
    lines
}

/// The pipeline's image: its source loaded, its steps applied. New layers are written under
/// `spool`, which must outlive the image.
async fn image(pf: &PipelineFile, prep: Prepared, spool: &Path, p: Printer, reg: &Registries) -> Result<Image> {
    let pl = &pf.pipeline;
    let at = |s: std::ops::Range<usize>| pf.at(s);
    let flavor = pl.source.media_types.unwrap_or_default();
    // Paths a Dockerfile writes are relative to it.
    let images_for = |args: &BuildArgs| crate::build_cmd::CliImages {
        reg,
        base: crate::build_cmd::dockerfile_dir(args.file.as_deref(), &args.context),
        any_platform: pl.source.any_platform,
    };
    let platform = prep.platform;
    let mut image = match &prep.source {
        Source::Image(t) => load_any(t, platform.as_ref().map(ToString::to_string).as_deref(), flavor, pl.source.any_platform, reg)
            .await
            .with_context(|| format!("{}: the source", pf.path.display()))?,
        Source::Dockerfile(args) => {
            let (df, name) = crate::build_cmd::read_dockerfile(args.file.as_deref(), &args.context)?;
            let mut opts = crate::build_cmd::options(args, spool, reg)?;
            opts.platform = platform.clone();
            opts.flavor = flavor;
            opts.compression = pl.options.compression;
            p.status(format!("building {name}"));
            let images = images_for(args);
            imgtool_dockerfile::build(&df, &images, &opts).await.map_err(|e| anyhow!("{}: {}", pf.path.display(), e.in_file(&name)))?
        }
    };
    for ((step, prod), dockerfile) in pl.steps.iter().zip(prep.producers).zip(prep.dockerfiles) {
        if let Some((args, df, name)) = dockerfile {
            let mut opts = crate::build_cmd::options(&args, spool, reg)?;
            opts.compression = pl.options.compression;
            let images = images_for(&args);
            image = imgtool_dockerfile::build_on(image, &df, &images, &opts)
                .await
                .map_err(|e| anyhow!("{}: {}", at(step.span()), e.in_file(&name)))?;
            continue;
        }
        let where_ = at(step.span());
        match (step.get_ref(), prod) {
            (_, Some(prod)) => image = produce(image, &[prod], spool, pl.options.compression, p).await.with_context(|| where_.clone())?,
            (Step::RemoveLayers(n), _) => image.remove_top_layers(*n).with_context(|| where_.clone())?,
            (Step::RemoveLayer(i), _) => image.remove_layer_at(*i).with_context(|| where_.clone())?,
            (Step::Squash(true), _) => {
                p.status("squashing");
                crate::export::squash(&mut image, spool, pl.options.compression).await.with_context(|| where_.clone())?;
                image.config_mut().set_created(source_date_epoch());
            }
            (Step::Config(edit), _) => {
                image.config_mut().apply(edit).with_context(|| where_.clone())?;
                if !edit.annotations.is_empty() {
                    image.annotations_mut().extend(edit.annotations.clone());
                }
            }
            _ => {}
        }
    }
    Ok(image)
}

pub async fn pipe(file: &Path, dry_run: bool, p: Printer, opts: &ClientOptions, creds: &CliCreds) -> Result<()> {
    let pf = PipelineFile::load(file)?;
    let pl = &pf.pipeline;
    let mut sinks = Vec::new();
    for s in &pl.sinks {
        let t = Transport::parse(s.to.get_ref(), &pf.dir).map_err(|e| anyhow!("{}: {e}", pf.at(s.to.span())))?;
        if t == Transport::Scratch {
            bail!("{}: scratch cannot be a sink", pf.at(s.to.span()));
        }
        sinks.push(t);
    }
    if sinks.is_empty() {
        bail!("{}: the pipeline has no [[sink]]; add one, e.g. [[sink]] to = \"oci:out:latest\"", pf.path.display());
    }
    let prep = prepare(&pf)?;
    // The source image and the sinks are named; a Dockerfile's FROM is not.
    let sources = match &prep.source {
        Source::Image(t) => names(t),
        Source::Dockerfile(_) => Vec::new(),
    };
    let targets: Vec<String> = sinks.iter().flat_map(names).collect();
    let reg = &creds.registries(opts, &sources, &targets)?;
    if dry_run {
        for line in plan_lines(&pf, &prep) {
            p.result(line);
        }
        for s in &sinks {
            p.result(format!("sink: {s}"));
        }
        return Ok(());
    }
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let image = image(&pf, prep, spool.path(), p, reg).await?;
    for (s, spec) in sinks.iter().zip(&pl.sinks) {
        write(&image, s, &spec.additional_tags, p, reg).await?;
    }
    Ok(())
}

/// The image the pipeline in `file` makes (its sinks are not written), new layers under
/// `spool`, which must outlive it.
pub async fn pipeline_image(file: &Path, spool: &Path, p: Printer, reg: &Registries) -> Result<Image> {
    let pf = PipelineFile::load(file)?;
    let prep = prepare(&pf)?;
    image(&pf, prep, spool, p, reg).await
}
