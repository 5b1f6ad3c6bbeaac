//! Runs a command in an isolated sandbox whose root is an image's filesystem.
//!
//! The runtime is runc (Debian's `runc`): we write an OCI runtime bundle whose root is the
//! directory given (used in place, so what the command writes lands there) with mount, PID,
//! UTS, IPC and, unless the host network is asked for, network namespaces; `/proc`, a
//! minimal `/dev` and read-only `/sys` are mounted; the process gets the image's
//! environment, working directory and user. It is held in as Docker holds a container by
//! default (see [`Security`]): Docker's capabilities (none effective for other users than
//! root), its seccomp profile, masked and read-only paths and device rules, no new
//! privileges, and the process and memory limits asked for. Both the `RUN` of a
//! Dockerfile build and `imgtool run` go through [`run`].
#![deny(missing_docs)]

mod seccomp;
mod security;

pub use security::{MIN_MEMORY, Security};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::{Linux, LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder};

/// What can go wrong starting a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime is not installed.
    #[error("running commands needs runc, which was not found on PATH (install it: apt-get install runc)")]
    NoRuntime,
    /// The bundle could not be written or the runtime not started.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The runtime spec could not be built.
    #[error("building the runtime spec: {0}")]
    Spec(String),
    /// A user that the image does not define.
    #[error("user {user:?}: {why}")]
    User {
        /// As given.
        user: String,
        /// What is missing.
        why: String,
    },
    /// A resource limit the sandbox cannot apply.
    #[error("{0}")]
    Limit(String),
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// A host path made visible inside the sandbox.
#[derive(Debug, Clone)]
pub struct Bind {
    /// On the host.
    pub host: PathBuf,
    /// Inside the sandbox (absolute).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A resolved user: numeric ids, as the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The command and its arguments (the first is looked up on the sandbox's `PATH`).
    pub args: Vec<String>,
    /// `KEY=VALUE` environment; `PATH` and `HOME` get defaults when missing.
    pub env: Vec<String>,
    /// Working directory inside the sandbox (created if missing); default `/`.
    pub cwd: String,
    /// The user: a name or id, optionally `:group`, resolved with the rootfs's
    /// `/etc/passwd` and `/etc/group`; default root.
    pub user: String,
    /// Share the host's network instead of an empty network namespace.
    pub host_network: bool,
    /// Bind mounts.
    pub binds: Vec<Bind>,
    /// The sandbox's host name (default `imgtool`).
    pub hostname: Option<String>,
    /// Seccomp and resource limits (default: Docker's profile, no limits).
    pub security: Security,
    /// Give the command this process's standard input (`run -i`); otherwise it reads nothing.
    pub stdin: bool,
}

/// How a run ended: the exit code (128+N for signal N) and the last of its output.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The process's exit code.
    pub code: i32,
    /// Up to the last 16 KiB of what it wrote to stdout and stderr.
    pub tail: String,
    /// Why the command never started (it does not exist, or cannot be run), when it did not.
    pub not_started: Option<String>,
}

/// Where the process's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Straight to this process's stdout/stderr (for `imgtool run`).
    Inherit,
    /// Copied to this process's stderr and kept for the error message (builds).
    Capture,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Run `spec` in a sandbox rooted at `rootfs` and wait for it.
