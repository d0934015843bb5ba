//! A followed list's members, as read now, against those last seen. Pure.
//!
//! ```text
//! last seen {101 joined @1000, 102 @1000}; read now [102 @1000, 103 @2000]
//! -> joined: 103 @2000           (list.membershipAdded, occurredAt 2000)
//! -> left:   101                 (list.membershipRemoved, at the time the read ended)
//! ```
//!
//! At the first read every member is new: each is imported once. A member who left and came
//! back between two reads has a later join time and is announced again; one whose join time
//! HubSpot does not give is new at the time it was read, and not again. Who left is only known
//! once the whole list was read, and only trusted when HubSpot says the list is processed (a
//! dynamic list being re-evaluated may be missing members for a while).

use std::collections::{BTreeMap, HashSet};

use crate::hubspot::{ListInfo, ListMembership};

/// The members of one page of the list that are new since the last read, with when they
/// joined; every member of the page is added to `present`.
pub fn newcomers(
    known: &BTreeMap<u64, i64>,
    page: &[ListMembership],
    now_ms: i64,
    present: &mut HashSet<u64>,
) -> Vec<(u64, i64)> {
    let mut joined = Vec::new();
    for member in page {
        let Ok(id) = member.record_id.parse::<u64>() else {
            continue;
        };
        // A record twice in one read (the list changed while it was paged) counts once.
        if !present.insert(id) {
            continue;
        }
        let at = match (known.get(&id), member.joined_ms) {
            (Some(_), None) => continue,
            (Some(seen), Some(at)) if *seen >= at => continue,
            (_, at) => at.unwrap_or(now_ms),
        };
        joined.push((id, at));
    }
    joined
}

/// The members last seen who were not in a complete read, in id order.
pub fn leavers(known: &BTreeMap<u64, i64>, present: &HashSet<u64>) -> Vec<u64> {
    known
        .keys()
        .filter(|id| !present.contains(id))
        .copied()
        .collect()
}

/// Whether HubSpot has finished processing the list, so that a member missing from a full read
/// has left it. A list without a processing status is taken as processed.
pub fn processed(info: &ListInfo) -> bool {
    info.processing_status
        .as_deref()
        .is_none_or(|status| status.eq_ignore_ascii_case("COMPLETE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, joined: Option<i64>) -> ListMembership {
        ListMembership {
            record_id: id.into(),
            joined_ms: joined,
        }
    }

    #[test]
    fn every_member_is_new_at_the_first_read_and_none_at_the_next() {
        let page = [member("101", Some(1_000)), member("102", None)];
        let mut present = HashSet::new();
        let joined = newcomers(&BTreeMap::new(), &page, 5_000, &mut present);
        assert_eq!(joined, [(101, 1_000), (102, 5_000)]);
        let known: BTreeMap<u64, i64> = joined.into_iter().collect();
        let mut present = HashSet::new();
        assert!(newcomers(&known, &page, 9_000, &mut present).is_empty());
        assert!(leavers(&known, &present).is_empty());
    }

    #[test]
    fn a_member_who_came_back_is_new_again_and_one_gone_has_left() {
        let known = BTreeMap::from([(101, 1_000), (102, 1_000), (103, 1_000)]);
        let mut present = HashSet::new();
        let joined = newcomers(
            &known,
            &[
                member("101", Some(4_000)),
                member("102", Some(1_000)),
                member("104", Some(4_500)),
                member("104", Some(4_500)),
                member("not-an-id", Some(1)),
            ],
            9_000,
            &mut present,
        );
        assert_eq!(joined, [(101, 4_000), (104, 4_500)]);
        assert_eq!(leavers(&known, &present), [103]);
    }

    #[test]
    fn leavers_are_trusted_only_once_hubspot_processed_the_list() {
        let info = |status: Option<&str>| ListInfo {
            list_id: "42".into(),
            name: None,
            object_type_id: Some("0-1".into()),
            processing_type: Some("DYNAMIC".into()),
            processing_status: status.map(str::to_owned),
            size: None,
        };
        assert!(processed(&info(Some("COMPLETE"))));
        assert!(processed(&info(None)));
        assert!(!processed(&info(Some("PROCESSING"))));
    }
}
