//! Credentials, challenges and bearer tokens. Secrets are held in [`Secret`], whose `Debug`
//! and `Display` never show the value.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// A secret string (password, token) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for putting on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to authenticate to one registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credential {
    /// No credentials: anonymous tokens only.
    #[default]
    Anonymous,
    /// A user name and password (or personal access token).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: Secret,
    },
    /// An identity (refresh) token, exchanged with OAuth2 for access tokens.
    IdentityToken(Secret),
    /// A registry token used as it is.
    Bearer(Secret),
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic,
    /// A token from `realm`, for `service` (and the `scope` it suggested).
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The scope the registry suggested.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parse a `WWW-Authenticate` header value.
    pub fn parse(header: &str) -> Option<Self> {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(rest);
                Some(Challenge::Bearer {
                    realm: params.get("realm")?.clone(),
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                })
            }
            _ => None,
        }
    }
}

/// `key="value", key2=value2` with quoted commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        out.insert(key.trim().to_ascii_lowercase(), value);
    }
    out
}

/// A token endpoint's answer.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Bearer tokens by scope, until shortly before they expire.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<String, (Secret, Instant)>,
}

impl TokenCache {
    pub fn get(&self, scope: &str) -> Option<Secret> {
        self.tokens.get(scope).filter(|(_, until)| Instant::now() < *until).map(|(t, _)| t.clone())
    }

    pub fn put(&mut self, scope: String, token: Secret, expires_in: Option<u64>) {
        // Docker's default lifetime is 60 s; renew 10 s early so a request never races expiry.
        let life = Duration::from_secs(expires_in.unwrap_or(60).max(20) - 10);
        self.tokens.insert(scope, (token, Instant::now() + life));
    }

    pub fn forget(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="registry""#), Some(Challenge::Basic));
        let quoted = Challenge::parse(r#"Bearer realm="http://h/t", scope="repository:a:pull,push""#).unwrap();
        assert!(matches!(quoted, Challenge::Bearer { scope: Some(s), .. } if s == "repository:a:pull,push"));
        assert_eq!(Challenge::parse("Negotiate x"), None);
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::Basic { username: "me".into(), password: Secret::new("hunter2") };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && shown.contains("me"), "{shown}");
    }
}
