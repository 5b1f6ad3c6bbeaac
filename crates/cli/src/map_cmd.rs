//! `imgtool map ACTION MAPFILE [CONTAINER[.INSTANCE]...]`: docker-map's MappingDockerClient.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use imgtool_core::{CopyOptions, Flavor, Image, ImageSink, copy_image};
use imgtool_maps::{
    Action, ClientConfig, Clients, ContainerMap, DEFAULT_CLIENT, DockerEngine, Engine, Op, RunOptions, Step, execute, observe, plan,
};
use imgtool_registry::Registries;

use crate::args::{MapAction, MapArgs};
use crate::printer::Printer;
use crate::transport::Transport;

/// Image sources imgtool reads or builds itself, and loads into the engine.
const OWN_SOURCES: [&str; 5] = ["oci:", "oci-archive:", "docker-archive:", "pipe:", "build:"];

/// Whether `image` is one imgtool reads or builds: a source prefix and a path (relative to
/// the map's directory) that exists. Otherwise it is the engine's name, as docker-map reads
/// it: `build:latest` is the image `build`, tag `latest`.
fn own(image: &str, base: &Path) -> bool {
    OWN_SOURCES.iter().any(|s| {
        let Some(rest) = image.strip_prefix(s) else { return false };
        // A pipeline is a regular file (not a FIFO to wait on), a context a directory;
        // oci:DIR:TAG, oci-archive:FILE:TAG, docker-archive:FILE:NAME:TAG name a path first.
        match *s {
            "pipe:" => base.join(rest).is_file(),
            "build:" => base.join(rest).is_dir(),
            _ => rest.split(':').next().is_some_and(|path| !path.is_empty() && base.join(path).exists()),
        }
    })
}

/// Where output goes: the printer, each line and record marked with its client when a map
/// runs on several.
#[derive(Clone, Copy)]
struct Out<'a> {
    p: Printer,
    client: Option<&'a str>,
}

impl Out<'_> {
    fn record(&self, mut json: serde_json::Value, text: String) {
        match self.client {
            Some(c) => {
                json["client"] = c.into();
                self.p.record(json, format!("{c}: {text}"));
            }
            None => self.p.record(json, text),
        }
    }

    fn status(&self, text: String) {
        match self.client {
            Some(c) => self.p.status(format!("{c}: {text}")),
            None => self.p.status(text),
        }
    }
}

fn target(op: &Op) -> &str {
    match op {
        Op::Network { name, .. } | Op::Create { name, .. } | Op::Start { name } | Op::Stop { name, .. } | Op::Remove { name } => name,
        Op::Kill { name, .. } | Op::Exec { name, .. } => name,
        Op::Volume(v) => &v.name,
    }
}

fn verb(op: &Op) -> &'static str {
    match op {
        Op::Network { .. } => "network",
        Op::Volume(_) => "volume",
        Op::Create { .. } => "create",
        Op::Start { .. } => "start",
        Op::Stop { .. } => "stop",
        Op::Remove { .. } => "remove",
        Op::Kill { .. } => "kill",
        Op::Exec { .. } => "exec",
    }
}

fn record(out: Out<'_>, s: &Step, done: bool) {
    let json = serde_json::json!({"op": verb(&s.op), "target": target(&s.op), "reason": s.reason, "done": done});
    out.record(json, format!("{} {} ({})", verb(&s.op), target(&s.op), s.reason));
}

