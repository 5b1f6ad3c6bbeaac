//! One function per command.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::{
    Compression, ConfigEdit, CopyOptions, Flavor, Image, LayerProducer, Platform, copy_image, copy_manifest_tree, rfc3339,
    source_date_epoch,
};

use imgtool_registry::{ClientOptions, Registries};

use crate::Command;
use crate::creds::{self, CliCreds, registry_of, registry_of_ref};
use crate::pipeline::{PipelineFile, Step};
use crate::printer::Printer;
use crate::transport::Transport;

/// The registries a transport names (none, or one), for binding command-line credentials.
fn names(t: &Transport) -> Vec<String> {
    registry_of(t).into_iter().collect()
}

pub async fn run(command: Command, p: Printer, opts: &ClientOptions, mut creds: CliCreds) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let parse = |s: &str| Transport::parse_arg(s);
    // Each arm says which registries its command line names as sources and targets: the
    // only ones command-line credentials may go to.
    let named = |r: &str| -> Vec<String> { registry_of_ref(r).into_iter().collect() };
    match command {
        Command::Pipe { file, dry_run, src_creds, dest_creds } => {
            creds.src = creds::parse("--src-creds", src_creds.as_ref())?;
            creds.dest = creds::parse("--dest-creds", dest_creds.as_ref())?;
            pipe(&file, dry_run, p, opts, &creds).await
        }
        Command::Copy { src, dst, platform, all, additional_tags, src_creds, dest_creds } => {
            creds.src = creds::parse("--src-creds", src_creds.as_ref())?;
            creds.dest = creds::parse("--dest-creds", dest_creds.as_ref())?;
            let (src, dst) = (parse(&src)?, parse(&dst)?);
            let reg = &creds.registries(opts, &names(&src), &names(&dst))?;
            if !all {
                let image = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
                return write(&image, &dst, &additional_tags, p, reg).await;
            }
            let (source, selector) = src.open_source(reg)?;
            let desc = source.resolve(selector.as_deref()).await.with_context(|| format!("reading {src}"))?;
            let (sink, mut tags) = dst.open_sink(reg)?;
            tags.extend(additional_tags);
            let opts = CopyOptions { tags, jobs: 4, progress: p.progress() };
            copy_manifest_tree(source.as_ref(), &desc, sink.as_ref(), &opts).await.with_context(|| format!("writing {dst}"))?;
            sink.finish().await.with_context(|| format!("finishing {dst}"))?;
            report(&dst, &desc, p);
            Ok(())
        }
        Command::Inspect { image, platform } => {
            let t = parse(&image)?;
            let reg = &creds.registries(opts, &names(&t), &[])?;
            inspect(&t, p.json, platform.as_deref(), p, reg).await
        }
        Command::Append { src, dst, paths, contents, env, platform, compression } => {
            let (src, dst) = (parse(&src)?, parse(&dst)?);
            let reg = &creds.registries(opts, &names(&src), &names(&dst))?;
            let mut image = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
            let spool = imgtool_core::spool().context("creating a spool directory")?;
            let mut producers: Vec<Box<dyn LayerProducer>> = Vec::new();
            for spec in &paths {
                let (from, to) = spec.split_once(':').ok_or_else(|| anyhow!("--path {spec:?}: expected FROM:TO"))?;
                if !Path::new(from).exists() {
                    bail!("--path {spec:?}: {from} does not exist");
                }
                producers.push(Box::new(imgtool_archive::PathLayer::new(from, to)));
            }
            if !contents.is_empty() {
                let mut files = Vec::new();
                for spec in &contents {
                    let (path, text) = spec.split_once('=').ok_or_else(|| anyhow!("--contents {spec:?}: expected PATH=TEXT"))?;
                    files.push((path.to_string(), text.as_bytes().to_vec()));
                }
                producers.push(Box::new(imgtool_archive::ContentsLayer::new(files)));
            }
            image = produce(image, &producers, spool.path(), compression, p).await?;
            if !env.is_empty() {
                image.config_mut().apply(&ConfigEdit { env, ..Default::default() })?;
            }
            write(&image, &dst, &[], p, reg).await
        }
        Command::Pull { image, output, force, platform } => {
            let r: imgtool_core::Reference =
                image.strip_prefix("docker://").unwrap_or(&image).parse().with_context(|| format!("{image:?}"))?;
            let dest = match output {
                Some(o) => o,
                None => {
                    let name = r.repository().rsplit('/').next().unwrap_or("image");
                    // Two repositories can share a last name: never replace what an earlier
                    // pull (or anything else) left there unless asked.
                    if !force && std::fs::symlink_metadata(cwd.join(format!("{name}.tar"))).is_ok() {
                        bail!(
                            "{name}.tar already exists here; name the output with -o (a file named with -o is replaced), or pass --force to replace {name}.tar"
                        );
                    }
                    format!("docker-archive:{name}.tar:{}", r.familiar().split('@').next().unwrap_or_default())
                }
            };
            let (src, dest) = (Transport::Registry(r.to_string()), parse(&dest)?);
            let reg = &creds.registries(opts, &names(&src), &names(&dest))?;
            let img = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
            write(&img, &dest, &[], p, reg).await
        }
        Command::Push { src, dest } => {
            let src = parse(&src)?;
            let dest = Transport::Registry(dest.strip_prefix("docker://").unwrap_or(&dest).to_string());
            let reg = &creds.registries(opts, &names(&src), &names(&dest))?;
            let img = load(&src, None, Flavor::Oci, reg).await?;
            write(&img, &dest, &[], p, reg).await
        }
        Command::Tags { repo } => crate::registry_cmds::tags(&repo, &creds.registries(opts, &[], &named(&repo))?, p).await,
        Command::Catalog { registry } => {
            let host = registry.strip_prefix("docker://").unwrap_or(&registry).trim_end_matches('/').to_string();
            crate::registry_cmds::catalog(&registry, &creds.registries(opts, &[], &[host])?, p).await
        }
        Command::Manifest { image, platform } => {
            crate::registry_cmds::manifest(&image, platform.as_deref(), &creds.registries(opts, &[], &named(&image))?, p).await
        }
        Command::Config { image, platform } => {
            crate::registry_cmds::config(&image, platform.as_deref(), &creds.registries(opts, &[], &named(&image))?, p).await
        }
        Command::Digest { image } => crate::registry_cmds::digest(&image, &creds.registries(opts, &[], &named(&image))?, p).await,
        Command::Delete { image } if ["oci:", "oci-archive:", "docker-archive:"].iter().any(|t| image.starts_with(t)) => {
            crate::layout_cmds::delete(&image, p).await
        }
        Command::Delete { image } => crate::registry_cmds::delete(&image, &creds.registries(opts, &[], &named(&image))?, p).await,
        Command::Tag { image, new_tag } => {
            crate::registry_cmds::tag(&image, &new_tag, &creds.registries(opts, &[], &named(&image))?, p).await
        }
        Command::Login { registry, username, password_stdin, password } => {
            crate::registry_cmds::login(&registry, username, password_stdin, password, p).await
        }
        Command::Logout { registry } => crate::registry_cmds::logout(&registry, p).await,
        Command::Conda(crate::CondaCommand::Build(args)) => {
            let base = names(&parse(&args.base)?);
            let target = match (&args.output, args.push) {
                (Some(o), false) => names(&parse(o)?),
                _ => named(&args.image),
            };
            let reg = creds.registries(opts, &base, &target)?;
            crate::conda_cmd::build(args, &reg, p).await
        }
        Command::Build(args) => {
            // Only the push target: `FROM` images are not named on the command line.
            let target = if args.push { args.tag.as_deref().map(named).unwrap_or_default() } else { Vec::new() };
            let reg = creds.registries(opts, &[], &target)?;
            crate::build_cmd::build(args, &reg, p).await
        }
        Command::Run(args) => {
            let known = ["docker://", "docker-archive:", "oci:", "oci-archive:"];
            let source = if known.iter().any(|k| args.image.starts_with(k)) {
                names(&parse(&args.image)?)
            } else if args.image == "scratch" || cwd.join(&args.image).exists() {
                Vec::new()
            } else {
                named(&args.image)
            };
            let reg = creds.registries(opts, &source, &[])?;
            crate::build_cmd::run(args, &reg).await
        }
        Command::Export { image, dest, platform } => {
            let t = parse(&image)?;
            let reg = &creds.registries(opts, &names(&t), &[])?;
            let image = load(&t, platform.as_deref(), Flavor::Oci, reg).await?;
            crate::export::export(&image, &dest, p).await
        }
        Command::Map(args) => crate::map_cmd::run(args, p, &creds.registries(opts, &[], &[])?).await,
        Command::Gc { layout, dry_run } => crate::layout_cmds::gc(layout, dry_run, p).await,
    }
}

