//! `imgtool map`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// What `imgtool map` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MapAction {
    /// Create and start the containers named (all, when none are), what they need first.
    Startup,
    /// Re-create exactly the containers that no longer match the map; start stopped ones.
    Update,
    /// Stop and remove, dependents first.
    Shutdown,
    /// Stop, dependents first.
    Stop,
    /// Stop and start.
    Restart,
    /// Remove stopped containers, dependents first.
    Remove,
    /// Create what is missing, without starting it.
    Create,
    /// Start what is stopped.
    Start,
    /// Send --signal (default SIGKILL).
    Kill,
    /// Run the map's exec commands in the running containers named.
    Exec,
    /// One line per container: its state, and what differs from the map.
    Status,
    /// What `update` would do, and why, doing nothing.
    Plan,
    /// Remove every exited container of the engine, of a map or not (no map file).
    CleanupContainers,
    /// Remove every image of the engine that no tag names (no map file).
    CleanupImages,
    /// Stop and remove every container of the engine (no map file).
    RemoveAllContainers,
}

#[derive(Debug, Args)]
pub struct MapArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: MapAction,
    /// The map file (docker-map's YAML, or the same in a .toml file).
    pub file: Option<PathBuf>,
    /// Containers (`config`, `config.instance`) or groups; all when none is named.
    pub targets: Vec<String>,
    /// The engine: unix:///PATH or tcp://HOST:PORT (default: DOCKER_HOST, then
    /// unix:///var/run/docker.sock). TLS: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
    #[arg(short = 'H', long)]
    pub host: Option<String>,
    /// With startup and update: wait at most SECONDS for each container with a health check
    /// to be healthy before starting what depends on it.
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// With kill: the signal.
    #[arg(long, default_value = "SIGKILL")]
    pub signal: String,
    /// The engines the map's `clients` name (docker-map's clients file: NAME with
    /// base_url, interfaces, interfaces_ipv6, tls, timeout). `__default__` is --host's.
    #[arg(long, value_name = "FILE")]
    pub clients: Option<PathBuf>,
}
