//! The executor: what an engine has of a map ([`observe`]), and a plan run against it
//! ([`execute`]), step by step, stopping at the first failure with the container, engine and
//! call named. A failed `create` or `start` of a container leaves no container of that step.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::engine::{Engine, Health};
use crate::model::ContainerMap;
use crate::plan::{Observed, Op, Step, VolumeSpecOut};
use crate::spec::MAP_LABEL;

/// Where a new volume is mounted in the container that sets its owner and mode.
const PREPARE_MOUNT: &str = "imgtool-volume";

/// What the engine has of `map`: its containers (by their map label), and the image id of
/// every image the map names.
pub async fn observe(map: &ContainerMap, engine: &dyn Engine) -> Result<Observed, Error> {
    let mut seen = Observed::default();
    for c in engine.containers(MAP_LABEL, &map.name).await? {
        seen.containers.insert(c.name.clone(), c);
    }
    seen.volumes = engine.volumes(MAP_LABEL, &map.name).await?.into_iter().collect();
    seen.networks = engine.networks(MAP_LABEL, &map.name).await?.into_iter().collect();
    for config in map.containers.keys() {
        let image = map.image_of(config);
        if let std::collections::btree_map::Entry::Vacant(e) = seen.images.entry(image) {
            let id = engine.image_id(e.key()).await?;
            e.insert(id);
        }
    }
    Ok(seen)
}

/// How [`execute`] runs a plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Wait at most this long for each started container with a health check to be healthy
    /// before going on (`startup --wait`).
    pub wait_healthy: Option<Duration>,
}

/// Run `steps` on `engine`; `done` hears of each step as it completes. Each container's
/// steps run in order; containers run side by side unless one depends on the other (the
/// plan's order is kept between those). When a step fails, nothing new is begun, and the
/// containers, volumes and networks this run created are removed again (newest first), so a
/// failed startup leaves nothing of itself behind.
pub async fn execute(
    map: &ContainerMap,
    engine: &dyn Engine,
    steps: &[Step],
    opts: &RunOptions,
    done: &mut (dyn FnMut(&Step) + Send),
) -> Result<(), Error> {
    let run = Run { map, engine, opts, done: Mutex::new(done), made: Mutex::new(Made::default()), failed: AtomicBool::new(false) };
    let outcome = run.steps(steps).await;
    if outcome.is_err() {
        let made = run.made.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        for name in made.containers.iter().rev() {
            if let Err(e) = engine.remove(name).await {
                tracing::warn!(container = %name, error = %e, "could not remove what the failed run created");
            }
        }
        for v in made.volumes.iter().rev() {
            if let Err(e) = engine.remove_volume(v).await {
                tracing::warn!(volume = %v, error = %e, "could not remove what the failed run created");
            }
        }
        for n in made.networks.iter().rev() {
            if let Err(e) = engine.remove_network(n).await {
                tracing::warn!(network = %n, error = %e, "could not remove what the failed run created");
            }
        }
    }
    outcome
}

/// What a run created.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One execution of a plan.
struct Run<'a> {
    map: &'a ContainerMap,
    engine: &'a dyn Engine,
    opts: &'a RunOptions,
    done: Mutex<&'a mut (dyn FnMut(&Step) + Send)>,
    made: Mutex<Made>,
    /// Set by the first failure: no step begins after it.
    failed: AtomicBool,
}

/// A container's readiness, as the containers after it wait for it.
type Signal = (tokio::sync::watch::Sender<Option<bool>>, tokio::sync::watch::Receiver<Option<bool>>);

