//! The `infra-sim serve` binary: startup line, serving, clean SIGTERM shutdown, bad flags.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn serve_prints_url_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra-sim"))
        .args([
            "serve",
            "--port",
            "0",
            "--profile",
            "instant",
            "--token",
            "secret-1",
        ])
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("startup line within 20 s")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("infra-sim listening on ")
        .expect("startup line format")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/v2/tags"))
        .bearer_auth("secret-1")
        .json(&serde_json::json!({"name": "from-binary"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .get(format!("{url}/v2/account"))
        .bearer_auth("other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let pid = child.id().expect("running") as i32;
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within 20 s after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let saved = std::fs::read_to_string(&state).expect("state saved");
    assert!(saved.contains("from-binary"));
    assert!(!saved.contains("secret-1"), "tokens are never persisted");
}

#[tokio::test]
async fn bad_arguments_fail_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_infra-sim"))
        .args(["serve", "--profile", "warp"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warp") && err.contains("profile"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_infra-sim"))
        .args(["serve", "--time-scale", "0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("time_scale"));
}
