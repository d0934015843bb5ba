//! The inbound stage: HubSpot -> upstream. Two ways in, one topic: the webhook receiver (push)
//! and the poller (pull) both put HubSpot v3 webhook events on `[topics] hubspot_webhooks`.
//!
//! - `signature`: HubSpot's v3 signature and the 300 s window, pure.
//! - `events`: a request body read just enough to route each event (its portal, its record).
//! - `receiver`: the HTTP listener of its own (not the admin one) that checks, routes and puts
//!   each accepted event on `[topics] hubspot_webhooks` before answering.
//! - [`poll`]: per team, search by last-modified time, history reads, deleted records and
//!   followed lists, turned into events shaped as HubSpot's (`"hubsync_via": "poll"`).
//! - `publish`: the key and headers both paths give their records, and the confirmed produce.
//! - [`translate`]: one such event -> the `HubSpotChange` that goes upstream, or why none does
//!   (duplicate, echo, stale, unmapped), pure but for [`memory`], the stage's sled state.
//! - [`upstream`]: the forwarder (events topic -> `crm.hubspot.changes`) and the reader that
//!   learns upstream ids from the sink's outcomes.

mod events;
pub mod memory;
pub mod poll;
mod publish;
mod receiver;
pub mod signature;
pub mod translate;
pub mod upstream;

#[cfg(test)]
mod arbitrary;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use tracing::info;

use crate::admin::{Health, StageHealth};
use crate::config::{Config, Secret};
use crate::hubspot::{HubSpotClient, ObjectType};
use hubsync_schemas::HubSpotObjectType;
use translate::TeamView;

pub use publish::{PORTAL_HEADER, RECEIVED_AT_HEADER, TEAM_HEADER};

/// The stage's name in `/healthz`, metrics and logs.
pub const STAGE: &str = "inbound";

/// Which team each HubSpot portal is, and what that team sends upstream: the portals of the
/// service's active teams whose token was found to be their portal's (fail closed). Kept up to
/// date as team files change; a portal of no such team has its events refused.
/// With each team, what polling reads of its portal (the teams that send anything upstream).
#[derive(Debug, Clone, Default)]
pub struct Portals {
    teams: Arc<RwLock<HashMap<u64, Arc<TeamView>>>>,
    polls: poll::PollTargets,
}

impl Portals {
    /// The team of `view` is served, on `view.portal` (any portal it had before is forgotten),
    /// with `view`'s rules; `client` is its connection, which polling reads with.
    pub fn set(&self, view: TeamView, client: &HubSpotClient) {
        if view.sends_anything() && view.app_id.is_none() {
            // A polled change names its source as HubSpot's history does: without hubsync's
            // app id, hubsync's own writes cannot be told from another app's, and would go up.
            tracing::warn!(
                team = view.team,
                "not polled: hubspot.app_id is not set, so polling cannot tell hubsync's own \
                 writes from other apps' (webhooks can, by the app that delivers them)"
            );
            metrics::counter!("hubsync_inbound_teams_not_polled_total", "team" => view.team.clone())
                .increment(1);
            self.polls.remove(&view.team);
        } else if view.sends_anything() {
            let watched = [
                HubSpotObjectType::Contact,
                HubSpotObjectType::Company,
                HubSpotObjectType::Deal,
            ]
            .into_iter()
            .filter(|object| view.follows(*object))
            .filter_map(|object| Some((ObjectType::of_command(object)?, view.watched(object))))
            .collect();
            self.polls.set(poll::PollTarget {
                team: view.team.clone(),
                portal: view.portal,
                client: client.clone(),
                watched,
                lists: view.lists.keys().cloned().collect(),
            });
        } else {
            self.polls.remove(&view.team);
        }
        let mut map = self.teams.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, t| t.team != view.team);
        map.insert(view.portal, Arc::new(view));
    }

    /// Team `team` is no longer served (paused, disconnected, its file removed).
    pub fn remove_team(&self, team: &str) {
        self.polls.remove(team);
        self.teams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| t.team != team);
    }

    /// The teams polling reads, kept up to date with these.
    pub fn poll_targets(&self) -> poll::PollTargets {
        self.polls.clone()
    }

    /// The team of `portal`, if this service serves one.
    pub fn team(&self, portal: u64) -> Option<String> {
        self.view(portal).map(|view| view.team.clone())
    }

    /// What the team of `portal` sends upstream, if this service serves one.
    pub fn view(&self, portal: u64) -> Option<Arc<TeamView>> {
        self.teams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&portal)
            .cloned()
    }

    /// Every served team's view.
    pub fn views(&self) -> Vec<Arc<TeamView>> {
        self.teams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Why the inbound stage cannot start.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(
        "the inbound stage has no way in: stages.inbound.webhook_listen is not set and \
         stages.inbound.poll is false; set either (webhook_listen = \"127.0.0.1:9465\" for \
         HubSpot's webhooks, poll = true to poll each team's portal)"
    )]
    NothingToDo,
    #[error("the inbound stage's polling state cannot be opened: {0}")]
    Poll(String),
    #[error("stages.inbound.webhook_listen: {0}")]
    Listen(String),
    #[error(
        "hubspot.client_secret is not set: the webhook receiver checks HubSpot's signatures \
         with the app's client secret; set it, e.g. {{ env = \"HUBSYNC_HUBSPOT_CLIENT_SECRET\" }}"
    )]
    NoSecret,
    #[error("{0}")]
    Secret(String),
}

