//! The containers a map makes (one per configuration, or one per instance), what each
//! depends on, and the orders actions walk them in: dependencies first to bring them up,
//! dependents first to take them down.

use std::collections::{BTreeMap, BTreeSet};

use crate::Error;
use crate::model::{ContainerMap, NetworkMode};

/// One container of the map: a configuration and perhaps an instance of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unit {
    /// The configuration's name.
    pub config: String,
    /// The instance, when the configuration has instances.
    pub instance: Option<String>,
}

impl Unit {
    /// `config` or `config.instance`.
    pub fn id(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}.{i}", self.config),
            None => self.config.clone(),
        }
    }

    /// Its container's name on the engine: `map.config[.instance]`.
    pub fn container_name(&self, map: &ContainerMap) -> String {
        format!("{}.{}", map.name, self.id())
    }
}

impl ContainerMap {
    /// Every container of the (resolved) map.
    pub fn units(&self) -> Vec<Unit> {
        let mut out = Vec::new();
        for (name, c) in &self.containers {
            if c.instances.is_empty() {
                out.push(Unit { config: name.clone(), instance: None });
            } else {
                out.extend(c.instances.iter().map(|i| Unit { config: name.clone(), instance: Some(i.clone()) }));
            }
        }
        out
    }

    /// What `name` stands for: a group, a configuration (all its instances), or one
    /// `config.instance`.
    pub fn select(&self, name: &str) -> Result<Vec<Unit>, Error> {
        if let Some(members) = self.groups.get(name) {
            let mut out = Vec::new();
            for m in members {
                for u in self.select(m)? {
                    if !out.contains(&u) {
                        out.push(u);
                    }
                }
            }
            return Ok(out);
        }
        let all = self.units();
        let found: Vec<Unit> = all.iter().filter(|u| u.config == name || u.id() == name).cloned().collect();
        if found.is_empty() {
            let known = self.instance_names().into_iter().chain(self.groups.keys().cloned()).collect::<Vec<_>>().join(", ");
            return Err(Error::UnknownContainer { map: self.name.clone(), name: name.into(), known });
        }
        Ok(found)
    }

    /// The containers `unit` needs first: its network-mode container, the containers linked
    /// (also within networks), and those whose volumes it uses (the owner of an attached
    /// alias, or a configuration's containers).
    pub fn dependencies(&self, unit: &Unit) -> Vec<Unit> {
        let Some(c) = self.containers.get(&unit.config) else { return Vec::new() };
        let mut names: Vec<&str> = Vec::new();
        if let Some(NetworkMode::Container(n)) = &c.network_mode {
            names.push(n);
        }
        names.extend(c.networks.iter().flat_map(|e| &e.links).map(|l| l.container.as_str()));
        names.extend(c.links.iter().map(|l| l.container.as_str()));
        let mut out: Vec<Unit> = Vec::new();
        let mut add = |us: Vec<Unit>| {
            for u in us {
                if !out.contains(&u) && u != *unit {
                    out.push(u);
                }
            }
        };
        for u in &c.uses {
            match self.attacher(&u.name) {
                Some(owner) => add(self.select(owner).unwrap_or_default()),
                None => add(self.select(&u.name).unwrap_or_default()),
            }
        }
        for n in names {
            add(self.select(n).unwrap_or_default());
        }
        out
    }

    /// The configuration attaching the volume a `uses` entry names, if it names one.
    pub(crate) fn attacher(&self, used: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|(cfg, c)| c.attaches.iter().any(|a| self.attached_name(cfg, &a.alias) == used))
            .map(|(cfg, _)| cfg.as_str())
    }

    /// `targets` and everything they need, each after what it needs.
    pub fn with_dependencies(&self, targets: &[Unit]) -> Result<Vec<Unit>, Error> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        for t in targets {
            self.visit(t, &mut out, &mut path, &|u| self.dependencies(u))?;
        }
        Ok(out)
    }

    /// `targets` and everything that needs them, each before what it needs.
    pub fn with_dependents(&self, targets: &[Unit]) -> Result<Vec<Unit>, Error> {
        let mut needed_by: BTreeMap<Unit, Vec<Unit>> = BTreeMap::new();
        for u in self.units() {
            for d in self.dependencies(&u) {
                needed_by.entry(d).or_default().push(u.clone());
            }
        }
        let mut out = Vec::new();
        let mut path = Vec::new();
        for t in targets {
            self.visit(t, &mut out, &mut path, &|u| needed_by.get(u).cloned().unwrap_or_default())?;
        }
        Ok(out)
    }

    /// Depth first: `next(u)` before `u`; a unit met again on its own path is a cycle.
    fn visit(&self, u: &Unit, out: &mut Vec<Unit>, path: &mut Vec<Unit>, next: &dyn Fn(&Unit) -> Vec<Unit>) -> Result<(), Error> {
        if out.contains(u) {
            return Ok(());
        }
        if path.contains(u) {
            let start = path.iter().position(|p| p == u).unwrap_or(0);
            let ring: Vec<String> = path[start..].iter().chain([u]).map(Unit::id).collect();
            return Err(Error::Invalid {
                map: self.name.clone(),
                why: format!("containers depend on each other in a circle: {}", ring.join(" -> ")),
            });
        }
        path.push(u.clone());
        for n in next(u) {
            self.visit(&n, out, path, next)?;
        }
        path.pop();
        out.push(u.clone());
        Ok(())
    }

    /// Check that no containers depend on each other in a circle.
    pub(crate) fn check_cycles(&self) -> Result<(), Error> {
        self.with_dependencies(&self.units()).map(drop)
    }

    /// The configurations and instances named, or every container when none is.
    pub fn targets(&self, names: &[String]) -> Result<Vec<Unit>, Error> {
        if names.is_empty() {
            return Ok(self.units());
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for n in names {
            for u in self.select(n)? {
                if seen.insert(u.clone()) {
                    out.push(u);
                }
            }
        }
        Ok(out)
    }
}
