//! The shapes docker-map accepts for each value, turned into the model. Each function takes
//! one item as the file gave it (a scalar, a list, a mapping) and follows docker-map's
//! `input.py` for it; the forms are listed at each function.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Attach, Bind, Command, Endpoint, ExecCommand, ExecPolicy, HealthCheck, HostPath, Link, NetworkMode, Port, Use};

type R<T> = Result<T, String>;

/// A string, a number or a boolean, as text.
pub(crate) fn scalar(v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a single value, found {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Names (`instances`, `clients`, `extends`, `shares`, group members).
pub(crate) fn strings(items: Vec<Value>, key: &str) -> R<Vec<String>> {
    items.iter().map(|v| scalar(v).map_err(|e| format!("{key}: {e}"))).collect()
}

/// A read-only flag where one is certain: a boolean, `ro` or `rw` (and YAML 1.1's words).
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "ro" | "yes" | "on" | "true" => Some(true),
            "rw" | "no" | "off" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// docker-map's `read_only`: anything true but `rw`.
fn read_only(v: &Value) -> bool {
    flag(v).unwrap_or(match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(b) => *b,
    })
}

fn opt_string(v: Option<&Value>) -> R<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar(v).map(Some),
    }
}

/// Keyword arguments: a mapping with only `allowed` keys.
fn kwargs<'a>(o: &'a serde_json::Map<String, Value>, allowed: &[&str]) -> R<&'a serde_json::Map<String, Value>> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown key {k:?}; expected {}", allowed.join(", "))),
        None => Ok(o),
    }
}

/// A single-entry mapping `{a: b}` read as the pair `[a, b]`.
fn pair(o: &serde_json::Map<String, Value>) -> Option<Vec<Value>> {
    (o.len() == 1).then(|| o.iter().map(|(k, v)| vec![Value::String(k.clone()), v.clone()]).next()).flatten()
}

/// A host path: one path, or `{instance: path, default: path}`.
pub(crate) fn host_path(v: &Value) -> R<HostPath> {
    match v {
        Value::String(s) => Ok(HostPath::One(s.clone())),
        Value::Object(o) => o.iter().map(|(k, v)| Ok((k.clone(), scalar(v)?))).collect::<R<BTreeMap<_, _>>>().map(HostPath::PerInstance),
        other => Err(format!("expected a host path or a mapping of instances to paths, found {}", kind(other))),
    }
}

/// `binds`: `alias`, `[alias]`, `[alias, ro]`, `{alias: ro}`, `{alias: null}`, `[path, host]`,
/// `[path, [host]]`, `[path, [host, ro]]`, `[path, host, ro]`, `{path: host}`,
/// `{name: alias, readonly: ...}`, `{path: ..., host_path: ..., readonly: ...}`.
pub(crate) fn bind(v: &Value) -> R<Bind> {
    let alias = |a: &Value, ro: bool| Ok(Bind::Alias { alias: scalar(a)?, readonly: ro });
    match v {
        Value::String(s) => Ok(Bind::Alias { alias: s.clone(), readonly: false }),
        Value::Object(o) if o.contains_key("path") => {
            let o = kwargs(o, &["path", "host_path", "readonly"])?;
            let host = host_path(o.get("host_path").ok_or("a bind with `path` needs `host_path`")?)?;
            Ok(Bind::Path { path: scalar(&o["path"])?, host, readonly: o.get("readonly").is_some_and(read_only) })
        }
        Value::Object(o) if o.contains_key("name") => {
            let o = kwargs(o, &["name", "readonly"])?;
            alias(&o["name"], o.get("readonly").is_some_and(read_only))
        }
        Value::Object(o) => bind(&Value::Array(pair(o).ok_or("expected a single `alias: flag` or `path: host` entry")?)),
        Value::Array(a) => match a.as_slice() {
            [a] => alias(a, false),
            [a, Value::Null] => alias(a, false),
            [a, b] if flag(b).is_some() => alias(a, flag(b).unwrap_or(false)),
            [a, Value::Array(inner)] => match inner.as_slice() {
                [b] if flag(b).is_some() => alias(a, flag(b).unwrap_or(false)),
                [h] => Ok(Bind::Path { path: scalar(a)?, host: host_path(h)?, readonly: false }),
                [h, ro] => Ok(Bind::Path { path: scalar(a)?, host: host_path(h)?, readonly: read_only(ro) }),
                _ => Err("expected [host] or [host, ro] after the path".into()),
            },
            [a, h] => Ok(Bind::Path { path: scalar(a)?, host: host_path(h)?, readonly: false }),
            [a, h, ro] => Ok(Bind::Path { path: scalar(a)?, host: host_path(h)?, readonly: read_only(ro) }),
            _ => Err("expected alias, [alias, ro], [path, host] or [path, host, ro]".into()),
        },
        other => Err(format!("expected an alias or a list, found {}", kind(other))),
    }
}

