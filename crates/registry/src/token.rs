//! Authorizing requests to the registry's own origin: Basic, a registry token, or Bearer
//! tokens from the realm the registry names, with credentials sent there only when the
//! realm is safe for them.

use std::sync::atomic::Ordering;

use reqwest::header;
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use crate::auth::{Challenge, Credential, Secret, TokenResponse, token_life};
use crate::client::{RegistryClient, is_loopback, read_limited, strip_query, transport};
use crate::error::{ApiError, Error, Result};

/// The most bytes of a token answer read (a JWT is a few KiB).
const TOKEN_ANSWER_LIMIT: u64 = 1 << 20;

impl RegistryClient {
    /// Add this registry's credentials (or a token for `scopes`) to a request for its own
    /// origin. Only [`RegistryClient::request`] calls this with a request to send.
    pub(crate) async fn authorize(&self, rb: RequestBuilder, scopes: &[String], force: bool) -> Result<RequestBuilder> {
        let mut st = self.auth.lock().await;
        match st.challenge.clone() {
            None => Ok(rb),
            Some(Challenge::Basic) => match &self.credential {
                Credential::Basic { username, password } => Ok(rb.basic_auth(username, Some(password.expose()))),
                _ => Ok(rb),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Credential::Bearer(t) = &self.credential {
                    return Ok(rb.bearer_auth(t.expose()));
                }
                let key = scopes.join(" ");
                if force {
                    st.tokens.forget(&key);
                }
                let token = match st.tokens.get(&key) {
                    Some(t) => t,
                    None => {
                        let realm =
                            Url::parse(&realm).map_err(|e| Error::Protocol { url: realm.clone(), why: format!("bad token realm: {e}") })?;
                        let refusal = match self.realm_refusal(&realm).await? {
                            Some(why) if self.credential != Credential::Anonymous => {
                                // An anonymous token keeps public pulls working; the refusal
                                // is reported if the registry then wants more.
                                tracing::warn!(registry = %self.registry(), realm = %strip_query(&realm), "credentials not sent to the token realm: {why}");
                                Some((strip_query(&realm), why))
                            }
                            _ => None,
                        };
                        let credential = if refusal.is_some() { &Credential::Anonymous } else { &self.credential };
                        st.withheld = refusal;
                        let fetched = self.fetch_token(&realm, credential, service.as_deref(), scopes).await;
                        let (t, life) = match (fetched, &st.withheld) {
                            (Err(Error::Unauthorized { .. }), Some((realm, why))) => {
                                return Err(Error::CredentialsWithheld {
                                    registry: self.registry().into(),
                                    realm: realm.clone(),
                                    why: why.clone(),
                                });
                            }
                            (fetched, _) => fetched?,
                        };
                        st.tokens.put(key, t.clone(), life);
                        t
                    }
                };
                Ok(rb.bearer_auth(token.expose()))
            }
        }
    }

    /// Why credentials must not go to `realm`, or `None` when they may. HTTPS is fine on
    /// any host (Docker Hub's realm is on another one); plain HTTP only on the registry's
    /// own host (port aside) when that host may use HTTP at all (loopback, or named
    /// insecure). Another loopback address is another host.
    pub(crate) async fn realm_refusal(&self, realm: &Url) -> Result<Option<String>> {
        let base = self.base().await?;
        Ok(match realm.scheme() {
            "https" => None,
            "http" if realm.host_str() != base.host_str() => {
                Some(format!("it is plain HTTP on {}, another host than the registry's", realm.host_str().unwrap_or("no host")))
            }
            "http" if !(self.insecure || is_loopback(base.host_str().unwrap_or_default())) => {
                Some(format!("it is plain HTTP and {} is neither loopback nor an --insecure-registry", self.registry()))
            }
            "http" => None,
            other => Some(format!("its scheme {other:?} is not HTTPS")),
        })
    }

    /// The error for a refusal: when credentials were kept from the realm, say so, since
    /// "log in" would not help.
    pub(crate) async fn unauthorized(&self, scopes: &[String], errors: Vec<ApiError>) -> Error {
        match self.auth.lock().await.withheld.clone() {
            Some((realm, why)) => Error::CredentialsWithheld { registry: self.registry().into(), realm, why },
            None => Error::Unauthorized { registry: self.registry().into(), scope: scopes.join(" "), errors },
        }
    }

    async fn fetch_token(
        &self,
        url: &Url,
        credential: &Credential,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(Secret, std::time::Duration)> {
        let what = || format!("getting a token from {}", url.host_str().unwrap_or_default());
        // The registry's own TLS settings (its pinned certificate, --insecure-registry) are
        // for its origin; a realm elsewhere, another port included, is verified like any host.
        let http = if url.origin() == self.base().await?.origin() { &self.http } else { &self.foreign };
        // OAuth2 form fields common to both grants.
        let oauth = |grant: Vec<(&'static str, String)>| {
            let mut form = grant;
            form.push(("client_id", "imgtool".into()));
            if let Some(s) = service {
                form.push(("service", s.into()));
            }
            if !scopes.is_empty() {
                form.push(("scope", scopes.join(" ")));
            }
            form
        };
        let resp = match credential {
            Credential::IdentityToken(refresh) => {
                let form = oauth(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh.expose().into())]);
                http.post(url.clone()).form(&form).send().await.map_err(transport(what()))?
            }
            cred => {
                // A user and password go by OAuth2 POST first; token servers that only
                // know the classic GET answer 404 or 405, and get the GET.
                let posted = match cred {
                    Credential::Basic { username, password } if !self.no_oauth_post.load(Ordering::Relaxed) => {
                        let form = oauth(vec![
                            ("grant_type", "password".into()),
                            ("username", username.clone()),
                            ("password", password.expose().into()),
                        ]);
                        let resp = http.post(url.clone()).form(&form).send().await.map_err(transport(what()))?;
                        match resp.status() {
                            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => {
                                self.no_oauth_post.store(true, Ordering::Relaxed);
                                None
                            }
                            _ => Some(resp),
                        }
                    }
                    _ => None,
                };
                match posted {
                    Some(resp) => resp,
                    None => {
                        let mut get = url.clone();
                        {
                            let mut q = get.query_pairs_mut();
                            if let Some(s) = service {
                                q.append_pair("service", s);
                            }
                            for s in scopes {
                                q.append_pair("scope", s);
                            }
                        }
                        let mut rb = http.get(get);
                        if let Credential::Basic { username, password } = cred {
                            rb = rb.basic_auth(username, Some(password.expose()));
                        }
                        rb.send().await.map_err(transport(what()))?
                    }
                }
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let errors = crate::client::error_body(resp).await;
            // Not `unauthorized()`: the caller holds the auth state and says what was withheld.
            return Err(if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Error::Unauthorized { registry: self.registry().into(), scope: scopes.join(" "), errors }
            } else {
                Error::Status { method: "GET".into(), url: strip_query(url), status: status.as_u16(), errors }
            });
        }
        let body = read_limited(resp, TOKEN_ANSWER_LIMIT, &format!("the token answer from {}", strip_query(url))).await?;
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol { url: strip_query(url), why: format!("unreadable token answer: {e}") })?;
        let life = token_life(t.expires_in.as_ref());
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| Error::Protocol { url: strip_query(url), why: "the token answer holds no token".into() })?;
        Ok((Secret::new(token), life))
    }

    pub(crate) async fn learn_challenge(&self, resp: &Response) {
        if let Some(c) = resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(Challenge::parse) {
            self.auth.lock().await.challenge = Some(c);
        }
    }
}
