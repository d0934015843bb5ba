//! The generated team's activity stream: per contact, the steps of the contact's campaign
//! (emails sent, opened, clicked, replied to or bounced, LinkedIn steps, unsubscribes) and the
//! reps' own calls, tasks, emails and meetings, performed as reps the team maps to HubSpot owners
//! or as SDRs it never mapped; and what the demo's rules make of each activity: the HubSpot
//! activity it becomes, or why it is skipped, parked or dead-lettered, and whether it opens a
//! deal.
//!
//! The rules are the demo configuration's ([`super::demo_config`]): every activity type keeps
//! its default policy, [`names::PRIVATE_CAMPAIGN`] has `push_to_crm = false` and
//! [`names::DEAL_CAMPAIGN`] has `deal_triggers = ["email_replied"]`. The prediction is written
//! out here rather than asked of the rules, so a run checks the pipeline against it.

use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::ActivityType;
use rand::Rng;
use rand::rngs::StdRng;

use super::names;

/// Who an activity was performed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentBy {
    /// The contact's owner: a rep mapped to a HubSpot owner.
    Owner,
    /// An SDR no mapping names (an index into [`names::SDRS`]).
    Sdr(usize),
    /// Nobody on the team: the lead acted alone.
    Nobody,
}

/// One activity of a contact's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub kind: ActivityType,
    /// Ticks after the stream's start.
    pub after: u64,
    /// The step of the contact's campaign that made it; `None` outside the campaign.
    pub sequence_step: Option<i32>,
    pub sent_by: SentBy,
    /// For unsubscribes: whether the lead unsubscribed themself (else an operator blocked them).
    pub self_initiated: Option<bool>,
    /// Picks the subject, link, reply or call outcome.
    pub variant: u32,
}

/// Builds one contact's stream, each step a little after the one before.
struct Stream<'r> {
    rng: &'r mut StdRng,
    steps: Vec<Step>,
    at: u64,
    spacing: u64,
}

impl Stream<'_> {
    fn add(&mut self, kind: ActivityType, sequence_step: Option<i32>, sent_by: SentBy) {
        self.add_unsubscribe(kind, sequence_step, sent_by, None);
    }

    fn add_unsubscribe(
        &mut self,
        kind: ActivityType,
        sequence_step: Option<i32>,
        sent_by: SentBy,
        self_initiated: Option<bool>,
    ) {
        self.at += self.rng.random_range(1..=self.spacing);
        let variant = self.rng.random();
        self.steps.push(Step {
            kind,
            after: self.at,
            sequence_step,
            sent_by,
            self_initiated,
            variant,
        });
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
}

/// One contact's activities, about three on average: a campaign's sequence when the contact is
/// in one, the reps' own calls, tasks, emails and meetings otherwise. `spacing` is the most
/// ticks between two consecutive activities.
pub fn stream(rng: &mut StdRng, in_campaign: bool, spacing: u64) -> Vec<Step> {
    use ActivityType::*;
    let sdr = rng
        .random_bool(0.3)
        .then(|| rng.random_range(0..names::SDRS.len()));
    let sender = sdr.map_or(SentBy::Owner, SentBy::Sdr);
    let mut s = Stream {
        rng,
        steps: Vec::new(),
        at: 0,
        spacing: spacing.max(1),
    };
    if !in_campaign {
        if s.chance(0.6) {
            s.add(Call, None, sender);
            if s.chance(0.25) {
                s.add(Call, None, sender);
            }
        }
        if s.chance(0.7) {
            s.add(EmailSent, None, sender);
            if s.chance(0.3) {
                s.add(EmailOpened, None, sender);
            }
            if s.chance(0.1) {
                s.add(EmailReplied, None, sender);
            }
        }
        if s.chance(0.4) {
            s.add(Task, None, SentBy::Owner);
        }
        if s.chance(0.12) {
            s.add(MeetingBooked, None, SentBy::Owner);
        }
        if s.chance(0.02) {
            s.add_unsubscribe(Unsubscribed, None, SentBy::Nobody, Some(false));
        }
        return s.steps;
    }

    s.add(EmailSent, Some(1), sender);
    if s.chance(0.04) {
        s.add(EmailBounced, Some(1), sender);
        return s.steps;
    }
    if s.chance(0.55) {
        s.add(EmailOpened, Some(1), sender);
    }
    if s.chance(0.12) {
        s.add(EmailClicked, Some(1), sender);
    }
    let mut step = 1;
    if s.chance(0.65) {
        step = 2;
        s.add(EmailSent, Some(step), sender);
        if s.chance(0.3) {
            s.add(EmailOpened, Some(step), sender);
        }
    }
    if s.chance(0.35) {
        step += 1;
        s.add(LinkedinInviteSent, Some(step), sender);
        if s.chance(0.2) {
            s.add(LinkedinProfileVisited, Some(step), sender);
        }
        if s.chance(0.5) {
            s.add(LinkedinInviteAccepted, Some(step), sender);
            if s.chance(0.5) {
                step += 1;
                s.add(LinkedinMessageSent, Some(step), sender);
                if s.chance(0.25) {
                    s.add(LinkedinReplied, Some(step), sender);
                }
            }
        }
    }
    let ending = s.rng.random_range(0..100);
    if ending < 18 {
        s.add(EmailReplied, Some(step), sender);
        if s.chance(0.2) {
            s.add(EmailReplied, Some(step), sender);
        }
        if s.chance(0.4) {
            s.add(MeetingBooked, None, SentBy::Owner);
        }
    } else if ending < 24 {
        let by_lead = s.chance(0.7);
        let sent_by = if by_lead {
            SentBy::Nobody
        } else {
            SentBy::Owner
        };
        s.add_unsubscribe(Unsubscribed, Some(step), sent_by, Some(by_lead));
    }
    if s.chance(0.3) {
        s.add(Call, None, SentBy::Owner);
    }
    s.steps
}

