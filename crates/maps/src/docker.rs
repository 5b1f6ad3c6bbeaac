//! [`Engine`] on the Docker Engine API (Docker's own, or podman's compatible service), with
//! bollard, reached the way Docker's CLI reaches it: `DOCKER_HOST` (`unix://`, `tcp://`),
//! TLS from `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, ContainerSummaryStateEnum, HealthStatusEnum};
use bollard::query_parameters as q;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::Error;
use crate::engine::{Engine, ExecOutcome, Health, RunState, Seen};

/// Seconds an engine call may take before it is given up (loads of big images included).
const TIMEOUT: u64 = 600;
/// What is kept of an exec's output.
const OUTPUT_TAIL: usize = 4096;

/// A Docker Engine API endpoint.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// The same engine for calls that last as long as their work (an image load, a stop
    /// that waits, an exec): a client's `timeout` does not cut those short.
    slow: Docker,
    host: String,
    /// podman's compatible service, which differs where noted.
    podman: bool,
}

impl DockerEngine {
    /// Connect to `host` (`unix:///path`, `tcp://HOST:PORT`, `http://`, `https://`), or to
    /// what `DOCKER_HOST` says, or to `/var/run/docker.sock`; TLS when `DOCKER_TLS_VERIFY` is
    /// set or the scheme is `https`, with `ca.pem`, `cert.pem` and `key.pem` from
    /// `DOCKER_CERT_PATH` (default `~/.docker`). The API version is agreed with the engine.
    pub async fn connect(host: Option<&str>) -> Result<Self, Error> {
        Self::connect_client(host, &crate::ClientConfig::default()).await
    }

    /// Connect to the engine a map's client names: its `base_url` (else `default_host`, as
    /// [`DockerEngine::connect`] reads it), with its `tls` and `timeout`.
    pub async fn connect_client(default_host: Option<&str>, client: &crate::ClientConfig) -> Result<Self, Error> {
        let host = client
            .base_url
            .clone()
            .or_else(|| default_host.map(str::to_string))
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let fail = |why: String| Error::Engine { engine: host.clone(), call: "connect", target: "to the engine".into(), why };
        let timeout = match client.timeout {
            None => TIMEOUT,
            Some(t) if t.is_finite() && t >= 1.0 => t.ceil() as u64,
            Some(t) => return Err(fail(format!("timeout {t}: give at least one second"))),
        };
        let tls = client.tls.unwrap_or_else(|| std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0"))
            || host.starts_with("https://");
        // docker-py (and so docker-map's files) write unix://var/run/docker.sock.
        let host = match host.strip_prefix("unix://") {
            Some(path) if !path.starts_with('/') => format!("unix:///{path}"),
            _ => host,
        };
        let fail = |why: String| Error::Engine { engine: host.clone(), call: "connect", target: "to the engine".into(), why };
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_socket(path, timeout, bollard::API_DEFAULT_VERSION)
        } else if let Some(rest) =
            host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")).or_else(|| host.strip_prefix("https://"))
        {
            if tls {
                let certs = std::env::var_os("DOCKER_CERT_PATH")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
                    .ok_or_else(|| fail("TLS is asked for and neither DOCKER_CERT_PATH nor HOME is set".into()))?;
                Docker::connect_with_ssl(
                    &format!("https://{rest}"),
                    &certs.join("key.pem"),
                    &certs.join("cert.pem"),
                    &certs.join("ca.pem"),
                    timeout,
                    bollard::API_DEFAULT_VERSION,
                )
            } else {
                Docker::connect_with_http(&format!("http://{rest}"), timeout, bollard::API_DEFAULT_VERSION)
            }
        } else {
            return Err(fail("expected unix:///PATH, tcp://HOST:PORT, http:// or https://".into()));
        };
        let docker = docker.map_err(|e| fail(e.to_string()))?;
        let docker = docker.negotiate_version().await.map_err(|e| fail(format!("the engine does not answer: {e}")))?;
        let version = docker.version().await.map_err(|e| fail(format!("the engine does not answer: {e}")))?;
        let podman = version.components.unwrap_or_default().iter().any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let slow = docker.clone().with_timeout(std::time::Duration::from_secs(timeout.max(TIMEOUT)));
        Ok(Self { docker, slow, host, podman })
    }

