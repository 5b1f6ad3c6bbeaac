/// What can go wrong reading or building a Dockerfile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text does not parse, or an instruction's arguments are wrong.
    #[error("Dockerfile:{line}:{column}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
}

impl Error {
    pub(crate) fn parse(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self::Parse { line, column, message: message.into() }
    }
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
