//! Skopeo-style transport strings: where images come from and go to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use imgtool_archive::{DockerArchiveSource, LayoutSink, OciLayoutSource};
use imgtool_core::{ImageSink, SharedSource};
use imgtool_registry::Registries;

/// A parsed transport string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `scratch`: an empty image.
    Scratch,
    /// `docker-archive:PATH[:NAME:TAG]`
    DockerArchive(PathBuf, Option<String>),
    /// `oci:DIR[:TAG]`
    Oci(PathBuf, Option<String>),
    /// `oci-archive:PATH[:TAG]`
    OciArchive(PathBuf, Option<String>),
    /// `docker://REF`
    Registry(String),
}

const HELP: &str =
    "expected one of: scratch, docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG], oci-archive:PATH[:TAG], docker://REF, or a path";

fn split_path(rest: &str) -> (PathBuf, Option<String>) {
    // A path that exists as written wins, so paths with ':' still work.
    if Path::new(rest).exists() {
        return (PathBuf::from(rest), None);
    }
    match rest.split_once(':') {
        Some((p, name)) if !name.is_empty() => (PathBuf::from(p), Some(name.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

/// The transport prefixes a string may start with.
const PREFIXES: [&str; 4] = ["docker://", "docker-archive:", "oci:", "oci-archive:"];

/// Whether `s` names its transport (rather than being a bare path or reference).
pub fn has_prefix(s: &str) -> bool {
    PREFIXES.iter().any(|p| s.starts_with(p))
}

/// A registry reference or host given with or without skopeo's `docker://`.
pub fn strip_docker(s: &str) -> &str {
    s.strip_prefix("docker://").unwrap_or(s)
}

impl Transport {
    /// Parse a transport string. `base` resolves relative paths (a pipeline file's directory).
    pub fn parse(s: &str, base: &Path) -> Result<Self> {
        // Relative to `base`; the working directory's own paths stay as written, so results
        // name the destination the way the user did.
        let here = base.as_os_str().is_empty() || base == Path::new(".");
        let abs = |p: PathBuf| if p.is_absolute() || p.as_os_str().is_empty() || here { p } else { base.join(p) };
        let t = if s == "scratch" {
            Transport::Scratch
        } else if let Some(r) = s.strip_prefix("docker://") {
            Transport::Registry(r.to_string())
        } else if let Some(r) = s.strip_prefix("docker-archive:") {
            let (p, n) = split_path(r);
            Transport::DockerArchive(abs(p), n)
        } else if let Some(r) = s.strip_prefix("oci-archive:") {
            let (p, n) = split_path(r);
            Transport::OciArchive(abs(p), n)
        } else if let Some(r) = s.strip_prefix("oci:") {
            let (p, n) = split_path(r);
            Transport::Oci(abs(p), n)
        } else if let Some((scheme, _)) = s.split_once(':')
            && !scheme.contains('/')
            && !scheme.contains('.')
            && !Path::new(s).exists()
        {
            bail!("unknown transport {scheme:?} in {s:?}: {HELP}");
        } else {
            // A bare path: a layout directory, or a tarball (docker-archive unless it is an OCI layout tar).
            let p = abs(PathBuf::from(s));
            if p.join("oci-layout").is_file() {
                Transport::Oci(p, None)
            } else if p.is_file() && is_oci_tar(&p) {
                Transport::OciArchive(p, None)
            } else {
                Transport::DockerArchive(p, None)
            }
        };
        if let Transport::DockerArchive(p, _) | Transport::Oci(p, _) | Transport::OciArchive(p, _) = &t
            && p.as_os_str().is_empty()
        {
            bail!("{s:?} names no path: {HELP}");
        }
        Ok(t)
    }

    /// A path on the command line, relative to the working directory and shown as written.
    pub fn parse_arg(s: &str) -> Result<Self> {
        Self::parse(s, Path::new(""))
    }

    /// The source this names, and the image selector inside it.
    pub fn open_source(&self, registries: &Registries) -> Result<(SharedSource, Option<String>)> {
        Ok(match self {
            Transport::Scratch => bail!("scratch is not a source to open"),
            Transport::DockerArchive(p, n) => {
                (Arc::new(DockerArchiveSource::open(p).with_context(|| format!("opening {self}"))?), n.clone())
            }
            Transport::Oci(p, n) => (Arc::new(OciLayoutSource::open_dir(p).with_context(|| format!("opening {self}"))?), n.clone()),
            Transport::OciArchive(p, n) => {
                (Arc::new(OciLayoutSource::open_archive(p).with_context(|| format!("opening {self}"))?), n.clone())
            }
            Transport::Registry(r) => (Arc::new(registries.source(&parse_ref(r)?)?), None),
        })
    }

    /// The sink this names, and the names to give the image there.
    pub fn open_sink(&self, registries: &Registries) -> Result<(Box<dyn ImageSink>, Vec<String>)> {
        let tags = |n: &Option<String>| n.iter().cloned().collect::<Vec<_>>();
        Ok(match self {
            Transport::Scratch => bail!("scratch cannot be written to"),
            Transport::DockerArchive(p, n) => (Box::new(LayoutSink::docker_archive(p)?), tags(n)),
            Transport::Oci(p, n) => (Box::new(LayoutSink::oci_dir(p)?), tags(n)),
            Transport::OciArchive(p, n) => (Box::new(LayoutSink::oci_archive(p)?), tags(n)),
            Transport::Registry(r) => {
                let reference = parse_ref(r)?;
                let tags = reference.digest().is_none().then(|| reference.tag().map(str::to_string)).flatten().into_iter().collect();
                (Box::new(registries.sink(&reference)?), tags)
            }
        })
    }
}

fn parse_ref(r: &str) -> Result<imgtool_core::Reference> {
    r.parse().with_context(|| format!("docker://{r}"))
}

fn is_oci_tar(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else { return false };
    // Sniffing reads headers of a file we were handed: read them as every other input.
    let mut tar = imgtool_archive::TarReader::seeking(f);
    let mut oci = false;
    for _ in 0..4096 {
        let Ok(Some(m)) = tar.next_member() else { break };
        match String::from_utf8_lossy(&m.path).trim_start_matches("./") {
            "manifest.json" => return false,
            "oci-layout" => oci = true,
            _ => {}
        }
    }
    oci
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with = |f: &mut std::fmt::Formatter<'_>, kind: &str, p: &Path, n: &Option<String>| {
            write!(f, "{kind}:{}", p.display())?;
            if let Some(n) = n {
                write!(f, ":{n}")?;
            }
            Ok(())
        };
        match self {
            Transport::Scratch => f.write_str("scratch"),
            Transport::DockerArchive(p, n) => with(f, "docker-archive", p, n),
            Transport::Oci(p, n) => with(f, "oci", p, n),
            Transport::OciArchive(p, n) => with(f, "oci-archive", p, n),
            Transport::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        let b = Path::new("/base");
        assert_eq!(Transport::parse("scratch", b).unwrap(), Transport::Scratch);
        assert_eq!(
            Transport::parse("docker-archive:out.tar:this-is-a-test:latest", b).unwrap(),
            Transport::DockerArchive("/base/out.tar".into(), Some("this-is-a-test:latest".into()))
        );
        assert_eq!(Transport::parse("oci:/x/lay:v1", b).unwrap(), Transport::Oci("/x/lay".into(), Some("v1".into())));
        assert_eq!(Transport::parse("oci-archive:a.tar", b).unwrap(), Transport::OciArchive("/base/a.tar".into(), None));
        assert_eq!(Transport::parse("docker://busybox", b).unwrap(), Transport::Registry("busybox".into()));
        assert!(Transport::parse("ftp:x", b).unwrap_err().to_string().contains("unknown transport"));
        assert!(Transport::parse("oci:", b).is_err());
    }
}
