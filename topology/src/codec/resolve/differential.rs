//! The compiled resolution against apache-avro's, on generated schema evolutions.
//!
//! A writer record schema is generated with fields of every Avro type (nested records, arrays,
//! maps, enums, fixed, unions such as `["null", X]`, the logical types `timestamp-millis`,
//! `timestamp-micros`, `date`, `uuid` and `decimal`, and named types used again by name), then a
//! reader schema is derived from it by changes the specification's "Schema Resolution" allows or
//! forbids: fields dropped, added with or without a default, renamed with a reader alias,
//! reordered; numbers promoted, `string` and `bytes` swapped, logical types changed to and from
//! their underlying types; unions widened, narrowed, reordered, collapsed to one branch, or a
//! plain type taken into a union; enum symbols added, dropped or reordered and the reader's
//! default symbol set or removed; named types renamed with or without an alias, or moved to
//! another namespace; and types changed to ones they cannot be read as (a `long` read as an
//! `int`, a fixed of another size, a decimal of another scale...). Data of the writer schema is
//! encoded by apache-avro, and again with arrays and maps in other blocks and numbers in more
//! bytes than they need ([`encode_in_blocks`]), then read both ways:
//!
//! - theirs: apache-avro decodes it with the writer schema and resolves the value to the reader
//!   schema;
//! - ours: [`Resolution::compile`] and [`Resolution::rewrite`], then apache-avro decodes the
//!   output with the reader schema alone.
//!
//! Both must read the same value (floats compared bit for bit, any NaN equal to any NaN), or
//! both refuse; whether the pair compiles at all must be what apache-avro's schema checker
//! (`SchemaCompatibility::can_read`) says of it. apache-avro 0.22 departs from the specification
//! in known ways, each taken into account where the verdicts are compared ([`Case::judge`]) and
//! nowhere else:
//!
//! - its datum resolution works on decoded values, not on schemas: it never compares the names
//!   of records, enums and fixed types, and it reads a `long` as an `int` when the number fits,
//!   a `double` as a `float`, a `string` as a `fixed` or an `enum`, and a `fixed` as a `string`.
//!   Where it reads a datum so, the types at every value it produced are checked against the
//!   specification's rules ([`conforms`]), and ours is checked the same way instead of against
//!   theirs;
//! - for the same reason it passes a datum that does not reach the incompatible part of a pair
//!   of schemas (an empty array of items that cannot be read): there the schema checker, which
//!   follows the specification, decides ([`items_match`]);
//! - it resolves a value of a logical type only into the same logical type, refuses bytes read
//!   as a decimal when there are fewer than its precision takes, and reads a string as a decimal
//!   by its code points: there ours is checked against the specification
//!   ([`they_mishandle_logical`]);
//! - it ignores reader aliases when resolving a datum (the specification leaves aliases to the
//!   implementation): it is given the writer schema renamed by the reader's aliases, which
//!   encodes exactly like the writer schema; its schema checker ignores references, so it is
//!   given both schemas with every use of a named type written in full;
//! - it reads a `bytes` or `fixed` field default as UTF-8 where the specification maps code
//!   points 0-255 to bytes, and takes the default of a union field as its first branch even
//!   when the default is of a later one: generated defaults are ASCII and of the first branch,
//!   and a unit test pins down our reading of the others;
//! - it reads a union index at the end of a datum as branch 0 holding null, so it reads some
//!   cut datums ([`Case::invented`]).
//!
//! Unions hold at most one branch of each kind (one record, one enum, one fixed) so that
//! apache-avro's value-based choice among named branches cannot differ from the specification's
//! name-based one. Enum changes keep at least one writer symbol, since a reader enum sharing none
//! with the writer's is refused by apache-avro's schema checker although the specification only
//! refuses each datum; a unit test covers it. Recursive schemas are left to the unit tests in
//! `tests.rs`.
//!
//! Damaged datums (a byte changed, cut short, bytes added) must end in a value or a typed error,
//! never a panic; cut or lengthened ones are refused by both, and a value both read is the same.
//!
//! With proptest's default 256 cases this takes well under a second; run longer with
//! `PROPTEST_CASES=20000 cargo test -p hubsync --lib differential`. Failures found are kept in
//! `topology/proptest-regressions/codec/resolve/differential.txt` and replayed first (they
//! replay the generator as it is: a change to it changes what an old seed makes).

use std::collections::HashMap;
use std::ops::Not;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::*;

/// A schema, as the generator builds and changes it.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// Logical types: a long, an int, a string, bytes.
    TimestampMillis,
    TimestampMicros,
    Date,
    Uuid,
    Decimal {
        precision: usize,
        scale: usize,
    },
    Enum(EnumTy),
    Fixed(FixedTy),
    Array(Box<Ty>),
    Map(Box<Ty>),
    Record(RecordTy),
    Union(Vec<Ty>),
    /// While generating: another use of a named type defined before it, by name; `name_types`
    /// replaces it with a copy of that type (written as its name after the first use).
    Reuse(usize),
}

#[derive(Clone, Debug, PartialEq, Default)]
struct Naming {
    name: String,
    namespace: Option<String>,
    aliases: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
struct EnumTy {
    naming: Naming,
    symbols: Vec<String>,
    default: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
struct FixedTy {
    naming: Naming,
    size: usize,
}

#[derive(Clone, Debug, PartialEq)]
struct RecordTy {
    naming: Naming,
    fields: Vec<FieldTy>,
}

#[derive(Clone, Debug, PartialEq)]
struct FieldTy {
    name: String,
    aliases: Vec<String>,
    ty: Ty,
    default: Option<Json>,
}

const SYMBOLS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

impl Ty {
    /// What a union may hold one branch of: a logical type is its underlying type.
    fn kind(&self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Boolean => "boolean",
            Ty::Int | Ty::Date => "int",
            Ty::Long | Ty::TimestampMillis | Ty::TimestampMicros => "long",
            Ty::Float => "float",
            Ty::Double => "double",
            Ty::Bytes | Ty::Decimal { .. } => "bytes",
            Ty::String | Ty::Uuid => "string",
            Ty::Enum(_) => "enum",
            Ty::Fixed(_) => "fixed",
            Ty::Array(_) => "array",
            Ty::Map(_) => "map",
            Ty::Record(_) => "record",
            Ty::Union(_) => "union",
            Ty::Reuse(_) => "reuse",
        }
    }

    fn is_logical(&self) -> bool {
        matches!(
            self,
            Ty::TimestampMillis | Ty::TimestampMicros | Ty::Date | Ty::Uuid | Ty::Decimal { .. }
        )
    }

    fn naming(&self) -> Option<&Naming> {
        match self {
            Ty::Enum(e) => Some(&e.naming),
            Ty::Fixed(f) => Some(&f.naming),
            Ty::Record(r) => Some(&r.naming),
            _ => None,
        }
    }

    fn naming_mut(&mut self) -> Option<&mut Naming> {
        match self {
            Ty::Enum(e) => Some(&mut e.naming),
            Ty::Fixed(f) => Some(&mut f.naming),
            Ty::Record(r) => Some(&mut r.naming),
            _ => None,
        }
    }

    fn json(&self) -> Json {
        Render::default().json(self)
    }

    fn schema(&self) -> Schema {
        parse(&self.json())
    }

    /// The schema with a full definition at every use of a named type, for apache-avro's schema
    /// checker, which does not look references up: each definition after the first is put in a
    /// namespace of its own, and names are compared unqualified.
    fn expanded_schema(&self) -> Schema {
        let mut render = Render {
            copies: Some(0),
            ..Render::default()
        };
        parse(&render.json(self))
    }
}

fn parse(json: &Json) -> Schema {
    let text = json.to_string();
    Schema::parse_str(&text).unwrap_or_else(|e| panic!("generated schema {text}: {e}"))
}

/// Writes a [`Ty`] as schema JSON: a named type in full where it is first used, then by name.
#[derive(Default)]
struct Render {
    defined: std::collections::HashSet<String>,
    /// Counts the copies when every use is written in full.
    copies: Option<usize>,
}

impl Render {
    fn naming(&mut self, object: &mut serde_json::Map<String, Json>, naming: &Naming) -> bool {
        let fullname = match &naming.namespace {
            Some(namespace) => format!("{namespace}.{}", naming.name),
            None => naming.name.clone(),
        };
        let mut namespace = naming.namespace.clone();
        if !self.defined.insert(fullname.clone()) {
            match &mut self.copies {
                None => return false,
                Some(copies) => {
                    *copies += 1;
                    namespace = Some(format!("copy{copies}"));
                }
            }
        }
        object.insert("name".into(), naming.name.clone().into());
        if let Some(namespace) = namespace {
            object.insert("namespace".into(), namespace.into());
        }
        if !naming.aliases.is_empty() {
            object.insert("aliases".into(), json!(naming.aliases));
        }
        true
    }

