//! What the end-to-end tests share: running the `hubsync` binary (or, for the tests of the
//! development commands, `hubsync-dev`) as a child process that is killed when the test ends,
//! reading the `NAME=value` lines it prints, and picking free ports.

#![allow(dead_code)]

pub mod events;
pub mod hook;
pub mod world;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous for a loaded 2-core machine; a healthy start takes a fraction of it.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `hubsync` process; killed on drop unless it already ended.
pub struct Child {
    child: std::process::Child,
    lines: mpsc::Receiver<std::io::Result<String>>,
    name: String,
}

/// What a child is called in its log's name and in failures: the directory of its `--config`
/// (an instance's own), else `child`.
fn name_of(args: &[&str]) -> String {
    args.iter()
        .position(|a| *a == "--config")
        .and_then(|i| args.get(i + 1))
        .and_then(|path| std::path::Path::new(path).parent()?.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "child".to_string())
}

/// Where a child's logs go: passed through, or with `HUBSYNC_CHILD_LOG_DIR=DIR` into a file of
/// DIR per child, named after the directory of its `--config` file and its start time.
fn stderr_of(args: &[&str]) -> Stdio {
    let Ok(dir) = std::env::var("HUBSYNC_CHILD_LOG_DIR") else {
        return Stdio::inherit();
    };
    let name = name_of(args);
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let path = std::path::Path::new(&dir).join(format!("{name}-{at}.log"));
    match std::fs::File::create(&path) {
        Ok(file) => Stdio::from(file),
        Err(error) => panic!("{}: {error}", path.display()),
    }
}

impl Child {
    /// Starts `hubsync ARGS...` with stdout piped (read through [`Child::read_env`]) and stderr
    /// passed through, so a failing test shows the child's logs.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// [`Child::spawn`] with extra environment variables.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let Some(binary) = option_env!("CARGO_BIN_EXE_hubsync") else {
            panic!("this test is declared in the package that builds the hubsync binary")
        };
        Self::spawn_binary(binary, args, env)
    }

    /// Starts `hubsync-dev ARGS...` (the sandbox, the development broker, the demo).
    pub fn spawn_dev(args: &[&str]) -> Self {
        let Some(binary) = option_env!("CARGO_BIN_EXE_hubsync-dev") else {
            panic!("this test is declared in the package that builds the hubsync-dev binary")
        };
        Self::spawn_binary(binary, args, &[])
    }

    fn spawn_binary(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            // `HUBSYNC_CHILD_LOG=info cargo test ...` shows more of what the children do.
            .env(
                "HUBSYNC_LOG",
                std::env::var("HUBSYNC_CHILD_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_of(args))
            .spawn()
            .unwrap_or_else(|error| panic!("{binary} starts: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Child {
            child,
            lines,
            name: name_of(args),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout until every name in `wanted` has appeared as `NAME=value`.
    pub async fn read_env(&mut self, wanted: &[&str]) -> HashMap<String, String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut found = HashMap::new();
        while !wanted.iter().all(|name| found.contains_key(*name)) {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(wait) {
                Ok(line) => line.expect("stdout is utf-8"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "hubsync printed {found:?} but not all of {wanted:?} within {STARTUP_TIMEOUT:?}"
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("wait");
                    panic!(
                        "hubsync exited ({status}) after printing {found:?}, before all of {wanted:?}"
                    )
                }
            };
            if let Some((name, value)) = line.split_once('=') {
                found.insert(name.to_string(), value.to_string());
            }
        }
        found
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to end.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hubsync ({}) did not stop within {timeout:?} of SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The sandbox config with activity, user and campaign rules: email clicks switched off, one
/// campaign that creates deals on replies, one that does not push to the CRM.
pub fn activity_rules(config: String) -> String {
    let config = config.replace(
        "email_opened = { enabled = true, store_as = \"note\" }\n",
        "email_opened = { enabled = true, store_as = \"note\" }\nemail_clicked = { enabled = false }\n",
    );
    assert!(
        config.contains("email_clicked"),
        "the [activities] section is there"
    );
    config
        + r#"
[users]
default_owner = "70000001"

[[users.mapping]]
user = "usr_ada"
owner = "70000003"

[campaigns.cmp_q3]
deal_triggers = ["email_replied"]

[campaigns.cmp_quiet]
push_to_crm = false
"#
}
