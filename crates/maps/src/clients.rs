//! docker-map's clients: the engines a map's containers run on, by name, and the addresses
//! each engine's interface aliases stand for (`exposes: [[80, 80, public]]`). A map names
//! its clients (`clients:` on the map or on a container); a clients file (docker-map's
//! `load_clients_file` format) says where each is.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::model::ContainerMap;

/// The client of containers whose map names none: the engine `--host` or `DOCKER_HOST`
/// names (docker-map's name for it).
pub const DEFAULT_CLIENT: &str = "__default__";

/// One engine a map may run containers on (docker-map's `ClientConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ClientConfig {
    /// Where the engine is (`unix:///run/docker.sock`, `tcp://HOST:PORT`); the default
    /// engine's address when unset.
    pub base_url: Option<String>,
    /// Interface aliases, and the IPv4 address each stands for.
    #[serde(default)]
    pub interfaces: BTreeMap<String, String>,
    /// Interface aliases, and the IPv6 address each stands for.
    #[serde(default)]
    pub interfaces_ipv6: BTreeMap<String, String>,
    /// Seconds a quick engine call may take (loads, stops and execs take what they need).
    pub timeout: Option<f64>,
    /// docker-py's API version. Read so docker-map's files load; imgtool agrees on the
    /// version with the engine.
    pub version: Option<serde_json::Value>,
    /// Use TLS (certificates from `DOCKER_CERT_PATH`).
    pub tls: Option<bool>,
    /// docker-map's other settings (`stop_timeout`, `wait_timeout`, `auth_configs`, its
    /// feature flags): read so its files load, and not used; [`ClientConfig::ignored`]
    /// names them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The settings docker-map's `ClientConfiguration` takes beyond those imgtool uses.
const DOCKER_MAP_KEYS: [&str; 8] =
    ["stop_timeout", "wait_timeout", "auth_configs", "features", "constraints", "info", "use_host_config", "client"];

impl ClientConfig {
    /// The settings read and not used.
    pub fn ignored(&self) -> Vec<&str> {
        self.other.keys().map(String::as_str).collect()
    }
}

/// Clients by name.
pub type Clients = BTreeMap<String, ClientConfig>;

/// Read a clients file (YAML, or TOML when its name ends in `.toml`): a mapping of client
/// names to `base_url`, `interfaces`, `interfaces_ipv6`, `timeout`, `version`, `tls`.
pub fn load_clients(file: &Path) -> Result<Clients, Error> {
    let fail = |why: String| Error::File { file: file.to_path_buf(), why };
    let (text, toml) = crate::file::read_text(file)?;
    parse_clients(&text, toml).map_err(fail)
}

/// Parse a clients file's text.
pub fn parse_clients(text: &str, toml: bool) -> Result<Clients, String> {
    let raw: BTreeMap<String, Option<ClientConfig>> = crate::file::parse_text(text, toml)?;
    let clients: Clients = raw.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    for (name, c) in &clients {
        // docker-map's own keys, and its feature flags (booleans), are read; anything else is
        // a typo.
        if let Some(k) = c.other.iter().find(|(k, v)| !DOCKER_MAP_KEYS.contains(&k.as_str()) && !v.is_boolean()).map(|(k, _)| k) {
            return Err(format!(
                "{name}: unknown key {k} (a client takes base_url, interfaces, interfaces_ipv6, timeout, tls, version and docker-map's {})",
                DOCKER_MAP_KEYS.join(", ")
            ));
        }
        for (key, table, v6) in [("interfaces", &c.interfaces, false), ("interfaces_ipv6", &c.interfaces_ipv6, true)] {
            for (alias, addr) in table {
                match addr.parse::<IpAddr>() {
                    Ok(ip) if ip.is_ipv6() == v6 => {}
                    _ => {
                        let kind = if v6 { "an IPv6" } else { "an IPv4" };
                        return Err(format!("{name}: {key}: {alias}: {addr:?} is not {kind} address"));
                    }
                }
            }
        }
    }
    Ok(clients)
}

impl ContainerMap {
    /// The clients `config` runs on: its own, else the map's, else the default client.
    pub fn clients_of(&self, config: &str) -> Vec<String> {
        let own = self.containers.get(config).map(|c| c.clients.clone()).unwrap_or_default();
        if !own.is_empty() {
            own
        } else if !self.clients.is_empty() {
            self.clients.clone()
        } else {
            vec![DEFAULT_CLIENT.to_string()]
        }
    }