pub fn run(rootfs: &Path, spec: &RunSpec, output: Output) -> Result<Outcome> {
    let runc = which("runc").ok_or(Error::NoRuntime)?;
    let rootfs = std::fs::canonicalize(rootfs).map_err(io(format!("the sandbox root {}", rootfs.display())))?;
    let ids = resolve_user(&rootfs, &spec.user)?;
    let bundle = tempfile::Builder::new().prefix("imgtool-sandbox-").tempdir().map_err(io("creating a runtime bundle"))?;
    let _bundle_tracked = imgtool_core::track_path(bundle.path());
    let cwd = if spec.cwd.is_empty() { "/".to_string() } else { spec.cwd.clone() };
    let config = runtime_spec(&rootfs, spec, ids, &cwd)?;
    config.save(bundle.path().join("config.json")).map_err(|e| Error::Spec(e.to_string()))?;
    let state = bundle.path().join("state");
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let id = format!("imgtool-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    tracing::debug!(id = %id, args = ?spec.args, "starting a sandbox");
    // Interrupted, this process exits without waiting: the container (whose PID 1 ignores
    // SIGINT) is killed and removed first.
    let _container_tracked = {
        let (runc, state, id) = (runc.clone(), state.clone(), id.clone());
        imgtool_core::on_interrupt(move || {
            let _ = std::process::Command::new(&runc).arg("--root").arg(&state).args(["delete", "--force", &id]).output();
        })
    };
    // runc's own messages go to a log, read after: a command that never started is said in
    // one line with podman's exit code, not as runc's log line.
    let log = bundle.path().join("runc.log");
    let mut cmd = std::process::Command::new(&runc);
    cmd.arg("--root").arg(&state).arg("--log").arg(&log).args(["--log-format", "json"]);
    cmd.args(["run", "--bundle"]).arg(bundle.path()).arg(&id);
    cmd.stdin(if spec.stdin { Stdio::inherit() } else { Stdio::null() });
    let (code, tail) = match output {
        Output::Inherit => {
            // stderr passes through, less runc's own "runc run failed" line (said better below).
            let mut child = cmd.stderr(Stdio::piped()).spawn().map_err(io("starting runc"))?;
            let pump = child.stderr.take().map(|r| std::thread::spawn(move || pass_stderr(r)));
            let status = child.wait().map_err(io("waiting for runc"))?;
            if let Some(p) = pump {
                let _ = p.join();
            }
            (exit_code(status), String::new())
        }
        Output::Capture => {
            let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(io("starting runc"))?;
            let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let pumps: Vec<_> =
                [child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>), child.stderr.take().map(|s| Box::new(s) as _)]
                    .into_iter()
                    .flatten()
                    .map(|mut r| {
                        let tail = tail.clone();
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 8192];
                            while let Ok(n) = r.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                let _ = std::io::stderr().write_all(&buf[..n]);
                                if let Ok(mut t) = tail.lock() {
                                    t.extend_from_slice(&buf[..n]);
                                    let excess = t.len().saturating_sub(16 << 10);
                                    t.drain(..excess);
                                }
                            }
                        })
                    })
                    .collect();
            let status = child.wait().map_err(io("waiting for runc"))?;
            for p in pumps {
                let _ = p.join();
            }
            let tail = tail.lock().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
            (exit_code(status), tail)
        }
    };
    // runc removes a container that exited; make sure nothing is left if it did not.
    let _ = std::process::Command::new("runc").arg("--root").arg(&state).args(["delete", "--force", &id]).output();
    let (code, not_started) = match (code, not_started(&log)) {
        (0, _) | (_, None) => (code, None),
        (_, Some((code, why))) => (code, Some(why)),
    };
    let tail = match &not_started {
        Some(why) => format!("{tail}{why}\n"),
        None => tail,
    };
    Ok(Outcome { code, tail, not_started })
}

/// Copy `r` to stderr as it comes, leaving out lines that start with runc's own failure.
fn pass_stderr(mut r: impl Read) {
    const RUNC: &[u8] = b"runc run failed: ";
    let mut out = std::io::stderr();
    // The start of a line held back while it could still be runc's; `None` mid-line.
    let (mut held, mut at_start, mut dropping) = (Vec::new(), true, false);
    let mut buf = [0u8; 8192];
    let mut pass = Vec::with_capacity(buf.len());
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if dropping {
                dropping = b != b'\n';
                at_start = !dropping;
                continue;
            }
            if at_start {
                held.push(b);
                if held.len() == RUNC.len() && held == RUNC {
                    (held, dropping, at_start) = (Vec::new(), true, false);
                } else if !RUNC.starts_with(&held) {
                    pass.append(&mut held);
                    at_start = b == b'\n';
                }
                continue;
            }
            pass.push(b);
            at_start = b == b'\n';
        }
        // One write per read, not per byte.
        let _ = out.write_all(&pass);
        pass.clear();
    }
    let _ = out.write_all(&held);
}

/// Why the command never started, from runc's log, with the exit code podman gives it: 127
/// for a command that does not exist, 126 for one that cannot be run.
fn not_started(log: &Path) -> Option<(i32, String)> {
    let mut text = String::new();
    std::fs::File::open(log).ok()?.take(64 << 10).read_to_string(&mut text).ok()?;
    let msg = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| (v["level"] == "error").then(|| v["msg"].as_str().map(str::to_string)).flatten())?;
    // As podman: 127 for a command that does not exist, 126 for one that cannot be run,
    // 125 for anything else that kept the container from starting (a bad mount, a workdir).
    let Some((_, why)) = msg.rsplit_once("exec: ") else { return Some((125, msg)) };
    let missing = why.contains("not found") || why.contains("no such file or directory");
    Some((if missing { 127 } else { 126 }, why.to_string()))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn runtime_spec(rootfs: &Path, spec: &RunSpec, ids: (Ids, Vec<u32>), cwd: &str) -> Result<Spec> {
    let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
    let mut env = spec.env.clone();
    if !env.iter().any(|v| v.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|v| v.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(rootfs, ids.0.uid)));
    }
    let caps = security::capabilities(ids.0.uid)?;
    let user = UserBuilder::default().uid(ids.0.uid).gid(ids.0.gid).additional_gids(ids.1).build().map_err(e)?;
    let process = ProcessBuilder::default()
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .user(user)
        .capabilities(caps)
        .no_new_privileges(true)
        .terminal(false)
        .build()
        .map_err(e)?;
    let mut config = Spec::default();
    config.set_hostname(Some(spec.hostname.clone().unwrap_or_else(|| "imgtool".into())));
    config.set_root(Some(RootBuilder::default().path(rootfs).readonly(false).build().map_err(e)?));
    config.set_process(Some(process));
    let mut mounts: Vec<Mount> = config.mounts().clone().unwrap_or_default();
    // No cgroup filesystem inside: nothing in a build needs it, and hybrid hosts differ.
    mounts.retain(|m| m.destination() != Path::new("/sys/fs/cgroup"));
    for b in &spec.binds {
        let mut options = vec!["rbind".to_string()];
        if b.readonly {
            options.push("ro".into());
        }
        mounts.push(MountBuilder::default().destination(&b.target).typ("bind").source(&b.host).options(options).build().map_err(e)?);
    }
    config.set_mounts(Some(mounts));
    // Never skipped for want of a Linux part: the confinement is not optional.
    let linux = config.linux_mut().get_or_insert_with(Linux::default);
    if let Some(ns) = linux.namespaces().clone() {
        let ns = ns
            .into_iter()
            .filter(|n| !(spec.host_network && n.typ() == LinuxNamespaceType::Network) && n.typ() != LinuxNamespaceType::Cgroup)
            .collect();
        linux.set_namespaces(Some(ns));
    }
    security::confine(linux, &spec.security)?;
    Ok(config)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The most of `/etc/passwd` or `/etc/group` we read: larger ones are not user tables.