impl Run<'_> {
    fn fail(&self, e: Error) -> Error {
        self.failed.store(true, Ordering::Relaxed);
        e
    }

    async fn steps(&self, steps: &[Step]) -> Result<(), Error> {
        // Networks first, for everyone; then a group per container, its volumes first.
        let mut groups: Vec<(String, Vec<&Step>)> = Vec::new();
        let mut pending_volumes: Vec<&Step> = Vec::new();
        for step in steps {
            match &step.op {
                Op::Network { name, body } => {
                    if self.engine.ensure_network(name, body).await? {
                        lock(&self.made).networks.push(name.clone());
                    }
                    (lock(&self.done))(step);
                }
                Op::Volume(_) => pending_volumes.push(step),
                Op::Create { name, .. }
                | Op::Start { name }
                | Op::Stop { name, .. }
                | Op::Remove { name }
                | Op::Kill { name, .. }
                | Op::Exec { name, .. } => match groups.iter_mut().find(|(n, _)| n == name) {
                    Some((_, g)) => g.push(step),
                    None => {
                        let mut g = std::mem::take(&mut pending_volumes);
                        g.push(step);
                        groups.push((name.clone(), g));
                    }
                },
            }
        }
        if !pending_volumes.is_empty() {
            groups.push((String::new(), pending_volumes));
        }
        let units: BTreeMap<String, crate::Unit> = self.map.units().into_iter().map(|u| (u.container_name(self.map), u)).collect();
        let related = |a: &str, b: &str| -> bool {
            let (Some(ua), Some(ub)) = (units.get(a), units.get(b)) else { return true };
            self.map.dependencies(ua).contains(ub) || self.map.dependencies(ub).contains(ua)
        };
        // Two signals per container: created (a container that needs it may be created) and
        // finished (one that needs it may start). Creating does not wait for starting.
        let created: Vec<Signal> = groups.iter().map(|_| tokio::sync::watch::channel(None)).collect();
        let finished: Vec<Signal> = groups.iter().map(|_| tokio::sync::watch::channel(None)).collect();
        let work = groups.iter().enumerate().map(|(i, (name, group))| {
            let before: Vec<usize> = (0..i).filter(|&j| related(&groups[j].0, name)).collect();
            let wait_created: Vec<_> = before.iter().map(|&j| created[j].1.clone()).collect();
            let wait_finished: Vec<_> = before.iter().map(|&j| finished[j].1.clone()).collect();
            let (tell_created, tell_finished) = (&created[i].0, &finished[i].0);
            async move {
                let r = self.group(group, wait_created, wait_finished, tell_created).await;
                let _ = tell_created.send(Some(r.is_ok()));
                let _ = tell_finished.send(Some(r.is_ok()));
                r
            }
        });
        let results = futures::future::join_all(work).await;
        results.into_iter().find_map(|r| r.err().filter(|e| !matches!(e, Error::Skipped))).map_or(Ok(()), Err)
    }

    /// One container's steps. A new container (its create first) waits only for what it
    /// needs to exist; everything else waits for what it needs to be done.
    async fn group(
        &self,
        group: &[&Step],
        wait_created: Vec<tokio::sync::watch::Receiver<Option<bool>>>,
        wait_finished: Vec<tokio::sync::watch::Receiver<Option<bool>>>,
        tell_created: &tokio::sync::watch::Sender<Option<bool>>,
    ) -> Result<(), Error> {
        let create = group.iter().position(|s| matches!(s.op, Op::Create { .. }));
        let fresh = create.is_some() && group.iter().position(|s| !matches!(s.op, Op::Volume(_))) == create;
        let mut new_volumes = Vec::new();
        let rest = match create {
            Some(k) => {
                all_ok(if fresh { wait_created } else { wait_finished.clone() }).await?;
                self.run(&group[..=k], &mut new_volumes).await?;
                &group[k + 1..]
            }
            None => group,
        };
        let _ = tell_created.send(Some(true));
        all_ok(wait_finished).await?;
        self.run(rest, &mut new_volumes).await
    }

    async fn run(&self, steps: &[&Step], new_volumes: &mut Vec<Fresh>) -> Result<(), Error> {
        for step in steps {
            if self.failed.load(Ordering::Relaxed) {
                return Err(Error::Skipped);
            }
            self.step(step, new_volumes).await.map_err(|e| self.fail(e))?;
            (lock(&self.done))(step);
        }
        Ok(())
    }

    async fn step(&self, step: &Step, new_volumes: &mut Vec<Fresh>) -> Result<(), Error> {
        let (map, engine) = (self.map, self.engine);
        match &step.op {
            Op::Network { .. } => {}
            Op::Volume(v) => {
                let owner = v
                    .owner
                    .as_deref()
                    .map(owner)
                    .transpose()
                    .map_err(|why| Error::Invalid { map: map.name.clone(), why: format!("volume {}: {why}", v.name) })?;
                if engine.ensure_volume(v, owner).await? {
                    lock(&self.made).volumes.push(v.name.clone());
                    if v.owner.is_some() || v.mode.is_some() {
                        let f = fresh(map, v)?;
                        prepare_volume(map, engine, v, &f, &self.made).await?;
                        new_volumes.push(f);
                    }
                }
            }
            Op::Create { name, body } => {
                engine.create(name, body).await?;
                lock(&self.made).containers.push(name.clone());
                // Volumes it attaches that exist already get its owner and mode again, as new
                // ones do, before it starts (and again once it runs, for podman): they may
                // have changed, and that re-created it.
                if let Some(unit) = unit_named(map, name) {
                    for v in map.volume_specs(&unit.config).into_iter().filter(|v| v.owner.is_some() || v.mode.is_some()) {
                        let v: VolumeSpecOut = v.into();
                        let f = fresh(map, &v)?;
                        if !new_volumes.iter().any(|n| n.path == f.path && n.config == f.config) {
                            prepare_volume(map, engine, &v, &f, &self.made).await?;
                            new_volumes.push(f);
                        }
                    }
                }
            }
            Op::Start { name } => {
                engine.start(name).await?;
                let unit = unit_named(map, name);
                let config = unit.as_ref().map(|u| u.config.clone());
                let (mine, rest): (Vec<Fresh>, Vec<Fresh>) =
                    std::mem::take(new_volumes).into_iter().partition(|f| Some(&f.config) == config.as_ref());
                *new_volumes = rest;
                settle_volumes(engine, name, &mine).await?;
                let check = unit.and_then(|u| map.containers.get(&u.config).and_then(|c| c.healthcheck.clone()));
                if let (Some(limit), Some(check)) = (self.opts.wait_healthy, check) {
                    wait_healthy(engine, name, name, &check, limit).await?;
                }
            }
            Op::Stop { name, timeout, signal } => match signal.as_deref() {
                None | Some("SIGTERM") | Some("TERM") | Some("15") => engine.stop(name, *timeout).await?,
                Some(sig) => {
                    engine.kill(name, sig).await?;
                    engine.stop(name, *timeout).await?;
                }
            },
            Op::Remove { name } => engine.remove(name).await?,
            Op::Kill { name, signal } => engine.kill(name, signal).await?,
            Op::Exec { name, cmd, user } => {
                let out = engine.exec(name, cmd, user.as_deref()).await?;
                if out.code != 0 {
                    return Err(Error::Exec { container: name.clone(), cmd: cmd.clone(), code: out.code, output: out.output });
                }
            }
        }
        Ok(())
    }
}