    fn err(&self, call: &'static str, target: &str) -> impl FnOnce(bollard::errors::Error) -> Error + '_ {
        let target = target.to_string();
        move |e| Error::Engine { engine: self.host.clone(), call, target, why: why(&e) }
    }
}

/// The engine's own message, without bollard's wrapping.
fn why(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// The first field of `sent` (at the top, or in `HostConfig`) that `kept` lacks.
fn dropped(sent: &serde_json::Value, kept: &serde_json::Value) -> Option<String> {
    let (Some(s), Some(k)) = (sent.as_object(), kept.as_object()) else { return None };
    for (key, v) in s {
        match k.get(key) {
            None if !v.is_null() => return Some(key.clone()),
            Some(inner) if key == "HostConfig" => {
                if let Some(lost) = dropped(v, inner) {
                    return Some(format!("HostConfig.{lost}"));
                }
            }
            _ => {}
        }
    }
    None
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

fn filters(label: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{label}={value}")])])
}

#[async_trait]
impl Engine for DockerEngine {
    fn describe(&self) -> String {
        self.host.clone()
    }

    fn runs_healthchecks(&self) -> bool {
        !self.podman
    }

    async fn containers(&self, label: &str, value: &str) -> Result<Vec<Seen>, Error> {
        let opts = q::ListContainersOptions { all: true, filters: Some(filters(label, value)), ..Default::default() };
        self.list(opts).await
    }

    async fn all_containers(&self) -> Result<Vec<Seen>, Error> {
        self.list(q::ListContainersOptions { all: true, ..Default::default() }).await
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, Error> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(i.id),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.err("inspect image", reference)(e)),
        }
    }

    async fn load(&self, tarball: BoxStream<'static, std::io::Result<bytes::Bytes>>) -> Result<(), Error> {
        let mut answers = self.slow.import_image_stream(q::ImportImageOptions { quiet: true, ..Default::default() }, tarball, None);
        while let Some(a) = answers.next().await {
            let a = a.map_err(self.err("load", "an image"))?;
            if let Some(e) = a.error_detail.and_then(|d| d.message) {
                return Err(Error::Engine { engine: self.host.clone(), call: "load", target: "an image".into(), why: e });
            }
        }
        Ok(())
    }

    async fn create(&self, name: &str, body: &serde_json::Value) -> Result<String, Error> {
        let fail = |why: String| Error::Engine { engine: self.host.clone(), call: "create", target: name.into(), why };
        let config: ContainerCreateBody =
            serde_json::from_value(body.clone()).map_err(|e| fail(format!("the create options do not fit the Engine API: {e}")))?;
        // What the typed body drops would be lost without a word: refuse it instead.
        let kept = serde_json::to_value(&config).unwrap_or_default();
        if let Some(lost) = dropped(body, &kept) {
            return Err(fail(format!("{lost} is not a field of the Engine API's create body; check its name")));
        }
        let mut config = config;
        // The first network at create (the one NetworkMode names), the others after it.
        let mut later = Vec::new();
        if let Some(endpoints) = config.networking_config.as_mut().and_then(|n| n.endpoints_config.as_mut())
            && endpoints.len() > 1
        {
            let first = config.host_config.as_ref().and_then(|h| h.network_mode.clone()).unwrap_or_default();
            let others: Vec<String> = endpoints.keys().filter(|k| **k != first).cloned().collect();
            later = others.into_iter().filter_map(|k| endpoints.remove_entry(&k)).collect();
        }
        let opts = q::CreateContainerOptions { name: (!name.is_empty()).then(|| name.to_string()), ..Default::default() };
        let id = self.docker.create_container(Some(opts), config).await.map_err(self.err("create", name))?.id;
        for (network, endpoint) in later {
            let req = bollard::models::NetworkConnectRequest { container: id.clone(), endpoint_config: Some(endpoint) };
            if let Err(e) = self.docker.connect_network(&network, req).await {
                let mut why = why(&e);
                // Left on its first network only, it would carry the hash of all of them.
                if let Err(left) = self.remove(&id).await {
                    why = format!("{why}; and removing it again failed, remove it by hand: {left}");
                }
                return Err(Error::Engine { engine: self.host.clone(), call: "connect", target: format!("{name} to {network}"), why });
            }
        }
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), Error> {
        self.docker.start_container(id, None::<q::StartContainerOptions>).await.map_err(self.err("start", id))
    }

    async fn stop(&self, id: &str, timeout: Option<i64>) -> Result<(), Error> {
        let opts = q::StopContainerOptions { t: timeout.map(|t| t.clamp(0, i64::from(i32::MAX)) as i32), ..Default::default() };
        match self.slow.stop_container(id, Some(opts)).await {
            // 304: it was not running.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            r => r.map_err(self.err("stop", id)),
        }
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), Error> {
        self.docker.kill_container(id, Some(q::KillContainerOptions { signal: signal.into() })).await.map_err(self.err("kill", id))
    }

    async fn remove(&self, id: &str) -> Result<(), Error> {
        let opts = q::RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match self.docker.remove_container(id, Some(opts)).await {
            Err(e) if not_found(&e) => Ok(()),
            r => r.map_err(self.err("remove", id)),
        }
    }

    async fn health(&self, id: &str) -> Result<Health, Error> {
        let c = self.docker.inspect_container(id, None::<q::InspectContainerOptions>).await.map_err(self.err("inspect", id))?;
        let state = c.state.unwrap_or_default();
        Ok(match state.health.and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::None,
        })
    }

