//! What the executor needs of a container engine, and what it reports. Only the executor and
//! the CLI know an engine; the planner sees [`Seen`] values.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::Error;

/// A container of the map as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The engine's id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// Running, or not (and then how it ended).
    pub state: RunState,
    /// The id of the image it was created from.
    pub image_id: String,
    /// Its labels (the map's, among them).
    pub labels: BTreeMap<String, String>,
    /// The networks it is on.
    pub networks: std::collections::BTreeSet<String>,
}

/// Whether a container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Running (or restarting, or paused).
    Running,
    /// Created and never started.
    Created,
    /// Exited, with its code.
    Exited(i64),
    /// Anything else the engine says (`dead`, `removing`).
    Other(String),
}

/// A health check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The container has no health check (or the engine does not run them).
    None,
    /// Still in its start period, or not yet checked.
    Starting,
    /// The last checks passed.
    Healthy,
    /// Its checks failed.
    Unhealthy,
}

/// An engine's answer to running a command in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// Its exit code.
    pub code: i64,
    /// What it wrote (stdout and stderr, interleaved), cut to its last 4 KiB.
    pub output: String,
}

/// A Docker Engine API, as the executor uses it. Every call names what it acts on, so
/// errors can say which container, which engine and which call.
#[async_trait]
pub trait Engine: Send + Sync {
    /// How the engine is reached (`unix:///run/docker.sock`), for messages.
    fn describe(&self) -> String;
    /// Whether the engine runs containers' health checks itself (podman without systemd
    /// does not: imgtool then runs them through exec).
    fn runs_healthchecks(&self) -> bool {
        true
    }
    /// Every container carrying `label=value`, running or not.
    async fn containers(&self, label: &str, value: &str) -> Result<Vec<Seen>, Error>;
    /// The id of the image `reference` names, if the engine has it.
    async fn image_id(&self, reference: &str) -> Result<Option<String>, Error>;
    /// Load images from a `docker save` tarball, streamed.
    async fn load(&self, tarball: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>) -> Result<(), Error>;
    /// Create a container named `name` from an Engine API create body, joined to every
    /// network of its `NetworkingConfig` (engines before API 1.44 take one at create: the
    /// others are joined after it); its id. A container that cannot join them all is removed.
    async fn create(&self, name: &str, body: &serde_json::Value) -> Result<String, Error>;
    /// Start a container.
    async fn start(&self, id: &str) -> Result<(), Error>;
    /// Stop a container, waiting `timeout` seconds (the engine's default when `None`).
    async fn stop(&self, id: &str, timeout: Option<i64>) -> Result<(), Error>;
    /// Send `signal` to a running container.
    async fn kill(&self, id: &str, signal: &str) -> Result<(), Error>;
    /// Remove a container (stopped first if it runs), and its anonymous volumes.
    async fn remove(&self, id: &str) -> Result<(), Error>;
    /// Its health.
    async fn health(&self, id: &str) -> Result<Health, Error>;
    /// Run `cmd` as `user` in a running container and wait for it.
    async fn exec(&self, id: &str, cmd: &[String], user: Option<&str>) -> Result<ExecOutcome, Error>;
    /// Extract a tar stream at `path` in a container, keeping the owners it names.
    async fn put_archive(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<(), Error>;
    /// Create the named volume unless it exists (its name, driver, driver options and
    /// labels), owned by `owner` (uid, gid) where the engine can say so at creation (podman:
    /// it would otherwise give the volume to the first container that mounts it); whether it
    /// was created.
    async fn ensure_volume(&self, volume: &crate::VolumeSpecOut, owner: Option<(u32, u32)>) -> Result<bool, Error>;
    /// Named volumes carrying `label=value`.
    async fn volumes(&self, label: &str, value: &str) -> Result<Vec<String>, Error>;
    /// Remove a named volume.
    async fn remove_volume(&self, name: &str) -> Result<(), Error>;
    /// Create the network `name` from an Engine API create body unless it exists; whether it
    /// was created.
    async fn ensure_network(&self, name: &str, body: &serde_json::Value) -> Result<bool, Error>;
    /// Networks carrying `label=value`.
    async fn networks(&self, label: &str, value: &str) -> Result<Vec<String>, Error>;
    /// Remove a network.
    async fn remove_network(&self, name: &str) -> Result<(), Error>;
    /// Remove an image (`cleanup_images`).
    async fn remove_image(&self, id: &str) -> Result<(), Error>;
    /// Images with no tag (`cleanup_images` removes them).
    async fn dangling_images(&self) -> Result<Vec<String>, Error>;
    /// Every container, of the map or not (`cleanup_containers`, `remove_all_containers`).
    async fn all_containers(&self) -> Result<Vec<Seen>, Error>;
}