    fn json(&mut self, ty: &Ty) -> Json {
        let mut object = serde_json::Map::new();
        if let Some(naming) = ty.naming()
            && !self.naming(&mut object, naming)
        {
            return match &naming.namespace {
                Some(namespace) => format!("{namespace}.{}", naming.name).into(),
                None => naming.name.clone().into(),
            };
        }
        match ty {
            Ty::Union(branches) => return branches.iter().map(|b| self.json(b)).collect(),
            Ty::TimestampMillis => {
                return json!({"type": "long", "logicalType": "timestamp-millis"});
            }
            Ty::TimestampMicros => {
                return json!({"type": "long", "logicalType": "timestamp-micros"});
            }
            Ty::Date => return json!({"type": "int", "logicalType": "date"}),
            Ty::Uuid => return json!({"type": "string", "logicalType": "uuid"}),
            Ty::Decimal { precision, scale } => {
                return json!({"type": "bytes", "logicalType": "decimal",
                    "precision": precision, "scale": scale});
            }
            Ty::Enum(e) => {
                object.insert("type".into(), "enum".into());
                object.insert("symbols".into(), json!(e.symbols));
                if let Some(default) = &e.default {
                    object.insert("default".into(), default.clone().into());
                }
            }
            Ty::Fixed(f) => {
                object.insert("type".into(), "fixed".into());
                object.insert("size".into(), f.size.into());
            }
            Ty::Array(items) => {
                object.insert("type".into(), "array".into());
                object.insert("items".into(), self.json(items));
            }
            Ty::Map(values) => {
                object.insert("type".into(), "map".into());
                object.insert("values".into(), self.json(values));
            }
            Ty::Record(r) => {
                object.insert("type".into(), "record".into());
                let fields: Vec<Json> = r
                    .fields
                    .iter()
                    .map(|field| {
                        let mut object = serde_json::Map::new();
                        object.insert("name".into(), field.name.clone().into());
                        object.insert("type".into(), self.json(&field.ty));
                        if let Some(default) = &field.default {
                            object.insert("default".into(), default.clone());
                        }
                        if !field.aliases.is_empty() {
                            object.insert("aliases".into(), json!(field.aliases));
                        }
                        Json::Object(object)
                    })
                    .collect();
                object.insert("fields".into(), fields.into());
            }
            primitive => return primitive.kind().into(),
        }
        Json::Object(object)
    }
}

/// A union of `branches`, without nested unions and with one branch of each kind.
fn union_of(branches: impl IntoIterator<Item = Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    for branch in branches {
        let flat = match branch {
            Ty::Union(inner) => inner,
            other => vec![other],
        };
        for branch in flat {
            if out.iter().all(|b| b.kind() != branch.kind()) {
                out.push(branch);
            }
        }
    }
    Ty::Union(out)
}

fn record_of(types: Vec<Ty>) -> Ty {
    let fields = types
        .into_iter()
        .enumerate()
        .map(|(at, ty)| FieldTy {
            name: format!("f{at}"),
            aliases: Vec::new(),
            ty,
            default: None,
        })
        .collect();
    Ty::Record(RecordTy {
        naming: Naming::default(),
        fields,
    })
}

/// Gives every named type a name of its own (`R0`, `E1`, `F2`...) and replaces each
/// [`Ty::Reuse`] with a copy of a named type defined before it (a null when there is none).
fn name_types(ty: &mut Ty, defined: &mut Vec<Ty>) {
    match ty {
        Ty::Reuse(pick) => {
            *ty = match defined.len() {
                0 => Ty::Null,
                n => defined[*pick % n].clone(),
            };
            return;
        }
        Ty::Array(inner) | Ty::Map(inner) => name_types(inner, defined),
        Ty::Record(r) => r
            .fields
            .iter_mut()
            .for_each(|f| name_types(&mut f.ty, defined)),
        Ty::Union(branches) => {
            branches.iter_mut().for_each(|b| name_types(b, defined));
            // A reused type may be of a kind the union holds already.
            *ty = union_of(std::mem::take(branches));
        }
        _ => {}
    }
    let prefix = match ty {
        Ty::Enum(_) => "E",
        Ty::Fixed(_) => "F",
        _ => "R",
    };
    let count = defined.len();
    if let Some(naming) = ty.naming_mut() {
        naming.name = format!("{prefix}{count}");
        defined.push(ty.clone());
    }
}

fn enum_type() -> impl Strategy<Value = Ty> {
    (
        Just(SYMBOLS.map(String::from).to_vec()).prop_shuffle(),
        1..=4usize,
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(|(pool, count, default)| {
            let symbols = pool[..count].to_vec();
            let default = default.map(|at| symbols[at.index(count)].clone());
            Ty::Enum(EnumTy {
                naming: Naming::default(),
                symbols,
                default,
            })
        })
}

fn writer_type() -> impl Strategy<Value = Ty> {
    let leaf = prop_oneof![
        Just(Ty::Null),
        Just(Ty::Boolean),
        Just(Ty::Int),
        Just(Ty::Long),
        Just(Ty::Float),
        Just(Ty::Double),
        Just(Ty::Bytes),
        Just(Ty::String),
        enum_type(),
        (1..5usize).prop_map(|size| Ty::Fixed(FixedTy {
            naming: Naming::default(),
            size
        })),
        any::<usize>().prop_map(Ty::Reuse),
        prop_oneof![
            Just(Ty::TimestampMillis),
            Just(Ty::TimestampMicros),
            Just(Ty::Date),
            Just(Ty::Uuid),
            (prop::sample::select(&[2usize, 4, 6][..]), 0..3usize)
                .prop_map(|(precision, scale)| Ty::Decimal { precision, scale }),
        ],
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| Ty::Array(Box::new(t))),
            inner.clone().prop_map(|t| Ty::Map(Box::new(t))),
            vec(inner.clone(), 0..4).prop_map(record_of),
            inner.clone().prop_map(|t| union_of([Ty::Null, t])),
            vec(inner, 1..4).prop_map(union_of),
        ]
    })
}

/// A writer record schema: the top of every generated case.
fn writer_schema() -> impl Strategy<Value = Ty> {
    vec(writer_type(), 1..6).prop_map(|types| {
        let mut ty = record_of(types);
        name_types(&mut ty, &mut Vec::new());
        ty
    })
}

/// The decimal digits apache-avro 0.22 takes `len` bytes to hold: it refuses to resolve a
/// decimal of fewer bytes than its precision needs, whatever the number.
fn digits(len: usize) -> usize {
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    (2f64.powi(8 * len - 1) - 1.0).log10().floor().max(0.0) as usize
}

/// Values of `ty`, as apache-avro's encoder takes them.
fn value_of(ty: &Ty) -> BoxedStrategy<Value> {
    match ty {
        Ty::Null => Just(Value::Null).boxed(),
        Ty::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        Ty::Int => prop_oneof![any::<i32>(), -200..200i32]
            .prop_map(Value::Int)
            .boxed(),
        Ty::Long => prop_oneof![any::<i64>(), any::<i32>().prop_map(i64::from), -200..200i64]
            .prop_map(Value::Long)
            .boxed(),
        Ty::Float => any::<f32>().prop_map(Value::Float).boxed(),
        Ty::Double => prop_oneof![any::<f64>(), any::<f32>().prop_map(f64::from)]
            .prop_map(Value::Double)
            .boxed(),
        // Mostly text, some not UTF-8, as a `bytes` field may hold.
        Ty::Bytes => prop_oneof![
            3 => "[a-z0-9é]{0,6}".prop_map(String::into_bytes),
            1 => vec(any::<u8>(), 0..6),
        ]
        .prop_map(Value::Bytes)
        .boxed(),
        Ty::String => "[a-z0-9é]{0,6}".prop_map(Value::String).boxed(),
        Ty::TimestampMillis => any::<i64>().prop_map(Value::TimestampMillis).boxed(),
        Ty::TimestampMicros => any::<i64>().prop_map(Value::TimestampMicros).boxed(),
        Ty::Date => any::<i32>().prop_map(Value::Date).boxed(),
        Ty::Uuid => any::<u128>()
            .prop_map(|n| Value::Uuid(uuid::Uuid::from_u128(n)))
            .boxed(),
        // At least as many bytes as apache-avro wants for the precision (see `digits`).
        Ty::Decimal { precision, .. } => {
            let least = (1..).find(|&len| digits(len) >= *precision).unwrap_or(1);
            vec(any::<u8>(), least..least + 3)
                .prop_map(|bytes| Value::Decimal(apache_avro::Decimal::from(bytes)))
                .boxed()
        }
        Ty::Enum(e) => {
            let symbols = e.symbols.clone();
            (0..symbols.len())
                .prop_map(move |at| Value::Enum(at as u32, symbols[at].clone()))
                .boxed()
        }
        Ty::Fixed(f) => {
            let size = f.size;
            vec(any::<u8>(), size)
                .prop_map(move |bytes| Value::Fixed(size, bytes))
                .boxed()
        }
        Ty::Array(items) => vec(value_of(items), 0..4).prop_map(Value::Array).boxed(),
        Ty::Map(values) => hash_map("[a-c]{0,2}", value_of(values), 0..4)
            .prop_map(Value::Map)
            .boxed(),
        Ty::Record(r) => {
            let names: Vec<String> = r.fields.iter().map(|f| f.name.clone()).collect();
            let values: Vec<BoxedStrategy<Value>> =
                r.fields.iter().map(|f| value_of(&f.ty)).collect();
            values
                .prop_map(move |values| Value::Record(names.iter().cloned().zip(values).collect()))
                .boxed()
        }
        Ty::Reuse(_) => unreachable!("replaced by name_types"),
        Ty::Union(branches) => {
            let options: Vec<BoxedStrategy<Value>> = branches
                .iter()
                .enumerate()
                .map(|(at, branch)| {
                    value_of(branch)
                        .prop_map(move |v| Value::Union(at as u32, Box::new(v)))
                        .boxed()
                })
                .collect();
            proptest::strategy::Union::new(options).boxed()
        }
    }
}

/// The choices that derive a reader schema from a writer schema. Each is a byte; when they run
/// out every further choice is 0, which never changes anything, so proptest shrinks a failing
/// evolution towards fewer changes.
struct Tape<'a> {
    choices: &'a [u8],
    at: usize,
    /// Names given to named types the reader adds.
    fresh: usize,
    /// The reader's version of each writer named type and its aliased one, by name: a type
    /// used in several places changes the same way in all of them.
    named: HashMap<String, (Ty, Ty)>,
}