/// The HubSpot activity the demo's rules store an activity type as; `None` for the types that
/// are off by default (opens, profile visits, types hubsync does not know).
pub fn stored_as(kind: ActivityType) -> Option<ObjectType> {
    use ActivityType::*;
    match kind {
        EmailSent | EmailReplied | EmailBounced => Some(ObjectType::Emails),
        EmailClicked
        | LinkedinInviteSent
        | LinkedinInviteAccepted
        | LinkedinMessageSent
        | LinkedinReplied
        | Unsubscribed => Some(ObjectType::Notes),
        Call => Some(ObjectType::Calls),
        Task => Some(ObjectType::Tasks),
        MeetingBooked => Some(ObjectType::Meetings),
        EmailOpened | LinkedinProfileVisited | Unknown => None,
    }
}

/// The HubSpot activity object types, in the order the report lists them.
pub const ACTIVITY_OBJECTS: [ObjectType; 5] = [
    ObjectType::Notes,
    ObjectType::Emails,
    ObjectType::Calls,
    ObjectType::Tasks,
    ObjectType::Meetings,
];

/// The type's name as the configuration spells it: `email_sent`.
pub fn type_name(kind: ActivityType) -> &'static str {
    hubsync_processors::activity::activity_type(kind).as_str()
}

/// What the generator knows of one activity event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    pub kind: ActivityType,
    pub campaign: Option<&'a str>,
    pub self_initiated: Option<bool>,
    /// The event's contact email is missing or an address (a malformed one is refused).
    pub email_valid: bool,
    /// The contact is in HubSpot, or on its way there, when the activity is published.
    pub contact_in_hubspot: bool,
}

/// What becomes of the deal command a reply in the deal campaign makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DealFate {
    /// Created, or found already created for the same contact and campaign.
    Written,
    /// Its contact never reaches HubSpot: `PARKED_CONTACT_MISSING`.
    Parked,
}

/// What must become of one activity event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Its outcome as `(status, reason code)`, spelt as the report spells them.
    pub outcome: (&'static str, &'static str),
    /// The process stage alone decides it (a skip or a dead letter).
    pub decided_by_process: bool,
    /// The deal command it makes, if it triggers one.
    pub deal: Option<DealFate>,
}

impl Fate {
    fn decided(status: &'static str, code: &'static str) -> Fate {
        Fate {
            outcome: (status, code),
            decided_by_process: true,
            deal: None,
        }
    }

    /// The fate of the same activity sent again under a new event id, once the first is done:
    /// what was created is found, the rest ends as before.
    pub fn again(self) -> Fate {
        match self.outcome {
            ("created", _) => Fate {
                outcome: ("unchanged", "UNCHANGED"),
                ..self
            },
            _ => self,
        }
    }

    /// Whether the activity ends as a record in HubSpot.
    pub fn written(self) -> bool {
        matches!(self.outcome.0, "created" | "unchanged")
    }
}

/// The fate of an activity event under the demo's rules, in the order the process stage and the
/// sink apply them.
pub fn fate(facts: &Facts<'_>) -> Fate {
    if facts.campaign == Some(names::PRIVATE_CAMPAIGN) {
        return Fate::decided("skipped", "CAMPAIGN_PUSH_DISABLED");
    }
    if stored_as(facts.kind).is_none() {
        return Fate::decided("skipped", "ACTIVITY_TYPE_DISABLED");
    }
    if facts.kind == ActivityType::Unsubscribed && facts.self_initiated != Some(true) {
        return Fate::decided("skipped", "UNSUBSCRIBE_NOT_SELF_INITIATED");
    }
    if !facts.email_valid {
        return Fate::decided("dead_lettered", "INVALID_EMAIL");
    }
    let deal = (facts.kind == ActivityType::EmailReplied
        && facts.campaign == Some(names::DEAL_CAMPAIGN))
    .then_some(if facts.contact_in_hubspot {
        DealFate::Written
    } else {
        DealFate::Parked
    });
    let outcome = if facts.contact_in_hubspot {
        ("created", "CREATED")
    } else {
        ("parked", "PARKED_CONTACT_MISSING")
    };
    Fate {
        outcome,
        decided_by_process: false,
        deal,
    }
}

