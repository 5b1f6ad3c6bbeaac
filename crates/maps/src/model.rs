//! The map, as docker-map defines it: containers with their volumes, ports, links, users and
//! permissions; the volumes, host paths and networks they name. Values here are resolved from
//! the many shapes a map file may use (see `file.rs`), not yet from `extends` (see
//! [`ContainerMap::resolved`]).

use std::collections::BTreeMap;

use serde::Serialize;

/// Options passed through to the engine: docker-py's names (`environment`, `mem_limit`) or
/// the Engine API's own (`Env`, `Memory`).
pub type Options = serde_json::Map<String, serde_json::Value>;

/// A container map (docker-map's `ContainerMap`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerMap {
    /// The map's name: every container, volume and network on the engine starts with it.
    pub name: String,
    /// Prefix of image names without a `/`.
    pub repository: Option<String>,
    /// The tag of images named without one (else `latest`).
    pub default_tag: Option<String>,
    /// Containers' domain name.
    pub default_domain: Option<String>,
    /// Whether containers get a host name from their name (unset means yes).
    pub set_hostname: Option<bool>,
    /// Name attached volumes `<map>.<container>.<alias>` instead of `<map>.<alias>`.
    pub use_attached_parent_name: bool,
    /// The engines (clients) containers run on, unless a container names its own.
    pub clients: Vec<String>,
    /// Names for sets of containers (`config` or `config.instance`).
    pub groups: BTreeMap<String, Vec<String>>,
    /// Root of relative host paths.
    pub host_root: Option<String>,
    /// The map file's directory: a relative `host_root`, and relative host paths when there
    /// is no `host_root`, are taken from there (as compose takes them from its file's).
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
    /// The containers, by configuration name.
    pub containers: BTreeMap<String, ContainerConfig>,
    /// Volume aliases: where they are mounted in containers, and how attached ones are made.
    pub volumes: BTreeMap<String, VolumeConfig>,
    /// Volume aliases' paths on the host.
    pub host: BTreeMap<String, HostPath>,
    /// Networks the map creates.
    pub networks: BTreeMap<String, NetworkConfig>,
}

/// One container configuration (docker-map's `ContainerConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerConfig {
    /// A template for `extends` only: never created.
    pub r#abstract: bool,
    /// Configurations this one inherits from, in order.
    pub extends: Vec<String>,
    /// The image (default: the configuration's name).
    pub image: Option<String>,
    /// One container per instance; none means a single container.
    pub instances: Vec<String>,
    /// Engines to run on (overrides the map's).
    pub clients: Vec<String>,
    /// Anonymous volumes (paths in the container).
    pub shares: Vec<String>,
    /// Host directories mounted in.
    pub binds: Vec<Bind>,
    /// Named volumes this container owns and shares with those that use them.
    pub attaches: Vec<Attach>,
    /// Volumes (or all volumes of containers) of others it mounts.
    pub uses: Vec<Use>,
    /// Legacy links to other containers.
    pub links: Vec<Link>,
    /// Ports exposed, and published on the host.
    pub exposes: Vec<Port>,
    /// User (`name`, `uid`, `uid:gid`).
    pub user: Option<String>,
    /// `chmod` mode of its attached volumes (`u=rwX,g=rX,o=`).
    pub permissions: Option<String>,
    /// Seconds to wait for it to stop.
    pub stop_timeout: Option<i64>,
    /// The signal that stops it.
    pub stop_signal: Option<String>,
    /// Seconds to wait after starting it.
    pub start_delay: Option<f64>,
    /// `host`, `bridge`, `none`, `container:NAME`, or another container of the map.
    pub network_mode: Option<NetworkMode>,
    /// Networks it joins.
    pub networks: Vec<Endpoint>,
    /// Commands run in it after it starts.
    pub exec_commands: Vec<ExecCommand>,
    /// Its health check.
    pub healthcheck: Option<HealthCheck>,
    /// Kept when the map is shut down or updated unless asked.
    pub persistent: Option<bool>,
    /// Further create options.
    pub create_options: Options,
    /// Further host configuration.
    pub host_config: Options,
}