impl Tape<'_> {
    fn new(choices: &[u8]) -> Tape<'_> {
        Tape {
            choices,
            at: 0,
            fresh: 0,
            named: HashMap::new(),
        }
    }

    fn next(&mut self) -> u8 {
        let choice = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        choice
    }

    /// True about `per256` times in 256.
    fn chance(&mut self, per256: u16) -> bool {
        u16::from(self.next()) + per256 > 255
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::from(self.next()) % n.max(1)
    }

    fn fresh_name(&mut self) -> String {
        self.fresh += 1;
        format!("N{}", self.fresh)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.pick(i + 1);
            items.swap(i, j);
        }
    }

    /// A small type the reader adds: a new field's or a new union branch's.
    fn new_type(&mut self, depth: usize) -> Ty {
        // Nested ones are not compound, so that a union gains no union.
        let kinds = if depth == 0 { 11 } else { 10 };
        match self.pick(kinds) {
            0 => Ty::Null,
            1 => Ty::Boolean,
            2 => Ty::Int,
            3 => Ty::Long,
            4 => Ty::Float,
            5 => Ty::Double,
            6 => Ty::Bytes,
            7 => Ty::String,
            8 => {
                let count = 1 + self.pick(3);
                let mut symbols = SYMBOLS.map(String::from).to_vec();
                self.shuffle(&mut symbols);
                symbols.truncate(count);
                Ty::Enum(EnumTy {
                    naming: self.fresh_naming(),
                    default: None,
                    symbols,
                })
            }
            9 => Ty::Fixed(FixedTy {
                naming: self.fresh_naming(),
                size: 1 + self.pick(4),
            }),
            _ => match self.pick(5) {
                0 => Ty::Array(Box::new(self.new_type(depth + 1))),
                1 => Ty::Map(Box::new(self.new_type(depth + 1))),
                2 => union_of([Ty::Null, self.new_type(depth + 1)]),
                // Its default is of the first branch.
                3 => union_of([self.new_type(depth + 1), Ty::Null]),
                _ => {
                    let fields = (0..1 + self.pick(2))
                        .map(|at| FieldTy {
                            name: format!("n{at}"),
                            aliases: Vec::new(),
                            ty: self.new_type(depth + 1),
                            default: None,
                        })
                        .collect();
                    Ty::Record(RecordTy {
                        naming: self.fresh_naming(),
                        fields,
                    })
                }
            },
        }
    }

    fn fresh_naming(&mut self) -> Naming {
        Naming {
            name: self.fresh_name(),
            ..Naming::default()
        }
    }

    /// A default for a field of type `ty`: ASCII text only, and of a union's first branch (see
    /// the module's header).
    fn default_of(&mut self, ty: &Ty) -> Json {
        const TEXT: [&str; 4] = ["", "a", "xyz", "Q9"];
        match ty {
            Ty::Null => Json::Null,
            Ty::Boolean => json!(self.pick(2) == 1),
            Ty::Int => json!(self.pick(400) as i64 - 200),
            Ty::Long => json!([0, -1, 1 << 40, i64::MIN][self.pick(4)]),
            Ty::Float | Ty::Double => json!([0.0, -1.5, 0.1, 1e10][self.pick(4)]),
            Ty::Bytes | Ty::String => json!(TEXT[self.pick(TEXT.len())]),
            Ty::TimestampMillis | Ty::TimestampMicros | Ty::Date => json!(0),
            Ty::Uuid => json!("6c3b2b0e-57b1-4bfa-9d0c-0a4c5f4d2b11"),
            Ty::Decimal { .. } => json!("\u{1}"),
            Ty::Enum(e) => json!(e.symbols[self.pick(e.symbols.len())]),
            Ty::Fixed(f) => json!("abcdefgh".chars().cycle().take(f.size).collect::<String>()),
            Ty::Array(items) => match self.pick(2) {
                0 => json!([]),
                _ => json!([self.default_of(items)]),
            },
            Ty::Map(values) => match self.pick(2) {
                0 => json!({}),
                _ => json!({"k": self.default_of(values)}),
            },
            Ty::Record(r) => {
                let mut object = serde_json::Map::new();
                for field in &r.fields {
                    object.insert(field.name.clone(), self.default_of(&field.ty));
                }
                Json::Object(object)
            }
            Ty::Union(branches) => self.default_of(&branches[0]),
            Ty::Reuse(_) => unreachable!("replaced by name_types"),
        }
    }
}

/// A reader schema derived from a writer schema, and the writer schema with the reader's
/// aliases applied (renamed fields and types, encoded exactly as the writer schema).
struct Evolved {
    reader: Ty,
    aliased: Ty,
}

fn evolve_schema(writer: &Ty, choices: &[u8]) -> Evolved {
    let mut tape = Tape::new(choices);
    let (reader, aliased) = evolve(writer, &mut tape, false);
    Evolved { reader, aliased }
}

/// The reader's version of `writer` and the aliased writer; `in_union` when `writer` is a union
/// branch, which cannot become a union itself.
fn evolve(writer: &Ty, t: &mut Tape<'_>, in_union: bool) -> (Ty, Ty) {
    let (mut reader, aliased) = match writer {
        Ty::Union(branches) => return evolve_union(branches, t),
        Ty::Record(_) | Ty::Enum(_) | Ty::Fixed(_) => evolve_named(writer, t),
        Ty::Array(items) => {
            let (r, a) = evolve(items, t, false);
            let reader = if t.chance(8) {
                // Forbidden: an array read as a map.
                Ty::Map(Box::new(r))
            } else {
                Ty::Array(Box::new(r))
            };
            (reader, Ty::Array(Box::new(a)))
        }
        Ty::Map(values) => {
            let (r, a) = evolve(values, t, false);
            let reader = if t.chance(8) {
                Ty::Array(Box::new(r))
            } else {
                Ty::Map(Box::new(r))
            };
            (reader, Ty::Map(Box::new(a)))
        }
        primitive => (evolve_primitive(primitive, t), writer.clone()),
    };
    if matches!(writer, Ty::Fixed(_)) && t.chance(8) {
        // Forbidden: a fixed read as bytes or string.
        reader = [Ty::Bytes, Ty::String][t.pick(2)].clone();
    }
    if !in_union && t.chance(24) {
        // The reader takes the value into a union: with null, or with another type, in either
        // order.
        let other = if t.chance(128) {
            Ty::Null
        } else {
            t.new_type(1)
        };
        reader = if t.chance(128) {
            union_of([other, reader])
        } else {
            union_of([reader, other])
        };
    }
    (reader, aliased)
}

/// A record, enum or fixed type as the reader has it, the same wherever it is used.
fn evolve_named(writer: &Ty, t: &mut Tape<'_>) -> (Ty, Ty) {
    let name = writer.naming().map(|n| n.name.clone()).unwrap_or_default();
    if let Some(done) = t.named.get(&name) {
        return done.clone();
    }
    let (mut reader, mut aliased) = match writer {
        Ty::Record(r) => evolve_record(r, t),
        Ty::Enum(e) => (Ty::Enum(evolve_enum(e, t)), writer.clone()),
        Ty::Fixed(f) if t.chance(6) => {
            // Forbidden: another size.
            let resized = FixedTy {
                size: f.size + 1,
                ..f.clone()
            };
            (Ty::Fixed(resized), writer.clone())
        }
        _ => (writer.clone(), writer.clone()),
    };
    rename(&mut reader, &mut aliased, t);
    t.named.insert(name, (reader.clone(), aliased.clone()));
    (reader, aliased)
}

/// Promotions the specification allows, and changes it forbids.
fn evolve_primitive(writer: &Ty, t: &mut Tape<'_>) -> Ty {
    // Logical types resolve as their underlying types, but two decimals only with the same
    // precision and scale.
    let decimal = |precision, scale| Ty::Decimal { precision, scale };
    let (promotions, forbidden): (Vec<Ty>, Vec<Ty>) = match writer {
        Ty::Null => (vec![], vec![Ty::Boolean]),
        Ty::Boolean => (vec![], vec![Ty::Int, Ty::Null]),
        Ty::Int => (
            vec![
                Ty::Long,
                Ty::Float,
                Ty::Double,
                Ty::Date,
                Ty::TimestampMillis,
            ],
            vec![Ty::String, Ty::Boolean],
        ),
        Ty::Long => (
            vec![Ty::Float, Ty::Double, Ty::TimestampMillis],
            vec![Ty::Int, Ty::String, Ty::Date],
        ),
        Ty::Float => (vec![Ty::Double], vec![Ty::Int, Ty::Long]),
        Ty::Double => (vec![], vec![Ty::Float, Ty::Long]),
        Ty::Bytes => (
            vec![Ty::String, decimal(4, 2)],
            vec![Ty::Long, Ty::Array(Box::new(Ty::Int))],
        ),
        Ty::String => (
            vec![Ty::Bytes, Ty::Uuid],
            vec![Ty::Int, Ty::Enum(placeholder_enum())],
        ),
        Ty::TimestampMillis | Ty::TimestampMicros => (
            vec![
                Ty::Long,
                Ty::Double,
                Ty::TimestampMillis,
                Ty::TimestampMicros,
            ],
            vec![Ty::Int, Ty::Date],
        ),
        Ty::Date => (
            vec![Ty::Int, Ty::Long, Ty::TimestampMillis],
            vec![Ty::String],
        ),
        Ty::Uuid => (vec![Ty::String, Ty::Bytes], vec![Ty::Long]),
        Ty::Decimal { precision, scale } => (
            vec![Ty::Bytes, Ty::String],
            vec![
                decimal(*precision, scale + 1),
                decimal(precision + 2, *scale),
                Ty::Double,
            ],
        ),
        _ => (vec![], vec![]),
    };
    if !promotions.is_empty() && t.chance(48) {
        return promotions[t.pick(promotions.len())].clone();
    }
    if !forbidden.is_empty() && t.chance(8) {
        let mut changed = forbidden[t.pick(forbidden.len())].clone();
        if let Some(naming) = changed.naming_mut() {
            naming.name = t.fresh_name();
        }
        return changed;
    }
    writer.clone()
}

