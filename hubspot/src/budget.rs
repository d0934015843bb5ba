//! The client-side rate limiter: HubSpot's limits modelled locally so that 429s stay rare while
//! the budget is used to the last call.
//!
//! - The rolling ten-second window: the send times of the last requests, at most
//!   `requests_per_10s` of them (or HubSpot's `X-HubSpot-RateLimit-Max`, if lower). A slot frees
//!   when the oldest send is older than the window plus a small margin: HubSpot counts a request
//!   when it arrives, a little after we sent it.
//! - Corrections from HubSpot's answers: when `X-HubSpot-RateLimit-Remaining` says fewer requests
//!   remain than the model thinks (another app shares the account), the difference is entered as
//!   sends of our own; a 429 fills the window (or waits out its `Retry-After`).
//! - The daily quota: counted locally and from `X-HubSpot-RateLimit-Daily-Remaining`; at zero,
//!   requests wait for midnight in the account's time zone.
//! - Search: its own per-second window; its answers carry no headers.
//! - At most `max_in_flight` requests at once (a semaphore, taken before a window slot so that
//!   a send follows its slot at once).
//! - The backfill lane: requests made inside [`backfill`] (the sink writing replayed events)
//!   share the ten-second window with live requests but give way to them. Within
//!   `backfill_share` of the window they are granted whatever live work waits; beyond it only
//!   while no live request waits and the window keeps room for live work to send as much again
//!   as it did in the last window (plus a twentieth of the limit). Live requests never queue
//!   behind backfill ones, and the backfill lane has its own `max_in_flight` places.
//!
//! The accounting ([`Ledger`]) is pure, taking the time as an argument; [`RequestBudget`] wraps
//! it with a [`Clock`] and a [`Sleeper`] that tests replace.
//!
//! ```text
//! limit 3 per 10 s, margin 100 ms; sends at 0, 1000, 2000 ms
//! try_acquire(at 5000 ms) -> wait 5100 ms    (the send at 0 leaves the window at 10100 ms)
//!
//! limit 20, backfill_share 0.3, 4 live sends in the window, none waiting:
//! backfill may send while the window holds fewer than 20 - (4 + 1) = 15 entries;
//! with a live request waiting, only while it holds fewer than 6 backfill sends
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::response::RateLimitHeaders;
use super::retry::{Sleeper, TokioSleeper};
use super::{Endpoint, RateLimitPolicy};

const DEFAULT_WINDOW_MS: i64 = 10_000;
const SEARCH_WINDOW_MS: i64 = 1_000;
const DAY_MS: i64 = 86_400_000;
/// The longest a backfill request refused for live work sleeps before it asks again.
const BACKFILL_RECHECK_MS: i64 = 500;
/// The longest window an `Interval-Milliseconds` header may set; anything longer is ignored.
const MAX_WINDOW_MS: u64 = 60_000;

/// Time in milliseconds since the Unix epoch (the daily reset is at a wall-clock midnight).
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// Wall-clock time that never runs backwards: the epoch time at start plus a monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start_ms: i64,
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        SystemClock {
            start_ms: i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }
}

/// Time that moves only when told to; clones share it.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The limits the budget keeps to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetLimits {
    pub requests_per_10s: u32,
    pub daily_limit: u64,
    pub search_per_second: u32,
    pub max_in_flight: usize,
    /// Added to every window: how much later than its send HubSpot may count a request.
    pub margin: Duration,
    /// The account's offset from UTC, for the daily reset.
    pub utc_offset_ms: i64,
    /// Share of the ten-second window the backfill lane may take while live requests wait.
    pub backfill_share: f64,
}

impl BudgetLimits {
    /// The default margin: 1% of the ten-second window, enough for the spread in latency
    /// between consecutive requests.
    pub const DEFAULT_MARGIN: Duration = Duration::from_millis(100);

    /// The tier's published limits, one request in flight, UTC, the default backfill share.
    pub fn for_tier(tier: crate::Tier) -> Self {
        let limits = tier.limits();
        BudgetLimits {
            requests_per_10s: limits.requests_per_10s,
            daily_limit: limits.daily,
            search_per_second: crate::tier::SEARCH_PER_SECOND,
            max_in_flight: 1,
            margin: Self::DEFAULT_MARGIN,
            utc_offset_ms: 0,
            backfill_share: 0.3,
        }
    }
}

/// The offset of `UTC`, `Etc/UTC`, `GMT` or a fixed `+HH:MM`/`-HH:MM`; `None` for a zone name
/// whose offset needs the time zone database (the client then learns it from account details).
pub fn utc_offset_ms(zone: &str) -> Option<i64> {
    match zone {
        "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let hours: i64 = hours.parse().ok()?;
    let minutes: i64 = minutes.parse().ok()?;
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3_600_000 + minutes * 60_000))
}

/// The queues requests wait in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Live work: the ten-second window.
    Standard,
    /// Search's own per-second window.
    Search,
    /// Replayed work: the ten-second window too, giving way to live work.
    Backfill,
}

tokio::task_local! {
    static BACKFILL: ();
}

/// Runs `work` with its HubSpot requests (other than searches) in the backfill lane.
pub async fn backfill<F: Future>(work: F) -> F::Output {
    BACKFILL.scope((), work).await
}

/// Whether the current task runs inside [`backfill`].
pub fn in_backfill() -> bool {
    BACKFILL.try_with(|_| ()).is_ok()
}

/// A granted send, remembered until its answer corrects the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub lane: Lane,
    /// Order of grant, over every lane.
    pub seq: u64,
    /// Order of grant within the window (standard and backfill share one).
    pub lane_seq: u64,
    pub sent_ms: i64,
    /// Entries in the lane's window right after this send, this one included.
    pub used: u32,
    /// Today's count right after this send, and the day it belongs to.
    pub day_used: u64,
    pub day: i64,
}

/// What an answer says about the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// `None` when no answer came.
    pub status: Option<u16>,
    pub headers: RateLimitHeaders,
    /// A 429's policy and `Retry-After`.
    pub rate_limited: Option<(RateLimitPolicy, Option<Duration>)>,
}