/// The images of the map's containers that imgtool reads or builds itself, by source: those
/// of the containers in `wanted` read or built (once, for every engine; built layers live in
/// `spool`), the others `None`.
async fn read_images(
    map: &ContainerMap,
    wanted: &BTreeSet<String>,
    base: &Path,
    spool: &Path,
    reg: &Registries,
    p: Printer,
) -> Result<BTreeMap<String, Option<Image>>> {
    let mut images = BTreeMap::new();
    for (cfg, c) in &map.containers {
        let Some(given) = c.image.clone().filter(|i| own(i, base)) else { continue };
        if !wanted.contains(cfg) {
            images.entry(given).or_insert(None);
            continue;
        }
        if images.get(&given).is_some_and(Option::is_some) {
            continue;
        }
        let image = if let Some(file) = given.strip_prefix("pipe:") {
            p.status(format!("running the pipeline {file}"));
            crate::pipe_cmd::pipeline_image(&base.join(file), spool, p, reg).await
        } else if let Some(dir) = given.strip_prefix("build:") {
            p.status(format!("building {dir}"));
            crate::build_cmd::context_image(&base.join(dir), reg, spool).await
        } else {
            let t = Transport::parse(&given, base, crate::transport::Role::Source)?;
            crate::commands::load(&t, None, Flavor::Docker, reg).await
        };
        images.insert(given.clone(), Some(image.with_context(|| format!("container {cfg}: {given}"))?));
    }
    Ok(images)
}

/// Put the images the map takes from imgtool (`images`) into the engine, unless it has them,
/// named by their config digest, and point the map at those names: a changed source is a
/// changed name, so `update` re-creates exactly the containers on it. Sources not read get
/// a name the engine need not have (the action does not create their containers).
async fn bring_images(
    map: &mut ContainerMap,
    engine: &DockerEngine,
    images: &BTreeMap<String, Option<Image>>,
    load: bool,
    out: Out<'_>,
) -> Result<()> {
    let mut loaded = BTreeSet::new();
    let configs: Vec<String> = map.containers.keys().cloned().collect();
    for cfg in configs {
        let Some(given) = map.containers[&cfg].image.clone() else { continue };
        let name = match images.get(&given) {
            None => continue,
            Some(None) => format!("imgtool.local/{}/{}", map.name.to_lowercase(), cfg.to_lowercase()),
            Some(Some(image)) => {
                let id = image.config_blob().0.digest;
                let name = format!("imgtool.local/{}:{}", map.name.to_lowercase(), &id.hex()[..12]);
                let has = !load
                    || loaded.contains(&name)
                    || engine.image_id(&name).await?.is_some_and(|have| have.trim_start_matches("sha256:") == id.hex());
                if !has {
                    out.status(format!("loading {given} into {} as {name}", engine.describe()));
                    load_into(image, &name, engine).await.with_context(|| format!("container {cfg}: loading {given}"))?;
                }
                loaded.insert(name.clone());
                name
            }
        };
        if let Some(c) = map.containers.get_mut(&cfg) {
            c.image = Some(name);
        }
    }
    Ok(())
}

/// Stream `image` into the engine as a docker-save tarball written as it is read: nothing
/// goes to disk.
async fn load_into(image: &Image, name: &str, engine: &DockerEngine) -> Result<()> {
    let (reader, writer) = tokio::io::duplex(1 << 20);
    let out = Box::new(tokio_util::io::SyncIoBridge::new(writer));
    let sink = imgtool_archive::LayoutSink::docker_archive_to(out, &format!("the image load into {}", engine.describe()))?;
    let write = async move {
        match copy_image(image, &sink, &CopyOptions { tags: vec![name.to_string()], jobs: 4, progress: None }).await {
            Ok(_) => Box::new(sink).finish().await,
            Err(e) => {
                // Dropping the sink ends its tar, which writes into the pipe: not on a
                // runtime thread, where a blocking write cannot wait.
                let _ = tokio::task::spawn_blocking(move || drop(sink)).await;
                Err(e)
            }
        }
    };
    let stream = tokio_util::io::ReaderStream::new(reader).boxed();
    let (written, loaded) = tokio::join!(write, engine.load(stream));
    // The writer's error first: an engine that read half a tarball only says that.
    written?;
    loaded?;
    Ok(())
}

