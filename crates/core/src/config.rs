use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Digest, Error, Platform, Result};

/// An image config (the JSON blob a manifest's `config` points to).
///
/// Held as JSON rather than a struct so that every field, including the many our code
/// never models (Healthcheck, Shell, OnBuild, container_config, ...), survives an edit.
/// An untouched config keeps its original bytes, so its digest does not change.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    value: Map<String, Value>,
    raw: Option<Bytes>,
}

/// One entry of the config's `history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command or step that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A free comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Format a Unix time as the RFC 3339 UTC timestamp configs use.
pub fn rfc3339(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The timestamp for new layers and configs: `SOURCE_DATE_EPOCH` when set, else 0, so that
/// builds are reproducible by default.
pub fn source_date_epoch() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `imgtool/<name>` in the user's cache directory (`$XDG_CACHE_HOME`, else `~/.cache`,
/// else the temporary directory): where builds keep what later builds reuse.
pub fn cache_dir(name: &str) -> std::path::PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("imgtool").join(name)
}

/// Serialise JSON with object keys in sorted order, whatever serde_json features the
/// build enables, so equal configs give equal digests.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sort(value)).unwrap_or_default()
}

impl ImageConfig {
    /// Say the image was made at `epoch` (seconds; `SOURCE_DATE_EPOCH` for reproducible
    /// output): every step that makes a new image from an old one says so once.
    pub fn set_created(&mut self, epoch: i64) {
        self.json_mut().insert("created".into(), json!(rfc3339(epoch)));
    }

    /// An empty config for a new image on `platform` (no layers yet).
    pub fn new(platform: &Platform) -> Self {
        let mut value = Map::new();
        value.insert("architecture".into(), json!(platform.architecture));
        value.insert("os".into(), json!(platform.os));
        if let Some(v) = &platform.variant {
            value.insert("variant".into(), json!(v));
        }
        value.insert("created".into(), json!(rfc3339(source_date_epoch())));
        value.insert("config".into(), json!({}));
        value.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        value.insert("history".into(), json!([]));
        Self { value, raw: None }
    }

    /// Parse config bytes, keeping them for as long as nothing is changed.
    pub fn parse(raw: Bytes) -> Result<Self> {
        let value: Value = serde_json::from_slice(&raw).map_err(|e| Error::Json { what: "image config".into(), source: e })?;
        match value {
            Value::Object(value) => Ok(Self { value, raw: Some(raw) }),
            _ => Err(Error::Invalid {
                what: "image config".into(),
                value: "(non-object JSON)".into(),
                why: "a config is a JSON object".into(),
            }),
        }
    }

