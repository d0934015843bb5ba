//! Reading what `hubsync plan` needs: the portal's properties (and owners, for activities), the
//! topic's events in the range decided by the planners, then every HubSpot record they name
//! (read-only calls, 100 per call).

use hubsync_processors::OwnerDirectory;
use hubsync_processors::rules::Rules;
use hubsync_schemas::{ActivityRecorded, CompanyChanged, ContactChanged};

use super::{Current, How, Lookups, Plan, Planner};
use crate::codec::DecodeError;
use crate::hubspot::HubSpotClient;
use crate::ops::Ops;
use crate::ops::lookup::{self, LookupError};
use crate::ops::range::Window;
use crate::ops::scan::{Flow, ScanStats, report_scan};
use crate::{catalog, process};

/// Which events the topic holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Contacts,
    Companies,
    Activities,
}

/// The plan of the current rules, the old rules' when comparing, and how the topic was read.
pub struct Made {
    pub plan: Plan,
    pub old: Option<Plan>,
    pub stats: ScanStats,
}

/// Plans `topic`'s events in `window` with the configuration's rules (and `old_rules` beside
/// them); `progress` shows a bar on stderr while the topic is read.
pub async fn plan(
    ops: &Ops,
    client: &HubSpotClient,
    topic: &str,
    source: Source,
    window: Window,
    old_rules: Option<&Rules>,
    progress: bool,
) -> anyhow::Result<Made> {
    let catalog = catalog::load(client)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the portal's properties from HubSpot: {e}"))?;
    let rules = &ops.config.rules;
    // Activities' senders are matched against HubSpot's owners by email (one read).
    let owners = if source == Source::Activities {
        process::owner_directory(client, &rules.users)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read HubSpot's owners: {e}"))?
    } else {
        OwnerDirectory::new()
    };
    let team = &ops.config.team.id;
    let mut planners = Planners {
        current: Planner::new(rules, &catalog)
            .with_owners(owners.clone())
            .for_team(team),
        old: old_rules.map(|r| {
            Planner::new(r, &catalog)
                .with_owners(owners.clone())
                .for_team(team)
        }),
    };
    let reader = ops.reader(progress)?;
    let stats = scan(&reader, topic, window, source, &mut planners).await?;
    report_scan(topic, &stats, 0);

    let mut lookups = Lookups::default();
    planners.current.lookups(&mut lookups);
    if let Some(old) = &planners.old {
        old.lookups(&mut lookups);
    }
    let mut current = look_up(client, &lookups).await?;
    let mut by_name = Lookups::default();
    planners.current.name_lookups(&current, &mut by_name);
    if let Some(old) = &planners.old {
        old.name_lookups(&current, &mut by_name);
    }
    if !by_name.wanted.is_empty() {
        current.found.extend(look_up(client, &by_name).await?.found);
    }
    Ok(Made {
        plan: planners.current.finish(&current),
        old: planners.old.map(|p| p.finish(&current)),
        stats,
    })
}

/// The current rules' planner, and the old rules' when comparing.
struct Planners<'r> {
    current: Planner<'r>,
    old: Option<Planner<'r>>,
}

impl<'r> Planners<'r> {
    fn each(&mut self, mut apply: impl FnMut(&mut Planner<'r>)) {
        apply(&mut self.current);
        if let Some(old) = self.old.as_mut() {
            apply(old);
        }
    }

    fn scanned<T>(&mut self, record: &Result<T, DecodeError>, add: impl Fn(&mut Planner<'r>, &T)) {
        match record {
            Ok(event) => self.each(|planner| add(planner, event)),
            Err(error) => self.each(|planner| planner.undecodable(error.code())),
        }
    }
}

async fn scan(
    reader: &crate::ops::scan::TopicReader,
    topic: &str,
    window: Window,
    source: Source,
    planners: &mut Planners<'_>,
) -> anyhow::Result<ScanStats> {
    let stats = match source {
        Source::Contacts => {
            reader
                .scan::<ContactChanged>(topic, window, |scanned| {
                    planners.scanned(&scanned.record, Planner::contact);
                    Flow::Continue
                })
                .await?
        }
        Source::Companies => {
            reader
                .scan::<CompanyChanged>(topic, window, |scanned| {
                    planners.scanned(&scanned.record, Planner::company);
                    Flow::Continue
                })
                .await?
        }
        Source::Activities => {
            reader
                .scan::<ActivityRecorded>(topic, window, |scanned| {
                    planners.scanned(&scanned.record, Planner::activity);
                    Flow::Continue
                })
                .await?
        }
    };
    Ok(stats)
}

/// Every lookup the plans need, read-only.
async fn look_up(client: &HubSpotClient, lookups: &Lookups) -> Result<Current, LookupError> {
    let mut current = Current::default();
    for (key, (values, properties)) in &lookups.wanted {
        let found = match key.how {
            How::Read => {
                lookup::read_by_property(client, key.object, &key.property, values, properties)
                    .await?
            }
            How::Search => {
                lookup::search_by(client, key.object, &key.property, values, properties).await?
            }
            How::Id => lookup::read_by_id(client, key.object, values, properties).await?,
            How::Name => lookup::search_by_name(client, values, properties).await?,
            How::Owned => {
                lookup::search_owned(client, key.object, &key.property, values, properties).await?
            }
        };
        current.found.insert(key.clone(), found);
    }
    Ok(current)
}
