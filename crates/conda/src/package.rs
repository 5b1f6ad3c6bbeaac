//! What linking a package leaves: the install step makes these, the build cache keeps them.

/// One package as linked into the staging prefix.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InstalledPackage {
    /// `name=version=build`.
    pub id: String,
    /// Its files, relative to the prefix.
    pub files: Vec<String>,
    /// Their total size in bytes.
    pub size: u64,
    /// A post-link script it ships (never run), relative to the prefix.
    pub post_link: Option<String>,
}

/// A package as a previous build linked it: enough to lay it out and write its record
/// without linking it again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CachedPackage {
    /// What linking reported.
    pub package: InstalledPackage,
    /// Its `conda-meta` file name.
    pub meta_name: String,
    /// The sanitized record.
    pub meta_json: String,
}