const TABLE_LIMIT: u64 = 16 << 20;
/// The most entries read from one of them.
const TABLE_LINES: usize = 100_000;

/// Lines of `/etc/passwd` or `/etc/group` in `rootfs`, split on `:`. The path is resolved
/// inside the root (an image whose `/etc` links to the host's reads its own, missing, file),
/// and only a regular file is read.
fn table(rootfs: &Path, name: &str) -> Vec<Vec<String>> {
    let text = imgtool_rootfs::Root::open(rootfs).and_then(|r| r.read(format!("etc/{name}"), TABLE_LIMIT));
    let text = match text {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(file = name, "cannot read the image's user table: {e}");
            return Vec::new();
        }
    };
    // Bounded in lines too: 16 MiB of newlines would otherwise be 16M vectors.
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(TABLE_LINES)
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

fn home_of(rootfs: &Path, uid: u32) -> String {
    table(rootfs, "passwd")
        .into_iter()
        .find(|f| f.len() > 5 && f[2].parse() == Ok(uid))
        .map(|f| f[5].clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// Resolve `user[:group]` the way Docker does: names through the image's `/etc/passwd`
/// and `/etc/group`, numbers as they are (a numeric user without an entry gets group 0),
/// and the supplementary groups the user is a member of.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(Ids, Vec<u32>)> {
    if user.is_empty() {
        return Ok((Ids::default(), Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = table(rootfs, "passwd");
    let entry = passwd.iter().find(|f| f.len() > 3 && (f[0] == u || f[2] == u));
    let (uid, name, primary) = match (u.parse::<u32>(), entry) {
        (_, Some(f)) => (f[2].parse::<u32>().unwrap_or(0), Some(f[0].clone()), f[3].parse::<u32>().unwrap_or(0)),
        (Ok(n), None) => (n, None, 0),
        (Err(_), None) => {
            return Err(Error::User { user: user.into(), why: format!("no user {u:?} in the image's /etc/passwd") });
        }
    };
    let groups = table(rootfs, "group");
    let gid = match g {
        None => primary,
        Some(g) => match (g.parse::<u32>(), groups.iter().find(|f| f.len() > 2 && f[0] == g)) {
            (_, Some(f)) => f[2].parse().unwrap_or(0),
            (Ok(n), None) => n,
            (Err(_), None) => return Err(Error::User { user: user.into(), why: format!("no group {g:?} in the image's /etc/group") }),
        },
    };
    // Supplementary groups: those listing the user as a member, in file order, when no
    // group was named; not the primary group. That is runc's rule, so Docker's `run` and
    // BuildKit's `RUN` (buildah adds the primary group too).
    let extra: Vec<u32> = match (&name, g) {
        (Some(name), None) => {
            groups.iter().filter(|f| f.len() > 3 && f[3].split(',').any(|m| m == name)).filter_map(|f| f[2].parse().ok()).collect()
        }
        _ => Vec::new(),
    };
    Ok((Ids { uid, gid }, extra))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_like_docker() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n").unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app\n").unwrap();
        let r = |u: &str| resolve_user(root.path(), u);
        assert_eq!(r("").unwrap(), (Ids { uid: 0, gid: 0 }, vec![]));
        assert_eq!(r("app").unwrap(), (Ids { uid: 1000, gid: 1000 }, vec![10]));
        assert_eq!(r("1000").unwrap(), (Ids { uid: 1000, gid: 1000 }, vec![10]));
        assert_eq!(r("4242").unwrap(), (Ids { uid: 4242, gid: 0 }, vec![]));
        assert_eq!(r("app:wheel").unwrap(), (Ids { uid: 1000, gid: 10 }, vec![]));
        assert_eq!(r("4242:77").unwrap(), (Ids { uid: 4242, gid: 77 }, vec![]));
        assert!(r("nobody").unwrap_err().to_string().contains("no user \"nobody\""));
        assert!(r("app:staff").unwrap_err().to_string().contains("no group \"staff\""));
        assert_eq!(home_of(root.path(), 1000), "/home/app");
    }
}