fn placeholder_enum() -> EnumTy {
    EnumTy {
        naming: Naming::default(),
        symbols: SYMBOLS.map(String::from).to_vec(),
        default: None,
    }
}

/// Symbols added, dropped (keeping at least one of the writer's) or reordered; the reader's
/// default symbol set or removed.
fn evolve_enum(writer: &EnumTy, t: &mut Tape<'_>) -> EnumTy {
    let mut symbols = writer.symbols.clone();
    if t.chance(32) {
        for symbol in SYMBOLS {
            if !symbols.iter().any(|s| s == symbol) && t.chance(96) {
                let at = t.pick(symbols.len() + 1);
                symbols.insert(at, symbol.to_owned());
            }
        }
    }
    if t.chance(32) {
        let keep = writer.symbols[t.pick(writer.symbols.len())].clone();
        symbols.retain(|symbol| *symbol == keep || !t.chance(96));
    }
    if t.chance(24) {
        t.shuffle(&mut symbols);
    }
    let mut default = writer.default.clone().filter(|d| symbols.contains(d));
    if t.chance(40) {
        default = match t.pick(2) {
            0 => None,
            _ => Some(symbols[t.pick(symbols.len())].clone()),
        };
    }
    EnumTy {
        naming: writer.naming.clone(),
        symbols,
        default,
    }
}

/// A named type renamed: with the old name as an alias (the aliased writer takes the new name),
/// without (forbidden), or, for an enum or fixed type, moved to another namespace (names match
/// unqualified; a record keeps its namespace, so that the names used inside it need none).
fn rename(reader: &mut Ty, aliased: &mut Ty, t: &mut Tape<'_>) {
    if !t.chance(16) {
        return;
    }
    let moves = !matches!(reader, Ty::Record(_));
    let (Some(naming), Some(aliased)) = (reader.naming_mut(), aliased.naming_mut()) else {
        return;
    };
    match t.pick(3) {
        0 => {
            let new = format!("{}x", naming.name);
            naming
                .aliases
                .push(std::mem::replace(&mut naming.name, new));
            aliased.name = naming.name.clone();
        }
        1 => naming.name = format!("{}y", naming.name),
        _ if moves => naming.namespace = Some("moved.elsewhere".to_owned()),
        _ => {}
    }
}

fn evolve_record(writer: &RecordTy, t: &mut Tape<'_>) -> (Ty, Ty) {
    let mut fields = Vec::new();
    let mut aliased_fields = Vec::new();
    for field in &writer.fields {
        let (ty, aliased_ty) = evolve(&field.ty, t, false);
        let mut aliased = FieldTy {
            ty: aliased_ty,
            ..field.clone()
        };
        if t.chance(20) {
            // Dropped by the reader.
            aliased_fields.push(aliased);
            continue;
        }
        let mut evolved = FieldTy {
            ty,
            ..field.clone()
        };
        if t.chance(16) {
            evolved.name = format!("{}r", field.name);
            evolved.aliases.push(field.name.clone());
            aliased.name = evolved.name.clone();
        }
        fields.push(evolved);
        aliased_fields.push(aliased);
    }
    let mut added = 0;
    while t.chance(40) {
        let ty = t.new_type(0);
        // Mostly with a default; without one the reader is refused.
        let default = (!t.chance(24)).then(|| t.default_of(&ty));
        let at = t.pick(fields.len() + 1);
        fields.insert(
            at,
            FieldTy {
                name: format!("g{added}"),
                aliases: Vec::new(),
                ty,
                default,
            },
        );
        added += 1;
    }
    if t.chance(32) {
        t.shuffle(&mut fields);
    }
    (
        Ty::Record(RecordTy {
            naming: writer.naming.clone(),
            fields,
        }),
        Ty::Record(RecordTy {
            naming: writer.naming.clone(),
            fields: aliased_fields,
        }),
    )
}

fn evolve_union(writer: &[Ty], t: &mut Tape<'_>) -> (Ty, Ty) {
    let evolved: Vec<(Ty, Ty)> = writer.iter().map(|b| evolve(b, t, true)).collect();
    let aliased = Ty::Union(evolved.iter().map(|(_, a)| a.clone()).collect());
    if t.chance(16) {
        // Collapsed to one branch: the writer's other branches are read only if they match it.
        let (reader, _) = evolved[t.pick(evolved.len())].clone();
        return (reader, aliased);
    }
    let mut branches: Vec<Ty> = Vec::new();
    for (reader, _) in evolved {
        // Narrowed: data of a dropped branch cannot be read.
        if !t.chance(24) {
            branches.push(reader);
        }
    }
    while t.chance(32) {
        // Widened.
        let at = t.pick(branches.len() + 1);
        branches.insert(at, t.new_type(1));
    }
    if t.chance(32) {
        t.shuffle(&mut branches);
    }
    if branches.is_empty() {
        branches.push(t.new_type(1));
    }
    (union_of(branches), aliased)
}

/// How the writer's and reader's types at one value may differ, by the specification: the same
/// type (named types by name), or a promotion.
fn conforms(wv: &Value, wt: &Ty, rv: &Value, rt: &Ty) -> Result<(), String> {
    let (wv, wt) = branch(wv, wt)?;
    let (rv, rt) = branch(rv, rt)?;
    let named = |w: &Naming, r: &Naming| {
        if w.name == r.name {
            Ok(())
        } else {
            Err(format!("the writer's {} was read as {}", w.name, r.name))
        }
    };
    match (wt, rt, wv, rv) {
        (Ty::Record(w), Ty::Record(r), Value::Record(wf), Value::Record(rf)) => {
            named(&w.naming, &r.naming)?;
            for (field, (_, value)) in r.fields.iter().zip(rf) {
                if let Some(at) = w.fields.iter().position(|f| f.name == field.name) {
                    conforms(&wf[at].1, &w.fields[at].ty, value, &field.ty)?;
                }
            }
            Ok(())
        }
        (Ty::Enum(w), Ty::Enum(r), _, _) => named(&w.naming, &r.naming),
        (Ty::Fixed(w), Ty::Fixed(r), _, _) if w.size == r.size => named(&w.naming, &r.naming),
        (Ty::Array(w), Ty::Array(r), Value::Array(wi), Value::Array(ri)) => {
            items_match(wi.is_empty(), w, r)?;
            if wi.len() != ri.len() {
                return Err("an array changed its length".to_owned());
            }
            wi.iter()
                .zip(ri)
                .try_for_each(|(wv, rv)| conforms(wv, w, rv, r))
        }
        (Ty::Map(w), Ty::Map(r), Value::Map(wm), Value::Map(rm)) => {
            items_match(wm.is_empty(), w, r)?;
            if wm.len() != rm.len() {
                return Err("a map changed its size".to_owned());
            }
            wm.iter().try_for_each(|(key, wv)| {
                let rv = rm.get(key).ok_or_else(|| format!("map key {key} lost"))?;
                conforms(wv, w, rv, r)
            })
        }
        (Ty::Decimal { .. }, Ty::Decimal { .. }, ..) if wt != rt => Err(format!(
            "the writer's {wt:?} was read as the reader's {rt:?}"
        )),
        _ if promotes(wt.kind(), rt.kind()) => Ok(()),
        _ => Err(format!(
            "the writer's {} ({wv:?}) was read as the reader's {} ({rv:?})",
            wt.kind(),
            rt.kind()
        )),
    }
}

/// The value and type of the union branch a value is of, if its type is a union.
fn branch<'v>(value: &'v Value, ty: &'v Ty) -> Result<(&'v Value, &'v Ty), String> {
    match (ty, value) {
        (Ty::Union(branches), Value::Union(at, inner)) => branches
            .get(*at as usize)
            .map(|b| (&**inner, b))
            .ok_or_else(|| format!("union branch {at} out of range")),
        (Ty::Union(_), _) => Err(format!("{value:?} is not a union value")),
        _ => Ok((value, ty)),
    }
}

