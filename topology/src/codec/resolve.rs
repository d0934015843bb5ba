//! Avro schema resolution, compiled once per (writer schema, reader schema) into a [`Resolution`]:
//! a small program that rewrites a datum written with the writer schema into the bytes the
//! reader schema would have produced for the same value. Fields are reordered, dropped fields
//! skipped, missing fields filled with their encoded defaults, enum symbols renumbered (unknown
//! ones to the reader's default), numbers promoted and union branches renumbered.
//!
//! Reading the rewritten bytes then needs no resolution, so decoding stays on apache-avro's
//! direct serde reader instead of building, resolving and converting a `Value` tree, which is
//! several times slower. Parts that both schemas encode identically are copied as byte ranges.
//!
//! The rules are those of the Avro specification's "Schema Resolution", on the binary encoding:
//! logical types resolve as their underlying types (but two decimals only with the same precision
//! and scale), records and enums match by unqualified name or a reader alias, reader fields match
//! writer fields by name or a reader alias, and a union branch is chosen by the first reader
//! branch of the same type (then the first it promotes to).
//! What cannot be resolved for every datum is found when compiling; what depends on the datum
//! (a writer union branch or enum symbol the reader cannot take) fails when that datum is read.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{
    Aliases, DecimalSchema, EnumSchema, FixedSchema, InnerDecimalSchema, Name, NamesRef,
    RecordSchema, ResolvedSchema, UnionSchema, UuidSchema,
};
use serde_json::Value as Json;

/// Nesting deeper than this is refused; only recursive schemas can get near it.
const MAX_DEPTH: usize = 128;

/// Array and map items a datum may hold beyond one per byte of input: only items that encode to
/// nothing (nulls, empty records) can exceed one per byte, and this bounds how many.
const EMPTY_ITEM_ALLOWANCE: usize = 1 << 16;

/// A datum the resolution could not rewrite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The bytes are not a datum of the writer schema.
    #[error("{0}")]
    Malformed(String),
    /// The datum is valid but holds a value the reader schema has no place for.
    #[error("{0}")]
    Unreadable(String),
}

fn malformed(reason: impl Into<String>) -> RewriteError {
    RewriteError::Malformed(reason.into())
}

type SkipId = u32;
type StepId = u32;

/// How to pass over a value of the writer schema.
#[derive(Debug)]
enum Skip {
    Nothing,
    Bytes(usize),
    Varint,
    /// A length-prefixed `bytes` or `string`.
    Sized,
    Array(SkipId),
    Map(SkipId),
    Union(Box<[SkipId]>),
    Record(Box<[SkipId]>),
    /// Stands in for a named type while it is being compiled.
    Pending,
}

/// How to turn a value of the writer schema into one of the reader schema.
#[derive(Debug)]
enum Step {
    /// Encoded identically by both: copy the bytes.
    Copy(SkipId),
    Promote(Promotion),
    /// Reader index by writer index; `None` when the reader neither has the symbol nor a default.
    Enum {
        targets: Box<[Option<u32>]>,
        symbols: Box<[String]>,
    },
    Array(StepId),
    Map(StepId),
    /// A writer union, by writer branch index.
    Union(Box<[Branch]>),
    /// A plain writer value into a reader union: write the reader branch index, then the value.
    IntoUnion {
        index: u32,
        step: StepId,
    },
    Record {
        actions: Box<[Action]>,
        /// Set when the writer's fields come in another order than the reader's: the reader
        /// field each action produces (`None` for skips); the output is put in order afterwards.
        targets: Option<Box<[Option<u32>]>>,
    },
    /// Stands in for a record while it is being compiled.
    Pending,
}

#[derive(Debug, Clone, Copy)]
enum Promotion {
    IntToFloat,
    IntToDouble,
    LongToFloat,
    LongToDouble,
    FloatToDouble,
}

#[derive(Debug)]
enum Branch {
    /// Read with `step`, after writing `index` when the reader is a union too.
    Readable { index: Option<u32>, step: StepId },
    /// The reader has no place for this branch: why.
    Unreadable(Box<str>),
}

#[derive(Debug)]
enum Action {
    /// Fields encoded identically by both, in a row: copy them in one piece.
    Copy(Vec<SkipId>),
    Read(StepId),
    Skip(SkipId),
    /// A reader field the writer lacks: its default, encoded.
    Default(Box<[u8]>),
}

/// A compiled resolution from one writer schema to one reader schema.
#[derive(Debug)]
pub struct Resolution {
    skips: Vec<Skip>,
    steps: Vec<Step>,
    root: StepId,
    /// Both schemas encode every datum identically.
    identity: bool,
}