/// The unit whose container is `name`.
fn unit_named(map: &ContainerMap, name: &str) -> Option<crate::Unit> {
    map.units().into_iter().find(|u| u.container_name(map) == name)
}

/// Wait for every signal: an error when one of them failed.
async fn all_ok(waits: Vec<tokio::sync::watch::Receiver<Option<bool>>>) -> Result<(), Error> {
    for mut w in waits {
        if !matches!(w.wait_for(Option::is_some).await.map(|v| *v), Ok(Some(true))) {
            return Err(Error::Skipped);
        }
    }
    Ok(())
}

async fn wait_healthy(engine: &dyn Engine, id: &str, name: &str, check: &crate::model::HealthCheck, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    // Where the engine leaves checks alone, run the check's command ourselves, as it would.
    let cmd: Option<Vec<String>> = match check.test.split_first() {
        _ if engine.runs_healthchecks() => None,
        Some((kind, rest)) if kind == "CMD" => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            Some(["/bin/sh".to_string(), "-c".to_string()].into_iter().chain(rest.iter().cloned()).collect())
        }
        _ => return Ok(()),
    };
    let pause = Duration::from_nanos(check.interval.unwrap_or(0).clamp(100_000_000, 5_000_000_000) as u64);
    let mut last;
    loop {
        match &cmd {
            None => match engine.health(id).await? {
                Health::Healthy | Health::None => return Ok(()),
                h => last = format!("{h:?}").to_lowercase(),
            },
            Some(cmd) => {
                // A check's own limit (Docker's default, 30 s, when it has none) bounds it.
                let limit = Duration::from_nanos(check.timeout.unwrap_or(30_000_000_000).clamp(1_000_000, 3_600_000_000_000) as u64);
                let out = match tokio::time::timeout(limit, engine.exec(id, cmd, None)).await {
                    Ok(out) => out?,
                    Err(_) => crate::engine::ExecOutcome { code: -1, output: format!("no answer within {} s", limit.as_secs()) },
                };
                if out.code == 0 {
                    return Ok(());
                }
                last = format!("its check exited with {}: {}", out.code, out.output.trim());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Unhealthy { container: name.into(), seconds: limit.as_secs(), state: last });
        }
        tokio::time::sleep(pause.min(Duration::from_millis(250))).await;
    }
}