/// Whether the specification reads a primitive of the writer's kind as one of the reader's: the
/// same, or a promotion. Logical types go by their underlying kind.
fn promotes(writer: &str, reader: &str) -> bool {
    const PRIMITIVES: [&str; 8] = [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    PRIMITIVES.contains(&writer) && writer == reader
        || matches!(
            (writer, reader),
            ("int", "long" | "float" | "double")
                | ("long", "float" | "double")
                | ("float", "double")
                | ("string", "bytes")
                | ("bytes", "string")
        )
}

/// Whether the datum reaches a value apache-avro 0.22 resolves otherwise than the
/// specification: it refuses a value of a logical type read as another type (it resolves a
/// `timestamp-millis` value only as a `timestamp-millis`, say) and bytes read as a decimal of a
/// precision it takes more bytes for (see [`digits`]), and it reads a string as a decimal by
/// its code points (as a JSON default is written) where the promotion to bytes takes its UTF-8.
/// `rv` and `rt` are ours.
fn they_mishandle_logical(wv: &Value, wt: &Ty, rv: &Value, rt: &Ty) -> bool {
    let (Ok((wv, wt)), Ok((rv, rt))) = (branch(wv, wt), branch(rv, rt)) else {
        return false;
    };
    match (wt, rt, wv, rv) {
        (Ty::Record(w), Ty::Record(r), Value::Record(wf), Value::Record(rf)) => {
            r.fields.iter().zip(rf).any(|(field, (_, value))| {
                w.fields
                    .iter()
                    .position(|f| f.name == field.name)
                    .is_some_and(|at| {
                        they_mishandle_logical(&wf[at].1, &w.fields[at].ty, value, &field.ty)
                    })
            })
        }
        (Ty::Array(w), Ty::Array(r), Value::Array(wi), Value::Array(ri)) => wi
            .iter()
            .zip(ri)
            .any(|(wv, rv)| they_mishandle_logical(wv, w, rv, r)),
        (Ty::Map(w), Ty::Map(r), Value::Map(wm), Value::Map(rm)) => wm.iter().any(|(key, wv)| {
            rm.get(key)
                .is_some_and(|rv| they_mishandle_logical(wv, w, rv, r))
        }),
        (Ty::Bytes, Ty::Decimal { precision, .. }, Value::Bytes(bytes), _) => {
            digits(bytes.len()) < *precision
        }
        (Ty::String, Ty::Decimal { .. }, Value::String(text), _) => !text.is_ascii(),
        _ => wt.is_logical() && wt != rt,
    }
}

/// Arrays and maps match when their items do, whether or not a datum holds any: items are
/// checked one by one, and the types of an empty collection's by apache-avro's schema checker
/// (which follows the specification where the generator goes).
fn items_match(empty: bool, writer: &Ty, reader: &Ty) -> Result<(), String> {
    if !empty {
        return Ok(());
    }
    SchemaCompatibility::can_read(&writer.expanded_schema(), &reader.expanded_schema())
        .map(drop)
        .map_err(|e| format!("an empty collection of items the reader cannot read: {e}"))
}

/// Values equal, floats bit for bit but any NaN equal to any NaN.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan()
        }
        (Value::Double(x), Value::Double(y)) => {
            x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan()
        }
        (Value::Union(i, x), Value::Union(j, y)) => i == j && same_value(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::Record(x), Value::Record(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((n, v), (m, w))| n == m && same_value(v, w))
        }
        _ => a == b,
    }
}

fn encode(schema: &Schema, value: &Value) -> Vec<u8> {
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value.clone()))
        .unwrap_or_else(|e| panic!("{value:?} encodes: {e}"))
}

/// apache-avro reads `datum`, resolving it to `reader` if given; the whole datum.
fn apache_read(writer: &Schema, reader: Option<&Schema>, datum: &[u8]) -> Result<Value, String> {
    let mut rest = datum;
    let value = GenericDatumReader::builder(writer)
        .maybe_reader_schema(reader)
        .build()
        .and_then(|r| r.read_value(&mut rest))
        .map_err(|e| e.to_string())?;
    match rest.len() {
        0 => Ok(value),
        left => Err(format!("{left} bytes left after the datum")),
    }
}

/// Writes `value` of `ty` in Avro's binary encoding as no encoder in this test does by itself:
/// arrays and maps in blocks of the sizes `t` chooses, some with a negative item count followed
/// by the block's size in bytes, and some numbers in more bytes than they need (up to the 10 a
/// long may take). It is the same datum: both sides must read it as they read apache-avro's.
fn encode_in_blocks(value: &Value, ty: &Ty, t: &mut Tape<'_>, out: &mut Vec<u8>) {
    fn number(out: &mut Vec<u8>, n: i64, t: &mut Tape<'_>) {
        let start = out.len();
        write_long(out, n);
        let len = out.len() - start;
        if len < 10 && t.chance(16) {
            let extra = 1 + t.pick(10 - len);
            out[start + len - 1] |= 0x80;
            out.extend(std::iter::repeat_n(0x80, extra - 1));
            out.push(0);
        }
    }
    fn sized(out: &mut Vec<u8>, bytes: &[u8], t: &mut Tape<'_>) {
        number(out, bytes.len() as i64, t);
        out.extend_from_slice(bytes);
    }
    fn blocks(out: &mut Vec<u8>, items: Vec<Vec<u8>>, t: &mut Tape<'_>) {
        let mut rest = &items[..];
        while !rest.is_empty() {
            let count = rest.len() - t.pick(rest.len());
            let (block, tail) = rest.split_at(count);
            let bytes = block.concat();
            if t.chance(96) {
                number(out, -(count as i64), t);
                number(out, bytes.len() as i64, t);
            } else {
                number(out, count as i64, t);
            }
            out.extend_from_slice(&bytes);
            rest = tail;
        }
        number(out, 0, t);
    }
    let item = |value: &Value, ty: &Ty, t: &mut Tape<'_>| {
        let mut bytes = Vec::new();
        encode_in_blocks(value, ty, t, &mut bytes);
        bytes
    };
    match (ty, value) {
        (Ty::Union(branches), Value::Union(at, inner)) => {
            number(out, i64::from(*at), t);
            encode_in_blocks(inner, &branches[*at as usize], t, out);
        }
        (Ty::Null, Value::Null) => {}
        (Ty::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (Ty::Int, Value::Int(n)) => number(out, i64::from(*n), t),
        (Ty::Long, Value::Long(n)) => number(out, *n, t),
        (Ty::Float, Value::Float(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Ty::Double, Value::Double(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Ty::Bytes, Value::Bytes(bytes)) => sized(out, bytes, t),
        (Ty::String, Value::String(text)) => sized(out, text.as_bytes(), t),
        (Ty::TimestampMillis, Value::TimestampMillis(n))
        | (Ty::TimestampMicros, Value::TimestampMicros(n)) => number(out, *n, t),
        (Ty::Date, Value::Date(n)) => number(out, i64::from(*n), t),
        (Ty::Uuid, Value::Uuid(uuid)) => sized(out, uuid.to_string().as_bytes(), t),
        (Ty::Decimal { .. }, Value::Decimal(decimal)) => {
            let bytes = <Vec<u8>>::try_from(decimal).expect("a decimal's bytes");
            sized(out, &bytes, t);
        }
        (Ty::Enum(_), Value::Enum(at, _)) => number(out, i64::from(*at), t),
        (Ty::Fixed(_), Value::Fixed(_, bytes)) => out.extend_from_slice(bytes),
        (Ty::Record(r), Value::Record(values)) => {
            for (field, (_, value)) in r.fields.iter().zip(values) {
                encode_in_blocks(value, &field.ty, t, out);
            }
        }
        (Ty::Array(items), Value::Array(values)) => {
            let items = values.iter().map(|v| item(v, items, t)).collect();
            blocks(out, items, t);
        }
        (Ty::Map(values), Value::Map(entries)) => {
            let items = entries
                .iter()
                .map(|(key, value)| {
                    let mut bytes = Vec::new();
                    sized(&mut bytes, key.as_bytes(), t);
                    bytes.extend(item(value, values, t));
                    bytes
                })
                .collect();
            blocks(out, items, t);
        }
        _ => panic!("{value:?} is not a value of {ty:?}"),
    }
}

/// Why our side did not read a datum.
#[derive(Debug)]
enum Refusal {
    Compile(String),
    Rewrite(RewriteError),
    /// The rewritten bytes do not read with the reader schema.
    Decode(String),
}

impl Refusal {
    fn reason(&self) -> String {
        match self {
            Refusal::Compile(why) => format!("not compiled: {why}"),
            Refusal::Rewrite(error) => format!("not rewritten: {error:?}"),
            Refusal::Decode(why) => format!("rewritten, but the output does not read: {why}"),
        }
    }
}

fn ours(
    resolution: &Result<Resolution, String>,
    reader: &Schema,
    datum: &[u8],
) -> Result<Value, Refusal> {
    let resolution = resolution
        .as_ref()
        .map_err(|e| Refusal::Compile(e.clone()))?;
    let mut out = Vec::new();
    resolution
        .rewrite(datum, &mut out)
        .map_err(Refusal::Rewrite)?;
    apache_read(reader, None, &out).map_err(Refusal::Decode)
}

/// One generated (or hand-written) evolution with its data.
struct Case {
    writer: Ty,
    reader: Ty,
    aliased: Ty,
    writer_schema: Schema,
    reader_schema: Schema,
    aliased_schema: Schema,
    resolution: Result<Resolution, String>,
}

impl Case {
    fn new(writer: Ty, evolved: Evolved) -> Case {
        let writer_schema = writer.schema();
        let reader_schema = evolved.reader.schema();
        let aliased_schema = evolved.aliased.schema();
        let resolution = Resolution::compile(&writer_schema, &reader_schema);
        Case {
            writer,
            reader: evolved.reader,
            aliased: evolved.aliased,
            writer_schema,
            reader_schema,
            aliased_schema,
            resolution,
        }
    }

    fn describe(&self) -> String {
        format!(
            "\nwriter: {}\nreader: {}\naliased writer: {}\nours: {:?}",
            self.writer.json(),
            self.reader.json(),
            self.aliased.json(),
            self.resolution.as_ref().map(|_| "compiles"),
        )
    }

    /// Whether the pair can be compiled at all is apache-avro's schema checker's verdict too.
    fn judge_schemas(&self) -> Result<(), String> {
        let theirs = SchemaCompatibility::can_read(
            &self.aliased.expanded_schema(),
            &self.reader.expanded_schema(),
        );
        if self.resolution.is_ok() != theirs.is_ok() {
            return Err(format!(
                "compiling: ours {:?}, apache-avro's schema checker {theirs:?}{}",
                self.resolution.as_ref().err(),
                self.describe()
            ));
        }
        Ok(())
    }

    /// Reads one valid datum of the writer schema both ways; see the module's header.
    fn judge(&self, datum: &[u8]) -> Result<Verdict, String> {
        let fail = |what: String| Err(format!("{what}\ndatum: {datum:?}{}", self.describe()));
        let written = apache_read(&self.aliased_schema, None, datum)
            .map_err(|e| format!("the writer's own datum does not read: {e}"))?;
        let theirs = apache_read(&self.aliased_schema, Some(&self.reader_schema), datum);
        let ours = ours(&self.resolution, &self.reader_schema, datum);
        let strict = |value: &Value| conforms(&written, &self.aliased, value, &self.reader);
        if let (Ok(resolution), Ok(value)) = (&self.resolution, &ours)
            && resolution.is_identity()
        {
            let direct = apache_read(&self.reader_schema, None, datum);
            if !direct.as_ref().is_ok_and(|d| same_value(d, value)) {
                return fail(format!(
                    "an identity resolution, but read directly: {direct:?}"
                ));
            }
        }
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                if let Err(why) = strict(a) {
                    return fail(format!("ours broke the specification: {why}; ours {a:?}"));
                }
                match strict(b) {
                    Ok(()) if !same_value(a, b) => {
                        if they_mishandle_logical(&written, &self.aliased, a, &self.reader) {
                            Ok(Verdict::TheyMishandledLogical)
                        } else {
                            fail(format!("ours {a:?}\ntheirs {b:?}"))
                        }
                    }
                    Ok(()) => Ok(Verdict::Same),
                    Err(_) => Ok(Verdict::TheyWereLenient),
                }
            }
            (Err(Refusal::Compile(_)), Ok(_)) => {
                // The schema checker agreed (judge_schemas); apache-avro's datum resolution
                // passes what this datum does not reach or reads it leniently.
                Ok(Verdict::TheyWereLenient)
            }
            (Err(Refusal::Rewrite(RewriteError::Malformed(why))), _) => {
                fail(format!("ours called a valid datum malformed: {why}"))
            }
            (Err(refusal), Ok(b)) => match strict(b) {
                Ok(()) => fail(format!("ours {}\ntheirs {b:?}", refusal.reason())),
                Err(_) => Ok(Verdict::TheyWereLenient),
            },
            (Ok(a), Err(_)) if they_mishandle_logical(&written, &self.aliased, a, &self.reader) => {
                Ok(Verdict::TheyMishandledLogical)
            }
            (Ok(a), Err(e)) => fail(format!("ours {a:?}\ntheirs refused: {e}")),
            (Err(_), Err(_)) => Ok(Verdict::BothRefused),
        }
    }

    /// Reads a damaged datum both ways: ours ends in a value or a typed error, never a panic;
    /// a cut or lengthened datum is refused by both; a value read by both is the same.
    fn judge_damaged(&self, datum: &[u8], must_refuse: bool) -> Result<(), String> {
        let theirs = apache_read(&self.aliased_schema, Some(&self.reader_schema), datum);
        let ours = ours(&self.resolution, &self.reader_schema, datum);
        let fail = |what: String| Err(format!("{what}\ndamaged: {datum:?}{}", self.describe()));
        if must_refuse && (ours.is_ok() || theirs.is_ok() && !self.invented(datum)) {
            return fail(format!("ours {ours:?}\ntheirs {theirs:?}"));
        }
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            let written = apache_read(&self.aliased_schema, None, datum)
                .map_err(|e| format!("read with the reader schema but not the writer's: {e}"))?;
            let strict = |value: &Value| conforms(&written, &self.aliased, value, &self.reader);
            if strict(b).is_ok()
                && !same_value(a, b)
                && !they_mishandle_logical(&written, &self.aliased, a, &self.reader)
            {
                return fail(format!("ours {a:?}\ntheirs {b:?}"));
            }
        }
        Ok(())
    }

    /// apache-avro 0.22 reads a union index at the end of the input as branch 0 holding null,
    /// so it reads some cut datums: the value it read then takes more bytes than there are (or
    /// cannot be written at all, when branch 0 is not null).
    fn invented(&self, datum: &[u8]) -> bool {
        let Ok(value) = apache_read(&self.writer_schema, None, datum) else {
            return false;
        };
        GenericDatumWriter::builder(&self.writer_schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .is_ok_and(|bytes| bytes.len() == datum.len())
            .not()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Both read the same value.
    Same,
    /// Both refused.
    BothRefused,
    /// apache-avro read what the specification refuses; ours was checked against the
    /// specification instead.
    TheyWereLenient,
    /// apache-avro refused or misread a logical-typed value (see [`they_mishandle_logical`]);
    /// ours was checked against the specification.
    TheyMishandledLogical,
}

fn generated() -> impl Strategy<Value = (Ty, Vec<u8>, Vec<Value>)> {
    (writer_schema(), vec(any::<u8>(), 0..128)).prop_flat_map(|(writer, choices)| {
        let values = vec(value_of(&writer), 1..4);
        (Just(writer), Just(choices), values)
    })
}

/// How a datum is damaged.
#[derive(Debug, Clone)]
enum Damage {
    Byte(prop::sample::Index, u8),
    Cut(prop::sample::Index),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, b)| Damage::Byte(at, b)),
        1 => any::<prop::sample::Index>().prop_map(Damage::Cut),
        1 => vec(any::<u8>(), 1..4).prop_map(Damage::Append),
    ]
}

