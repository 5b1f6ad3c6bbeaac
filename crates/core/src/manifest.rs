use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Digest, Error, MediaType};

/// A pointer to a blob: its media type, digest and size, as manifests and indexes carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: MediaType,
    /// Its content digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Other places the blob can be fetched from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations, in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the manifest this points to (indexes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the manifest this points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with only the three required fields.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Self { media_type, digest, size, urls: Vec::new(), annotations: BTreeMap::new(), platform: None, artifact_type: None }
    }

    /// The descriptor of `raw` bytes with `media_type`.
    pub fn of(media_type: MediaType, raw: &[u8]) -> Self {
        Self::new(media_type, Digest::sha256_of(raw), raw.len() as u64)
    }
}

/// A single-platform image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (required by Docker, optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The artifact type, for non-image artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations, in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A multi-platform index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations, in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An empty OCI index.
    pub fn new() -> Self {
        Self { schema_version: 2, media_type: Some(MediaType::OciIndex), manifests: Vec::new(), annotations: BTreeMap::new() }
    }
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

/// What a manifest blob turned out to be once parsed.
#[derive(Debug, Clone)]
pub enum ParsedManifest {
    /// One image.
    Image(Box<Manifest>),
    /// Several, one per platform.
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<MediaType>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

impl ParsedManifest {
    /// Parse manifest bytes, using `declared` (the media type the source announced) when the
    /// JSON does not say. Schema 1 is refused with a message saying what to do.
    pub fn parse(raw: &[u8], declared: Option<&MediaType>) -> Result<Self, Error> {
        let probe: Probe = serde_json::from_slice(raw).map_err(|e| Error::Json { what: "manifest".into(), source: e })?;
        let mt = probe.media_type.clone().or_else(|| declared.cloned());
        if probe.schema_version == Some(1) || mt.as_ref().is_some_and(|m| m.is_schema1()) {
            return Err(Error::Schema1);
        }
        let is_index = match &mt {
            Some(m) if m.is_index() => true,
            Some(m) if m.is_manifest() => false,
            _ => probe.manifests.is_some(),
        };
        if is_index {
            Ok(ParsedManifest::Index(serde_json::from_slice(raw).map_err(|e| Error::Json { what: "image index".into(), source: e })?))
        } else {
            Ok(ParsedManifest::Image(Box::new(
                serde_json::from_slice(raw).map_err(|e| Error::Json { what: "image manifest".into(), source: e })?,
            )))
        }
    }
}

/// An operating system and CPU architecture, as in `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's names (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, `windows`).
    pub os: String,
    /// OS version (Windows).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on, in Go's names.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "arm" => "arm",
            other => other,
        };
        Platform { architecture: architecture.into(), os: "linux".into(), os_version: None, os_features: Vec::new(), variant: None }
    }

    /// Whether `other` (from an index) satisfies this wanted platform. A missing wanted
    /// variant matches any; arm64 treats a missing variant as `v8`.
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match &self.variant {
            None => true,
            Some(_) => norm(self) == norm(other),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid {
            what: "platform".into(),
            value: s.into(),
            why: "expected OS/ARCH[/VARIANT] (linux/arm64/v8) or an architecture (arm64)".into(),
        };
        let mut parts: Vec<String> = s.split('/').map(str::to_ascii_lowercase).collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        if let [one] = parts.as_slice() {
            // As docker reads one word: an OS on this machine's architecture, or an
            // architecture of Linux (`arm64` is linux/arm64).
            let host = Platform::host();
            parts = if ["linux", "windows", "darwin", "freebsd"].contains(&one.as_str()) {
                vec![one.clone(), host.architecture]
            } else {
                vec!["linux".into(), one.clone()]
            };
        }
        let mut architecture = parts[1].clone();
        let mut variant = parts.get(2).cloned();
        // Normalise the aliases people type to the names registries use.
        match architecture.as_str() {
            "x86_64" | "x86-64" => architecture = "amd64".into(),
            "aarch64" => architecture = "arm64".into(),
            "armhf" => {
                architecture = "arm".into();
                variant.get_or_insert_with(|| "v7".into());
            }
            "armel" => {
                architecture = "arm".into();
                variant.get_or_insert_with(|| "v6".into());
            }
            _ => {}
        }
        Ok(Platform { architecture, os: parts[0].clone(), os_version: None, os_features: Vec::new(), variant })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let idx: Platform = "linux/arm64".parse().unwrap();
        assert!(p.matches(&idx));
        assert!(idx.matches(&p));
        assert_eq!("linux/x86_64".parse::<Platform>().unwrap().architecture, "amd64");
        // One word, as docker reads it: an architecture of Linux, or an OS on this machine's.
        assert_eq!("arm64".parse::<Platform>().unwrap().to_string(), "linux/arm64");
        assert_eq!("aarch64".parse::<Platform>().unwrap().to_string(), "linux/arm64");
        assert_eq!("linux".parse::<Platform>().unwrap(), Platform::host());
        assert!("".parse::<Platform>().is_err() && "a/b/c/d".parse::<Platform>().is_err());
        assert!(!"linux/arm/v7".parse::<Platform>().unwrap().matches(&"linux/arm/v6".parse().unwrap()));
    }

    #[test]
    fn refuses_schema1() {
        let raw = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let err = ParsedManifest::parse(raw, None).unwrap_err().to_string();
        assert!(err.contains("schema 1"), "{err}");
    }

    #[test]
    fn tells_index_from_manifest() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(ParsedManifest::parse(idx, None).unwrap(), ParsedManifest::Index(_)));
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        assert!(matches!(ParsedManifest::parse(m, None).unwrap(), ParsedManifest::Image(_)));
    }
}
