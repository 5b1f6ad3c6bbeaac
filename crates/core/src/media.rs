use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip, what every tool reads.
    #[default]
    Gzip,
    /// zstd, smaller and faster, read by recent tools.
    Zstd,
}

impl Compression {
    /// Guess the compression from a blob's first bytes.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(crate::Error::Invalid { what: "compression".into(), value: s.into(), why: "expected gzip, zstd or none".into() }),
        }
    }
}

macro_rules! media_types {
    ($($(#[$doc:meta])* $name:ident = $s:literal,)*) => {
        /// A media type: the known OCI and Docker ones, or any other string.
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub enum MediaType {
            $($(#[$doc])* $name,)*
            /// A media type imgtool has no special knowledge of.
            Other(String),
        }

        impl MediaType {
            /// The media type string.
            pub fn as_str(&self) -> &str {
                match self {
                    $(MediaType::$name => $s,)*
                    MediaType::Other(s) => s,
                }
            }
        }

        impl From<&str> for MediaType {
            fn from(s: &str) -> Self {
                match s {
                    $($s => MediaType::$name,)*
                    other => MediaType::Other(other.to_string()),
                }
            }
        }
    };
}

media_types! {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest = "application/vnd.oci.image.manifest.v1+json",
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex = "application/vnd.oci.image.index.v1+json",
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig = "application/vnd.oci.image.config.v1+json",
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer = "application/vnd.oci.image.layer.v1.tar",
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip",
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd",
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+gzip`
    OciForeignLayerGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    /// `application/vnd.docker.distribution.manifest.v2+json` (schema 2)
    DockerManifest = "application/vnd.docker.distribution.manifest.v2+json",
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json",
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig = "application/vnd.docker.container.image.v1+json",
    /// `application/vnd.docker.image.rootfs.diff.tar` (uncompressed)
    DockerLayer = "application/vnd.docker.image.rootfs.diff.tar",
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip",
    /// `application/vnd.docker.image.rootfs.diff.tar.zstd`
    DockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd",
    /// `application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`
    DockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    /// `application/vnd.docker.distribution.manifest.v1+json` (schema 1, refused)
    DockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json",
    /// `application/vnd.docker.distribution.manifest.v1+prettyjws` (signed schema 1, refused)
    DockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws",
}

/// Which family of media types an image uses; one manifest never mixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// OCI image spec media types.
    #[default]
    Oci,
    /// Docker schema 2 media types.
    Docker,
}

impl MediaType {
    /// A single-image manifest (OCI or Docker schema 2).
    pub fn is_manifest(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// A multi-platform index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// Docker schema 1, which imgtool refuses.
    pub fn is_schema1(&self) -> bool {
        matches!(self, MediaType::DockerSchema1 | MediaType::DockerSchema1Signed)
    }

    /// A filesystem layer of either family.
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// The compression of a layer media type, or `None` when this is not a layer.
    pub fn layer_compression(&self) -> Option<Compression> {
        use MediaType::*;
        match self {
            OciLayer | DockerLayer => Some(Compression::None),
            OciLayerGzip | OciForeignLayerGzip | DockerLayerGzip | DockerForeignLayer => Some(Compression::Gzip),
            OciLayerZstd | DockerLayerZstd => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The family this media type belongs to, if it belongs to one.
    pub fn flavor(&self) -> Option<Flavor> {
        use MediaType::*;
        match self {
            OciManifest | OciIndex | OciConfig | OciLayer | OciLayerGzip | OciLayerZstd | OciForeignLayerGzip => Some(Flavor::Oci),
            DockerManifest | DockerManifestList | DockerConfig | DockerLayer | DockerLayerGzip | DockerLayerZstd | DockerForeignLayer
            | DockerSchema1 | DockerSchema1Signed => Some(Flavor::Docker),
            Other(_) => None,
        }
    }

    /// The layer media type of `flavor` for `compression`.
    pub fn layer(flavor: Flavor, compression: Compression) -> Self {
        match (flavor, compression) {
            (Flavor::Oci, Compression::None) => MediaType::OciLayer,
            (Flavor::Oci, Compression::Gzip) => MediaType::OciLayerGzip,
            (Flavor::Oci, Compression::Zstd) => MediaType::OciLayerZstd,
            (Flavor::Docker, Compression::None) => MediaType::DockerLayer,
            (Flavor::Docker, Compression::Gzip) => MediaType::DockerLayerGzip,
            (Flavor::Docker, Compression::Zstd) => MediaType::DockerLayerZstd,
        }
    }

    /// The manifest media type of `flavor`.
    pub fn manifest(flavor: Flavor) -> Self {
        match flavor {
            Flavor::Oci => MediaType::OciManifest,
            Flavor::Docker => MediaType::DockerManifest,
        }
    }

    /// The config media type of `flavor`.
    pub fn config(flavor: Flavor) -> Self {
        match flavor {
            Flavor::Oci => MediaType::OciConfig,
            Flavor::Docker => MediaType::DockerConfig,
        }
    }

    /// The same kind of blob in the other family (a layer keeps its compression).
    pub fn to_flavor(&self, flavor: Flavor) -> Self {
        if let Some(c) = self.layer_compression() {
            return MediaType::layer(flavor, c);
        }
        match self {
            MediaType::OciManifest | MediaType::DockerManifest => MediaType::manifest(flavor),
            MediaType::OciConfig | MediaType::DockerConfig => MediaType::config(flavor),
            MediaType::OciIndex | MediaType::DockerManifestList => match flavor {
                Flavor::Oci => MediaType::OciIndex,
                Flavor::Docker => MediaType::DockerManifestList,
            },
            other => other.clone(),
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MediaType::from(String::deserialize(d)?.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_unknown() {
        for s in ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip", "text/x-other"] {
            assert_eq!(MediaType::from(s).as_str(), s);
        }
        assert_eq!(MediaType::from("text/x-other"), MediaType::Other("text/x-other".into()));
    }

    #[test]
    fn converts_between_flavors() {
        assert_eq!(MediaType::DockerLayerGzip.to_flavor(Flavor::Oci), MediaType::OciLayerGzip);
        assert_eq!(MediaType::OciManifest.to_flavor(Flavor::Docker), MediaType::DockerManifest);
        assert!(MediaType::DockerSchema1Signed.is_schema1());
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
    }
}