/// The pure accounting behind [`RequestBudget`].
#[derive(Debug, Clone)]
pub struct Ledger {
    limit: u32,
    server_max: Option<u32>,
    window_ms: i64,
    margin_ms: i64,
    window: VecDeque<i64>,
    /// The backfill lane's sends, also in `window`.
    backfill_window: VecDeque<i64>,
    backfill_share: f64,
    /// Live requests waiting for a slot now.
    live_waiting: usize,
    search_limit: u32,
    search_window: VecDeque<i64>,
    paused_until: i64,
    search_paused_until: i64,
    daily_paused_until: i64,
    daily_limit: u64,
    utc_offset_ms: i64,
    day: i64,
    day_used: u64,
    /// HubSpot's last `Daily-Remaining` and today's count when that request was sent.
    server_daily: Option<(u64, u64)>,
    server_daily_seq: u64,
    seq: u64,
    standard_seq: u64,
    search_seq: u64,
    /// Answers to requests granted before this one do not correct the window again.
    corrected_seq: u64,
    /// Whether HubSpot has told what is left of its window since the portal was taken over.
    probe: Probe,
}

/// Learning what is left of HubSpot's window before sending more than one request: another
/// instance may have spent it just before this one took the portal over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// HubSpot's answers are being heard: the model is corrected by them.
    Heard,
    /// The next request goes alone, and the others wait for its answer.
    Needed,
    /// That request was sent at `sent_ms`; the others wait up to [`PROBE_WAIT_MS`].
    Out { sent_ms: i64 },
}

/// The longest the other requests wait for the first answer after a take-over.
const PROBE_WAIT_MS: i64 = 2_000;

impl Ledger {
    pub fn new(limits: &BudgetLimits) -> Self {
        Ledger {
            limit: limits.requests_per_10s.max(1),
            server_max: None,
            window_ms: DEFAULT_WINDOW_MS,
            margin_ms: i64::try_from(limits.margin.as_millis()).unwrap_or(0),
            window: VecDeque::new(),
            backfill_window: VecDeque::new(),
            backfill_share: limits.backfill_share.clamp(0.0, 1.0),
            live_waiting: 0,
            search_limit: limits.search_per_second.max(1),
            search_window: VecDeque::new(),
            paused_until: i64::MIN,
            search_paused_until: i64::MIN,
            daily_paused_until: i64::MIN,
            daily_limit: limits.daily_limit,
            utc_offset_ms: limits.utc_offset_ms,
            day: i64::MIN,
            day_used: 0,
            server_daily: None,
            server_daily_seq: 0,
            seq: 0,
            standard_seq: 0,
            search_seq: 0,
            corrected_seq: 0,
            probe: Probe::Heard,
        }
    }

    /// The portal was just taken over from another instance (or its budget not heard from in
    /// a while): the next request goes alone, and what HubSpot's answer says is left of the
    /// window is believed before any other is sent.
    pub fn reprobe(&mut self) {
        self.probe = Probe::Needed;
    }

    /// Requests per window: the configured limit, or HubSpot's if lower.
    pub fn window_limit(&self) -> u32 {
        self.server_max
            .map_or(self.limit, |max| max.min(self.limit))
            .max(1)
    }

    /// Requests left today, by the local count and by HubSpot's last word, whichever is lower.
    pub fn daily_left(&self) -> u64 {
        let local = self.daily_limit.saturating_sub(self.day_used);
        match self.server_daily {
            Some((remaining, at)) => {
                local.min(remaining.saturating_sub(self.day_used.saturating_sub(at)))
            }
            None => local,
        }
    }

    /// Entries in the ten-second window after dropping those that left it by `now_ms`.
    pub fn window_len(&mut self, now_ms: i64) -> usize {
        self.roll(now_ms);
        self.window.len()
    }

    /// The backfill lane's entries in the ten-second window at `now_ms`.
    pub fn backfill_len(&mut self, now_ms: i64) -> usize {
        self.roll(now_ms);
        self.backfill_window.len()
    }

    /// Backfill sends the window holds whatever live work waits: `backfill_share` of it.
    pub fn backfill_cap(&self) -> usize {
        (f64::from(self.window_limit()) * self.backfill_share).floor() as usize
    }

    /// A live request started waiting for a slot; backfill beyond its share holds back until
    /// [`Ledger::live_stopped_waiting`].
    pub fn live_waits(&mut self) {
        self.live_waiting += 1;
    }

    pub fn live_stopped_waiting(&mut self) {
        self.live_waiting = self.live_waiting.saturating_sub(1);
    }

    /// When a backfill send may be asked for again, if live work comes first now. Within its
    /// share it goes; beyond it, only while no live request waits and the window keeps room
    /// for live work to send as much again as it did in the last window, plus a twentieth of
    /// the limit.
    fn backfill_gives_way(&self, now_ms: i64) -> Option<i64> {
        let used = self.backfill_window.len();
        if used < self.backfill_cap() {
            return None;
        }
        let limit = self.window_limit() as usize;
        let live_used = self.window.len().saturating_sub(used);
        let reserve = live_used + (limit / 20).max(1);
        if self.live_waiting == 0 && self.window.len() + reserve < limit {
            return None;
        }
        // The next entry to leave the window changes the picture; a live request done waiting
        // may change it sooner.
        let leaves = self
            .window
            .front()
            .map_or(now_ms, |sent| sent + self.window_ms + self.margin_ms);
        Some(leaves.min(now_ms + BACKFILL_RECHECK_MS).max(now_ms + 1))
    }

    pub fn set_utc_offset(&mut self, offset_ms: i64) {
        self.utc_offset_ms = offset_ms;
    }

