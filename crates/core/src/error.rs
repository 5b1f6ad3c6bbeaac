use crate::Digest;

/// Everything that can go wrong in the image model, and what sources and sinks report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest string that does not parse.
    #[error("invalid digest {digest:?}: {why}")]
    InvalidDigest {
        /// The offending text.
        digest: String,
        /// What is wrong with it.
        why: String,
    },
    /// An image reference that does not parse.
    #[error("invalid image reference {reference:?}: {why}")]
    InvalidReference {
        /// The offending text.
        reference: String,
        /// What is wrong with it.
        why: String,
    },
    /// Some other value that does not parse.
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        /// What kind of value.
        what: String,
        /// The offending text.
        value: String,
        /// What is expected instead.
        why: String,
    },
    /// JSON that does not parse as what it should be.
    #[error("malformed {what}")]
    Json {
        /// What was being read.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Docker schema 1 manifests are obsolete and unsupported.
    #[error(
        "this is a Docker schema 1 manifest, which imgtool does not support; re-push the image with a current Docker or skopeo (schema 2) first"
    )]
    Schema1,
    /// Content did not hash to what it claimed.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or file.
        what: String,
        /// The digest it should have had.
        expected: Digest,
        /// The digest it had.
        actual: Digest,
    },
    /// Content was not the size it claimed.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob or file.
        what: String,
        /// The expected size.
        expected: u64,
        /// The size it had.
        actual: u64,
    },
    /// A manifest or config larger than imgtool is willing to read into memory.
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The blob.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Something asked for is not in the source.
    #[error("{what} not found in {place}")]
    NotFound {
        /// What was asked for.
        what: String,
        /// Where it was looked for.
        place: String,
    },
    /// An index has no manifest for the wanted platform.
    #[error("no image for platform {wanted} in {place}; it has: {available}")]
    NoPlatform {
        /// The platform asked for.
        wanted: String,
        /// The source.
        place: String,
        /// The platforms it does have.
        available: String,
    },
    /// A single-platform image of another platform than the one asked for.
    #[error("{place}: image platform ({found}) does not match the expected platform ({wanted})")]
    PlatformMismatch {
        /// The source.
        place: String,
        /// The platform its config declares.
        found: String,
        /// The platform asked for.
        wanted: String,
    },
    /// An image whose parts do not agree with each other.
    #[error("invalid image: {}", problems.join("; "))]
    InvalidImage {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// An operation that this source or sink cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// An I/O error, with what was being done.
    #[error("{context}")]
    Io {
        /// What was being done, on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from a backend crate (registry, archive, ...).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A backend error that may go away if the same thing is tried again (a dropped
    /// connection, a 503); the copy engine retries these.
    #[error(transparent)]
    Transient(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        // A verifying reader reports digest/size problems as io errors; unwrap them.
        if source.get_ref().is_some_and(|e| e.is::<Error>()) {
            let kind = source.kind();
            return match source.into_inner().map(|b| b.downcast::<Error>()) {
                Some(Ok(e)) => *e,
                _ => Error::Io { context: context.into(), source: kind.into() },
            };
        }
        Error::Io { context: context.into(), source }
    }

    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transient(_) => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    /// Wrap a backend's own error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// An error and its causes on one line, `outer: inner: innermost`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
