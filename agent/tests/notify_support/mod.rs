//! Test support: a real SMTP server (aiosmtpd, AUTH over plain SMTP)
//! on a free loopback port, storing each message as JSON; killed on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use infra_agent::notify::{EmailConfig, EmailNotifier};

pub const USER: &str = "alerts@example.com";
pub const PASSWORD: &str = "smtp-pa55-word";

/// A python with aiosmtpd, or `None` (CI=true: panics).
pub fn python_with_aiosmtpd() -> Option<&'static str> {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but python3-aiosmtpd is missing: run scripts/setup");
    }
    eprintln!("SKIP: python3-aiosmtpd is not installed (scripts/setup installs it)");
    None
}

/// The aiosmtpd server; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    out: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    pub fn start() -> Option<SmtpSink> {
        let python = python_with_aiosmtpd()?;
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify_support/smtp_sink.py");
        let out = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(out.path())
            .env("SINK_USER", USER)
            .env("SINK_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut sink = SmtpSink { child, port, out };
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = sink.child.try_wait().unwrap() {
                panic!("aiosmtpd exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sink)
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn config(&self, password_env: &str) -> EmailConfig {
        EmailConfig::parse(
            "email_config.json",
            &serde_json::json!({
                "version": 1, "enabled": true,
                "smtp": {"host": "127.0.0.1", "port": self.port, "tls": "none",
                         "username": USER, "password_env": password_env},
                "from": "Infra Alerts <alerts@example.com>",
                "to": ["ops@example.com", "oncall@example.com"],
                "subject_prefix": "[infra]", "heartbeat_interval_minutes": 15
            })
            .to_string(),
        )
        .unwrap()
    }

    pub fn notifier(&self, password: &str) -> EmailNotifier {
        let config = self.config("INFRA_SMTP_PASSWORD");
        let secret = config
            .password("email_config.json", |_| Some(password.to_string()))
            .unwrap();
        EmailNotifier::new(&config, secret).unwrap()
    }
}