    /// Time until the next midnight in the account's time zone.
    pub fn until_daily_reset(&self, now_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(self.ms_to_next_day(now_ms)).unwrap_or(0))
    }

    /// How many sends of `lane` the window would take at `now_ms`, or how long until it takes
    /// one: asked before work that would otherwise wait for its slot holding a place of its
    /// own (the sink's batches). Only one while the first answer after a hand-over is awaited.
    pub fn room(&mut self, lane: Lane, now_ms: i64) -> Result<usize, Duration> {
        let until = self.blocked_until(lane, now_ms);
        if until > now_ms {
            return Err(Duration::from_millis(
                u64::try_from(until - now_ms).unwrap_or(1),
            ));
        }
        if lane != Lane::Search && self.probe == Probe::Needed {
            return Ok(1);
        }
        let (used, limit) = match lane {
            Lane::Standard | Lane::Backfill => (self.window.len(), self.window_limit()),
            Lane::Search => (self.search_window.len(), self.search_limit),
        };
        Ok((limit as usize).saturating_sub(used).max(1))
    }

    /// A send at `now_ms`, or how long to wait before asking again.
    pub fn try_acquire(&mut self, lane: Lane, now_ms: i64) -> Result<Ticket, Duration> {
        let until = self.blocked_until(lane, now_ms);
        if until > now_ms {
            return Err(Duration::from_millis(
                u64::try_from(until - now_ms).unwrap_or(1),
            ));
        }
        if lane == Lane::Backfill {
            self.backfill_window.push_back(now_ms);
        }
        if lane != Lane::Search && self.probe == Probe::Needed {
            self.probe = Probe::Out { sent_ms: now_ms };
        }
        let (window, lane_seq) = match lane {
            Lane::Standard | Lane::Backfill => (&mut self.window, &mut self.standard_seq),
            Lane::Search => (&mut self.search_window, &mut self.search_seq),
        };
        *lane_seq += 1;
        let lane_seq = *lane_seq;
        window.push_back(now_ms);
        let used = u32::try_from(window.len()).unwrap_or(u32::MAX);
        self.day_used += 1;
        self.seq += 1;
        Ok(Ticket {
            lane,
            seq: self.seq,
            lane_seq,
            sent_ms: now_ms,
            used,
            day_used: self.day_used,
            day: self.day,
        })
    }

    /// Until when a send of `lane` must wait, as of `now_ms` (at most `now_ms`: it may go).
    fn blocked_until(&mut self, lane: Lane, now_ms: i64) -> i64 {
        self.roll(now_ms);
        let mut until = self.daily_paused_until;
        if self.daily_left() == 0 {
            until = until.max(now_ms + self.ms_to_next_day(now_ms));
        }
        let (window, limit, length, paused) = match lane {
            Lane::Standard | Lane::Backfill => (
                &self.window,
                self.window_limit(),
                self.window_ms,
                self.paused_until,
            ),
            Lane::Search => (
                &self.search_window,
                self.search_limit,
                SEARCH_WINDOW_MS,
                self.search_paused_until,
            ),
        };
        until = until.max(paused);
        let limit = limit as usize;
        if window.len() >= limit {
            // The entry whose leaving brings the window under its limit.
            let freeing = window[window.len() - limit];
            until = until.max(freeing + length + self.margin_ms);
        }
        if lane == Lane::Backfill
            && until <= now_ms
            && let Some(at) = self.backfill_gives_way(now_ms)
        {
            until = at;
        }
        if lane != Lane::Search
            && let Probe::Out { sent_ms } = self.probe
        {
            if now_ms < sent_ms + PROBE_WAIT_MS {
                until = until.max((now_ms + 25).min(sent_ms + PROBE_WAIT_MS));
            } else {
                // No answer came (a timeout): the window model goes on alone.
                self.probe = Probe::Heard;
            }
        }
        until
    }

    /// Corrects the model with what the answer to `ticket` says; returns how many requests
    /// HubSpot counted that the model had not.
    pub fn observe(&mut self, ticket: &Ticket, now_ms: i64, observation: &Observation) -> usize {
        self.roll(now_ms);
        if ticket.lane != Lane::Search {
            self.probe = Probe::Heard;
        }
        let headers = &observation.headers;
        if let Some(interval) = headers
            .interval_ms
            .filter(|ms| (1..=MAX_WINDOW_MS).contains(ms))
        {
            self.window_ms = i64::try_from(interval).unwrap_or(DEFAULT_WINDOW_MS);
        }
        if let Some(max) = headers.max.filter(|max| *max > 0) {
            self.server_max = Some(max);
        }
        if let Some(remaining) = headers.daily_remaining
            && ticket.day == self.day
            && ticket.seq >= self.server_daily_seq
        {
            self.server_daily = Some((remaining, ticket.day_used));
            self.server_daily_seq = ticket.seq;
        }
        match observation.rate_limited {
            Some((RateLimitPolicy::TenSecondlyRolling, Some(wait))) => {
                self.paused_until = self.paused_until.max(now_ms + millis(wait));
            }
            Some((RateLimitPolicy::TenSecondlyRolling, None)) => {
                // The window is full on HubSpot's side: no send until our own oldest leave it.
                let missing = (self.window_limit() as usize).saturating_sub(self.window.len());
                return self.add_unseen(now_ms, missing);
            }
            Some((RateLimitPolicy::Secondly, wait)) => {
                let wait = wait.map_or(SEARCH_WINDOW_MS + self.margin_ms, millis);
                self.search_paused_until = self.search_paused_until.max(now_ms + wait);
            }
            Some((RateLimitPolicy::Daily, wait)) => {
                let wait = wait.map_or_else(|| self.ms_to_next_day(now_ms), millis);
                self.daily_paused_until = self.daily_paused_until.max(now_ms + wait);
                self.server_daily = Some((0, self.day_used));
                self.server_daily_seq = self.seq;
            }
            None => {
                if ticket.lane != Lane::Search
                    && ticket.seq > self.corrected_seq
                    && let Some(remaining) = headers.remaining
                {
                    // Requests granted after this one may have reached HubSpot first and be
                    // counted in its answer: only a shortfall beyond them is someone else's.
                    let later = self.standard_seq.saturating_sub(ticket.lane_seq);
                    let ours = u64::from(ticket.used).saturating_add(later);
                    let ours = u32::try_from(ours).unwrap_or(u32::MAX);
                    let believed = self.window_limit().saturating_sub(ours);
                    if remaining < believed {
                        return self.add_unseen(now_ms, (believed - remaining) as usize);
                    }
                }
            }
        }
        0
    }

    /// Enters `count` requests we did not send (but HubSpot counted) into the window, dated
    /// now: when they were really made is unknown, and now is the safe guess.
    fn add_unseen(&mut self, now_ms: i64, count: usize) -> usize {
        let room = (self.window_limit() as usize).saturating_sub(self.window.len());
        let added = count.min(room);
        for _ in 0..added {
            self.window.push_back(now_ms);
        }
        self.corrected_seq = self.seq;
        added
    }

    fn local_day(&self, now_ms: i64) -> i64 {
        (now_ms + self.utc_offset_ms).div_euclid(DAY_MS)
    }

    fn ms_to_next_day(&self, now_ms: i64) -> i64 {
        DAY_MS - (now_ms + self.utc_offset_ms).rem_euclid(DAY_MS)
    }

    fn roll(&mut self, now_ms: i64) {
        let standard = self.window_ms + self.margin_ms;
        while self
            .window
            .front()
            .is_some_and(|sent| sent + standard <= now_ms)
        {
            self.window.pop_front();
        }
        while self
            .backfill_window
            .front()
            .is_some_and(|sent| sent + standard <= now_ms)
        {
            self.backfill_window.pop_front();
        }
        let search = SEARCH_WINDOW_MS + self.margin_ms;
        while self
            .search_window
            .front()
            .is_some_and(|sent| sent + search <= now_ms)
        {
            self.search_window.pop_front();
        }
        let day = self.local_day(now_ms);
        if day != self.day {
            self.day = day;
            self.day_used = 0;
            self.server_daily = None;
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Requests and 429s per endpoint template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStats {
    pub sent: u64,
    pub rate_limited: u64,
    /// Answers other than 2xx and 429, and requests without an answer.
    pub failed: u64,
}

/// Requests in the current ten-second window and left today, with their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUsage {
    pub window_used: u64,
    pub window_limit: u64,
    pub daily_left: u64,
    pub daily_limit: u64,
}

/// What the budget has let through, for benchmarks and tests (metrics carry the same).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetStats {
    pub sent: u64,
    pub rate_limited: u64,
    pub failed: u64,
    /// Requests HubSpot counted in the window that the budget had not (another app on the
    /// account, or a 429 that filled the window).
    pub unseen: u64,
    /// Sends that had to wait for a slot, and how long they waited in all.
    pub waits: u64,
    pub waited: Duration,
    /// Of `sent`, the backfill lane's, and how long they waited in all.
    pub backfill_sent: u64,
    pub backfill_waited: Duration,
    pub by_endpoint: BTreeMap<&'static str, EndpointStats>,
}

