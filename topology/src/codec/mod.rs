//! Avro in Confluent's wire format, with writer schemas from a schema registry.
//!
//! Input records carry the id of the schema they were written with; [`AvroCodec`] fetches that
//! schema once, caches it, and reads each datum as this build's record type, resolving an older
//! or newer producer's schema to ours (defaults for fields the producer did not have, `UNKNOWN`
//! for enum symbols we do not know). Output records are written with the embedded schema,
//! registered once per subject ([`AvroCodec::writer`]).
//!
//! ```text
//! 00 00 00 00 2a 0a 30 62 ...  --decode::<ContactChanged>-->  ContactChanged { .. }
//! ```
//!
//! The hot path, [`AvroCodec::decode_cached`], is synchronous and touches only the cache: a
//! writer schema equal to ours (canonical form) is read directly; any other is rewritten to our
//! schema's encoding by a resolution compiled once per (schema id, record type).
//! On [`DecodeError::NotCached`] the caller awaits [`AvroCodec::decode`] once, which fetches.
//!
//! # Layout
//! - [`framing`]: the magic byte and schema id in front of every datum.
//! - [`registry`]: the registry's REST API and how its failures are classified.
//! - `resolve`: schema resolution compiled to a byte-rewriting program.
//! - `cache`: the bounded map of writer schemas by id.
//! - [`error`]: decode, encode and registration failures, with reason codes and error classes.

mod cache;
pub(crate) mod error;
pub(crate) mod framing;
pub(crate) mod registry;
mod resolve;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use hubsync_schemas::{AvroRecord, SchemaError, SchemaKind};
use tokio::sync::OnceCell;

use self::cache::BoundedCache;

pub use self::error::{DecodeError, EncodeError, WriterError};
pub use self::framing::FrameError;
pub use self::registry::{RegisteredSchema, RegistryClient, RegistryError};
use self::resolve::Resolution;
use crate::lock;

/// Rewritten datums larger than this do not keep their buffer alive between records.
const SCRATCH_KEEP: usize = 1 << 20;

