/// What can go wrong building a conda environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A channel that cannot be read.
    #[error("channel {channel}: {why}")]
    Channel {
        /// The channel as given.
        channel: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// A spec that does not parse.
    #[error("invalid package spec {spec:?}: {why}")]
    Spec {
        /// The spec.
        spec: String,
        /// The parser's complaint.
        why: String,
    },
    /// A lock file that cannot be read or used.
    #[error("lock file {}: {why}", path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No set of packages satisfies the specs.
    #[error("the specs cannot be satisfied:\n{explanation}")]
    Unsolvable {
        /// The solver's explanation.
        explanation: String,
    },
    /// An unknown or unsupported platform.
    #[error("unknown platform {platform:?}: {why}")]
    Platform {
        /// As given.
        platform: String,
        /// What is expected.
        why: String,
    },
    /// A layer budget (`max_layers`) that cannot be kept.
    #[error("layer budget: {0}")]
    Budget(String),
    /// Fetching, extracting or linking packages failed.
    #[error("installing the environment failed: {message}")]
    Install {
        /// What was being done, or what is wrong.
        message: String,
        /// What failed, when something else did.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A package (or its repodata record) that could reach outside the environment.
    #[error("package {package}: {entry}: {why}; refusing to install it (the channel or package is broken or hostile)")]
    Unsafe {
        /// `name-version-build`.
        package: String,
        /// The file, link or field at fault.
        entry: String,
        /// What is wrong with it.
        why: String,
    },
    /// An I/O error.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing layers failed.
    #[error(transparent)]
    Archive(#[from] imgtool_archive::Error),
    /// The image model.
    #[error(transparent)]
    Core(#[from] imgtool_core::Error),
}

impl Error {
    pub(crate) fn install(message: impl Into<String>) -> Self {
        Self::Install { message: message.into(), source: None }
    }

    pub(crate) fn install_from(message: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Install { message: message.into(), source: Some(source.into()) }
    }
}

impl From<Error> for imgtool_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            Error::Archive(a) => a.into(),
            other => imgtool_core::Error::backend(other),
        }
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