    async fn exec(&self, id: &str, cmd: &[String], user: Option<&str>) -> Result<ExecOutcome, Error> {
        let config = bollard::exec::CreateExecOptions::<String> {
            cmd: Some(cmd.to_vec()),
            user: user.map(str::to_string),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self.slow.create_exec(id, config).await.map_err(self.err("exec", id))?.id;
        let mut output = Vec::new();
        if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } =
            self.slow.start_exec(&exec, None).await.map_err(self.err("exec", id))?
        {
            while let Some(chunk) = stream.next().await {
                output.extend_from_slice(&chunk.map_err(self.err("exec", id))?.into_bytes());
                if output.len() > 2 * OUTPUT_TAIL {
                    output.drain(..output.len() - OUTPUT_TAIL);
                }
            }
        }
        let code = self.slow.inspect_exec(&exec).await.map_err(self.err("exec", id))?.exit_code.unwrap_or(-1);
        let start = output.len().saturating_sub(OUTPUT_TAIL);
        Ok(ExecOutcome { code, output: String::from_utf8_lossy(&output[start..]).into_owned() })
    }

    async fn put_archive(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<(), Error> {
        // Without copyUIDGID both engines keep the tar's owners; with it, both give everything
        // to the container's user (Docker looking the user up by name, which fails for a uid).
        let opts = q::UploadToContainerOptions { path: path.into(), ..Default::default() };
        self.slow.upload_to_container(id, Some(opts), bollard::body_full(tar.into())).await.map_err(self.err("put archive", id))
    }

    async fn ensure_volume(&self, v: &crate::VolumeSpecOut, owner: Option<(u32, u32)>) -> Result<bool, Error> {
        if self.docker.inspect_volume(&v.name).await.is_ok() {
            return Ok(false);
        }
        let mut driver_opts: HashMap<String, String> = v.driver_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // podman's local driver takes the owner as mount options; another driver would
        // take them for its own.
        let local = v.driver.as_deref().is_none_or(|d| d == "local");
        if let (Some((uid, gid)), true, true) = (owner, self.podman, local) {
            let o = driver_opts.entry("o".into()).or_default();
            let sep = if o.is_empty() { "" } else { "," };
            o.push_str(&format!("{sep}uid={uid},gid={gid}"));
        }
        let req = bollard::models::VolumeCreateRequest {
            name: Some(v.name.clone()),
            driver: v.driver.clone(),
            driver_opts: (!driver_opts.is_empty()).then_some(driver_opts),
            labels: Some(v.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        self.docker.create_volume(req).await.map(|_| true).map_err(self.err("create volume", &v.name))
    }

    async fn volumes(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        let opts = q::ListVolumesOptions { filters: Some(filters(label, value)) };
        let list = self.docker.list_volumes(Some(opts)).await.map_err(self.err("list volumes", ""))?;
        Ok(list.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), Error> {
        match self.docker.remove_volume(name, None::<q::RemoveVolumeOptions>).await {
            Err(e) if not_found(&e) => Ok(()),
            r => r.map_err(self.err("remove volume", name)),
        }
    }

    async fn ensure_network(&self, name: &str, body: &serde_json::Value) -> Result<bool, Error> {
        if self.docker.inspect_network(name, None::<q::InspectNetworkOptions>).await.is_ok() {
            return Ok(false);
        }
        let fail = |why: String| Error::Engine { engine: self.host.clone(), call: "create network", target: name.into(), why };
        let req: bollard::models::NetworkCreateRequest =
            serde_json::from_value(body.clone()).map_err(|e| fail(format!("the network's options do not fit the Engine API: {e}")))?;
        if let Some(lost) = dropped(body, &serde_json::to_value(&req).unwrap_or_default()) {
            return Err(fail(format!("{lost} is not a field of the Engine API's network create body; check its name")));
        }
        self.docker.create_network(req).await.map(|_| true).map_err(self.err("create network", name))
    }

    async fn networks(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        let opts = q::ListNetworksOptions { filters: Some(filters(label, value)) };
        let list = self.docker.list_networks(Some(opts)).await.map_err(self.err("list networks", ""))?;
        Ok(list.into_iter().filter_map(|n| n.name).collect())
    }

    async fn remove_network(&self, name: &str) -> Result<(), Error> {
        match self.docker.remove_network(name).await {
            Err(e) if not_found(&e) => Ok(()),
            r => r.map_err(self.err("remove network", name)),
        }
    }

    async fn remove_image(&self, id: &str) -> Result<(), Error> {
        self.docker.remove_image(id, None::<q::RemoveImageOptions>, None).await.map(drop).map_err(self.err("remove image", id))
    }

    async fn dangling_images(&self) -> Result<Vec<String>, Error> {
        let f = HashMap::from([("dangling".to_string(), vec!["true".to_string()])]);
        let opts = q::ListImagesOptions { filters: Some(f), ..Default::default() };
        let list = self.docker.list_images(Some(opts)).await.map_err(self.err("list images", ""))?;
        Ok(list.into_iter().map(|i| i.id).collect())
    }
}

impl DockerEngine {
    async fn list(&self, opts: q::ListContainersOptions) -> Result<Vec<Seen>, Error> {
        let list = self.docker.list_containers(Some(opts)).await.map_err(self.err("list containers", ""))?;
        let mut out = Vec::new();
        for c in list {
            let id = c.id.unwrap_or_default();
            // Links add `/other/alias` names; the container's own has no inner `/`.
            let names = c.names.unwrap_or_default();
            let own = names.iter().map(|n| n.trim_start_matches('/')).find(|n| !n.contains('/'));
            let name = own.or_else(|| names.first().map(|n| n.trim_start_matches('/'))).unwrap_or_default().to_string();
            let state = match c.state {
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING | ContainerSummaryStateEnum::PAUSED) => {
                    RunState::Running
                }
                Some(ContainerSummaryStateEnum::CREATED) => RunState::Created,
                Some(ContainerSummaryStateEnum::EXITED) => RunState::Exited(self.exit_code(&id).await?),
                Some(other) => RunState::Other(other.to_string()),
                None => RunState::Other("unknown".into()),
            };
            let labels = c.labels.unwrap_or_default().into_iter().collect();
            let networks = c.network_settings.and_then(|n| n.networks).map(|n| n.into_keys().collect()).unwrap_or_default();
            out.push(Seen { id, name, state, image_id: c.image_id.unwrap_or_default(), labels, networks });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn exit_code(&self, id: &str) -> Result<i64, Error> {
        let c = self.docker.inspect_container(id, None::<q::InspectContainerOptions>).await.map_err(self.err("inspect", id))?;
        let state = c.state.unwrap_or_default();
        Ok(match state.status {
            Some(ContainerStateStatusEnum::EXITED) => state.exit_code.unwrap_or(0),
            _ => 0,
        })
    }
}