/// A bound webhook receiver, ready to serve.
pub struct InboundStage {
    listener: tokio::net::TcpListener,
    receiver: receiver::Receiver,
    health: Health,
}

impl InboundStage {
    /// Binds the receiver's listener and reads the app's client secret: any problem refuses the
    /// start, naming the field. `None` when no receiver is configured.
    pub async fn bind(
        config: &Config,
        producer: FutureProducer,
        portals: Portals,
        health: Health,
    ) -> Result<Option<Self>, InboundError> {
        let inbound = &config.stages.inbound;
        let Some(listen) = &inbound.webhook_listen else {
            return Ok(None);
        };
        let addr: SocketAddr = listen
            .parse()
            .map_err(|_| InboundError::Listen(format!("{listen:?} is not ip:port")))?;
        let secret: Secret = config
            .hubspot
            .client_secret
            .as_ref()
            .ok_or(InboundError::NoSecret)?
            .resolve("hubspot.client_secret")
            .map_err(|problem| InboundError::Secret(problem.to_string()))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| InboundError::Listen(format!("cannot listen on {addr}: {e}")))?;
        Ok(Some(InboundStage {
            listener,
            receiver: receiver::Receiver {
                secret,
                path: inbound.webhook_path.clone(),
                public_url: inbound.webhook_public_url.clone(),
                max_body: usize::try_from(inbound.webhook_max_body.bytes()).unwrap_or(usize::MAX),
                produce_timeout: inbound.webhook_produce_timeout,
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    inbound.webhook_max_in_flight.max(1),
                )),
                producer,
                topic: config.topics.hubspot_webhooks.clone(),
                portals,
            },
            health,
        }))
    }

    /// The address the receiver listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HubSpot's requests until `stopping`; requests in progress are answered first.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) -> anyhow::Result<()> {
        let InboundStage {
            listener,
            receiver,
            health,
        } = self;
        let addr = listener.local_addr()?;
        let path = receiver.path.clone();
        let app = receiver.router();
        health.set(STAGE, StageHealth::Running);
        info!(%addr, path, "webhook receiver listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !*stopping.borrow() {
                    if stopping.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await?;
        health.set(STAGE, StageHealth::Stopped("stopped".to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_is_one_teams_and_follows_it() {
        let portals = Portals::default();
        let client = HubSpotClient::new(
            crate::hubspot::ClientSettings {
                base_url: "http://127.0.0.1:9".into(),
                request_timeout: std::time::Duration::from_secs(1),
                limits: crate::hubspot::BudgetLimits::for_tier(crate::hubspot::Tier::Starter),
                retry: crate::hubspot::RetryParams::default(),
            },
            crate::hubspot::Secret::new("t"),
        )
        .unwrap();
        let view = |team: &str, portal| TeamView {
            team: team.to_string(),
            portal,
            app_id: Some(4242),
            ..TeamView::default()
        };
        portals.set(view("acme", 62515), &client);
        portals.set(view("initech", 7), &client);
        assert_eq!(portals.team(62515).as_deref(), Some("acme"));
        portals.set(view("acme", 62516), &client);
        assert_eq!(portals.team(62515), None, "acme moved to another portal");
        assert_eq!(portals.team(62516).as_deref(), Some("acme"));
        portals.remove_team("initech");
        assert_eq!(portals.team(7), None);
        // Only a team that sends something upstream is polled, and only what it follows.
        assert!(portals.poll_targets().teams().is_empty());
        let mut follows = view("umbrella", 9);
        follows.fields.insert(
            HubSpotObjectType::Company,
            [("industry".to_string(), vec!["sector".to_string()])].into(),
        );
        portals.set(follows.clone(), &client);
        assert_eq!(portals.poll_targets().teams(), ["umbrella"]);
        // Without hubsync's app id its own writes could not be told apart: not polled.
        follows.app_id = None;
        portals.set(follows, &client);
        assert!(portals.poll_targets().teams().is_empty());
        assert_eq!(
            portals.team(9).as_deref(),
            Some("umbrella"),
            "webhooks still routed"
        );
        portals.remove_team("umbrella");
        assert_eq!(portals.team(9), None);
        assert_eq!(portals.team(1), None);
    }
}
