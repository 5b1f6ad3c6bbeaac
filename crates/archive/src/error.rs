use std::path::PathBuf;

/// What can go wrong with tarballs, layouts, layers and extraction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("{context}")]
    Io {
        /// What was being done, on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file changed while it was being added to a layer.
    #[error("{} changed size while it was being read; try again once nothing writes to it", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A path in a tarball or pipeline that would land outside the root.
    #[error("unsafe path {path:?} in {place}: {why}")]
    UnsafePath {
        /// The entry's path.
        path: String,
        /// The tarball or step.
        place: String,
        /// Why it is refused.
        why: String,
    },
    /// Applying a layer inside a root failed (or was refused by the rooted path layer).
    #[error("{place}: {source}")]
    Extract {
        /// The layer.
        place: String,
        /// What the rooted path layer said.
        #[source]
        source: imgtool_rootfs::Error,
    },
    /// An input file that is not what it should be.
    #[error("{place}: {why}")]
    Format {
        /// The file or tarball.
        place: String,
        /// What is wrong.
        why: String,
    },
    /// A filter pattern that does not parse.
    #[error("invalid pattern {pattern:?}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The parser's complaint.
        #[source]
        source: globset::Error,
    },
    /// An error from the image model.
    #[error(transparent)]
    Core(#[from] imgtool_core::Error),
}

impl From<Error> for imgtool_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            Error::Io { context, source } => imgtool_core::Error::io(context, source),
            other => imgtool_core::Error::backend(other),
        }
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
