//! Every real agent, end to end: each test starts `kiln`, lets a real
//! profiling agent (never a mock) profile a small busy program of its own
//! for a few seconds and send what it sends in production, then reads the
//! result back through `querier.v1` and checks the service, the profile
//! types, plausible totals and that the program's hot function dominates.
//!
//! The agents are installed by `tests/agents/install.sh` (CI runs it before
//! the suite). A missing agent fails its test with a message saying so:
//! these tests never skip. Where the agents are:
//!
//! * `$KILN_AGENTS_HOME` (default `$HOME/.cache/kiln-agents`): `venv/` with
//!   pyroscope-io and py-spy, `target-rust-2/` and `target-rust-0.5/` with
//!   the two pyroscope-rs generations built from `tests/agents/rust-*`;
//! * `tests/agents/node/node_modules`: @pyroscope/nodejs;
//! * on `PATH`: `go`, `java`, `javac` and `jfr`.
//!
//! The agents' programs are the small sources under `tests/agents/`.

mod go;
mod java;
mod node;
mod pyspy;
mod python;
mod rust;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kiln_proto::querier::v1 as q;
use kiln_proto::types::v1 as t;
use kiln_tests::{Client, Kiln, flamegraph_stacks, now_ms, wait_until};

/// The profile type of CPU time in nanoseconds.
const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// How long each busy program runs under its agent.
const BUSY: Duration = Duration::from_secs(3);

/// How long an agent process may take in all (start, busy run, last flush).
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an agent's data may take to become queryable after it exited.
const DATA_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory the installed agents live in.
fn agents_home() -> PathBuf {
    if let Ok(dir) = std::env::var("KILN_AGENTS_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").expect("HOME is not set (or set KILN_AGENTS_HOME)");
    Path::new(&home).join(".cache/kiln-agents")
}

/// `tests/agents/` of this repository: the agents' programs.
fn agent_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents")
}

/// Fails the test unless `path` exists: the agent `what` is not installed.
fn installed(what: &str, path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is not installed ({} is missing): run tests/agents/install.sh \
         (agents are looked up in $KILN_AGENTS_HOME, default $HOME/.cache/kiln-agents)",
        path.display()
    );
    path
}

