//! Commands of a team beyond its share of the sink's memory wait on local disk, in order, until
//! the team's records held in memory leave room for them.
//!
//! The sink bounds the commands it holds in memory. Without a share per team, one team's backlog
//! (an import upstream, a team paused by HubSpot) would fill that bound, and reading would stop
//! for every team: the live events of the others, behind the backlog on the same partitions,
//! would wait until it was written. With the overflow on disk, reading goes on, and each team's
//! commands are taken back in the order they were read.
//!
//! Each team with commands waiting has one file in the overflow directory, written at its end
//! and read from its start (a length, then the message), removed once read to its end. Nothing
//! here is acknowledged: the offsets of what waits stay unstored, so after a crash or a restart
//! Kafka hands it out again. That is why the directory is emptied when the sink starts.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::outcomes::Original;

/// Commands of every team waiting on disk, each team's in the order they were read.
pub struct Spill {
    dir: PathBuf,
    queues: HashMap<Arc<str>, Queue>,
    len: usize,
    /// The number of the next file made.
    next: u64,
}

/// One team's file.
struct Queue {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Commands written and not read yet.
    waiting: usize,
    /// Whether the writer holds bytes the reader cannot see yet.
    unflushed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the sink's overflow on disk at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("a command kept on disk for its team cannot be read back: {0}")]
    Unreadable(&'static str),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpillError + '_ {
    move |source| SpillError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Spill {
    /// The overflow kept in `dir`, emptied: what it held was never acknowledged, and is read
    /// again from Kafka.
    pub fn open(dir: &Path) -> Result<Spill, SpillError> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(io_error(dir))?;
        }
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        Ok(Spill {
            dir: dir.to_path_buf(),
            queues: HashMap::new(),
            len: 0,
            next: 0,
        })
    }

    /// Whether commands of `team` wait here: its next ones must wait behind them.
    pub fn holds(&self, team: &str) -> bool {
        self.queues.contains_key(team)
    }

    /// Commands waiting, of every team.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The teams with commands waiting.
    pub fn teams(&self) -> Vec<Arc<str>> {
        self.queues.keys().cloned().collect()
    }

    /// Keeps `message`, a command of `team`, behind the team's others.
    pub fn push(&mut self, team: &Arc<str>, message: &Original) -> Result<(), SpillError> {
        if !self.queues.contains_key(team) {
            let path = self.dir.join(format!("{}.spill", self.next));
            self.next += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io_error(&path))?;
            let reader = File::open(&path).map_err(io_error(&path))?;
            let queue = Queue {
                writer: BufWriter::with_capacity(64 * 1024, file),
                reader: BufReader::with_capacity(64 * 1024, reader),
                path,
                waiting: 0,
                unflushed: false,
            };
            self.queues.insert(team.clone(), queue);
        }
        let Some(queue) = self.queues.get_mut(team) else {
            return Ok(());
        };
        let bytes = encode(message);
        let written = queue
            .writer
            .write_all(&(bytes.len() as u32).to_be_bytes())
            .and_then(|()| queue.writer.write_all(&bytes));
        written.map_err(io_error(&queue.path))?;
        queue.waiting += 1;
        queue.unflushed = true;
        self.len += 1;
        metrics::gauge!("hubsync_sink_spilled_commands").set(self.len as f64);
        Ok(())
    }

    /// Takes back the oldest command of `team`. One that cannot be read back is taken out all
    /// the same (and its error returned): its offset stays unstored, so it is read again from
    /// Kafka at the next start.
    pub fn pop(&mut self, team: &Arc<str>) -> Result<Option<Original>, SpillError> {
        let Some(queue) = self.queues.get_mut(team) else {
            return Ok(None);
        };
        if queue.unflushed {
            queue.writer.flush().map_err(io_error(&queue.path))?;
            queue.unflushed = false;
        }
        let read = read_one(&mut queue.reader);
        queue.waiting -= 1;
        self.len = self.len.saturating_sub(1);
        metrics::gauge!("hubsync_sink_spilled_commands").set(self.len as f64);
        if queue.waiting == 0 {
            // Read to its end: gone, and the team's next command starts a new file.
            if let Some(queue) = self.queues.remove(team) {
                let _ = fs::remove_file(&queue.path);
            }
        }
        Ok(Some(read?))
    }

