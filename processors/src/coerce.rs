//! Upstream values (always text) turned into what HubSpot accepts for the property's type, or a
//! reason why they cannot be. Every value is trimmed first; an empty value clears the property
//! whatever its type.
//!
//! ```text
//! "1,234.5"   -> number              "1234.5"
//! "Yes"       -> bool                "true"
//! "2025-03-04T23:30:00-05:00" -> date      "2025-03-04"  (the date as written)
//! "2025-03-04T23:30:00-05:00" -> datetime  "2025-03-05T04:30:00.000Z"
//! "lead;customer" -> multiple enumeration [lead, customer, ...] "lead;customer"
//! "Lead"      -> enumeration [lead, customer]  INVALID_OPTION (did you mean "lead"?)
//! ```
//!
//! Decisions, per type:
//! - number: digits with an optional sign and `.` decimals. A `,` is accepted only between
//!   groups of three integer digits (`1,234,567.5`) and removed; a decimal comma (`1,5`) is
//!   refused, because `1,500` would mean two different numbers. No exponents, `NaN` or infinity.
//! - bool: `true/false/yes/no/1/0`, any case, written as `true`/`false`.
//! - date: `YYYY-MM-DD`; an RFC 3339 timestamp gives the date as written in its own offset (the
//!   day the person entered); all digits are epoch milliseconds, giving the UTC date. Written
//!   as `YYYY-MM-DD`, which HubSpot stores as midnight UTC.
//! - datetime: RFC 3339 with `Z` or an offset, `YYYY-MM-DD` (midnight UTC) or all digits (epoch
//!   milliseconds). A timestamp without a zone is refused rather than guessed. Written as ISO
//!   8601 UTC with milliseconds.
//! - enumeration: the option's value exactly, case included, as HubSpot matches it; a
//!   multiple-choice value is `;`-separated and each part must be an option.
//! - string and phone number: as they are (HubSpot formats phone numbers itself).

use std::borrow::Cow;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use hubsync_schemas::HubSpotObjectType;

use crate::catalog::{PropertyCatalog, PropertyKind, PropertySpec, object_label};
use crate::decision::{Problem, ProblemCode};

/// Why a property cannot be written at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyError {
    Missing,
    ReadOnly,
}

impl PropertyError {
    pub fn code(self) -> ProblemCode {
        match self {
            Self::Missing => ProblemCode::PropertyMissing,
            Self::ReadOnly => ProblemCode::ReadOnlyProperty,
        }
    }

    pub fn message(self, object: HubSpotObjectType, property: &str) -> String {
        let object = object_label(object);
        match self {
            Self::Missing => format!(
                "HubSpot has no {object} property {property:?}: create it in HubSpot or fix the \
                 property name in the rules"
            ),
            Self::ReadOnly => format!(
                "{object} property {property:?} is read-only in HubSpot: map the field to \
                 another property or make the mapping from_hubspot"
            ),
        }
    }
}

/// The spec of a property hubsync may write.
pub fn writable<'c>(
    object: HubSpotObjectType,
    property: &str,
    catalog: &'c PropertyCatalog,
) -> Result<&'c PropertySpec, PropertyError> {
    match catalog.get(object, property) {
        None => Err(PropertyError::Missing),
        Some(spec) if spec.read_only => Err(PropertyError::ReadOnly),
        Some(spec) => Ok(spec),
    }
}

/// Why a value does not fit its property's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoerceError {
    NotANumber {
        /// A hint for a value that looks like a number written another way.
        hint: Option<&'static str>,
    },
    NotABool,
    NotADate,
    NotADatetime {
        /// A date and time without `Z` or an offset.
        no_zone: bool,
    },
    NotAnOption {
        /// The part of the value that is not an option (the whole value for a single choice).
        part: String,
        /// The allowed values, quoted, for messages.
        allowed: String,
        /// An option equal to the part but for case.
        near: Option<String>,
    },
}

