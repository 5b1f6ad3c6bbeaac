//! `create_options` and `host_config` as docker-map users write them (docker-py's argument
//! names: `environment`, `mem_limit`, `restart_policy`) turned into the Engine API's fields;
//! a name starting with a capital is the Engine API's own and passes unchanged.

use serde_json::{Value, json};

use crate::model::Options;

/// Where a translated option goes in the create body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The container's config.
    Config,
    /// Its `HostConfig`.
    Host,
}

type Convert = fn(&Value) -> Result<Value, String>;

fn same(v: &Value) -> Result<Value, String> {
    Ok(v.clone())
}

/// `command`, `entrypoint`: a string is split as a shell would split it.
fn words(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(s) => Ok(json!(split(s)?)),
        Value::Array(_) | Value::Null => Ok(v.clone()),
        _ => Err("expected a string or a list".into()),
    }
}

/// `environment`: a mapping (sorted, so the same map gives the same body) or `K=V` strings.
fn env(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(o) => {
            let sorted: std::collections::BTreeMap<&String, &Value> = o.iter().collect();
            // docker-py: `K: null` passes K through from the engine's environment.
            Ok(json!(sorted.into_iter().map(|(k, v)| if v.is_null() { k.clone() } else { format!("{k}={}", text(v)) }).collect::<Vec<_>>()))
        }
        Value::Array(_) => Ok(v.clone()),
        _ => Err("expected a mapping or a list of K=V".into()),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Sizes: bytes, or `512m`, `2g`, `100k` (docker-py's units).
fn bytes(v: &Value) -> Result<Value, String> {
    if let Some(n) = v.as_i64() {
        return Ok(json!(n));
    }
    let s = v.as_str().ok_or("expected a size (bytes, or 512m, 2g)")?.trim().to_ascii_lowercase();
    let (num, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let factor: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("{s:?} is not a size (bytes, or 512m, 2g)")),
    };
    let n: i64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size (bytes, or 512m, 2g)"))?;
    n.checked_mul(factor).map(|b| json!(b)).ok_or_else(|| format!("{s:?} is too large"))
}

/// `ports`: exposed ports, a list of `80` or `53/udp`.
fn ports(v: &Value) -> Result<Value, String> {
    let list = v.as_array().ok_or("expected a list of ports")?;
    let mut out = serde_json::Map::new();
    for p in list {
        let p = text(p);
        out.insert(if p.contains('/') { p } else { format!("{p}/tcp") }, json!({}));
    }
    Ok(Value::Object(out))
}

/// `volumes`: container paths for anonymous volumes.
fn volumes(v: &Value) -> Result<Value, String> {
    let list = v.as_array().ok_or("expected a list of paths")?;
    Ok(Value::Object(list.iter().map(|p| (text(p), json!({}))).collect()))
}

/// `restart_policy`: `{Name: always}` or `{name: on-failure, maximum_retry_count: 3}`.
fn restart(v: &Value) -> Result<Value, String> {
    let o = v.as_object().ok_or("expected {Name: ..., MaximumRetryCount: ...}")?;
    let name = o.get("Name").or_else(|| o.get("name")).cloned().unwrap_or(Value::Null);
    let count = o.get("MaximumRetryCount").or_else(|| o.get("maximum_retry_count")).cloned().unwrap_or(json!(0));
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// `extra_hosts`: `{host: ip}` or `host:ip` strings.
fn hosts(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(o) => Ok(json!(o.iter().map(|(k, v)| format!("{k}:{}", text(v))).collect::<Vec<_>>())),
        Value::Array(_) => Ok(v.clone()),
        _ => Err("expected a mapping of host names to addresses".into()),
    }
}

/// `tmpfs`: paths, or `{path: options}`.
fn tmpfs(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        Value::Array(a) => Ok(Value::Object(
            a.iter()
                .map(|p| {
                    let p = text(p);
                    let (path, opts) = p.split_once(':').unwrap_or((&p, ""));
                    (path.to_string(), json!(opts))
                })
                .collect(),
        )),
        _ => Err("expected paths or a mapping of paths to options".into()),
    }
}

