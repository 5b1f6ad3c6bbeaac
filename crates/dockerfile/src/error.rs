/// Another crate's error, kept whole as a cause (an image that did not load, a layer that
/// did not unpack).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// An instruction that cannot be carried out.
    #[error("{}{keyword}: {message}", place(*line, *column))]
    Step {
        /// 1-based line (0 when no line is to blame).
        line: usize,
        /// 1-based column of the instruction (0 when unknown).
        column: usize,
        /// The instruction keyword (or what failed).
        keyword: String,
        /// What is wrong and what to do.
        message: String,
        /// What failed underneath, when something else did.
        #[source]
        source: Option<BoxError>,
    },
    /// A `RUN` command exited with a non-zero code.
    #[error("Dockerfile:{line}: {command}\nfailed with exit code {code}; its last output:\n{output}")]
    RunFailed {
        /// 1-based line.
        line: usize,
        /// The instruction as written.
        command: String,
        /// Its exit code.
        code: i32,
        /// The end of what it printed.
        output: String,
    },
}

impl Error {
    pub(crate) fn step(line: usize, keyword: &str, message: impl Into<String>) -> Self {
        Self::Step { line, column: 0, keyword: keyword.into(), message: message.into(), source: None }
    }

    /// A step that failed because `source` did.
    pub(crate) fn step_from(line: usize, keyword: &str, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Step { line, column: 0, keyword: keyword.into(), message: message.into(), source: Some(source.into()) }
    }

    /// The same error, pointing at `column` of its line when it names `line`.
    pub(crate) fn at_column(self, line: usize, col: usize) -> Self {
        match self {
            Self::Step { line: l, column: 0, keyword, message, source } if l == line => {
                Self::Step { line: l, column: col, keyword, message, source }
            }
            e => e,
        }
    }

    /// The message with `file` named where it says `Dockerfile`: the file's own name (a
    /// `-f app.dockerfile`, a pipeline step's file) is what the user has to open.
    pub fn in_file(&self, file: &str) -> String {
        let shown = self.to_string();
        match shown.strip_prefix("Dockerfile:") {
            Some(rest) => format!("{file}:{rest}"),
            None => shown,
        }
    }

    /// A RUN's exit code, when that is what failed.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::RunFailed { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn parse(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self::Parse { line, column, message: message.into() }
    }
}

fn place(line: usize, column: usize) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (l, 0) => format!("Dockerfile:{l}: "),
        (l, c) => format!("Dockerfile:{l}:{c}: "),
    }
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
