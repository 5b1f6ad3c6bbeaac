//! One function per command.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::{
    AddLayers, ConfigEdit, CopyOptions, EditConfig, Flavor, Image, Platform, Step, StepContext, copy_image, copy_index, copy_manifest_tree,
    source_date_epoch,
};

use imgtool_registry::{ClientOptions, Registries};

use crate::args::{Command, CondaCommand};
use crate::creds::{self, CliCreds, registry_of, registry_of_ref};
use crate::printer::Printer;
use crate::transport::{Transport, strip_docker};

/// The registries a transport names (none, or one), for binding command-line credentials.
pub(crate) fn names(t: &Transport) -> Vec<String> {
    registry_of(t).into_iter().collect()
}

/// Run `command`; the status is the process's (a command run in a sandbox ends with its code).
pub async fn run(command: Command, p: Printer, opts: &ClientOptions, mut creds: CliCreds) -> Result<ExitCode> {
    let (source, sink) = (Transport::source_arg, Transport::sink_arg);
    // Each arm says which registries its command line names as sources and targets: the
    // only ones command-line credentials may go to.
    let named = |r: &str| -> Vec<String> { registry_of_ref(r).into_iter().collect() };
    let done: Result<()> = match command {
        Command::Pipe { file, dry_run, src_creds, dest_creds } => {
            creds.src = creds::parse("--src-creds", src_creds.as_ref())?;
            creds.dest = creds::parse("--dest-creds", dest_creds.as_ref())?;
            crate::pipe_cmd::pipe(&file, dry_run, p, opts, &creds).await
        }
        Command::Copy { src, dst, platform, all, format, preserve_digests, additional_tags, src_creds, dest_creds } => {
            creds.src = creds::parse("--src-creds", src_creds.as_ref())?;
            creds.dest = creds::parse("--dest-creds", dest_creds.as_ref())?;
            let (src, dst) = (source(&src)?, sink(&dst)?);
            let reg = &creds.registries(opts, &names(&src), &names(&dst))?;
            if all {
                copy_all(&src, &dst, additional_tags, p, reg).await
            } else {
                let image = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
                write_images(&[image], &dst, &additional_tags, Format { flavor: format, preserve_digests }, p, reg).await
            }
        }
        Command::Inspect { image, platform } => {
            let t = Transport::image_arg(&image)?;
            let reg = &creds.registries(opts, &names(&t), &[])?;
            crate::inspect_cmds::inspect(&t, platform.as_deref(), p, reg).await
        }
        Command::Append { src, dst, paths, contents, env, platform, compression, format } => {
            let (src, dst) = (source(&src)?, sink(&dst)?);
            let reg = &creds.registries(opts, &names(&src), &names(&dst))?;
            let image = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
            let spool = imgtool_core::spool().context("creating a spool directory")?;
            // The same steps a pipeline's add_path, add_contents and config take.
            let mut steps: Vec<Box<dyn Step>> = Vec::new();
            for spec in &paths {
                let (from, to) = spec.split_once(':').ok_or_else(|| anyhow!("--path {spec:?}: expected FROM:TO"))?;
                if !Path::new(from).exists() {
                    bail!("--path {spec:?}: {from} does not exist");
                }
                steps.push(Box::new(AddLayers(Box::new(imgtool_archive::PathLayer::new(from, to)))));
            }
            if !contents.is_empty() {
                let mut files = Vec::new();
                for spec in &contents {
                    let (path, text) = spec.split_once('=').ok_or_else(|| anyhow!("--contents {spec:?}: expected PATH=TEXT"))?;
                    files.push((path.to_string(), text.as_bytes().to_vec()));
                }
                steps.push(Box::new(AddLayers(Box::new(imgtool_archive::ContentsLayer::new(files)))));
            }
            if !env.is_empty() {
                steps.push(Box::new(EditConfig(ConfigEdit { env, ..Default::default() })));
            }
            let cx = StepContext { spool: spool.path(), compression, epoch: source_date_epoch() };
            let image = crate::pipe_cmd::fold(image, &steps, &cx, p).await.map_err(|(_, e)| anyhow!(e))?;
            write_images(&[image], &dst, &[], Format { flavor: format, preserve_digests: false }, p, reg).await
        }
        Command::Pull { image, output, platform, all } => {
            let r: imgtool_core::Reference = strip_docker(&image).parse().with_context(|| format!("{image:?}"))?;
            let dest = match output {
                Some(o) => sink(&o)?,
                // As podman pull: into the local image store, under its full name.
                None => crate::store::sink(&r.to_string())?,
            };
            let dest = match dest {
                // An archive named without an image name gets the pulled one, as docker save does.
                Transport::DockerArchive(path, None) => {
                    Transport::DockerArchive(path, r.familiar().split('@').next().map(str::to_string).filter(|n| !n.is_empty()))
                }
                t => t,
            };
            let src = Transport::Registry(r.to_string());
            let reg = &creds.registries(opts, &names(&src), &names(&dest))?;
            if all {
                copy_all(&src, &dest, Vec::new(), p, reg).await
            } else {
                let img = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
                write(&img, &dest, &[], p, reg).await
            }
        }
        Command::Push { src: given, dest, platform, all } => {
            let src = Transport::image_arg(&given)?;
            let dest = match dest {
                Some(d) => d,
                // A credential goes only to a registry the command line names.
                None if creds.creds.is_some() => {
                    bail!("give the destination when passing --creds: imgtool push {given} REGISTRY/REPO:TAG")
                }
                None => match crate::store::held_name(&src) {
                    // podman push NAME: where the name says, when it names its registry.
                    Some(_) if crate::transport::names_a_registry(&given) => given.clone(),
                    Some(_) => bail!("{given} names no registry of its own: give the destination, imgtool push {given} REGISTRY/REPO:TAG"),
                    None => archive_name(&src)?,
                },
            };
            let dest = Transport::Registry(strip_docker(&dest).to_string());
            let reg = &creds.registries(opts, &names(&src), &names(&dest))?;
            if all {
                copy_all(&src, &dest, Vec::new(), p, reg).await
            } else {
                if platform.is_none()
                    && let Some(platforms) = crate::inspect_cmds::index_platforms(&src, reg).await?
                {
                    // Pushing one platform of several, silently, would look like pushing them all.
                    bail!(
                        "{src} is an index of {} platforms ({}): push them all with --all, or one with --platform PLATFORM",
                        platforms.len(),
                        platforms.join(", ")
                    );
                }
                let img = load(&src, platform.as_deref(), Flavor::Oci, reg).await?;
                write(&img, &dest, &[], p, reg).await
            }
        }
        Command::Tags { repo } => crate::registry_cmds::tags(&repo, &creds.registries(opts, &[], &named(&repo))?, p).await,
        Command::Catalog { registry } => {
            let host = strip_docker(&registry).trim_end_matches('/').to_string();
            if host.contains('/') {
                bail!(
                    "catalog lists a registry's repositories: give the registry alone (HOST[:PORT]); `imgtool tags {host}` lists a repository's tags"
                );
            }
            crate::registry_cmds::catalog(&registry, &creds.registries(opts, &[], &[host])?, p).await
        }
        // The registry these read is their target: --creds goes there.
        Command::Manifest { image, platform } => {
            let t = source(&image)?;
            crate::inspect_cmds::manifest(&t, platform.as_deref(), &creds.registries(opts, &[], &names(&t))?, p).await
        }
        Command::Config { image, platform } => {
            let t = source(&image)?;
            crate::inspect_cmds::config(&t, platform.as_deref(), &creds.registries(opts, &[], &names(&t))?, p).await
        }
        Command::Digest { image } => {
            let t = source(&image)?;
            crate::inspect_cmds::digest(&t, &creds.registries(opts, &[], &names(&t))?, p).await
        }
        Command::Delete { image, .. } if ["oci:", "oci-archive:", "docker-archive:"].iter().any(|t| image.starts_with(t)) => {
            crate::layout_cmds::delete(&image, p).await
        }
        Command::Delete { image, dry_run } => {
            crate::registry_cmds::delete(&image, dry_run, &creds.registries(opts, &[], &named(&image))?, p).await
        }
        Command::Tag { image, new_tag } => {
            crate::registry_cmds::tag(&image, &new_tag, &creds.registries(opts, &[], &named(&image))?, p).await
        }
        Command::Login { registry, username, password_stdin, password } => {
            crate::registry_cmds::login(&registry, username, password_stdin, password, opts, p).await
        }
        Command::Logout { registry } => crate::registry_cmds::logout(&registry, opts, p).await,
        Command::Conda(CondaCommand::Build(args)) => {
            let base = names(&source(&args.base)?);
            let target = match (&args.output, args.push) {
                (Some(o), false) => names(&sink(o)?),
                _ => named(&args.image),
            };
            let reg = creds.registries(opts, &base, &target)?;
            crate::conda_cmd::build(args, &reg, p).await
        }
        Command::Build(args) => {
            // Only the push target: `FROM` images are not named on the command line.
            let target = if args.push { args.tag.as_deref().map(named).unwrap_or_default() } else { Vec::new() };
            let reg = creds.registries(opts, &[], &target)?;
            return crate::build_cmd::build(args, &reg, p).await;
        }
        Command::Run(args) => {
            let reg = creds.registries(opts, &names(&Transport::image_arg(&args.image)?), &[])?;
            return crate::build_cmd::run(args, &reg, p).await;
        }
        Command::Export { image, dest, platform } => {
            let t = source(&image)?;
            let reg = &creds.registries(opts, &names(&t), &[])?;
            let image = load(&t, platform.as_deref(), Flavor::Oci, reg).await?;
            crate::export::export(&image, &dest, p).await
        }
        Command::Mutate(args) => {
            let (sources, targets) = crate::edit_cmds::names(&args.image, args.tag.as_deref(), &[]);
            crate::edit_cmds::mutate(args, p, &creds.registries(opts, &sources, &targets)?).await
        }
        Command::Flatten(args) => {
            let (sources, targets) = crate::edit_cmds::names(&args.image, args.tag.as_deref(), &[]);
            crate::edit_cmds::flatten(args, p, &creds.registries(opts, &sources, &targets)?).await
        }
        Command::Rebase(args) => {
            let (sources, targets) = crate::edit_cmds::names(&args.image, args.tag.as_deref(), &[&args.old_base, &args.new_base]);
            crate::edit_cmds::rebase(args, p, &creds.registries(opts, &sources, &targets)?).await
        }
        Command::Map(args) => crate::map_cmd::run(args, p, &creds.registries(opts, &[], &[])?).await,
        Command::Blob(args) => {
            let reg = creds.registries(opts, &crate::blob_cmd::names(&args), &[])?;
            crate::blob_cmd::blob(args, p, &reg).await
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut <crate::args::Cli as clap::CommandFactory>::command(), "imgtool", &mut out);
            p.result(String::from_utf8_lossy(&out).trim_end());
            Ok(())
        }
        Command::Man { dir } => crate::man::write(&dir, p),
        Command::Images => crate::store::list(p),
        Command::Rmi { names } => crate::store::remove(&names, p).await,
        Command::Gc { layout, dry_run } => crate::layout_cmds::gc(layout, dry_run, p).await,
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// The one image name a docker-archive holds (or the one its transport names), for `push SRC`.
fn archive_name(src: &Transport) -> Result<String> {
    let Transport::DockerArchive(path, name) = src else {
        bail!("{src} holds no image name: give the destination, imgtool push {src} REGISTRY/REPO:TAG");
    };
    if let Some(n) = name.as_ref().filter(|n| !n.starts_with('@')) {
        return Ok(n.clone());
    }
    let archive = imgtool_archive::DockerArchiveSource::open(path).with_context(|| format!("opening {src}"))?;
    let names: Vec<String> = archive.tags().into_iter().flatten().collect();
    match names.as_slice() {
        // The archive says where it goes only when it names a registry: never Docker Hub
        // by default, as for every destination.
        [one] if crate::transport::names_a_registry(one) => Ok(one.clone()),
        [one] => bail!("{src} names {one}, which names no registry: give the destination, imgtool push {src} REGISTRY/REPO:TAG"),
        [] => bail!("{src} holds no image name: give the destination, imgtool push {src} REGISTRY/REPO:TAG"),
        many => bail!("{src} holds several names ({}): give the destination", many.join(", ")),
    }
}

/// `copy --all`: an index and every image in it, byte for byte.
async fn copy_all(src: &Transport, dst: &Transport, additional_tags: Vec<String>, p: Printer, reg: &Registries) -> Result<()> {
    let (source, selector) = src.open_source(reg)?;
    let desc = source.resolve(selector.as_deref()).await.with_context(|| format!("reading {src}"))?;
    if matches!(dst, Transport::Oci(..) | Transport::OciArchive(..)) && desc.media_type.flavor() == Some(Flavor::Docker) {
        // skopeo and umoci read only OCI media types in an OCI layout: each image converted,
        // under an OCI index of its own.
        let raw = imgtool_core::read_blob(source.as_ref(), &desc, imgtool_core::MANIFEST_LIMIT).await?;
        let descs = match imgtool_core::ParsedManifest::parse(&raw, Some(&desc.media_type))? {
            imgtool_core::ParsedManifest::Index(index) => index.manifests,
            _ => vec![desc.clone()],
        };
        let mut images = Vec::new();
        for d in descs {
            images.push(Image::load_descriptor(source.clone(), d, None).await.with_context(|| format!("reading {src}"))?);
        }
        return write_images(&images, dst, &additional_tags, Format::default(), p, reg).await;
    }
    let (sink, mut tags) = dst.open_sink(reg)?;
    tags.extend(additional_tags);
    let opts = CopyOptions { tags, jobs: 4, progress: p.progress() };
    copy_manifest_tree(source.as_ref(), &desc, sink.as_ref(), &opts).await.with_context(|| format!("writing {dst}"))?;
    sink.finish().await.with_context(|| format!("finishing {dst}"))?;
    report(dst, &desc, p);
    Ok(())
}

fn platform_of(s: Option<&str>) -> Result<Option<Platform>> {
    s.map(|s| s.parse::<Platform>()).transpose().map_err(Into::into)
}

pub(crate) async fn load(t: &Transport, platform: Option<&str>, flavor: Flavor, reg: &Registries) -> Result<Image> {
    load_any(t, platform, flavor, false, reg).await
}

/// As `load`; `any` takes a single image of another platform than `platform`.
pub(crate) async fn load_any(t: &Transport, platform: Option<&str>, flavor: Flavor, any: bool, reg: &Registries) -> Result<Image> {
    let platform = platform_of(platform)?;
    if *t == Transport::Scratch {
        return Ok(Image::scratch(&platform.unwrap_or_else(Platform::host), flavor));
    }
    let (source, selector) = t.open_source(reg)?;
    crate::images::load(source, selector.as_deref(), platform.as_ref(), any).await.with_context(|| format!("reading {t}"))
}

fn report(t: &Transport, desc: &imgtool_core::Descriptor, p: Printer) {
    p.record(
        serde_json::json!({"destination": t.to_string(), "digest": desc.digest.to_string(), "mediaType": desc.media_type.as_str(), "size": desc.size}),
        format!("{t} {}", desc.digest),
    );
}

pub(crate) async fn write(image: &Image, t: &Transport, additional_tags: &[String], p: Printer, reg: &Registries) -> Result<()> {
    write_images(std::slice::from_ref(image), t, additional_tags, Format::default(), p, reg).await
}

/// The media types an image is written with, and whether its digest may change for them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Format {
    /// `--format`: OCI's or Docker's media types.
    pub flavor: Option<Flavor>,
    /// `--preserve-digests`: refuse a conversion rather than change the digest.
    pub preserve_digests: bool,
}

