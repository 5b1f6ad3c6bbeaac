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

const HELP: &str = "expected one of: scratch, docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG], oci-archive:PATH[:TAG], docker://REF, a path, or a registry reference";

/// Which way a string without a transport prefix is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An image to read: an existing path is a local archive or layout; anything else is a
    /// registry reference, as crane reads it.
    Source,
    /// Where to write: an existing path, or a registry reference that names its registry
    /// (`HOST.DOMAIN/...`, `HOST:PORT/...`, `localhost/...`); anything else is a new file.
    /// Docker Hub needs `docker://`, so a typo never pushes there.
    Sink,
}

/// skopeo's transports imgtool does not have: named, they get an error, not a registry.
const OTHER_TRANSPORTS: [&str; 7] = ["containers-storage", "docker-daemon", "dir", "sif", "tarball", "ostree", "ftp"];

/// Whether `s` names a registry explicitly, as docker decides: a first component with a
/// `.` or a `:`, or `localhost`, before a `/`.
pub fn names_a_registry(s: &str) -> bool {
    match s.split_once('/') {
        Some((host, rest)) => {
            !rest.is_empty() && !host.starts_with('.') && (host.contains('.') || host.contains(':') || host == "localhost")
        }
        None => false,
    }
}

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
    /// Parse a transport string read as `role`. `base` resolves relative paths (a pipeline
    /// file's directory).
    pub fn parse(s: &str, base: &Path, role: Role) -> Result<Self> {
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
            && OTHER_TRANSPORTS.contains(&scheme)
            && !Path::new(s).exists()
        {
            bail!("unknown transport {scheme:?} in {s:?}: {HELP}");
        } else {
            let p = abs(PathBuf::from(s));
            let exists = std::fs::symlink_metadata(&p).is_ok();
            // A name in a directory that exists here, or named like an archive, is a path
            // even when the file is not there yet: never a registry a credential could go to.
            let in_a_dir = s.split_once('/').is_some_and(|(dir, _)| !dir.is_empty() && abs(PathBuf::from(dir)).is_dir());
            let archive = tar_compression(s).is_some();
            let reference = (exists || !in_a_dir) && !archive && s.parse::<imgtool_core::Reference>().is_ok();
            if exists && reference && names_a_registry(s) {
                bail!(
                    "{s:?} is both a path here and a registry reference: write ./{s} (or docker-archive:, oci:, oci-archive:) for the path, or docker://{s} for the registry"
                );
            }
            let scheme = s.split_once(':').map(|x| x.0).filter(|scheme| !scheme.contains(['/', '.']));
            match (role, scheme) {
                _ if exists => local(p),
                (Role::Source, _) if reference => Transport::Registry(s.to_string()),
                (Role::Sink, _) if reference && names_a_registry(s) => Transport::Registry(s.to_string()),
                (Role::Sink, Some(_)) if reference => bail!(
                    "{s:?}: a destination without a transport is a path, unless it names its registry (HOST[:PORT]/REPO:TAG); write docker://{s} to push it to Docker Hub, or docker-archive:FILE:{s} for an archive"
                ),
                (_, Some(scheme)) => bail!("unknown transport {scheme:?} in {s:?}: {HELP}"),
                _ => local(p),
            }
        };
        if let Transport::DockerArchive(p, _) | Transport::Oci(p, _) | Transport::OciArchive(p, _) = &t
            && p.as_os_str().is_empty()
        {
            bail!("{s:?} names no path: {HELP}");
        }
        // What a sink will name the image is checked before anything is done.
        match (&t, role) {
            (Transport::DockerArchive(_, Some(name)), Role::Sink) => {
                name.parse::<imgtool_core::Reference>().with_context(|| format!("{s:?}: the image name {name:?}"))?;
            }
            (Transport::Registry(r), _) => {
                parse_ref(r)?;
            }
            _ => {}
        }
        Ok(t)
    }

    /// An image to read, named on the command line (paths relative to the working
    /// directory, shown as written).
    pub fn source_arg(s: &str) -> Result<Self> {
        Self::parse(s, Path::new(""), Role::Source)
    }

    /// An image to run, inspect, push or build `FROM`: as [`Transport::source_arg`], but a
    /// registry name the local image store holds is its copy there, as podman reads names.
    pub fn image_arg(s: &str) -> Result<Self> {
        Ok(match Self::source_arg(s)? {
            Transport::Registry(r) => crate::store::find(&r).unwrap_or(Transport::Registry(r)),
            t => t,
        })
    }

    /// Where to write, named on the command line.
    pub fn sink_arg(s: &str) -> Result<Self> {
        Self::parse(s, Path::new(""), Role::Sink)
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

/// The compression a name says a tar has (`.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`), or
/// `None` when it is not named like a tar.
pub fn tar_compression(name: &str) -> Option<imgtool_core::Compression> {
    use imgtool_core::Compression;
    let name = name.to_ascii_lowercase();
    let is = |ends: &[&str]| ends.iter().any(|e| name.ends_with(e));
    if is(&[".tar"]) {
        Some(Compression::None)
    } else if is(&[".tar.gz", ".tgz"]) {
        Some(Compression::Gzip)
    } else if is(&[".tar.zst", ".tzst"]) {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// A bare path: a layout directory, or a tarball (docker-archive unless it is an OCI layout tar).
fn local(p: PathBuf) -> Transport {
    if p.join("oci-layout").is_file() {
        Transport::Oci(p, None)
    } else if p.is_file() && is_oci_tar(&p) {
        Transport::OciArchive(p, None)
    } else {
        Transport::DockerArchive(p, None)
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
        let parse = |s: &str, b: &Path| Transport::parse(s, b, Role::Source);
        assert_eq!(parse("scratch", b).unwrap(), Transport::Scratch);
        assert_eq!(
            parse("docker-archive:out.tar:this-is-a-test:latest", b).unwrap(),
            Transport::DockerArchive("/base/out.tar".into(), Some("this-is-a-test:latest".into()))
        );
        assert_eq!(parse("oci:/x/lay:v1", b).unwrap(), Transport::Oci("/x/lay".into(), Some("v1".into())));
        assert_eq!(parse("oci-archive:a.tar", b).unwrap(), Transport::OciArchive("/base/a.tar".into(), None));
        assert_eq!(parse("docker://busybox", b).unwrap(), Transport::Registry("busybox".into()));
        assert!(parse("ftp:x", b).unwrap_err().to_string().contains("unknown transport"));
        assert!(parse("dir:/x", b).unwrap_err().to_string().contains("unknown transport"));
        assert!(parse("oci:", b).is_err());
    }

    #[test]
    fn bare_strings_follow_one_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path();
        std::fs::write(b.join("bb.tar"), b"").unwrap();
        let src = |s: &str| Transport::parse(s, b, Role::Source);
        let sink = |s: &str| Transport::parse(s, b, Role::Sink);
        // An existing path is local; otherwise a source is a registry reference.
        assert_eq!(src("bb.tar").unwrap(), Transport::DockerArchive(b.join("bb.tar"), None));
        assert_eq!(src("127.0.0.1:5055/busybox:latest").unwrap(), Transport::Registry("127.0.0.1:5055/busybox:latest".into()));
        assert_eq!(src("frolvlad/alpine-glibc:latest").unwrap(), Transport::Registry("frolvlad/alpine-glibc:latest".into()));
        // A sink is a registry only when it names its registry.
        assert_eq!(sink("localhost:5000/x:1").unwrap(), Transport::Registry("localhost:5000/x:1".into()));
        assert_eq!(sink("out.tar").unwrap(), Transport::DockerArchive(b.join("out.tar"), None));
        assert!(sink("busybox:latest").unwrap_err().to_string().contains("docker://busybox:latest"));
        // Both readings possible: an error naming both.
        std::fs::create_dir_all(b.join("example.com")).unwrap();
        std::fs::write(b.join("example.com/app"), b"").unwrap();
        let err = src("example.com/app").unwrap_err().to_string();
        assert!(err.contains("both a path here and a registry reference") && err.contains("docker://example.com/app"), "{err}");
    }
}