proptest! {
    #[test]
    fn resolutions_agree_with_apache_avro(
        (writer, choices, values) in generated(),
        blocking in vec(any::<u8>(), 0..32),
    ) {
        let evolved = evolve_schema(&writer, &choices);
        let case = Case::new(writer, evolved);
        case.judge_schemas().map_err(TestCaseError::fail)?;
        let mut blocking = Tape::new(&blocking);
        for value in &values {
            let datum = encode(&case.writer_schema, value);
            let verdict = case.judge(&datum).map_err(TestCaseError::fail)?;
            // The same datum written otherwise is read the same way.
            let mut blocked = Vec::new();
            encode_in_blocks(value, &case.writer, &mut blocking, &mut blocked);
            let again = case.judge(&blocked).map_err(TestCaseError::fail)?;
            prop_assert_eq!(verdict, again, "blocked: {:?}{}", blocked, case.describe());
            let (ours_once, ours_again) = (
                ours(&case.resolution, &case.reader_schema, &datum).ok(),
                ours(&case.resolution, &case.reader_schema, &blocked).ok(),
            );
            let same = match (&ours_once, &ours_again) {
                (Some(a), Some(b)) => same_value(a, b),
                (a, b) => a.is_none() && b.is_none(),
            };
            prop_assert!(same, "blocked: {:?}{}", blocked, case.describe());
        }
    }

    #[test]
    fn damaged_datums_are_refused_or_read_alike(
        (writer, choices, values) in generated(),
        damage in damage(),
    ) {
        let evolved = evolve_schema(&writer, &choices);
        let case = Case::new(writer, evolved);
        let mut datum = encode(&case.writer_schema, &values[0]);
        let must_refuse = match &damage {
            Damage::Byte(at, byte) => {
                if !datum.is_empty() {
                    let at = at.index(datum.len());
                    datum[at] = *byte;
                }
                false
            }
            // Avro's binary encoding is self-delimiting: no proper prefix of a datum is one.
            Damage::Cut(at) => {
                if datum.is_empty() {
                    return Ok(());
                }
                datum.truncate(at.index(datum.len()));
                true
            }
            Damage::Append(more) => {
                datum.extend_from_slice(more);
                true
            }
        };
        case.judge_damaged(&datum, must_refuse).map_err(TestCaseError::fail)?;
    }
}

impl Ty {
    /// Reads hand-written schema JSON; a named type used again is written by its name.
    fn from_json(json: &Json) -> Ty {
        Ty::read(json, &mut HashMap::new())
    }

    fn read(json: &Json, defined: &mut HashMap<String, Ty>) -> Ty {
        let object = match json {
            Json::Array(branches) => {
                return Ty::Union(branches.iter().map(|b| Ty::read(b, defined)).collect());
            }
            Json::Object(object) => object,
            other => {
                let name = other.as_str().expect("a type name");
                return match name {
                    "null" => Ty::Null,
                    "boolean" => Ty::Boolean,
                    "int" => Ty::Int,
                    "long" => Ty::Long,
                    "float" => Ty::Float,
                    "double" => Ty::Double,
                    "bytes" => Ty::Bytes,
                    "string" => Ty::String,
                    name => defined[name].clone(),
                };
            }
        };
        let logical = object.get("logicalType").and_then(Json::as_str);
        let number = |key: &str| object[key].as_u64().expect("a number") as usize;
        let ty = match (object["type"].as_str().expect("a type"), logical) {
            ("long", Some("timestamp-millis")) => Ty::TimestampMillis,
            ("long", Some("timestamp-micros")) => Ty::TimestampMicros,
            ("int", Some("date")) => Ty::Date,
            ("string", Some("uuid")) => Ty::Uuid,
            ("bytes", Some("decimal")) => Ty::Decimal {
                precision: number("precision"),
                scale: number("scale"),
            },
            (kind, _) => Ty::read_kind(kind, object, defined),
        };
        if let Some(naming) = ty.naming() {
            defined.insert(naming.name.clone(), ty.clone());
        }
        ty
    }

    fn read_kind(
        kind: &str,
        object: &serde_json::Map<String, Json>,
        defined: &mut HashMap<String, Ty>,
    ) -> Ty {
        let naming = |object: &serde_json::Map<String, Json>| Naming {
            name: object["name"].as_str().expect("a name").to_owned(),
            namespace: object
                .get("namespace")
                .and_then(Json::as_str)
                .map(str::to_owned),
            aliases: object
                .get("aliases")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let strings = |json: &Json| -> Vec<String> {
            json.as_array()
                .expect("a list")
                .iter()
                .map(|s| s.as_str().expect("a string").to_owned())
                .collect()
        };
        match kind {
            "array" => Ty::Array(Box::new(Ty::read(&object["items"], defined))),
            "map" => Ty::Map(Box::new(Ty::read(&object["values"], defined))),
            "enum" => Ty::Enum(EnumTy {
                naming: naming(object),
                symbols: strings(&object["symbols"]),
                default: object
                    .get("default")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
            }),
            "fixed" => Ty::Fixed(FixedTy {
                naming: naming(object),
                size: object["size"].as_u64().expect("a size") as usize,
            }),
            "record" => {
                let fields = object["fields"]
                    .as_array()
                    .expect("fields")
                    .iter()
                    .map(|field| FieldTy {
                        name: field["name"].as_str().expect("a field name").to_owned(),
                        aliases: field.get("aliases").map(strings).unwrap_or_default(),
                        ty: Ty::read(&field["type"], defined),
                        default: field.get("default").cloned(),
                    })
                    .collect();
                Ty::Record(RecordTy {
                    naming: naming(object),
                    fields,
                })
            }
            primitive => Ty::read(&Json::from(primitive), defined),
        }
    }
}

/// Evolutions of each kind, written by hand, so that every kind is checked however few cases
/// proptest runs.
mod by_hand {
    use super::*;