impl Resolution {
    /// Compiles the resolution of `writer` data to `reader`, or says why no datum of `writer` can
    /// be read as `reader`.
    pub fn compile(writer: &Schema, reader: &Schema) -> Result<Resolution, String> {
        let writer_names = ResolvedSchema::try_from(writer).map_err(|e| e.to_string())?;
        let reader_names = ResolvedSchema::try_from(reader).map_err(|e| e.to_string())?;
        let mut compiler = Compiler {
            writer_names: writer_names.get_names(),
            reader_names: reader_names.get_names(),
            skips: Vec::new(),
            steps: Vec::new(),
            skip_memo: HashMap::new(),
            step_memo: HashMap::new(),
            step_order: Vec::new(),
        };
        let (root, identity) = compiler.step(writer, reader)?;
        Ok(Resolution {
            skips: compiler.skips,
            steps: compiler.steps,
            root,
            identity,
        })
    }

    /// Both schemas encode every datum the same way: the writer's bytes can be read with the
    /// reader schema as they are.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Appends to `out` the reader-schema encoding of the datum `input`, which must be exactly
    /// one datum of the writer schema.
    pub fn rewrite(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let mut cursor = Cursor {
            bytes: input,
            pos: 0,
            items_left: input.len().saturating_add(EMPTY_ITEM_ALLOWANCE),
        };
        self.run(self.root, &mut cursor, out, 0)?;
        match input.len() - cursor.pos {
            0 => Ok(()),
            left => Err(malformed(format!(
                "{left} bytes left after the datum: the bytes were not written with this schema"
            ))),
        }
    }

    fn run(
        &self,
        id: StepId,
        input: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), RewriteError> {
        match &self.steps[id as usize] {
            Step::Copy(skip) => {
                let start = input.pos;
                self.skip(*skip, input, depth)?;
                out.extend_from_slice(&input.bytes[start..input.pos]);
            }
            Step::Promote(promotion) => match promotion {
                Promotion::IntToFloat => {
                    out.extend_from_slice(&(input.int()? as f32).to_le_bytes());
                }
                Promotion::IntToDouble => {
                    out.extend_from_slice(&f64::from(input.int()?).to_le_bytes());
                }
                Promotion::LongToFloat => {
                    out.extend_from_slice(&(input.long()? as f32).to_le_bytes());
                }
                Promotion::LongToDouble => {
                    out.extend_from_slice(&(input.long()? as f64).to_le_bytes());
                }
                Promotion::FloatToDouble => {
                    let bits: [u8; 4] = input.take(4)?.try_into().unwrap_or_default();
                    out.extend_from_slice(&f64::from(f32::from_le_bytes(bits)).to_le_bytes());
                }
            },
            Step::Enum { targets, symbols } => {
                let index = input.long()?;
                let at = usize::try_from(index).ok().filter(|i| *i < targets.len());
                let Some(at) = at else {
                    return Err(malformed(format!(
                        "enum index {index} is out of range: the writer schema has {} symbols",
                        targets.len()
                    )));
                };
                match targets[at] {
                    Some(target) => write_long(out, i64::from(target)),
                    None => {
                        return Err(RewriteError::Unreadable(format!(
                            "enum symbol {} is unknown to the reader schema, which has no \
                             default symbol",
                            symbols[at]
                        )));
                    }
                }
            }
            Step::Array(item) => {
                let depth = deeper(depth)?;
                while let Some(count) = input.block()? {
                    write_long(out, count as i64);
                    for _ in 0..count {
                        self.run(*item, input, out, depth)?;
                    }
                }
                out.push(0);
            }
            Step::Map(value) => {
                let depth = deeper(depth)?;
                while let Some(count) = input.block()? {
                    write_long(out, count as i64);
                    for _ in 0..count {
                        let start = input.pos;
                        input.skip_sized()?;
                        out.extend_from_slice(&input.bytes[start..input.pos]);
                        self.run(*value, input, out, depth)?;
                    }
                }
                out.push(0);
            }
            Step::Union(branches) => {
                let index = input.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        malformed(format!(
                            "union branch {index} is out of range: the writer schema has {} \
                             branches",
                            branches.len()
                        ))
                    })?;
                match branch {
                    Branch::Readable { index, step } => {
                        if let Some(index) = index {
                            write_long(out, i64::from(*index));
                        }
                        self.run(*step, input, out, depth)?;
                    }
                    Branch::Unreadable(why) => {
                        return Err(RewriteError::Unreadable(why.to_string()));
                    }
                }
            }
            Step::IntoUnion { index, step } => {
                write_long(out, i64::from(*index));
                self.run(*step, input, out, depth)?;
            }
            Step::Record { actions, targets } => {
                let depth = deeper(depth)?;
                match targets {
                    None => {
                        for action in actions.iter() {
                            self.act(action, input, out, depth)?;
                        }
                    }
                    Some(targets) => self.reordered(actions, targets, input, out, depth)?,
                }
            }
            Step::Pending => return Err(malformed("incomplete resolution")),
        }
        Ok(())
    }

    fn act(
        &self,
        action: &Action,
        input: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), RewriteError> {
        match action {
            Action::Copy(skips) => {
                let start = input.pos;
                for skip in skips.iter() {
                    self.skip(*skip, input, depth)?;
                }
                out.extend_from_slice(&input.bytes[start..input.pos]);
            }
            Action::Read(step) => self.run(*step, input, out, depth)?,
            Action::Skip(skip) => self.skip(*skip, input, depth)?,
            Action::Default(bytes) => out.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// A record whose writer field order differs from the reader's: each field is rewritten
    /// where it comes, then the pieces are put in the reader's order.
    fn reordered(
        &self,
        actions: &[Action],
        targets: &[Option<u32>],
        input: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), RewriteError> {
        let base = out.len();
        let mut pieces: Vec<(u32, usize, usize)> = Vec::with_capacity(actions.len());
        for (action, target) in actions.iter().zip(targets) {
            let start = out.len() - base;
            self.act(action, input, out, depth)?;
            if let Some(target) = target {
                pieces.push((*target, start, out.len() - base));
            }
        }
        pieces.sort_unstable_by_key(|(target, _, _)| *target);
        let written = out.split_off(base);
        for (_, start, end) in pieces {
            out.extend_from_slice(&written[start..end]);
        }
        Ok(())
    }

    fn skip(&self, id: SkipId, input: &mut Cursor<'_>, depth: usize) -> Result<(), RewriteError> {
        match &self.skips[id as usize] {
            Skip::Nothing => {}
            Skip::Bytes(n) => {
                input.take(*n)?;
            }
            Skip::Varint => input.skip_varint()?,
            Skip::Sized => input.skip_sized()?,
            Skip::Array(item) => {
                let depth = deeper(depth)?;
                while let Some(count) = input.block()? {
                    for _ in 0..count {
                        self.skip(*item, input, depth)?;
                    }
                }
            }
            Skip::Map(value) => {
                let depth = deeper(depth)?;
                while let Some(count) = input.block()? {
                    for _ in 0..count {
                        input.skip_sized()?;
                        self.skip(*value, input, depth)?;
                    }
                }
            }
            Skip::Union(branches) => {
                let index = input.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        malformed(format!(
                            "union branch {index} is out of range: the writer schema has {} \
                             branches",
                            branches.len()
                        ))
                    })?;
                self.skip(*branch, input, depth)?;
            }
            Skip::Record(fields) => {
                let depth = deeper(depth)?;
                for field in fields.iter() {
                    self.skip(*field, input, depth)?;
                }
            }
            Skip::Pending => return Err(malformed("incomplete resolution")),
        }
        Ok(())
    }
}

