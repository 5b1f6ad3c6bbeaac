//! The system call filter: Docker's default seccomp profile, kept as our own table.
//!
//! The effect matches moby's default profile (`moby/profiles` seccomp v0.2.3): anything not
//! listed fails with EPERM; most calls are allowed outright; a few only with given
//! arguments (`personality`, `socket`, and `clone` without namespace flags); `clone3` fails
//! with ENOSYS so that libc falls back to `clone`, whose flags can be checked; and groups of
//! calls tied to a capability are allowed exactly when the bounding set holds it, as Docker
//! decides them. Names the installed libseccomp does not know are skipped by runc.

use std::collections::HashSet;

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator,
    LinuxSyscall, LinuxSyscallBuilder,
};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// `clone` flags that make new namespaces; without CAP_SYS_ADMIN none may be set, which
/// is what keeps `unshare`-like tricks (user namespaces first) out.
const CLONE_NAMESPACES: u64 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

/// Socket families kept out: the kernel crypto API and VM sockets, the two families
/// with a history of exploitable bugs that ordinary programs do not need.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// `personality` values programs legitimately ask for: the plain Linux persona, the 32-bit
/// one, either with the 2.6 uname, and the query.
const PER_LINUX: u64 = 0;
const PER_LINUX32: u64 = 0x0008;
const UNAME26: u64 = 0x0002_0000;
const PER_QUERY: u64 = 0xffff_ffff;

/// Allowed whatever the capabilities, architecture or arguments.
const ALWAYS: &str = "
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
    clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
    clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
    dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
    fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
    fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
    fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
    futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
    geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
    getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
    get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
    getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
    inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64
    ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount listxattr
    listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
    map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock
    mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
    mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget
    msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect
    open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
    pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease
    pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename
    renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending
    rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
    rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
    sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select
    semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
    sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
    setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
    setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
    setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx
    symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
    timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
    timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
    truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64
    utimes vfork vmsplice wait4 waitid waitpid write writev
";

/// A comparison on one argument (the first value; masked: mask then expected value).
#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq(u64),
    Lt(u64),
    Gt(u64),
    MaskedEq(u64, u64),
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Allow,
    Errno(u32),
}

/// When a row applies, tested against the host and the capability bounding set.
#[derive(Debug, Clone, Copy)]
struct When {
    /// Only if the bounding set holds this capability.
    with: Option<Capability>,
    /// Only if the bounding set lacks it.
    without: Option<Capability>,
    /// Only on these architectures (`std::env::consts::ARCH` names; empty: any).
    on: &'static [&'static str],
    /// Never on these.
    off: &'static [&'static str],
    /// Only from this kernel (major, minor).
    since: Option<(u32, u32)>,
}

const ANY: When = When { with: None, without: None, on: &[], off: &[], since: None };

const fn with(cap: Capability) -> When {
    When { with: Some(cap), ..ANY }
}

const fn on(arches: &'static [&'static str]) -> When {
    When { on: arches, ..ANY }
}

/// One line of the table: these calls get `action` when `when` holds.
#[derive(Debug, Clone, Copy)]
struct Row {
    when: When,
    names: &'static str,
    action: Action,
    /// The argument (index, comparison) alternatives, each enough on its own; empty: any
    /// arguments.
    any_of: &'static [(usize, Cmp)],
}

const fn allow(when: When, names: &'static str) -> Row {
    Row { when, names, action: Action::Allow, any_of: &[] }
}

impl Row {
    const fn any_of(self, any_of: &'static [(usize, Cmp)]) -> Row {
        Row { any_of, ..self }
    }
}

const NO_SYS_ADMIN: When = When { without: Some(Capability::SysAdmin), ..ANY };