/// `ulimits`: `[{name: nofile, soft: 1024, hard: 1024}]` (docker-py's `Ulimit`s).
fn ulimits(v: &Value) -> Result<Value, String> {
    let list = v.as_array().ok_or("expected a list of {name, soft, hard}")?;
    let mut out = Vec::new();
    for u in list {
        let o = u.as_object().ok_or("expected {name, soft, hard}")?;
        let get = |a: &str, b: &str| o.get(a).or_else(|| o.get(b)).cloned().unwrap_or(Value::Null);
        out.push(json!({"Name": get("name", "Name"), "Soft": get("soft", "Soft"), "Hard": get("hard", "Hard")}));
    }
    Ok(Value::Array(out))
}

/// `log_config`: `{type: json-file, config: {...}}` (docker-py's `LogConfig`).
fn log_config(v: &Value) -> Result<Value, String> {
    let o = v.as_object().ok_or("expected {type, config}")?;
    let get = |a: &str, b: &str| o.get(a).or_else(|| o.get(b)).cloned().unwrap_or(Value::Null);
    Ok(json!({"Type": get("type", "Type"), "Config": get("config", "Config")}))
}

/// docker-py's names, with where they go and how they are written.
const TABLE: &[(&str, Place, &str, Convert)] = &[
    ("command", Place::Config, "Cmd", words),
    ("entrypoint", Place::Config, "Entrypoint", words),
    ("environment", Place::Config, "Env", env),
    ("user", Place::Config, "User", same),
    ("working_dir", Place::Config, "WorkingDir", same),
    ("hostname", Place::Config, "Hostname", same),
    ("domainname", Place::Config, "Domainname", same),
    ("labels", Place::Config, "Labels", same),
    ("stop_signal", Place::Config, "StopSignal", same),
    ("stop_timeout", Place::Config, "StopTimeout", same),
    ("tty", Place::Config, "Tty", same),
    ("stdin_open", Place::Config, "OpenStdin", same),
    ("network_disabled", Place::Config, "NetworkDisabled", same),
    ("ports", Place::Config, "ExposedPorts", ports),
    ("volumes", Place::Config, "Volumes", volumes),
    ("binds", Place::Host, "Binds", same),
    ("links", Place::Host, "Links", same),
    ("privileged", Place::Host, "Privileged", same),
    ("dns", Place::Host, "Dns", same),
    ("dns_search", Place::Host, "DnsSearch", same),
    ("volumes_from", Place::Host, "VolumesFrom", same),
    ("network_mode", Place::Host, "NetworkMode", same),
    ("restart_policy", Place::Host, "RestartPolicy", restart),
    ("cap_add", Place::Host, "CapAdd", same),
    ("cap_drop", Place::Host, "CapDrop", same),
    ("extra_hosts", Place::Host, "ExtraHosts", hosts),
    ("read_only", Place::Host, "ReadonlyRootfs", same),
    ("security_opt", Place::Host, "SecurityOpt", same),
    ("ulimits", Place::Host, "Ulimits", ulimits),
    ("mem_limit", Place::Host, "Memory", bytes),
    ("memswap_limit", Place::Host, "MemorySwap", bytes),
    ("mem_reservation", Place::Host, "MemoryReservation", bytes),
    ("shm_size", Place::Host, "ShmSize", bytes),
    ("cpu_shares", Place::Host, "CpuShares", same),
    ("cpu_period", Place::Host, "CpuPeriod", same),
    ("cpu_quota", Place::Host, "CpuQuota", same),
    ("cpuset_cpus", Place::Host, "CpusetCpus", same),
    ("nano_cpus", Place::Host, "NanoCpus", same),
    ("pids_limit", Place::Host, "PidsLimit", same),
    ("tmpfs", Place::Host, "Tmpfs", tmpfs),
    ("init", Place::Host, "Init", same),
    ("sysctls", Place::Host, "Sysctls", same),
    ("log_config", Place::Host, "LogConfig", log_config),
    ("pid_mode", Place::Host, "PidMode", same),
    ("ipc_mode", Place::Host, "IpcMode", same),
    ("userns_mode", Place::Host, "UsernsMode", same),
    ("group_add", Place::Host, "GroupAdd", same),
    ("oom_score_adj", Place::Host, "OomScoreAdj", same),
    ("auto_remove", Place::Host, "AutoRemove", same),
    ("runtime", Place::Host, "Runtime", same),
];

