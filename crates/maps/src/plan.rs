//! The planner: a pure function of (map, action, targets, what the engine has) to the steps
//! that bring the engine to what the map says, each with its reason. `imgtool map plan`
//! prints them; the executor runs them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::engine::{RunState, Seen};
use crate::model::{Command, ContainerMap, ExecPolicy};
use crate::options::split;
use crate::spec::{CONFIG_LABEL, VolumeSpec};
use crate::units::Unit;

/// Exit codes after which docker-map re-creates rather than restarts a container.
const NONRECOVERABLE: [i64; 2] = [-127, -1];

/// What to do to a map's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create what is missing, with what it needs.
    Create,
    /// Start what is stopped, with what it needs.
    Start,
    /// Create and start, with what it needs (docker-map's `startup`).
    Startup,
    /// Re-create what no longer matches the map, start the rest (docker-map's `update`).
    Update,
    /// Stop, dependents first.
    Stop,
    /// Stop and remove, dependents first (docker-map's `shutdown`).
    Shutdown,
    /// Remove what is stopped, dependents first.
    Remove,
    /// Stop and start the containers named.
    Restart,
    /// Send a signal to the containers named.
    Kill(String),
    /// Run the map's exec commands (all of them) in the running containers named.
    Exec,
}

/// One engine call of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Create a network unless it exists.
    Network {
        /// Its name.
        name: String,
        /// The Engine API create body.
        body: Value,
    },
    /// Create an attached volume unless it exists, and set its owner and mode when it is new.
    Volume(VolumeSpecOut),
    /// Create a container.
    Create {
        /// Its name.
        name: String,
        /// The Engine API create body.
        body: Value,
    },
    /// Start a container.
    Start {
        /// Its name.
        name: String,
    },
    /// Stop a container.
    Stop {
        /// Its name.
        name: String,
        /// Seconds to wait.
        timeout: Option<i64>,
        /// The signal, when not SIGTERM.
        signal: Option<String>,
    },
    /// Remove a container.
    Remove {
        /// Its name.
        name: String,
    },
    /// Send a signal.
    Kill {
        /// Its name.
        name: String,
        /// The signal.
        signal: String,
    },
    /// Run one of the map's exec commands.
    Exec {
        /// The container.
        name: String,
        /// The command.
        cmd: Vec<String>,
        /// Who runs it.
        user: Option<String>,
    },
}

/// A volume as a plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeSpecOut {
    /// Its name on the engine.
    pub name: String,
    /// Its driver.
    pub driver: Option<String>,
    /// The driver's options.
    pub driver_options: BTreeMap<String, String>,
    /// Owner to set when made.
    pub owner: Option<String>,
    /// Mode to set when made.
    pub mode: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl From<VolumeSpec> for VolumeSpecOut {
    fn from(v: VolumeSpec) -> Self {
        Self { name: v.name, driver: v.driver, driver_options: v.driver_options, owner: v.owner, mode: v.mode, labels: v.labels }
    }
}

/// A step: what, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The call.
    #[serde(flatten)]
    pub op: Op,
    /// Why it is needed.
    pub reason: String,
}

/// What the engine has that the planner needs: the map's containers by name, and the image
/// id each image reference names there (`None`: the engine lacks it).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The map's containers, by name.
    pub containers: BTreeMap<String, Seen>,
    /// Image ids, by reference.
    pub images: BTreeMap<String, Option<String>>,
    /// The map's volumes there.
    pub volumes: BTreeSet<String>,
    /// The map's networks there.
    pub networks: BTreeSet<String>,
}

fn running(s: Option<&Seen>) -> bool {
    s.is_some_and(|s| s.state == RunState::Running)
}

