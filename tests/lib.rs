//! Helpers for the end-to-end tests: the built `imgtool` binary, a busybox rootfs, a real
//! registry server, and podman with the flags this machine needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `imgtool` binary, built once per test run from the current sources.
pub fn imgtool_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "imgtool", "--bin", "imgtool"])
            .current_dir(workspace())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building imgtool failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from);
        target.join("debug/imgtool")
    })
}

/// A command running imgtool in `dir`.
pub fn imgtool(dir: &Path) -> Command {
    let mut c = Command::new(imgtool_bin());
    c.current_dir(dir).env_remove("RUST_LOG").env_remove("SOURCE_DATE_EPOCH");
    c
}

/// A required external tool; tests that need it fail with what to install.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(found, "{tool} is needed by this test: apt-get install {package} (or run .ci/run, which installs everything)");
}

/// Run a command and insist it succeeds, returning stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit code, stdout and stderr in one string, for snapshots.
pub fn transcript(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A busybox root filesystem from Debian's busybox-static.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    require("busybox", "busybox-static");
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let bb = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()).unwrap();
    std::fs::copy(bb, root.join("bin/busybox")).unwrap();
    // Run the host's copy: executing the one just written can race with another test's
    // fork holding it open ("text file busy").
    let list = run_ok(Command::new(bb).arg("--list"));
    for applet in list.lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    root
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How a test registry authenticates.
#[derive(Debug, Clone, Default)]
pub enum RegistryAuth {
    /// Open to all.
    #[default]
    None,
    /// htpasswd Basic auth with one user.
    Basic {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// Bearer tokens from `realm`, signed by the key of `cert` (a PEM path).
    Token {
        /// The token endpoint.
        realm: String,
        /// The certificate whose key signs tokens.
        cert: PathBuf,
    },
}

/// How to start a test registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Authentication.
    pub auth: RegistryAuth,
    /// Serve HTTPS with a fresh self-signed certificate (see [`Registry::cert_dir`]).
    pub tls: bool,
}

/// A real registry (Debian's docker-registry) on 127.0.0.1, stopped on drop. Its access log
/// is kept, so tests can count what was asked of it.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start an open registry with its own storage.
    pub fn start() -> Self {
        Self::start_with(RegistryConfig::default())
    }

    /// Start a registry configured by `cfg`.
    pub fn start_with(cfg: RegistryConfig) -> Self {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut http = format!("addr: {addr}, secret: fixed");
        if cfg.tls {
            require("openssl", "openssl");
            let certs = dir.path().join("certs.d").join(&addr);
            std::fs::create_dir_all(&certs).unwrap();
            // A CA and a server certificate it signs: rustls (rightly) refuses a
            // self-signed CA certificate used as the server's own.
            let ssl = |args: &[&str]| run_ok(Command::new("openssl").current_dir(dir.path()).args(args));
            ssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=imgtool test CA",
            ]);
            ssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=localhost"]);
            std::fs::write(
                dir.path().join("server.ext"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            ssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ]);
            std::fs::copy(dir.path().join("ca.pem"), certs.join("ca.crt")).unwrap();
            http.push_str(&format!(
                ", tls: {{certificate: {}, key: {}}}",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ));
        }
        let auth = match &cfg.auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Basic { user, pass } => {
                require("htpasswd", "apache2-utils");
                let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, pass]));
                std::fs::write(dir.path().join("htpasswd"), line.trim()).unwrap();
                format!("auth: {{htpasswd: {{realm: basic-realm, path: {}}}}}\n", dir.path().join("htpasswd").display())
            }
            RegistryAuth::Token { realm, cert } => format!(
                "auth: {{token: {{realm: \"{realm}\", service: test-registry, issuer: test-issuer, rootcertbundle: {}}}}}\n",
                cert.display()
            ),
        };
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(
            &cfg_path,
            format!(
                "version: 0.1\nlog: {{level: info, formatter: text, accesslog: {{disabled: false}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{{http}}}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child =
            Command::new("docker-registry").arg("serve").arg(&cfg_path).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr, dir }
    }

    /// The directory holding `HOST:PORT/ca.crt` for a TLS registry (a `--cert-dir`).
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// Everything the registry logged so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many access-log lines are `METHOD` requests whose path contains `needle`.
    pub fn requests(&self, method: &str, needle: &str) -> usize {
        let m = format!("\"{method} ");
        self.log().lines().filter(|l| l.contains(&m) && l.contains(needle)).count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// podman with the flags that work on this machine, storage under `dir`.
pub fn podman(dir: &Path) -> Command {
    require("podman", "podman");
    let mut c = Command::new("podman");
    c.arg("--root").arg(dir.join("storage")).arg("--runroot").arg(dir.join("run")).args([
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]);
    c
}