/// Options that make no sense in a map (the map decides them), with why.
const REFUSED: &[(&str, &str)] = &[
    ("name", "the map names its containers"),
    ("image", "set `image` on the container"),
    ("detach", "containers of a map always run detached"),
];

/// Translate one option of `create_options` (`host` false) or `host_config` (`host` true):
/// where it goes, its Engine API name, its value.
pub(crate) fn translate(key: &str, value: &Value, host: bool) -> Result<(Place, String, Value), String> {
    if key.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Ok((if host { Place::Host } else { Place::Config }, key.to_string(), value.clone()));
    }
    if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
        return Err(format!("{key}: {why}"));
    }
    let (_, place, name, convert) = TABLE.iter().find(|(k, ..)| *k == key).ok_or_else(|| {
        format!("{key} is not an option imgtool knows; use the Engine API's own name (as `Env` or `Memory`) to pass it as it is")
    })?;
    // docker-py takes host options among the create options too, and the reverse.
    let value = convert(value).map_err(|e| format!("{key}: {e}"))?;
    Ok((*place, name.to_string(), value))
}

/// Check every option of a container (at load time, so a typo is found before any engine is).
pub(crate) fn check(create: &Options, host: &Options) -> Result<(), String> {
    for (k, v) in create {
        translate(k, v, false).map_err(|e| format!("create_options: {e}"))?;
    }
    for (k, v) in host {
        translate(k, v, true).map_err(|e| format!("host_config: {e}"))?;
    }
    Ok(())
}

/// Put `value` at `key` of `into` as docker-map's `update_kwargs` does: lists extended without
/// duplicates, mappings updated, anything else replaced.
pub(crate) fn merge_into(into: &mut serde_json::Map<String, Value>, key: &str, value: Value) {
    match (into.get_mut(key), value) {
        (Some(Value::Array(a)), Value::Array(b)) if key != "Cmd" && key != "Entrypoint" => {
            for x in b {
                if !a.contains(&x) {
                    a.push(x);
                }
            }
        }
        (Some(Value::Object(a)), Value::Object(b)) => a.extend(b),
        (_, Value::Null) => {}
        (_, v) => {
            into.insert(key.to_string(), v);
        }
    }
}

/// Split a command line into words as a POSIX shell would (quotes and backslashes; no
/// expansion), as docker-py's `shlex.split` does.
pub(crate) fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unterminated ' in {line:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(format!("unterminated \" in {line:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unterminated \" in {line:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_as_a_shell_splits_them() {
        assert_eq!(split(r#"sh -c 'echo "a b"' x\ y "q\"z""#).unwrap(), ["sh", "-c", "echo \"a b\"", "x y", "q\"z"]);
        assert!(split("echo 'open").is_err());
    }

    #[test]
    fn docker_py_names_become_engine_fields() {
        let (place, name, v) = translate("environment", &json!({"B": 2, "A": "x"}), false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((place, name.as_str(), v), (Place::Config, "Env", json!(["A=x", "B=2"])));
        let (place, name, v) = translate("mem_limit", &json!("512m"), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((place, name.as_str(), v), (Place::Host, "Memory", json!(512 << 20)));
        assert!(translate("memlimit", &json!(1), true).unwrap_err().contains("memlimit is not an option"));
        assert_eq!(translate("Env", &json!(["A=1"]), false).map(|t| t.1).ok().as_deref(), Some("Env"));
    }
}
