//! A loaded map made ready to act on: `extends` merged as docker-map merges it, abstract
//! configurations dropped, and docker-map's integrity check run.

use std::collections::{BTreeMap, BTreeSet};

use crate::Error;
use crate::model::{Bind, ContainerConfig, ContainerMap, NetworkMode};

const PRESET_NETWORKS: [&str; 3] = ["host", "bridge", "none"];
/// The most containers (instances counted) a map may make: maps are written by hand, and
/// the planner's walks are quadratic in them.
const MAX_UNITS: usize = 2048;
/// The deepest `extends` chain.
const MAX_EXTENDS: usize = 64;

impl ContainerMap {
    /// The map with every configuration's `extends` merged in and abstract ones dropped,
    /// after docker-map's integrity check (every alias used is defined, and so on).
    pub fn resolved(&self) -> Result<ContainerMap, Error> {
        let invalid = |why: String| Error::Invalid { map: self.name.clone(), why };
        let mut out = ContainerMap { containers: BTreeMap::new(), ..self.clone() };
        let units: usize = self.containers.values().map(|c| c.instances.len().max(1)).sum();
        if units > MAX_UNITS {
            return Err(invalid(format!("{units} containers; a map may have at most {MAX_UNITS}")));
        }
        let mut memo = BTreeMap::new();
        for (name, c) in &self.containers {
            if c.r#abstract {
                continue;
            }
            let merged = self.extended(name, &mut Vec::new(), &mut memo).map_err(invalid)?;
            crate::options::check(&merged.create_options, &merged.host_config).map_err(|e| invalid(format!("container {name}: {e}")))?;
            out.containers.insert(name.clone(), merged);
        }
        out.check_integrity().map_err(invalid)?;
        for network in out.networks.keys() {
            out.network_body(network).map_err(invalid)?;
        }
        for (alias, v) in &out.volumes {
            crate::spec::volume_options(alias, v).map_err(invalid)?;
        }
        out.check_cycles()?;
        Ok(out)
    }

    fn extended(
        &self,
        name: &str,
        chain: &mut Vec<String>,
        memo: &mut BTreeMap<String, ContainerConfig>,
    ) -> Result<ContainerConfig, String> {
        if let Some(done) = memo.get(name) {
            return Ok(done.clone());
        }
        if chain.iter().any(|c| c == name) {
            chain.push(name.into());
            return Err(format!("`extends` goes round in a circle: {}", chain.join(" -> ")));
        }
        if chain.len() >= MAX_EXTENDS {
            return Err(format!("`extends` goes more than {MAX_EXTENDS} deep at {name}"));
        }
        let Some(own) = self.containers.get(name) else {
            let by = chain.last().map(String::as_str).unwrap_or("?");
            return Err(format!("{by} extends {name}, which is not in the map"));
        };
        chain.push(name.into());
        let mut out = ContainerConfig::default();
        for parent in &own.extends {
            let p = self.extended(parent, chain, memo)?;
            merge(&mut out, &p);
        }
        chain.pop();
        merge(&mut out, own);
        out.r#abstract = false;
        out.extends = Vec::new();
        memo.insert(name.to_string(), out.clone());
        Ok(out)
    }

    /// `config` for one instance, `config.instance` for each: the names links and uses refer
    /// to, and the last part of container names on the engine.
    pub fn instance_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, c) in &self.containers {
            if c.instances.is_empty() {
                out.push(name.clone());
            } else {
                out.extend(c.instances.iter().map(|i| format!("{name}.{i}")));
            }
        }
        out
    }

    /// The name a container's attached alias has among shared volumes.
    pub(crate) fn attached_name(&self, config: &str, alias: &str) -> String {
        if self.use_attached_parent_name { format!("{config}.{alias}") } else { alias.to_string() }
    }

    /// docker-map's `check_integrity`, message for message.
    fn check_integrity(&self) -> Result<(), String> {
        let instances: BTreeSet<String> = self.instance_names().into_iter().collect();
        let group_refs: BTreeSet<&String> = instances.iter().chain(self.containers.keys()).collect();
        let both: Vec<&str> = self.groups.keys().filter(|g| group_refs.contains(g)).map(String::as_str).collect();
        if !both.is_empty() {
            return Err(format!(
                "Names are used both for container configurations (or instances) and for container groups: {}.",
                both.join(", ")
            ));
        }
        let missing: BTreeSet<&str> = self.groups.values().flatten().filter(|m| !group_refs.contains(m)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(format!(
                "Container configurations or certain instances are referenced by groups, but are not defined: {}.",
                join(missing)
            ));
        }
        let mut shared: BTreeMap<String, usize> = BTreeMap::new();
        for (name, c) in &self.containers {
            if !c.shares.is_empty() || !c.binds.is_empty() || !c.uses.is_empty() {
                let names =
                    if c.instances.is_empty() { vec![name.clone()] } else { c.instances.iter().map(|i| format!("{name}.{i}")).collect() };
                for n in names {
                    *shared.entry(n).or_default() += 1;
                }
            }
            for a in &c.attaches {
                *shared.entry(self.attached_name(name, &a.alias)).or_default() += 1;
            }
        }
        let dup: BTreeSet<&str> = shared.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.as_str()).collect();
        if !dup.is_empty() {
            return Err(format!("Duplicated attached volumes found with name(s): {}.", join(dup)));
        }
        let unknown: BTreeSet<&str> =
            self.containers.values().flat_map(|c| &c.uses).map(|u| u.name.as_str()).filter(|n| !shared.contains_key(*n)).collect();
        if !unknown.is_empty() {
            return Err(format!("No shared or attached volumes found for used volume(s): {}.", join(unknown)));
        }
        let aliases: Vec<&str> = self
            .containers
            .values()
            .flat_map(|c| &c.binds)
            .filter_map(|b| match b {
                Bind::Alias { alias, .. } => Some(alias.as_str()),
                Bind::Path { .. } => None,
            })
            .collect();
        let no_host: BTreeSet<&str> = aliases.iter().copied().filter(|a| !self.host.contains_key(*a)).collect();
        if !no_host.is_empty() {
            return Err(format!("No host share found for mapped volume(s): {}.", join(no_host)));
        }
        let attached = self.containers.values().flat_map(|c| &c.attaches);
        let inline: BTreeSet<&str> = attached.clone().filter(|a| a.path.is_some()).map(|a| a.alias.as_str()).collect();
        let no_path: BTreeSet<&str> = aliases
            .into_iter()
            .chain(attached.map(|a| a.alias.as_str()))
            .filter(|a| !self.volumes.contains_key(*a) && !inline.contains(a))
            .collect();
        if !no_path.is_empty() {
            return Err(format!("No volume name-path-assignments found for volume(s): {}.", join(no_path)));
        }
        let links: BTreeSet<&str> = self
            .containers
            .values()
            .flat_map(|c| c.links.iter().chain(c.networks.iter().flat_map(|e| &e.links)))
            .map(|l| l.container.as_str())
            .filter(|l| !instances.contains(*l))
            .collect();
        if !links.is_empty() {
            return Err(format!("No container instance found for link(s): {}.", join(links)));
        }
        let nets: BTreeSet<&str> = self
            .containers
            .values()
            .flat_map(|c| &c.networks)
            .map(|e| e.network.as_str())
            .filter(|n| !PRESET_NETWORKS.contains(n) && !self.networks.contains_key(*n))
            .collect();
        if !nets.is_empty() {
            return Err(format!("No network configuration found for the following network reference(s): {}", join(nets)));
        }
        let modes: BTreeSet<&str> = self
            .containers
            .values()
            .filter_map(|c| match &c.network_mode {
                Some(NetworkMode::Container(n)) if !instances.contains(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if !modes.is_empty() {
            return Err(format!("No container instance found for the following network mode reference(s): {}", join(modes)));
        }
        Ok(())
    }
}

fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// Append what `from` has that `into` lacks, keeping order.
fn union<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
    for x in from {
        if !into.contains(x) {
            into.push(x.clone());
        }
    }
}