/// docker-map's housekeeping, on the whole engine.
async fn housekeeping(action: MapAction, engine: &DockerEngine, out: Out<'_>) -> Result<()> {
    let (what, gone) = match action {
        MapAction::CleanupContainers => ("container", imgtool_maps::cleanup_containers(engine).await?),
        MapAction::CleanupImages => ("image", imgtool_maps::cleanup_images(engine).await?),
        _ => ("container", imgtool_maps::remove_all_containers(engine, None).await?),
    };
    for g in &gone {
        out.record(serde_json::json!({"removed": g, "kind": what}), format!("removed {what} {g}"));
    }
    if gone.is_empty() {
        out.status(format!("{}: nothing to remove", engine.describe()));
    }
    Ok(())
}

pub async fn run(args: MapArgs, p: Printer, reg: &Registries) -> Result<()> {
    let clients = match &args.clients {
        Some(f) => imgtool_maps::load_clients(f)?,
        None => Clients::new(),
    };
    let client = |name: &str| -> Result<ClientConfig> {
        match clients.get(name) {
            Some(c) => Ok(c.clone()),
            None if name == DEFAULT_CLIENT => Ok(ClientConfig::default()),
            None => match &args.clients {
                Some(f) => bail!("the map runs containers on client {name}, which {} does not define", f.display()),
                None => bail!("the map runs containers on client {name}: name the file that says where it is with --clients FILE"),
            },
        }
    };
    if matches!(args.action, MapAction::CleanupContainers | MapAction::CleanupImages | MapAction::RemoveAllContainers) {
        if let Some(f) = &args.file {
            bail!("{:?} works on the whole engine and reads no map; {} is one too many", args.action, f.display());
        }
        // Every engine the clients file names (and --host's, when given), else the default one.
        let mut names: Vec<String> = clients.keys().cloned().collect();
        if names.is_empty() || (args.host.is_some() && !clients.contains_key(DEFAULT_CLIENT)) {
            names.insert(0, DEFAULT_CLIENT.into());
        }
        for name in &names {
            let engine = DockerEngine::connect_client(args.host.as_deref(), &client(name)?).await?;
            let out = Out { p, client: (names.len() > 1).then_some(name.as_str()) };
            housekeeping(args.action, &engine, out).await?;
        }
        return Ok(());
    }
    let Some(file) = args.file.clone() else { bail!("name the map file: imgtool map {:?} MAP.yml", args.action) };
    let map = ContainerMap::load(&file)?.resolved().with_context(|| format!("reading {}", file.display()))?;
    let chosen = map.targets(&args.targets)?;
    let used = map.clients_used();
    let mut parts = Vec::new();
    // Every client defined before any is looked at: the first error is the file's.
    let configs = used.iter().map(|n| client(n).map(|c| (n, c))).collect::<Result<Vec<_>>>()?;
    for (name, config) in &configs {
        let part = map.for_client(name, config)?;
        let here = map.units_on(&chosen, name);
        match args.targets.is_empty() {
            true => parts.push((name.as_str(), config, part, Vec::new())),
            // Targets named, none of them here: this engine has nothing to do.
            false if here.is_empty() => {}
            false => parts.push((name.as_str(), config, part, here)),
        }
    }
    let many = used.len() > 1;
    // Every engine answers before any acts: an unreachable one stops the action everywhere.
    let host = args.host.as_deref();
    let engines = futures::future::join_all(parts.iter().map(|(name, config, _, _)| async move {
        DockerEngine::connect_client(host, config).await.with_context(|| format!("client {name}"))
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    // Two clients on one engine would race to create the same networks and volumes.
    for (i, e) in engines.iter().enumerate() {
        if let Some(j) = engines[..i].iter().position(|o| o.describe() == e.describe()) {
            bail!("clients {} and {} are the same engine ({}); a map runs once per engine", parts[j].0, parts[i].0, e.describe());
        }
    }
    for (name, config, _, _) in &parts {
        let ignored = config.ignored();
        if !ignored.is_empty() {
            p.status(format!("client {name}: {} read and not used (imgtool has no use for them)", ignored.join(", ")));
        }
    }
    // Only what may create a container needs its image, and only that container's: taking
    // containers down or starting them needs none. Planning needs them to know whether they
    // changed.
    let wanted: BTreeSet<String> = match action(&args) {
        Some(a @ (Action::Startup | Action::Create | Action::Update)) => {
            imgtool_maps::units_for(&map, &a, chosen.clone())?.into_iter().map(|u| u.config).collect()
        }
        _ => BTreeSet::new(),
    };
    let spool = imgtool_core::spool().context("creating a spool directory")?;
    let base = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let images = read_images(&map, &wanted, base, spool.path(), reg, p).await?;
    let work = parts.into_iter().zip(&engines).map(|((name, _, part, targets), engine)| {
        let out = Out { p, client: many.then_some(name) };
        let (args, file, images) = (&args, &file, &images);
        async move {
            // Engine errors name the engine; with several, say which client it is.
            let r = on_engine(args, part, targets, file, engine, images, out).await;
            if many { r.with_context(|| format!("client {name}")) } else { r }
        }
    });
    let mut failed = None;
    for r in futures::future::join_all(work).await {
        if let Err(e) = r {
            if let Some(first) = failed.replace(e) {
                p.error(format!("{first:#}"));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The planner's action for the command (`plan` and `status` look at what `update` would
/// do); none for the housekeeping that reads no map.
fn action(args: &MapArgs) -> Option<Action> {
    Some(match args.action {
        MapAction::Startup => Action::Startup,
        MapAction::Update | MapAction::Plan | MapAction::Status => Action::Update,
        MapAction::Shutdown => Action::Shutdown,
        MapAction::Stop => Action::Stop,
        MapAction::Restart => Action::Restart,
        MapAction::Remove => Action::Remove,
        MapAction::Create => Action::Create,
        MapAction::Start => Action::Start,
        MapAction::Kill => Action::Kill(args.signal.clone()),
        MapAction::Exec => Action::Exec,
        MapAction::CleanupContainers | MapAction::CleanupImages | MapAction::RemoveAllContainers => return None,
    })
}

/// The action on one engine, for the part of the map that runs there.
async fn on_engine(
    args: &MapArgs,
    mut map: ContainerMap,
    targets: Vec<String>,
    file: &Path,
    engine: &DockerEngine,
    images: &BTreeMap<String, Option<Image>>,
    out: Out<'_>,
) -> Result<()> {
    let load = !matches!(args.action, MapAction::Plan | MapAction::Status);
    bring_images(&mut map, engine, images, load, out).await?;
    let seen = observe(&map, engine).await?;
    let Some(action) = action(args) else { return housekeeping(args.action, engine, out).await };
    if args.action == MapAction::Status {
        for unit in map.targets(&targets)? {
            let name = unit.container_name(&map);
            let steps = plan(&map, &Action::Update, &[unit.id()], &seen)?;
            let differs: Vec<&str> =
                steps.iter().filter(|s| target(&s.op) == name && matches!(s.op, Op::Create { .. })).map(|s| s.reason.as_str()).collect();
            let state = seen.containers.get(&name).map_or_else(|| "missing".to_string(), |c| format!("{:?}", c.state).to_lowercase());
            let differs = if differs.is_empty() { "as the map says".to_string() } else { differs.join("; ") };
            out.record(
                serde_json::json!({"container": name, "state": state, "image": map.image_of(&unit.config), "differs": differs}),
                format!("{name}  {state}  {}  {differs}", map.image_of(&unit.config)),
            );
        }
        return Ok(());
    }
    let steps = plan(&map, &action, &targets, &seen)?;
    if args.action == MapAction::Plan {
        for s in &steps {
            record(out, s, false);
        }
        if steps.is_empty() {
            out.status(format!("{}: nothing to do", map.name));
        }
        return Ok(());
    }
    let opts = RunOptions { wait_healthy: args.wait.map(Duration::from_secs) };
    execute(&map, engine, &steps, &opts, &mut |s| record(out, s, true))
        .await
        .with_context(|| format!("map {} from {}", map.name, file.display()))?;
    if steps.is_empty() {
        out.status(format!("{}: nothing to do", map.name));
    }
    Ok(())
}
