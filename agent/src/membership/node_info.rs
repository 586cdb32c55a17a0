//! What every agent publishes about itself in gossip: a typed [`NodeInfo`]
//! encoded to and decoded from chitchat key/values in this one place.

use std::net::SocketAddr;

/// Version of the gossiped node info format.
pub const NODE_INFO_VERSION: u32 = 1;

const K_VERSION: &str = "info_version";
const K_ROLE: &str = "role";
const K_PROJECT: &str = "project";
const K_GRPC: &str = "grpc_addr";
const K_GENERATION: &str = "generation";
const K_AGENT_VERSION: &str = "agent_version";
const K_HEALTH: &str = "health";
const K_STATE: &str = "state";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeInfoError {
    #[error("gossip key `{0}` missing")]
    Missing(&'static str),
    #[error("gossip key `{key}` has invalid value `{value}`")]
    Invalid { key: &'static str, value: String },
}

/// A small health digest each agent gossips about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HealthDigest {
    /// Peers this agent currently suspects.
    pub suspects: u32,
    /// Whether this agent's own event loop is lagging.
    pub lagging: bool,
}

/// A member's published lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Up,
    /// Left the cluster on purpose (clean shutdown): not a failure.
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub role: String,
    pub project: Option<String>,
    pub grpc_addr: SocketAddr,
    pub generation: u64,
    pub agent_version: String,
    pub health: HealthDigest,
    pub presence: Presence,
}

impl HealthDigest {
    fn encode(&self) -> String {
        format!(
            "suspects={};lagging={}",
            self.suspects,
            u8::from(self.lagging)
        )
    }

    fn decode(value: &str) -> Option<HealthDigest> {
        let mut digest = HealthDigest::default();
        for part in value.split(';') {
            let (k, v) = part.split_once('=')?;
            match k {
                "suspects" => digest.suspects = v.parse().ok()?,
                "lagging" => digest.lagging = v == "1",
                _ => {} // newer fields are ignored
            }
        }
        Some(digest)
    }
}

impl NodeInfo {
    /// The chitchat key/values that publish this info.
    pub fn to_kv(&self) -> Vec<(String, String)> {
        let mut kv = vec![
            (K_VERSION, NODE_INFO_VERSION.to_string()),
            (K_ROLE, self.role.clone()),
            (K_GRPC, self.grpc_addr.to_string()),
            (K_GENERATION, self.generation.to_string()),
            (K_AGENT_VERSION, self.agent_version.clone()),
            (K_HEALTH, self.health.encode()),
            (
                K_STATE,
                match self.presence {
                    Presence::Up => "up",
                    Presence::Left => "left",
                }
                .to_string(),
            ),
        ];
        kv.push((K_PROJECT, self.project.clone().unwrap_or_default()));
        kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The health digest's key/value alone (it changes often).
    pub fn health_kv(health: &HealthDigest) -> (String, String) {
        (K_HEALTH.to_string(), health.encode())
    }

    /// The key/value announcing a clean leave.
    pub fn left_kv() -> (String, String) {
        (K_STATE.to_string(), "left".to_string())
    }

    /// Decodes a member's info from its key/values.
    pub fn from_kv<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<NodeInfo, NodeInfoError> {
        let need = |key: &'static str| get(key).ok_or(NodeInfoError::Missing(key));
        let bad = |key: &'static str, value: &str| NodeInfoError::Invalid {
            key,
            value: value.to_string(),
        };
        let version = need(K_VERSION)?;
        if version
            .parse::<u32>()
            .map_err(|_| bad(K_VERSION, version))?
            < 1
        {
            return Err(bad(K_VERSION, version));
        }
        let grpc = need(K_GRPC)?;
        let generation = need(K_GENERATION)?;
        let health = need(K_HEALTH)?;
        let state = need(K_STATE)?;
        Ok(NodeInfo {
            role: need(K_ROLE)?.to_string(),
            project: get(K_PROJECT).filter(|p| !p.is_empty()).map(str::to_string),
            grpc_addr: grpc.parse().map_err(|_| bad(K_GRPC, grpc))?,
            generation: generation
                .parse()
                .map_err(|_| bad(K_GENERATION, generation))?,
            agent_version: get(K_AGENT_VERSION).unwrap_or_default().to_string(),
            health: HealthDigest::decode(health).ok_or_else(|| bad(K_HEALTH, health))?,
            presence: match state {
                "up" => Presence::Up,
                "left" => Presence::Left,
                other => return Err(bad(K_STATE, other)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn sample() -> NodeInfo {
        NodeInfo {
            role: "web".into(),
            project: Some("hostomatic".into()),
            grpc_addr: "127.0.0.3:7400".parse().unwrap(),
            generation: 1_700_000_000_123,
            agent_version: "0.1.0".into(),
            health: HealthDigest {
                suspects: 2,
                lagging: true,
            },
            presence: Presence::Up,
        }
    }

    #[test]
    fn roundtrip() {
        let info = sample();
        let kv: BTreeMap<String, String> = info.to_kv().into_iter().collect();
        let back = NodeInfo::from_kv(|k| kv.get(k).map(String::as_str)).unwrap();
        assert_eq!(back, info);
        let mut kv = kv;
        let (k, v) = NodeInfo::left_kv();
        kv.insert(k, v);
        kv.insert("project".into(), String::new());
        let back = NodeInfo::from_kv(|k| kv.get(k).map(String::as_str)).unwrap();
        assert_eq!(back.presence, Presence::Left);
        assert_eq!(back.project, None);
    }

    #[test]
    fn bad_values_are_named() {
        let mut kv: BTreeMap<String, String> = sample().to_kv().into_iter().collect();
        kv.insert("grpc_addr".into(), "nowhere".into());
        let err = NodeInfo::from_kv(|k| kv.get(k).map(String::as_str)).unwrap_err();
        assert_eq!(
            err,
            NodeInfoError::Invalid {
                key: "grpc_addr",
                value: "nowhere".into()
            }
        );
        kv.remove("role");
        kv.insert("grpc_addr".into(), "127.0.0.1:1".into());
        let err = NodeInfo::from_kv(|k| kv.get(k).map(String::as_str)).unwrap_err();
        assert_eq!(err, NodeInfoError::Missing("role"));
    }
}