/// `attaches`: `alias`, `[alias]`, `[alias, path]`, `{alias: path}`, `{name: alias, path: ...}`.
pub(crate) fn attach(v: &Value) -> R<Attach> {
    match v {
        Value::String(s) => Ok(Attach { alias: s.clone(), path: None }),
        Value::Object(o) if o.contains_key("name") => {
            let o = kwargs(o, &["name", "path"])?;
            Ok(Attach { alias: scalar(&o["name"])?, path: opt_string(o.get("path"))?.filter(|p| !p.is_empty()) })
        }
        Value::Object(o) => attach(&Value::Array(pair(o).ok_or("expected a single `alias: path` entry")?)),
        Value::Array(a) => match a.as_slice() {
            [a] => Ok(Attach { alias: scalar(a)?, path: None }),
            [a, p] => Ok(Attach { alias: scalar(a)?, path: opt_string(Some(p))?.filter(|p| !p.is_empty()) }),
            _ => Err("expected alias or [alias, path]".into()),
        },
        other => Err(format!("expected an alias, found {}", kind(other))),
    }
}

/// `uses`: `name`, `[name, ro]`, `[name, path]`, `[name, path, ro]`, `{name: ro}`,
/// `{name: path}`, `{name: [path, ro]}`, `{name: ..., path: ..., readonly: ...}`.
pub(crate) fn uses(v: &Value) -> R<Use> {
    match v {
        Value::String(s) => Ok(Use { name: s.clone(), path: None, readonly: false }),
        Value::Object(o) if o.len() > 1 || o.contains_key("path") || o.contains_key("readonly") => {
            let o = kwargs(o, &["name", "path", "readonly"])?;
            let name = scalar(o.get("name").ok_or("needs `name`")?)?;
            Ok(Use { name, path: opt_string(o.get("path"))?, readonly: o.get("readonly").is_some_and(read_only) })
        }
        Value::Object(o) => uses(&Value::Array(pair(o).ok_or("expected a single `name: ro` or `name: path` entry")?)),
        Value::Array(a) => match a.as_slice() {
            [n] | [n, Value::Null] => Ok(Use { name: scalar(n)?, path: None, readonly: false }),
            [n, b] if flag(b).is_some() => Ok(Use { name: scalar(n)?, path: None, readonly: flag(b).unwrap_or(false) }),
            [n, Value::Array(inner)] => match inner.as_slice() {
                [p] => Ok(Use { name: scalar(n)?, path: Some(scalar(p)?), readonly: false }),
                [p, ro] => Ok(Use { name: scalar(n)?, path: Some(scalar(p)?), readonly: read_only(ro) }),
                _ => Err("expected [path] or [path, ro] after the name".into()),
            },
            [n, p] => Ok(Use { name: scalar(n)?, path: Some(scalar(p)?), readonly: false }),
            [n, p, ro] => Ok(Use { name: scalar(n)?, path: Some(scalar(p)?), readonly: read_only(ro) }),
            _ => Err("expected name, [name, ro], [name, path] or [name, path, ro]".into()),
        },
        other => Err(format!("expected a name, found {}", kind(other))),
    }
}

