//! The web UI in a real browser: `kiln` under a base path (`/kiln`), fixed
//! folded profiles ingested at two moments and for two label values, then
//! `crates/ui/tests/e2e.mjs` (playwright-core driving Debian's Chromium)
//! opens every view and checks what the pages show. What they must show
//! (totals, table rows, diff percentages, tag shares) is computed here from
//! the ingested text, not from Kiln's answers.
//!
//! Needs `node`, `chromium` and `crates/ui/tests/node_modules` (`npm ci`
//! there); `.ci/run` installs them and sets `KILN_REQUIRE_BROWSER=1`, which
//! turns a missing tool into a failure instead of a skip. Screenshots go to
//! `target/ui-e2e/` (or `KILN_UI_SHOTS`); the README's images come from
//! `KILN_UI_SHOTS=docs/images/ui`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_tests::{Client, Kiln, now_ms};
use serde_json::{Value, json};

use crate::spine::CPU;

/// Folded profiles ingested at the baseline moment: (env, text).
const BASELINE: &[(&str, &str)] = &[
    (
        "prod",
        "main;handler;db.query 300\nmain;handler;json.encode 100\nmain;gc 100\n",
    ),
    ("staging", "main;handler;db.query 50\nmain;gc 50\n"),
];
/// And at the comparison moment: json.encode grew, cache.lookup and a
/// recursive render are new, staging spends more in gc.
const COMPARISON: &[(&str, &str)] = &[
    (
        "prod",
        "main;handler;db.query 300\nmain;handler;json.encode 300\nmain;handler;cache.lookup 100\n\
         main;handler;render;render;template 40\nmain;gc 100\n",
    ),
    ("staging", "main;handler;db.query 50\nmain;gc 150\n"),
];
/// The file the test uploads through the UI's upload dialog.
const UPLOAD: &str = "start;parse;lex 25\nstart;parse 5\nstart;emit 10\n";
/// Folded `.cpu` samples are taken at 100 Hz: one sample is 10 ms.
const NS_PER_SAMPLE: i64 = 10_000_000;

/// Stack → value in ns, summed over `profiles`.
fn stacks(profiles: &[&str]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for text in profiles {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (stack, n) = line.rsplit_once(' ').unwrap();
            *out.entry(stack.to_owned()).or_insert(0) += n.parse::<i64>().unwrap() * NS_PER_SAMPLE;
        }
    }
    out
}

/// Function → (self, total): self from the leaf frame, total once per stack
/// however often the function appears in it.
fn functions(stacks: &BTreeMap<String, i64>) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (stack, v) in stacks {
        let frames: Vec<&str> = stack.split(';').collect();
        out.entry((*frames.last().unwrap()).to_owned())
            .or_default()
            .0 += v;
        for f in frames.iter().copied().collect::<BTreeSet<_>>() {
            out.entry(f.to_owned()).or_default().1 += v;
        }
    }
    out
}

/// Distinct nodes of the call tree, plus the root.
fn tree_nodes(stacks: &BTreeMap<String, i64>) -> usize {
    let mut prefixes = BTreeSet::new();
    for stack in stacks.keys() {
        let frames: Vec<&str> = stack.split(';').collect();
        for i in 1..=frames.len() {
            prefixes.insert(frames[..i].join(";"));
        }
    }
    prefixes.len() + 1
}