    /// Forgets what waits of `team` (its partition went to another instance, which reads it
    /// from Kafka); returns how many commands that was.
    pub fn clear_team(&mut self, team: &Arc<str>) -> usize {
        let Some(queue) = self.queues.remove(team) else {
            return 0;
        };
        let _ = fs::remove_file(&queue.path);
        self.len = self.len.saturating_sub(queue.waiting);
        metrics::gauge!("hubsync_sink_spilled_commands").set(self.len as f64);
        queue.waiting
    }

    /// Forgets everything waiting (the sink stops; Kafka hands it out again); returns how many
    /// commands that was.
    pub fn clear(&mut self) -> usize {
        for (_, queue) in self.queues.drain() {
            let _ = fs::remove_file(&queue.path);
        }
        metrics::gauge!("hubsync_sink_spilled_commands").set(0.0);
        std::mem::take(&mut self.len)
    }
}

/// One command as [`Spill::push`] wrote it.
fn read_one(reader: &mut BufReader<File>) -> Result<Original, SpillError> {
    let mut len = [0u8; 4];
    reader
        .read_exact(&mut len)
        .map_err(|_| SpillError::Unreadable("its file ends before its length"))?;
    let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
    reader
        .read_exact(&mut bytes)
        .map_err(|_| SpillError::Unreadable("its file ends before its bytes"))?;
    decode(&bytes).map_err(|Unreadable(why)| SpillError::Unreadable(why))
}

/// Why bytes do not read back as a message.
#[derive(Debug)]
struct Unreadable(&'static str);

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.push(0),
    }
}

/// A message as bytes: topic, partition, offset, timestamp, key, value, then its headers.
fn encode(message: &Original) -> Vec<u8> {
    let size = message.value.as_ref().map_or(0, Vec::len)
        + message.key.as_ref().map_or(0, Vec::len)
        + message.topic.len()
        + 64;
    let mut out = Vec::with_capacity(size);
    put_bytes(&mut out, Some(message.topic.as_bytes()));
    out.extend_from_slice(&message.partition.to_be_bytes());
    out.extend_from_slice(&message.offset.to_be_bytes());
    match message.timestamp {
        Some(ms) => {
            out.push(1);
            out.extend_from_slice(&ms.to_be_bytes());
        }
        None => out.push(0),
    }
    put_bytes(&mut out, message.key.as_deref());
    put_bytes(&mut out, message.value.as_deref());
    out.extend_from_slice(&(message.headers.len() as u32).to_be_bytes());
    for (name, value) in &message.headers {
        put_bytes(&mut out, Some(name.as_bytes()));
        put_bytes(&mut out, value.as_deref());
    }
    out
}

