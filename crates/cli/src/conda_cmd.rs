//! `imgtool conda build`: conda-docker's job, without conda or docker.

use anyhow::{Context, Result, bail};
use imgtool_conda::{CondaLayers, CondaSpec};
use imgtool_core::{Flavor, Platform, source_date_epoch};
use imgtool_registry::Registries;

use crate::args::CondaBuild;
use crate::printer::Printer;
use crate::transport::Transport;

pub async fn build(args: CondaBuild, reg: &Registries, p: Printer) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let mut spec = match &args.file {
        Some(f) => CondaSpec::from_environment_yaml(f)?,
        None => CondaSpec::new(Vec::new(), Vec::new()),
    };
    spec.channels.extend(args.channels.iter().cloned());
    spec.specs.extend(args.specs.iter().cloned());
    spec.lock = args.lock.clone();
    if spec.lock.is_some() && !spec.specs.is_empty() {
        bail!("--lock installs what the lock file says; leave out the package specs");
    }
    if spec.lock.is_none() && spec.channels.is_empty() {
        bail!("name a channel with -c CHANNEL (a directory, a file:// or https:// URL, or a name)");
    }
    if spec.lock.is_none() && spec.specs.is_empty() {
        bail!("name the packages to install (or give --file environment.yml or --lock FILE)");
    }
    spec.prefix = args.prefix.clone();
    spec.separate = args.separate.clone();
    spec.max_layers = Some(args.max_layers);
    spec.virtual_packages = args.virtual_packages.clone();
    spec.cache_dir = args.cache_dir.clone();
    spec.layer_cache = !args.no_layer_cache;
    let name: imgtool_core::Reference = args.image.parse().with_context(|| format!("-i {}", args.image))?;
    let sink = match (&args.output, args.push) {
        (Some(o), false) => match Transport::sink_arg(o)? {
            Transport::DockerArchive(path, None) => Transport::DockerArchive(path, Some(name.familiar())),
            t => t,
        },
        (None, true) => Transport::Registry(name.to_string()),
        (Some(_), true) => bail!("give either -o OUT or --push, not both"),
        (None, false) => bail!("say where the image goes: -o OUT (a path is a docker-archive) or --push"),
    };
    let base = Transport::source_arg(&args.base)?;
    let platforms: Vec<Option<Platform>> = if args.platforms.is_empty() {
        vec![None]
    } else {
        args.platforms
            .iter()
            .map(|pl| {
                let subdir = imgtool_conda::conda_subdir(pl)?;
                Ok(Some(imgtool_conda::image_platform(subdir)))
            })
            .collect::<Result<_>>()?
    };
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let mut images = Vec::new();
    for platform in &platforms {
        let image = crate::commands::load(&base, platform.as_ref().map(ToString::to_string).as_deref(), Flavor::Oci, reg).await?;
        let mut s = spec.clone();
        s.platform = platform.as_ref().map(ToString::to_string);
        // The pipeline's conda step, alone, with its own progress (which platform).
        let step = imgtool_core::AddLayers(Box::new(CondaLayers::new(s, &cwd)));
        let cx =
            imgtool_core::StepContext { spool: spool.path(), compression: imgtool_core::Compression::Gzip, epoch: source_date_epoch() };
        let shown = platform.as_ref().map_or_else(|| image.platform().to_string(), ToString::to_string);
        let bar = p.spinner(format!("installing {} for {shown}", spec.specs.join(" ")));
        let before = image.layers().len();
        let image = imgtool_core::Step::apply(&step, image, &cx).await.map_err(|e| anyhow::anyhow!(e))?;
        p.done(bar, format!("built {} layers", image.layers().len() - before));
        images.push(image);
    }
    crate::commands::write_images(&images, &sink, &[], Default::default(), p, reg).await
}