/// A new volume's owner and mode, and where its owner mounts it.
struct Fresh {
    config: String,
    path: String,
    uid: u32,
    gid: u32,
    mode: u32,
}

/// A one-entry tar: the directory `name` with that owner and mode.
fn dir_tar(name: &str, f: &Fresh) -> Result<Vec<u8>, std::io::Error> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_uid(f.uid.into());
    h.set_gid(f.gid.into());
    h.set_mode(f.mode);
    h.set_size(0);
    tar.append_data(&mut h, format!("{name}/"), std::io::empty())?;
    tar.into_inner()
}

fn fresh(map: &ContainerMap, v: &VolumeSpecOut) -> Result<Fresh, Error> {
    let fail = |why: String| Error::Invalid { map: map.name.clone(), why: format!("volume {}: {why}", v.name) };
    let (config, path) = map
        .containers
        .iter()
        .find_map(|(cfg, c)| {
            let a = c.attaches.iter().find(|a| crate::spec::volume_name(map, cfg, &a.alias) == v.name)?;
            let path = a.path.clone().or_else(|| map.volumes.get(&a.alias).and_then(|v| v.default_path.clone()))?;
            Some((cfg.clone(), path))
        })
        .ok_or_else(|| fail("no container attaches it".into()))?;
    let (uid, gid) = match &v.owner {
        Some(o) => owner(o).map_err(fail)?,
        None => (0, 0),
    };
    let mode = match &v.mode {
        Some(m) => mode(m, 0o755).map_err(fail)?,
        None => 0o755,
    };
    Ok(Fresh { config, path, uid, gid, mode })
}

/// Set a new volume's owner and mode without running anything: a container of the map's own
/// image that mounts the volume is created and never started, and the engine extracts a
/// one-entry tar (the mount point, with that owner and mode) onto it.
async fn prepare_volume(map: &ContainerMap, engine: &dyn Engine, v: &VolumeSpecOut, f: &Fresh, made: &Mutex<Made>) -> Result<(), Error> {
    let tar = dir_tar(PREPARE_MOUNT, f).map_err(|e| Error::Invalid { map: map.name.clone(), why: e.to_string() })?;
    let body = serde_json::json!({
        "Image": map.image_of(&f.config),
        "Entrypoint": ["/imgtool-never-started"],
        // Not the map's label: a helper left behind is not one of the map's containers.
        "Labels": {"io.imgtool.map.volume-helper": v.name},
        "HostConfig": {"Binds": [format!("{}:/{PREPARE_MOUNT}:rw", v.name)], "NetworkMode": "none"},
    });
    // No name: one left behind by a crash must not block the next run.
    let id = engine.create("", &body).await?;
    lock(made).containers.push(id.clone());
    let put = engine
        .put_archive(&id, "/", tar)
        .await
        .map_err(|e| Error::Invalid { map: map.name.clone(), why: format!("volume {}: setting its owner and mode: {e}", v.name) });
    engine.remove(&id).await?;
    lock(made).containers.retain(|c| *c != id);
    put
}