impl BudgetStats {
    /// 429s as a share of requests sent.
    pub fn rate_limited_share(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.rate_limited as f64 / self.sent as f64
        }
    }
}

/// A granted send: hold it while the request is in flight, then hand it back with
/// [`RequestBudget::complete`]. Dropped without completing (a cancelled call), it frees its
/// in-flight place and leaves its window entry, which is the safe side.
#[derive(Debug)]
pub struct Slot {
    ticket: Ticket,
    endpoint: Endpoint,
    waited: Duration,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// How long this send waited for its slot.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// The client's request budget, shared by every call of one [`super::HubSpotClient`].
#[derive(Debug)]
pub struct RequestBudget {
    ledger: Mutex<Ledger>,
    in_flight: Arc<Semaphore>,
    /// The backfill lane's own places in flight, so live requests never wait for them.
    backfill_in_flight: Arc<Semaphore>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    stats: Mutex<BudgetStats>,
}

/// A live request waiting for a slot, counted in the ledger until it is granted or given up.
struct LiveWaiting<'a>(&'a Mutex<Ledger>);

impl<'a> LiveWaiting<'a> {
    fn start(ledger: &'a Mutex<Ledger>) -> Self {
        lock(ledger).live_waits();
        LiveWaiting(ledger)
    }
}

