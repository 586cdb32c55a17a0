//! `infractl status` (the real binary) against three in-process agents on
//! 127.0.0.x with mTLS and Raft: the JSON contract, the text table, and
//! exit code 1 with a clear message when no agent answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use infra_agent::config::{AgentConfig, RawConfig};
use infra_agent::membership::GossipKey;
use infra_agent::node::{NodeDeps, RunningNode, start};
use infra_agent::tls::{Ca, write_private};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn free_ports(ip: IpAddr) -> (u16, u16) {
    let tcp = std::net::TcpListener::bind((ip, 0)).unwrap();
    let udp = std::net::UdpSocket::bind((ip, 0)).unwrap();
    (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    )
}

fn config(pki: &Path, ca: &Ca, name: &str, ip: Ipv4Addr, seed: Option<SocketAddr>) -> AgentConfig {
    let (grpc, gossip) = free_ports(IpAddr::V4(ip));
    let data_dir = pki.join(name);
    std::fs::create_dir_all(&data_dir).unwrap();
    let (cert, key) = ca
        .issue_node(name, &[ip.to_string()])
        .unwrap()
        .write(pki, name)
        .unwrap();
    AgentConfig::from_raw(RawConfig {
        node_name: Some(name.into()),
        cluster_id: Some("infra".into()),
        data_dir: Some(data_dir),
        grpc_listen: Some(format!("{ip}:{grpc}")),
        gossip_listen: Some(format!("{ip}:{gossip}")),
        seeds: seed.map(|s| vec![s.to_string()]),
        ca_cert: Some(pki.join("ca.pem")),
        node_cert: Some(cert),
        node_key: Some(key),
        gossip_key_file: Some(pki.join("gossip.key")),
        ..RawConfig::default()
    })
    .unwrap()
}

fn infractl(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infractl"))
        .current_dir(cwd)
        .env_remove("INFRA_CONFIG_DIR")
        .env_remove("INFRA_ENDPOINT")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_three_agent_cluster() {
    infra_agent::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = Ca::create("infra").unwrap();
    ca.write(&pki).unwrap();
    ca.issue_client("infractl")
        .unwrap()
        .write(&pki, "client")
        .unwrap();
    write_private(
        &pki.join("gossip.key"),
        GossipKey::generate().to_hex().as_bytes(),
    )
    .unwrap();

    let shutdown = CancellationToken::new();
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut configs: Vec<AgentConfig> = Vec::new();
    for i in 0..3u8 {
        let seed = configs.first().map(|c| c.gossip_advertise);
        let c = config(
            &pki,
            &ca,
            &format!("n{i}"),
            Ipv4Addr::new(127, 0, 0, 130 + i),
            seed,
        );
        let node = start(c.clone(), NodeDeps::default(), shutdown.clone())
            .await
            .unwrap();
        if i == 0 {
            node.initialize("infra").await.unwrap();
        }
        nodes.push(node);
        configs.push(c);
    }
    let endpoint = configs[2].grpc_advertise.to_string();
    let pki_arg = pki.to_str().unwrap().to_string();
    let args = [
        "status",
        "--endpoint",
        &endpoint,
        "--pki",
        &pki_arg,
        "-o",
        "json",
    ];

    // Poll until the Raft group has all three members with a leader.
    let mut last = Value::Null;
    for _ in 0..150 {
        let (code, stdout, stderr) = infractl(dir.path(), &args);
        assert_eq!(code, 0, "{stderr}");
        last = serde_json::from_str(&stdout).unwrap();
        if last["leader"].is_string() && last["voters"].as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last["voters"].as_array().unwrap().len(), 3, "{last:#}");
    assert!(last["term"].as_u64().unwrap() >= 1);
    assert!(last["commit_index"].as_u64().unwrap() >= 1);
    assert!(last["learners"].as_array().unwrap().is_empty());
    assert!(last["failures"].as_array().unwrap().is_empty());
    assert!(last["recoveries"].as_array().unwrap().is_empty());
    assert!(last["suspicions"].is_array());
    let members = last["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        for key in [
            "name",
            "role",
            "generation",
            "grpc_addr",
            "state",
            "monitors",
            "voter",
        ] {
            assert!(m.get(key).is_some(), "member lacks {key}: {m}");
        }
        assert_eq!(m["state"], "alive");
        assert_eq!(m["voter"], true);
    }

    let (code, text, _) = infractl(
        dir.path(),
        &["status", "--endpoint", &endpoint, "--pki", &pki_arg],
    );
    assert_eq!(code, 0);
    assert!(
        text.starts_with(&format!("leader: {}", last["leader"].as_str().unwrap())),
        "{text}"
    );
    assert!(text.contains("NAME") && text.contains("ALIVE"), "{text}");

    for node in nodes {
        node.kill().await;
    }
    // Nobody answers now: exit 1 with a clear message.
    let (code, _, stderr) = infractl(dir.path(), &args);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cluster unreachable"), "{stderr}");
}

#[test]
fn init_creates_the_cluster_pki_privately_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = infractl(dir.path(), &["init"]);
    assert_eq!(code, 0, "{stderr}");
    let pki = dir.path().join("config/pki");
    for f in ["ca.pem", "ca.key", "client.pem", "client.key", "gossip.key"] {
        let meta = std::fs::metadata(pki.join(f)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }
    let ca_before = std::fs::read(pki.join("ca.pem")).unwrap();
    let (code, _, _) = infractl(dir.path(), &["init", "--force"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read(pki.join("ca.pem")).unwrap(),
        ca_before,
        "CA kept"
    );
    let (code, stdout, _) = infractl(dir.path(), &["issue-node-cert", "n1", "--ip", "127.0.0.1"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("n1.pem"), "{stdout}");
    let (code, _, stderr) = infractl(dir.path(), &["issue-node-cert", "n2", "--ip", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("`nope`"), "{stderr}");
    // The client certificate is signed by that CA and loads as TLS material.
    infra_agent::tls::TlsMaterial::load(
        &pki.join("ca.pem"),
        &pki.join("client.pem"),
        &pki.join("client.key"),
    )
    .unwrap();
}
