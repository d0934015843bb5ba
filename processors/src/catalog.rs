//! What the process stage knows about the portal's HubSpot properties: per object type, each
//! property's type, whether it can be written and whether its values are unique.
//!
//! The caller loads it from `GET /crm/v3/properties/{objectType}` (see
//! [`PropertyKind::from_hubspot`] for how HubSpot's `type`/`fieldType` pair maps onto a kind) and
//! hands it to the processors; tests build one by hand:
//!
//! ```
//! # use hubsync_processors::catalog::{PropertyCatalog, PropertyKind, PropertySpec};
//! # use hubsync_schemas::HubSpotObjectType;
//! let catalog = PropertyCatalog::new()
//!     .with(HubSpotObjectType::Contact, "email", PropertySpec::unique(PropertyKind::String))
//!     .with(HubSpotObjectType::Contact, "lifecyclestage",
//!           PropertySpec::new(PropertyKind::enumeration(["lead", "customer"])));
//! // -> contacts: email (string, unique), lifecyclestage (enumeration: lead, customer)
//! assert!(catalog.get(HubSpotObjectType::Contact, "email").is_some_and(|p| p.unique));
//! assert!(catalog.get(HubSpotObjectType::Company, "email").is_none());
//! ```
//!
//! [`check_rules`] holds the rules against a catalog before the pipeline starts, so a mapping or
//! default that names a missing property, a read-only one or an unknown option stops the start
//! with the path of the setting; the processors repeat the same checks per record.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hubsync_schemas::HubSpotObjectType;

use crate::coerce;
use crate::rules::{FieldMapping, OWNER_PROPERTY, OwnerStrategy, RuleError, Rules};

/// The type of one HubSpot property, which decides how a value is written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyKind {
    String,
    Number,
    Bool,
    /// A calendar date, written as `YYYY-MM-DD` (HubSpot keeps it as midnight UTC).
    Date,
    /// An instant, written as ISO 8601 in UTC.
    Datetime,
    /// One of a fixed list of option values (matched exactly, case included); with `multiple`,
    /// several options separated by `;`.
    Enumeration {
        options: Vec<String>,
        multiple: bool,
    },
    PhoneNumber,
}

impl PropertyKind {
    /// A single-choice enumeration with these option values.
    pub fn enumeration<I, S>(options: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Enumeration {
            options: options.into_iter().map(Into::into).collect(),
            multiple: false,
        }
    }

    /// A multiple-choice enumeration (HubSpot's `checkbox` field type) with these option values.
    pub fn multiple_choice<I, S>(options: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Enumeration {
            options: options.into_iter().map(Into::into).collect(),
            multiple: true,
        }
    }

    /// The kind of a property as HubSpot's properties API describes it: its `type`, its
    /// `fieldType` and, for enumerations, the `value` of each option. `None` for a type this
    /// build does not know.
    pub fn from_hubspot(type_name: &str, field_type: &str, options: Vec<String>) -> Option<Self> {
        Some(match type_name {
            "string" => Self::String,
            "number" => Self::Number,
            "bool" => Self::Bool,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            "phone_number" => Self::PhoneNumber,
            "enumeration" => Self::Enumeration {
                options,
                multiple: field_type == "checkbox",
            },
            _ => return None,
        })
    }

    /// HubSpot's name for the type, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Bool => "bool",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Enumeration {
                multiple: false, ..
            } => "enumeration",
            Self::Enumeration { multiple: true, .. } => "multiple-choice enumeration",
            Self::PhoneNumber => "phone_number",
        }
    }
}

/// One HubSpot property as far as writing to it is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySpec {
    pub kind: PropertyKind,
    /// HubSpot refuses writes (calculated and system properties).
    pub read_only: bool,
    /// Values are unique across the object's records (`hasUniqueValue`), so the property can
    /// identify a record.
    pub unique: bool,
}

impl PropertySpec {
    /// A writable property without unique values.
    pub fn new(kind: PropertyKind) -> Self {
        Self {
            kind,
            read_only: false,
            unique: false,
        }
    }

    /// A writable property with unique values.
    pub fn unique(kind: PropertyKind) -> Self {
        Self {
            unique: true,
            ..Self::new(kind)
        }
    }

    /// A property HubSpot computes itself.
    pub fn read_only(kind: PropertyKind) -> Self {
        Self {
            read_only: true,
            ..Self::new(kind)
        }
    }
}

/// The portal's properties, per object type, by internal name.
///
/// An object type with no properties loaded has none: every property named for it is reported
/// missing, never assumed to exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyCatalog {
    /// Indexed by [`object_index`]; looked up several times per event, so hashed cheaply.
    objects: [Properties; OBJECT_TYPES],
}

