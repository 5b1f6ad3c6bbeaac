//! Helpers for the end-to-end tests: the built `imgtool` binary, a busybox rootfs, a real
//! registry server, and podman with the flags this machine needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// A real registry (Debian's docker-registry) on 127.0.0.1, stopped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Start an open registry with its own storage.
    pub fn start() -> Self {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {addr}, secret: fixed}}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry").arg("serve").arg(&cfg).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr, _dir: dir }
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
