//! CPU time and machine load from `/proc`, so figures taken on a shared machine can say how much
//! of a core they had.

use std::time::Duration;

/// CPU time (user + system) this whole process has used.
pub fn process() -> Duration {
    stat_ticks("/proc/self/stat")
}

/// CPU time (user + system) the calling thread has used: unlike wall-clock time it does not
/// grow while other processes hold the core.
pub fn thread() -> Duration {
    stat_ticks("/proc/thread-self/stat")
}

/// Threads whose name the bench knows: the HubSpot sandbox's runtime ([`SANDBOX_THREADS`], see
/// `World::start`) and the development broker's (librdkafka's mock cluster names its one thread
/// `rdk:mock`).
pub const SANDBOX_THREADS: &str = "sandbox";
const BROKER_THREAD: &str = "rdk:mock";

/// CPU time of the whole process, and of the stand-ins for what runs elsewhere in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct Split {
    pub process: Duration,
    /// The HubSpot sandbox's threads.
    pub sandbox: Duration,
    /// The development broker's thread.
    pub broker: Duration,
}

impl Split {
    pub fn now() -> Self {
        let mut split = Split {
            process: process(),
            ..Split::default()
        };
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return split;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let name = name.trim_end();
            let slot = if name.starts_with(SANDBOX_THREADS) {
                &mut split.sandbox
            } else if name == BROKER_THREAD {
                &mut split.broker
            } else {
                continue;
            };
            *slot += stat_ticks(&path.join("stat").to_string_lossy());
        }
        split
    }

    /// What was used from `earlier` to `self`.
    pub fn since(self, earlier: Split) -> Split {
        Split {
            process: self.process.saturating_sub(earlier.process),
            sandbox: self.sandbox.saturating_sub(earlier.sandbox),
            broker: self.broker.saturating_sub(earlier.broker),
        }
    }

    /// Each part divided by `items`.
    pub fn per(self, items: usize) -> Split {
        let items = u32::try_from(items.max(1)).unwrap_or(u32::MAX);
        Split {
            process: self.process / items,
            sandbox: self.sandbox / items,
            broker: self.broker / items,
        }
    }

    /// The rest: hubsync's pipeline, with the bench's own clients (its producer, its readers of
    /// outcomes and commands), which do the same work per event whatever hubsync does. A sandbox
    /// or broker thread that ended would be counted here, never the other way round.
    pub fn pipeline(self) -> Duration {
        self.process
            .saturating_sub(self.sandbox)
            .saturating_sub(self.broker)
    }
}

/// The machine's one-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `utime + stime` of a `stat` file. Linux counts them in USER_HZ, 100 per second on every
/// mainstream build, so readings are good to 10 ms.
fn stat_ticks(path: &str) -> Duration {
    let ticks = std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .rsplit_once(") ")?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            (fields.len() == 2).then(|| fields[0] + fields[1])
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// One timed pass on the calling thread, started by [`Lap::start`]: [`Lap::rates`] gives items
/// per second of wall-clock time and per second of the thread's CPU time. An async pass counts
/// only while it runs on this thread, so it suits passes that never wait.
#[derive(Debug, Clone, Copy)]
pub struct Lap {
    wall: std::time::Instant,
    cpu: Duration,
}

impl Lap {
    pub fn start() -> Self {
        Lap {
            wall: std::time::Instant::now(),
            cpu: thread(),
        }
    }

    /// `(per wall second, per CPU second)`; CPU time is counted as at least 10 ms, its grain.
    pub fn rates(self, items: usize) -> (f64, f64) {
        let wall = self.wall.elapsed().max(Duration::from_nanos(1));
        let cpu = thread()
            .saturating_sub(self.cpu)
            .max(Duration::from_millis(10));
        (
            items as f64 / wall.as_secs_f64(),
            items as f64 / cpu.as_secs_f64(),
        )
    }
}

/// Started by [`Meter::start`]; [`Meter::stop`] says what the process used meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    cpu: Duration,
    wall: std::time::Instant,
    load: f64,
}

impl Meter {
    pub fn start() -> Self {
        Meter {
            cpu: process(),
            wall: std::time::Instant::now(),
            load: load_average(),
        }
    }

    pub fn stop(self) -> Usage {
        Usage {
            cpu: process().saturating_sub(self.cpu),
            wall: self.wall.elapsed(),
            load: (self.load, load_average()),
        }
    }
}

/// What this whole process (pipeline, sandbox, broker and bench) used over a stretch of time.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu: Duration,
    pub wall: Duration,
    /// The one-minute load average at the start and at the end.
    pub load: (f64, f64),
}

impl Usage {
    /// Cores kept busy on average.
    pub fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-3)
    }

    /// CPU microseconds per item.
    pub fn micros_per(&self, items: usize) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / items.max(1) as f64
    }

    pub fn describe(&self, items: usize, item: &str) -> String {
        format!(
            "{:.1} s CPU over {:.1} s = {:.2} cores, {:.0} us per {item} (pipeline, sandbox, \
             broker and bench together); load average {:.2} -> {:.2}",
            self.cpu.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.cores(),
            self.micros_per(items),
            self.load.0,
            self.load.1
        )
    }
}