fn platform_of(s: Option<&str>) -> Result<Option<Platform>> {
    s.map(|s| s.parse::<Platform>()).transpose().map_err(Into::into)
}

pub(crate) async fn load(t: &Transport, platform: Option<&str>, flavor: Flavor, reg: &Registries) -> Result<Image> {
    load_any(t, platform, flavor, false, reg).await
}

/// As `load`; `any` takes a single image of another platform than `platform`.
async fn load_any(t: &Transport, platform: Option<&str>, flavor: Flavor, any: bool, reg: &Registries) -> Result<Image> {
    let platform = platform_of(platform)?;
    if *t == Transport::Scratch {
        return Ok(Image::scratch(&platform.unwrap_or_else(Platform::host), flavor));
    }
    let (source, selector) = t.open_source(reg)?;
    crate::images::load(source, selector.as_deref(), platform.as_ref(), any).await.with_context(|| format!("reading {t}"))
}

async fn produce(
    mut image: Image,
    producers: &[Box<dyn LayerProducer>],
    spool: &Path,
    compression: Compression,
    p: Printer,
) -> Result<Image> {
    let epoch = source_date_epoch();
    for producer in producers {
        let bar = p.spinner(format!("building {}", producer.describe()));
        let before = image.layers().len();
        image = image.add_layers(producer.as_ref(), spool, epoch, compression).await.with_context(|| producer.describe())?;
        let made: Vec<String> = image.layers()[before..]
            .iter()
            .map(|l| format!("{} ({})", l.descriptor.digest, indicatif::HumanBytes(l.descriptor.size)))
            .collect();
        p.done(bar, format!("built {}: {}", producer.describe(), made.join(", ")));
    }
    if !producers.is_empty() {
        // New layers make a new image: its time is the build's, fixed for reproducibility.
        image.config_mut().json_mut().insert("created".into(), serde_json::json!(rfc3339(epoch)));
    }
    Ok(image)
}