    /// A writer and reader record `R` with these fields; `aliased` is the writer's fields
    /// renamed by the reader's aliases, when they rename any.
    fn case(writer: Json, reader: Json, aliased: Option<Json>) -> Case {
        let record = |fields: Json| json!({"type": "record", "name": "R", "fields": fields});
        let writer = Ty::from_json(&record(writer));
        let reader = Ty::from_json(&record(reader));
        let aliased = aliased.map_or_else(|| writer.clone(), |a| Ty::from_json(&record(a)));
        Case::new(writer, Evolved { reader, aliased })
    }

    fn record(fields: &[(&str, Value)]) -> Value {
        Value::Record(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
        )
    }

    /// Judges each value of the writer schema, after the pair itself.
    fn verdicts(case: &Case, values: &[Value]) -> Vec<Verdict> {
        case.judge_schemas().unwrap();
        values
            .iter()
            .map(|value| case.judge(&encode(&case.writer_schema, value)).unwrap())
            .collect()
    }

    /// What ours reads a value of the writer schema as.
    fn ours_reads(case: &Case, value: &Value) -> Result<Value, Refusal> {
        ours(
            &case.resolution,
            &case.reader_schema,
            &encode(&case.writer_schema, value),
        )
    }

    fn null() -> Value {
        Value::Union(0, Box::new(Value::Null))
    }

    #[test]
    fn fields_added_with_defaults_dropped_and_reordered_read_alike() {
        let case = case(
            json!([
                {"name": "a", "type": "int"},
                {"name": "b", "type": "string"},
                {"name": "c", "type": {"type": "array", "items": "long"}},
                {"name": "d", "type": "boolean"},
            ]),
            json!([
                {"name": "c", "type": {"type": "array", "items": "long"}},
                {"name": "n1", "type": "string", "default": "x"},
                {"name": "n2", "type": ["null", "int"], "default": null},
                {"name": "a", "type": "int"},
                {"name": "n3", "type": {"type": "record", "name": "N", "fields": [
                    {"name": "k", "type": {"type": "enum", "name": "K", "symbols": ["P", "Q"]}},
                    {"name": "m", "type": {"type": "map", "values": "double"}},
                ]}, "default": {"k": "Q", "m": {"z": 1.5}}},
            ]),
            None,
        );
        let value = record(&[
            ("a", Value::Int(-7)),
            ("b", Value::String("dropped".into())),
            (
                "c",
                Value::Array(vec![Value::Long(1), Value::Long(i64::MIN)]),
            ),
            ("d", Value::Boolean(true)),
        ]);
        assert_eq!(verdicts(&case, &[value]), [Verdict::Same]);
    }

    #[test]
    fn a_field_added_without_default_is_refused_by_both() {
        let case = case(
            json!([{"name": "a", "type": "int"}]),
            json!([{"name": "a", "type": "int"}, {"name": "n", "type": "int"}]),
            None,
        );
        let error = case.resolution.as_ref().map(|_| ()).unwrap_err();
        assert!(error.contains("no default"), "{error}");
        let value = record(&[("a", Value::Int(1))]);
        assert_eq!(verdicts(&case, &[value]), [Verdict::BothRefused]);
    }

    #[test]
    fn numbers_promote_and_text_swaps_as_both_read_it() {
        let types = [
            ("i1", "int", "long"),
            ("i2", "int", "float"),
            ("i3", "int", "double"),
            ("l1", "long", "float"),
            ("l2", "long", "double"),
            ("f", "float", "double"),
            ("s", "string", "bytes"),
            ("b", "bytes", "string"),
        ];
        let fields = |reader: bool| -> Json {
            types
                .iter()
                .map(|(name, w, r)| json!({"name": name, "type": if reader { r } else { w }}))
                .collect()
        };
        let case = case(fields(false), fields(true), None);
        let value = |i: i32, l: i64, f: f32, b: &[u8]| {
            record(&[
                ("i1", Value::Int(i)),
                ("i2", Value::Int(i)),
                ("i3", Value::Int(i)),
                ("l1", Value::Long(l)),
                ("l2", Value::Long(l)),
                ("f", Value::Float(f)),
                ("s", Value::String("é".into())),
                ("b", Value::Bytes(b.to_vec())),
            ])
        };
        let values = [
            value(i32::MIN, i64::MAX, f32::NAN, b"text"),
            value(16_777_217, (1 << 53) + 1, -0.0, b""),
            value(-1, i64::MIN, f32::INFINITY, "ü".as_bytes()),
            // Not UTF-8: no string can hold it.
            value(0, 0, 0.1, &[0xff, 0xfe]),
        ];
        assert_eq!(
            verdicts(&case, &values),
            [
                Verdict::Same,
                Verdict::Same,
                Verdict::Same,
                Verdict::BothRefused
            ]
        );
    }

    #[test]
    fn unions_widened_narrowed_and_reordered() {
        let writer = json!([{"name": "u", "type": ["null", "int", "string"]}]);
        let values = [
            record(&[("u", null())]),
            record(&[("u", Value::Union(1, Box::new(Value::Int(5))))]),
            record(&[("u", Value::Union(2, Box::new(Value::String("s".into()))))]),
        ];
        // Widened and reordered, the int read as the long that replaces it.
        let widened = case(
            writer.clone(),
            json!([{"name": "u", "type": ["string", "boolean", "long", "null"]}]),
            None,
        );
        assert_eq!(verdicts(&widened, &values), [Verdict::Same; 3]);
        let read = ours_reads(&widened, &values[1]).unwrap();
        assert_eq!(
            read,
            record(&[("u", Value::Union(2, Box::new(Value::Long(5))))])
        );

        // Narrowed: only a datum of the dropped branch is refused.
        let narrowed = case(
            writer,
            json!([{"name": "u", "type": ["string", "null"]}]),
            None,
        );
        assert_eq!(
            verdicts(&narrowed, &values),
            [Verdict::Same, Verdict::BothRefused, Verdict::Same]
        );
    }

    #[test]
    fn a_writer_union_read_as_one_type_and_a_type_read_into_a_union() {
        let case = case(
            json!([
                {"name": "u", "type": ["null", "int"]},
                {"name": "p", "type": "int"},
            ]),
            json!([
                {"name": "u", "type": "long"},
                {"name": "p", "type": ["null", "string", "double"]},
            ]),
            None,
        );
        let int = record(&[
            ("u", Value::Union(1, Box::new(Value::Int(3)))),
            ("p", Value::Int(-4)),
        ]);
        let missing = record(&[("u", null()), ("p", Value::Int(-4))]);
        assert_eq!(
            verdicts(&case, &[int.clone(), missing]),
            [Verdict::Same, Verdict::BothRefused]
        );
        assert_eq!(
            ours_reads(&case, &int).unwrap(),
            record(&[
                ("u", Value::Long(3)),
                ("p", Value::Union(2, Box::new(Value::Double(-4.0))))
            ])
        );
    }

    #[test]
    fn enum_symbols_added_removed_and_defaulted() {
        let writer = json!([{"name": "e", "type":
            {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}}]);
        let reader = |default: Option<&str>| {
            let mut e = json!({"type": "enum", "name": "E", "symbols": ["C", "A", "D"]});
            if let Some(default) = default {
                e["default"] = default.into();
            }
            json!([{"name": "e", "type": e}])
        };
        let values = ["A", "B", "C"].map(|symbol| {
            let at = (symbol.as_bytes()[0] - b'A') as u32;
            record(&[("e", Value::Enum(at, symbol.into()))])
        });
        let without = case(writer.clone(), reader(None), None);
        assert_eq!(
            verdicts(&without, &values),
            [Verdict::Same, Verdict::BothRefused, Verdict::Same]
        );
        let with = case(writer, reader(Some("D")), None);
        assert_eq!(verdicts(&with, &values), [Verdict::Same; 3]);
        assert_eq!(
            ours_reads(&with, &values[1]).unwrap(),
            record(&[("e", Value::Enum(2, "D".into()))])
        );
    }

