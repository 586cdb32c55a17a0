//! Shared by the Docker-backed `infractl` tests: environment gating (fail
//! under CI=true, skip with a message otherwise), git and docker CLI calls,
//! the clean-up of a project's containers and images, and plain HTTP GETs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Docker, busybox-static and nginx are there. Without them: panics under
/// `CI=true`, otherwise prints why the test is skipped and returns false.
pub fn available() -> bool {
    let docker = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = docker && Path::new("/bin/busybox").exists() && Path::new("/usr/sbin/nginx").exists();
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("Docker, busybox-static and nginx are required when CI=true");
        }
        eprintln!("SKIPPED: Docker, busybox-static or nginx is not available");
    }
    ok
}

/// Runs `git -C dir ARGS` as a throw-away committer; panics on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@infra.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The standard output of `docker ARGS` (empty when it fails).
pub fn docker(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes every container and image labelled `infra.project=<project>`.
pub fn remove_project(project: &str) {
    let label = format!("label=infra.project={project}");
    for id in docker(&["ps", "-aq", "--filter", &label]).split_whitespace() {
        let _ = docker(&["rm", "-f", id]);
    }
    for id in docker(&["images", "-q", "--filter", &label]).split_whitespace() {
        let _ = docker(&["rmi", "-f", id]);
    }
}

/// `GET path` over HTTP/1.0: the whole answer, `None` if the connection
/// fails.
pub fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// A 200 answer whose body ends with `want`.
pub fn body_is(answer: &Option<String>, want: &str) -> bool {
    answer
        .as_ref()
        .is_some_and(|a| a.starts_with("HTTP/1.1 200") && a.ends_with(want))
}
