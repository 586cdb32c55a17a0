use std::io::Write;

use super::*;

const FILE: &str = r#"
version = 1
node_name = "master"
cluster_id = "demo"
data_dir = "/var/lib/infra"
grpc_listen = "0.0.0.0:7400"
grpc_advertise = "127.0.0.2:7400"
gossip_listen = "127.0.0.2:7401"
bootstrap = true
ca_cert = "pki/ca.pem"
node_cert = "pki/master.pem"
node_key = "pki/master.key"
gossip_key_file = "pki/gossip.key"
"#;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn loads_file_with_defaults() {
    let f = write(FILE);
    let c = AgentConfig::load(Some(f.path()), RawConfig::default()).unwrap();
    assert_eq!(c.node_name, "master");
    assert_eq!(c.grpc_advertise, "127.0.0.2:7400".parse().unwrap());
    assert_eq!(
        c.gossip_advertise, c.gossip_listen,
        "advertise defaults to listen"
    );
    assert!(
        c.seeds.is_empty(),
        "a first node has no seeds (and `bootstrap` is ignored)"
    );
    assert_eq!(c.role, "web");
    assert_eq!(c.probe_interval, Duration::from_millis(200));
    assert_eq!(c.suspicion_window, Duration::from_millis(1_500));
    assert_eq!(c.tls.node_key, PathBuf::from("pki/master.key"));
}

#[test]
fn overrides_replace_file_values() {
    let f = write(FILE);
    let overrides = RawConfig {
        node_name: Some("web1".into()),
        seeds: Some(vec!["127.0.0.2:7401".into()]),
        probe_interval_ms: Some(100),
        ..RawConfig::default()
    };
    let c = AgentConfig::load(Some(f.path()), overrides).unwrap();
    assert_eq!(c.node_name, "web1");
    assert_eq!(c.seeds, vec!["127.0.0.2:7401".to_string()]);
    assert_eq!(c.probe_interval, Duration::from_millis(100));
    assert_eq!(c.cluster_id, "demo", "untouched fields keep the file value");
}

#[test]
fn env_vars_are_read_through_clap() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        raw: RawConfig,
    }
    // Flags win; the env var name is documented by the flag definition.
    let cli = Cli::parse_from([
        "x",
        "--node-name",
        "n1",
        "--seeds",
        "127.0.0.1:1,127.0.0.1:2",
    ]);
    assert_eq!(cli.raw.node_name.as_deref(), Some("n1"));
    assert_eq!(cli.raw.seeds.unwrap().len(), 2);
    let cmd = <Cli as clap::CommandFactory>::command();
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_id() == "probe_interval_ms")
        .unwrap();
    assert_eq!(
        arg.get_env().and_then(|e| e.to_str()),
        Some("INFRA_AGENT_PROBE_INTERVAL_MS")
    );
}

#[test]
fn missing_field_names_the_field_env_and_flag() {
    let err = AgentConfig::from_raw(RawConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`node_name`"), "{msg}");
    assert!(msg.contains("INFRA_AGENT_NODE_NAME"), "{msg}");
    assert!(msg.contains("--node-name"), "{msg}");
}

#[test]
fn bad_values_are_named() {
    let f = write(FILE);
    let cases: Vec<(RawConfig, &str)> = vec![
        (
            RawConfig {
                grpc_listen: Some("nonsense".into()),
                ..Default::default()
            },
            "grpc_listen",
        ),
        (
            RawConfig {
                node_name: Some("bad name!".into()),
                ..Default::default()
            },
            "node_name",
        ),
        (
            RawConfig {
                seeds: Some(vec!["not-an-address".into()]),
                ..Default::default()
            },
            "seeds",
        ),
        (
            RawConfig {
                suspicion_window_ms: Some(100),
                ..Default::default()
            },
            "suspicion_window_ms",
        ),
        (
            RawConfig {
                probe_timeout_ms: Some(0),
                ..Default::default()
            },
            "probe_timeout_ms",
        ),
        (
            RawConfig {
                version: Some(9),
                ..Default::default()
            },
            "version",
        ),
    ];
    for (overrides, field) in cases {
        let err = AgentConfig::load(Some(f.path()), overrides).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { field: f, .. } if *f == field),
            "expected invalid {field}, got {err}"
        );
    }
}

#[test]
fn unknown_keys_and_missing_files_are_reported_with_path() {
    let f = write("node_nmae = \"x\"\n");
    let err = AgentConfig::load(Some(f.path()), RawConfig::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(err.to_string().contains("node_nmae"), "{err}");
    let err = AgentConfig::load(
        Some(Path::new("/nonexistent/agent.toml")),
        RawConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/agent.toml"), "{err}");
}

#[test]
fn module_doc_example_is_valid() {
    let doc = include_str!("config.rs");
    let example: String = doc
        .lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
        .collect();
    let f = write(&example);
    let c = AgentConfig::load(Some(f.path()), RawConfig::default()).unwrap();
    assert_eq!(c.node_name, "hostomatic-web1");
    assert_eq!(c.project.as_deref(), Some("hostomatic"));
    assert_eq!(c.seeds.len(), 1);
}