    /// The bytes to store: the original ones when unchanged, else canonical JSON.
    pub fn to_bytes(&self) -> Bytes {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => Bytes::from(canonical_json(&Value::Object(self.value.clone()))),
        }
    }

    /// The whole config as JSON.
    pub fn json(&self) -> &Map<String, Value> {
        &self.value
    }

    /// The whole config as JSON, for edits our methods do not cover.
    pub fn json_mut(&mut self) -> &mut Map<String, Value> {
        self.raw = None;
        &mut self.value
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }

    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.str_field("architecture").unwrap_or("").into(),
            os: self.str_field("os").unwrap_or("").into(),
            os_version: self.str_field("os.version").map(str::to_string),
            os_features: Vec::new(),
            variant: self.str_field("variant").map(str::to_string),
        }
    }

    /// `rootfs.diff_ids`, the uncompressed digests of the layers, base first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        let ids = self.value.get("rootfs").and_then(|r| r.get("diff_ids")).cloned().unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(ids).map_err(|e| Error::Json { what: "rootfs.diff_ids".into(), source: e })
    }

    /// The config's history, oldest first.
    pub fn history(&self) -> Result<Vec<History>> {
        match self.value.get("history") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(h) => serde_json::from_value(h.clone()).map_err(|e| Error::Json { what: "history".into(), source: e }),
        }
    }

    /// The container config (`config` key), created when missing.
    pub fn container_mut(&mut self) -> &mut Map<String, Value> {
        let v = self.json_mut().entry("config").or_insert_with(|| json!({}));
        if !v.is_object() {
            *v = json!({});
        }
        v.as_object_mut().expect("just made an object")
    }

    /// The container config (`config` key).
    pub fn container(&self) -> Option<&Map<String, Value>> {
        self.value.get("config").and_then(Value::as_object)
    }

    /// The `Env` list.
    pub fn env(&self) -> Vec<String> {
        self.container()
            .and_then(|c| c.get("Env"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// Set `KEY=VALUE`: replaces KEY where it is, or appends it.
    pub fn set_env(&mut self, kv: &str) -> Result<()> {
        let key = env_key(kv)?;
        let mut env = self.env();
        match env.iter().position(|e| e.split('=').next() == Some(key)) {
            Some(i) => env[i] = kv.to_string(),
            None => env.push(kv.to_string()),
        }
        self.container_mut().insert("Env".into(), json!(env));
        Ok(())
    }

    /// Remove KEY from `Env`.
    pub fn unset_env(&mut self, key: &str) {
        let env: Vec<String> = self.env().into_iter().filter(|e| e.split('=').next() != Some(key)).collect();
        self.container_mut().insert("Env".into(), json!(env));
    }

    /// Append a layer's diff_id and its history entry.
    pub fn push_layer(&mut self, diff_id: &Digest, history: History) {
        let rootfs = self.json_mut().entry("rootfs").or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if !rootfs.is_object() {
            *rootfs = json!({"type": "layers"});
        }
        let r = rootfs.as_object_mut().expect("object");
        r.entry("type").or_insert_with(|| json!("layers"));
        let ids = r.entry("diff_ids").or_insert_with(|| json!([]));
        if !ids.is_array() {
            *ids = json!([]);
        }
        ids.as_array_mut().expect("array").push(json!(diff_id.to_string()));
        self.push_history(history);
    }

    /// Append a history entry (for a layer or, with `empty_layer`, a config step).
    pub fn push_history(&mut self, history: History) {
        let h = self.json_mut().entry("history").or_insert_with(|| json!([]));
        if !h.is_array() {
            *h = json!([]);
        }
        h.as_array_mut().expect("array").push(serde_json::to_value(history).unwrap_or(Value::Null));
    }

    /// Remove the layer at `index` (counting only layers) from diff_ids and history.
    pub fn remove_layer(&mut self, index: usize) -> Result<()> {
        let mut ids = self.diff_ids()?;
        if index >= ids.len() {
            return Err(Error::Invalid {
                what: "layer index".into(),
                value: index.to_string(),
                why: format!("the image has {} layers", ids.len()),
            });
        }
        ids.remove(index);
        let mut history = self.history()?;
        // History entries with empty_layer do not count; find the one that is layer `index`.
        let mut seen = 0;
        let pos = history.iter().position(|h| {
            if h.empty_layer {
                return false;
            }
            seen += 1;
            seen == index + 1
        });
        if let Some(p) = pos {
            history.remove(p);
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let m = self.json_mut();
        m.entry("rootfs").or_insert_with(|| json!({"type": "layers"}))["diff_ids"] = json!(ids);
        if m.contains_key("history") {
            m.insert("history".into(), serde_json::to_value(history).unwrap_or(Value::Null));
        }
        Ok(())
    }

    /// Apply a set of edits, each leaving every other field as it was.
    pub fn apply(&mut self, edit: &ConfigEdit) -> Result<()> {
        for kv in &edit.env {
            self.set_env(kv)?;
        }
        for k in &edit.env_unset {
            self.unset_env(k);
        }
        let set_list = |c: &mut Map<String, Value>, key: &str, v: &Option<Vec<String>>| {
            if let Some(list) = v {
                // An empty list clears the field, as `--entrypoint ''` does in docker.
                c.insert(key.into(), if list.is_empty() { Value::Null } else { json!(list) });
            }
        };
        let set_str = |c: &mut Map<String, Value>, key: &str, v: &Option<String>| {
            if let Some(s) = v {
                c.insert(key.into(), json!(s));
            }
        };
        if edit.touches_container() {
            let c = self.container_mut();
            set_list(c, "Entrypoint", &edit.entrypoint);
            set_list(c, "Cmd", &edit.cmd);
            set_str(c, "WorkingDir", &edit.workdir);
            set_str(c, "User", &edit.user);
            set_str(c, "StopSignal", &edit.stop_signal);
            if !edit.labels.is_empty() || !edit.labels_unset.is_empty() {
                let mut labels = object_at(c, "Labels");
                for (k, v) in &edit.labels {
                    labels.insert(k.clone(), json!(v));
                }
                for k in &edit.labels_unset {
                    labels.remove(k);
                }
                c.insert("Labels".into(), Value::Object(labels));
            }
            if !edit.exposed_ports.is_empty() {
                let mut ports = object_at(c, "ExposedPorts");
                for p in &edit.exposed_ports {
                    ports.insert(normalise_port(p)?, json!({}));
                }
                c.insert("ExposedPorts".into(), Value::Object(ports));
            }
            if !edit.volumes.is_empty() {
                let mut vols = object_at(c, "Volumes");
                for v in &edit.volumes {
                    // BuildKit's rule (and so every Dockerfile's): any path but an empty one.
                    if v.is_empty() {
                        return Err(Error::Invalid { what: "volume".into(), value: v.clone(), why: "a volume needs a path".into() });
                    }
                    vols.insert(v.clone(), json!({}));
                }
                c.insert("Volumes".into(), Value::Object(vols));
            }
        }
        if let Some(a) = &edit.author {
            self.json_mut().insert("author".into(), json!(a));
        }
        if let Some(c) = &edit.created {
            time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).map_err(|e| Error::Invalid {
                what: "created".into(),
                value: c.clone(),
                why: format!("expected an RFC 3339 time such as 2024-01-31T12:00:00Z ({e})"),
            })?;
            self.json_mut().insert("created".into(), json!(c));
        }
        if let Some(p) = &edit.platform {
            let p: Platform = p.parse()?;
            let m = self.json_mut();
            m.insert("architecture".into(), json!(p.architecture));
            m.insert("os".into(), json!(p.os));
            match &p.variant {
                Some(v) => m.insert("variant".into(), json!(v)),
                None => m.remove("variant"),
            };
        }
        Ok(())
    }
}

fn object_at(c: &Map<String, Value>, key: &str) -> Map<String, Value> {
    c.get(key).and_then(Value::as_object).cloned().unwrap_or_default()
}

fn env_key(kv: &str) -> Result<&str> {
    match kv.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(k),
        _ => Err(Error::Invalid { what: "environment variable".into(), value: kv.into(), why: "expected KEY=VALUE".into() }),
    }
}

/// `PORT[/PROTO]` as BuildKit takes it: a port or a range of them (0 to 65535), tcp, udp
/// or sctp in any case (kept in lower case).
fn normalise_port(p: &str) -> Result<String> {
    let p = if p.contains('/') { p.to_ascii_lowercase() } else { format!("{p}/tcp") };
    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
    let ok_num = num.split('-').all(|n| n.parse::<u16>().is_ok()) && num.split('-').count() <= 2;
    if !ok_num || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(Error::Invalid {
            what: "exposed port".into(),
            value: p.clone(),
            why: "expected PORT[/tcp|udp|sctp], e.g. 8080/tcp".into(),
        });
    }
    Ok(p)
}

