use std::collections::HashMap;

use super::*;
use crate::tls::TlsMaterial;

fn params(first: bool) -> NodeParams {
    NodeParams {
        node_name: "hostomatic-web1".into(),
        cluster_id: "prod".into(),
        role: "web".into(),
        project: Some("hostomatic".into()),
        seeds: if first {
            vec![]
        } else {
            vec!["127.0.0.2:17401".into()]
        },
        grpc_port: 17400,
        gossip_port: 17401,
    }
}

fn sim_env(dir: &Path, user_data: &str) -> SimEnv {
    let file = dir.join("user_data");
    std::fs::write(&file, user_data).unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        (ENV_DROPLET_ID, "42".to_string()),
        (ENV_DROPLET_NAME, "hostomatic-web1".to_string()),
        (ENV_DATA_DIR, dir.join("data").display().to_string()),
        (ENV_ADDR, "127.0.0.7".to_string()),
        (ENV_USER_DATA_FILE, file.display().to_string()),
    ]);
    SimEnv::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

#[test]
fn user_data_round_trips_into_an_agent_config() {
    crate::tls::install_crypto_provider();
    let ca = Ca::create("prod").unwrap();
    let key = GossipKey::generate();
    let node = NodeBootstrap::issue(params(false), &ca, &key).unwrap();
    let text = node.user_data().unwrap();
    assert!(text.starts_with("#cloud-config\n"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let env = sim_env(dir.path(), &text);
    let config = config_from_sim_env(&env).unwrap();
    assert_eq!(config.node_name, "hostomatic-web1");
    assert_eq!(config.cluster_id, "prod");
    assert_eq!(config.role, "web");
    assert_eq!(config.project.as_deref(), Some("hostomatic"));
    assert_eq!(config.seeds, vec!["127.0.0.2:17401".to_string()]);
    assert_eq!(config.grpc_listen.to_string(), "127.0.0.7:17400");
    assert_eq!(config.grpc_advertise.to_string(), "127.0.0.7:17400");
    assert_eq!(config.gossip_listen.to_string(), "127.0.0.7:17401");
    assert_eq!(config.gossip_advertise.to_string(), "127.0.0.7:17401");
    assert_eq!(config.data_dir, dir.path().join("data"));

    // The written PKI is usable: the node cert chains to the CA and the
    // gossip key is the cluster's.
    TlsMaterial::load(
        &config.tls.ca_cert,
        &config.tls.node_cert,
        &config.tls.node_key,
    )
    .unwrap();
    let cert = std::fs::read_to_string(&config.tls.node_cert).unwrap();
    let key_pem = std::fs::read_to_string(&config.tls.node_key).unwrap();
    assert!(ca.verifies(&IssuedCert {
        cert_pem: cert,
        key_pem
    }));
    assert_eq!(
        GossipKey::load(&config.gossip_key_file).unwrap().to_hex(),
        key.to_hex()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config.tls.node_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "node key must not be group/world readable");
}

#[test]
fn first_node_needs_no_seeds_and_a_rerun_rewrites_the_files() {
    crate::tls::install_crypto_provider();
    let ca = Ca::create("prod").unwrap();
    let node = NodeBootstrap::issue(params(true), &ca, &GossipKey::generate()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = sim_env(dir.path(), &node.user_data().unwrap());
    let first = config_from_sim_env(&env).unwrap();
    assert!(first.seeds.is_empty());
    // Nothing in the user-data forms a cluster.
    assert!(!node.user_data().unwrap().contains("bootstrap"));
    // A restart (power cycle) builds the same config over the existing files.
    assert_eq!(config_from_sim_env(&env).unwrap(), first);
}

#[test]
fn a_voter_gets_the_ca_key_and_can_issue_certificates() {
    crate::tls::install_crypto_provider();
    let ca = Ca::create("prod").unwrap();
    let plain = NodeBootstrap::issue(params(false), &ca, &GossipKey::generate()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_from_sim_env(&sim_env(dir.path(), &plain.user_data().unwrap())).unwrap();
    assert!(!ca_key_path(&config).exists(), "only voters get the CA key");

    let voter = plain.with_ca_key(&ca);
    assert!(!format!("{voter:?}").contains("PRIVATE KEY"));
    let config = config_from_sim_env(&sim_env(dir.path(), &voter.user_data().unwrap())).unwrap();
    let loaded = Ca::load(&config.tls.ca_cert, &ca_key_path(&config), "prod").unwrap();
    assert!(ca.verifies(&loaded.issue_node("other", &[]).unwrap()));
}

#[test]
fn agent_toml_is_a_valid_versioned_agent_config() {
    crate::tls::install_crypto_provider();
    let ca = Ca::create("prod").unwrap();
    let node = NodeBootstrap::issue(params(false), &ca, &GossipKey::generate()).unwrap();
    let raw: RawConfig = toml::from_str(&node.agent_toml().unwrap()).unwrap();
    assert_eq!(raw.version, Some(CONFIG_VERSION));
    assert_eq!(raw.grpc_listen.as_deref(), Some("0.0.0.0:17400"));
    assert_eq!(raw.ca_cert.as_deref(), Some(Path::new(CA_CERT_PATH)));
}

#[test]
fn debug_output_hides_keys() {
    crate::tls::install_crypto_provider();
    let ca = Ca::create("prod").unwrap();
    let key = GossipKey::generate();
    let node = NodeBootstrap::issue(params(false), &ca, &key).unwrap();
    let debug = format!("{node:?}");
    assert!(!debug.contains(&key.to_hex()));
    assert!(!debug.contains("PRIVATE KEY"));
    assert!(debug.contains("hostomatic-web1"));
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let env = sim_env(dir.path(), "not yaml at all");
    let err = config_from_sim_env(&env).unwrap_err().to_string();
    assert!(err.contains("#cloud-config"), "{err}");

    let env = sim_env(
        dir.path(),
        "#cloud-config\nhostname: x\nwrite_files:\n  - path: /etc/other\n    content: hi\n",
    );
    let err = config_from_sim_env(&env).unwrap_err().to_string();
    assert!(err.contains(AGENT_TOML_PATH), "{err}");

    let err = SimEnv::from_lookup(|_| None).unwrap_err().to_string();
    assert!(err.contains(ENV_DROPLET_ID), "{err}");
    let err = SimEnv::from_lookup(|k| Some(if k == ENV_ADDR { "nope" } else { "1" }.to_string()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains(ENV_ADDR), "{err}");
}