impl CoerceError {
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::NotANumber { .. } => ProblemCode::InvalidNumber,
            Self::NotABool => ProblemCode::InvalidBool,
            Self::NotADate => ProblemCode::InvalidDate,
            Self::NotADatetime { .. } => ProblemCode::InvalidDatetime,
            Self::NotAnOption { .. } => ProblemCode::InvalidOption,
        }
    }

    /// What is wrong with `value` for `property` and what is allowed.
    pub fn message(&self, property: &str, value: &str) -> String {
        let value = shown(value);
        match self {
            Self::NotANumber { hint } => format!(
                "{value} is not a number, which property {property:?} needs: write digits with \
                 an optional sign and \".\" for decimals{}",
                hint.map(|h| format!(" ({h})")).unwrap_or_default()
            ),
            Self::NotABool => format!(
                "{value} is not a yes/no value, which property {property:?} needs: write true, \
                 false, yes, no, 1 or 0"
            ),
            Self::NotADate => format!(
                "{value} is not a date, which property {property:?} needs: write YYYY-MM-DD, an \
                 RFC 3339 timestamp or epoch milliseconds"
            ),
            Self::NotADatetime { no_zone: true } => format!(
                "{value} has no time zone, which property {property:?} needs to store an \
                 instant: add \"Z\" for UTC or an offset such as \"+02:00\""
            ),
            Self::NotADatetime { no_zone: false } => format!(
                "{value} is not a date and time, which property {property:?} needs: write an \
                 RFC 3339 timestamp such as 2025-03-04T09:30:00Z, YYYY-MM-DD or epoch \
                 milliseconds"
            ),
            Self::NotAnOption {
                part,
                allowed,
                near,
            } => {
                let mut message = format!(
                    "{} is not an option of property {property:?}; allowed values: {allowed} \
                     (HubSpot matches option values exactly, case included)",
                    shown(part)
                );
                if let Some(near) = near {
                    let _ = write!(message, "; did you mean {near:?}?");
                }
                message
            }
        }
    }
}

/// A value as HubSpot accepts it for this property type.
pub fn coerce<'a>(value: &'a str, spec: &PropertySpec) -> Result<Cow<'a, str>, CoerceError> {
    let value = crate::normalize::trim(value);
    if value.is_empty() {
        return Ok(Cow::Borrowed(""));
    }
    match &spec.kind {
        PropertyKind::String | PropertyKind::PhoneNumber => Ok(Cow::Borrowed(value)),
        PropertyKind::Number => number(value),
        PropertyKind::Bool => boolean(value).map(Cow::Borrowed),
        PropertyKind::Date => date(value),
        PropertyKind::Datetime => datetime(value).map(Cow::Owned),
        PropertyKind::Enumeration { options, multiple } => option(value, options, *multiple),
    }
}

/// A value for one property of one object, checked against the catalog, or the problem with it
/// naming the field (or setting) it came from, the property and what is allowed.
pub fn to_property<'a>(
    object: HubSpotObjectType,
    field: &str,
    property: &str,
    value: &'a str,
    catalog: &PropertyCatalog,
) -> Result<Cow<'a, str>, Problem> {
    check_value(object, property, value, catalog)
        .map_err(|error| error.into_problem(object, field, property, value))
}

/// Why a value cannot be written to a property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    Property(PropertyError),
    Value(CoerceError),
}

impl ValueError {
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Property(error) => error.code(),
            Self::Value(error) => error.code(),
        }
    }

    /// The problem, naming the field (or setting) the value came from and the property.
    pub fn into_problem(
        self,
        object: HubSpotObjectType,
        field: &str,
        property: &str,
        value: &str,
    ) -> Problem {
        let message = match &self {
            Self::Property(error) => error.message(object, property),
            Self::Value(error) => error.message(property, value),
        };
        Problem {
            code: self.code(),
            field: field.to_owned(),
            property: Some(property.to_owned()),
            message: format!("{field} -> {property}: {message}"),
        }
    }
}

/// [`to_property`] without naming the field, for callers that build the problem only when
/// there is one.
pub fn check_value<'a>(
    object: HubSpotObjectType,
    property: &str,
    value: &'a str,
    catalog: &PropertyCatalog,
) -> Result<Cow<'a, str>, ValueError> {
    let spec = writable(object, property, catalog).map_err(ValueError::Property)?;
    coerce(value, spec).map_err(ValueError::Value)
}

