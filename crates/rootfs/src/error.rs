use std::io;

/// What can go wrong touching a path inside a root.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed on a path inside the root.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path inside the root (as the image names it).
        path: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// Resolving a path inside the root failed (including a detected escape attempt).
    #[error("{op} {path}: {source}")]
    Resolve {
        /// What was being done.
        op: &'static str,
        /// The path inside the root.
        path: String,
        /// Why resolution failed.
        #[source]
        source: pathrs::error::Error,
    },
    /// A name that must be one path component was not.
    #[error("{name:?} is not a single path component")]
    BadName {
        /// The name given.
        name: String,
    },
    /// A file was larger than the caller allows.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The path inside the root.
        path: String,
        /// The limit.
        limit: u64,
    },
}

impl Error {
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Resolve { source, .. } => match source.kind() {
                pathrs::error::ErrorKind::OsError(e) => e,
                _ => None,
            },
            _ => None,
        }
    }

    /// True when the path (or one of its parents) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc_enoent())
    }

    /// Into a plain `io::Error` (for callers whose errors are `io::Error`s).
    pub fn into_io(self) -> io::Error {
        match self.errno() {
            Some(e) => io::Error::new(io::Error::from_raw_os_error(e).kind(), self),
            None => io::Error::other(self),
        }
    }
}

fn libc_enoent() -> i32 {
    rustix::io::Errno::NOENT.raw_os_error()
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
    move |e| Error::Io { op, path: path.to_string(), source: e.into() }
}