type Properties = HashMap<String, PropertySpec, BuildHasherDefault<NameHasher>>;

const OBJECT_TYPES: usize = HubSpotObjectType::ALL.len();

/// Variants are declared in the order of `ALL`, so the discriminant is the index.
fn object_index(object: HubSpotObjectType) -> usize {
    object as usize
}

/// FNV-1a over property names. The names come from the portal and the rules, not from
/// untrusted input, so a fast hash without flooding protection is fine.
#[derive(Debug, Clone, Copy)]
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl PropertyCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one property.
    pub fn insert(
        &mut self,
        object: HubSpotObjectType,
        name: impl Into<String>,
        spec: PropertySpec,
    ) -> &mut Self {
        self.objects[object_index(object)].insert(name.into(), spec);
        self
    }

    /// [`insert`](Self::insert) for building a catalog in one expression.
    pub fn with(
        mut self,
        object: HubSpotObjectType,
        name: impl Into<String>,
        spec: PropertySpec,
    ) -> Self {
        self.insert(object, name, spec);
        self
    }

    /// One property of one object type.
    pub fn get(&self, object: HubSpotObjectType, name: &str) -> Option<&PropertySpec> {
        self.objects[object_index(object)].get(name)
    }

    /// Every property of one object type, in no particular order.
    pub fn properties(
        &self,
        object: HubSpotObjectType,
    ) -> impl Iterator<Item = (&str, &PropertySpec)> {
        self.objects[object_index(object)]
            .iter()
            .map(|(name, spec)| (name.as_str(), spec))
    }

    /// Whether the catalog knows any property of this object type.
    pub fn has_object(&self, object: HubSpotObjectType) -> bool {
        !self.objects[object_index(object)].is_empty()
    }
}

/// Every setting of the rules that HubSpot could not carry out with this portal's properties:
/// an identity property that is missing or not unique, a mapping or default that names a
/// missing or read-only property, a default value HubSpot would refuse (an unknown option, a
/// non-number...). Each error has the path of its setting; empty when the rules fit the portal.
pub fn check_rules(rules: &Rules, catalog: &PropertyCatalog) -> Vec<RuleError> {
    let mut errors = Vec::new();
    let sync = &rules.sync;
    check_id_property(
        "sync.contacts",
        HubSpotObjectType::Contact,
        &sync.contacts.id_property,
        catalog,
        &mut errors,
    );
    check_id_property(
        "sync.companies",
        HubSpotObjectType::Company,
        &sync.companies.id_property,
        catalog,
        &mut errors,
    );
    let objects = [
        (
            "sync.contacts",
            HubSpotObjectType::Contact,
            &sync.contacts.mapping[..],
            &sync.contacts.defaults,
        ),
        (
            "sync.companies",
            HubSpotObjectType::Company,
            &sync.companies.mapping[..],
            &sync.companies.defaults,
        ),
        (
            "sync.deals",
            HubSpotObjectType::Deal,
            &[][..],
            &sync.deals.defaults,
        ),
    ];
    for (at, object, mapping, defaults) in objects {
        for (index, entry) in mapping.iter().enumerate() {
            check_mapping(at, index, object, entry, catalog, &mut errors);
        }
        for (property, value) in defaults {
            let path = format!("{at}.defaults.{}", crate::rules::toml_key(property));
            match coerce::writable(object, property, catalog) {
                Err(error) => errors.push(RuleError::new(path, error.message(object, property))),
                Ok(spec) => {
                    if let Err(error) = coerce::coerce(value, spec) {
                        errors.push(RuleError::new(path, error.message(property, value)));
                    }
                }
            }
        }
    }
    check_deal_start(rules, catalog, &mut errors);
    let owners = [
        (
            "sync.contacts",
            HubSpotObjectType::Contact,
            sync.contacts.owner_strategy,
        ),
        (
            "sync.companies",
            HubSpotObjectType::Company,
            sync.companies.owner_strategy,
        ),
    ];
    for (at, object, strategy) in owners {
        let read_only = catalog
            .get(object, OWNER_PROPERTY)
            .is_some_and(|spec| spec.read_only);
        if strategy != OwnerStrategy::Never && read_only {
            errors.push(RuleError::new(
                format!("{at}.owner_strategy"),
                format!(
                    "{OWNER_PROPERTY} is read-only for {} records in this portal: \
                     set owner_strategy = \"never\"",
                    object_label(object)
                ),
            ));
        }
    }
    errors
}

