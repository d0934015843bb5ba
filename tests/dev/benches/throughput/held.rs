//! Figure 5, memory: what the sink keeps per replayed command it holds, counted by the
//! allocator on the measuring thread alone (so the broker's, the sandbox's and every other
//! thread's memory is left out).
//!
//! `events` contact events over `events / 10` contacts (the replay figure's history) are
//! decided by the sandbox configuration's rules into commands, as the process stage makes them;
//! each is then held as the sink holds a replayed one: its receipt taken, its values merged into
//! its record in a replay coalescer, its message (an Avro-sized value, key and headers) never
//! made, as the sink never copies a replayed one out of Kafka's buffer. Beside it, for
//! comparison, the same commands kept whole with their messages, as the sink held them before it
//! kept receipts.
//!
//! Bytes are counted as glibc's malloc spends them (each block rounded up to 16 bytes with its
//! 8-byte header, 32 at least), and as requested.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use hubsync::config::Config;
use hubsync::lineage::Lineage;
use hubsync::outcomes::Original;
use hubsync::position::Position;
use hubsync::sink::coalesce::{Arriving, Coalescer};
use hubsync::sink::receipt::{Member, Names, Receipt};
use hubsync::sink::stage::command_key;
use hubsync_schemas::HubSpotCommand;

use crate::events::{self, Contact, Rng, Shape};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static REQUESTED: Cell<isize> = const { Cell::new(0) };
    static SPENT: Cell<isize> = const { Cell::new(0) };
}

/// The bench's allocator: the system's, counting on a thread that asks it to.
pub struct Counting;

fn spent(size: usize) -> isize {
    (((size + 8).div_ceil(16) * 16).max(32)) as isize
}

fn count(size: usize, sign: isize) {
    // `try_with`: a thread being torn down has no counters left, and counts nothing.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = REQUESTED.try_with(|r| r.set(r.get() + sign * size as isize));
            let _ = SPENT.try_with(|s| s.set(s.get() + sign * spent(size)));
        }
    });
}

// SAFETY: every call is passed on to `System` unchanged; the counting touches only
// thread-local cells and allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        moved
    }
}

/// What `work` leaves allocated on this thread: (as malloc spends it, as requested).
fn retained<T>(work: impl FnOnce() -> T) -> (T, isize, isize) {
    let before = (REQUESTED.with(Cell::get), SPENT.with(Cell::get));
    COUNTING.with(|on| on.set(true));
    let kept = work();
    COUNTING.with(|on| on.set(false));
    let after = (REQUESTED.with(Cell::get), SPENT.with(Cell::get));
    (kept, after.1 - before.1, after.0 - before.0)
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub events: usize,
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    pub commands: usize,
    pub records: usize,
    /// Bytes per held command, as malloc spends them and as requested.
    pub receipt: (f64, f64),
    /// The same commands kept whole with their messages.
    pub whole: (f64, f64),
    pub took: Duration,
}

pub fn measure(params: Params) -> Figures {
    let began = Instant::now();
    let text = events::sandbox_config_text(
        "127.0.0.1:9092",
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8080",
        1,
        "BENCH_TOKEN",
    );
    let config = Config::from_toml_str(&text).expect("the sandbox config parses");
    let commands = commands(&config, params.events);
    let run = Lineage::of_headers(
        [
            (hubsync::lineage::REPLAY_RUN, Some(&b"bench-replay"[..])),
            (
                hubsync::lineage::REPLAY_OF,
                Some(&b"crm.contact.changes/0/0"[..]),
            ),
        ]
        .into_iter(),
    );
    let topic = config.topics.replay_commands.clone();
    let message = |offset: usize, command: &HubSpotCommand| Original {
        topic: topic.clone(),
        partition: (offset % 3) as i32,
        offset: offset as i64,
        timestamp: Some(command.processed_time),
        key: Some(command.identity.value.clone().into_bytes()),
        value: Some(vec![0; 640]),
        headers: vec![
            ("hubsync.replay.run".into(), Some(b"bench-replay".to_vec())),
            (
                "hubsync.replay.of".into(),
                Some(b"crm.contact.changes/0/0".to_vec()),
            ),
        ],
    };

    let now = Instant::now();
    let (coalescer, receipt_spent, receipt_requested) = retained(|| {
        let mut names = Names::default();
        let mut coalescer = Coalescer::new(Duration::from_secs(3600), 100, usize::MAX);
        for (offset, command) in commands.iter().enumerate() {
            let command = command.clone();
            let position = Position::new(topic.as_str(), (offset % 3) as i32, offset as i64);
            let receipt = Receipt::new(&command, &run, &position, &mut names);
            let key = command_key(&command);
            let member = Member::new(receipt, || message(offset, &command));
            coalescer.add(key, Arriving { member, command }, now);
        }
        (coalescer, names)
    });
    let (whole, whole_spent, whole_requested) = retained(|| {
        commands
            .iter()
            .enumerate()
            .map(|(offset, command)| (command.clone(), message(offset, command), run.clone()))
            .collect::<Vec<_>>()
    });
    let held = coalescer.0.pending_commands();
    let records = coalescer.0.pending_records();
    assert_eq!(held, commands.len(), "every command is held");
    drop(whole);
    drop(coalescer);
    let per = |bytes: isize| bytes as f64 / held.max(1) as f64;
    Figures {
        params,
        commands: held,
        records,
        receipt: (per(receipt_spent), per(receipt_requested)),
        whole: (per(whole_spent), per(whole_requested)),
        took: began.elapsed(),
    }
}

/// The replay figure's history as commands: events over `events / 10` contacts in random
/// order, decided by the sandbox configuration's rules; events the rules skip make none.
fn commands(config: &Config, events: usize) -> Vec<HubSpotCommand> {
    let catalog = events::sandbox_catalog();
    let mut rng = Rng::new(0x5eed_0005);
    let contacts = (events / 10).max(1);
    let mut people: Vec<Contact> = (0..contacts)
        .map(|index| Contact::generate(index as u64, Shape::TYPICAL, &mut rng))
        .collect();
    let start = 1_760_000_000_000_i64;
    let mut made = Vec::with_capacity(events);
    for index in 0..events {
        let person = rng.below(contacts as u64) as usize;
        let time = start + index as i64;
        let event = if index < contacts {
            people[index].created(time, &mut rng)
        } else {
            people[person].varied_update(time, &mut rng)
        };
        if let Some(command) =
            crate::processors::decide_and_command(&event, index, &config.rules, &catalog)
        {
            made.push(command);
        }
    }
    made
}
