//! A replay run's progress, in `state.dir/replay/<run>.json`: what it selected, each
//! partition's span and the first offset not yet delivered to the replay topic, and its counts.
//!
//! The copier writes the file after every chunk the broker has taken (a temporary file renamed
//! over the old one, so a crash leaves one or the other whole). `running` is set while an
//! invocation copies and cleared when it stops cleanly: found set, the previous invocation was
//! killed, and records past the checkpoint may already be on the replay topic.
//!
//! ```json
//! {"version": 1, "run": "mapping-v2", "selection": {"time": {"topic": "crm.contact.changes", "since": 1795348800000, "until": null}},
//!  "spans": [{"topic": "crm.contact.changes", "partition": 0, "start": 0, "end": 1204, "next": 812}], "copied": 812, ...}
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{Selection, Span};

/// The checkpoint format this build reads and writes.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the replay checkpoint {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the replay checkpoint {path} is not one this hubsync reads ({reason}); start a new run under another --name"
    )]
    Corrupt { path: String, reason: String },
    #[error(
        "cannot write the replay checkpoint {path}: {source}; check state.dir exists and is writable"
    )]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub run: String,
    pub selection: Selection,
    /// The topic the copies go to.
    pub replay_topic: String,
    pub spans: Vec<Span>,
    /// Records delivered to the replay topic, over every invocation.
    pub copied: u64,
    /// Records read inside the spans whose timestamps are outside the selection's window.
    pub outside_window: u64,
    /// Records found on the replay topic already after an invocation was killed, not copied
    /// again.
    pub already_copied: u64,
    /// Selected positions no longer on their topic (retention), left out.
    pub missing: u64,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// An invocation is copying, or was killed while it was.
    pub running: bool,
    pub done: bool,
}

impl Checkpoint {
    pub fn new(
        run: &str,
        selection: Selection,
        replay_topic: &str,
        spans: Vec<Span>,
        now_ms: i64,
    ) -> Self {
        let done = spans.iter().all(Span::is_done);
        Checkpoint {
            version: VERSION,
            run: run.to_string(),
            selection,
            replay_topic: replay_topic.to_string(),
            spans,
            copied: 0,
            outside_window: 0,
            already_copied: 0,
            missing: 0,
            started_ms: now_ms,
            updated_ms: now_ms,
            running: false,
            done,
        }
    }

    /// Records of the run not yet copied.
    pub fn remaining(&self) -> u64 {
        self.spans.iter().map(Span::remaining).sum()
    }

    /// Records the run covers in all.
    pub fn size(&self) -> u64 {
        self.spans.iter().map(Span::size).sum()
    }

    /// The topics the run copies from.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.spans.iter().map(|s| s.topic.clone()).collect();
        if let Some(topic) = self.selection.topic() {
            topics.push(topic.to_string());
        }
        topics.sort();
        topics.dedup();
        topics
    }
}

/// Where run `run`'s checkpoint lives under the state directory.
pub fn path(state_dir: &Path, run: &str) -> PathBuf {
    state_dir.join("replay").join(format!("{run}.json"))
}

/// The checkpoint at `path`, or `None` when the run has none yet.
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if checkpoint.version != VERSION {
        return Err(corrupt(format!(
            "format version {}, this build reads {VERSION}",
            checkpoint.version
        )));
    }
    Ok(Some(checkpoint))
}

/// Writes `checkpoint` to `path` whole: a temporary file beside it, synced, then renamed.
pub fn save(checkpoint: &Checkpoint, path: &Path) -> Result<(), CheckpointError> {
    let failed = |source| CheckpointError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let text = serde_json::to_vec_pretty(checkpoint).map_err(|e| failed(e.into()))?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(&text).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        let spans = vec![
            Span {
                topic: "crm.contact.changes".into(),
                partition: 0,
                start: 0,
                end: 100,
                next: 40,
                only: Vec::new(),
            },
            Span {
                topic: "crm.contact.changes".into(),
                partition: 1,
                start: 5,
                end: 9,
                next: 5,
                only: vec![5, 8],
            },
        ];
        Checkpoint::new(
            "mapping-v2",
            Selection::Time {
                topic: "crm.contact.changes".into(),
                since: 0,
                until: None,
            },
            "hubsync.replay",
            spans,
            1_795_348_800_000,
        )
    }

    #[test]
    fn a_checkpoint_is_written_whole_and_read_back() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let at = path(dir.path(), "mapping-v2");
        assert_eq!(at, dir.path().join("replay/mapping-v2.json"));
        assert_eq!(load(&at).expect("no file is no checkpoint"), None);
        let mut written = checkpoint();
        save(&written, &at).expect("saved");
        written.spans[0].next = 100;
        written.copied = 100;
        save(&written, &at).expect("saved over");
        assert_eq!(load(&at).expect("read"), Some(written.clone()));
        assert!(!at.with_extension("json.tmp").exists());
        assert_eq!(written.remaining(), 2);
        assert_eq!(written.size(), 102);
        assert_eq!(written.topics(), ["crm.contact.changes"]);
    }

    #[test]
    fn an_unreadable_checkpoint_names_its_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let at = path(dir.path(), "broken");
        std::fs::create_dir_all(at.parent().expect("parent")).expect("dir");
        std::fs::write(&at, "{\"version\": 1").expect("write");
        let error = load(&at).expect_err("corrupt").to_string();
        assert!(error.contains("broken.json"), "{error}");
        let mut future = serde_json::to_value(checkpoint()).expect("json");
        future["version"] = 9.into();
        std::fs::write(&at, future.to_string()).expect("write");
        let error = load(&at).expect_err("newer format").to_string();
        assert!(error.contains("version 9"), "{error}");
    }
}