const TABLE: &[Row] = &[
    allow(ANY, ALWAYS),
    // Before 4.8 ptrace could step around seccomp.
    allow(When { since: Some((4, 8)), ..ANY }, "process_vm_readv process_vm_writev ptrace"),
    allow(ANY, "socket").any_of(&[(0, Cmp::Lt(AF_ALG)), (0, Cmp::Eq(AF_ALG + 1)), (0, Cmp::Gt(AF_VSOCK))]),
    allow(ANY, "personality").any_of(&[
        (0, Cmp::Eq(PER_LINUX)),
        (0, Cmp::Eq(PER_LINUX32)),
        (0, Cmp::Eq(UNAME26)),
        (0, Cmp::Eq(UNAME26 | PER_LINUX32)),
        (0, Cmp::Eq(PER_QUERY)),
    ]),
    // Architecture-specific calls.
    allow(on(&["powerpc64le"]), "sync_file_range2 swapcontext"),
    allow(on(&["arm", "aarch64"]), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    allow(on(&["x86_64"]), "arch_prctl"),
    allow(on(&["x86_64", "x86"]), "modify_ldt"),
    allow(on(&["s390x"]), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    allow(on(&["riscv64"]), "riscv_flush_icache"),
    // Calls only a capability makes useful (or safe).
    allow(with(Capability::DacReadSearch), "open_by_handle_at"),
    allow(
        with(Capability::SysAdmin),
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr
         lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open quotactl
         quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare",
    ),
    // Without CAP_SYS_ADMIN: clone only without namespace flags (the flags are the second
    // argument on s390), and clone3, whose flags sit in memory seccomp cannot read, says
    // "not implemented" so callers fall back to clone.
    allow(When { off: &["s390x"], ..NO_SYS_ADMIN }, "clone").any_of(&[(0, Cmp::MaskedEq(CLONE_NAMESPACES, 0))]),
    allow(When { on: &["s390x"], ..NO_SYS_ADMIN }, "clone").any_of(&[(1, Cmp::MaskedEq(CLONE_NAMESPACES, 0))]),
    Row { when: NO_SYS_ADMIN, names: "clone3", action: Action::Errno(ENOSYS), any_of: &[] },
    allow(with(Capability::SysBoot), "reboot"),
    allow(with(Capability::SysChroot), "chroot"),
    allow(with(Capability::SysModule), "delete_module init_module finit_module"),
    allow(with(Capability::SysPacct), "acct"),
    allow(with(Capability::SysPtrace), "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    allow(with(Capability::SysRawio), "iopl ioperm"),
    allow(with(Capability::SysTime), "settimeofday stime clock_settime clock_settime64"),
    allow(with(Capability::SysTtyConfig), "vhangup"),
    allow(with(Capability::SysNice), "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    allow(with(Capability::Syslog), "syslog"),
    allow(with(Capability::Bpf), "bpf"),
    allow(with(Capability::Perfmon), "perf_event_open"),
];

/// What the rows are tested against.
#[derive(Debug, Clone, Copy)]
struct Host<'a> {
    arch: &'a str,
    /// `None` when unknown: rows needing a minimum kernel are then left out.
    kernel: Option<(u32, u32)>,
    caps: &'a HashSet<Capability>,
}

impl When {
    fn holds(&self, host: &Host<'_>) -> bool {
        self.with.is_none_or(|c| host.caps.contains(&c))
            && self.without.is_none_or(|c| !host.caps.contains(&c))
            && (self.on.is_empty() || self.on.contains(&host.arch))
            && !self.off.contains(&host.arch)
            && self.since.is_none_or(|min| host.kernel.is_some_and(|k| k >= min))
    }
}

/// Docker's default profile for a process whose capability bounding set is `caps`, on
/// this machine.
pub(crate) fn docker_default(caps: &HashSet<Capability>) -> Result<LinuxSeccomp, OciSpecError> {
    profile(&Host { arch: native_arch(), kernel: kernel_version(), caps })
}

fn profile(host: &Host<'_>) -> Result<LinuxSeccomp, OciSpecError> {
    let mut syscalls = Vec::new();
    for row in TABLE.iter().filter(|r| r.when.holds(host)) {
        let names: Vec<String> = row.names.split_whitespace().map(str::to_string).collect();
        if row.any_of.is_empty() {
            syscalls.push(syscall(&names, row.action, None)?);
        }
        for &(index, cmp) in row.any_of {
            syscalls.push(syscall(&names, row.action, Some(arg(index, cmp)?))?);
        }
    }
    let mut seccomp =
        LinuxSeccompBuilder::default().default_action(LinuxSeccompAction::ScmpActErrno).default_errno_ret(EPERM).syscalls(syscalls);
    if let Some(arches) = architectures(host.arch) {
        seccomp = seccomp.architectures(arches);
    }
    seccomp.build()
}

fn syscall(names: &[String], action: Action, arg: Option<LinuxSeccompArg>) -> Result<LinuxSyscall, OciSpecError> {
    let mut b = LinuxSyscallBuilder::default().names(names.to_vec());
    b = match action {
        Action::Allow => b.action(LinuxSeccompAction::ScmpActAllow),
        Action::Errno(n) => b.action(LinuxSeccompAction::ScmpActErrno).errno_ret(n),
    };
    if let Some(arg) = arg {
        b = b.args(vec![arg]);
    }
    b.build()
}

fn arg(index: usize, cmp: Cmp) -> Result<LinuxSeccompArg, OciSpecError> {
    let (op, value, two) = match cmp {
        Cmp::Eq(v) => (LinuxSeccompOperator::ScmpCmpEq, v, None),
        Cmp::Lt(v) => (LinuxSeccompOperator::ScmpCmpLt, v, None),
        Cmp::Gt(v) => (LinuxSeccompOperator::ScmpCmpGt, v, None),
        Cmp::MaskedEq(mask, v) => (LinuxSeccompOperator::ScmpCmpMaskedEq, mask, Some(v)),
    };
    let b = LinuxSeccompArgBuilder::default().index(index).op(op).value(value);
    match two {
        Some(v) => b.value_two(v).build(),
        None => b.build(),
    }
}

/// The architectures the filter covers: the native one and those its kernel also runs
/// (32-bit x86 and x32 on x86-64, 32-bit ARM on AArch64), so a foreign-ABI binary cannot
/// slip past with other syscall numbers. `None`: the native one only.
fn architectures(arch: &str) -> Option<Vec<Arch>> {
    match arch {
        "x86_64" => Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]),
        "aarch64" => Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]),
        "s390x" => Some(vec![Arch::ScmpArchS390x, Arch::ScmpArchS390]),
        "riscv64" => Some(vec![Arch::ScmpArchRiscv64]),
        _ => None,
    }
}

fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        a => a,
    }
}

/// The running kernel's (major, minor), from `/proc`.
fn kernel_version() -> Option<(u32, u32)> {
    parse_kernel(&std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?)
}

fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn caps(list: &[Capability]) -> HashSet<Capability> {
        list.iter().copied().collect()
    }

    /// The rules for `name`: (action, errno, args) for each.
    fn rules(p: &LinuxSeccomp, name: &str) -> Vec<(LinuxSeccompAction, Option<u32>, Vec<LinuxSeccompArg>)> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .map(|s| (s.action(), s.errno_ret(), s.args().clone().unwrap_or_default()))
            .collect()
    }

    fn allowed_outright(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p, name).iter().any(|(a, _, args)| *a == LinuxSeccompAction::ScmpActAllow && args.is_empty())
    }

    #[test]
    fn default_caps_on_x86_64_match_dockers_decisions() {
        let default = caps(crate::security::DEFAULT_CAPS);
        let p = profile(&Host { arch: "x86_64", kernel: Some((6, 1)), caps: &default }).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        assert_eq!(p.architectures().as_deref(), Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..]));
        for ok in ["execve", "read", "fork", "vfork", "ptrace", "chroot", "arch_prctl", "modify_ldt"] {
            assert!(allowed_outright(&p, ok), "{ok}");
        }
        for no in [
            "unshare",
            "setns",
            "mount",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "userfaultfd",
            "io_uring_setup",
            "reboot",
            "kcmp",
            "open_by_handle_at",
            "set_tls",
            "syslog",
        ] {
            assert!(rules(&p, no).is_empty(), "{no} is left to the default EPERM");
        }
        let clone = rules(&p, "clone");
        assert_eq!(clone.len(), 1);
        let a = clone[0].2[0];
        assert_eq!((a.index(), a.value(), a.value_two(), a.op()), (0, 0x7e02_0000, Some(0), LinuxSeccompOperator::ScmpCmpMaskedEq));
        assert_eq!(rules(&p, "clone3"), vec![(LinuxSeccompAction::ScmpActErrno, Some(ENOSYS), vec![])]);
        let personas: Vec<u64> = rules(&p, "personality").iter().map(|r| r.2[0].value()).collect();
        assert_eq!(personas, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
        let sockets: Vec<(LinuxSeccompOperator, u64)> = rules(&p, "socket").iter().map(|r| (r.2[0].op(), r.2[0].value())).collect();
        use LinuxSeccompOperator::*;
        assert_eq!(sockets, [(ScmpCmpLt, 38), (ScmpCmpEq, 39), (ScmpCmpGt, 40)]);
    }

    #[test]
    fn capabilities_arches_and_kernels_change_the_profile() {
        let admin = caps(&[Capability::SysAdmin, Capability::SysPtrace]);
        let p = profile(&Host { arch: "aarch64", kernel: Some((4, 4)), caps: &admin }).unwrap();
        assert!(allowed_outright(&p, "unshare") && allowed_outright(&p, "clone") && allowed_outright(&p, "clone3"));
        assert!(rules(&p, "clone3").iter().all(|r| r.0 == LinuxSeccompAction::ScmpActAllow), "no ENOSYS with CAP_SYS_ADMIN");
        assert!(allowed_outright(&p, "set_tls") && !allowed_outright(&p, "arch_prctl") && !allowed_outright(&p, "chroot"));
        // ptrace comes with CAP_SYS_PTRACE only, on a kernel older than 4.8.
        assert_eq!(rules(&p, "ptrace").len(), 1);
        assert_eq!(p.architectures().as_deref(), Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..]));
        let none = caps(&[]);
        let s390 = profile(&Host { arch: "s390x", kernel: None, caps: &none }).unwrap();
        assert_eq!(rules(&s390, "clone")[0].2[0].index(), 1);
        assert!(rules(&s390, "ptrace").is_empty(), "an unknown kernel gets no ptrace");
        assert!(profile(&Host { arch: "loongarch64", kernel: None, caps: &none }).unwrap().architectures().is_none());
    }

    #[test]
    fn the_table_is_clean() {
        let mut seen = HashSet::new();
        for name in ALWAYS.split_whitespace() {
            assert!(seen.insert(name), "{name} twice");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
        }
        assert_eq!(seen.len(), 361);
        assert_eq!(parse_kernel("6.18.44-fc-v669\n"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("garbage"), None);
    }
}
