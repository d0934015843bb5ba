//! Several portals behind one base URL, as HubSpot serves every account at one API host: a
//! request is answered by the portal its token belongs to, and sees only that portal's records,
//! owners, properties and limits. A token no portal knows is refused as HubSpot refuses it.
//!
//! ```text
//! Authorization: Bearer <token of portal 1001>  GET /crm/v3/objects/contacts -> portal 1001's
//! Authorization: Bearer <unknown>               GET /crm/v3/objects/contacts -> 401 INVALID_AUTHENTICATION
//! /__admin/portals/1002/state                    -> portal 1002's admin API (/__admin/state)
//! /__admin/state                                 -> the first portal's (one-portal tests keep working)
//! POST /oauth/v1/token (refresh_token of portal 1002's installation) -> an access token of 1002
//! GET  /oauth/v1/access-tokens/{token}           -> {hub_id, app_id, scopes, expires_in, ...}
//! ```
//!
//! The OAuth side is the platform's public app, installed in each portal with a refresh token
//! ([`SandboxOptions::refresh_tokens`]): a refresh with the app's client id and secret answers an
//! access token that expires after `access_ttl` (HubSpot: 30 minutes), and a revoked refresh
//! token (the app uninstalled, [`Portals::revoke_refresh_token`]) answers `invalid_grant`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::ServiceExt;

use super::errors::ApiError;
use super::query::form_urlencoded;
use super::webhooks::Webhooks;
use super::{HubSpotSandbox, SandboxOptions, bearer};
use crate::server::RunningServer;

/// The admin API of one portal among several: `/__admin/portals/{portal id}/...`.
const PORTAL_ADMIN: &str = "/__admin/portals/";

/// The sandbox's public app.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    pub app_id: u64,
    pub client_id: String,
    pub client_secret: String,
    /// How long an access token lives (HubSpot: 30 minutes).
    pub access_ttl: Duration,
}

impl Default for OAuthApp {
    fn default() -> Self {
        OAuthApp {
            app_id: 4_242_424,
            client_id: "sandbox-app-client-id".to_string(),
            client_secret: "sandbox-app-client-secret".to_string(),
            access_ttl: Duration::from_secs(1800),
        }
    }
}

/// The scopes the sandbox's app is granted.
const SCOPES: [&str; 7] = [
    "crm.objects.contacts.write",
    "crm.objects.companies.write",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
    "crm.schemas.contacts.write",
    "crm.lists.read",
    "crm.lists.write",
];

/// The portals of one sandbox, in the order given.
#[derive(Clone, Debug)]
pub struct Portals {
    portals: Arc<Vec<HubSpotSandbox>>,
    /// Each portal's API, in the same order, made once: a router costs more to make than most
    /// requests cost to answer.
    routers: Arc<Vec<axum::Router>>,
    app: OAuthApp,
    /// Access tokens issued so far, across portals.
    refreshes: Arc<AtomicU64>,
}

impl Portals {
    /// One portal per options; their portal ids and tokens must differ.
    pub fn new(options: Vec<SandboxOptions>) -> Self {
        Self::with_app(options, OAuthApp::default())
    }