    /// Every client a container of the map runs on.
    pub fn clients_used(&self) -> BTreeSet<String> {
        self.containers.iter().filter(|(_, c)| !c.r#abstract).flat_map(|(name, _)| self.clients_of(name)).collect()
    }

    /// The ids (`config.instance`) of those of `units` that run on `client`.
    pub fn units_on(&self, units: &[crate::Unit], client: &str) -> Vec<String> {
        units.iter().filter(|u| self.clients_of(&u.config).iter().any(|c| c == client)).map(crate::Unit::id).collect()
    }

    /// The part of the (resolved) map that runs on `client`, its ports' interface aliases
    /// replaced by that client's addresses. A container there that needs one running
    /// elsewhere is an error: an engine cannot link to, or mount from, another engine.
    pub fn for_client(&self, client: &str, config: &ClientConfig) -> Result<ContainerMap, Error> {
        let invalid = |why: String| Error::Invalid { map: self.name.clone(), why };
        let here = |cfg: &str| self.clients_of(cfg).iter().any(|c| c == client);
        for unit in self.units().into_iter().filter(|u| here(&u.config)) {
            if let Some(d) = self.dependencies(&unit).into_iter().find(|d| !here(&d.config)) {
                return Err(invalid(format!(
                    "{} runs on client {client} and needs {}, which does not run there; add {client} to the clients of {}",
                    unit.id(),
                    d.id(),
                    d.config
                )));
            }
        }
        let mut map = self.clone();
        map.containers.retain(|name, c| c.r#abstract || here(name));
        for (name, c) in map.containers.iter_mut() {
            for p in c.exposes.iter_mut() {
                // Only a published port binds an address (docker-map resolves no other).
                let (Some(alias), Some(_)) = (p.interface.clone(), p.host_port) else { continue };
                if alias.parse::<IpAddr>().is_ok() {
                    continue;
                }
                let table = if p.ipv6 { &config.interfaces_ipv6 } else { &config.interfaces };
                let addr = table.get(&alias).ok_or_else(|| {
                    let key = if p.ipv6 { "interfaces_ipv6" } else { "interfaces" };
                    let known = table.keys().cloned().collect::<Vec<_>>().join(", ");
                    invalid(format!(
                        "{name}: port {}: interface {alias:?} is not an address, nor one of client {client}'s {key} ({}); name an address, or define {alias} in the clients file",
                        p.exposed,
                        if known.is_empty() { "none".to_string() } else { known }
                    ))
                })?;
                p.interface = Some(addr.clone());
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_containers_and_addresses() {
        let clients = parse_clients(
            "apps1:\n  base_url: unix:///a.sock\n  interfaces:\n    private: 10.0.0.11\nweb1:\n  interfaces:\n    public: 127.0.0.2\n",
            false,
        )
        .unwrap();
        let map = crate::parse_map(
            "name: m\nclients: apps1\napp:\n  exposes: [[80, 8080, private]]\nweb:\n  clients: web1\n  exposes: [[80, 80, public]]\n",
            false,
            "m",
        )
        .unwrap()
        .resolved()
        .unwrap();
        assert_eq!(map.clients_used(), BTreeSet::from(["apps1".to_string(), "web1".to_string()]));
        let apps = map.for_client("apps1", &clients["apps1"]).unwrap();
        assert_eq!(apps.containers.keys().collect::<Vec<_>>(), ["app"]);
        assert_eq!(apps.containers["app"].exposes[0].interface.as_deref(), Some("10.0.0.11"));
        let web = map.for_client("web1", &clients["web1"]).unwrap();
        assert_eq!(web.containers["web"].exposes[0].interface.as_deref(), Some("127.0.0.2"));
        // An alias the client lacks, and a dependency on another client, are errors.
        let e = map.for_client("apps1", &clients["web1"]).unwrap_err().to_string();
        assert!(e.contains("interface \"private\"") && e.contains("public"), "{e}");
        let dep = crate::parse_map("name: m\na:\n  clients: x\n  links: b\nb:\n  clients: y\n", false, "m").unwrap().resolved().unwrap();
        let e = dep.for_client("x", &ClientConfig::default()).unwrap_err().to_string();
        assert!(e.contains("needs b") && e.contains("add x to the clients of b"), "{e}");
        assert!(parse_clients("a:\n  interfaces: {p: nope}\n", false).unwrap_err().contains("not an IPv4"));
        assert!(parse_clients("a:\n  bogus: 1\n", false).unwrap_err().contains("bogus"));
        let c = parse_clients("a:\n  timeout: 2.5\n  stop_timeout: 10\n  auth_configs: {}\n", false).unwrap();
        assert_eq!((c["a"].timeout, c["a"].ignored()), (Some(2.5), vec!["auth_configs", "stop_timeout"]));
    }
}