/// When anything creates deals, the pipeline and stage they start in must be options of the
/// portal's `pipeline` and `dealstage` properties.
fn check_deal_start(rules: &Rules, catalog: &PropertyCatalog, errors: &mut Vec<RuleError>) {
    if rules.deal_trigger_sources().is_empty() {
        return;
    }
    let deals = &rules.sync.deals;
    let object = HubSpotObjectType::Deal;
    for (path, property, value) in [
        ("sync.deals.pipeline", "pipeline", &deals.pipeline),
        ("sync.deals.stage", "dealstage", &deals.stage),
    ] {
        let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        match coerce::writable(object, property, catalog) {
            Err(error) => errors.push(RuleError::new(path, error.message(object, property))),
            Ok(spec) => {
                if let Err(error) = coerce::coerce(value, spec) {
                    errors.push(RuleError::new(path, error.message(property, value)));
                }
            }
        }
    }
}

fn check_id_property(
    at: &str,
    object: HubSpotObjectType,
    property: &str,
    catalog: &PropertyCatalog,
    errors: &mut Vec<RuleError>,
) {
    let path = format!("{at}.id_property");
    match catalog.get(object, property) {
        None => errors.push(RuleError::new(
            path,
            format!(
                "HubSpot has no {} property {property:?}: create it in HubSpot or name an \
                 existing property",
                object_label(object)
            ),
        )),
        // HubSpot keeps `email` unique without flagging it, and companies are matched on
        // `domain`, which is not unique either: only other contact properties need the flag.
        Some(spec)
            if object == HubSpotObjectType::Contact && property != "email" && !spec.unique =>
        {
            errors.push(RuleError::new(
                path,
                format!(
                    "{} property {property:?} does not have unique values, so it cannot \
                     identify a record: name a property created with hasUniqueValue = true, \
                     such as \"email\"",
                    object_label(object)
                ),
            ))
        }
        Some(_) => {}
    }
}

fn check_mapping(
    at: &str,
    index: usize,
    object: HubSpotObjectType,
    entry: &FieldMapping,
    catalog: &PropertyCatalog,
    errors: &mut Vec<RuleError>,
) {
    let path = format!("{at}.mapping[{index}].property");
    match catalog.get(object, &entry.property) {
        None => errors.push(RuleError::new(
            path,
            format!(
                "HubSpot has no {} property {:?}: create it in HubSpot before mapping \
                 {:?} to it, or fix the name",
                object_label(object),
                entry.property,
                entry.source
            ),
        )),
        Some(spec) if spec.read_only && entry.direction.writes_hubspot() => {
            errors.push(RuleError::new(
                path,
                format!(
                    "{} property {:?} is read-only in HubSpot, so {:?} cannot be written to it: \
                     use direction = \"from_hubspot\" or map another property",
                    object_label(object),
                    entry.property,
                    entry.source
                ),
            ))
        }
        Some(_) => {}
    }
}

