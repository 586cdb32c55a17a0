//! The plan's JSON form, serialized straight from the plan (no intermediate
//! value tree):
//! `{"changes":[{"action":"create|update|delete","kind":"droplet|service|monitor|voter","name":…,"details":{…}[,"blocked":true]}],"summary":{"create":N,"update":N,"delete":N[,"blocked":N]}}`.
//!
//! `details` holds the new fields of a create, the old fields of a delete,
//! and `{"field":{"from":old,"to":new}}` for each changed field of an
//! update (plus `"replace":true` / `"redeploy":true` when forced).

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde_json::{Map, Value};

use super::{Change, Detail, DropletFields, Plan, Summary};
use crate::topology::ServiceState;

impl Plan {
    /// The JSON document as a value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The JSON document as compact text.
    pub fn render_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Change {
    /// The `details` object of this change.
    pub fn details_json(&self) -> Map<String, Value> {
        match serde_json::to_value(Details(&self.detail)) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Plan", 2)?;
        st.serialize_field("changes", &self.changes)?;
        st.serialize_field("summary", &self.summary())?;
        st.end()
    }
}

impl Serialize for Summary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("create", &self.create)?;
        m.serialize_entry("update", &self.update)?;
        m.serialize_entry("delete", &self.delete)?;
        if self.blocked > 0 {
            m.serialize_entry("blocked", &self.blocked)?;
        }
        m.end()
    }
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("action", self.action.as_str())?;
        m.serialize_entry("kind", self.kind.as_str())?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("details", &Details(&self.detail))?;
        if self.blocked {
            m.serialize_entry("blocked", &true)?;
        }
        m.end()
    }
}

struct Details<'a>(&'a Detail);

#[derive(Serialize)]
struct FromTo<T> {
    from: T,
    to: T,
}

fn changed<M: SerializeMap, T: Serialize + PartialEq>(
    m: &mut M,
    key: &str,
    from: T,
    to: T,
) -> Result<(), M::Error> {
    if from != to {
        m.serialize_entry(key, &FromTo { from, to })?;
    }
    Ok(())
}

fn droplet<M: SerializeMap>(m: &mut M, d: &DropletFields) -> Result<(), M::Error> {
    m.serialize_entry("size", &d.size)?;
    m.serialize_entry("region", &d.region)?;
    m.serialize_entry("role", d.role.as_str())?;
    if let Some(p) = &d.project {
        m.serialize_entry("project", p)?;
    }
    Ok(())
}

fn service<M: SerializeMap>(m: &mut M, s: &ServiceState) -> Result<(), M::Error> {
    m.serialize_entry("type", s.kind.as_str())?;
    if let Some(port) = s.port {
        m.serialize_entry("port", &port)?;
    }
    m.serialize_entry("droplets", &s.droplets)
}

impl Serialize for Details<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            Detail::Droplet {
                before,
                after,
                replace,
            } => {
                match (before, after) {
                    (Some(b), Some(a)) => {
                        changed(&mut m, "size", &b.size, &a.size)?;
                        changed(&mut m, "region", &b.region, &a.region)?;
                        changed(&mut m, "role", b.role.as_str(), a.role.as_str())?;
                        changed(&mut m, "project", &b.project, &a.project)?;
                    }
                    (Some(d), None) | (None, Some(d)) => droplet(&mut m, d)?,
                    (None, None) => {}
                }
                if *replace {
                    m.serialize_entry("replace", &true)?;
                }
            }
            Detail::Service {
                before,
                after,
                redeploy,
            } => {
                match (before, after) {
                    (Some(b), Some(a)) => {
                        changed(&mut m, "type", b.kind.as_str(), a.kind.as_str())?;
                        changed(&mut m, "port", b.port, a.port)?;
                        changed(&mut m, "droplets", &b.droplets, &a.droplets)?;
                    }
                    (Some(d), None) | (None, Some(d)) => service(&mut m, d)?,
                    (None, None) => {}
                }
                if *redeploy {
                    m.serialize_entry("redeploy", &true)?;
                }
            }
            Detail::Monitors { before, after } => match (before.is_empty(), after.is_empty()) {
                (true, _) => m.serialize_entry("monitors", after)?,
                (false, true) => m.serialize_entry("monitors", before)?,
                (false, false) => m.serialize_entry(
                    "monitors",
                    &FromTo {
                        from: before,
                        to: after,
                    },
                )?,
            },
            Detail::Voter { voter } => m.serialize_entry("voter", voter)?,
        }
        m.end()
    }
}