fn deeper(depth: usize) -> Result<usize, RewriteError> {
    if depth >= MAX_DEPTH {
        Err(malformed(format!(
            "values nested more than {MAX_DEPTH} levels deep"
        )))
    } else {
        Ok(depth + 1)
    }
}

/// Reading Avro's binary encoding, with every length checked against what is left.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Array and map items still allowed in this datum.
    items_left: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RewriteError> {
        if n > self.remaining() {
            return Err(malformed(format!(
                "the datum ends early: {n} bytes needed, {} left",
                self.remaining()
            )));
        }
        let taken = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(taken)
    }

    /// A zigzag varint of at most 10 bytes.
    fn long(&mut self) -> Result<i64, RewriteError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(malformed("the datum ends inside a number"));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(malformed("a number is longer than 10 bytes"))
    }

    fn int(&mut self) -> Result<i32, RewriteError> {
        let value = self.long()?;
        i32::try_from(value).map_err(|_| malformed(format!("{value} does not fit an int")))
    }

    fn skip_varint(&mut self) -> Result<(), RewriteError> {
        self.long().map(drop)
    }

    fn skip_sized(&mut self) -> Result<(), RewriteError> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| malformed(format!("negative length {len}")))?;
        self.take(len).map(drop)
    }

    /// The item count of the next array or map block; `None` at the end marker. A negative
    /// count is followed by the block's size in bytes, which is checked and otherwise unused.
    fn block(&mut self) -> Result<Option<usize>, RewriteError> {
        let count = self.long()?;
        if count == 0 {
            return Ok(None);
        }
        if count < 0 {
            let size = self.long()?;
            if size < 0 || size as u64 > self.remaining() as u64 {
                return Err(malformed(format!(
                    "a block claims {size} bytes, {} left",
                    self.remaining()
                )));
            }
        }
        let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        if count > self.items_left {
            return Err(malformed(format!(
                "a block claims {count} items, more than {} bytes can hold",
                self.bytes.len()
            )));
        }
        self.items_left -= count;
        Ok(Some(count))
    }
}