/// Edits to an image config; every field is optional and what is not named is kept.
/// This is the `config` step of a pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigEdit {
    /// `KEY=VALUE` pairs to set (replaced in place, or appended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Variable names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_unset: Vec<String>,
    /// The entrypoint (an empty list clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default command (an empty list clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The user (`name`, `uid`, `uid:gid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Labels to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_unset: Vec<String>,
    /// Ports to expose (`8080`, `53/udp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// Volume paths to declare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// The stop signal (`SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Manifest annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The image author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The platform (`linux/arm64/v8`) the config declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl ConfigEdit {
    fn touches_container(&self) -> bool {
        self.entrypoint.is_some()
            || self.cmd.is_some()
            || self.workdir.is_some()
            || self.user.is_some()
            || self.stop_signal.is_some()
            || !self.labels.is_empty()
            || !self.labels_unset.is_empty()
            || !self.exposed_ports.is_empty()
            || !self.volumes.is_empty()
    }

    /// A one-line summary for plans and history.
    pub fn summary(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RICH: &str = r##"{
      "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
      "container": "abc", "docker_version": "24.0.7",
      "container_config": {"Hostname": "abc", "Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
      "config": {
        "Env": ["PATH=/usr/bin", "A=1"], "Cmd": ["sh"], "ArgsEscaped": true,
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000},
        "Shell": ["/bin/bash", "-c"], "OnBuild": ["RUN echo hi"],
        "Labels": {"z": "1", "a": "2"}
      },
      "rootfs": {"type": "layers", "diff_ids": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
      "history": [{"created_by": "x", "empty_layer": true}, {"created_by": "y"}]
    }"##;

    #[test]
    fn untouched_config_keeps_its_bytes() {
        let c = ImageConfig::parse(Bytes::from_static(RICH.as_bytes())).unwrap();
        assert_eq!(c.to_bytes(), RICH.as_bytes());
    }

    #[test]
    fn edits_keep_unmodelled_fields() {
        let mut c = ImageConfig::parse(Bytes::from_static(RICH.as_bytes())).unwrap();
        let edit = ConfigEdit {
            env: vec!["FOO=BAR".into(), "A=2".into()],
            env_unset: vec!["PATH".into()],
            entrypoint: Some(vec!["/bin/tini".into()]),
            workdir: Some("/app".into()),
            user: Some("1000:1000".into()),
            labels: [("m".to_string(), "3".to_string())].into(),
            labels_unset: vec!["z".into()],
            exposed_ports: vec!["8080".into(), "53/udp".into()],
            volumes: vec!["/data".into()],
            stop_signal: Some("SIGINT".into()),
            author: Some("me".into()),
            created: Some("2025-02-03T04:05:06Z".into()),
            platform: Some("linux/arm64/v8".into()),
            ..Default::default()
        };
        c.apply(&edit).unwrap();
        let out: Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        insta::assert_json_snapshot!(out);
        let text = String::from_utf8(c.to_bytes().to_vec()).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"m\"").unwrap(), "labels are sorted");
    }

    #[test]
    fn remove_layer_skips_empty_history() {
        let mut c = ImageConfig::parse(Bytes::from_static(RICH.as_bytes())).unwrap();
        c.remove_layer(0).unwrap();
        assert!(c.diff_ids().unwrap().is_empty());
        let h = c.history().unwrap();
        assert_eq!(h.len(), 1);
        assert!(h[0].empty_layer);
        assert!(c.remove_layer(0).unwrap_err().to_string().contains("has 0 layers"));
    }

    #[test]
    fn ports_and_volumes_as_buildkit_takes_them() {
        let mut c = ImageConfig::new(&Platform::host());
        let edit = ConfigEdit {
            exposed_ports: vec!["0".into(), "53/UDP".into(), "8000-8010".into()],
            volumes: vec!["data".into()],
            ..Default::default()
        };
        c.apply(&edit).unwrap();
        let cfg = c.container().unwrap();
        assert_eq!(cfg["ExposedPorts"].as_object().unwrap().keys().collect::<Vec<_>>(), ["0/tcp", "53/udp", "8000-8010/tcp"]);
        assert!(cfg["Volumes"].as_object().unwrap().contains_key("data"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = ImageConfig::new(&Platform::host());
        for (edit, needle) in [
            (ConfigEdit { env: vec!["NOEQUALS".into()], ..Default::default() }, "NOEQUALS"),
            (ConfigEdit { exposed_ports: vec!["http".into()], ..Default::default() }, "http"),
            (ConfigEdit { created: Some("yesterday".into()), ..Default::default() }, "yesterday"),
            (ConfigEdit { exposed_ports: vec!["80/quic".into()], ..Default::default() }, "80/quic"),
            (ConfigEdit { exposed_ports: vec!["1-2-3".into()], ..Default::default() }, "1-2-3"),
            (ConfigEdit { volumes: vec![String::new()], ..Default::default() }, "a volume needs a path"),
        ] {
            let e = c.apply(&edit).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
