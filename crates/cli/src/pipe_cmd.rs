//! `imgtool pipe PIPELINE.toml`: a source, steps, sinks. The image a pipeline makes is also
//! what a container map's `pipe:FILE` image names.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::{AddLayers, EditConfig, Image, Platform, RemoveLayerAt, RemoveTopLayers, Step as _, StepContext, source_date_epoch};
use imgtool_dockerfile::DockerfileStep;
use imgtool_registry::{ClientOptions, Registries};

use crate::build_cmd::{BuildSettings, CliImages};
use crate::commands::{Format, load_any, names, write_images};
use crate::creds::CliCreds;
use crate::pipeline::{PipelineFile, Step};
use crate::printer::Printer;
use crate::transport::{Role, Transport};

/// Where a pipeline's image starts.
enum Source {
    Image(Transport),
    // Boxed: the build settings make it several times the size of the other.
    Dockerfile(Box<BuildSettings>),
}

/// Where the pipeline starts.
fn source(pf: &PipelineFile) -> Result<(Source, Option<Platform>)> {
    let pl = &pf.pipeline;
    let at = |s: std::ops::Range<usize>| pf.at(s);
    let source = match (&pl.source.image, &pl.source.dockerfile) {
        (Some(image), None) => {
            Source::Image(Transport::parse(image.get_ref(), &pf.dir, Role::Source).map_err(|e| anyhow!("{}: {e:#}", at(image.span())))?)
        }
        (None, Some(d)) => Source::Dockerfile(Box::new(pf.dockerfile_settings(d.get_ref())?)),
        _ => bail!("{}: [source] takes either image = \"...\" or dockerfile = {{ file = \"...\" }}", pf.path.display()),
    };
    let platform = match &pl.source.platform {
        Some(s) => Some(s.get_ref().parse::<Platform>().map_err(|e| anyhow!("{}: {e}", at(s.span())))?),
        None => None,
    };
    Ok((source, platform))
}

/// The pipeline's steps, each read and checked (paths exist, Dockerfiles parse), nothing
/// done yet: a typo late in the file costs nothing. `images` finds what Dockerfile steps
/// name.
fn steps<'a>(pf: &PipelineFile, reg: &Registries, images: &'a [CliImages<'a>]) -> Result<Vec<Box<dyn imgtool_core::Step + 'a>>> {
    let at = |s: std::ops::Range<usize>| pf.at(s);
    let mut out: Vec<Box<dyn imgtool_core::Step + 'a>> = Vec::new();
    let mut dockerfiles = images.iter();
    for step in &pf.pipeline.steps {
        out.push(match step.get_ref() {
            Step::AddPath(a) => Box::new(AddLayers(Box::new(pf.path_layer(a)?))),
            Step::AddContents(c) => Box::new(AddLayers(Box::new(pf.contents_layer(c, step.span())?))),
            Step::Conda(spec) => Box::new(AddLayers(Box::new(imgtool_conda::CondaLayers::new(spec.clone(), &pf.dir)))),
            Step::RemoveLayers(n) => Box::new(RemoveTopLayers(*n)),
            Step::RemoveLayer(i) => Box::new(RemoveLayerAt(*i)),
            Step::Config(edit) => {
                // Checked now on an empty config (env syntax, ports, times), so --dry-run and
                // a typo late in the file cost nothing.
                imgtool_core::ImageConfig::new(&Platform::host()).apply(edit).map_err(|e| anyhow!("{}: {e}", at(step.span())))?;
                Box::new(EditConfig(edit.clone()))
            }
            Step::Squash(on) => Box::new(imgtool_archive::Squash(*on)),
            Step::Dockerfile(d) => {
                if d.target.is_some() {
                    bail!("{}: a dockerfile step has no target (it builds on the image so far, with no stages); remove it", at(step.span()));
                }
                let settings = pf.dockerfile_settings(d)?;
                let (df, name) = settings.dockerfile().with_context(|| at(step.span()))?;
                if let Some(&n) = df.stage_starts().first() {
                    bail!(
                        "{}: {name}:{}: a dockerfile step applies to the image built so far, so it cannot have FROM; remove it, or build the file as the [source]",
                        at(step.span()),
                        df.instructions[n].line
                    );
                }
                // Spool, compression and time come from the fold.
                let options = settings.options(Path::new(""), reg)?;
                let images = dockerfiles.next().ok_or_else(|| anyhow!("internal: no image finder for {name}"))?;
                Box::new(DockerfileStep::new(df, name, images, options).shown_as(d.file.display().to_string()))
            }
        });
    }
    Ok(out)
}

/// One image finder per Dockerfile step: paths in a Dockerfile are relative to it.
fn finders<'a>(pf: &PipelineFile, reg: &'a Registries) -> Result<Vec<CliImages<'a>>> {
    let any_platform = pf.pipeline.source.any_platform;
    pf.pipeline
        .steps
        .iter()
        .filter_map(|s| match s.get_ref() {
            Step::Dockerfile(d) => Some(pf.dockerfile_settings(d)),
            _ => None,
        })
        .map(|settings| Ok(settings?.images(reg, any_platform)))
        .collect()
}