/// Appends the zigzag varint of `value`.
fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The binary shape of a schema: logical types are their underlying types, references are
/// looked up.
#[derive(Clone, Copy)]
enum Shape<'s> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(&'s FixedSchema),
    Enum(&'s EnumSchema),
    Array(&'s Schema),
    Map(&'s Schema),
    Record(&'s RecordSchema),
    Union(&'s UnionSchema),
}

impl Shape<'_> {
    fn describe(&self) -> String {
        match self {
            Shape::Null => "null".to_owned(),
            Shape::Boolean => "boolean".to_owned(),
            Shape::Int => "int".to_owned(),
            Shape::Long => "long".to_owned(),
            Shape::Float => "float".to_owned(),
            Shape::Double => "double".to_owned(),
            Shape::Bytes => "bytes".to_owned(),
            Shape::String => "string".to_owned(),
            Shape::Fixed(f) => format!("fixed {}", f.name),
            Shape::Enum(e) => format!("enum {}", e.name),
            Shape::Array(_) => "array".to_owned(),
            Shape::Map(_) => "map".to_owned(),
            Shape::Record(r) => format!("record {}", r.name),
            Shape::Union(_) => "union".to_owned(),
        }
    }
}

fn shape<'s>(schema: &'s Schema, names: &NamesRef<'s>) -> Result<Shape<'s>, String> {
    Ok(match schema {
        Schema::Null => Shape::Null,
        Schema::Boolean => Shape::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Shape::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Shape::Long,
        Schema::Float => Shape::Float,
        Schema::Double => Shape::Double,
        Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Shape::Bytes,
        Schema::String | Schema::Uuid(UuidSchema::String) => Shape::String,
        Schema::Fixed(fixed) | Schema::Uuid(UuidSchema::Fixed(fixed)) | Schema::Duration(fixed) => {
            Shape::Fixed(fixed)
        }
        Schema::Decimal(decimal) => match &decimal.inner {
            InnerDecimalSchema::Bytes => Shape::Bytes,
            InnerDecimalSchema::Fixed(fixed) => Shape::Fixed(fixed),
        },
        Schema::Enum(e) => Shape::Enum(e),
        Schema::Array(array) => Shape::Array(&array.items),
        Schema::Map(map) => Shape::Map(&map.types),
        Schema::Record(record) => Shape::Record(record),
        Schema::Union(union) => Shape::Union(union),
        Schema::Ref { name } => {
            let found = names
                .get(name)
                .ok_or_else(|| format!("the schema refers to {name}, which it does not define"))?;
            if matches!(found, Schema::Ref { .. }) {
                return Err(format!("{name} is defined as another reference"));
            }
            return shape(found, names);
        }
    })
}

/// The decimal logical type `schema` is, if it is one.
fn decimal<'s>(schema: &'s Schema, names: &NamesRef<'s>) -> Option<&'s DecimalSchema> {
    let schema = match schema {
        Schema::Ref { name } => *names.get(name)?,
        other => other,
    };
    match schema {
        Schema::Decimal(decimal) => Some(decimal),
        _ => None,
    }
}

/// Whether a reader named type takes a writer named type: same unqualified name, or the writer's
/// name is one of the reader's aliases.
fn names_match(writer: &Name, reader: &Name, aliases: &Aliases) -> bool {
    writer.name() == reader.name()
        || aliases
            .iter()
            .flatten()
            .any(|alias| alias.name() == writer.name())
}

/// How well a reader union branch takes a writer value: the same type first, then a promotion.
#[derive(PartialEq, Eq)]
enum Fit {
    Same,
    Promoted,
    No,
}

fn fit(writer: Shape<'_>, reader: Shape<'_>) -> Fit {
    match (writer, reader) {
        (Shape::Null, Shape::Null)
        | (Shape::Boolean, Shape::Boolean)
        | (Shape::Int, Shape::Int)
        | (Shape::Long, Shape::Long)
        | (Shape::Float, Shape::Float)
        | (Shape::Double, Shape::Double)
        | (Shape::Bytes, Shape::Bytes)
        | (Shape::String, Shape::String)
        | (Shape::Array(_), Shape::Array(_))
        | (Shape::Map(_), Shape::Map(_)) => Fit::Same,
        (Shape::Fixed(w), Shape::Fixed(r))
            if w.size == r.size && names_match(&w.name, &r.name, &r.aliases) =>
        {
            Fit::Same
        }
        (Shape::Enum(w), Shape::Enum(r)) if names_match(&w.name, &r.name, &r.aliases) => Fit::Same,
        (Shape::Record(w), Shape::Record(r)) if names_match(&w.name, &r.name, &r.aliases) => {
            Fit::Same
        }
        (Shape::Int, Shape::Long | Shape::Float | Shape::Double)
        | (Shape::Long, Shape::Float | Shape::Double)
        | (Shape::Float, Shape::Double)
        | (Shape::String, Shape::Bytes)
        | (Shape::Bytes, Shape::String) => Fit::Promoted,
        _ => Fit::No,
    }
}

struct Compiler<'w, 'r> {
    writer_names: &'w NamesRef<'w>,
    reader_names: &'r NamesRef<'r>,
    skips: Vec<Skip>,
    steps: Vec<Step>,
    skip_memo: HashMap<Name, SkipId>,
    /// Record pairs by (writer name, reader name): compiled, being compiled, or refused.
    step_memo: HashMap<(Name, Name), Result<StepId, String>>,
    /// The pairs compiled, in order, so that those compiled while a record that then fails
    /// was being compiled can be forgotten: they may have taken it for readable.
    step_order: Vec<(Name, Name)>,
}

impl<'w, 'r> Compiler<'w, 'r> {
    fn add_skip(&mut self, skip: Skip) -> SkipId {
        self.skips.push(skip);
        (self.skips.len() - 1) as SkipId
    }

    fn add_step(&mut self, step: Step) -> StepId {
        self.steps.push(step);
        (self.steps.len() - 1) as StepId
    }

    fn skip(&mut self, schema: &'w Schema) -> Result<SkipId, String> {
        let skip = match shape(schema, self.writer_names)? {
            Shape::Null => Skip::Nothing,
            Shape::Boolean => Skip::Bytes(1),
            Shape::Int | Shape::Long | Shape::Enum(_) => Skip::Varint,
            Shape::Float => Skip::Bytes(4),
            Shape::Double => Skip::Bytes(8),
            Shape::Bytes | Shape::String => Skip::Sized,
            Shape::Fixed(fixed) => Skip::Bytes(fixed.size),
            Shape::Array(items) => Skip::Array(self.skip(items)?),
            Shape::Map(values) => Skip::Map(self.skip(values)?),
            Shape::Union(union) => {
                let branches = union
                    .variants()
                    .iter()
                    .map(|branch| self.skip(branch))
                    .collect::<Result<_, _>>()?;
                Skip::Union(branches)
            }
            Shape::Record(record) => {
                if let Some(id) = self.skip_memo.get(&record.name) {
                    return Ok(*id);
                }
                let id = self.add_skip(Skip::Pending);
                self.skip_memo.insert(record.name.clone(), id);
                let fields = record
                    .fields
                    .iter()
                    .map(|field| self.skip(&field.schema))
                    .collect::<Result<_, _>>()?;
                self.skips[id as usize] = Skip::Record(fields);
                return Ok(id);
            }
        };
        Ok(self.add_skip(skip))
    }

    fn copy(&mut self, writer: &'w Schema) -> Result<(StepId, bool), String> {
        let skip = self.skip(writer)?;
        Ok((self.add_step(Step::Copy(skip)), true))
    }

    /// The step reading `writer` data as `reader`, and whether both encode it identically.
    fn step(&mut self, writer: &'w Schema, reader: &'r Schema) -> Result<(StepId, bool), String> {
        let w = shape(writer, self.writer_names)?;
        let r = shape(reader, self.reader_names)?;
        if let (Some(wd), Some(rd)) = (
            decimal(writer, self.writer_names),
            decimal(reader, self.reader_names),
        ) && (wd.precision, wd.scale) != (rd.precision, rd.scale)
        {
            return Err(format!(
                "the writer's decimal({}, {}) is not the reader's decimal({}, {}): decimals \
                 match only with the same precision and scale",
                wd.precision, wd.scale, rd.precision, rd.scale
            ));
        }
        match (w, r) {
            (Shape::Union(wu), Shape::Union(ru)) => self.union_to_union(wu, ru, writer),
            (Shape::Union(wu), _) => self.union_to_plain(wu, reader, r),
            (_, Shape::Union(ru)) => {
                let (index, branch) = self.best_branch(w, ru)?.ok_or_else(|| {
                    format!(
                        "the writer's {} is none of the reader's union branches",
                        w.describe()
                    )
                })?;
                let (step, _) = self.step(writer, branch)?;
                Ok((self.add_step(Step::IntoUnion { index, step }), false))
            }
            _ => self.plain(writer, w, r),
        }
    }

    /// The first reader branch of the writer's type, else the first the writer's type promotes
    /// to.
    fn best_branch(
        &self,
        writer: Shape<'w>,
        reader: &'r UnionSchema,
    ) -> Result<Option<(u32, &'r Schema)>, String> {
        let mut promoted = None;
        for (index, branch) in reader.variants().iter().enumerate() {
            match fit(writer, shape(branch, self.reader_names)?) {
                Fit::Same => return Ok(Some((index as u32, branch))),
                Fit::Promoted if promoted.is_none() => promoted = Some((index as u32, branch)),
                _ => {}
            }
        }
        Ok(promoted)
    }

    fn union_to_union(
        &mut self,
        writer: &'w UnionSchema,
        reader: &'r UnionSchema,
        whole: &'w Schema,
    ) -> Result<(StepId, bool), String> {
        let mut branches = Vec::with_capacity(writer.variants().len());
        let mut identity = writer.variants().len() == reader.variants().len();
        for (at, branch) in writer.variants().iter().enumerate() {
            let w = shape(branch, self.writer_names)?;
            let resolved = match self.best_branch(w, reader)? {
                None => Err(format!(
                    "the writer's union branch {} has no counterpart in the reader's union",
                    w.describe()
                )),
                Some((index, target)) => self
                    .step(branch, target)
                    .map(|(step, same)| (index, step, same)),
            };
            branches.push(match resolved {
                Ok((index, step, same)) => {
                    identity &= same && index as usize == at;
                    Branch::Readable {
                        index: Some(index),
                        step,
                    }
                }
                Err(why) => {
                    identity = false;
                    Branch::Unreadable(why.into())
                }
            });
        }
        if identity {
            return self.copy(whole);
        }
        if branches.iter().all(|b| matches!(b, Branch::Unreadable(_))) {
            return Err("none of the writer's union branches can be read".to_owned());
        }
        Ok((self.add_step(Step::Union(branches.into())), false))
    }

    fn union_to_plain(
        &mut self,
        writer: &'w UnionSchema,
        reader: &'r Schema,
        r: Shape<'r>,
    ) -> Result<(StepId, bool), String> {
        let mut branches = Vec::with_capacity(writer.variants().len());
        for branch in writer.variants() {
            let w = shape(branch, self.writer_names)?;
            let resolved = if fit(w, r) == Fit::No {
                Err(format!(
                    "the writer's union branch {} cannot be read as the reader's {}",
                    w.describe(),
                    r.describe()
                ))
            } else {
                self.step(branch, reader).map(|(step, _)| step)
            };
            branches.push(match resolved {
                Ok(step) => Branch::Readable { index: None, step },
                Err(why) => Branch::Unreadable(why.into()),
            });
        }
        if branches.iter().all(|b| matches!(b, Branch::Unreadable(_))) {
            return Err(format!(
                "no branch of the writer's union can be read as the reader's {}",
                r.describe()
            ));
        }
        Ok((self.add_step(Step::Union(branches.into())), false))
    }

    fn plain(
        &mut self,
        writer: &'w Schema,
        w: Shape<'w>,
        r: Shape<'r>,
    ) -> Result<(StepId, bool), String> {
        let step = match (w, r) {
            (Shape::Null, Shape::Null)
            | (Shape::Boolean, Shape::Boolean)
            | (Shape::Int, Shape::Int | Shape::Long)
            | (Shape::Long, Shape::Long)
            | (Shape::Float, Shape::Float)
            | (Shape::Double, Shape::Double)
            | (Shape::Bytes | Shape::String, Shape::Bytes | Shape::String) => {
                return self.copy(writer);
            }
            (Shape::Int, Shape::Float) => Step::Promote(Promotion::IntToFloat),
            (Shape::Int, Shape::Double) => Step::Promote(Promotion::IntToDouble),
            (Shape::Long, Shape::Float) => Step::Promote(Promotion::LongToFloat),
            (Shape::Long, Shape::Double) => Step::Promote(Promotion::LongToDouble),
            (Shape::Float, Shape::Double) => Step::Promote(Promotion::FloatToDouble),
            (Shape::Fixed(wf), Shape::Fixed(rf)) => {
                if !names_match(&wf.name, &rf.name, &rf.aliases) {
                    return Err(format!(
                        "the writer's fixed {} is not the reader's fixed {}",
                        wf.name, rf.name
                    ));
                }
                if wf.size != rf.size {
                    return Err(format!(
                        "fixed {} has {} bytes in the writer schema and {} in the reader's",
                        rf.name, wf.size, rf.size
                    ));
                }
                return self.copy(writer);
            }
            (Shape::Enum(we), Shape::Enum(re)) => {
                if !names_match(&we.name, &re.name, &re.aliases) {
                    return Err(format!(
                        "the writer's enum {} is not the reader's enum {}",
                        we.name, re.name
                    ));
                }
                if we.symbols == re.symbols {
                    return self.copy(writer);
                }
                let default = re
                    .default
                    .as_ref()
                    .and_then(|d| re.symbols.iter().position(|s| s == d));
                let targets = we
                    .symbols
                    .iter()
                    .map(|symbol| {
                        re.symbols
                            .iter()
                            .position(|s| s == symbol)
                            .or(default)
                            .map(|i| i as u32)
                    })
                    .collect();
                Step::Enum {
                    targets,
                    symbols: we.symbols.clone().into(),
                }
            }
            (Shape::Array(wi), Shape::Array(ri)) => {
                let (item, same) = self.step(wi, ri).map_err(|e| format!("array items: {e}"))?;
                if same {
                    return self.copy(writer);
                }
                Step::Array(item)
            }
            (Shape::Map(wv), Shape::Map(rv)) => {
                let (value, same) = self.step(wv, rv).map_err(|e| format!("map values: {e}"))?;
                if same {
                    return self.copy(writer);
                }
                Step::Map(value)
            }
            (Shape::Record(wr), Shape::Record(rr)) => return self.record(writer, wr, rr),
            _ => {
                return Err(format!(
                    "the writer's {} cannot be read as the reader's {}",
                    w.describe(),
                    r.describe()
                ));
            }
        };
        Ok((self.add_step(step), false))
    }

    fn record(
        &mut self,
        whole: &'w Schema,
        writer: &'w RecordSchema,
        reader: &'r RecordSchema,
    ) -> Result<(StepId, bool), String> {
        if !names_match(&writer.name, &reader.name, &reader.aliases) {
            return Err(format!(
                "the writer's record {} is not the reader's record {}",
                writer.name, reader.name
            ));
        }
        let key = (writer.name.clone(), reader.name.clone());
        match self.step_memo.get(&key) {
            // Compiled already, or a recursive reference to the record being compiled (which
            // is never taken as a plain copy).
            Some(Ok(id)) => {
                let same = matches!(self.steps[*id as usize], Step::Copy(_));
                return Ok((*id, same));
            }
            Some(Err(why)) => return Err(why.clone()),
            None => {}
        }
        let id = self.add_step(Step::Pending);
        let mark = self.step_order.len();
        self.step_memo.insert(key.clone(), Ok(id));
        self.step_order.push(key.clone());
        let compiled = self.record_fields(whole, writer, reader, id);
        if let Err(why) = &compiled {
            // A writer union branch may fail here and the same pair be used again elsewhere:
            // nothing may keep the step left pending, so the pairs compiled since are forgotten
            // (and compiled again if used) and this one is remembered as refused.
            for forgotten in self.step_order.drain(mark..) {
                self.step_memo.remove(&forgotten);
            }
            self.step_memo.insert(key, Err(why.clone()));
        }
        compiled
    }

    /// Compiles a record pair into the step `id`, left pending by [`Self::record`].
    fn record_fields(
        &mut self,
        whole: &'w Schema,
        writer: &'w RecordSchema,
        reader: &'r RecordSchema,
        id: StepId,
    ) -> Result<(StepId, bool), String> {
        // The writer field each reader field reads from: by name, else by a reader alias.
        let mut source: Vec<Option<usize>> = vec![None; reader.fields.len()];
        let mut claimed = vec![false; writer.fields.len()];
        for (at, field) in reader.fields.iter().enumerate() {
            let by_name = writer.fields.iter().position(|w| w.name == field.name);
            let by_alias = || {
                writer
                    .fields
                    .iter()
                    .position(|w| field.aliases.contains(&w.name))
            };
            if let Some(w) = by_name.or_else(by_alias).filter(|w| !claimed[*w]) {
                claimed[w] = true;
                source[at] = Some(w);
            }
        }
        let mut target: Vec<Option<u32>> = vec![None; writer.fields.len()];
        for (at, w) in source.iter().enumerate() {
            if let Some(w) = w {
                target[*w] = Some(at as u32);
            }
        }

        let mut defaults: Vec<Option<Box<[u8]>>> = Vec::with_capacity(reader.fields.len());
        for (field, w) in reader.fields.iter().zip(&source) {
            defaults.push(match (w, &field.default) {
                (Some(_), _) => None,
                (None, Some(default)) => {
                    let mut bytes = Vec::new();
                    encode_default(default, &field.schema, self.reader_names, &mut bytes)
                        .map_err(|e| format!("default of field {}: {e}", field.name))?;
                    Some(bytes.into())
                }
                (None, None) => {
                    return Err(format!(
                        "record {}: the reader's field {} has no default and the writer has no \
                         such field",
                        reader.name, field.name
                    ));
                }
            });
        }

        // Writer fields in order: read into their reader field, or skipped.
        let mut identity = writer.fields.len() == reader.fields.len();
        let mut fields: Vec<(Action, Option<u32>, bool)> = Vec::new();
        for (at, field) in writer.fields.iter().enumerate() {
            match target[at] {
                Some(to) => {
                    let (step, same) = self
                        .step(&field.schema, &reader.fields[to as usize].schema)
                        .map_err(|e| {
                            format!("record {}, field {}: {e}", reader.name, field.name)
                        })?;
                    identity &= same && to as usize == at;
                    fields.push((Action::Read(step), Some(to), same));
                }
                None => {
                    identity = false;
                    let skip = self.skip(&field.schema)?;
                    fields.push((Action::Skip(skip), None, false));
                }
            }
        }
        if identity {
            let skip = self.skip(whole)?;
            self.steps[id as usize] = Step::Copy(skip);
            return Ok((id, true));
        }

        let in_order = target
            .iter()
            .flatten()
            .zip(target.iter().flatten().skip(1))
            .all(|(a, b)| a < b);
        let step = if in_order {
            // Defaults go where their field is; identical fields in a row are copied together.
            let mut actions: Vec<Action> = Vec::new();
            let mut next = 0usize;
            let push = |actions: &mut Vec<Action>, action: Action, copies: Option<SkipId>| match (
                actions.last_mut(),
                copies,
            ) {
                (Some(Action::Copy(run)), Some(skip)) => run.push(skip),
                (_, Some(skip)) => actions.push(Action::Copy(vec![skip])),
                (_, None) => actions.push(action),
            };
            for (action, to, same) in fields {
                if let Some(to) = to {
                    for default in defaults[next..to as usize].iter_mut() {
                        let bytes = default.take().unwrap_or_default();
                        push(&mut actions, Action::Default(bytes), None);
                    }
                    next = to as usize + 1;
                }
                let copies = match (&action, same) {
                    (Action::Read(step), true) => match self.steps[*step as usize] {
                        Step::Copy(skip) => Some(skip),
                        _ => None,
                    },
                    _ => None,
                };
                push(&mut actions, action, copies);
            }
            for default in defaults[next..].iter_mut() {
                let bytes = default.take().unwrap_or_default();
                push(&mut actions, Action::Default(bytes), None);
            }
            Step::Record {
                actions: actions.into(),
                targets: None,
            }
        } else {
            let mut actions = Vec::new();
            let mut targets = Vec::new();
            for (action, to, _) in fields {
                actions.push(action);
                targets.push(to);
            }
            for (at, default) in defaults.into_iter().enumerate() {
                if let Some(bytes) = default {
                    actions.push(Action::Default(bytes));
                    targets.push(Some(at as u32));
                }
            }
            Step::Record {
                actions: actions.into(),
                targets: Some(targets.into()),
            }
        };
        self.steps[id as usize] = step;
        Ok((id, false))
    }
}

/// Appends the binary encoding of a field default, given as JSON, in `schema`.
fn encode_default(
    default: &Json,
    schema: &Schema,
    names: &NamesRef<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let wrong = || format!("{default} is not a valid default for this type");
    let integer = || default.as_i64().ok_or_else(wrong);
    match shape(schema, names)? {
        Shape::Null => default.is_null().then_some(()).ok_or_else(wrong)?,
        Shape::Boolean => out.push(u8::from(default.as_bool().ok_or_else(wrong)?)),
        Shape::Int => {
            let value = integer()?;
            i32::try_from(value).map_err(|_| wrong())?;
            write_long(out, value);
        }
        Shape::Long => write_long(out, integer()?),
        Shape::Float => {
            let value = default.as_f64().ok_or_else(wrong)?;
            out.extend_from_slice(&(value as f32).to_le_bytes());
        }
        Shape::Double => {
            let value = default.as_f64().ok_or_else(wrong)?;
            out.extend_from_slice(&value.to_le_bytes());
        }
        Shape::String => {
            let text = default.as_str().ok_or_else(wrong)?;
            write_long(out, text.len() as i64);
            out.extend_from_slice(text.as_bytes());
        }
        Shape::Bytes => {
            let bytes = json_bytes(default).ok_or_else(wrong)?;
            write_long(out, bytes.len() as i64);
            out.extend_from_slice(&bytes);
        }
        Shape::Fixed(fixed) => {
            let bytes = json_bytes(default)
                .filter(|b| b.len() == fixed.size)
                .ok_or_else(wrong)?;
            out.extend_from_slice(&bytes);
        }
        Shape::Enum(e) => {
            let symbol = default.as_str().ok_or_else(wrong)?;
            let index = e
                .symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| format!("{symbol} is not a symbol of enum {}", e.name))?;
            write_long(out, index as i64);
        }
        Shape::Array(items) => {
            let values = default.as_array().ok_or_else(wrong)?;
            if !values.is_empty() {
                write_long(out, values.len() as i64);
                for value in values {
                    encode_default(value, items, names, out)?;
                }
            }
            out.push(0);
        }
        Shape::Map(types) => {
            let entries = default.as_object().ok_or_else(wrong)?;
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (key, value) in entries {
                    write_long(out, key.len() as i64);
                    out.extend_from_slice(key.as_bytes());
                    encode_default(value, types, names, out)?;
                }
            }
            out.push(0);
        }
        Shape::Record(record) => {
            let object = default.as_object().ok_or_else(wrong)?;
            for field in &record.fields {
                let value = object
                    .get(&field.name)
                    .or(field.default.as_ref())
                    .ok_or_else(|| format!("no value for field {}", field.name))?;
                encode_default(value, &field.schema, names, out)?;
            }
        }
        Shape::Union(union) => {
            // The specification's rule is the first branch; a later one that fits is accepted
            // as newer versions of the specification do.
            let start = out.len();
            let mut found = false;
            for (index, branch) in union.variants().iter().enumerate() {
                write_long(out, index as i64);
                if encode_default(default, branch, names, out).is_ok() {
                    found = true;
                    break;
                }
                out.truncate(start);
            }
            if !found {
                return Err(format!("{default} fits no branch of the union"));
            }
        }
    }
    Ok(())
}

/// A `bytes` or `fixed` default: a JSON string whose code points 0-255 are the bytes.
fn json_bytes(default: &Json) -> Option<Vec<u8>> {
    default
        .as_str()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod differential;
