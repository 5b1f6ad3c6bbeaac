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