/// Once the owner of new volumes runs, set their mode again through it: podman extracts
/// into a stopped container's own mount point, not onto the volume.
async fn settle_volumes(engine: &dyn Engine, id: &str, fresh: &[Fresh]) -> Result<(), Error> {
    for f in fresh {
        let p = std::path::Path::new(&f.path);
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else { continue };
        let tar = dir_tar(&name.to_string_lossy(), f).map_err(|e| Error::Engine {
            engine: engine.describe(),
            call: "put archive",
            target: id.into(),
            why: e.to_string(),
        })?;
        engine.put_archive(id, &parent.to_string_lossy(), tar).await?;
    }
    Ok(())
}

/// `uid` or `uid:gid` (a lone uid is also the group, as docker-map has it).
fn owner(s: &str) -> Result<(u32, u32), String> {
    let num =
        |p: &str| p.parse::<u32>().map_err(|_| format!("owner {s:?}: give numbers (uid or uid:gid); names mean nothing outside the image"));
    match s.split_once(':') {
        Some((u, g)) => Ok((num(u)?, num(g)?)),
        None => Ok((num(s)?, num(s)?)),
    }
}

/// A `chmod` mode for a directory: octal, or symbolic (`u=rwX,g=rX,o=`), from `base`.
pub(crate) fn mode(s: &str, base: u32) -> Result<u32, String> {
    if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return u32::from_str_radix(s, 8)
            .map_err(|_| format!("mode {s:?} is too large"))
            .and_then(|m| if m > 0o7777 { Err(format!("mode {s:?} is too large")) } else { Ok(m) });
    }
    let bad = || format!("mode {s:?}: expected octal (750) or clauses like u=rwX,g=rX,o=");
    let mut m = base;
    for clause in s.split(',') {
        let op_at = clause.find(['=', '+', '-']).ok_or_else(bad)?;
        let (who, rest) = clause.split_at(op_at);
        let (op, perms) = rest.split_at(1);
        let mut mask = 0;
        for w in if who.is_empty() { "a".chars() } else { who.chars() } {
            mask |= match w {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o0007,
                'a' => 0o6777,
                _ => return Err(bad()),
            };
        }
        let mut bits = 0;
        for p in perms.chars() {
            // A directory: X is x.
            bits |= match p {
                'r' => 0o444,
                'w' => 0o222,
                'x' | 'X' => 0o111,
                's' => 0o6000,
                't' => 0o1000,
                _ => return Err(bad()),
            };
        }
        let bits = bits & mask;
        m = match op {
            "=" => (m & !(mask & 0o777)) | bits,
            "+" => m | bits,
            _ => m & !bits,
        };
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_chmod_reads_them_for_a_directory() {
        assert_eq!(mode("u=rwX,g=rX,o=", 0o755), Ok(0o750));
        assert_eq!(mode("750", 0o755), Ok(0o750));
        assert_eq!(mode("o+w", 0o755), Ok(0o757));
        assert_eq!(mode("go-rx", 0o755), Ok(0o700));
        assert!(mode("u=rwq", 0o755).is_err());
        assert!(mode("99999", 0o755).is_err());
        assert_eq!(owner("2000"), Ok((2000, 2000)));
        assert_eq!(owner("1:2"), Ok((1, 2)));
        assert!(owner("www-data").is_err());
    }
}