impl Drop for LiveWaiting<'_> {
    fn drop(&mut self) {
        lock(self.0).live_stopped_waiting();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent between statements, so a poisoned lock is taken over.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RequestBudget {
    /// On the system clock, sleeping with tokio.
    pub fn new(limits: BudgetLimits) -> Self {
        Self::with_clock(limits, Arc::new(SystemClock::new()), Arc::new(TokioSleeper))
    }

    pub fn with_clock(
        limits: BudgetLimits,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Self {
        RequestBudget {
            ledger: Mutex::new(Ledger::new(&limits)),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            backfill_in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            clock,
            sleeper,
            stats: Mutex::new(BudgetStats::default()),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Waits for a place in flight, then for a slot in the endpoint's window; inside
    /// [`backfill`], in the backfill lane.
    pub async fn acquire(&self, endpoint: Endpoint) -> Slot {
        let backfill = in_backfill();
        let places = if backfill {
            &self.backfill_in_flight
        } else {
            &self.in_flight
        };
        let permit = Arc::clone(places)
            .acquire_owned()
            .await
            .expect("the in-flight semaphores are never closed");
        let lane = if endpoint.is_search() {
            Lane::Search
        } else if backfill {
            Lane::Backfill
        } else {
            Lane::Standard
        };
        let mut waited = Duration::ZERO;
        let mut live_waiting: Option<LiveWaiting<'_>> = None;
        loop {
            let now = self.clock.now_ms();
            let granted = lock(&self.ledger).try_acquire(lane, now);
            match granted {
                Ok(ticket) => {
                    drop(live_waiting);
                    let mut stats = lock(&self.stats);
                    stats.sent += 1;
                    if lane == Lane::Backfill {
                        stats.backfill_sent += 1;
                        stats.backfill_waited += waited;
                    }
                    stats
                        .by_endpoint
                        .entry(endpoint.template())
                        .or_default()
                        .sent += 1;
                    if !waited.is_zero() {
                        stats.waits += 1;
                        stats.waited += waited;
                    }
                    return Slot {
                        ticket,
                        endpoint,
                        waited,
                        _permit: permit,
                    };
                }
                Err(wait) => {
                    if lane == Lane::Standard && live_waiting.is_none() {
                        live_waiting = Some(LiveWaiting::start(&self.ledger));
                    }
                    waited += wait;
                    self.sleeper.sleep(wait).await;
                }
            }
        }
    }

    /// Hands a slot back with what its answer said.
    pub fn complete(&self, slot: Slot, observation: &Observation) {
        let now = self.clock.now_ms();
        let unseen = lock(&self.ledger).observe(&slot.ticket, now, observation);
        let rate_limited = observation.rate_limited.is_some();
        let failed = !rate_limited && !observation.status.is_some_and(|s| (200..300).contains(&s));
        let mut stats = lock(&self.stats);
        let entry = stats
            .by_endpoint
            .entry(slot.endpoint.template())
            .or_default();
        entry.rate_limited += u64::from(rate_limited);
        entry.failed += u64::from(failed);
        stats.rate_limited += u64::from(rate_limited);
        stats.failed += u64::from(failed);
        stats.unseen += unseen as u64;
    }

    /// How many standard sends (or, with `backfill`, backfill sends) the window would take now,
    /// or how long until it takes one. See [`Ledger::room`].
    pub fn room(&self, backfill: bool) -> Result<usize, Duration> {
        let lane = if backfill {
            Lane::Backfill
        } else {
            Lane::Standard
        };
        lock(&self.ledger).room(lane, self.clock.now_ms())
    }

    /// Time until the daily quota resets.
    pub fn until_daily_reset(&self) -> Duration {
        lock(&self.ledger).until_daily_reset(self.clock.now_ms())
    }

    /// Requests left today, as far as the budget knows.
    pub fn daily_left(&self) -> u64 {
        let now = self.clock.now_ms();
        let mut ledger = lock(&self.ledger);
        ledger.roll(now);
        ledger.daily_left()
    }

    /// Where the budget stands now, for gauges.
    pub fn usage(&self) -> BudgetUsage {
        let now = self.clock.now_ms();
        let mut ledger = lock(&self.ledger);
        let window_used = ledger.window_len(now) as u64;
        BudgetUsage {
            window_used,
            window_limit: u64::from(ledger.window_limit()),
            daily_left: ledger.daily_left(),
            daily_limit: ledger.daily_limit,
        }
    }

    /// Sets the account's offset from UTC (learned from its account details).
    /// See [`Ledger::reprobe`].
    pub fn reprobe(&self) {
        lock(&self.ledger).reprobe();
    }

    pub fn set_utc_offset(&self, offset_ms: i64) {
        lock(&self.ledger).set_utc_offset(offset_ms);
    }

    pub fn stats(&self) -> BudgetStats {
        lock(&self.stats).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::InstantSleeper;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn limits(per_window: u32, daily: u64) -> BudgetLimits {
        BudgetLimits {
            requests_per_10s: per_window,
            daily_limit: daily,
            search_per_second: 2,
            max_in_flight: 4,
            margin: Duration::from_millis(100),
            utc_offset_ms: 0,
            backfill_share: 0.3,
        }
    }

    fn ok_with(remaining: u32, max: u32) -> Observation {
        Observation {
            status: Some(200),
            headers: RateLimitHeaders {
                max: Some(max),
                remaining: Some(remaining),
                interval_ms: Some(10_000),
                ..RateLimitHeaders::default()
            },
            rate_limited: None,
        }
    }

    fn limited(policy: RateLimitPolicy, wait: Option<Duration>) -> Observation {
        Observation {
            status: Some(429),
            headers: RateLimitHeaders::default(),
            rate_limited: Some((policy, wait)),
        }
    }

    #[test]
    fn the_window_admits_its_limit_then_waits_for_the_oldest_plus_margin() {
        let mut ledger = Ledger::new(&limits(3, 1_000));
        for i in 0..3 {
            let ticket = ledger.try_acquire(Lane::Standard, T0 + i * 1_000).unwrap();
            assert_eq!(ticket.used, i as u32 + 1);
        }
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 5_000),
            Err(Duration::from_millis(5_100))
        );
        assert!(ledger.try_acquire(Lane::Standard, T0 + 10_099).is_err());
        assert!(ledger.try_acquire(Lane::Standard, T0 + 10_100).is_ok());
        // The next slot frees when the send at 1000 ms leaves.
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 10_100),
            Err(Duration::from_millis(1_000))
        );
    }

    /// What the sink asks before it starts a batch: the room says what `try_acquire` would
    /// do, without taking anything.
    #[test]
    fn the_room_left_says_what_sends_would_get_without_taking_any() {
        let mut ledger = Ledger::new(&limits(3, 1_000));
        assert_eq!(ledger.room(Lane::Standard, T0), Ok(3));
        assert_eq!(
            ledger.room(Lane::Standard, T0),
            Ok(3),
            "asking takes nothing"
        );
        ledger.try_acquire(Lane::Standard, T0).unwrap();
        ledger.try_acquire(Lane::Standard, T0 + 1_000).unwrap();
        assert_eq!(ledger.room(Lane::Standard, T0 + 2_000), Ok(1));
        ledger.try_acquire(Lane::Standard, T0 + 2_000).unwrap();
        // Full: the same wait a send would be told.
        assert_eq!(
            ledger.room(Lane::Standard, T0 + 5_000),
            Err(Duration::from_millis(5_100))
        );
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 5_000),
            Err(Duration::from_millis(5_100))
        );
        assert_eq!(ledger.room(Lane::Standard, T0 + 10_100), Ok(1));
        // After a hand-over only the first call goes, and nothing until it is answered.
        let mut ledger = Ledger::new(&limits(10, 1_000));
        ledger.reprobe();
        assert_eq!(ledger.room(Lane::Standard, T0), Ok(1));
        let probe = ledger.try_acquire(Lane::Standard, T0).unwrap();
        assert!(ledger.room(Lane::Standard, T0 + 1).is_err());
        ledger.observe(&probe, T0 + 30, &ok_with(9, 10));
        assert_eq!(ledger.room(Lane::Standard, T0 + 30), Ok(9));
    }

    #[test]
    fn the_budget_is_used_to_the_last_call() {
        // 190 sends in one window, not one more, and 190 again in the next.
        let mut ledger = Ledger::new(&limits(190, 1_000_000));
        let mut now = T0;
        let mut sent = 0;
        while now <= T0 + 20_200 {
            match ledger.try_acquire(Lane::Standard, now) {
                Ok(_) => sent += 1,
                Err(wait) => now += i64::try_from(wait.as_millis()).unwrap(),
            }
        }
        assert_eq!(sent, 3 * 190);
    }

    #[test]
    fn fewer_remaining_on_the_server_enters_unseen_requests() {
        let mut ledger = Ledger::new(&limits(10, 1_000));
        let ticket = ledger.try_acquire(Lane::Standard, T0).unwrap();
        // We think 9 remain; HubSpot says 4: another app used 5.
        assert_eq!(ledger.observe(&ticket, T0 + 50, &ok_with(4, 10)), 5);
        assert_eq!(ledger.window_len(T0 + 50), 6);
        for _ in 0..4 {
            ledger.try_acquire(Lane::Standard, T0 + 60).unwrap();
        }
        assert!(ledger.try_acquire(Lane::Standard, T0 + 60).is_err());
        // An older answer does not correct twice; more remaining than we think changes nothing.
        ledger.observe(&ticket, T0 + 70, &ok_with(0, 10));
        assert_eq!(ledger.window_len(T0 + 70), 10);
        let mut fresh = Ledger::new(&limits(10, 1_000));
        let ticket = fresh.try_acquire(Lane::Standard, T0).unwrap();
        fresh.observe(&ticket, T0 + 10, &ok_with(9, 10));
        assert_eq!(fresh.window_len(T0 + 10), 1);
    }

    #[test]
    fn a_taken_over_portal_sends_one_request_and_believes_its_answer_first() {
        let mut ledger = Ledger::new(&limits(10, 1_000));
        ledger.reprobe();
        let probe = ledger.try_acquire(Lane::Standard, T0).unwrap();
        // The others wait for its answer, live or backfill; search has no headers to wait for.
        assert!(ledger.try_acquire(Lane::Standard, T0 + 5).is_err());
        assert!(ledger.try_acquire(Lane::Backfill, T0 + 5).is_err());
        ledger.try_acquire(Lane::Search, T0 + 5).unwrap();
        // The previous owner spent 8 of the window: 1 is left after the probe.
        assert_eq!(ledger.observe(&probe, T0 + 40, &ok_with(1, 10)), 8);
        ledger.try_acquire(Lane::Standard, T0 + 41).unwrap();
        assert!(ledger.try_acquire(Lane::Standard, T0 + 42).is_err());
        // An answer that never comes holds the others back for a bounded time only.
        let mut silent = Ledger::new(&limits(10, 1_000));
        silent.reprobe();
        silent.try_acquire(Lane::Standard, T0).unwrap();
        let wait = silent.try_acquire(Lane::Standard, T0 + 1).unwrap_err();
        assert!(wait <= Duration::from_millis(25), "{wait:?}");
        silent
            .try_acquire(Lane::Standard, T0 + PROBE_WAIT_MS)
            .unwrap();
        silent
            .try_acquire(Lane::Standard, T0 + PROBE_WAIT_MS)
            .unwrap();
    }

    #[test]
    fn answers_out_of_order_are_not_taken_for_unseen_requests() {
        let mut ledger = Ledger::new(&limits(10, 1_000));
        let first = ledger.try_acquire(Lane::Standard, T0).unwrap();
        let second = ledger.try_acquire(Lane::Standard, T0).unwrap();
        // The second reached HubSpot first: the answer to the first counts both.
        ledger.observe(&first, T0 + 20, &ok_with(8, 10));
        ledger.observe(&second, T0 + 20, &ok_with(8, 10));
        assert_eq!(ledger.window_len(T0 + 20), 2);
    }

    #[test]
    fn a_lower_server_max_and_interval_are_believed() {
        let mut ledger = Ledger::new(&limits(190, 1_000));
        let ticket = ledger.try_acquire(Lane::Standard, T0).unwrap();
        ledger.observe(&ticket, T0 + 10, &ok_with(99, 100));
        assert_eq!(ledger.window_limit(), 100);
        // A higher server max does not raise the configured limit.
        let mut shared = Ledger::new(&limits(50, 1_000));
        let ticket = shared.try_acquire(Lane::Standard, T0).unwrap();
        shared.observe(&ticket, T0 + 10, &ok_with(189, 190));
        assert_eq!(shared.window_limit(), 50);
        assert_eq!(shared.window_len(T0 + 10), 1);
    }

    #[test]
    fn a_429_without_a_hint_fills_the_window() {
        let mut ledger = Ledger::new(&limits(5, 1_000));
        let first = ledger.try_acquire(Lane::Standard, T0).unwrap();
        ledger.try_acquire(Lane::Standard, T0 + 2_000).unwrap();
        let filled = ledger.observe(
            &first,
            T0 + 3_000,
            &limited(RateLimitPolicy::TenSecondlyRolling, None),
        );
        assert_eq!(filled, 3);
        assert_eq!(ledger.window_len(T0 + 3_000), 5);
        // Our own oldest send frees the first slot; the unseen ones free a window later.
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 3_000),
            Err(Duration::from_millis(7_100))
        );
        assert!(ledger.try_acquire(Lane::Standard, T0 + 10_100).is_ok());
    }

    #[test]
    fn a_429_with_retry_after_pauses_for_it() {
        let mut ledger = Ledger::new(&limits(5, 1_000));
        let ticket = ledger.try_acquire(Lane::Standard, T0).unwrap();
        ledger.observe(
            &ticket,
            T0 + 100,
            &limited(
                RateLimitPolicy::TenSecondlyRolling,
                Some(Duration::from_secs(2)),
            ),
        );
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 100),
            Err(Duration::from_secs(2))
        );
        // Search is not held up by the standard window.
        assert!(ledger.try_acquire(Lane::Search, T0 + 100).is_ok());
        assert!(ledger.try_acquire(Lane::Standard, T0 + 2_100).is_ok());
    }

    #[test]
    fn search_has_its_own_per_second_window() {
        let mut ledger = Ledger::new(&limits(100, 1_000));
        ledger.try_acquire(Lane::Search, T0).unwrap();
        ledger.try_acquire(Lane::Search, T0 + 10).unwrap();
        assert_eq!(
            ledger.try_acquire(Lane::Search, T0 + 20),
            Err(Duration::from_millis(1_080))
        );
        assert!(ledger.try_acquire(Lane::Standard, T0 + 20).is_ok());
        let ticket = ledger.try_acquire(Lane::Search, T0 + 1_100).unwrap();
        ledger.observe(
            &ticket,
            T0 + 1_150,
            &limited(RateLimitPolicy::Secondly, None),
        );
        assert_eq!(
            ledger.try_acquire(Lane::Search, T0 + 1_150),
            Err(Duration::from_millis(1_100))
        );
    }

    #[test]
    fn the_daily_quota_stops_before_it_runs_out_and_resets_at_local_midnight() {
        let mut ledger = Ledger::new(&BudgetLimits {
            utc_offset_ms: 3_600_000,
            ..limits(100, 3)
        });
        // 22:30 UTC is 23:30 at UTC+1: midnight is 30 minutes away.
        let evening = T0 + 22 * 3_600_000 + 30 * 60_000;
        for i in 0..3 {
            ledger.try_acquire(Lane::Standard, evening + i).unwrap();
        }
        assert_eq!(ledger.daily_left(), 0);
        assert_eq!(
            ledger.try_acquire(Lane::Standard, evening + 10),
            Err(Duration::from_millis(30 * 60_000 - 10))
        );
        assert!(ledger.try_acquire(Lane::Search, evening + 10).is_err());
        assert!(
            ledger
                .try_acquire(Lane::Standard, evening + 30 * 60_000)
                .is_ok()
        );
    }

    #[test]
    fn the_server_daily_remaining_is_believed() {
        let mut ledger = Ledger::new(&limits(100, 1_000_000));
        let ticket = ledger.try_acquire(Lane::Standard, T0).unwrap();
        let observation = Observation {
            status: Some(200),
            headers: RateLimitHeaders {
                daily_remaining: Some(2),
                ..RateLimitHeaders::default()
            },
            rate_limited: None,
        };
        ledger.observe(&ticket, T0 + 10, &observation);
        assert_eq!(ledger.daily_left(), 2);
        ledger.try_acquire(Lane::Standard, T0 + 20).unwrap();
        ledger.try_acquire(Lane::Standard, T0 + 30).unwrap();
        assert!(ledger.try_acquire(Lane::Standard, T0 + 40).is_err());
        // A daily 429 pauses everything until the reset.
        let mut refused = Ledger::new(&limits(100, 1_000_000));
        let ticket = refused.try_acquire(Lane::Standard, T0 + 1_000).unwrap();
        refused.observe(&ticket, T0 + 1_000, &limited(RateLimitPolicy::Daily, None));
        assert_eq!(
            refused.try_acquire(Lane::Search, T0 + 1_000),
            Err(Duration::from_millis(86_400_000 - 1_000))
        );
        assert_eq!(
            refused.until_daily_reset(T0 + 1_000),
            Duration::from_millis(86_400_000 - 1_000)
        );
    }

    fn shared(share: f64, per_window: u32) -> Ledger {
        Ledger::new(&BudgetLimits {
            backfill_share: share,
            ..limits(per_window, 1_000_000)
        })
    }

    #[test]
    fn backfill_keeps_its_share_while_live_work_waits_and_live_goes_first() {
        let mut ledger = shared(0.3, 10);
        for _ in 0..10 {
            ledger.try_acquire(Lane::Standard, T0).unwrap();
        }
        // The window is full: a live request waits, and so does backfill.
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 1),
            Err(Duration::from_millis(10_099))
        );
        ledger.live_waits();
        assert!(ledger.try_acquire(Lane::Backfill, T0 + 1).is_err());
        // The window empties: backfill takes its three slots even though live work waits...
        let freed = T0 + 10_100;
        for used in 1..=3 {
            let ticket = ledger.try_acquire(Lane::Backfill, freed).unwrap();
            assert_eq!(ticket.lane, Lane::Backfill);
            assert_eq!(ticket.used, used);
        }
        // ...and not one more: the rest is live work's, which is granted at once.
        assert_eq!(
            ledger.try_acquire(Lane::Backfill, freed),
            Err(Duration::from_millis(500))
        );
        for _ in 0..7 {
            ledger.try_acquire(Lane::Standard, freed).unwrap();
        }
        ledger.live_stopped_waiting();
        assert_eq!(ledger.window_len(freed), 10);
        assert_eq!(ledger.backfill_len(freed), 3);
    }

    #[test]
    fn without_waiting_live_work_backfill_uses_what_live_leaves_with_room_to_spare() {
        let mut ledger = shared(0.3, 20);
        for _ in 0..4 {
            ledger.try_acquire(Lane::Standard, T0).unwrap();
        }
        let mut granted = 0;
        while ledger.try_acquire(Lane::Backfill, T0 + 100).is_ok() {
            granted += 1;
        }
        // 20 - (4 live + 1 spare) = 15 entries: 11 of them backfill, beyond its share of 6.
        assert_eq!(granted, 11);
        assert_eq!(ledger.backfill_cap(), 6);
        // Live work can still send as much again as it did in the last window, at once.
        for _ in 0..5 {
            ledger.try_acquire(Lane::Standard, T0 + 200).unwrap();
        }
        assert!(ledger.try_acquire(Lane::Standard, T0 + 200).is_err());
        // A full window: backfill waits for the first live sends to leave it.
        assert_eq!(
            ledger.try_acquire(Lane::Backfill, T0 + 300),
            Err(Duration::from_millis(9_800))
        );
    }

    #[test]
    fn a_backfill_share_of_zero_waits_for_live_work_and_one_takes_everything() {
        let mut none = shared(0.0, 10);
        none.live_waits();
        assert!(none.try_acquire(Lane::Backfill, T0).is_err());
        assert!(none.try_acquire(Lane::Standard, T0).is_ok());
        none.live_stopped_waiting();
        assert!(none.try_acquire(Lane::Backfill, T0).is_ok());

        let mut all = shared(1.0, 10);
        all.live_waits();
        for _ in 0..10 {
            all.try_acquire(Lane::Backfill, T0).unwrap();
        }
        assert_eq!(all.backfill_len(T0), 10);
        assert!(all.try_acquire(Lane::Standard, T0).is_err());
        // Backfill sends leave the window like any other.
        assert_eq!(all.backfill_len(T0 + 10_100), 0);
        assert_eq!(all.window_len(T0 + 10_100), 0);
    }

    #[test]
    fn backfill_sends_count_in_the_window_and_are_corrected_like_live_ones() {
        let mut ledger = shared(0.5, 10);
        let ticket = ledger.try_acquire(Lane::Backfill, T0).unwrap();
        // HubSpot says 5 remain where the model believes 9: another app used 4.
        assert_eq!(ledger.observe(&ticket, T0 + 10, &ok_with(5, 10)), 4);
        assert_eq!(ledger.window_len(T0 + 10), 5);
        assert_eq!(ledger.backfill_len(T0 + 10), 1);
        // A 429 answers a backfill send as it would a live one.
        let ticket = ledger.try_acquire(Lane::Backfill, T0 + 20).unwrap();
        ledger.observe(
            &ticket,
            T0 + 30,
            &limited(
                RateLimitPolicy::TenSecondlyRolling,
                Some(Duration::from_secs(1)),
            ),
        );
        assert_eq!(
            ledger.try_acquire(Lane::Standard, T0 + 30),
            Err(Duration::from_secs(1))
        );
    }

    #[test]
    fn utc_offsets_from_config_time_zones() {
        assert_eq!(utc_offset_ms("UTC"), Some(0));
        assert_eq!(utc_offset_ms("+02:00"), Some(7_200_000));
        assert_eq!(utc_offset_ms("-05:30"), Some(-19_800_000));
        assert_eq!(utc_offset_ms("Europe/Paris"), None);
        assert_eq!(utc_offset_ms("+2"), None);
    }

    #[tokio::test]
    async fn acquire_waits_on_the_clock_and_counts() {
        let clock = ManualClock::new(T0);
        let sleeper = InstantSleeper::advancing(clock.clone());
        let budget = RequestBudget::with_clock(
            limits(2, 1_000),
            Arc::new(clock.clone()),
            Arc::new(sleeper.clone()),
        );
        let mut tickets = Vec::new();
        for _ in 0..5 {
            let slot = budget.acquire(Endpoint::BatchUpsert).await;
            tickets.push(slot.ticket().sent_ms - T0);
            budget.complete(slot, &ok_with(1, 2));
        }
        // Two per window of 10.1 s.
        assert_eq!(tickets, vec![0, 0, 10_100, 10_100, 20_200]);
        assert_eq!(sleeper.slept().len(), 2);
        let stats = budget.stats();
        assert_eq!(stats.sent, 5);
        assert_eq!(stats.waits, 2);
        assert_eq!(stats.waited, Duration::from_millis(20_200));
        assert_eq!(stats.by_endpoint[Endpoint::BatchUpsert.template()].sent, 5);

        let slot = budget.acquire(Endpoint::BatchUpsert).await;
        budget.complete(
            slot,
            &limited(
                RateLimitPolicy::TenSecondlyRolling,
                Some(Duration::from_secs(1)),
            ),
        );
        let stats = budget.stats();
        assert_eq!(stats.rate_limited, 1);
        assert!((stats.rate_limited_share() - 1.0 / 6.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn requests_inside_backfill_take_the_backfill_lane_and_live_ones_go_first() {
        let clock = ManualClock::new(T0);
        let sleeper = InstantSleeper::advancing(clock.clone());
        let budget = RequestBudget::with_clock(
            BudgetLimits {
                backfill_share: 0.3,
                ..limits(10, 1_000)
            },
            Arc::new(clock.clone()),
            Arc::new(sleeper.clone()),
        );
        assert!(!in_backfill());
        let lanes = backfill(async {
            assert!(in_backfill());
            let mut lanes = Vec::new();
            for _ in 0..3 {
                let slot = budget.acquire(Endpoint::BatchUpsert).await;
                lanes.push(slot.ticket().lane);
                budget.complete(slot, &ok_with(9, 10));
            }
            // Searches keep their own lane.
            let slot = budget.acquire(Endpoint::Search).await;
            lanes.push(slot.ticket().lane);
            lanes
        })
        .await;
        assert_eq!(
            lanes,
            [Lane::Backfill, Lane::Backfill, Lane::Backfill, Lane::Search]
        );
        let live = budget.acquire(Endpoint::BatchUpsert).await;
        assert_eq!(live.ticket().lane, Lane::Standard);
        assert_eq!(live.waited(), Duration::ZERO);
        let stats = budget.stats();
        assert_eq!((stats.sent, stats.backfill_sent), (5, 3));
    }

    #[tokio::test]
    async fn live_requests_never_wait_for_backfill_places_in_flight() {
        let budget = RequestBudget::new(BudgetLimits {
            max_in_flight: 1,
            backfill_share: 1.0,
            ..limits(100, 1_000)
        });
        let held = backfill(budget.acquire(Endpoint::BatchUpsert)).await;
        assert_eq!(held.ticket().lane, Lane::Backfill);
        let live = tokio::time::timeout(
            Duration::from_secs(5),
            budget.acquire(Endpoint::BatchUpsert),
        )
        .await
        .expect("a live request goes while a backfill one is in flight");
        let second = tokio::time::timeout(
            Duration::from_millis(50),
            backfill(budget.acquire(Endpoint::BatchUpsert)),
        )
        .await;
        assert!(second.is_err(), "a second backfill request went in flight");
        budget.complete(held, &Observation::default());
        budget.complete(live, &Observation::default());
    }

    #[tokio::test]
    async fn in_flight_requests_are_bounded() {
        let budget = RequestBudget::new(BudgetLimits {
            max_in_flight: 2,
            ..limits(100, 1_000)
        });
        let first = budget.acquire(Endpoint::BatchRead).await;
        let _second = budget.acquire(Endpoint::BatchRead).await;
        let third = tokio::time::timeout(
            Duration::from_millis(50),
            budget.acquire(Endpoint::BatchRead),
        )
        .await;
        assert!(third.is_err(), "a third request went in flight");
        budget.complete(first, &Observation::default());
        let third =
            tokio::time::timeout(Duration::from_secs(5), budget.acquire(Endpoint::BatchRead)).await;
        assert!(third.is_ok());
        assert_eq!(budget.stats().failed, 1);
    }
}