fn number(value: &str) -> Result<Cow<'_, str>, CoerceError> {
    let invalid = |hint| Err(CoerceError::NotANumber { hint });
    let (sign, unsigned) = match value.as_bytes()[0] {
        b'+' => ("", &value[1..]),
        b'-' => ("-", &value[1..]),
        _ => ("", value),
    };
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(fraction) = fraction
        && !digits(fraction)
    {
        return invalid(None);
    }
    let grouped = integer.contains(',');
    let integer_ok = if grouped {
        let mut groups = integer.split(',');
        let first = groups.next().unwrap_or_default();
        digits(first) && first.len() <= 3 && groups.all(|g| g.len() == 3 && digits(g))
    } else {
        digits(integer) || (integer.is_empty() && fraction.is_some())
    };
    if !integer_ok {
        let hint = if grouped && fraction.is_none() {
            Some("\",\" is only accepted between groups of three digits; use \".\" for decimals")
        } else {
            None
        };
        return invalid(hint);
    }
    if !grouped && value.as_bytes()[0] != b'+' {
        return Ok(Cow::Borrowed(value));
    }
    let mut normal = String::with_capacity(value.len());
    normal.push_str(sign);
    normal.extend(integer.chars().filter(|c| *c != ','));
    if let Some(fraction) = fraction {
        normal.push('.');
        normal.push_str(fraction);
    }
    Ok(Cow::Owned(normal))
}

fn boolean(value: &str) -> Result<&'static str, CoerceError> {
    const TRUE: [&str; 3] = ["true", "yes", "1"];
    const FALSE: [&str; 3] = ["false", "no", "0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(value)) {
        Ok("true")
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(value)) {
        Ok("false")
    } else {
        Err(CoerceError::NotABool)
    }
}

fn date(value: &str) -> Result<Cow<'_, str>, CoerceError> {
    let day = if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        day
    } else if let Some(instant) = epoch_millis(value) {
        instant.date_naive()
    } else if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        instant.date_naive()
    } else {
        return Err(CoerceError::NotADate);
    };
    let written = day.format("%Y-%m-%d").to_string();
    Ok(if written == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(written)
    })
}

fn datetime(value: &str) -> Result<String, CoerceError> {
    let instant = if let Some(instant) = epoch_millis(value) {
        instant
    } else if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        instant.with_timezone(&Utc)
    } else if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        day.and_time(chrono::NaiveTime::MIN).and_utc()
    } else {
        let naive = [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ]
        .iter()
        .any(|format| NaiveDateTime::parse_from_str(value, format).is_ok());
        return Err(CoerceError::NotADatetime { no_zone: naive });
    };
    Ok(instant.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// All digits, read as milliseconds since the Unix epoch.
fn epoch_millis(value: &str) -> Option<DateTime<Utc>> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    DateTime::from_timestamp_millis(value.parse().ok()?)
}

fn option<'a>(
    value: &'a str,
    options: &[String],
    multiple: bool,
) -> Result<Cow<'a, str>, CoerceError> {
    let check = |part: &str| {
        if options.iter().any(|option| option == part) {
            Ok(())
        } else {
            Err(CoerceError::NotAnOption {
                part: part.to_owned(),
                allowed: allowed(options),
                near: options
                    .iter()
                    .find(|option| option.to_lowercase() == part.to_lowercase())
                    .cloned(),
            })
        }
    };
    if !multiple {
        return check(value).map(|()| Cow::Borrowed(value));
    }
    let mut clean = true;
    for part in value.split(';') {
        let trimmed = part.trim();
        if trimmed.is_empty() || trimmed.len() != part.len() {
            clean = false;
        }
        if !trimmed.is_empty() {
            check(trimmed)?;
        }
    }
    if clean {
        return Ok(Cow::Borrowed(value));
    }
    let mut joined = String::with_capacity(value.len());
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if !joined.is_empty() {
            joined.push(';');
        }
        joined.push_str(part);
    }
    Ok(Cow::Owned(joined))
}

/// At most this many options are listed in a message.
const LISTED_OPTIONS: usize = 20;

fn allowed(options: &[String]) -> String {
    if options.is_empty() {
        return "none (the property has no options yet)".to_owned();
    }
    let mut text = String::new();
    for (index, option) in options.iter().take(LISTED_OPTIONS).enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{option:?}");
    }
    if options.len() > LISTED_OPTIONS {
        let _ = write!(text, " and {} more", options.len() - LISTED_OPTIONS);
    }
    text
}