    #[test]
    fn aliases_rename_fields_and_named_types() {
        let case = case(
            json!([
                {"name": "old", "type": "int"},
                {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
                {"name": "f", "type": {"type": "fixed", "name": "F", "size": 2}},
            ]),
            json!([
                {"name": "f", "type":
                    {"type": "fixed", "name": "F", "namespace": "moved", "size": 2}},
                {"name": "new", "aliases": ["old"], "type": "long"},
                {"name": "e", "type":
                    {"type": "enum", "name": "E2", "aliases": ["E"], "symbols": ["B", "A"]}},
            ]),
            Some(json!([
                {"name": "new", "type": "int"},
                {"name": "e", "type": {"type": "enum", "name": "E2", "symbols": ["A", "B"]}},
                {"name": "f", "type": {"type": "fixed", "name": "F", "size": 2}},
            ])),
        );
        let value = record(&[
            ("old", Value::Int(9)),
            ("e", Value::Enum(0, "A".into())),
            ("f", Value::Fixed(2, vec![1, 2])),
        ]);
        assert_eq!(
            verdicts(&case, std::slice::from_ref(&value)),
            [Verdict::Same]
        );
        assert_eq!(
            ours_reads(&case, &value).unwrap(),
            record(&[
                ("f", Value::Fixed(2, vec![1, 2])),
                ("new", Value::Long(9)),
                ("e", Value::Enum(1, "A".into())),
            ])
        );
    }

    #[test]
    fn named_types_used_again_by_name() {
        let case = case(
            json!([
                {"name": "a", "type": {"type": "record", "name": "In", "fields": [
                    {"name": "x", "type": "int"},
                ]}},
                {"name": "b", "type": ["null", "In"]},
                {"name": "c", "type": {"type": "array", "items": "In"}},
            ]),
            // Reordered: the definition moves to the first use.
            json!([
                {"name": "c", "type": {"type": "array", "items":
                    {"type": "record", "name": "In", "fields": [
                        {"name": "y", "type": "string", "default": "new"},
                        {"name": "x", "type": "long"},
                    ]}}},
                {"name": "b", "type": ["In", "null"]},
                {"name": "a", "type": "In"},
            ]),
            None,
        );
        let inner = |x: i32| record(&[("x", Value::Int(x))]);
        let value = record(&[
            ("a", inner(1)),
            ("b", Value::Union(1, Box::new(inner(2)))),
            ("c", Value::Array(vec![inner(3), inner(4)])),
        ]);
        assert_eq!(verdicts(&case, &[value]), [Verdict::Same]);
    }

    #[test]
    fn logical_types_resolve_as_their_underlying_types() {
        let uuid = uuid::Uuid::from_u128(0x6c3b_2b0e_57b1_4bfa_9d0c_0a4c_5f4d_2b11);
        let millis = json!({"type": "long", "logicalType": "timestamp-millis"});
        let date = json!({"type": "int", "logicalType": "date"});
        let uuid_type = json!({"type": "string", "logicalType": "uuid"});
        let decimal =
            json!({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2});
        // Kept, or taken into a union: read alike.
        let kept = case(
            json!([
                {"name": "t", "type": millis},
                {"name": "d", "type": date},
                {"name": "u", "type": uuid_type},
                {"name": "m", "type": decimal},
            ]),
            json!([
                {"name": "t", "type": ["null", millis]},
                {"name": "d", "type": date},
                {"name": "u", "type": uuid_type},
                {"name": "m", "type": decimal},
            ]),
            None,
        );
        let value = record(&[
            ("t", Value::TimestampMillis(1_700_000_000_000)),
            ("d", Value::Date(-3)),
            ("u", Value::Uuid(uuid)),
            (
                "m",
                Value::Decimal(apache_avro::Decimal::from([0x04, 0xd2])),
            ),
        ]);
        assert_eq!(verdicts(&kept, &[value]), [Verdict::Same]);

        // To and from their underlying types: apache-avro refuses the way out.
        let changed = case(
            json!([
                {"name": "t", "type": millis},
                {"name": "d", "type": date},
                {"name": "u", "type": uuid_type},
                {"name": "l", "type": "long"},
                {"name": "i", "type": "int"},
            ]),
            json!([
                {"name": "t", "type": "long"},
                {"name": "d", "type": "long"},
                {"name": "u", "type": "string"},
                {"name": "l", "type": millis},
                {"name": "i", "type": date},
            ]),
            None,
        );
        let value = record(&[
            ("t", Value::TimestampMillis(5)),
            ("d", Value::Date(3)),
            ("u", Value::Uuid(uuid)),
            ("l", Value::Long(7)),
            ("i", Value::Int(2)),
        ]);
        assert_eq!(
            verdicts(&changed, std::slice::from_ref(&value)),
            [Verdict::TheyMishandledLogical]
        );
        assert_eq!(
            ours_reads(&changed, &value).unwrap(),
            record(&[
                ("t", Value::Long(5)),
                ("d", Value::Long(3)),
                ("u", Value::String(uuid.to_string())),
                ("l", Value::TimestampMillis(7)),
                ("i", Value::Date(2)),
            ])
        );
    }

    /// apache-avro's datum resolution reads these; the specification and apache-avro's schema
    /// checker refuse them, and so does ours.
    #[test]
    fn what_apache_avro_reads_leniently_is_refused() {
        let refused_by_us_read_by_them =
            |writer: serde_json::Value, reader: serde_json::Value, value: Value| {
                let case = case(
                    json!([{"name": "v", "type": writer}]),
                    json!([{"name": "v", "type": reader}]),
                    None,
                );
                assert!(case.resolution.is_err(), "{}", case.describe());
                assert_eq!(
                    verdicts(&case, &[record(&[("v", value)])]),
                    [Verdict::TheyWereLenient],
                    "{}",
                    case.describe()
                );
            };
        let pairs = [
            ("long", json!("int"), Value::Long(5)),
            ("double", json!("float"), Value::Double(0.5)),
            (
                "string",
                json!({"type": "fixed", "name": "F", "size": 2}),
                Value::String("ab".into()),
            ),
            (
                "string",
                json!({"type": "enum", "name": "E", "symbols": ["ab"]}),
                Value::String("ab".into()),
            ),
        ];
        for (writer, reader, value) in pairs {
            refused_by_us_read_by_them(json!(writer), reader, value);
        }

        let fixed = json!({"type": "fixed", "name": "F", "size": 2});
        let renamed = json!({"type": "record", "name": "Other", "fields": [
            {"name": "x", "type": "int"},
        ]});
        let empty_items = json!({"type": "array", "items": "int"});
        let pairs = [
            (
                fixed.clone(),
                json!("string"),
                Value::Fixed(2, b"ab".to_vec()),
            ),
            (
                json!({"type": "record", "name": "In", "fields": [{"name": "x", "type": "int"}]}),
                renamed,
                record(&[("x", Value::Int(1))]),
            ),
            (
                json!({"type": "array", "items": "string"}),
                empty_items,
                Value::Array(Vec::new()),
            ),
        ];
        for (writer, reader, value) in pairs {
            refused_by_us_read_by_them(json!(writer), reader, value);
        }
    }

    /// apache-avro reads the long as the union's int when it fits; the specification takes the
    /// first branch the long promotes to.
    #[test]
    fn a_long_read_into_a_union_takes_the_first_promotion() {
        let case = case(
            json!([{"name": "v", "type": "long"}]),
            json!([{"name": "v", "type": ["int", "null", "double"]}]),
            None,
        );
        let value = record(&[("v", Value::Long(7))]);
        assert_eq!(
            verdicts(&case, std::slice::from_ref(&value)),
            [Verdict::TheyWereLenient]
        );
        assert_eq!(
            ours_reads(&case, &value).unwrap(),
            record(&[("v", Value::Union(2, Box::new(Value::Double(7.0))))])
        );
    }

    /// The specification refuses a datum whose symbol the reader lacks, not the schemas:
    /// apache-avro's schema checker refuses a reader enum sharing no symbol with the writer's.
    #[test]
    fn an_enum_sharing_no_symbol_compiles_and_refuses_each_datum() {
        let case = case(
            json!([{"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}]),
            json!([{"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["C"]}}]),
            None,
        );
        assert!(case.resolution.is_ok());
        let datum = encode(
            &case.writer_schema,
            &record(&[("e", Value::Enum(1, "B".into()))]),
        );
        assert_eq!(case.judge(&datum).unwrap(), Verdict::BothRefused);
        assert!(matches!(
            ours(&case.resolution, &case.reader_schema, &datum),
            Err(Refusal::Rewrite(RewriteError::Unreadable(_)))
        ));
    }

    /// Defaults the generator leaves out, as ours reads them: a `bytes` default's code points
    /// 0-255 are its bytes (apache-avro takes its UTF-8), and a union's default may be of a later
    /// branch (apache-avro takes the first branch's value, here null).
    #[test]
    fn defaults_read_as_the_specification_writes_them() {
        let case = case(
            json!([{"name": "a", "type": "int"}]),
            json!([
                {"name": "a", "type": "int"},
                {"name": "b", "type": "bytes", "default": "\u{ff}A"},
                {"name": "u", "type": ["null", "string"], "default": "later"},
            ]),
            None,
        );
        assert_eq!(
            ours_reads(&case, &record(&[("a", Value::Int(1))])).unwrap(),
            record(&[
                ("a", Value::Int(1)),
                ("b", Value::Bytes(vec![0xff, b'A'])),
                (
                    "u",
                    Value::Union(1, Box::new(Value::String("later".into())))
                ),
            ])
        );
    }

    #[test]
    fn damaged_datums_are_refused() {
        let case = case(
            json!([
                {"name": "s", "type": "string"},
                {"name": "u", "type": ["null", "long"]},
            ]),
            json!([{"name": "u", "type": ["null", "double"]}, {"name": "s", "type": "bytes"}]),
            None,
        );
        let datum = encode(
            &case.writer_schema,
            &record(&[
                ("s", Value::String("abc".into())),
                ("u", Value::Union(1, Box::new(Value::Long(300)))),
            ]),
        );
        for cut in 0..datum.len() {
            case.judge_damaged(&datum[..cut], true).unwrap();
        }
        case.judge_damaged(&[datum.as_slice(), &[0]].concat(), true)
            .unwrap();
        // A union branch out of range, a string longer than the datum.
        for (at, byte) in [(4, 4), (0, 40)] {
            let mut damaged = datum.clone();
            damaged[at] = byte;
            case.judge_damaged(&damaged, true).unwrap();
            assert!(matches!(
                ours(&case.resolution, &case.reader_schema, &damaged),
                Err(Refusal::Rewrite(RewriteError::Malformed(_)))
            ));
        }
    }
}
