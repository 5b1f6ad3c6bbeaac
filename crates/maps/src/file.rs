//! Reading a map file: docker-map's YAML, unchanged, or the same in TOML. Keys are checked
//! as they are read, so an unknown one is reported with its line; the many shapes docker-map
//! accepts for a value (a scalar, a list, a mapping) are read as they come and turned into
//! the model by `shapes.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::Error;
use crate::model::{ContainerConfig, ContainerMap, NetworkConfig, Options, VolumeConfig};
use crate::shapes;

/// The largest map file read: maps are written by hand.
const FILE_LIMIT: u64 = 1 << 20;

/// A value given as one item, a list of items, or a mapping (whose entries become
/// `[key, value]` items), as docker-map reads its list keys.
#[derive(Debug, Default)]
pub(crate) struct Items(pub Vec<Value>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value, a list or a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Items, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Items, E> {
                Ok(Items(vec![Value::Bool(v)]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Items, E> {
                Ok(Items(vec![v.into()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Items, E> {
                Ok(Items(vec![v.into()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Items, E> {
                Ok(Items(vec![v.into()]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Items, E> {
                Ok(Items(vec![v.into()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(Items(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Value, Value>()? {
                    out.push(Value::Array(vec![k, v]));
                }
                Ok(Items(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A container as written: list keys in any shape, every other key typed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContainer {
    #[serde(rename = "abstract")]
    pub r#abstract: Option<bool>,
    #[serde(default)]
    pub extends: Items,
    pub image: Option<String>,
    #[serde(default)]
    pub instances: Items,
    #[serde(default)]
    pub clients: Items,
    #[serde(default)]
    pub shares: Items,
    #[serde(default)]
    pub binds: Items,
    #[serde(default)]
    pub attaches: Items,
    #[serde(default)]
    pub uses: Items,
    #[serde(default)]
    pub links: Items,
    #[serde(default)]
    pub exposes: Items,
    pub user: Option<Value>,
    pub permissions: Option<String>,
    pub stop_timeout: Option<i64>,
    pub stop_signal: Option<Value>,
    pub start_delay: Option<f64>,
    pub network_mode: Option<Value>,
    #[serde(default)]
    pub networks: Items,
    #[serde(default)]
    pub exec_commands: Items,
    pub healthcheck: Option<Value>,
    pub persistent: Option<bool>,
    #[serde(default)]
    pub create_options: Options,
    #[serde(default)]
    pub host_config: Options,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawVolume {
    Path(String),
    Full(Box<RawVolumeFull>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolumeFull {
    default_path: Option<String>,
    driver: Option<String>,
    #[serde(default)]
    driver_options: BTreeMap<String, String>,
    #[serde(default)]
    create_options: Options,
    user: Option<Value>,
    permissions: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    driver: Option<String>,
    #[serde(default)]
    driver_options: BTreeMap<String, String>,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    create_options: Options,
}

/// The whole file: docker-map's reserved keys, and containers under `containers` or beside
/// them at the top.
#[derive(Debug, Default)]
struct RawMap {
    name: Option<String>,
    repository: Option<String>,
    default_tag: Option<String>,
    default_domain: Option<String>,
    set_hostname: Option<bool>,
    use_attached_parent_name: Option<bool>,
    clients: Items,
    groups: BTreeMap<String, Items>,
    host_root: Option<String>,
    containers: Vec<(String, RawContainer)>,
    volumes: BTreeMap<String, Option<RawVolume>>,
    host: BTreeMap<String, Value>,
    networks: BTreeMap<String, Option<RawNetwork>>,
}

impl<'de> Deserialize<'de> for RawMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a container map (a mapping of containers and the map's settings)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMap, A::Error> {
                let mut m = RawMap::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => m.name = map.next_value()?,
                        "repository" => m.repository = map.next_value()?,
                        "default_tag" => m.default_tag = map.next_value()?,
                        "default_domain" => m.default_domain = map.next_value()?,
                        "set_hostname" => m.set_hostname = map.next_value()?,
                        "use_attached_parent_name" => m.use_attached_parent_name = map.next_value()?,
                        "clients" => m.clients = map.next_value()?,
                        "groups" => m.groups = map.next_value::<Option<_>>()?.unwrap_or_default(),
                        "host_root" => m.host_root = map.next_value()?,
                        "containers" => {
                            let c: Option<BTreeMap<String, Option<RawContainer>>> = map.next_value()?;
                            m.containers.extend(c.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())));
                        }
                        "volumes" => m.volumes = map.next_value::<Option<_>>()?.unwrap_or_default(),
                        "host" => m.host = map.next_value::<Option<_>>()?.unwrap_or_default(),
                        "networks" => m.networks = map.next_value::<Option<_>>()?.unwrap_or_default(),
                        // Any other key names a container, as in docker-map.
                        _ => {
                            let c: Option<RawContainer> = map.next_value()?;
                            m.containers.push((key, c.unwrap_or_default()));
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// Read the map in `file` (YAML, or TOML when its name ends in `.toml`). Its name is the
/// file's `name` key, else the file's name without its extension.
pub fn load_map(file: &Path) -> Result<ContainerMap, Error> {
    let fail = |why: String| Error::File { file: file.to_path_buf(), why };
    let (text, toml) = read_text(file)?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut map = parse_map(&text, toml, &stem).map_err(fail)?;
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    map.base_dir = Some(std::path::absolute(dir).map_err(|e| fail(format!("finding its directory: {e}")))?);
    Ok(map)
}

/// A map or clients file's text, no larger than maps are, and whether it is TOML.
pub(crate) fn read_text(file: &Path) -> Result<(String, bool), Error> {
    let fail = |why: String| Error::File { file: file.to_path_buf(), why };
    let meta = std::fs::metadata(file).map_err(|e| fail(e.to_string()))?;
    if meta.len() > FILE_LIMIT {
        return Err(fail(format!("larger than {FILE_LIMIT} bytes; a map is not that big")));
    }
    let text = std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?;
    Ok((text, file.extension().is_some_and(|e| e == "toml")))
}

/// Parse a map from `text`; `default_name` names it when it has no `name` key.
pub fn parse_map(text: &str, toml: bool, default_name: &str) -> Result<ContainerMap, String> {
    convert(parse_text(text, toml)?, default_name)
}

/// Deserialize YAML or TOML `text`, refusing what could expand beyond its size (YAML
/// aliases, TOML keys of many parts).
pub(crate) fn parse_text<T: serde::de::DeserializeOwned>(text: &str, toml: bool) -> Result<T, String> {
    if toml {
        if let Some(line) = deep_toml_key(text) {
            return Err(format!("line {line}: a key of more than {MAX_KEY_PARTS} dotted parts; a map needs no such depth"));
        }
        toml::from_str(text).map_err(|e| e.to_string())
    } else {
        if let Some((line, alias)) = yaml_alias(text) {
            return Err(format!(
                "line {line}: the alias *{alias}: YAML aliases are not read (a few can expand to more than memory holds); use `extends` to share settings"
            ));
        }
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }
}

/// The most parts a TOML key may have (`a.b.c`): each is a level of tables to build and drop.
const MAX_KEY_PARTS: usize = 32;

/// The first line whose key (a `[table]` header or a `key =`) has too many dotted parts.
fn deep_toml_key(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let key = if l.starts_with('[') { l } else { l.split('=').next().unwrap_or("") };
            key.matches('.').count() >= MAX_KEY_PARTS
        })
        .map(|i| i + 1)
}

/// The first YAML alias (`*name` where a value begins), with its line: outside quotes and
/// comments, after `: `, `- `, `[`, `{`, `,` or at the start of a line.
fn yaml_alias(text: &str) -> Option<(usize, String)> {
    for (n, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let (mut quote, mut start) = (None::<u8>, true);
        for (i, &c) in b.iter().enumerate() {
            match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                    continue;
                }
                None if (c == b'\'' || c == b'"') && start => quote = Some(c),
                None if c == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') => break,
                None if c == b'*' && start => {
                    let name: String = line[i + 1..].chars().take_while(|c| !c.is_whitespace() && !",]}".contains(*c)).collect();
                    if !name.is_empty() {
                        return Some((n + 1, name));
                    }
                }
                None => {}
            }
            start = match c {
                b' ' | b'\t' => start || i == 0 || matches!(b[i - 1], b':' | b'-' | b'[' | b'{' | b',' | b' ' | b'\t') && start_after(b, i),
                b'[' | b'{' | b',' => true,
                _ => false,
            };
        }
    }
    None
}

/// Whether the blank at `i` follows a place where a value begins.
fn start_after(b: &[u8], i: usize) -> bool {
    let before = b[..i].iter().rposition(|c| *c != b' ' && *c != b'\t');
    match before {
        None => true,
        Some(j) => matches!(b[j], b':' | b'-' | b'[' | b'{' | b','),
    }
}

fn convert(raw: RawMap, default_name: &str) -> Result<ContainerMap, String> {
    let name = raw.name.clone().unwrap_or_else(|| default_name.to_string());
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) || name.starts_with(['.', '-']) {
        return Err(format!("the map's name {name:?} cannot name containers: use letters, digits, '_', '.' and '-' (set `name:`)"));
    }
    let mut map = ContainerMap {
        name,
        repository: raw.repository,
        default_tag: raw.default_tag,
        default_domain: raw.default_domain,
        set_hostname: raw.set_hostname,
        use_attached_parent_name: raw.use_attached_parent_name.unwrap_or(false),
        clients: shapes::strings(raw.clients.0, "clients")?,
        host_root: raw.host_root,
        ..Default::default()
    };
    for (group, members) in raw.groups {
        let members = shapes::strings(members.0, &format!("groups: {group}"))?;
        map.groups.insert(group, members);
    }
    for (name, c) in raw.containers {
        let config = container(c).map_err(|e| format!("container {name}: {e}"))?;
        if map.containers.insert(name.clone(), config).is_some() {
            return Err(format!("container {name} is defined twice"));
        }
    }
    for (alias, v) in raw.volumes {
        let v = match v {
            None => VolumeConfig::default(),
            Some(RawVolume::Path(p)) => VolumeConfig { default_path: Some(p), ..Default::default() },
            Some(RawVolume::Full(f)) => VolumeConfig {
                default_path: f.default_path,
                driver: f.driver,
                driver_options: f.driver_options,
                create_options: f.create_options,
                user: f.user.map(|u| shapes::user(&u)).transpose().map_err(|e| format!("volumes: {alias}: user: {e}"))?,
                permissions: f.permissions,
            },
        };
        map.volumes.insert(alias, v);
    }
    for (alias, v) in raw.host {
        if alias == "root" {
            map.host_root = Some(v.as_str().ok_or("host: root: expected a path")?.to_string());
            continue;
        }
        map.host.insert(alias.clone(), shapes::host_path(&v).map_err(|e| format!("host: {alias}: {e}"))?);
    }
    for (name, n) in raw.networks {
        let n = n.unwrap_or_default();
        let config =
            NetworkConfig { driver: n.driver, driver_options: n.driver_options, internal: n.internal, create_options: n.create_options };
        map.networks.insert(name, config);
    }
    Ok(map)
}

/// Each item of a list key in its model shape; errors name the key and the item.
fn list<T>(items: Items, key: &str, f: fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    items.0.iter().enumerate().map(|(i, v)| f(v).map_err(|e| format!("{key}: item {}: {e}", i + 1))).collect()
}

fn container(c: RawContainer) -> Result<ContainerConfig, String> {
    Ok(ContainerConfig {
        r#abstract: c.r#abstract.unwrap_or(false),
        extends: shapes::strings(c.extends.0, "extends")?,
        image: c.image,
        instances: shapes::strings(c.instances.0, "instances")?,
        clients: shapes::strings(c.clients.0, "clients")?,
        shares: shapes::strings(c.shares.0, "shares")?,
        binds: list(c.binds, "binds", shapes::bind)?,
        attaches: list(c.attaches, "attaches", shapes::attach)?,
        uses: list(c.uses, "uses", shapes::uses)?,
        links: list(c.links, "links", shapes::link)?,
        exposes: list(c.exposes, "exposes", shapes::port)?,
        user: c.user.map(|u| shapes::user(&u)).transpose().map_err(|e| format!("user: {e}"))?,
        permissions: c.permissions,
        stop_timeout: c.stop_timeout,
        stop_signal: c.stop_signal.map(|s| shapes::scalar(&s)).transpose().map_err(|e| format!("stop_signal: {e}"))?,
        start_delay: c.start_delay,
        network_mode: c.network_mode.map(|m| shapes::network_mode(&m)).transpose().map_err(|e| format!("network_mode: {e}"))?,
        networks: list(c.networks, "networks", shapes::endpoint)?,
        exec_commands: list(c.exec_commands, "exec_commands", shapes::exec_command)?,
        healthcheck: c.healthcheck.map(|h| shapes::healthcheck(&h)).transpose().map_err(|e| format!("healthcheck: {e}"))?,
        persistent: c.persistent,
        create_options: c.create_options,
        host_config: c.host_config,
    })
}

impl ContainerMap {
    /// Read a map file (see [`load_map`]).
    pub fn load(file: &Path) -> Result<Self, Error> {
        load_map(file)
    }
}