/// Reads what [`encode`] wrote.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Unreadable> {
        if self.0.len() < n {
            return Err(Unreadable("it ends too early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Unreadable> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn flag(&mut self) -> Result<bool, Unreadable> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Unreadable("a presence flag is neither 0 nor 1")),
        }
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, Unreadable> {
        if !self.flag()? {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.array()?) as usize;
        Ok(Some(self.take(len)?.to_vec()))
    }

    fn text(&mut self) -> Result<String, Unreadable> {
        let bytes = self.bytes()?.ok_or(Unreadable("a name is missing"))?;
        String::from_utf8(bytes).map_err(|_| Unreadable("a name is not UTF-8"))
    }
}

fn decode(bytes: &[u8]) -> Result<Original, Unreadable> {
    let mut reader = Reader(bytes);
    let topic = reader.text()?;
    let partition = i32::from_be_bytes(reader.array()?);
    let offset = i64::from_be_bytes(reader.array()?);
    let timestamp = if reader.flag()? {
        Some(i64::from_be_bytes(reader.array()?))
    } else {
        None
    };
    let key = reader.bytes()?;
    let value = reader.bytes()?;
    let count = u32::from_be_bytes(reader.array()?) as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        headers.push((reader.text()?, reader.bytes()?));
    }
    if !reader.0.is_empty() {
        return Err(Unreadable("bytes are left after its last header"));
    }
    Ok(Original {
        topic,
        partition,
        offset,
        timestamp,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64) -> Original {
        Original {
            topic: "hubspot.commands".into(),
            partition: 3,
            offset,
            timestamp: Some(1_700_000_000_000 + offset),
            key: Some(b"portal-1".to_vec()),
            value: Some(vec![0, 0, 0, 0, 7, 1, 2, 3]),
            headers: vec![
                ("hubsync.replay.run".into(), Some(b"backfill-1".to_vec())),
                ("empty".into(), None),
            ],
        }
    }

    fn open() -> (tempfile::TempDir, Spill) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let spill = Spill::open(&dir.path().join("spill")).expect("opens");
        (dir, spill)
    }

    #[test]
    fn a_message_reads_back_as_it_was_written() {
        for original in [
            message(42),
            Original {
                timestamp: None,
                key: None,
                value: None,
                headers: Vec::new(),
                ..message(0)
            },
        ] {
            assert_eq!(decode(&encode(&original)).expect("decodes"), original);
        }
    }

    #[test]
    fn damaged_bytes_are_refused_not_misread() {
        let bytes = encode(&message(42));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "cut short");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err(), "trailing bytes");
        let mut flag = bytes;
        flag[0] = 9;
        assert!(decode(&flag).is_err(), "a flag that is not 0 or 1");
    }

    #[test]
    fn each_team_gets_its_commands_back_in_order_and_apart() {
        let (_dir, mut spill) = open();
        let (a, b, ab): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "ab".into());
        for offset in 0..5 {
            spill.push(&a, &message(offset)).expect("kept");
            spill.push(&ab, &message(100 + offset)).expect("kept");
        }
        spill.push(&b, &message(50)).expect("kept");
        assert_eq!(spill.len(), 11);
        assert!(spill.holds("a") && spill.holds("b") && !spill.holds("c"));
        let offsets = |spill: &mut Spill, team: &Arc<str>| -> Vec<i64> {
            std::iter::from_fn(|| spill.pop(team).expect("reads back"))
                .map(|m| m.offset)
                .collect()
        };
        assert_eq!(offsets(&mut spill, &a), vec![0, 1, 2, 3, 4]);
        assert!(!spill.holds("a"), "a team taken back whole holds nothing");
        assert_eq!(offsets(&mut spill, &b), vec![50]);
        assert_eq!(offsets(&mut spill, &ab), vec![100, 101, 102, 103, 104]);
        assert!(spill.is_empty() && spill.teams().is_empty());
        let files = std::fs::read_dir(&spill.dir)
            .expect("the directory")
            .count();
        assert_eq!(files, 0, "every file read to its end is removed");
    }

    #[test]
    fn a_team_written_while_it_is_read_keeps_its_order() {
        let (_dir, mut spill) = open();
        let team: Arc<str> = "a".into();
        let mut taken = Vec::new();
        for offset in 0..1_000 {
            spill.push(&team, &message(offset)).expect("kept");
            if offset % 3 == 0 {
                taken.push(spill.pop(&team).expect("reads back").expect("one").offset);
            }
        }
        while let Some(message) = spill.pop(&team).expect("reads back") {
            taken.push(message.offset);
        }
        assert_eq!(taken, (0..1_000).collect::<Vec<i64>>());
    }

    #[test]
    fn what_waited_is_forgotten_at_the_next_start() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("spill");
        let team: Arc<str> = "a".into();
        let mut spill = Spill::open(&path).expect("opens");
        spill.push(&team, &message(1)).expect("kept");
        spill.push(&team, &message(2)).expect("kept");
        drop(spill);
        let mut again = Spill::open(&path).expect("opens again");
        assert!(again.is_empty());
        assert_eq!(again.pop(&team).expect("reads"), None);
        again.push(&team, &message(3)).expect("kept");
        assert_eq!(again.clear(), 1);
        assert_eq!(again.pop(&team).expect("reads"), None);
        assert_eq!(std::fs::read_dir(&path).expect("the directory").count(), 0);
    }
}