thread_local! {
    /// The buffer a datum is rewritten into before it is read, one per thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Decodes and encodes Confluent-framed Avro. Clones share the registry client and caches.
#[derive(Clone)]
pub struct AvroCodec {
    inner: Arc<Inner>,
}

struct Inner {
    registry: RegistryClient,
    schemas: RwLock<BoundedCache<WriterSchema>>,
    /// One fetch per id at a time: concurrent misses for an id wait for the same request.
    fetching: Mutex<HashMap<u32, Arc<OnceCell<Arc<WriterSchema>>>>>,
    /// Reader and writer of each record type, by `SchemaKind as usize`.
    kinds: Vec<KindCodec>,
    /// Ids of the output subjects registered so far.
    registered: Mutex<HashMap<(SchemaKind, String), u32>>,
}

/// This build's schema of one record type, ready to read and write.
struct KindCodec {
    kind: SchemaKind,
    schema: &'static Schema,
    canonical: String,
    reader: GenericDatumReader<'static>,
    writer: GenericDatumWriter<'static>,
}

/// A writer schema from the registry, and how to read it as each record type.
struct WriterSchema {
    id: u32,
    /// The schema, or why the registry's text does not parse.
    parsed: Result<Schema, String>,
    /// By `SchemaKind as usize`, compiled on first use.
    plans: [OnceLock<Result<Plan, String>>; 7],
}

enum Plan {
    /// Both schemas encode every datum the same way.
    Direct,
    Rewrite(Resolution),
}

impl WriterSchema {
    fn new(id: u32, parsed: Result<Schema, String>) -> Self {
        Self {
            id,
            parsed,
            plans: Default::default(),
        }
    }

    /// How to read this schema's data as `reader`'s type; compiled once.
    fn plan(&self, reader: &KindCodec) -> Result<&Plan, DecodeError> {
        self.plans[reader.kind as usize]
            .get_or_init(|| {
                let writer = self.parsed.as_ref().map_err(Clone::clone)?;
                if writer.canonical_form() == reader.canonical {
                    return Ok(Plan::Direct);
                }
                let resolution = Resolution::compile(writer, reader.schema)?;
                Ok(if resolution.is_identity() {
                    Plan::Direct
                } else {
                    Plan::Rewrite(resolution)
                })
            })
            .as_ref()
            .map_err(|reason| DecodeError::Incompatible {
                id: self.id,
                reason: format!("{}: {reason}", reader.kind),
            })
    }
}

impl AvroCodec {
    /// A codec asking `registry` for writer schemas, caching up to `cache_capacity` of them
    /// (`registry.cache_capacity`). Fails only if an embedded schema is broken.
    pub fn new(registry: RegistryClient, cache_capacity: usize) -> Result<Self, SchemaError> {
        let kinds = SchemaKind::ALL
            .into_iter()
            .map(KindCodec::new)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                schemas: RwLock::new(BoundedCache::new(cache_capacity)),
                fetching: Mutex::new(HashMap::new()),
                kinds,
                registered: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.inner.registry
    }

    /// Whether the writer schema `id` is cached.
    pub fn is_cached(&self, id: u32) -> bool {
        self.cached(id).is_some()
    }

    /// Decodes a record from the cache alone, never waiting: [`DecodeError::NotCached`] when its
    /// writer schema has not been fetched yet.
    pub fn decode_cached<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let (id, datum) = framing::split(bytes).map_err(DecodeError::NotConfluentFramed)?;
        // Read under the shared lock rather than cloning the entry out: no reference count
        // traffic between threads on the hot path. Inserts wait at most one decode.
        let schemas = self
            .inner
            .schemas
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let writer = schemas.get(id).ok_or(DecodeError::NotCached(id))?;
        self.read(writer, datum)
    }

    /// Decodes a record, fetching its writer schema from the registry when it is not cached.
    pub async fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let (id, datum) = framing::split(bytes).map_err(DecodeError::NotConfluentFramed)?;
        let writer = self.writer_schema(id).await?;
        self.read(&writer, datum)
    }

    /// Decodes a record as a pipeline stage must: from the cache when it can, and when the
    /// registry is unreachable, waiting with capped backoff until it answers rather than failing
    /// the record. Every other error (the bytes or the schema are wrong) returns at once.
    pub async fn decode_waiting<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        match self.decode_cached::<T>(bytes) {
            Err(DecodeError::NotCached(_)) => {}
            other => return other,
        }
        let mut backoff = std::time::Duration::from_millis(200);
        loop {
            match self.decode::<T>(bytes).await {
                Err(error) if error.is_retryable() => {
                    tracing::warn!(%error, "schema registry unavailable; waiting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
                }
                other => return other,
            }
        }
    }

    /// Decodes a record of any type as a generic value of its writer schema, for tools that show
    /// a payload without knowing what it is. Returns the schema id too.
    pub async fn decode_value(&self, bytes: &[u8]) -> Result<(u32, Value), DecodeError> {
        let (id, datum) = framing::split(bytes).map_err(DecodeError::NotConfluentFramed)?;
        let writer = self.writer_schema(id).await?;
        let schema = writer
            .parsed
            .as_ref()
            .map_err(|reason| DecodeError::Incompatible {
                id,
                reason: reason.clone(),
            })?;
        let malformed = |reason: String| DecodeError::Malformed { id, reason };
        let reader =
            GenericDatumReader::builder(schema)
                .build()
                .map_err(|e| DecodeError::Incompatible {
                    id,
                    reason: e.to_string(),
                })?;
        let mut rest = datum;
        let value = reader
            .read_value(&mut rest)
            .map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(trailing(rest.len())));
        }
        Ok((id, value))
    }

    /// A writer of `kind` records for `subject`: registers the embedded schema there (which
    /// finds it when it is registered already), or, when the registry refuses to register it,
    /// finds the identical schema already under the subject. Done once per kind and subject.
    pub async fn writer(&self, kind: SchemaKind, subject: &str) -> Result<Writer, WriterError> {
        let key = (kind, subject.to_owned());
        let known = lock(&self.inner.registered).get(&key).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let id = self.register(kind, subject).await?;
                lock(&self.inner.registered).insert(key, id);
                id
            }
        };
        // Our own records decode without asking the registry for the schema we just sent.
        let schema = kind.schema()?.clone();
        self.insert(WriterSchema::new(id, Ok(schema)));
        Ok(Writer {
            inner: Arc::clone(&self.inner),
            kind,
            id,
        })
    }

    async fn register(&self, kind: SchemaKind, subject: &str) -> Result<u32, WriterError> {
        let text = kind.source();
        let registry = &self.inner.registry;
        match registry.register(subject, text).await {
            Ok(id) => Ok(id),
            Err(refused @ RegistryError::Rejected { .. }) => {
                match registry.lookup(subject, text).await {
                    Ok(found) => {
                        tracing::warn!(
                            %kind,
                            subject,
                            id = found.id,
                            version = found.version,
                            error = %refused,
                            "registry refused to register the schema; using the identical \
                             version the subject holds"
                        );
                        Ok(found.id)
                    }
                    Err(lookup) => Err(WriterError::Refused {
                        kind,
                        subject: subject.to_owned(),
                        refused,
                        lookup,
                    }),
                }
            }
            Err(source) => Err(WriterError::Registry {
                kind,
                subject: subject.to_owned(),
                source,
            }),
        }
    }

    fn cached(&self, id: u32) -> Option<Arc<WriterSchema>> {
        let schemas = self
            .inner
            .schemas
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        schemas.get(id).cloned()
    }

    fn insert(&self, schema: WriterSchema) -> Arc<WriterSchema> {
        let mut schemas = self
            .inner
            .schemas
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        schemas.insert(schema.id, Arc::new(schema))
    }

    async fn writer_schema(&self, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        let registry = self.inner.registry.clone();
        self.fetch_schema(id, move |id| async move { registry.schema_by_id(id).await })
            .await
    }

    /// The cached writer schema `id`, or the one `fetch` returns, cached. Concurrent callers
    /// missing the same id share one fetch.
    async fn fetch_schema<F, Fut>(
        &self,
        id: u32,
        fetch: F,
    ) -> Result<Arc<WriterSchema>, DecodeError>
    where
        F: FnOnce(u32) -> Fut,
        Fut: Future<Output = Result<String, RegistryError>>,
    {
        if let Some(found) = self.cached(id) {
            return Ok(found);
        }
        let cell = Arc::clone(lock(&self.inner.fetching).entry(id).or_default());
        let result = cell
            .get_or_try_init(|| async {
                // Fetched by someone else between the cache check and here.
                if let Some(found) = self.cached(id) {
                    return Ok(found);
                }
                let text = fetch(id).await.map_err(|error| match error {
                    RegistryError::NotFound { .. } => DecodeError::UnknownSchemaId(id),
                    other => DecodeError::Registry(other),
                })?;
                let parsed = Schema::parse_str(&text)
                    .map_err(|e| format!("the registry's schema {id} does not parse: {e}"));
                Ok(self.insert(WriterSchema::new(id, parsed)))
            })
            .await
            .cloned();
        let mut fetching = lock(&self.inner.fetching);
        if fetching.get(&id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            fetching.remove(&id);
        }
        result
    }

    fn read<T: AvroRecord>(&self, writer: &WriterSchema, datum: &[u8]) -> Result<T, DecodeError> {
        let kind = &self.inner.kinds[T::KIND as usize];
        match writer.plan(kind)? {
            Plan::Direct => read_datum(kind, writer.id, datum),
            Plan::Rewrite(resolution) => SCRATCH.with(|scratch| {
                let mut own = Vec::new();
                let mut shared = scratch.try_borrow_mut();
                let buffer = match shared.as_deref_mut() {
                    Ok(buffer) => buffer,
                    Err(_) => &mut own,
                };
                buffer.clear();
                let result = resolution
                    .rewrite(datum, buffer)
                    .map_err(|error| match error {
                        resolve::RewriteError::Malformed(reason) => DecodeError::Malformed {
                            id: writer.id,
                            reason,
                        },
                        resolve::RewriteError::Unreadable(reason) => DecodeError::Incompatible {
                            id: writer.id,
                            reason,
                        },
                    })
                    .and_then(|()| read_datum(kind, writer.id, buffer));
                if buffer.capacity() > SCRATCH_KEEP {
                    *buffer = Vec::new();
                }
                result
            }),
        }
    }
}