/// A value quoted for a message, shortened when long.
fn shown(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: PropertyKind) -> PropertySpec {
        PropertySpec::new(kind)
    }

    fn ok(value: &str, kind: PropertyKind) -> String {
        coerce(value, &spec(kind.clone()))
            .unwrap_or_else(|e| panic!("{value:?} as {}: {e:?}", kind.name()))
            .into_owned()
    }

    fn err(value: &str, kind: PropertyKind) -> CoerceError {
        coerce(value, &spec(kind))
            .map(|v| v.into_owned())
            .expect_err(value)
    }

    #[test]
    fn an_empty_value_clears_any_type() {
        for kind in [
            PropertyKind::Number,
            PropertyKind::Bool,
            PropertyKind::Date,
            PropertyKind::Datetime,
            PropertyKind::enumeration(["a"]),
        ] {
            assert_eq!(ok("  ", kind), "");
        }
    }

    #[test]
    fn strings_and_phone_numbers_are_trimmed_only() {
        assert_eq!(
            ok("  VP Operations ", PropertyKind::String),
            "VP Operations"
        );
        assert_eq!(
            ok(" +1 (415) 555-0134 ", PropertyKind::PhoneNumber),
            "+1 (415) 555-0134"
        );
    }

    #[test]
    fn numbers_are_plain_decimals() {
        for (input, expected) in [
            ("42", "42"),
            ("-3.25", "-3.25"),
            ("+7", "7"),
            (".5", ".5"),
            ("1,234.5", "1234.5"),
            ("12,345,678", "12345678"),
            ("-1,000", "-1000"),
            ("0007", "0007"),
        ] {
            assert_eq!(ok(input, PropertyKind::Number), expected, "{input}");
        }
        assert!(matches!(
            coerce("42", &spec(PropertyKind::Number)),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn non_numbers_are_refused() {
        for bad in [
            "abc", "1e3", "NaN", "inf", "1.2.3", "5.", "-", "+", "1 234", "12,34", "1,2345", "$5",
            "1,234,5", ",123",
        ] {
            assert_eq!(
                err(bad, PropertyKind::Number).code(),
                ProblemCode::InvalidNumber,
                "{bad}"
            );
        }
        let decimal_comma = err("1,5", PropertyKind::Number);
        assert_eq!(
            decimal_comma,
            CoerceError::NotANumber {
                hint: Some(
                    "\",\" is only accepted between groups of three digits; use \".\" for decimals"
                )
            }
        );
        assert!(
            decimal_comma
                .message("hs_score", "1,5")
                .contains("use \".\" for decimals")
        );
    }

    #[test]
    fn booleans_accept_the_usual_words() {
        for input in ["true", "TRUE", "Yes", "1"] {
            assert_eq!(ok(input, PropertyKind::Bool), "true", "{input}");
        }
        for input in ["false", "No", "0"] {
            assert_eq!(ok(input, PropertyKind::Bool), "false", "{input}");
        }
        for bad in ["y", "on", "2", "maybe"] {
            assert_eq!(err(bad, PropertyKind::Bool), CoerceError::NotABool, "{bad}");
        }
    }

    #[test]
    fn dates_become_calendar_days() {
        for (input, expected) in [
            ("2025-03-04", "2025-03-04"),
            ("2025-3-4", "2025-03-04"),
            ("2025-03-04T23:30:00-05:00", "2025-03-04"),
            ("2025-03-04T09:30:00Z", "2025-03-04"),
            ("1741080600000", "2025-03-04"),
        ] {
            assert_eq!(ok(input, PropertyKind::Date), expected, "{input}");
        }
        for bad in [
            "04/03/2025",
            "2025-02-30",
            "yesterday",
            "2025-03-04T09:30:00",
        ] {
            assert_eq!(err(bad, PropertyKind::Date), CoerceError::NotADate, "{bad}");
        }
    }

    #[test]
    fn datetimes_become_utc_instants() {
        for (input, expected) in [
            ("2025-03-04T09:30:00Z", "2025-03-04T09:30:00.000Z"),
            ("2025-03-04T23:30:00.5-05:00", "2025-03-05T04:30:00.500Z"),
            ("2025-03-04", "2025-03-04T00:00:00.000Z"),
            ("1741080600000", "2025-03-04T09:30:00.000Z"),
        ] {
            assert_eq!(ok(input, PropertyKind::Datetime), expected, "{input}");
        }
        assert_eq!(
            err("2025-03-04T09:30:00", PropertyKind::Datetime),
            CoerceError::NotADatetime { no_zone: true }
        );
        assert_eq!(
            err("2025-03-04 09:30", PropertyKind::Datetime),
            CoerceError::NotADatetime { no_zone: false }
        );
        let error = err("soon", PropertyKind::Datetime);
        assert_eq!(error.code(), ProblemCode::InvalidDatetime);
        assert!(error.message("closedate", "soon").contains("RFC 3339"));
    }

    #[test]
    fn enumerations_match_option_values_exactly() {
        let stages = || PropertyKind::enumeration(["lead", "customer"]);
        assert_eq!(ok(" lead ", stages()), "lead");
        let error = err("Lead", stages());
        assert_eq!(error.code(), ProblemCode::InvalidOption);
        let message = error.message("lifecyclestage", "Lead");
        assert!(message.contains("\"Lead\" is not an option of property \"lifecyclestage\""));
        assert!(
            message.contains("allowed values: \"lead\", \"customer\""),
            "{message}"
        );
        assert!(message.contains("did you mean \"lead\"?"), "{message}");
        let message = err("prospect", stages()).message("lifecyclestage", "prospect");
        assert!(!message.contains("did you mean"), "{message}");
    }

    #[test]
    fn multiple_choices_are_each_an_option() {
        let tags = || PropertyKind::multiple_choice(["a", "b", "c"]);
        assert_eq!(ok("a;c", tags()), "a;c");
        assert_eq!(ok(" a ; c;;", tags()), "a;c");
        let error = err("a;d;c", tags());
        assert!(
            matches!(&error, CoerceError::NotAnOption { part, .. } if part == "d"),
            "{error:?}"
        );
        assert!(matches!(
            coerce("a;b", &spec(tags())),
            Ok(Cow::Borrowed("a;b"))
        ));
    }

    #[test]
    fn long_option_lists_are_shortened_in_messages() {
        let options: Vec<String> = (0..25).map(|i| format!("o{i}")).collect();
        let message = err("x", PropertyKind::enumeration(options)).message("p", "x");
        assert!(message.contains("\"o19\" and 5 more"), "{message}");
        assert!(!message.contains("\"o20\""), "{message}");
        let none = err("x", PropertyKind::enumeration(Vec::<String>::new())).message("p", "x");
        assert!(none.contains("no options yet"), "{none}");
    }

    #[test]
    fn missing_and_read_only_properties_name_field_and_property() {
        let catalog = PropertyCatalog::new()
            .with(
                HubSpotObjectType::Contact,
                "hs_object_id",
                PropertySpec::read_only(PropertyKind::Number),
            )
            .with(
                HubSpotObjectType::Contact,
                "hs_score",
                PropertySpec::new(PropertyKind::Number),
            );
        let contact = HubSpotObjectType::Contact;
        let missing = to_property(contact, "tier", "tier_level", "gold", &catalog).unwrap_err();
        assert_eq!(missing.code, ProblemCode::PropertyMissing);
        assert_eq!(missing.field, "tier");
        assert_eq!(missing.property.as_deref(), Some("tier_level"));
        assert!(
            missing
                .message
                .starts_with("tier -> tier_level: HubSpot has no contact property \"tier_level\""),
            "{}",
            missing.message
        );
        let read_only = to_property(contact, "id", "hs_object_id", "1", &catalog).unwrap_err();
        assert_eq!(read_only.code, ProblemCode::ReadOnlyProperty);
        let bad = to_property(contact, "score", "hs_score", "high", &catalog).unwrap_err();
        assert_eq!(bad.code, ProblemCode::InvalidNumber);
        assert!(
            bad.message.contains("\"high\" is not a number"),
            "{}",
            bad.message
        );
        assert_eq!(
            to_property(contact, "score", "hs_score", "1,000", &catalog).as_deref(),
            Ok("1000")
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(200);
        let message = CoerceError::NotABool.message("p", &long);
        assert!(message.len() < 250, "{message}");
        assert!(message.contains('…'));
    }
}
