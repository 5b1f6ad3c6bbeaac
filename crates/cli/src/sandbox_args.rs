//! The sandbox flags `imgtool run` and `imgtool build` share, resolved into the sandbox's
//! settings.

use anyhow::{Result, bail};

use crate::args::SandboxArgs;

impl SandboxArgs {
    pub fn security(&self) -> Result<imgtool_sandbox::Security> {
        let mut s = imgtool_sandbox::Security { pids_limit: self.pids_limit.filter(|&n| n > 0), ..Default::default() };
        for opt in &self.security_opt {
            match opt.as_str() {
                "seccomp=unconfined" => s.seccomp = false,
                _ => bail!("--security-opt {opt}: not supported; the only accepted value is seccomp=unconfined"),
            }
        }
        if let Some(m) = &self.memory {
            let n =
                parse_size(m).ok_or_else(|| anyhow::anyhow!("--memory {m}: expected bytes or a number with b, k, m or g (512m, 1g)"))?;
            if n > 0 && n < imgtool_sandbox::MIN_MEMORY {
                bail!("--memory {m}: the minimum is 6m");
            }
            s.memory = Some(n).filter(|&n| n > 0);
        }
        Ok(s)
    }
}

/// A size as docker reads `--memory`: a number (decimals allowed), then optionally a
/// space, one of b k m g t p (any case, powers of 1024), an `i` and a `b`.
fn parse_size(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let bytes = number * (1u64 << shift) as f64;
    // Past i64 the kernel would read it as "no limit": refuse rather than surprise.
    (bytes < i64::MAX as f64).then_some(bytes as i64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        for (text, bytes) in [
            ("512m", Some(512 << 20)),
            ("1g", Some(1 << 30)),
            ("1G", Some(1 << 30)),
            ("1.5g", Some(3 << 29)),
            ("100", Some(100)),
            ("64 MiB", Some(64 << 20)),
            ("10kb", Some(10 << 10)),
            ("0", Some(0)),
            ("", None),
            ("m", None),
            ("1x", None),
            ("-1", None),
            ("1.g", None),
            ("99999999p", None),
        ] {
            assert_eq!(parse_size(text), bytes, "{text}");
        }
    }

    #[test]
    fn options_become_the_sandbox_settings() {
        let args = |opts: &[&str], memory: Option<&str>| SandboxArgs {
            security_opt: opts.iter().map(|s| s.to_string()).collect(),
            pids_limit: Some(-1),
            memory: memory.map(str::to_string),
        };
        let s = args(&[], None).security().unwrap();
        assert!(s.seccomp && s.pids_limit.is_none() && s.memory.is_none());
        let s = args(&["seccomp=unconfined"], Some("1g")).security().unwrap();
        assert!(!s.seccomp && s.memory == Some(1 << 30));
        let err = args(&["apparmor=unconfined"], None).security().unwrap_err().to_string();
        assert!(err.contains("--security-opt apparmor=unconfined") && err.contains("seccomp=unconfined"), "{err}");
        let err = args(&[], Some("1m")).security().unwrap_err().to_string();
        assert!(err.contains("--memory 1m") && err.contains("minimum"), "{err}");
    }
}
