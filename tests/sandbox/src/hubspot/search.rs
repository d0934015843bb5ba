//! `POST /crm/v3/objects/{type}/search`: filter groups (ORed) of filters (ANDed), one sort, a
//! free-text query, paging by offset, the 10,000-result cap. Evaluated against what the search
//! index has caught up with, never against the latest writes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::errors::ApiError;
use super::model::{PropertyDef, PropertyType};
use super::validate::parse_datetime_ms;

pub const MAX_GROUPS: usize = 5;
pub const MAX_FILTERS_PER_GROUP: usize = 10;
pub const MAX_FILTERS: usize = 25;
pub const MAX_LIMIT: usize = 200;
pub const RESULT_CAP: usize = 10_000;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    pub filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    pub sorts: Vec<Value>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FilterGroup {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
    #[serde(default)]
    pub high_value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub property: String,
    pub descending: bool,
}

/// One page of matching ids, in order, with the total and the next offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub total: usize,
    pub ids: Vec<u64>,
    pub next_after: Option<usize>,
}

impl SearchRequest {
    /// Checks the request's shape before it is run; errors are HubSpot's 400s.
    pub fn validate(&self, defs: &BTreeMap<String, PropertyDef>) -> Result<(), ApiError> {
        if self.filter_groups.len() > MAX_GROUPS {
            return Err(ApiError::validation(format!(
                "Too many filter groups: {}. A search takes at most {MAX_GROUPS} filter groups.",
                self.filter_groups.len()
            )));
        }
        let mut total = 0;
        for group in &self.filter_groups {
            if group.filters.len() > MAX_FILTERS_PER_GROUP {
                return Err(ApiError::validation(format!(
                    "Too many filters in a group: {}. A filter group takes at most {MAX_FILTERS_PER_GROUP} filters.",
                    group.filters.len()
                )));
            }
            total += group.filters.len();
            for filter in &group.filters {
                filter.validate(defs)?;
            }
        }
        if total > MAX_FILTERS {
            return Err(ApiError::validation(format!(
                "Too many filters: {total}. A search takes at most {MAX_FILTERS} filters in all."
            )));
        }
        if self.sorts.len() > 1 {
            return Err(ApiError::validation(
                "Only one sort is allowed per search request.",
            ));
        }
        if let Some(sort) = self.sort()?
            && !defs.contains_key(&sort.property)
        {
            return Err(unknown_property(&sort.property));
        }
        if self.limit.unwrap_or(10) > MAX_LIMIT {
            return Err(ApiError::validation(format!(
                "limit must be {MAX_LIMIT} or less, got {}",
                self.limit.unwrap_or(0)
            )));
        }
        if self.offset()? >= RESULT_CAP {
            return Err(ApiError::validation(format!(
                "Search results are limited to {RESULT_CAP} per query; narrow the query (for example with a filter on hs_lastmodifieddate) instead of paging further."
            )));
        }
        Ok(())
    }

    pub fn sort(&self) -> Result<Option<Sort>, ApiError> {
        let Some(raw) = self.sorts.first() else {
            return Ok(None);
        };
        match raw {
            Value::String(s) => Ok(Some(match s.strip_prefix('-') {
                Some(name) => Sort {
                    property: name.to_string(),
                    descending: true,
                },
                None => Sort {
                    property: s.clone(),
                    descending: false,
                },
            })),
            Value::Object(o) => {
                let property = o
                    .get("propertyName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::validation("sorts[0].propertyName is required"))?;
                let descending = match o.get("direction").and_then(Value::as_str) {
                    None | Some("ASCENDING") => false,
                    Some("DESCENDING") => true,
                    Some(other) => {
                        return Err(ApiError::validation(format!(
                            "sort direction {other} is not one of ASCENDING, DESCENDING"
                        )));
                    }
                };
                Ok(Some(Sort {
                    property: property.to_string(),
                    descending,
                }))
            }
            _ => Err(ApiError::validation("sorts must hold strings or objects")),
        }
    }

    pub fn offset(&self) -> Result<usize, ApiError> {
        match &self.after {
            None | Some(Value::Null) => Ok(0),
            Some(Value::String(s)) if s.is_empty() => Ok(0),
            Some(Value::String(s)) => s.parse().map_err(|_| {
                ApiError::validation(format!(
                    "after must be a paging cursor from a previous response, got {s}"
                ))
            }),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| ApiError::validation("after must be a non-negative integer")),
            Some(other) => Err(ApiError::validation(format!(
                "after must be a string, got {other}"
            ))),
        }
    }

