//! What holds the command in beyond its namespaces, each part as Docker sets it by
//! default: capabilities, the seccomp filter, masked and read-only paths, device access,
//! and the resource limits asked for.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};

use crate::{Error, Result};

/// How tightly the sandbox holds the command, beyond its namespaces. The default is
/// Docker's: its seccomp profile and no limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Filter system calls with Docker's default seccomp profile; `false` is Docker's
    /// `--security-opt seccomp=unconfined`.
    pub seccomp: bool,
    /// The most processes and threads at once (`--pids-limit`); `None`, 0 or less: no
    /// limit.
    pub pids_limit: Option<i64>,
    /// The memory limit in bytes (`--memory`); swap is limited to as much again, as Docker
    /// does. `None`, 0 or less: no limit.
    pub memory: Option<i64>,
}

impl Default for Security {
    fn default() -> Self {
        Self { seccomp: true, pids_limit: None, memory: None }
    }
}

/// Below this the kernel's own usage for the process tree kills it before it starts;
/// Docker refuses less too.
pub const MIN_MEMORY: i64 = 6 << 20;

/// Docker's default capability set for containers.
pub(crate) const DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::NetRaw,
    Capability::SysChroot,
    Capability::Mknod,
    Capability::AuditWrite,
    Capability::Setfcap,
];

/// Docker's masked paths: host information and interfaces a container has no business
/// reading (runc hides each under `/dev/null` or an empty read-only tmpfs).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

const READ_ONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The device nodes a process may open (Docker's list; runc adds the terminal and
/// `mknod` rules after these): everything else is denied, so a root process that makes
/// a node for the host's disk still cannot read it. (major, minor) of character devices.
const DEVICES: &[(i64, i64)] = &[(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)];
/// `/dev/fuse`, denied explicitly as Docker does.
const FUSE: (i64, i64) = (10, 229);

/// The capability sets for a process running as `uid`. Root gets Docker's defaults as
/// bounding, effective and permitted sets; anyone else only the bounding set, so nothing
/// is effective unless a file capability grants it (and no_new_privileges stops that).
/// Inheritable and ambient sets are empty either way: left out, the runtime spec
/// library fills them with its own defaults, which an unprivileged process would keep.
pub(crate) fn capabilities(uid: u32) -> Result<LinuxCapabilities> {
    let all: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
    let held = if uid == 0 { all.clone() } else { HashSet::new() };
    LinuxCapabilitiesBuilder::default()
        .bounding(all)
        .effective(held.clone())
        .permitted(held)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(spec_error)
}

/// Apply `security` and Docker's paths and devices to the spec's Linux part.
pub(crate) fn confine(linux: &mut Linux, security: &Security) -> Result<()> {
    let mut masked: Vec<String> = MASKED.iter().map(|p| p.to_string()).collect();
    masked.extend(thermal_throttle());
    linux.set_masked_paths(Some(masked));
    linux.set_readonly_paths(Some(READ_ONLY.iter().map(|p| p.to_string()).collect()));
    if security.seccomp {
        let bounding: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
        linux.set_seccomp(Some(crate::seccomp::docker_default(&bounding).map_err(spec_error)?));
    } else {
        linux.set_seccomp(None);
    }
    let mut resources = LinuxResourcesBuilder::default().devices(devices()?);
    if let Some(n) = security.pids_limit.filter(|&n| n > 0) {
        resources = resources.pids(LinuxPidsBuilder::default().limit(n).build().map_err(spec_error)?);
    }
    if let Some(n) = security.memory.filter(|&n| n > 0) {
        if n < MIN_MEMORY {
            return Err(Error::Limit(format!("a memory limit of {n} bytes is below the minimum of 6 MiB")));
        }
        let mut memory = LinuxMemoryBuilder::default().limit(n);
        // Docker's default when only --memory is given: as much swap again, where the
        // kernel accounts swap at all (runc fails on a swap limit it cannot set).
        if swap_accounted() {
            memory = memory.swap(n.saturating_mul(2));
        }
        resources = resources.memory(memory.build().map_err(spec_error)?);
    }
    linux.set_resources(Some(resources.build().map_err(spec_error)?));
    Ok(())
}

fn devices() -> Result<Vec<LinuxDeviceCgroup>> {
    let rule = |allow: bool, dev: Option<(i64, i64)>| {
        let b = LinuxDeviceCgroupBuilder::default().allow(allow).access("rwm");
        match dev {
            Some((major, minor)) => b.typ(LinuxDeviceType::C).major(major).minor(minor).build(),
            None => b.build(),
        }
        .map_err(spec_error)
    };
    let mut rules = vec![rule(false, None)?];
    for &dev in DEVICES {
        rules.push(rule(true, Some(dev))?);
    }
    rules.push(rule(false, Some(FUSE))?);
    Ok(rules)
}

/// Per-CPU thermal throttling counters exist on some hosts and leak what other tenants
/// run; Docker masks the ones present.
fn thermal_throttle() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") else { return Vec::new() };
    let mut found: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("cpu")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(name)
        })
        .map(|cpu| format!("/sys/devices/system/cpu/{cpu}/thermal_throttle"))
        .filter(|p| Path::new(p).exists())
        .collect();
    found.sort();
    found
}

/// Whether a memory+swap limit can be set: cgroup v1 with swap accounting, or cgroup v2.
fn swap_accounted() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.is_dir() { v1.join("memory.memsw.limit_in_bytes").exists() } else { Path::new("/sys/fs/cgroup/cgroup.controllers").exists() }
}

fn spec_error(e: oci_spec::OciSpecError) -> Error {
    Error::Spec(e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn root_holds_the_defaults_and_others_only_bound_them() {
        let root = capabilities(0).unwrap();
        assert_eq!(root.effective().as_ref().map(HashSet::len), Some(14));
        assert_eq!(root.permitted(), root.effective());
        assert_eq!(root.bounding(), root.effective());
        for caps in [&root, &capabilities(65534).unwrap()] {
            assert_eq!(caps.inheritable().as_ref().map(HashSet::len), Some(0));
            assert_eq!(caps.ambient().as_ref().map(HashSet::len), Some(0));
        }
        let user = capabilities(1000).unwrap();
        assert_eq!(user.bounding(), root.bounding());
        assert_eq!(user.effective().as_ref().map(HashSet::len), Some(0));
        assert_eq!(user.permitted().as_ref().map(HashSet::len), Some(0));
    }

    #[test]
    fn limits_and_unconfined() {
        let mut linux = Linux::default();
        let s = Security { seccomp: false, pids_limit: Some(5), memory: Some(64 << 20) };
        confine(&mut linux, &s).unwrap();
        assert!(linux.seccomp().is_none());
        let r = linux.resources().as_ref().unwrap();
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(5));
        assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(64 << 20));
        let devices = r.devices().as_ref().unwrap();
        assert!(!devices[0].allow() && devices[0].major().is_none(), "everything denied first");
        assert!(linux.masked_paths().as_ref().unwrap().iter().any(|p| p == "/proc/interrupts"));

        let mut linux = Linux::default();
        confine(&mut linux, &Security { pids_limit: Some(0), memory: Some(-1), ..Security::default() }).unwrap();
        let r = linux.resources().as_ref().unwrap();
        assert!(r.pids().is_none() && r.memory().is_none());
        assert!(linux.seccomp().is_some());

        let err = confine(&mut linux, &Security { memory: Some(4096), ..Security::default() }).unwrap_err();
        assert!(err.to_string().contains("6 MiB"), "{err}");
    }
}
