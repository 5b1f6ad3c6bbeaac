//! Small pieces the instructions share: variables, keywords, flags, JSON forms, durations.

use super::*;

/// A stage's variables for substitution: its environment first, then its ARGs.
pub(super) fn vars(st: &Stage) -> impl Fn(&str) -> Option<String> + '_ {
    let env = st.image.config().env();
    move |n: &str| {
        env.iter().find_map(|e| e.strip_prefix(n).and_then(|r| r.strip_prefix('=')).map(str::to_string)).or_else(|| st.args.get(n).cloned())
    }
}

pub(super) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(super) fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

pub(super) fn keyword(k: &Kind) -> &'static str {
    match k {
        Kind::From { .. } => "FROM",
        Kind::Arg(_) => "ARG",
        Kind::Env(_) => "ENV",
        Kind::Label(_) => "LABEL",
        Kind::Run { .. } => "RUN",
        Kind::Cmd(_) => "CMD",
        Kind::Entrypoint(_) => "ENTRYPOINT",
        Kind::Copy { add: true, .. } => "ADD",
        Kind::Copy { add: false, .. } => "COPY",
        Kind::Workdir(_) => "WORKDIR",
        Kind::User(_) => "USER",
        Kind::Expose(_) => "EXPOSE",
        Kind::Volume(_) => "VOLUME",
        Kind::Stopsignal(_) => "STOPSIGNAL",
        Kind::Healthcheck(_) => "HEALTHCHECK",
        Kind::Shell(_) => "SHELL",
        Kind::Onbuild(_) => "ONBUILD",
        Kind::Maintainer(_) => "MAINTAINER",
    }
}

pub(super) fn flag<'a>(flags: &'a [Flag], name: &str) -> Option<&'a str> {
    flags.iter().rev().find(|f| f.name == name).map(|f| f.value.as_deref().unwrap_or("true"))
}

pub(super) fn check_flags(i: &Instruction, flags: &[Flag], allowed: &[&str]) -> Result<()> {
    match flags.iter().find(|f| !allowed.contains(&f.name.as_str())) {
        Some(f) => Err(Error::step(
            i.line,
            keyword(&i.kind),
            format!(
                "unknown or unsupported option --{}; this instruction takes {}",
                f.name,
                allowed.iter().map(|a| format!("--{a}")).collect::<Vec<_>>().join(", ")
            ),
        )),
        None => Ok(()),
    }
}

pub(super) fn command_json(c: &Command, shell: &[String]) -> Value {
    match c {
        Command::Exec(a) => json!(a),
        Command::Shell(s) => json!(shell.iter().cloned().chain(std::iter::once(s.clone())).collect::<Vec<_>>()),
    }
}

/// A Go duration (`1m30s`, `500ms`, `2h`) in nanoseconds.
pub(super) fn duration_ns(s: &str) -> Option<u64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Some(total as u64)
}

pub(super) fn target_platform(opts: &BuildOptions) -> Platform {
    opts.platform.clone().unwrap_or_else(Platform::host)
}

/// The automatic platform arguments BuildKit gives a stage that declares them.
pub(super) fn platform_arg(name: &str, target: &Platform) -> Option<String> {
    let build: Platform = Platform::host();
    let pick = |p: &Platform, what: &str| match what {
        "PLATFORM" => Some(p.to_string()),
        "OS" => Some(p.os.clone()),
        "ARCH" => Some(p.architecture.clone()),
        "VARIANT" => Some(p.variant.clone().unwrap_or_default()),
        _ => None,
    };
    if let Some(w) = name.strip_prefix("TARGET") {
        return pick(target, w);
    }
    if let Some(w) = name.strip_prefix("BUILD") {
        return pick(&build, w);
    }
    None
}

/// A word as errors show it: long ones cut.
pub(super) fn shown(word: &str) -> String {
    match word.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &word[..at]),
        None => word.to_string(),
    }
}

/// Whether this host can execute `RUN` for `p`: its own platform (and 386 on amd64), or an
/// emulator registered with binfmt_misc (qemu-user-static). The error says which is missing.
pub(super) fn can_execute(p: &Platform) -> std::result::Result<(), String> {
    let host = Platform::host();
    // 64-bit x86 and Arm hosts run their 32-bit siblings' binaries natively (as a rule).
    let sibling = matches!((host.architecture.as_str(), p.architecture.as_str()), ("amd64", "386") | ("arm64", "arm"));
    let native = p.os == host.os && (p.architecture == host.architecture || sibling || p.architecture.is_empty());
    if native {
        return Ok(());
    }
    let qemu = match p.architecture.as_str() {
        "arm64" => "aarch64",
        "386" => "i386",
        "amd64" => "x86_64",
        "mips64le" => "mips64el",
        "ppc64le" | "s390x" | "riscv64" | "arm" => p.architecture.as_str(),
        _ => "",
    };
    let handler = std::path::Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{qemu}"));
    let registered = !qemu.is_empty() && std::fs::read_to_string(&handler).is_ok_and(|s| s.starts_with("enabled"));
    if p.os == host.os && registered {
        return Ok(());
    }
    Err(format!(
        "cannot execute commands for {p} on this {host} host without emulation: register qemu-user-static for it with binfmt_misc ({} is missing), or build for {host}",
        handler.display()
    ))
}

/// The most all of a build's substitutions may produce together.
const EXPANSION_BUDGET: usize = 64 << 20;

impl Builder<'_> {
    pub(super) fn expand(&self, i: &Instruction, word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
        let out =
            expand(word, self.df.escape, lookup).map_err(|m| Error::step(i.line, keyword(&i.kind), format!("{}: {m}", shown(word))))?;
        self.charge(i, out.len())?;
        Ok(out)
    }

    pub(super) fn charge(&self, i: &Instruction, len: usize) -> Result<()> {
        let total = self.expanded.get().saturating_add(len);
        self.expanded.set(total);
        if total > EXPANSION_BUDGET {
            return Err(Error::step(
                i.line,
                keyword(&i.kind),
                format!(
                    "variable substitutions have produced more than {} MiB in this build; a chain of ARG or ENV values grows without bound",
                    EXPANSION_BUDGET >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Expand with the stage's variables: its environment, then its ARGs.
    pub(super) fn expand_in(&self, st: &Stage, i: &Instruction, word: &str) -> Result<String> {
        self.expand(i, word, &vars(st))
    }

    pub(super) fn expand_heredoc_in(&self, st: &Stage, i: &Instruction, body: &str) -> Result<String> {
        let out = crate::subst::expand_heredoc(body, self.df.escape, &vars(st))
            .map_err(|m| Error::step(i.line, keyword(&i.kind), format!("heredoc: {m}")))?;
        self.charge(i, out.len())?;
        Ok(out)
    }
}