fn report(t: &Transport, desc: &imgtool_core::Descriptor, p: Printer) {
    p.record(
        serde_json::json!({"destination": t.to_string(), "digest": desc.digest.to_string(), "mediaType": desc.media_type.as_str(), "size": desc.size}),
        format!("{t} {}", desc.digest),
    );
}

async fn write(image: &Image, t: &Transport, additional_tags: &[String], p: Printer, reg: &Registries) -> Result<()> {
    let (sink, mut tags) = t.open_sink(reg)?;
    tags.extend(additional_tags.iter().cloned());
    let opts = CopyOptions { tags, jobs: 4, progress: p.progress() };
    let desc = copy_image(image, sink.as_ref(), &opts).await.with_context(|| format!("writing {t}"))?;
    sink.finish().await.with_context(|| format!("finishing {t}"))?;
    report(t, &desc, p);
    Ok(())
}

/// Where a pipeline's image starts.
enum Source {
    Image(Transport),
    // Boxed: the build flags make it several times the size of the other.
    Dockerfile(Box<crate::build_cmd::BuildArgs>),
}

async fn pipe(file: &Path, dry_run: bool, p: Printer, opts: &ClientOptions, creds: &CliCreds) -> Result<()> {
    let pf = PipelineFile::load(file)?;
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
    let mut sinks = Vec::new();
    for s in &pl.sinks {
        let t = Transport::parse(s.to.get_ref(), &pf.dir).map_err(|e| anyhow!("{}: {e}", at(s.to.span())))?;
        if t == Transport::Scratch {
            bail!("{}: scratch cannot be a sink", at(s.to.span()));
        }
        sinks.push(t);
    }
    if sinks.is_empty() {
        bail!("{}: the pipeline has no [[sink]]; add one, e.g. [[sink]] to = \"oci:out:latest\"", pf.path.display());
    }
    // The source image and the sinks are named; a Dockerfile's FROM is not.
    let sources = match &source {
        Source::Image(t) => names(t),
        Source::Dockerfile(_) => Vec::new(),
    };
    let targets: Vec<String> = sinks.iter().flat_map(names).collect();
    let reg = &creds.registries(opts, &sources, &targets)?;
    // Check every step before doing anything, so a typo late in the file costs nothing.
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
    if dry_run {
        let shown = match &source {
            Source::Image(t) => t.to_string(),
            Source::Dockerfile(a) => format!("build {}", a.file.as_deref().unwrap_or(&a.context).display()),
        };
        p.result(format!("source: {shown}{}", platform.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()));
        for (step, prod) in pl.steps.iter().zip(&producers) {
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
            p.result(format!("step: {line}"));
        }
        for s in &sinks {
            p.result(format!("sink: {s}"));
        }
        return Ok(());
    }
    let flavor = pl.source.media_types.unwrap_or_default();
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    // Paths a Dockerfile writes are relative to it.
    let images_for = |args: &crate::build_cmd::BuildArgs| crate::build_cmd::CliImages {
        reg,
        base: crate::build_cmd::dockerfile_dir(args.file.as_deref(), &args.context),
        any_platform: pl.source.any_platform,
    };
    let mut image = match &source {
        Source::Image(t) => load_any(t, platform.as_ref().map(ToString::to_string).as_deref(), flavor, pl.source.any_platform, reg)
            .await
            .with_context(|| format!("{}: the source", pf.path.display()))?,
        Source::Dockerfile(args) => {
            let (df, name) = crate::build_cmd::read_dockerfile(args.file.as_deref(), &args.context)?;
            let mut opts = crate::build_cmd::options(args, spool.path(), reg)?;
            opts.platform = platform.clone();
            opts.flavor = flavor;
            opts.compression = pl.options.compression;
            p.status(format!("building {name}"));
            let images = images_for(args);
            imgtool_dockerfile::build(&df, &images, &opts).await.map_err(|e| anyhow!("{}: {}", pf.path.display(), e.in_file(&name)))?
        }
    };
    for ((step, prod), dockerfile) in pl.steps.iter().zip(producers).zip(dockerfiles) {
        if let Some((args, df, name)) = dockerfile {
            let mut opts = crate::build_cmd::options(&args, spool.path(), reg)?;
            opts.compression = pl.options.compression;
            let images = images_for(&args);
            image = imgtool_dockerfile::build_on(image, &df, &images, &opts)
                .await
                .map_err(|e| anyhow!("{}: {}", at(step.span()), e.in_file(&name)))?;
            continue;
        }
        let where_ = at(step.span());
        match (step.get_ref(), prod) {
            (_, Some(prod)) => {
                image = produce(image, &[prod], spool.path(), pl.options.compression, p).await.with_context(|| where_.clone())?
            }
            (Step::RemoveLayers(n), _) => image.remove_top_layers(*n).with_context(|| where_.clone())?,
            (Step::RemoveLayer(i), _) => image.remove_layer_at(*i).with_context(|| where_.clone())?,
            (Step::Squash(true), _) => {
                p.status("squashing");
                crate::export::squash(&mut image, spool.path(), pl.options.compression).await.with_context(|| where_.clone())?;
                image.config_mut().json_mut().insert("created".into(), serde_json::json!(rfc3339(source_date_epoch())));
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
    for (s, spec) in sinks.iter().zip(&pl.sinks) {
        write(&image, s, &spec.additional_tags, p, reg).await?;
    }
    Ok(())
}

async fn inspect(t: &Transport, json: bool, platform: Option<&str>, p: Printer, reg: &Registries) -> Result<()> {
    let image = load(t, platform, Flavor::Oci, reg).await?;
    let (mdesc, raw) = image.manifest();
    let config: serde_json::Value = serde_json::from_slice(&image.config().to_bytes()).context("parsing the config")?;
    if json {
        let manifest: serde_json::Value = serde_json::from_slice(&raw).context("parsing the manifest")?;
        let out = serde_json::json!({
            "digest": mdesc.digest.to_string(),
            "mediaType": mdesc.media_type.as_str(),
            "manifest": manifest,
            "config": config,
        });
        // Keys sorted, so the output is the same whatever serde_json features the build has.
        let sorted: serde_json::Value = serde_json::from_slice(&imgtool_core::canonical_json(&out))?;
        p.result(serde_json::to_string_pretty(&sorted)?);
        return Ok(());
    }
    p.result(format!("Image:      {t}"));
    p.result(format!("Digest:     {}", mdesc.digest));
    p.result(format!("MediaType:  {}", mdesc.media_type));
    p.result(format!("Platform:   {}", image.platform()));
    if let Some(c) = config.get("created").and_then(|v| v.as_str()) {
        p.result(format!("Created:    {c}"));
    }
    let c = config.get("config");
    let field = |k: &str| c.and_then(|c| c.get(k)).filter(|v| !v.is_null());
    for (k, label) in
        [("Env", "Env"), ("Entrypoint", "Entrypoint"), ("Cmd", "Cmd"), ("WorkingDir", "WorkingDir"), ("User", "User"), ("Labels", "Labels")]
    {
        if let Some(v) = field(k) {
            p.result(format!("{:<12}{}", format!("{label}:"), v));
        }
    }
    let total: u64 = image.layers().iter().map(|l| l.descriptor.size).sum();
    p.result(format!("Layers:     {} ({})", image.layers().len(), indicatif::HumanBytes(total)));
    for (i, l) in image.layers().iter().enumerate() {
        p.result(format!(
            "  {i:>3}  {}  {:>10}  {}",
            l.descriptor.digest,
            indicatif::HumanBytes(l.descriptor.size).to_string(),
            l.descriptor.media_type
        ));
    }
    Ok(())
}
