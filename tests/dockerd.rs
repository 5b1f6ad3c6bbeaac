//! A private Docker Engine (Debian's docker.io, dockerd 20.10) for tests, stopped on drop:
//! BuildKit, its builder, is a reference for Dockerfile builds.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::require;

/// A dockerd of its own (vfs storage, no bridge, no iptables) listening on a socket in a
/// temporary directory.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Start one and wait until it answers (at most a minute).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// One that also listens on `tcp://127.0.0.1:PORT` with TLS, and verifies its clients'
    /// certificates (`--tlsverify`); the port, and a directory with the client's `ca.pem`,
    /// `cert.pem` and `key.pem` (a `DOCKER_CERT_PATH`).
    pub fn start_tls() -> (Self, u16, tempfile::TempDir) {
        let certs = tempfile::tempdir().unwrap();
        crate::engine_certs(certs.path());
        let port = crate::free_port();
        let s = |p: &str| certs.path().join(p).to_string_lossy().into_owned();
        let extra = [
            "-H".to_string(),
            format!("tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            s("ca.pem"),
            "--tlscert".into(),
            s("cert.pem"),
            "--tlskey".into(),
            s("key.pem"),
        ];
        let d = Self::start_with(&extra);
        let client = tempfile::tempdir().unwrap();
        for (from, to) in [("ca.pem", "ca.pem"), ("client-cert.pem", "cert.pem"), ("client-key.pem", "key.pem")] {
            std::fs::copy(certs.path().join(from), client.path().join(to)).unwrap();
        }
        (d, port, client)
    }

    fn start_with(extra: &[String]) -> Self {
        require("dockerd", "docker.io");
        // A unix socket path must stay short: keep the directory near the root.
        let dir = tempfile::Builder::new().prefix("dockerd-").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("sock").display()))
            .args(["--storage-driver", "vfs", "--iptables=false", "--bridge=none"])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let me = Dockerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if me.docker().arg("version").output().is_ok_and(|o| o.status.success()) {
                return me;
            }
            assert!(Instant::now() < deadline, "dockerd did not answer within a minute:\n{}", me.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Debian's own `docker` CLI (a newer one on PATH would need buildx) on this engine,
    /// with a config directory of its own.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.socket().display())).env("DOCKER_CONFIG", self.dir.path().join("config"));
        c
    }

    /// The engine's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// What dockerd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop the containerd it started; SIGKILL would orphan it.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// podman's Docker-compatible API service of its own (vfs storage, cgroupfs, file events)
/// on a socket in a temporary directory, stopped on drop: the second engine for maps.
pub struct PodmanService {
    child: Child,
    dir: tempfile::TempDir,
}

impl PodmanService {
    /// Start one and wait until it answers (at most a minute).
    pub fn start() -> Self {
        require("podman", "podman");
        let dir = tempfile::Builder::new().prefix("podman-").tempdir_in("/tmp").unwrap();
        let log = std::fs::File::create(dir.path().join("podman.log")).unwrap();
        let mut cmd = Command::new("podman");
        cmd.args(Self::flags(dir.path()))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", dir.path().join("sock").display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        let me = PodmanService { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(me.socket()).is_err() {
            assert!(Instant::now() < deadline, "podman's service did not answer within a minute:\n{}", me.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        me
    }

    fn flags(d: &std::path::Path) -> Vec<String> {
        let p = |s: &str| d.join(s).display().to_string();
        vec![
            "--root".into(),
            p("root"),
            "--runroot".into(),
            p("run"),
            "--storage-driver".into(),
            "vfs".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
        ]
    }

    /// podman's CLI on this service's storage.
    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.args(Self::flags(self.dir.path()));
        c
    }

    /// The service's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("podman.log")).unwrap_or_default()
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        // Its containers first: they outlive the service otherwise.
        let _ = self.podman().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // conmon runs `podman container cleanup` after a container ends, and exec sessions'
        // conmons wait 300 s before theirs, all with our --root: they would make the
        // directory again once it is gone. They belong to this service alone: end them.
        let dir = self.dir.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let users = users_of(&dir);
            if users.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in users {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The processes with `dir` on their command line.
fn users_of(dir: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok().map(|pid| (pid, p.path())))
        .filter(|(pid, path)| {
            *pid != std::process::id() && std::fs::read(path.join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(dir))
        })
        .map(|(pid, _)| pid)
        .collect()
}