/// Fails the test unless `program` is on `PATH`; returns its path.
fn on_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{program}` is not on PATH: run tests/agents/install.sh to install it")
        })
}

/// Fails the test if the agent binary is older than its sources, i.e. it
/// was built before they changed and install.sh has not run since.
fn built_from_current_sources(binary: &Path, sources: &Path) {
    let built = std::fs::metadata(binary).unwrap().modified().unwrap();
    for source in [sources.join("src/main.rs"), sources.join("Cargo.lock")] {
        let changed = std::fs::metadata(&source).unwrap().modified().unwrap();
        assert!(
            changed <= built,
            "{} is older than {}: rerun tests/agents/install.sh",
            binary.display(),
            source.display()
        );
    }
}

/// Prints a measurement when `KILN_TEST_VERBOSE` is set, to see how far
/// the checks are from their limits.
fn note(message: &str) {
    if std::env::var_os("KILN_TEST_VERBOSE").is_some() {
        eprintln!("[agents] {message}");
    }
}

/// A `kiln` of its own for one agent test, with its own data directory.
struct Server {
    kiln: Kiln,
    client: Client,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        // A short ingester flush interval: pushes are acknowledged once
        // flushed, and agents wait for the acknowledgement (some drop
        // profiles while an upload is pending).
        let kiln = Kiln::start_with_env(
            &Kiln::binary(),
            data.path(),
            &[],
            &[("KILN_INGESTER__FLUSH_INTERVAL", "200ms")],
        )
        .unwrap();
        let client = Client::new(&kiln.http);
        Server {
            kiln,
            client,
            _data: data,
        }
    }

    /// The last lines kiln logged, for failure messages.
    fn log_tail(&self) -> String {
        let log = self.kiln.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// What an agent process printed and how long it ran.
struct AgentRun {
    elapsed: Duration,
    stdout: String,
}

/// Runs an agent (or a program under one) to completion and fails the test
/// if it fails or hangs. The child is killed if the test ends first.
async fn run_agent(what: &str, mut command: tokio::process::Command) -> AgentRun {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({command:?}): {e}"));
    let output = tokio::time::timeout(AGENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {AGENT_TIMEOUT:?}"))
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let printed = format!("{stdout}{stderr}");
    let shown: String = printed.chars().take(1000).collect();
    note(&format!("{what} ran {elapsed:.1?}\n{shown}"));
    AgentRun { elapsed, stdout }
}

/// A time range that holds everything the test sent (agents stamp their
/// profiles with the start of their flush interval).
fn query_range() -> (i64, i64) {
    let now = now_ms();
    (now - 3_600_000, now + 3_600_000)
}

/// A merged flame graph read back from Kiln.
#[derive(Debug)]
struct Merged {
    total: i64,
    /// Self value per full stack (`root;...;leaf`).
    stacks: BTreeMap<String, i64>,
}

impl Merged {
    /// The share of the total in stacks with a frame containing `function`.
    fn share_of(&self, function: &str) -> f64 {
        let with: i64 = self
            .stacks
            .iter()
            .filter(|(stack, _)| stack.split(';').any(|frame| frame.contains(function)))
            .map(|(_, value)| value)
            .sum();
        with as f64 / self.total.max(1) as f64
    }

    /// The heaviest stacks, for failure messages.
    fn top(&self) -> String {
        let mut stacks: Vec<_> = self.stacks.iter().collect();
        stacks.sort_by_key(|(_, value)| std::cmp::Reverse(**value));
        stacks
            .iter()
            .take(5)
            .map(|(stack, value)| format!("  {value} {stack}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails unless stacks through `function` hold at least `min_share` of
    /// the total.
    fn assert_dominated_by(&self, function: &str, min_share: f64, what: &str) {
        let share = self.share_of(function);
        note(&format!(
            "{what}: {function} holds {:.0}% of {}",
            share * 100.0,
            self.total
        ));
        assert!(
            share >= min_share,
            "{what}: {function} holds {:.0}% of {}, expected at least {:.0}%; top stacks:\n{}",
            share * 100.0,
            self.total,
            min_share * 100.0,
            self.top()
        );
    }
}

/// `SelectMergeStacktraces` of one service and profile type.
async fn merged(client: &Client, profile_type: &str, service: &str) -> Merged {
    let (start, end) = query_range();
    let request = q::SelectMergeStacktracesRequest {
        profile_type_id: profile_type.into(),
        label_selector: format!("{{service_name=\"{service}\"}}"),
        start,
        end,
        max_nodes: Some(100_000),
        ..Default::default()
    };
    let response = client.merge(&request).await;
    let flamegraph = response.flamegraph.unwrap_or_default();
    Merged {
        total: flamegraph.total,
        stacks: flamegraph_stacks(&flamegraph),
    }
}

/// The profile type IDs of `service` that Kiln lists.
async fn profile_types_of(client: &Client, service: &str) -> Vec<String> {
    let (start, end) = query_range();
    let request = q::SeriesRequest {
        matchers: vec![format!("{{service_name=\"{service}\"}}")],
        label_names: vec!["__profile_type__".into()],
        start,
        end,
    };
    let response: q::SeriesResponse = client
        .connect_proto("/querier.v1.QuerierService/Series", &request, false)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("Series failed: {} {}", e.status, e.text()));
    let mut types: Vec<String> = response
        .labels_set
        .iter()
        .flat_map(|set| set.labels.iter())
        .filter(|label| label.name == "__profile_type__")
        .map(|label| label.value.clone())
        .collect();
    types.sort();
    types.dedup();
    types
}

/// Waits until `service` has data of every type in `profile_types` and the
/// totals have stopped changing (the agent's last flush is in), then checks
/// that the service and the types are listed by `LabelValues` and
/// `ProfileTypes`. Returns the merged flame graph of each type.
async fn wait_for_service(
    server: &Server,
    service: &str,
    profile_types: &[&str],
) -> BTreeMap<String, Merged> {
    let client = &server.client;
    let previous: RefCell<Option<Vec<i64>>> = RefCell::new(None);
    let totals = wait_until(
        &format!("{service} to have settled data of {profile_types:?}"),
        DATA_TIMEOUT,
        Duration::from_millis(300),
        || {
            let previous = &previous;
            async move {
                let mut totals = Vec::new();
                for profile_type in profile_types {
                    totals.push(merged(client, profile_type, service).await.total);
                }
                let settled = totals.iter().all(|total| *total > 0)
                    && previous.borrow().as_ref() == Some(&totals);
                let state = format!("totals {totals:?}");
                *previous.borrow_mut() = Some(totals);
                if settled { Ok(()) } else { Err(state) }
            }
        },
    )
    .await;
    if let Err(e) = totals {
        panic!(
            "{e}\nprofile types of {service}: {:?}\nkiln log:\n{}",
            profile_types_of(client, service).await,
            server.log_tail()
        );
    }

    let (start, end) = query_range();
    let services: t::LabelValuesResponse = client
        .connect_proto(
            "/querier.v1.QuerierService/LabelValues",
            &t::LabelValuesRequest {
                name: "service_name".into(),
                matchers: vec![],
                start,
                end,
            },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        services.names.iter().any(|name| name == service),
        "{service} missing from the services {:?}",
        services.names
    );
    let listed: q::ProfileTypesResponse = client
        .connect_proto(
            "/querier.v1.QuerierService/ProfileTypes",
            &q::ProfileTypesRequest { start, end },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = listed.profile_types.iter().map(|p| p.id.as_str()).collect();
    let of_service = profile_types_of(client, service).await;
    for profile_type in profile_types {
        assert!(
            ids.contains(profile_type),
            "{profile_type} missing from ProfileTypes {ids:?}"
        );
        assert!(
            of_service.iter().any(|t| t == profile_type),
            "{profile_type} missing from the series of {service}: {of_service:?}"
        );
    }

    let mut out = BTreeMap::new();
    for profile_type in profile_types {
        out.insert(
            (*profile_type).to_owned(),
            merged(client, profile_type, service).await,
        );
    }
    out
}

/// Waits until `service` has exactly `expected` of `profile_type` (for
/// uploads whose total the test computed itself), and returns it merged.
async fn wait_for_total(
    server: &Server,
    service: &str,
    profile_type: &str,
    expected: i64,
) -> Merged {
    let client = &server.client;
    let result = wait_until(
        &format!("{service} {profile_type} to total {expected}"),
        DATA_TIMEOUT,
        Duration::from_millis(200),
        || async {
            let got = merged(client, profile_type, service).await;
            if got.total == expected {
                Ok(got)
            } else {
                Err(format!("total {}", got.total))
            }
        },
    )
    .await;
    match result {
        Ok(got) => got,
        Err(e) => panic!(
            "{e}\nprofile types of {service}: {:?}\nkiln log:\n{}",
            profile_types_of(client, service).await,
            server.log_tail()
        ),
    }
}

/// Fails unless a CPU total (ns) is plausible for a single busy thread that
/// ran `busy` inside a process that lived `lived`: at least a sixth of the
/// busy time (the two cores are shared with other tests), at most the
/// process's whole life with some slack for agents that sample wall time.
fn assert_plausible_cpu(total_ns: i64, busy: Duration, lived: Duration, what: &str) {
    let low = busy.as_nanos() as f64 / 6.0;
    let high = lived.as_nanos() as f64 * 1.3;
    note(&format!(
        "{what}: CPU total {:.2}s for a {busy:?} busy run in {lived:.1?}",
        total_ns as f64 / 1e9
    ));
    assert!(
        (low..=high).contains(&(total_ns as f64)),
        "{what}: CPU total {:.2}s outside [{:.2}s, {:.2}s] for a {busy:?} busy run in {lived:.1?}",
        total_ns as f64 / 1e9,
        low / 1e9,
        high / 1e9
    );
}

/// The current time in Unix seconds, as the legacy agents send it.
fn unix_seconds() -> String {
    (now_ms() / 1000).to_string()
}
