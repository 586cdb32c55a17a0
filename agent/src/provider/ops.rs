//! Pure request logic of the DigitalOcean client: operation-id tags, request
//! bodies, and pagination link following. No I/O.

use std::fmt;

use serde_json::{Map, Value, json};

use super::error::ProviderError;
use super::{CreateDroplets, DropletAction, FirewallRule, FirewallSpec, RuleTargets};

/// Every created droplet carries the tag `infra-op:<operation id>`.
pub const OPERATION_TAG_PREFIX: &str = "infra-op:";

/// The API allows at most 10 names in one multi-create.
pub const MAX_NAMES_PER_CREATE: usize = 10;

/// An idempotency key for creates; the recovery saga passes its fencing token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OperationId(String);

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':')
}

impl OperationId {
    /// Accepts ids that make a valid tag (`^[a-zA-Z0-9_\-\:]+$`, at most 255 chars with the prefix).
    pub fn new(id: impl Into<String>) -> Result<Self, ProviderError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("must not be empty")
        } else if !id.chars().all(is_tag_char) {
            Some("only letters, digits, '_', '-' and ':' are allowed")
        } else if id.len() + OPERATION_TAG_PREFIX.len() > 255 {
            Some("too long for a tag (255 chars with the infra-op: prefix)")
        } else {
            None
        };
        match reason {
            Some(r) => Err(ProviderError::InvalidInput {
                field: "operation_id",
                value: id,
                reason: r.into(),
            }),
            None => Ok(Self(id)),
        }
    }

    /// A fresh random id (16 hex digits).
    pub fn random() -> Self {
        Self(format!("{:016x}", rand::random::<u64>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag the created droplets carry.
    pub fn tag(&self) -> String {
        format!("{OPERATION_TAG_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperationId({})", self.0)
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `links.pages.next` of a list answer, if any.
pub fn next_page(body: &Value) -> Option<&str> {
    body.get("links")?.get("pages")?.get("next")?.as_str()
}

/// Checks what the API would reject, so the caller gets a clear error naming the field.
pub fn validate_create(req: &CreateDroplets) -> Result<(), ProviderError> {
    let bad = |field, value: &str, reason: &str| ProviderError::InvalidInput {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if req.names.is_empty() {
        return Err(bad("names", "[]", "at least one droplet name is required"));
    }
    for name in &req.names {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        let ok_ends = name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if name.is_empty() || name.len() > 255 || !ok_chars || !ok_ends {
            return Err(bad(
                "name",
                name,
                "must match ^[a-zA-Z0-9]?[a-z0-9A-Z.\\-]*[a-z0-9A-Z]$",
            ));
        }
    }
    for tag in &req.tags {
        if tag.is_empty() || tag.len() > 255 || !tag.chars().all(is_tag_char) {
            return Err(bad("tags", tag, "must match ^[a-zA-Z0-9_\\-\\:]+$"));
        }
    }
    Ok(())
}

/// The `POST /v2/droplets` body for `names` (single form for one name), tagged with `op`.
pub fn create_body(req: &CreateDroplets, names: &[String], op: &OperationId) -> Value {
    let mut body = Map::new();
    if let [name] = names {
        body.insert("name".into(), json!(name));
    } else {
        body.insert("names".into(), json!(names));
    }
    body.insert("region".into(), json!(req.region));
    body.insert("size".into(), json!(req.size));
    body.insert("image".into(), json!(req.image));
    body.insert("ssh_keys".into(), json!(req.ssh_keys));
    let mut tags = req.tags.clone();
    tags.push(op.tag());
    body.insert("tags".into(), json!(tags));
    if let Some(u) = &req.user_data {
        body.insert("user_data".into(), json!(u));
    }
    if let Some(v) = &req.vpc_uuid {
        body.insert("vpc_uuid".into(), json!(v));
    }
    body.insert("ipv6".into(), json!(req.ipv6));
    body.insert("monitoring".into(), json!(req.monitoring));
    Value::Object(body)
}

/// The `POST /v2/droplets/{id}/actions` body.
pub fn action_body(action: &DropletAction) -> Value {
    match action {
        DropletAction::Snapshot { name } => json!({"type": "snapshot", "name": name}),
        DropletAction::Rebuild { image } => json!({"type": "rebuild", "image": image}),
        other => json!({"type": other.kind()}),
    }
}

fn targets_json(t: &RuleTargets) -> Value {
    let mut m = Map::new();
    if !t.addresses.is_empty() {
        m.insert("addresses".into(), json!(t.addresses));
    }
    if !t.droplet_ids.is_empty() {
        m.insert("droplet_ids".into(), json!(t.droplet_ids));
    }
    if !t.tags.is_empty() {
        m.insert("tags".into(), json!(t.tags));
    }
    if !t.load_balancer_uids.is_empty() {
        m.insert("load_balancer_uids".into(), json!(t.load_balancer_uids));
    }
    Value::Object(m)
}

fn rules_json(rules: &[FirewallRule], side: &str) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| json!({"protocol": r.protocol, "ports": r.ports, side: targets_json(&r.targets)}))
            .collect(),
    )
}

/// `{inbound_rules, outbound_rules}` for the rules endpoints.
pub fn rules_body(inbound: &[FirewallRule], outbound: &[FirewallRule]) -> Value {
    let mut m = Map::new();
    if !inbound.is_empty() || outbound.is_empty() {
        m.insert("inbound_rules".into(), rules_json(inbound, "sources"));
    }
    if !outbound.is_empty() {
        m.insert(
            "outbound_rules".into(),
            rules_json(outbound, "destinations"),
        );
    }
    Value::Object(m)
}

/// The firewall create / replace body.
pub fn firewall_body(spec: &FirewallSpec) -> Value {
    json!({
        "name": spec.name,
        "inbound_rules": rules_json(&spec.inbound, "sources"),
        "outbound_rules": rules_json(&spec.outbound, "destinations"),
        "droplet_ids": spec.droplet_ids,
        "tags": spec.tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ImageRef, Protocol};

    fn req(names: &[&str]) -> CreateDroplets {
        CreateDroplets {
            names: names.iter().map(|s| s.to_string()).collect(),
            region: "nyc3".into(),
            size: "s-1vcpu-1gb".into(),
            image: ImageRef::Slug("ubuntu-24-04-x64".into()),
            ssh_keys: vec![],
            tags: vec!["web".into()],
            user_data: Some("#cloud-config".into()),
            vpc_uuid: None,
            ipv6: false,
            monitoring: true,
            operation_id: None,
        }
    }

    #[test]
    fn operation_ids_must_make_valid_tags() {
        assert_eq!(
            OperationId::new("fence:42").unwrap().tag(),
            "infra-op:fence:42"
        );
        assert!(OperationId::new("has space").is_err());
        assert!(OperationId::new("dot.ted").is_err());
        assert!(OperationId::new("").is_err());
        assert!(OperationId::new("x".repeat(250)).is_err());
        let r = OperationId::random();
        assert!(OperationId::new(r.as_str()).is_ok());
    }

    #[test]
    fn create_body_single_and_multi_with_operation_tag() {
        let op = OperationId::new("op1").unwrap();
        let one = create_body(&req(&["a"]), &["a".to_string()], &op);
        assert_eq!(one["name"], "a");
        assert!(one.get("names").is_none());
        assert_eq!(one["tags"], json!(["web", "infra-op:op1"]));
        assert_eq!(one["user_data"], "#cloud-config");
        assert!(one.get("vpc_uuid").is_none());
        let names = vec!["a".to_string(), "b".to_string()];
        let many = create_body(&req(&["a", "b"]), &names, &op);
        assert_eq!(many["names"], json!(["a", "b"]));
        assert!(many.get("name").is_none());
    }

    #[test]
    fn validate_rejects_bad_names_and_tags() {
        assert!(validate_create(&req(&["web-1", "db.internal"])).is_ok());
        let e = validate_create(&req(&["bad_name"])).unwrap_err();
        assert!(e.to_string().contains("bad_name"), "{e}");
        assert!(validate_create(&req(&["trailing-"])).is_err());
        assert!(validate_create(&req(&[])).is_err());
        let mut r = req(&["ok"]);
        r.tags = vec!["no spaces".into()];
        assert!(validate_create(&r).is_err());
    }

    #[test]
    fn next_page_reads_links_pages_next() {
        let b = json!({"links": {"pages": {"next": "http://x/v2/droplets?page=2", "last": "l"}}});
        assert_eq!(next_page(&b), Some("http://x/v2/droplets?page=2"));
        assert_eq!(next_page(&json!({"links": {}})), None);
        assert_eq!(next_page(&json!({"links": {"pages": {"prev": "p"}}})), None);
        assert_eq!(next_page(&json!({})), None);
    }

    #[test]
    fn action_and_firewall_bodies() {
        assert_eq!(
            action_body(&DropletAction::Snapshot { name: "s1".into() }),
            json!({"type": "snapshot", "name": "s1"})
        );
        assert_eq!(
            action_body(&DropletAction::Rebuild {
                image: ImageRef::Id(7)
            }),
            json!({"type": "rebuild", "image": 7})
        );
        assert_eq!(
            action_body(&DropletAction::PowerOff),
            json!({"type": "power_off"})
        );
        let rule = FirewallRule {
            protocol: Protocol::Tcp,
            ports: "22".into(),
            targets: RuleTargets {
                addresses: vec!["0.0.0.0/0".into()],
                ..Default::default()
            },
        };
        let b = rules_body(std::slice::from_ref(&rule), &[]);
        assert_eq!(
            b,
            json!({"inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}]})
        );
        let b = rules_body(&[], std::slice::from_ref(&rule));
        assert!(b.get("inbound_rules").is_none());
        assert_eq!(
            b["outbound_rules"][0]["destinations"]["addresses"][0],
            "0.0.0.0/0"
        );
    }
}
