//! What the engine is asked to create for a container of the map: the Engine API create body,
//! built from the configuration the way docker-map builds docker-py's arguments, and the hash
//! of it that `update` compares (kept in a label, as compose does, because an engine's own
//! report of a container adds things the map never said).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::model::{Bind, ContainerConfig, ContainerMap, HostPath, NetworkMode};
use crate::options::{Place, merge_into, translate};
use crate::units::Unit;

/// The label naming the map a container or volume belongs to.
pub const MAP_LABEL: &str = "io.imgtool.map";
/// The label naming the container (`config[.instance]`) within its map.
pub const UNIT_LABEL: &str = "io.imgtool.map.container";
/// The label holding the hash of the configuration a container was created from.
pub const CONFIG_LABEL: &str = "io.imgtool.map.config-hash";

/// A named volume the map owns (an attached alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Its name on the engine.
    pub name: String,
    /// The volume driver.
    pub driver: Option<String>,
    /// The driver's options.
    pub driver_options: BTreeMap<String, String>,
    /// Its owner (`uid[:gid]`) to set when it is made.
    pub owner: Option<String>,
    /// Its `chmod` mode to set when it is made.
    pub mode: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What a create option's value must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bool,
    Text,
    Mapping,
}

/// Network create options: docker-py's name, the Engine API's, and the value's shape.
/// (docker-py's `check_duplicate` is not among them: the Engine API dropped it.)
const NETWORK_OPTIONS: [(&str, &str, Shape); 9] = [
    ("driver", "Driver", Shape::Text),
    ("internal", "Internal", Shape::Bool),
    ("enable_ipv6", "EnableIPv6", Shape::Bool),
    ("attachable", "Attachable", Shape::Bool),
    ("ingress", "Ingress", Shape::Bool),
    ("scope", "Scope", Shape::Text),
    ("ipam", "IPAM", Shape::Mapping),
    ("options", "Options", Shape::Mapping),
    ("labels", "Labels", Shape::Mapping),
];

/// Volume create options, as [`NETWORK_OPTIONS`].
const VOLUME_OPTIONS: [(&str, &str, Shape); 3] =
    [("driver", "Driver", Shape::Text), ("driver_opts", "DriverOpts", Shape::Mapping), ("labels", "Labels", Shape::Mapping)];

/// `options` checked against `known`: each by its Engine API name, its value of the right
/// shape; `what` names the network or volume in errors.
fn create_options<'a>(
    options: &'a crate::model::Options,
    known: &[(&str, &'static str, Shape)],
    what: &str,
) -> Result<Vec<(&'static str, &'a Value)>, String> {
    let mut out = Vec::new();
    for (k, v) in options {
        let (_, api, shape) = known.iter().find(|(py, api, _)| k == py || k == api).ok_or_else(|| {
            let names: Vec<&str> = known.iter().map(|(py, _, _)| *py).collect();
            format!("{what}: create option {k} is not one it takes ({})", names.join(", "))
        })?;
        let fits = match shape {
            Shape::Bool => v.is_boolean(),
            Shape::Text => v.is_string(),
            Shape::Mapping => v.is_object(),
        };
        if !fits {
            let want = match shape {
                Shape::Bool => "true or false",
                Shape::Text => "a string",
                Shape::Mapping => "a mapping",
            };
            return Err(format!("{what}: create option {k}: expected {want}"));
        }
        out.push((*api, v));
    }
    Ok(out)
}

/// A mapping's entries as strings (numbers and the like as JSON text).
fn string_map(v: &Value) -> Vec<(String, String)> {
    let o = v.as_object().into_iter().flatten();
    o.map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
}

/// A volume's driver, driver options and labels.
type VolumeOptions = (Option<String>, BTreeMap<String, String>, BTreeMap<String, String>);

/// A volume's driver, driver options and labels: its own, then its create options over them.
pub(crate) fn volume_options(alias: &str, v: &crate::model::VolumeConfig) -> Result<VolumeOptions, String> {
    let (mut driver, mut driver_options, mut labels) = (v.driver.clone(), v.driver_options.clone(), BTreeMap::new());
    for (api, value) in create_options(&v.create_options, &VOLUME_OPTIONS, &format!("volume {alias}"))? {
        match api {
            "Driver" => driver = value.as_str().map(str::to_string),
            "DriverOpts" => driver_options.extend(string_map(value)),
            _ => labels.extend(string_map(value)),
        }
    }
    Ok((driver, driver_options, labels))
}

/// The engine's name of an attached alias of `config`.
pub(crate) fn volume_name(map: &ContainerMap, config: &str, alias: &str) -> String {
    format!("{}.{}", map.name, map.attached_name(config, alias))
}

fn labels(map: &ContainerMap, unit: Option<&Unit>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(MAP_LABEL.to_string(), map.name.clone())]);
    if let Some(u) = unit {
        l.insert(UNIT_LABEL.into(), u.id());
    }
    l
}