/// The plan for `action` on the containers `targets` name (all, when none) of the resolved
/// map, given what the engine has.
pub fn plan(map: &ContainerMap, action: &Action, targets: &[String], seen: &Observed) -> Result<Vec<Step>, Error> {
    let units = units_for(map, action, map.targets(targets)?)?;
    let mut steps = Vec::new();
    let mut made_networks = BTreeSet::new();
    let mut recreated: BTreeSet<Unit> = BTreeSet::new();
    for unit in &units {
        let name = unit.container_name(map);
        let c = &map.containers[&unit.config];
        let s = seen.containers.get(&name);
        let step = |op: Op, reason: &str| Step { op, reason: reason.to_string() };
        let stop = Op::Stop { name: name.clone(), timeout: c.stop_timeout, signal: c.stop_signal.clone() };
        match action {
            Action::Create | Action::Startup | Action::Update | Action::Start => {
                if *action != Action::Start {
                    for e in &c.networks {
                        let n = map.network_name(&e.network);
                        if map.networks.contains_key(&e.network) && !seen.networks.contains(&n) && made_networks.insert(n.clone()) {
                            let body = map
                                .network_body(&e.network)
                                .map_err(|why| Error::Invalid { map: map.name.clone(), why: format!("{}: {why}", unit.id()) })?;
                            steps.push(step(Op::Network { name: n, body }, "a network the container joins"));
                        }
                    }
                    for v in map.volume_specs(&unit.config).into_iter().filter(|v| !seen.volumes.contains(&v.name)) {
                        steps.push(step(Op::Volume(v.into()), "missing; the container attaches it"));
                    }
                }
                let reasons = if *action == Action::Update { update_reasons(map, unit, s, seen, &recreated)? } else { Vec::new() };
                let create = |steps: &mut Vec<Step>, why: &str| -> Result<(), Error> {
                    let body = map
                        .create_body(unit)
                        .map_err(|why| Error::Invalid { map: map.name.clone(), why: format!("{}: {why}", unit.id()) })?;
                    steps.push(step(Op::Create { name: name.clone(), body }, why));
                    Ok(())
                };
                match s {
                    None if *action == Action::Start => {}
                    None => {
                        create(&mut steps, "missing")?;
                        recreated.insert(unit.clone());
                        if *action != Action::Create {
                            steps.push(step(Op::Start { name: name.clone() }, "created"));
                            exec_steps(map, unit, &name, true, &mut steps);
                        }
                    }
                    Some(_) if !reasons.is_empty() => {
                        let why = reasons.join("; ");
                        if running(s) {
                            steps.push(step(stop.clone(), &why));
                        }
                        steps.push(step(Op::Remove { name: name.clone() }, &why));
                        create(&mut steps, &why)?;
                        recreated.insert(unit.clone());
                        steps.push(step(Op::Start { name: name.clone() }, "re-created"));
                        exec_steps(map, unit, &name, true, &mut steps);
                    }
                    Some(s) if s.state != RunState::Running && *action != Action::Create => {
                        steps.push(step(Op::Start { name: name.clone() }, "stopped"));
                        exec_steps(map, unit, &name, s.state == RunState::Created, &mut steps);
                    }
                    Some(_) => {}
                }
            }
            Action::Stop => {
                if running(s) {
                    steps.push(step(stop, "running"));
                }
            }
            Action::Shutdown => {
                if running(s) {
                    steps.push(step(stop, "running"));
                }
                if s.is_some() {
                    steps.push(step(Op::Remove { name: name.clone() }, "shut down"));
                }
            }
            Action::Remove => {
                if s.is_some() && !running(s) {
                    steps.push(step(Op::Remove { name: name.clone() }, "stopped"));
                }
            }
            Action::Restart => {
                if s.is_some_and(|s| s.state != RunState::Created) {
                    if running(s) {
                        steps.push(step(stop, "restart"));
                    }
                    steps.push(step(Op::Start { name: name.clone() }, "restart"));
                    exec_steps(map, unit, &name, false, &mut steps);
                }
            }
            Action::Exec => {
                if running(s) {
                    exec_steps(map, unit, &name, true, &mut steps);
                }
            }
            Action::Kill(signal) => {
                if running(s) {
                    steps.push(step(Op::Kill { name: name.clone(), signal: signal.clone() }, "asked"));
                }
            }
        }
    }
    Ok(steps)
}

/// The units `action` on `chosen` acts on: with what they need when it brings them up, with
/// what needs them when it takes them down.
pub fn units_for(map: &ContainerMap, action: &Action, chosen: Vec<Unit>) -> Result<Vec<Unit>, Error> {
    match action {
        Action::Create | Action::Start | Action::Startup => map.with_dependencies(&chosen),
        // What needs a re-created container is re-created with it: include it.
        Action::Update => map.with_dependencies(&map.with_dependents(&chosen)?),
        Action::Stop | Action::Shutdown | Action::Remove => map.with_dependents(&chosen),
        Action::Restart | Action::Kill(_) | Action::Exec => Ok(chosen),
    }
}

/// Why `update` must re-create `unit` (nothing: it may stay).
fn update_reasons(
    map: &ContainerMap,
    unit: &Unit,
    s: Option<&Seen>,
    seen: &Observed,
    recreated: &BTreeSet<Unit>,
) -> Result<Vec<String>, Error> {
    let Some(s) = s else { return Ok(Vec::new()) };
    let c = &map.containers[&unit.config];
    let mut why = Vec::new();
    let body = map.create_body(unit).map_err(|why| Error::Invalid { map: map.name.clone(), why: format!("{}: {why}", unit.id()) })?;
    if s.labels.get(CONFIG_LABEL).map(String::as_str) != body["Labels"][CONFIG_LABEL].as_str() {
        why.push("its configuration changed".to_string());
    }
    // The hash speaks for every network, but the others are joined after create: one
    // interrupted in between is on fewer than its label says.
    if let Some(endpoints) = body["NetworkingConfig"]["EndpointsConfig"].as_object()
        && !s.networks.is_empty()
        && let Some(missing) = endpoints.keys().find(|n| !s.networks.contains(*n))
    {
        why.push(format!("it is not on network {missing}"));
    }
    let image = map.image_of(&unit.config);
    let persistent = c.persistent == Some(true);
    if let Some(Some(id)) = seen.images.get(&image)
        && *id != s.image_id
        && !persistent
    {
        why.push(format!("{image} is now another image"));
    }
    if let RunState::Exited(code) = s.state
        && NONRECOVERABLE.contains(&code)
    {
        why.push(format!("it exited with {code}, which cannot be restarted"));
    }
    for d in map.dependencies(unit) {
        if recreated.contains(&d) {
            why.push(format!("{} is re-created", d.id()));
        } else if !seen.containers.contains_key(&d.container_name(map)) {
            why.push(format!("{} is missing", d.id()));
        }
    }
    Ok(why)
}

/// The exec commands to run after a start (`first`: the container's first start).
fn exec_steps(map: &ContainerMap, unit: &Unit, name: &str, first: bool, steps: &mut Vec<Step>) {
    let c = &map.containers[&unit.config];
    for e in &c.exec_commands {
        if e.policy == ExecPolicy::Initial && !first {
            continue;
        }
        let cmd = match &e.cmd {
            Command::Argv(a) => a.clone(),
            Command::Line(l) => split(l).unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), l.clone()]),
        };
        let user = e.user.clone().or_else(|| c.user.clone());
        steps.push(Step { op: Op::Exec { name: name.to_string(), cmd, user }, reason: "an exec command of the map".into() });
    }
}