    /// Runs the search over `(id, properties)` of every indexed record.
    pub fn run(
        &self,
        defs: &BTreeMap<String, PropertyDef>,
        records: &[(u64, BTreeMap<String, String>)],
        query_properties: &[&str],
    ) -> Result<Page, ApiError> {
        self.validate(defs)?;
        let mut matching: Vec<&(u64, BTreeMap<String, String>)> = records
            .iter()
            .filter(|(_, props)| self.matches(defs, props, query_properties))
            .collect();
        match self.sort()? {
            Some(sort) => {
                let def = defs.get(&sort.property);
                matching.sort_by(|a, b| {
                    let order =
                        compare_values(def, a.1.get(&sort.property), b.1.get(&sort.property))
                            .then(a.0.cmp(&b.0));
                    if sort.descending {
                        order.reverse()
                    } else {
                        order
                    }
                });
            }
            None => matching.sort_by_key(|(id, _)| *id),
        }
        let total = matching.len();
        let offset = self.offset()?;
        let limit = self.limit.unwrap_or(10);
        let end = (offset + limit).min(total).min(RESULT_CAP);
        let ids = matching
            .get(offset.min(end)..end)
            .unwrap_or_default()
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let next_after = (end < total && end < RESULT_CAP).then_some(end);
        Ok(Page {
            total,
            ids,
            next_after,
        })
    }

    fn matches(
        &self,
        defs: &BTreeMap<String, PropertyDef>,
        props: &BTreeMap<String, String>,
        query_properties: &[&str],
    ) -> bool {
        if let Some(query) = self
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            let query = query.to_lowercase();
            let hit = query_properties.iter().any(|name| {
                props
                    .get(*name)
                    .is_some_and(|v| v.to_lowercase().contains(&query))
            });
            if !hit {
                return false;
            }
        }
        self.filter_groups.is_empty()
            || self.filter_groups.iter().any(|group| {
                group
                    .filters
                    .iter()
                    .all(|f| f.matches(defs.get(&f.property_name), props))
            })
    }
}

impl Filter {
    fn validate(&self, defs: &BTreeMap<String, PropertyDef>) -> Result<(), ApiError> {
        if !defs.contains_key(&self.property_name) {
            return Err(unknown_property(&self.property_name));
        }
        let needs = match self.operator.as_str() {
            "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" | "CONTAINS_TOKEN"
            | "NOT_CONTAINS_TOKEN" => "value",
            "BETWEEN" => "highValue",
            "IN" | "NOT_IN" => "values",
            "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => "",
            other => {
                return Err(ApiError::validation(format!(
                    "Unknown operator {other}: use one of EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN"
                )));
            }
        };
        let missing = match needs {
            "value" => self.value.is_none(),
            "highValue" => self.value.is_none() || self.high_value.is_none(),
            "values" => self.values.is_none(),
            _ => false,
        };
        if missing {
            return Err(ApiError::validation(format!(
                "filter on {} with operator {} needs {}",
                self.property_name, self.operator, needs
            )));
        }
        Ok(())
    }

