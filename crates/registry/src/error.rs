use std::fmt;

/// One entry of a registry's JSON error body (`{"errors": [{"code", "message", "detail"}]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiError {
    /// `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `UNAUTHORIZED`, `DENIED`, ...
    #[serde(default)]
    pub code: String,
    /// The registry's words.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.code, self.message),
            (false, true) => f.write_str(&self.code),
            _ => f.write_str(&self.message),
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// Parse a registry error body; an unparsable one gives no entries.
pub(crate) fn parse_errors(body: &[u8]) -> Vec<ApiError> {
    serde_json::from_slice::<ErrorBody>(body).map(|b| b.errors).unwrap_or_default()
}

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry answered with an error status.
    #[error("{method} {url}: {status}{}", fmt_errors(errors))]
    Status {
        /// The request method.
        method: String,
        /// The URL (never with credentials).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's own error entries.
        errors: Vec<ApiError>,
    },
    /// Credentials were missing or refused.
    #[error("{registry}: authentication failed for {scope}{}; log in with `imgtool login {registry}` or pass --creds", fmt_errors(errors))]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What was asked for.
        scope: String,
        /// The registry's own error entries.
        errors: Vec<ApiError>,
    },
    /// The registry's token realm was not safe for our credentials, so none were sent, and
    /// what it gave without them was not enough.
    #[error(
        "{registry}: authentication failed: credentials were not sent to its token server {realm} because {why}; an anonymous token was not enough"
    )]
    CredentialsWithheld {
        /// The registry host.
        registry: String,
        /// The token realm (without its query).
        realm: String,
        /// Why credentials were kept from it.
        why: String,
    },
    /// The connection failed.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done.
        what: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A TLS or configuration problem with a named registry.
    #[error("{registry}: {why}")]
    Config {
        /// The registry host.
        registry: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// A response that breaks the protocol.
    #[error("{url}: {why}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong with the answer.
        why: String,
    },
    /// An error from the image model (digests, sizes, parsing).
    #[error(transparent)]
    Core(#[from] imgtool_core::Error),
}

fn fmt_errors(errors: &[ApiError]) -> String {
    if errors.is_empty() { String::new() } else { format!(" ({})", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")) }
}

impl Error {
    /// Whether trying again may help (408, 429, 5xx, connection problems).
    pub fn should_retry(&self) -> bool {
        match self {
            Error::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            Error::Transport { source, .. } => source.is_connect() || source.is_timeout() || source.is_request() || source.is_body(),
            _ => false,
        }
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<Error> for imgtool_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            other if other.should_retry() => imgtool_core::Error::Transient(Box::new(other)),
            other => imgtool_core::Error::backend(other),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
