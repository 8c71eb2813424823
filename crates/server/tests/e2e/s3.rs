//! The S3 backend against a real S3-compatible server (`s3s-fs`, installed
//! by `.ci/run`): the spine's ingest/query/restart cases with blocks in a
//! bucket instead of the local filesystem.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kiln_tests::{Client, Kiln, free_port_range, wait_until};

use crate::spine::{check_everything, ingest_everything};

/// The `s3s-fs` binary: `$KILN_S3S_FS`, `~/.cache/kiln-tools/bin/s3s-fs`,
/// or `s3s-fs` on the PATH.
fn s3s_fs() -> PathBuf {
    if let Ok(p) = std::env::var("KILN_S3S_FS") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/kiln-tools/bin/s3s-fs");
    if cached.exists() {
        return cached;
    }
    let which = Command::new("sh")
        .args(["-c", "command -v s3s-fs"])
        .output()
        .unwrap();
    let p = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    assert!(
        !p.is_empty(),
        "s3s-fs not found: run .ci/run (it installs s3s-fs 0.14.1) or set KILN_S3S_FS"
    );
    PathBuf::from(p)
}

/// A running `s3s-fs` with one bucket.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    async fn start(dir: &Path, bucket: &str) -> S3Server {
        std::fs::create_dir_all(dir.join(bucket)).unwrap();
        let port = free_port_range(1);
        let child = Command::new(s3s_fs())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                "test",
                "--secret-key",
                "test",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let addr = format!("127.0.0.1:{port}");
        wait_until(
            "s3s-fs to listen",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || {
                let addr = addr.clone();
                async move {
                    tokio::net::TcpStream::connect(&addr)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await
        .unwrap();
        S3Server {
            child,
            endpoint: format!("http://{addr}"),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spine_on_s3() {
    let s3_dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(s3_dir.path(), "kiln-test").await;
    let env = [
        ("KILN_STORAGE__BACKEND", "s3"),
        ("KILN_STORAGE__S3__BUCKET", "kiln-test"),
        ("KILN_STORAGE__S3__ENDPOINT", s3.endpoint.as_str()),
        ("KILN_STORAGE__S3__ACCESS_KEY_ID", "test"),
        ("KILN_STORAGE__S3__SECRET_ACCESS_KEY", "test"),
        ("KILN_STORAGE__S3__ALLOW_HTTP", "true"),
        ("KILN_STORAGE__S3__FORCE_PATH_STYLE", "true"),
    ];
    let data = tempfile::tempdir().unwrap();
    let bin = Kiln::binary();
    let kiln = Kiln::start_with_env(&bin, data.path(), &[], &env).unwrap();
    assert!(
        kiln.log().contains("storage=s3 bucket kiln-test"),
        "{}",
        kiln.log()
    );
    let c = Client::new(&kiln.http);
    let (expect, folded) = ingest_everything(&c).await;
    check_everything(&c, &expect, &folded).await;
    // The blocks are in the bucket, not under the data dir.
    let segments = count_files(&s3_dir.path().join("kiln-test/anonymous/segments"));
    assert!(segments > 0, "no segment objects in the bucket");
    assert_eq!(
        count_files(&data.path().join("blocks")),
        0,
        "nothing written to the local filesystem store"
    );
    kiln.stop().unwrap();

    let kiln = Kiln::start_with_env(&bin, data.path(), &[], &env).unwrap();
    check_everything(&Client::new(&kiln.http), &expect, &folded).await;
    kiln.stop().unwrap();
}