fn name(f: Flavor) -> &'static str {
    match f {
        Flavor::Oci => "OCI",
        Flavor::Docker => "Docker",
    }
}

impl Format {
    /// `image` in the media types `t` gets: the asked ones; OCI's in an OCI layout or
    /// archive (skopeo and umoci read only those there); otherwise its own.
    fn apply(self, image: &Image, t: &Transport) -> Result<Image> {
        let oci_layout = matches!(t, Transport::Oci(..) | Transport::OciArchive(..));
        let want = self.flavor.or(oci_layout.then_some(Flavor::Oci)).unwrap_or(image.flavor());
        if want == image.flavor() {
            return Ok(image.clone());
        }
        if self.preserve_digests {
            bail!(
                "{t}: the image has {} media types and is to be written with {} ones, which changes its digest; --preserve-digests forbids that (drop it, or choose --format {})",
                name(image.flavor()),
                name(want),
                name(image.flavor()).to_ascii_lowercase()
            );
        }
        let mut converted = image.clone();
        converted.set_flavor(want);
        Ok(converted)
    }
}

/// Write `images` to `t` (one image, or an index of several) with more tags, and report
/// what was written: every command that makes images ends here, so `--json` says the same.
pub(crate) async fn write_images(
    images: &[Image],
    t: &Transport,
    additional_tags: &[String],
    format: Format,
    p: Printer,
    reg: &Registries,
) -> Result<()> {
    let images = images.iter().map(|i| format.apply(i, t)).collect::<Result<Vec<_>>>()?;
    let (sink, mut tags) = t.open_sink(reg)?;
    tags.extend(additional_tags.iter().cloned());
    let opts = CopyOptions { tags, jobs: 4, progress: p.progress() };
    let desc = match images.as_slice() {
        [one] => copy_image(one, sink.as_ref(), &opts).await,
        many => copy_index(many, sink.as_ref(), &opts).await,
    }
    .with_context(|| format!("writing {t}"))?;
    sink.finish().await.with_context(|| format!("finishing {t}"))?;
    report(t, &desc, p);
    Ok(())
}