impl ContainerMap {
    /// The image a configuration runs, as docker-map names it: the configuration's name by
    /// default, the map's `repository` before a name without `/`, `default_tag` (or
    /// `latest`) when it has no tag.
    pub fn image_of(&self, config: &str) -> String {
        let given = self.containers.get(config).and_then(|c| c.image.clone()).unwrap_or_else(|| config.to_string());
        let (name, tag) = match given.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_string(), Some(t.to_string())),
            _ => (given.clone(), None),
        };
        let name = match name.strip_prefix('/') {
            Some(n) => n.to_string(),
            None if !name.contains('/') => self.repository.as_ref().map_or(name.clone(), |r| format!("{r}/{name}")),
            None => name,
        };
        let tag = tag.or_else(|| self.default_tag.clone()).unwrap_or_else(|| "latest".into());
        format!("{name}:{tag}")
    }

    /// The attached volumes of `config`, with their owner and mode.
    pub fn volume_specs(&self, config: &str) -> Vec<VolumeSpec> {
        let Some(c) = self.containers.get(config) else { return Vec::new() };
        c.attaches
            .iter()
            .map(|a| {
                let v = self.volumes.get(&a.alias);
                // Checked when the map was resolved.
                let (driver, driver_options, mut l) = v.and_then(|v| volume_options(&a.alias, v).ok()).unwrap_or_default();
                l.extend(labels(self, None));
                VolumeSpec {
                    name: volume_name(self, config, &a.alias),
                    driver,
                    driver_options,
                    owner: v.and_then(|v| v.user.clone()).or_else(|| c.user.clone()),
                    mode: v.and_then(|v| v.permissions.clone()).or_else(|| c.permissions.clone()),
                    labels: l,
                }
            })
            .collect()
    }

    fn host_path(&self, p: &HostPath, unit: &Unit) -> Result<String, String> {
        let path = match p {
            HostPath::One(s) => s.clone(),
            HostPath::PerInstance(m) => m
                .get(unit.instance.as_deref().unwrap_or("default"))
                .or_else(|| m.get("default"))
                .cloned()
                .ok_or_else(|| format!("no host path for instance {} (nor a default)", unit.id()))?,
        };
        if path.starts_with('/') {
            return Ok(path);
        }
        let base = self.base_dir.as_ref().map(|d| d.display().to_string());
        let root = match (&self.host_root, base) {
            (Some(r), _) if r.starts_with('/') => r.clone(),
            (Some(r), Some(b)) => format!("{b}/{r}"),
            (None, Some(b)) => b,
            _ => return Err(format!("the host path {path:?} is relative and the map has neither host_root nor a file it was read from")),
        };
        Ok(format!("{}/{path}", root.trim_end_matches('/')))
    }

    fn volume_path(&self, alias: &str) -> Result<String, String> {
        self.volumes
            .get(alias)
            .and_then(|v| v.default_path.clone())
            .ok_or_else(|| format!("volume {alias} has no path (`volumes: {{{alias}: /path}}`)"))
    }

    /// The Engine API create body of `unit`, its configuration hash in a label.
    pub fn create_body(&self, unit: &Unit) -> Result<Value, String> {
        let c = self.containers.get(&unit.config).ok_or_else(|| format!("no container {}", unit.config))?;
        let mut config = serde_json::Map::new();
        let mut host = serde_json::Map::new();
        config.insert("Image".into(), json!(self.image_of(&unit.config)));
        // A container in another's network namespace has that one's host name (the engine
        // refuses one of its own).
        let shares_network = matches!(c.network_mode, Some(NetworkMode::External(_) | NetworkMode::Container(_)));
        if self.set_hostname != Some(false) && !shares_network {
            config.insert("Hostname".into(), json!(unit.container_name(self).replace(['_', '.'], "-")));
        }
        if let Some(d) = &self.default_domain {
            config.insert("Domainname".into(), json!(d));
        }
        if let Some(u) = &c.user {
            config.insert("User".into(), json!(u));
        }
        if let Some(s) = &c.stop_signal {
            config.insert("StopSignal".into(), json!(s));
        }
        if let Some(t) = c.stop_timeout {
            config.insert("StopTimeout".into(), json!(t));
        }
        if let Some(h) = &c.healthcheck {
            let mut hc = serde_json::Map::from_iter([("Test".to_string(), json!(h.test))]);
            for (k, v) in [("Interval", h.interval), ("Timeout", h.timeout), ("Retries", h.retries), ("StartPeriod", h.start_period)] {
                if let Some(v) = v {
                    hc.insert(k.into(), json!(v));
                }
            }
            config.insert("Healthcheck".into(), Value::Object(hc));
        }
        let (binds, volumes_from) = self.mounts(unit, c)?;
        if !c.shares.is_empty() {
            config.insert("Volumes".into(), Value::Object(c.shares.iter().map(|p| (p.clone(), json!({}))).collect()));
        }
        if !binds.is_empty() {
            host.insert("Binds".into(), json!(binds));
        }
        if !volumes_from.is_empty() {
            host.insert("VolumesFrom".into(), json!(volumes_from));
        }
        if !c.exposes.is_empty() {
            let key = |p: &str| if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
            config.insert("ExposedPorts".into(), Value::Object(c.exposes.iter().map(|p| (key(&p.exposed), json!({}))).collect()));
            let mut bindings = serde_json::Map::new();
            for p in c.exposes.iter().filter(|p| p.host_port.is_some()) {
                let b = json!({"HostIp": p.interface.clone().unwrap_or_default(), "HostPort": p.host_port.map(|h| h.to_string())});
                if let Value::Array(a) = bindings.entry(key(&p.exposed)).or_insert_with(|| json!([])) {
                    a.push(b);
                }
            }
            if !bindings.is_empty() {
                host.insert("PortBindings".into(), Value::Object(bindings));
            }
        }
        let links = self.link_strings(&c.links);
        if !links.is_empty() {
            host.insert("Links".into(), json!(links));
        }
        let mode = match &c.network_mode {
            Some(NetworkMode::Preset(p)) => Some(p.clone()),
            Some(NetworkMode::External(n)) => Some(format!("container:{n}")),
            Some(NetworkMode::Container(n)) => {
                let target = self.select(n).map_err(|e| e.to_string())?.into_iter().next().ok_or("no container for network_mode")?;
                Some(format!("container:{}", target.container_name(self)))
            }
            None => c.networks.first().map(|e| self.network_name(&e.network)),
        };
        if let Some(m) = mode {
            host.insert("NetworkMode".into(), json!(m));
        }
        // Every network it joins: the engine joins the first at create and the others
        // after it (see `Engine::create`); all of them count in the configuration's hash.
        if !c.networks.is_empty() {
            let mut endpoints = serde_json::Map::new();
            for e in &c.networks {
                let mut ep = serde_json::Map::new();
                if !e.aliases.is_empty() {
                    ep.insert("Aliases".into(), json!(e.aliases));
                }
                if e.ipv4_address.is_some() || e.ipv6_address.is_some() || !e.link_local_ips.is_empty() {
                    let ipam = json!({"IPv4Address": e.ipv4_address, "IPv6Address": e.ipv6_address, "LinkLocalIPs": e.link_local_ips});
                    ep.insert("IPAMConfig".into(), ipam);
                }
                let links = self.link_strings(&e.links);
                if !links.is_empty() {
                    ep.insert("Links".into(), json!(links));
                }
                endpoints.insert(self.network_name(&e.network), Value::Object(ep));
            }
            config.insert("NetworkingConfig".into(), json!({ "EndpointsConfig": endpoints }));
        }
        for (options, is_host) in [(&c.create_options, false), (&c.host_config, true)] {
            for (k, v) in options {
                let (place, name, value) = translate(k, v, is_host)?;
                merge_into(if place == Place::Host { &mut host } else { &mut config }, &name, value);
            }
        }
        config.insert("HostConfig".into(), Value::Object(host));
        // The map's own labels, then ours over them: a map cannot hide a container from itself.
        let mut l: BTreeMap<String, String> = BTreeMap::new();
        if let Some(extra) = config.get("Labels") {
            l.extend(string_map(extra));
        }
        l.extend(labels(self, Some(unit)));
        let mut body = Value::Object(config);
        body["Labels"] = json!(l);
        // The owner and mode of its attached volumes count too: a change re-creates the
        // container, and its volumes get them again (see `execute`).
        let modes: Vec<(String, Option<String>, Option<String>)> = self
            .volume_specs(&unit.config)
            .into_iter()
            .filter(|v| v.owner.is_some() || v.mode.is_some())
            .map(|v| (v.name, v.owner, v.mode))
            .collect();
        let mut hashed = canonical(&body).to_string();
        if !modes.is_empty() {
            hashed.push_str(&json!(modes).to_string());
        }
        let hash = hex::encode(sha2::Sha256::digest(hashed));
        body["Labels"][CONFIG_LABEL] = json!(hash);
        Ok(body)
    }

    /// Links as the Engine API takes them (`NAME:ALIAS`), one per instance linked.
    fn link_strings(&self, links: &[crate::model::Link]) -> Vec<String> {
        links
            .iter()
            .flat_map(|l| {
                let targets = self.select(&l.container).unwrap_or_default();
                targets.into_iter().map(move |t| {
                    let alias = l.alias.clone().unwrap_or_else(|| t.id().replace(['_', '.'], "-"));
                    format!("{}:{alias}", t.container_name(self))
                })
            })
            .collect()
    }

    /// The Engine API's create body of the map's network `network`: its driver, driver
    /// options, `internal`, and create options (docker-py's names or the API's).
    pub fn network_body(&self, network: &str) -> Result<Value, String> {
        let n = self.networks.get(network).ok_or_else(|| format!("no network {network}"))?;
        let mut body = serde_json::Map::new();
        body.insert("Name".into(), json!(self.network_name(network)));
        if let Some(d) = &n.driver {
            body.insert("Driver".into(), json!(d));
        }
        if n.internal {
            body.insert("Internal".into(), json!(true));
        }
        let mut options: serde_json::Map<String, Value> = n.driver_options.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let mut l: BTreeMap<String, String> = BTreeMap::new();
        for (api, v) in create_options(&n.create_options, &NETWORK_OPTIONS, &format!("network {network}"))? {
            match api {
                "Options" => options.extend(string_map(v).into_iter().map(|(k, v)| (k, json!(v)))),
                "Labels" => l.extend(string_map(v)),
                _ => {
                    body.insert(api.into(), v.clone());
                }
            }
        }
        if !options.is_empty() {
            body.insert("Options".into(), Value::Object(options));
        }
        l.extend(labels(self, None));
        body.insert("Labels".into(), json!(l));
        Ok(Value::Object(body))
    }

    /// A network's name on the engine: `map.network`, or `host`, `bridge`, `none` as they are.
    pub fn network_name(&self, network: &str) -> String {
        if ["host", "bridge", "none"].contains(&network) { network.to_string() } else { format!("{}.{network}", self.name) }
    }

    /// `Binds` (host paths, attached and used volumes) and `VolumesFrom` of `unit`.
    fn mounts(&self, unit: &Unit, c: &ContainerConfig) -> Result<(Vec<String>, Vec<String>), String> {
        let mut binds = Vec::new();
        let rw = |ro: bool| if ro { "ro" } else { "rw" };
        for b in &c.binds {
            match b {
                Bind::Alias { alias, readonly } => {
                    let host = self.host.get(alias).ok_or_else(|| format!("no host path for {alias}"))?;
                    binds.push(format!("{}:{}:{}", self.host_path(host, unit)?, self.volume_path(alias)?, rw(*readonly)));
                }
                Bind::Path { path, host, readonly } => binds.push(format!("{}:{path}:{}", self.host_path(host, unit)?, rw(*readonly))),
            }
        }
        for a in &c.attaches {
            let path = match &a.path {
                Some(p) => p.clone(),
                None => self.volume_path(&a.alias)?,
            };
            binds.push(format!("{}:{path}:rw", volume_name(self, &unit.config, &a.alias)));
        }
        let mut volumes_from = Vec::new();
        for u in &c.uses {
            if let Some(owner) = self.attacher(&u.name) {
                let alias = u.name.rsplit('.').next().unwrap_or(&u.name);
                let path = match &u.path {
                    Some(p) => p.clone(),
                    None => self.volume_path(alias)?,
                };
                binds.push(format!("{}:{path}:{}", volume_name(self, owner, alias), rw(u.readonly)));
            } else {
                for t in self.select(&u.name).map_err(|e| e.to_string())? {
                    let name = t.container_name(self);
                    volumes_from.push(if u.readonly { format!("{name}:ro") } else { name });
                }
            }
        }
        Ok((binds, volumes_from))
    }
}

/// `v` with every object's keys sorted: the hash must not depend on the order a file wrote
/// them in (serde_json keeps insertion order when another crate asks it to).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let sorted: BTreeMap<&String, Value> = o.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
