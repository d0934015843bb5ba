//! A connection through the platform's public app (OAuth): the team's refresh token is exchanged
//! for access tokens, which HubSpot lets live 30 minutes. The client asks [`TokenSource::bearer`]
//! for a token before each request; a token with less than [`REFRESH_AHEAD`] left is refreshed
//! first, once however many requests need it at that moment (they wait for the one refresh).
//! Access tokens are kept in memory only.
//!
//! After every refresh the token's portal is looked up (`GET /oauth/v1/access-tokens/{token}`,
//! `hub_id`) and must be the team's: a token of another portal is refused (fail closed), as a
//! refused refresh (`invalid_grant`: the app was uninstalled or the token revoked) is. Both are
//! auth failures, which pause the team's writes without dead-lettering anything.
//!
//! ```text
//! POST /oauth/v1/token  grant_type=refresh_token&client_id=..&client_secret=..&refresh_token=..
//!   -> {"access_token": "..", "expires_in": 1800, ...}
//! GET  /oauth/v1/access-tokens/{access_token} -> {"hub_id": 4455667, ...}
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{ErrorClass, Failure, Secret};

/// A token with less than this left is refreshed before it is used.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// A token this close to its expiry is not used even when a refresh fails.
const STILL_USABLE: Duration = Duration::from_secs(10);

/// The longest lifetime taken from a token answer (HubSpot's tokens live 30 minutes).
const MAX_TOKEN_LIFE_SECS: u64 = 24 * 60 * 60;

/// The platform's public app and one team's installation of it.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    /// The portal the team's tokens must belong to.
    pub portal_id: u64,
}

#[derive(Debug)]
struct Access {
    token: Secret,
    expires_at: Instant,
}

/// The access tokens of one team's OAuth connection.
#[derive(Debug)]
pub(crate) struct TokenSource {
    settings: OAuthSettings,
    current: Mutex<Option<Access>>,
    refreshes: AtomicU64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct Introspection {
    hub_id: u64,
}

impl TokenSource {
    pub(crate) fn new(settings: OAuthSettings) -> Self {
        TokenSource {
            settings,
            current: Mutex::new(None),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Refreshes made so far.
    pub(crate) fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A token good for at least [`REFRESH_AHEAD`], refreshed first when needed. Requests that
    /// ask while a refresh runs wait for it and share its token.
    pub(crate) async fn bearer(
        &self,
        http: &reqwest::Client,
        base: &Url,
    ) -> Result<Secret, Failure> {
        let mut current = self.current.lock().await;
        if let Some(access) = current.as_ref()
            && access.expires_at > Instant::now() + REFRESH_AHEAD
        {
            return Ok(access.token.clone());
        }
        let access = match self.refresh(http, base).await {
            Ok(access) => access,
            Err(failure) => {
                // A refresh that may pass later leaves a token still good for a while in use.
                if failure.class.is_transient()
                    && let Some(access) = current.as_ref()
                    && access.expires_at > Instant::now() + STILL_USABLE
                {
                    return Ok(access.token.clone());
                }
                return Err(failure);
            }
        };
        let token = access.token.clone();
        *current = Some(access);
        Ok(token)
    }

    async fn refresh(&self, http: &reqwest::Client, base: &Url) -> Result<Access, Failure> {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let settings = &self.settings;
        let form = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &settings.client_id),
            ("client_secret", settings.client_secret.expose()),
            ("refresh_token", settings.refresh_token.expose()),
        ]);
        let asked = Instant::now();
        let answer = http
            .post(join(base, "/oauth/v1/token"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| transport("the token refresh", e))?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| transport("the token refresh", e))?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        let token: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::new(
                ErrorClass::Retryable { retry_after: None },
                Some(status),
                "MALFORMED_TOKEN_ANSWER",
                format!("the token refresh answered something else than a token: {e}"),
            )
        })?;
        let access = Access {
            token: Secret::new(token.access_token),
            // Bounded, so that no answer can overflow the clock.
            expires_at: asked + Duration::from_secs(token.expires_in.min(MAX_TOKEN_LIFE_SECS)),
        };
        self.check_portal(http, base, &access.token).await?;
        Ok(access)
    }

    /// The token's portal must be the team's.
    async fn check_portal(
        &self,
        http: &reqwest::Client,
        base: &Url,
        token: &Secret,
    ) -> Result<(), Failure> {
        let path = format!("/oauth/v1/access-tokens/{}", token.expose());
        let answer = http
            .get(join(base, &path))
            .send()
            .await
            .map_err(|e| transport("the token's introspection", e))?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| transport("the token's introspection", e))?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        let found: Introspection = serde_json::from_slice(&body).map_err(|e| {
            Failure::new(
                ErrorClass::Retryable { retry_after: None },
                Some(status),
                "MALFORMED_TOKEN_ANSWER",
                format!("the token's introspection answered something else: {e}"),
            )
        })?;
        if found.hub_id != self.settings.portal_id {
            return Err(Failure::new(
                ErrorClass::Auth {
                    missing_scopes: Vec::new(),
                },
                Some(status),
                "WRONG_PORTAL",
                format!(
                    "the refresh token's access tokens belong to portal {}, not to the team's portal {}: refused",
                    found.hub_id, self.settings.portal_id
                ),
            ));
        }
        Ok(())
    }
}

/// A refresh or introspection HubSpot answered with an error: a 4xx means the grant is no good
/// (an auth failure, the team pauses); anything else may pass.
fn refused(status: u16, body: &[u8]) -> Failure {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let message = text("message")
        .or_else(|| text("error_description"))
        .unwrap_or_else(|| format!("status {status}"));
    if (400..500).contains(&status) && status != 429 {
        let category = text("error")
            .map(|e| e.to_ascii_uppercase())
            .or_else(|| text("status"))
            .unwrap_or_else(|| "INVALID_GRANT".to_string());
        Failure::new(
            ErrorClass::Auth {
                missing_scopes: Vec::new(),
            },
            Some(status),
            category,
            format!("hubspot refuses the team's OAuth refresh token: {message}"),
        )
    } else {
        Failure::new(
            ErrorClass::Retryable { retry_after: None },
            Some(status),
            format!("HTTP_{status}"),
            format!("the OAuth token refresh failed: {message}"),
        )
    }
}

/// The error without its URL: the introspection's URL holds the access token.
fn transport(what: &str, error: reqwest::Error) -> Failure {
    let error = error.without_url();
    let kind = if error.is_timeout() {
        "TIMEOUT"
    } else {
        "CONNECTION"
    };
    Failure::new(
        ErrorClass::Retryable { retry_after: None },
        None,
        kind,
        format!("{what} failed: {error}"),
    )
}

/// `base` with `path` after its own path.
fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let base_path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base_path}{path}"));
    url
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_escape_what_they_must() {
        assert_eq!(
            form(&[("a", "x y"), ("b", "p&q=r/é")]),
            "a=x+y&b=p%26q%3Dr%2F%C3%A9"
        );
    }

    #[test]
    fn a_refused_grant_is_an_auth_failure_and_a_server_error_may_pass() {
        let grant = refused(
            400,
            br#"{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token","error":"invalid_grant"}"#,
        );
        assert!(matches!(grant.class, ErrorClass::Auth { .. }));
        assert_eq!(grant.category, "INVALID_GRANT");
        let down = refused(503, b"");
        assert!(down.class.is_transient());
    }
}