/// Reads a datum of `kind`'s own schema.
fn read_datum<T: AvroRecord>(kind: &KindCodec, id: u32, datum: &[u8]) -> Result<T, DecodeError> {
    let mut rest = datum;
    let value = kind
        .reader
        .read_deser::<T>(&mut rest)
        .map_err(|e| DecodeError::Malformed {
            id,
            reason: e.to_string(),
        })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::Malformed {
            id,
            reason: trailing(rest.len()),
        })
    }
}

fn trailing(left: usize) -> String {
    format!("{left} bytes left after the datum: the bytes were not written with this schema")
}

impl KindCodec {
    fn new(kind: SchemaKind) -> Result<Self, SchemaError> {
        let schema = kind.schema()?;
        let parse = |source| SchemaError::Parse { kind, source };
        Ok(Self {
            kind,
            schema,
            canonical: schema.canonical_form(),
            reader: GenericDatumReader::builder(schema).build().map_err(parse)?,
            writer: GenericDatumWriter::builder(schema).build().map_err(parse)?,
        })
    }
}

impl fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .inner
            .schemas
            .read()
            .map(|schemas| schemas.len())
            .unwrap_or_default();
        f.debug_struct("AvroCodec")
            .field("registry", self.inner.registry.url())
            .field("cached_schemas", &cached)
            .finish_non_exhaustive()
    }
}

/// Encodes records of one kind for one subject, in Confluent's wire format, without asking the
/// registry again. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
    kind: SchemaKind,
    id: u32,
}

impl Writer {
    pub fn kind(&self) -> SchemaKind {
        self.kind
    }

    /// The registry id of the schema records are written with.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// The framed record: magic byte, schema id, datum.
    pub fn encode<T: AvroRecord>(&self, record: &T) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(record, &mut out)?;
        Ok(out)
    }

    /// Appends the framed record to `out`, which is left as it was on failure.
    pub fn encode_into<T: AvroRecord>(
        &self,
        record: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if T::KIND != self.kind {
            return Err(EncodeError::WrongKind {
                writer: self.kind,
                record: T::KIND,
            });
        }
        let start = out.len();
        out.extend_from_slice(&framing::header(self.id));
        let writer = &self.inner.kinds[self.kind as usize].writer;
        if let Err(source) = writer.write_ser(out, record) {
            out.truncate(start);
            return Err(EncodeError::Avro(SchemaError::Encode {
                record: self.kind.name(),
                source,
            }));
        }
        Ok(())
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("kind", &self.kind)
            .field("schema_id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests;