/// What `--dry-run` prints: the source and one line per step.
fn plan_lines(source: &Source, platform: Option<&Platform>, steps: &[Box<dyn imgtool_core::Step + '_>]) -> Vec<String> {
    let shown = match source {
        Source::Image(t) => t.to_string(),
        Source::Dockerfile(s) => format!("build {}", s.file.as_deref().unwrap_or(&s.context).display()),
    };
    let mut lines = vec![format!("source: {shown}{}", platform.map(|p| format!(" ({p})")).unwrap_or_default())];
    lines.extend(steps.iter().map(|s| format!("step: {}", s.describe())));
    lines
}

/// The pipeline's image: its source loaded, its steps folded over it. New layers are written
/// under `spool`, which must outlive the image.
async fn image(
    pf: &PipelineFile,
    (source, platform): (Source, Option<Platform>),
    steps: &[Box<dyn imgtool_core::Step + '_>],
    spool: &Path,
    p: Printer,
    reg: &Registries,
) -> Result<Image> {
    let pl = &pf.pipeline;
    let flavor = pl.source.media_types.unwrap_or_default();
    let cx = StepContext { spool, compression: pl.options.compression, epoch: source_date_epoch() };
    let image = match &source {
        Source::Image(t) => load_any(t, platform.as_ref().map(ToString::to_string).as_deref(), flavor, pl.source.any_platform, reg)
            .await
            .with_context(|| format!("{}: the source", pf.path.display()))?,
        Source::Dockerfile(settings) => {
            let images = settings.images(reg, pl.source.any_platform);
            let settings = BuildSettings { platform: platform.clone(), ..(**settings).clone() };
            let step = settings.step(&images, reg)?.flavor(flavor);
            p.status(format!("building {}", step.name()));
            let scratch = Image::scratch(&platform.unwrap_or_else(Platform::host), flavor);
            step.apply(scratch, &cx).await.map_err(|e| anyhow!(e).context(pf.path.display().to_string()))?
        }
    };
    fold(image, steps, &cx, p).await.map_err(|(i, e)| anyhow!(e).context(pf.at(pl.steps[i].span())))
}

/// Fold `steps` over `image`, with a line of progress per step.
pub async fn fold(
    image: Image,
    steps: &[Box<dyn imgtool_core::Step + '_>],
    cx: &StepContext<'_>,
    p: Printer,
) -> std::result::Result<Image, (usize, imgtool_core::StepError)> {
    let mut bar = None;
    let mut before = image.layers().len();
    let mut each = |_: usize, step: &dyn imgtool_core::Step, after: Option<&Image>| match (after, step.progress()) {
        (None, Some(line)) => bar = p.spinner(line),
        (Some(image), Some(_)) => {
            let made: Vec<String> = image.layers()[before.min(image.layers().len())..]
                .iter()
                .map(|l| format!("{} ({})", l.descriptor.digest, indicatif::HumanBytes(l.descriptor.size)))
                .collect();
            p.done(bar.take(), format!("built {}: {}", step.describe(), made.join(", ")));
            before = image.layers().len();
        }
        (Some(image), None) => before = image.layers().len(),
        (None, None) => {}
    };
    imgtool_core::fold_steps(image, steps, cx, &mut each).await
}

pub async fn pipe(file: &Path, dry_run: bool, p: Printer, opts: &ClientOptions, creds: &CliCreds) -> Result<()> {
    let pf = PipelineFile::load(file)?;
    let pl = &pf.pipeline;
    let mut sinks = Vec::new();
    for s in &pl.sinks {
        let t = Transport::parse(s.to.get_ref(), &pf.dir, Role::Sink).map_err(|e| anyhow!("{}: {e:#}", pf.at(s.to.span())))?;
        if t == Transport::Scratch {
            bail!("{}: scratch cannot be a sink", pf.at(s.to.span()));
        }
        sinks.push(t);
    }
    if sinks.is_empty() {
        bail!("{}: the pipeline has no [[sink]]; add one, e.g. [[sink]] to = \"oci:out:latest\"", pf.path.display());
    }
    let (source, platform) = source(&pf)?;
    // The source image and the sinks are named; a Dockerfile's FROM is not.
    let sources = match &source {
        Source::Image(t) => names(t),
        Source::Dockerfile(_) => Vec::new(),
    };
    let targets: Vec<String> = sinks.iter().flat_map(names).collect();
    let reg = &creds.registries(opts, &sources, &targets)?;
    let finders = finders(&pf, reg)?;
    let steps = steps(&pf, reg, &finders)?;
    if dry_run {
        for line in plan_lines(&source, platform.as_ref(), &steps) {
            p.result(line);
        }
        for s in &sinks {
            p.result(format!("sink: {s}"));
        }
        return Ok(());
    }
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let image = image(&pf, (source, platform), &steps, spool.path(), p, reg).await?;
    for (s, spec) in sinks.iter().zip(&pl.sinks) {
        let format = Format { flavor: spec.format, preserve_digests: false };
        write_images(std::slice::from_ref(&image), s, &spec.additional_tags, format, p, reg).await?;
    }
    Ok(())
}

/// The image the pipeline in `file` makes (its sinks are not written), new layers under
/// `spool`, which must outlive it.
pub async fn pipeline_image(file: &Path, spool: &Path, p: Printer, reg: &Registries) -> Result<Image> {
    let pf = PipelineFile::load(file)?;
    let source = source(&pf)?;
    let finders = finders(&pf, reg)?;
    let steps = steps(&pf, reg, &finders)?;
    image(&pf, source, &steps, spool, p, reg).await
}
