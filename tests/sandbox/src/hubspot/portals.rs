//! Several portals behind one base URL, as HubSpot serves every account at one API host: a
//! request is answered by the portal its token belongs to, and sees only that portal's records,
//! owners, properties and limits. A token no portal knows is refused as HubSpot refuses it.
//!
//! ```text
//! Authorization: Bearer <token of portal 1001>  GET /crm/v3/objects/contacts -> portal 1001's
//! Authorization: Bearer <unknown>               GET /crm/v3/objects/contacts -> 401 INVALID_AUTHENTICATION
//! /__admin/portals/1002/state                    -> portal 1002's admin API (/__admin/state)
//! /__admin/state                                 -> the first portal's (one-portal tests keep working)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::errors::ApiError;
use super::{HubSpotSandbox, SandboxOptions, bearer};
use crate::server::RunningServer;

/// The admin API of one portal among several: `/__admin/portals/{portal id}/...`.
const PORTAL_ADMIN: &str = "/__admin/portals/";

/// The portals of one sandbox, in the order given.
#[derive(Clone, Debug)]
pub struct Portals {
    portals: Arc<Vec<HubSpotSandbox>>,
}

impl Portals {
    /// One portal per options; their portal ids and tokens must differ.
    pub fn new(options: Vec<SandboxOptions>) -> Self {
        Portals {
            portals: Arc::new(options.into_iter().map(HubSpotSandbox::new).collect()),
        }
    }

    /// The portals, in the order given.
    pub fn all(&self) -> &[HubSpotSandbox] {
        &self.portals
    }

    pub fn portal(&self, portal_id: u64) -> Option<&HubSpotSandbox> {
        self.portals.iter().find(|p| p.portal_id() == portal_id)
    }

    /// The portal a token belongs to.
    pub fn of_token(&self, token: &str) -> Option<&HubSpotSandbox> {
        self.portals.iter().find(|p| p.knows_token(token))
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
        if let Some(rest) = path.strip_prefix(PORTAL_ADMIN) {
            let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(portal) = id.parse::<u64>().ok().and_then(|id| self.portal(id)) else {
                return ApiError::not_found(format!("no portal {id} in this sandbox"))
                    .into_response();
            };
            let Some(request) = with_path(request, &format!("/__admin/{tail}")) else {
                return ApiError::validation("the admin path is not a valid URI").into_response();
            };
            return forward(portal, request).await;
        }
        let portal = if path.starts_with("/__admin") {
            self.portals.first()
        } else {
            match bearer(&request).and_then(|token| self.of_token(&token)) {
                Some(portal) => Some(portal),
                // Refused by a portal's own gate, with HubSpot's answer and counting.
                None => self.portals.first(),
            }
        };
        match portal {
            Some(portal) => forward(portal, request).await,
            None => ApiError::unauthorized(false).into_response(),
        }
    }
}

async fn forward(portal: &HubSpotSandbox, request: Request) -> Response {
    match portal.router().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
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