    /// [`Portals::new`] with the public app's credentials and access token lifetime given.
    /// Every portal's changes go to the webhooks of the apps installed in it, configured
    /// once for all (`PUT /__admin/webhooks` on any portal).
    pub fn with_app(options: Vec<SandboxOptions>, app: OAuthApp) -> Self {
        let webhooks = Arc::new(Webhooks::new());
        let portals: Vec<HubSpotSandbox> = options
            .into_iter()
            .map(|o| HubSpotSandbox::with_webhooks(o, webhooks.clone()))
            .collect();
        Portals {
            routers: Arc::new(portals.iter().map(HubSpotSandbox::router).collect()),
            portals: Arc::new(portals),
            app,
            refreshes: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn app(&self) -> &OAuthApp {
        &self.app
    }

    /// Access tokens issued by refreshes so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The app uninstalled from the portal holding `refresh_token`; `false` when none does.
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        self.portals
            .iter()
            .any(|p| p.revoke_refresh_token(refresh_token))
    }

    /// The portals, in the order given.
    pub fn all(&self) -> &[HubSpotSandbox] {
        &self.portals
    }

    pub fn portal(&self, portal_id: u64) -> Option<&HubSpotSandbox> {
        self.portals.get(self.index_of(portal_id)?)
    }

    /// Where portal `portal_id` stands among the portals (and its router among the routers).
    fn index_of(&self, portal_id: u64) -> Option<usize> {
        self.portals.iter().position(|p| p.portal_id() == portal_id)
    }

    pub fn router(&self) -> axum::Router {
        let portals = self.clone();
        axum::Router::new().fallback(move |request: Request| {
            let portals = portals.clone();
            async move { portals.route(request).await }
        })
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningServer> {
        RunningServer::spawn(self.router(), addr).await
    }

    async fn route(&self, request: Request) -> Response {
        let path = request.uri().path().to_string();
        if path == "/oauth/v1/token" && request.method() == Method::POST {
            return self.token(request).await;
        }
        if let Some(token) = path.strip_prefix("/oauth/v1/access-tokens/")
            && request.method() == Method::GET
        {
            return self.introspect(token);
        }
        if let Some(rest) = path.strip_prefix(PORTAL_ADMIN) {
            let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(index) = id.parse::<u64>().ok().and_then(|id| self.index_of(id)) else {
                return ApiError::not_found(format!("no portal {id} in this sandbox"))
                    .into_response();
            };
            let Some(request) = with_path(request, &format!("/__admin/{tail}")) else {
                return ApiError::validation("the admin path is not a valid URI").into_response();
            };
            return self.forward(index, request).await;
        }
        let index = if path.starts_with("/__admin") {
            0
        } else {
            // A token no portal knows is refused by the first portal's own gate, with
            // HubSpot's answer and counting.
            bearer(&request)
                .and_then(|token| self.portals.iter().position(|p| p.knows_token(&token)))
                .unwrap_or(0)
        };
        self.forward(index, request).await
    }

    /// The request answered by the portal at `index`; with no portals, refused as a token no
    /// portal knows.
    async fn forward(&self, index: usize, request: Request) -> Response {
        let Some(router) = self.routers.get(index) else {
            return ApiError::unauthorized(false).into_response();
        };
        match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

impl Portals {
    /// `POST /oauth/v1/token`, `grant_type=refresh_token`, form-encoded.
    async fn token(&self, request: Request) -> Response {
        let bytes = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "unreadable body",
                );
            }
        };
        let form: Vec<(String, String)> = form_urlencoded(&bytes);
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if field("grant_type") != Some("refresh_token") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be refresh_token or authorization_code",
            );
        }
        if field("client_id") != Some(self.app.client_id.as_str())
            || field("client_secret") != Some(self.app.client_secret.as_str())
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "missing or invalid client credentials",
            );
        }
        let Some(refresh) = field("refresh_token") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "missing or invalid refresh token",
            );
        };
        let Some(portal) = self
            .portals
            .iter()
            .find(|p| p.refresh_token_state(refresh) == Some(true))
        else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "missing or invalid refresh token",
            );
        };
        let n = self.refreshes.fetch_add(1, Ordering::Relaxed) + 1;
        let access = format!("oauth-{}-{n}", portal.portal_id());
        let ttl_ms = i64::try_from(self.app.access_ttl.as_millis()).unwrap_or(i64::MAX);
        portal.issue_access_token(&access, ttl_ms, self.app.app_id);
        Json(json!({
            "token_type": "bearer",
            "refresh_token": refresh,
            "access_token": access,
            "expires_in": self.app.access_ttl.as_secs(),
        }))
        .into_response()
    }

    /// `GET /oauth/v1/access-tokens/{token}`: what the token is for.
    fn introspect(&self, token: &str) -> Response {
        let found = self
            .portals
            .iter()
            .find_map(|p| p.access_token_ttl(token).map(|ttl| (p, ttl)));
        match found {
            Some((portal, ttl)) if ttl > 0 && portal.knows_token(token) => Json(json!({
                "token": token,
                "user": "integration@sandbox.example",
                "hub_domain": format!("portal-{}.sandbox.example", portal.portal_id()),
                "scopes": SCOPES,
                "hub_id": portal.portal_id(),
                "app_id": self.app.app_id,
                "expires_in": ttl / 1_000,
                "user_id": 1,
                "token_type": "access",
            }))
            .into_response(),
            _ => ApiError::not_found("The access token is expired or not found").into_response(),
        }
    }
}

/// An OAuth error: HubSpot's `status` and `message`, and RFC 6749's `error`.
fn oauth_error(status: StatusCode, error: &str, message: &str) -> Response {
    let legacy = match error {
        "invalid_grant" => "BAD_REFRESH_TOKEN",
        "invalid_client" => "BAD_CLIENT_ID",
        _ => "BAD_REQUEST",
    };
    (
        status,
        Json(json!({
            "status": legacy,
            "message": message,
            "error": error,
            "error_description": message,
            "correlationId": uuid::Uuid::new_v4().to_string(),
        })),
    )
        .into_response()
}

/// The request with its path replaced, its query kept.
fn with_path(request: Request, path: &str) -> Option<Request<Body>> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    parts.uri = Uri::builder().path_and_query(path_and_query).build().ok()?;
    Some(Request::from_parts(parts, body))
}
