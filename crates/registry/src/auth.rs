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
    /// Seconds, as the server wrote them: any JSON number (or junk) is accepted here and
    /// bounded by [`token_life`], so a hostile value can neither fail the pull nor overflow.
    #[serde(default)]
    pub expires_in: Option<serde_json::Value>,
}

/// The longest a token is cached, whatever the server says: a token that dies earlier
/// costs one 401 and a refresh, while an unbounded one would overflow `Instant`.
pub(crate) const MAX_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// How long to use a token the server says lives `expires_in` seconds.
pub(crate) fn token_life(expires_in: Option<&serde_json::Value>) -> Duration {
    // The token spec: absent or under 60 s means 60 s.
    let secs = expires_in.and_then(serde_json::Value::as_f64).filter(|s| s.is_finite() && *s >= 60.0).unwrap_or(60.0);
    // Renew 10 s early so a request never races expiry.
    Duration::try_from_secs_f64(secs - 10.0).unwrap_or(MAX_TOKEN_LIFE).min(MAX_TOKEN_LIFE)
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

    pub fn put(&mut self, scope: String, token: Secret, life: Duration) {
        let now = Instant::now();
        let life = life.min(MAX_TOKEN_LIFE);
        self.tokens.insert(scope, (token, now.checked_add(life).unwrap_or(now)));
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
    fn token_lifetimes_are_bounded() {
        use serde_json::json;
        let life = |v: serde_json::Value| token_life(Some(&v));
        assert_eq!(token_life(None), Duration::from_secs(50));
        assert_eq!(life(json!(300)), Duration::from_secs(290));
        for small in [json!(0), json!(-5), json!(-1e300), json!(59), json!("300"), json!(null)] {
            assert_eq!(life(small.clone()), Duration::from_secs(50), "{small}");
        }
        for huge in [json!(u64::MAX), json!(i64::MAX), json!(1e300)] {
            assert_eq!(life(huge.clone()), MAX_TOKEN_LIFE, "{huge}");
        }
        let mut cache = TokenCache::default();
        cache.put("s".into(), Secret::new("t"), Duration::MAX);
        assert!(cache.get("s").is_some());
        let answer: TokenResponse = serde_json::from_str(r#"{"token": "t", "expires_in": -3}"#).unwrap();
        assert_eq!(token_life(answer.expires_in.as_ref()), Duration::from_secs(50));
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::Basic { username: "me".into(), password: Secret::new("hunter2") };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && shown.contains("me"), "{shown}");
    }
}