/// Replace the entries of `into` with the same key as one of `from`, in place; append the rest.
fn by_key<T: Clone, K: PartialEq>(into: &mut Vec<T>, from: &[T], key: impl Fn(&T) -> K) {
    for x in from {
        match into.iter().position(|y| key(y) == key(x)) {
            Some(i) => into[i] = x.clone(),
            None => into.push(x.clone()),
        }
    }
}

/// docker-map's `merge_from_obj`: what `from` sets overrides or joins what `into` has.
fn merge(into: &mut ContainerConfig, from: &ContainerConfig) {
    fn set<T: Clone>(into: &mut Option<T>, from: &Option<T>) {
        if from.is_some() {
            into.clone_from(from);
        }
    }
    set(&mut into.image, &from.image);
    set(&mut into.user, &from.user);
    set(&mut into.permissions, &from.permissions);
    set(&mut into.stop_timeout, &from.stop_timeout);
    set(&mut into.stop_signal, &from.stop_signal);
    set(&mut into.start_delay, &from.start_delay);
    set(&mut into.network_mode, &from.network_mode);
    set(&mut into.healthcheck, &from.healthcheck);
    set(&mut into.persistent, &from.persistent);
    union(&mut into.instances, &from.instances);
    union(&mut into.clients, &from.clients);
    union(&mut into.shares, &from.shares);
    union(&mut into.links, &from.links);
    union(&mut into.exec_commands, &from.exec_commands);
    by_key(&mut into.binds, &from.binds, |b| match b {
        Bind::Alias { alias, .. } => alias.clone(),
        Bind::Path { path, .. } => path.clone(),
    });
    by_key(&mut into.attaches, &from.attaches, |a| a.alias.clone());
    by_key(&mut into.uses, &from.uses, |u| u.name.clone());
    by_key(&mut into.exposes, &from.exposes, |p| p.exposed.clone());
    by_key(&mut into.networks, &from.networks, |e| e.network.clone());
    for (k, v) in &from.create_options {
        into.create_options.insert(k.clone(), v.clone());
    }
    for (k, v) in &from.host_config {
        into.host_config.insert(k.clone(), v.clone());
    }
}