    fn matches(&self, def: Option<&PropertyDef>, props: &BTreeMap<String, String>) -> bool {
        let actual = props.get(&self.property_name).filter(|v| !v.is_empty());
        let value = self.value.as_ref().map(text_of);
        let equals = |candidate: &str| {
            actual.is_some_and(|a| {
                compare_values(def, Some(a), Some(&candidate.to_string())) == Ordering::Equal
            })
        };
        let ordering = |candidate: &Option<String>| {
            actual.and_then(|a| {
                candidate
                    .as_ref()
                    .map(|c| compare_values(def, Some(a), Some(c)))
            })
        };
        match self.operator.as_str() {
            "EQ" => value.as_deref().is_some_and(equals),
            "NEQ" => !value.as_deref().is_some_and(equals),
            "LT" => ordering(&value) == Some(Ordering::Less),
            "LTE" => matches!(ordering(&value), Some(Ordering::Less | Ordering::Equal)),
            "GT" => ordering(&value) == Some(Ordering::Greater),
            "GTE" => matches!(ordering(&value), Some(Ordering::Greater | Ordering::Equal)),
            "BETWEEN" => {
                let high = self.high_value.as_ref().map(text_of);
                matches!(ordering(&value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(ordering(&high), Some(Ordering::Less | Ordering::Equal))
            }
            "IN" => self.values.iter().flatten().any(|v| equals(&text_of(v))),
            "NOT_IN" => !self.values.iter().flatten().any(|v| equals(&text_of(v))),
            "HAS_PROPERTY" => actual.is_some(),
            "NOT_HAS_PROPERTY" => actual.is_none(),
            "CONTAINS_TOKEN" => value
                .as_deref()
                .is_some_and(|pattern| actual.is_some_and(|a| contains_token(a, pattern))),
            "NOT_CONTAINS_TOKEN" => !value
                .as_deref()
                .is_some_and(|pattern| actual.is_some_and(|a| contains_token(a, pattern))),
            _ => false,
        }
    }
}

fn unknown_property(name: &str) -> ApiError {
    ApiError::validation(format!(
        "There was a problem with the request: property {name} does not exist."
    ))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares two stored values by the property's type: numbers numerically, dates and datetimes
/// by instant (epoch ms or ISO), everything else case-insensitively. Missing sorts first.
fn compare_values(def: Option<&PropertyDef>, a: Option<&String>, b: Option<&String>) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Less,
        (Some(_), None) => return Ordering::Greater,
        (Some(a), Some(b)) => (a, b),
    };
    match def.map(|d| d.kind) {
        Some(PropertyType::Number) => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => a.cmp(b),
        },
        Some(PropertyType::Date | PropertyType::Datetime) => {
            match (parse_datetime_ms(a), parse_datetime_ms(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => a.cmp(b),
            }
        }
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

/// Token match as HubSpot's CONTAINS_TOKEN: the value split on non-alphanumerics (and kept whole),
/// with `*` as a wildcard in the pattern.
fn contains_token(actual: &str, pattern: &str) -> bool {
    let actual = actual.to_lowercase();
    let pattern = pattern.to_lowercase();
    let tokens = std::iter::once(actual.as_str()).chain(
        actual
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty()),
    );
    tokens
        .into_iter()
        .any(|token| wildcard_match(token, &pattern))
}

fn wildcard_match(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return text == pattern;
    }
    let mut rest = text;
    for (index, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if index == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if index == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::model::{ObjectType, default_properties};
    use super::*;
    use serde_json::json;

    fn defs() -> BTreeMap<String, PropertyDef> {
        default_properties(ObjectType::Companies)
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect()
    }

    fn records() -> Vec<(u64, BTreeMap<String, String>)> {
        let make = |id: u64, domain: &str, employees: &str| {
            let mut p = BTreeMap::new();
            p.insert("domain".to_string(), domain.to_string());
            if !employees.is_empty() {
                p.insert("numberofemployees".to_string(), employees.to_string());
            }
            p.insert(
                "hs_lastmodifieddate".to_string(),
                crate::clock::rfc3339_ms(id as i64 * 1_000),
            );
            (id, p)
        };
        vec![
            make(1, "acme.io", "50"),
            make(2, "globex.com", "9"),
            make(3, "initech.com", "120"),
            make(4, "acme.co.uk", ""),
        ]
    }

    fn run(body: Value) -> Result<Page, ApiError> {
        let request: SearchRequest = serde_json::from_value(body).expect("request");
        request.run(&defs(), &records(), &["name", "domain"])
    }

    fn ids(body: Value) -> Vec<u64> {
        run(body).expect("search").ids
    }

    fn filter(property: &str, operator: &str, value: Value) -> Value {
        json!({"filterGroups": [{"filters": [{"propertyName": property, "operator": operator, "value": value}]}]})
    }

    #[test]
    fn comparison_operators_are_typed() {
        assert_eq!(ids(filter("domain", "EQ", json!("ACME.io"))), [1]);
        assert_eq!(ids(filter("domain", "NEQ", json!("acme.io"))), [2, 3, 4]);
        // Numeric, not lexicographic: "9" < "50" < "120".
        assert_eq!(ids(filter("numberofemployees", "GT", json!("10"))), [1, 3]);
        assert_eq!(ids(filter("numberofemployees", "LTE", json!(50))), [1, 2]);
        assert_eq!(ids(filter("numberofemployees", "LT", json!("50"))), [2]);
        assert_eq!(ids(filter("numberofemployees", "GTE", json!("120"))), [3]);
        assert_eq!(
            ids(filter("hs_lastmodifieddate", "GTE", json!("3000"))),
            [3, 4]
        );
    }

    #[test]
    fn set_presence_and_token_operators() {
        let body = json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "IN", "values": ["globex.com", "initech.com"]}]}]});
        assert_eq!(ids(body), [2, 3]);
        let body = json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "NOT_IN", "values": ["globex.com"]}]}]});
        assert_eq!(ids(body), [1, 3, 4]);
        assert_eq!(
            ids(
                json!({"filterGroups": [{"filters": [{"propertyName": "numberofemployees", "operator": "HAS_PROPERTY"}]}]})
            ),
            [1, 2, 3]
        );
        assert_eq!(
            ids(
                json!({"filterGroups": [{"filters": [{"propertyName": "numberofemployees", "operator": "NOT_HAS_PROPERTY"}]}]})
            ),
            [4]
        );
        assert_eq!(
            ids(filter("domain", "CONTAINS_TOKEN", json!("acme"))),
            [1, 4]
        );
        assert_eq!(
            ids(filter("domain", "CONTAINS_TOKEN", json!("*.com"))),
            [2, 3]
        );
        let body = json!({"filterGroups": [{"filters": [{"propertyName": "numberofemployees", "operator": "BETWEEN", "value": "9", "highValue": "50"}]}]});
        assert_eq!(ids(body), [1, 2]);
    }

    #[test]
    fn groups_are_ored_and_filters_anded() {
        let body = json!({"filterGroups": [
            {"filters": [
                {"propertyName": "domain", "operator": "CONTAINS_TOKEN", "value": "acme"},
                {"propertyName": "numberofemployees", "operator": "HAS_PROPERTY"}
            ]},
            {"filters": [{"propertyName": "domain", "operator": "EQ", "value": "globex.com"}]}
        ]});
        assert_eq!(ids(body), [1, 2]);
    }

    #[test]
    fn sorts_and_pages() {
        let body = json!({"sorts": [{"propertyName": "numberofemployees", "direction": "DESCENDING"}], "limit": 2});
        let page = run(body).expect("search");
        assert_eq!(page.ids, [3, 1]);
        assert_eq!(page.total, 4);
        assert_eq!(page.next_after, Some(2));
        let body = json!({"sorts": ["numberofemployees"], "limit": 2, "after": "2"});
        let page = run(body).expect("search");
        assert_eq!(page.ids, [1, 3]);
        assert_eq!(page.next_after, None);
    }

    #[test]
    fn limits_are_enforced() {
        assert!(run(json!({"limit": 201})).is_err());
        assert!(run(json!({"after": "10000"})).is_err());
        assert!(run(json!({"sorts": ["domain", "name"]})).is_err());
        assert!(run(filter("nope", "EQ", json!("x"))).is_err());
        let groups: Vec<Value> = (0..6).map(|_| json!({"filters": []})).collect();
        assert!(run(json!({"filterGroups": groups})).is_err());
        let many: Vec<Value> = (0..11)
            .map(|_| json!({"propertyName": "domain", "operator": "HAS_PROPERTY"}))
            .collect();
        assert!(run(json!({"filterGroups": [{"filters": many}]})).is_err());
    }

    #[test]
    fn results_stop_at_the_cap() {
        let request: SearchRequest =
            serde_json::from_value(json!({"limit": 200, "after": "9900"})).expect("request");
        let many: Vec<(u64, BTreeMap<String, String>)> =
            (0..10_500).map(|id| (id, BTreeMap::new())).collect();
        let page = request.run(&defs(), &many, &[]).expect("search");
        assert_eq!(page.total, 10_500);
        assert_eq!(page.ids.len(), 100);
        assert_eq!(page.next_after, None);
    }
}