/// A host path for an alias: one, or one per instance (`default` for the rest).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HostPath {
    /// The same for every instance.
    One(String),
    /// By instance name; `default` for instances not listed.
    PerInstance(BTreeMap<String, String>),
}

/// A host directory mounted in a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Bind {
    /// An alias: its container path from `volumes`, its host path from `host`.
    Alias {
        /// The volume alias.
        alias: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// A path in the container and one on the host, written out.
    Path {
        /// Where in the container.
        path: String,
        /// Where on the host (relative: under the host root).
        host: HostPath,
        /// Mounted read-only.
        readonly: bool,
    },
}

/// A named volume a container owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attach {
    /// Its alias.
    pub alias: String,
    /// Where it is mounted, when not the alias's `volumes` path.
    pub path: Option<String>,
}

/// What a container uses of others: an attached volume, or a container's volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    /// An attached alias (`config.alias` with parent names), a configuration, or
    /// `config.instance`.
    pub name: String,
    /// Where to mount it, when not the alias's `volumes` path.
    pub path: Option<String>,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A link to another container of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// `config` or `config.instance`.
    pub container: String,
    /// The name it is reached by (default: its host name).
    pub alias: Option<String>,
}

/// A port exposed, perhaps published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// The container's port (`80`, `53/udp`).
    pub exposed: String,
    /// The host port it is published on.
    pub host_port: Option<u16>,
    /// The host address (an interface alias of the client, or an address).
    pub interface: Option<String>,
    /// Published on the interface's IPv6 address.
    pub ipv6: bool,
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum NetworkMode {
    /// `host`, `bridge` or `none`.
    Preset(String),
    /// `container:NAME` of a container outside the map.
    External(String),
    /// Another container of the map (`config` or `config.instance`): it comes first.
    Container(String),
}

/// A network a container joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The network (of the map's `networks`, or `host`, `bridge`, `none`).
    pub network: String,
    /// Names it is reached by there.
    pub aliases: Vec<String>,
    /// Links in that network.
    pub links: Vec<Link>,
    /// A fixed IPv4 address.
    pub ipv4_address: Option<String>,
    /// A fixed IPv6 address.
    pub ipv6_address: Option<String>,
    /// Link-local addresses.
    pub link_local_ips: Vec<String>,
}

/// When an exec command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecPolicy {
    /// After every start.
    Restart,
    /// Once, after the container is created and first started.
    Initial,
}

/// A command run in a container after it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecCommand {
    /// The command: argv, or one string run by `/bin/sh -c`.
    pub cmd: Command,
    /// Who runs it (default: the container's user).
    pub user: Option<String>,
    /// When.
    pub policy: ExecPolicy,
}

/// A command as a map gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Command {
    /// A string, split as a shell would into words (docker-py's `shlex.split`).
    Line(String),
    /// Words.
    Argv(Vec<String>),
}

/// A health check (durations in nanoseconds, as the Engine API takes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Between checks.
    pub interval: Option<i64>,
    /// A check's limit.
    pub timeout: Option<i64>,
    /// Failures before unhealthy.
    pub retries: Option<i64>,
    /// Failures that do not count at first.
    pub start_period: Option<i64>,
}

/// A volume alias (docker-map's `VolumeConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VolumeConfig {
    /// Its path in containers.
    pub default_path: Option<String>,
    /// The volume driver of an attached volume (default `local`).
    pub driver: Option<String>,
    /// Driver options.
    pub driver_options: BTreeMap<String, String>,
    /// Further volume create options.
    pub create_options: Options,
    /// Owner of the attached volume (else the attaching container's user).
    pub user: Option<String>,
    /// `chmod` mode of the attached volume (else the attaching container's).
    pub permissions: Option<String>,
}

/// A network of the map (docker-map's `NetworkConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkConfig {
    /// The driver (default `bridge`).
    pub driver: Option<String>,
    /// Driver options.
    pub driver_options: BTreeMap<String, String>,
    /// No access from outside.
    pub internal: bool,
    /// Further network create options.
    pub create_options: Options,
}