#[cfg(test)]
mod tests {
    use hubsync_processors::rules::{ActivityRules, StoreAs};
    use rand::SeedableRng;

    use super::*;

    fn facts(kind: ActivityType) -> Facts<'static> {
        Facts {
            kind,
            campaign: None,
            self_initiated: None,
            email_valid: true,
            contact_in_hubspot: true,
        }
    }

    #[test]
    fn the_stored_types_are_the_rules_defaults() {
        let rules = ActivityRules::default();
        for &kind in ActivityType::ALL {
            let policy = rules.policy(hubsync_processors::activity::activity_type(kind));
            let object = match policy.store_as {
                StoreAs::Email => ObjectType::Emails,
                StoreAs::Note => ObjectType::Notes,
                StoreAs::Call => ObjectType::Calls,
                StoreAs::Task => ObjectType::Tasks,
                StoreAs::Meeting => ObjectType::Meetings,
            };
            let object = policy.enabled.then_some(object);
            assert_eq!(stored_as(kind), object, "{kind:?}");
        }
    }

    #[test]
    fn each_rule_has_its_fate() {
        let mut private = facts(ActivityType::EmailReplied);
        private.campaign = Some(names::PRIVATE_CAMPAIGN);
        private.email_valid = false;
        assert_eq!(
            fate(&private).outcome,
            ("skipped", "CAMPAIGN_PUSH_DISABLED")
        );
        assert_eq!(
            fate(&facts(ActivityType::EmailOpened)).outcome,
            ("skipped", "ACTIVITY_TYPE_DISABLED")
        );
        let mut blocked = facts(ActivityType::Unsubscribed);
        blocked.self_initiated = Some(false);
        assert_eq!(
            fate(&blocked).outcome,
            ("skipped", "UNSUBSCRIBE_NOT_SELF_INITIATED")
        );
        blocked.self_initiated = Some(true);
        assert_eq!(fate(&blocked).outcome, ("created", "CREATED"));
        let mut broken = facts(ActivityType::Call);
        broken.email_valid = false;
        assert_eq!(fate(&broken).outcome, ("dead_lettered", "INVALID_EMAIL"));
        let mut waiting = facts(ActivityType::Call);
        waiting.contact_in_hubspot = false;
        assert_eq!(fate(&waiting).outcome, ("parked", "PARKED_CONTACT_MISSING"));
        assert_eq!(fate(&waiting).again(), fate(&waiting));
        assert_eq!(
            fate(&facts(ActivityType::Task)).again().outcome,
            ("unchanged", "UNCHANGED")
        );
    }

    #[test]
    fn replies_in_the_deal_campaign_open_a_deal() {
        let mut reply = facts(ActivityType::EmailReplied);
        assert_eq!(fate(&reply).deal, None, "no campaign");
        reply.campaign = Some(names::DEAL_CAMPAIGN);
        assert_eq!(fate(&reply).deal, Some(DealFate::Written));
        reply.contact_in_hubspot = false;
        assert_eq!(fate(&reply).deal, Some(DealFate::Parked));
        reply.email_valid = false;
        assert_eq!(fate(&reply).deal, None, "refused before the deal");
        let mut sent = facts(ActivityType::EmailSent);
        sent.campaign = Some(names::DEAL_CAMPAIGN);
        assert_eq!(fate(&sent).deal, None);
    }

    #[test]
    fn streams_have_a_few_activities_of_every_kind_in_time_order() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut total = 0;
        let mut kinds = std::collections::BTreeSet::new();
        let mut senders = std::collections::BTreeSet::new();
        for contact in 0..2_000 {
            let steps = stream(&mut rng, contact % 2 == 0, 30);
            assert!(steps.windows(2).all(|w| w[0].after < w[1].after));
            total += steps.len();
            for step in steps {
                kinds.insert(step.kind);
                senders.insert(format!("{:?}", step.sent_by));
                if step.kind == ActivityType::Unsubscribed {
                    senders.insert(format!("unsubscribe {:?}", step.self_initiated));
                }
            }
        }
        let mean = total as f64 / 2_000.0;
        assert!((2.5..4.0).contains(&mean), "{mean} activities per contact");
        assert_eq!(kinds.len(), ActivityType::ALL.len() - 1, "{kinds:?}");
        assert!(!kinds.contains(&ActivityType::Unknown));
        for wanted in [
            "Owner",
            "Nobody",
            "Sdr(0)",
            "unsubscribe Some(true)",
            "unsubscribe Some(false)",
        ] {
            assert!(senders.contains(wanted), "{wanted}: {senders:?}");
        }
    }
}
