//! Linking packages in a child process that sees only the staging prefix and the package
//! cache.
//!
//! Every package is checked before it is linked (`validate`), but rattler's linker resolves
//! paths on the host: a case the checks miss would reach host files. The child is the second
//! wall: a private mount namespace whose root is an empty tmpfs holding bind mounts of the
//! two directories at their own paths, so a `../` or a symlink out of the prefix lands in
//! that tmpfs, never on the host. A program opts in by calling [`link_helper_main`] first
//! thing in `main` (the child is the same executable, as buildah's re-exec does); without
//! it, linking runs in-process behind the checks alone.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use rattler::install::Installer;
use rattler_conda_types::{PackageName, RepoDataRecord, Subdir};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result, io};

/// The argument that makes the executable the link helper.
const HELPER_ARG: &str = "__imgtool-conda-link";

/// Set once `link_helper_main` has run in the parent: the executable knows the argument.
static ISOLATE: OnceLock<()> = OnceLock::new();

/// What the child links.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LinkJob {
    pub records: Vec<RepoDataRecord>,
    /// Packages left alone (already linked in the prefix).
    pub ignored: Vec<PackageName>,
    pub staging: PathBuf,
    pub target_prefix: String,
    pub cache: PathBuf,
    pub subdir: Subdir,
}

/// Call this first thing in `main` of a program that builds conda environments, before any
/// thread is started. In the parent it turns isolated linking on and returns `None`; when
/// the program was started as the link helper it links and returns the exit code to end
/// with.
pub fn link_helper_main() -> Option<ExitCode> {
    if std::env::args_os().nth(1).as_deref() != Some(OsStr::new(HELPER_ARG)) {
        ISOLATE.get_or_init(|| ());
        return None;
    }
    match child() {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            // The helper's stderr is read by its parent, which reports it.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{e}");
            }
            Some(ExitCode::FAILURE)
        }
    }
}

/// Link `job` in the isolated child when the program opted in, in-process otherwise.
pub(crate) async fn run(job: LinkJob) -> Result<()> {
    if ISOLATE.get().is_none() || !cfg!(target_os = "linux") {
        tracing::debug!("linking in-process (the program did not call link_helper_main)");
        return link_here(job).await;
    }
    std::fs::create_dir_all(&job.staging).map_err(io(format!("creating {}", job.staging.display())))?;
    let canon = |p: &Path| std::fs::canonicalize(p).map_err(io(format!("resolving {}", p.display())));
    let job = LinkJob { staging: canon(&job.staging)?, cache: canon(&job.cache)?, ..job };
    let mount_point = imgtool_core::spool().map_err(io("creating a mount point"))?;
    let request = Request { job, root: mount_point.path().to_path_buf() };
    let input = serde_json::to_vec(&request).map_err(|e| Error::install_from("encoding the link request", e))?;
    let mut child = tokio::process::Command::new("/proc/self/exe")
        .arg(HELPER_ARG)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io("starting the link helper"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input).await.map_err(io("writing to the link helper"))?;
    }
    let out = child.wait_with_output().await.map_err(io("waiting for the link helper"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(64 << 10)]).trim().to_string();
    // The helper's error is ours already: said once, not wrapped in itself.
    let said = said.strip_prefix("installing the environment failed: ").map(str::to_string).unwrap_or(said);
    Err(Error::install(if said.is_empty() { format!("the link helper ended with {}", out.status) } else { said }))
}

#[derive(Serialize, Deserialize)]
struct Request {
    job: LinkJob,
    /// An empty directory to mount the child's root on.
    root: PathBuf,
}

fn child() -> std::result::Result<(), String> {
    let mut input = Vec::new();
    std::io::stdin().take(1 << 30).read_to_end(&mut input).map_err(|e| format!("reading the link request: {e}"))?;
    let req: Request = serde_json::from_slice(&input).map_err(|e| format!("reading the link request: {e}"))?;
    enter(&req.root, &[&req.job.cache, &req.job.staging]).map_err(|e| format!("isolating the linker: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(link_here(req.job)).map_err(|e| imgtool_core::error_chain(&e))
}

/// Enter a private mount namespace whose root holds only `keep`, each at its own path.
fn enter(root: &Path, keep: &[&Path]) -> std::result::Result<(), String> {
    let at = |what: String| move |e: std::io::Error| format!("{what}: {e}");
    use rustix::mount::{MountFlags, MountPropagationFlags, mount, mount_bind_recursive, mount_change};
    use rustix::thread::UnshareFlags;
    let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
    let flags = if uid.is_root() { UnshareFlags::NEWNS } else { UnshareFlags::NEWUSER | UnshareFlags::NEWNS };
    unshare(flags).map_err(at("a private mount namespace (root, or user namespaces, is needed)".into()))?;
    if !uid.is_root() {
        // Map ourselves to ourselves: files keep their owner, and we may mount.
        let map = |file: &str, line: String| std::fs::write(file, line).map_err(at(format!("writing {file}")));
        map("/proc/self/setgroups", "deny".into())?;
        map("/proc/self/uid_map", format!("{0} {0} 1", uid.as_raw()))?;
        map("/proc/self/gid_map", format!("{0} {0} 1", gid.as_raw()))?;
    }
    let io = |e: rustix::io::Errno| std::io::Error::from(e);
    mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
        .map_err(|e| at("making mounts private".into())(io(e)))?;
    mount("tmpfs", root, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=0755")
        .map_err(|e| at(format!("mounting a tmpfs on {}", root.display()))(io(e)))?;
    let mut keep = keep.to_vec();
    keep.sort_by_key(|p| p.as_os_str().len());
    for p in keep {
        let inside = root.join(p.strip_prefix("/").unwrap_or(p));
        std::fs::create_dir_all(&inside).map_err(at(format!("creating {}", inside.display())))?;
        mount_bind_recursive(p, &inside).map_err(|e| at(format!("binding {}", p.display()))(io(e)))?;
    }
    let enter = || -> std::io::Result<()> {
        std::env::set_current_dir(root)?;
        rustix::process::chroot(".")?;
        std::env::set_current_dir("/")
    };
    enter().map_err(at("changing root".into()))
}

#[allow(unsafe_code)]
fn unshare(flags: rustix::thread::UnshareFlags) -> std::io::Result<()> {
    // SAFETY: no FILES flag, so no thread can be left with descriptors it cannot use; and
    // the helper has started no thread yet.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

async fn link_here(job: LinkJob) -> Result<()> {
    let ignored: HashSet<PackageName> = job.ignored.into_iter().collect();
    // Every package is in the cache already; a client that trusts no one fetches nothing
    // (and, unlike the default one, needs no system certificates inside the child).
    let client = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .no_proxy()
        .build()
        .map_err(|e| Error::install_from("making the (offline) download client", e))?;
    Installer::new()
        .with_download_client(client)
        .with_package_cache(crate::fetch::package_cache(&job.cache))
        .with_target_platform(job.subdir)
        .with_alternative_target_prefix(PathBuf::from(job.target_prefix))
        .with_execute_link_scripts(false)
        .with_ignored_packages(ignored)
        .install(&job.staging, job.records)
        .await
        .map(|_| ())
        .map_err(|e| Error::install_from("linking", e))
}