/// The singular name of an object type, for messages.
pub(crate) fn object_label(object: HubSpotObjectType) -> &'static str {
    match object {
        HubSpotObjectType::Contact => "contact",
        HubSpotObjectType::Company => "company",
        HubSpotObjectType::Deal => "deal",
        HubSpotObjectType::Note => "note",
        HubSpotObjectType::Email => "email",
        HubSpotObjectType::Call => "call",
        HubSpotObjectType::Task => "task",
        HubSpotObjectType::Meeting => "meeting",
        HubSpotObjectType::Unknown => "unknown object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::tests::rules;

    fn portal() -> PropertyCatalog {
        use HubSpotObjectType::{Company, Contact, Deal};
        PropertyCatalog::new()
            .with(Contact, "email", PropertySpec::unique(PropertyKind::String))
            .with(Contact, "jobtitle", PropertySpec::new(PropertyKind::String))
            .with(
                Contact,
                "lifecyclestage",
                PropertySpec::new(PropertyKind::enumeration(["lead", "customer"])),
            )
            .with(
                Contact,
                "hs_object_id",
                PropertySpec::read_only(PropertyKind::Number),
            )
            .with(
                Contact,
                OWNER_PROPERTY,
                PropertySpec::new(PropertyKind::String),
            )
            .with(Company, "domain", PropertySpec::new(PropertyKind::String))
            .with(Company, "name", PropertySpec::new(PropertyKind::String))
            .with(Deal, "amount", PropertySpec::new(PropertyKind::Number))
            .with(
                Deal,
                "pipeline",
                PropertySpec::new(PropertyKind::enumeration(["default"])),
            )
            .with(
                Deal,
                "dealstage",
                PropertySpec::new(PropertyKind::enumeration(["appointmentscheduled"])),
            )
    }

    #[test]
    fn hubspot_types_map_onto_kinds() {
        assert_eq!(
            PropertyKind::from_hubspot("enumeration", "checkbox", vec!["a".into()]),
            Some(PropertyKind::multiple_choice(["a"]))
        );
        assert_eq!(
            PropertyKind::from_hubspot("enumeration", "select", vec!["a".into()]),
            Some(PropertyKind::enumeration(["a"]))
        );
        assert_eq!(
            PropertyKind::from_hubspot("phone_number", "phonenumber", vec![]),
            Some(PropertyKind::PhoneNumber)
        );
        assert_eq!(
            PropertyKind::from_hubspot("datetime", "date", vec![]),
            Some(PropertyKind::Datetime)
        );
        assert_eq!(
            PropertyKind::from_hubspot("object_coordinates", "text", vec![]),
            None
        );
    }

    #[test]
    fn every_object_type_has_its_own_slot() {
        for (index, object) in HubSpotObjectType::ALL.iter().enumerate() {
            assert_eq!(object_index(*object), index, "{object}");
        }
    }

    #[test]
    fn lookups_are_per_object() {
        let catalog = portal();
        assert!(
            catalog
                .get(HubSpotObjectType::Contact, "jobtitle")
                .is_some()
        );
        assert!(
            catalog
                .get(HubSpotObjectType::Company, "jobtitle")
                .is_none()
        );
        assert!(catalog.has_object(HubSpotObjectType::Deal));
        assert!(!catalog.has_object(HubSpotObjectType::Note));
        assert_eq!(catalog.properties(HubSpotObjectType::Company).count(), 2);
        assert_eq!(catalog.properties(HubSpotObjectType::Note).count(), 0);
    }

    #[test]
    fn rules_that_fit_the_portal_pass() {
        let rules = rules(
            r#"
            [sync.contacts]
            defaults = { lifecyclestage = "lead" }
            [[sync.contacts.mapping]]
            source = "job_title"
            property = "jobtitle"
            [[sync.contacts.mapping]]
            source = "hubspot_id"
            property = "hs_object_id"
            direction = "from_hubspot"
            [sync.deals]
            defaults = { amount = "1,500" }
            "#,
        );
        assert_eq!(check_rules(&rules, &portal()), []);
    }

    #[test]
    fn every_misfit_is_reported_with_its_path() {
        let rules = rules(
            r#"
            [sync.contacts]
            id_property = "jobtitle"
            defaults = { lifecyclestage = "Lead", hs_lead_status = "NEW" }
            [[sync.contacts.mapping]]
            source = "title"
            property = "job_title"
            [[sync.contacts.mapping]]
            source = "hubspot_id"
            property = "hs_object_id"
            [sync.companies]
            id_property = "website"
            [sync.deals]
            defaults = { amount = "lots" }
            "#,
        );
        let errors = check_rules(&rules, &portal());
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "sync.contacts.id_property",
                "sync.companies.id_property",
                "sync.contacts.mapping[0].property",
                "sync.contacts.mapping[1].property",
                "sync.contacts.defaults.hs_lead_status",
                "sync.contacts.defaults.lifecyclestage",
                "sync.deals.defaults.amount",
            ]
        );
        assert!(errors[0].message.contains("unique"), "{}", errors[0]);
        assert!(errors[3].message.contains("read-only"), "{}", errors[3]);
        assert!(errors[5].message.contains("\"lead\""), "{}", errors[5]);
        assert!(errors[6].message.contains("not a number"), "{}", errors[6]);
    }

    #[test]
    fn deals_start_in_a_pipeline_and_stage_the_portal_has() {
        let fits = rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            [campaigns.cmp_q3]
            deal_triggers = ["email_replied"]
            "#,
        );
        assert_eq!(check_rules(&fits, &portal()), []);

        let mut misfit = fits.clone();
        misfit.sync.deals.pipeline = Some("sales".to_owned());
        misfit.sync.deals.stage = Some("Appointment scheduled".to_owned());
        let errors = check_rules(&misfit, &portal());
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["sync.deals.pipeline", "sync.deals.stage"]);
        assert!(
            errors[1].message.contains("appointmentscheduled"),
            "{}",
            errors[1]
        );

        misfit.campaigns.clear();
        assert_eq!(
            check_rules(&misfit, &portal()),
            [],
            "nothing creates deals, so their start is not checked"
        );
    }
}