fn functions_json(f: &BTreeMap<String, (i64, i64)>) -> Value {
    f.iter()
        .map(|(k, (s, t))| (k.clone(), json!({"self": s, "total": t})))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Pyroscope's diff text of a function: each side's share rounded to
/// 0.01 %, then the relative change of the share; `new` / `removed` when
/// one side is absent.
fn diff_text(left: i64, left_total: i64, right: i64, right_total: i64) -> String {
    if left == 0 && right > 0 {
        return "new".into();
    }
    if right == 0 && left > 0 {
        return "removed".into();
    }
    let share = |v: i64, t: i64| (v as f64 * 10_000.0 / t as f64).round() / 100.0;
    let (l, r) = (share(left, left_total), share(right, right_total));
    let change = if l == r { 0.0 } else { (r - l) / l * 100.0 };
    let sign = if change > 0.0 { "+" } else { "" };
    format!("{sign}{change:.2} %")
}

/// Where the browser tools are, or why they are missing.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let ui_tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/tests");
    let chromium = std::env::var("KILN_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node on PATH".into());
    }
    if !ui_tests.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            ui_tests.display()
        ));
    }
    Ok((ui_tests, chromium))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_in_chromium() {
    let (ui_tests, chromium) = match browser_tools() {
        Ok(t) => t,
        Err(why) if std::env::var_os("KILN_REQUIRE_BROWSER").is_none() => {
            eprintln!("skipping the browser test: {why}");
            return;
        }
        Err(why) => panic!("the browser test cannot run: {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Kiln::start(
        &Kiln::binary(),
        &dir.path().join("data"),
        &["--http.base-path", "/kiln"],
    )
    .unwrap();
    // Everything, ingest included, goes through the base path.
    let c = Client::new(&format!("{}/kiln", server.http));

    let now = now_ms();
    let at_baseline = now - 40 * 60_000;
    let at_comparison = now - 10 * 60_000;
    for (at, profiles) in [(at_baseline, BASELINE), (at_comparison, COMPARISON)] {
        for (env, text) in profiles {
            let secs = (at / 1000).to_string();
            let r = c
                .ingest(
                    &[
                        ("name", format!("shop.cpu{{env={env}}}")),
                        ("from", secs.clone()),
                        ("until", secs),
                    ],
                    "text/plain",
                    text.as_bytes().to_vec(),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }

    let texts = |p: &[(&str, &'static str)]| p.iter().map(|x| x.1).collect::<Vec<_>>();
    let left = stacks(&texts(BASELINE));
    let right = stacks(&texts(COMPARISON));
    let all = stacks(&[texts(BASELINE), texts(COMPARISON)].concat());
    let total: i64 = all.values().sum();
    let left_total: i64 = left.values().sum();
    let right_total: i64 = right.values().sum();
    let (fl, fr) = (functions(&left), functions(&right));
    let mut diff = serde_json::Map::new();
    for name in fl.keys().chain(fr.keys()).collect::<BTreeSet<_>>() {
        let l = fl.get(name).map_or(0, |x| x.1);
        let r = fr.get(name).map_or(0, |x| x.1);
        diff.insert(
            name.clone(),
            json!({"leftTotal": l, "rightTotal": r, "text": diff_text(l, left_total, r, right_total)}),
        );
    }
    let mut envs = serde_json::Map::new();
    for env in ["prod", "staging"] {
        let t: Vec<&str> = BASELINE
            .iter()
            .chain(COMPARISON)
            .filter(|x| x.0 == env)
            .map(|x| x.1)
            .collect();
        envs.insert(env.into(), json!(stacks(&t).values().sum::<i64>()));
    }
    // The widest callee of handler over both moments (what ArrowDown picks).
    let mut under_handler: BTreeMap<&str, i64> = BTreeMap::new();
    for (stack, v) in &all {
        if let Some(rest) = stack.strip_prefix("main;handler;") {
            *under_handler
                .entry(rest.split(';').next().unwrap())
                .or_default() += v;
        }
    }
    let widest = under_handler
        .iter()
        .max_by_key(|x| *x.1)
        .unwrap()
        .0
        .to_string();
    let upload_file = dir.path().join("uploaded.folded");
    std::fs::write(&upload_file, UPLOAD).unwrap();
    let uploaded = stacks(&[UPLOAD]);

    let minutes = |m: i64| m * 60_000;
    let expect = json!({
        "base": format!("{}/kiln/", server.http),
        "service": "shop",
        "type": CPU,
        "range": {"from": now - minutes(60), "until": now + minutes(1)},
        "left": {"from": at_baseline - minutes(2), "until": at_baseline + minutes(2)},
        "right": {"from": at_comparison - minutes(2), "until": at_comparison + minutes(2)},
        "total": total,
        "nodes": tree_nodes(&all),
        "stacks": all,
        "functions": functions_json(&functions(&all)),
        "widestUnderHandler": widest,
        "leftTotal": left_total,
        "rightTotal": right_total,
        "leftFunctions": functions_json(&fl),
        "rightFunctions": functions_json(&fr),
        "diff": diff,
        "envs": envs,
        "upload": {
            "file": upload_file,
            "service": "uploaded-app",
            "total": uploaded.values().sum::<i64>(),
            "functions": functions_json(&functions(&uploaded)),
        },
    });
    let expect_file = dir.path().join("expect.json");
    std::fs::write(&expect_file, expect.to_string()).unwrap();
    // Relative paths are taken from the workspace root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shots = std::env::var("KILN_UI_SHOTS")
        .map(|p| root.join(p))
        .unwrap_or_else(|_| root.join("target/ui-e2e"));

    let out = tokio::process::Command::new("node")
        .arg("e2e.mjs")
        .current_dir(&ui_tests)
        .env("KILN_UI_EXPECT", &expect_file)
        .env("KILN_UI_SHOTS", &shots)
        .env("KILN_CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "browser test failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nkiln log (tail):\n{}",
        server
            .log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_with_auth() {
    let (ui_tests, chromium) = match browser_tools() {
        Ok(t) => t,
        Err(why) if std::env::var_os("KILN_REQUIRE_BROWSER").is_none() => {
            eprintln!("skipping the browser test: {why}");
            return;
        }
        Err(why) => panic!("the browser test cannot run: {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials.yaml");
    std::fs::write(&creds, "credentials:\n  - token: ui-token\n").unwrap();
    let server = Kiln::start_with_env(
        &Kiln::binary(),
        &dir.path().join("data"),
        &[],
        &[
            ("KILN_AUTH__ENABLED", "true"),
            ("KILN_AUTH__CREDENTIALS_FILE", creds.to_str().unwrap()),
        ],
    )
    .unwrap();
    let c = Client::new(&server.http).with_authorization("Bearer ui-token");
    let secs = (now_ms() / 1000).to_string();
    let r = c
        .ingest(
            &[
                ("name", "guarded.cpu".to_owned()),
                ("from", secs.clone()),
                ("until", secs),
            ],
            "text/plain",
            b"main;work 5\n".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let expect_file = dir.path().join("expect.json");
    std::fs::write(
        &expect_file,
        serde_json::json!({"base": format!("{}/", server.http), "service": "guarded", "token": "ui-token"})
            .to_string(),
    )
    .unwrap();
    let out = tokio::process::Command::new("node")
        .arg("auth.mjs")
        .current_dir(&ui_tests)
        .env("KILN_UI_EXPECT", &expect_file)
        .env("KILN_CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser auth test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    server.stop().unwrap();
}