/// `links`: `config[.instance]`, `[container]`, `[container, alias]`, `{container: alias}`,
/// `{container: ..., alias: ...}`.
pub(crate) fn link(v: &Value) -> R<Link> {
    match v {
        Value::String(s) => Ok(Link { container: s.clone(), alias: None }),
        Value::Object(o) if o.contains_key("container") => {
            let o = kwargs(o, &["container", "alias"])?;
            Ok(Link { container: scalar(&o["container"])?, alias: opt_string(o.get("alias"))? })
        }
        Value::Object(o) => link(&Value::Array(pair(o).ok_or("expected a single `container: alias` entry")?)),
        Value::Array(a) => match a.as_slice() {
            [c] => Ok(Link { container: scalar(c)?, alias: None }),
            [c, al] => Ok(Link { container: scalar(c)?, alias: opt_string(Some(al))? }),
            _ => Err("expected container or [container, alias]".into()),
        },
        other => Err(format!("expected a container name, found {}", kind(other))),
    }
}

fn host_port(v: &Value) -> R<Option<u16>> {
    match v {
        Value::Null => Ok(None),
        v => {
            let s = scalar(v)?;
            s.parse::<u16>().map(Some).map_err(|_| format!("{s:?} is not a port number"))
        }
    }
}

/// `exposes`: `port`, `"53/udp"`, `[port]`, `[port, host_port]`, `[port, host_port, interface]`,
/// `[port, host_port, interface, ipv6]`, `[port, [host_port, interface(, ipv6)]]`,
/// `[port, {host_port:, interface:, ipv6:}]`, `{port: host_port}`, `{exposed_port: ...}`.
pub(crate) fn port(v: &Value) -> R<Port> {
    let exposed = |p: &Value| -> R<String> {
        let s = scalar(p)?;
        let (num, proto) = s.split_once('/').unwrap_or((&s, "tcp"));
        if num.parse::<u16>().is_err() || !["tcp", "udp", "sctp"].contains(&proto) {
            return Err(format!("{s:?} is not a port (80, 53/udp)"));
        }
        Ok(s)
    };
    let full = |p: &Value, hp: Option<&Value>, iface: Option<&Value>, v6: Option<&Value>| -> R<Port> {
        Ok(Port {
            exposed: exposed(p)?,
            host_port: hp.map(host_port).transpose()?.flatten(),
            interface: opt_string(iface)?,
            ipv6: v6.is_some_and(read_only),
        })
    };
    match v {
        Value::String(_) | Value::Number(_) => full(v, None, None, None),
        Value::Object(o) if o.contains_key("exposed_port") => {
            let o = kwargs(o, &["exposed_port", "host_port", "interface", "ipv6"])?;
            full(&o["exposed_port"], o.get("host_port"), o.get("interface"), o.get("ipv6"))
        }
        Value::Object(o) => port(&Value::Array(pair(o).ok_or("expected a single `port: host_port` entry")?)),
        Value::Array(a) => match a.as_slice() {
            [p] => full(p, None, None, None),
            [p, Value::Array(inner)] => full(p, inner.first(), inner.get(1), inner.get(2)),
            [p, Value::Object(o)] => {
                let o = kwargs(o, &["host_port", "interface", "ipv6"])?;
                full(p, o.get("host_port"), o.get("interface"), o.get("ipv6"))
            }
            [p, hp] => full(p, Some(hp), None, None),
            [p, hp, iface] => full(p, Some(hp), Some(iface), None),
            [p, hp, iface, v6] => full(p, Some(hp), Some(iface), Some(v6)),
            _ => Err("expected port, [port, host_port] or [port, host_port, interface, ipv6]".into()),
        },
        other => Err(format!("expected a port, found {}", kind(other))),
    }
}

fn string_list(v: Option<&Value>) -> R<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(scalar).collect(),
        Some(v) => Ok(vec![scalar(v)?]),
    }
}

fn links_of(v: Option<&Value>) -> R<Vec<Link>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(link).collect(),
        Some(Value::Object(o)) => o.iter().map(|(k, v)| link(&Value::Array(vec![k.clone().into(), v.clone()]))).collect(),
        Some(v) => Ok(vec![link(v)?]),
    }
}

const ENDPOINT_KEYS: [&str; 6] = ["network_name", "aliases", "links", "ipv4_address", "ipv6_address", "link_local_ips"];

/// `networks`: `name`, `[name, aliases, links, ipv4, ipv6, link_local_ips]` (any prefix),
/// `[name, {kwargs}]`, `{name: null | alias | {kwargs} | [positional]}`, `{network_name: ...}`.
pub(crate) fn endpoint(v: &Value) -> R<Endpoint> {
    let from_kwargs = |name: String, o: &serde_json::Map<String, Value>| -> R<Endpoint> {
        let o = kwargs(o, &ENDPOINT_KEYS)?;
        Ok(Endpoint {
            network: name,
            aliases: string_list(o.get("aliases"))?,
            links: links_of(o.get("links"))?,
            ipv4_address: opt_string(o.get("ipv4_address"))?,
            ipv6_address: opt_string(o.get("ipv6_address"))?,
            link_local_ips: string_list(o.get("link_local_ips"))?,
        })
    };
    match v {
        Value::String(s) => from_kwargs(s.clone(), &serde_json::Map::new()),
        Value::Object(o) if o.contains_key("network_name") => from_kwargs(scalar(&o["network_name"])?, o),
        Value::Object(o) => endpoint(&Value::Array(pair(o).ok_or("expected a single `network: settings` entry")?)),
        Value::Array(a) => {
            let name = scalar(a.first().ok_or("an empty network entry")?)?;
            match &a[1..] {
                [] | [Value::Null] => from_kwargs(name, &serde_json::Map::new()),
                [Value::Object(o)] => from_kwargs(name, o),
                [Value::String(alias)] => from_kwargs(name, &serde_json::Map::from_iter([("aliases".to_string(), alias.clone().into())])),
                rest if rest.len() <= 5 => {
                    let o = ENDPOINT_KEYS[1..].iter().zip(rest).map(|(k, v)| (k.to_string(), v.clone())).collect();
                    from_kwargs(name, &o)
                }
                _ => Err("expected at most [name, aliases, links, ipv4, ipv6, link_local_ips]".into()),
            }
        }
        other => Err(format!("expected a network name, found {}", kind(other))),
    }
}

/// `network_mode`: `host`, `bridge`, `none` (null, empty and `disabled` mean `none`),
/// `container:NAME` and `/NAME` (outside the map), `config`, `config.instance`, `[config, instance]`.
pub(crate) fn network_mode(v: &Value) -> R<NetworkMode> {
    match v {
        Value::Null => Ok(NetworkMode::Preset("none".into())),
        Value::String(s) => Ok(match s.as_str() {
            "" | "disabled" | "none" => NetworkMode::Preset("none".into()),
            "host" | "bridge" => NetworkMode::Preset(s.clone()),
            _ if s.starts_with("container:") => NetworkMode::External(s["container:".len()..].to_string()),
            _ if s.starts_with('/') => NetworkMode::External(s[1..].to_string()),
            _ => NetworkMode::Container(s.clone()),
        }),
        Value::Array(a) => match a.as_slice() {
            [c] => Ok(NetworkMode::Container(scalar(c)?)),
            [c, i] => Ok(NetworkMode::Container(format!("{}.{}", scalar(c)?, scalar(i)?))),
            _ => Err("expected [config, instance]".into()),
        },
        other => Err(format!("expected a mode or a container, found {}", kind(other))),
    }
}

/// `user`: a name, a uid, `uid:gid`, `name:group`, `[user, group]`.
pub(crate) fn user(v: &Value) -> R<String> {
    match v {
        Value::Array(a) => match a.as_slice() {
            [u, g] => Ok(format!("{}:{}", scalar(u)?, scalar(g)?)),
            _ => Err("expected [user, group]".into()),
        },
        v => scalar(v),
    }
}

fn command(v: &Value) -> R<Command> {
    match v {
        Value::Array(a) => Ok(Command::Argv(a.iter().map(scalar).collect::<R<_>>()?)),
        v => Ok(Command::Line(scalar(v)?)),
    }
}

fn policy(v: Option<&Value>) -> R<ExecPolicy> {
    match v.map(scalar).transpose()?.as_deref() {
        None | Some("restart") => Ok(ExecPolicy::Restart),
        Some("initial") => Ok(ExecPolicy::Initial),
        Some(p) => Err(format!("policy {p:?}: expected restart or initial")),
    }
}

/// `exec_commands`: `cmd`, `[cmd]`, `[cmd, user]`, `[cmd, user, policy]`, `{cmd: user}`,
/// `{cmd: ..., user: ..., policy: ...}`; a `cmd` is a string or an argv list.
pub(crate) fn exec_command(v: &Value) -> R<ExecCommand> {
    match v {
        Value::String(_) => Ok(ExecCommand { cmd: command(v)?, user: None, policy: ExecPolicy::Restart }),
        Value::Object(o) if o.contains_key("cmd") => {
            let o = kwargs(o, &["cmd", "user", "policy"])?;
            Ok(ExecCommand { cmd: command(&o["cmd"])?, user: opt_string(o.get("user"))?, policy: policy(o.get("policy"))? })
        }
        Value::Object(o) => exec_command(&Value::Array(pair(o).ok_or("expected a single `command: user` entry")?)),
        Value::Array(a) => match a.as_slice() {
            [c] => Ok(ExecCommand { cmd: command(c)?, user: None, policy: ExecPolicy::Restart }),
            [c, u] => Ok(ExecCommand { cmd: command(c)?, user: opt_string(Some(u))?, policy: ExecPolicy::Restart }),
            [c, u, p] => Ok(ExecCommand { cmd: command(c)?, user: opt_string(Some(u))?, policy: policy(Some(p))? }),
            _ => Err("expected cmd, [cmd, user] or [cmd, user, policy]".into()),
        },
        other => Err(format!("expected a command, found {}", kind(other))),
    }
}

/// A duration: nanoseconds as a number, or `30s`, `500ms`, `2m`, `10us`, `7ns`.
fn duration(v: Option<&Value>) -> R<Option<i64>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
    if let Some(n) = v.as_i64() {
        return Ok(Some(n));
    }
    let s = scalar(v)?;
    let t = s.trim();
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let n: i64 = t[..digits].parse().map_err(|_| format!("{s:?} is not a duration (30s, 500ms, 2m)"))?;
    let factor = match t[digits..].trim() {
        "" | "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        _ => return Err(format!("{s:?} is not a duration (30s, 500ms, 2m)")),
    };
    n.checked_mul(factor).map(Some).ok_or_else(|| format!("{s:?} is too long"))
}

fn test(v: &Value) -> R<Vec<String>> {
    match v {
        Value::Null => Ok(vec!["NONE".into()]),
        Value::String(s) if s.is_empty() || s == "NONE" => Ok(vec!["NONE".into()]),
        Value::String(s) => Ok(vec!["CMD-SHELL".into(), s.clone()]),
        Value::Array(a) if a.is_empty() => Ok(vec!["NONE".into()]),
        Value::Array(a) => {
            let mut t: Vec<String> = a.iter().map(scalar).collect::<R<_>>()?;
            if !["NONE", "CMD", "CMD-SHELL"].contains(&t[0].as_str()) {
                t.insert(0, "CMD".into());
            }
            Ok(t)
        }
        other => Err(format!("test: expected a command, found {}", kind(other))),
    }
}

/// `healthcheck`: a shell command; `{test, interval, timeout, retries, start_period}`; or
/// those five positionally.
pub(crate) fn healthcheck(v: &Value) -> R<HealthCheck> {
    let make = |t: &Value, i: Option<&Value>, to: Option<&Value>, r: Option<&Value>, sp: Option<&Value>| -> R<HealthCheck> {
        let retries = match r.filter(|r| !r.is_null()) {
            None => None,
            Some(r) => Some(r.as_i64().ok_or("retries: expected a number")?),
        };
        Ok(HealthCheck { test: test(t)?, interval: duration(i)?, timeout: duration(to)?, retries, start_period: duration(sp)? })
    };
    match v {
        Value::String(_) => make(v, None, None, None, None),
        Value::Object(o) => {
            let o = kwargs(o, &["test", "interval", "timeout", "retries", "start_period"])?;
            make(o.get("test").unwrap_or(&Value::Null), o.get("interval"), o.get("timeout"), o.get("retries"), o.get("start_period"))
        }
        Value::Array(a) if !a.is_empty() && a.len() <= 5 => make(&a[0], a.get(1), a.get(2), a.get(3), a.get(4)),
        Value::Null => Err("expected a command or its settings (docker-map refuses an empty healthcheck)".into()),
        other => Err(format!("expected a command or its settings, found {}", kind(other))),
    }
}
