//! Wire <-> domain for the `Containers` and `Images` services: the agent's
//! handlers decode (and validate) what the leader sends; the leader's
//! [`AgentRuntime`](crate::deploy::agent_runtime::AgentRuntime) encodes
//! its calls and decodes the answers. Secret values are copied, never
//! formatted.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use infra_proto::v1 as wire;

use super::error::ApiError;
use crate::deploy::SecretValue;
use crate::runtime::{
    ContainerInfo, ContainerSpec, ImageInfo, LABEL_AGENT, LABEL_ENV, LABEL_MANAGED, LABEL_PROJECT,
    LABEL_SERVICE, LABEL_TAG, PortPublish, RuntimeError, ServiceLabels, check_name,
};

/// Longest image reference accepted.
const MAX_IMAGE_REF: usize = 512;

fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// A container, label or secret name (`runtime::check_name`).
pub fn name(field: &'static str, value: &str) -> Result<(), ApiError> {
    check_name(field, value).map_err(|e| match e {
        RuntimeError::Invalid { value, reason, .. } => {
            invalid(field, format!("`{value}`: {reason}"))
        }
        other => ApiError::from(other),
    })
}

/// An image id (`sha256:...`) or reference (`name:tag`).
pub fn image(field: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > MAX_IMAGE_REF {
        return Err(invalid(field, format!("longer than {MAX_IMAGE_REF} bytes")));
    }
    if value.starts_with('-') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            format!("`{value}` is not an image id or reference"),
        ));
    }
    Ok(())
}

/// A label filter or label map: keys non-empty, without `=`.
pub fn labels(field: &'static str, map: &HashMap<String, String>) -> Result<(), ApiError> {
    for key in map.keys() {
        if key.is_empty() || key.contains('=') || key.chars().any(char::is_control) {
            return Err(invalid(field, format!("bad label key `{key}`")));
        }
    }
    Ok(())
}

fn port(field: &'static str, value: u32) -> Result<u16, ApiError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(field, format!("{value} is not a TCP port (1-65535)")))
}

/// The domain spec of a `Run` request, validated.
pub fn spec_from_wire(w: wire::ContainerSpec) -> Result<ContainerSpec, ApiError> {
    name("name", &w.name)?;
    image("image", &w.image)?;
    name("project", &w.project)?;
    name("environment", &w.environment)?;
    name("service", &w.service)?;
    name("tag", &w.tag)?;
    labels("extra_labels", &w.extra_labels)?;
    let reserved = [
        LABEL_MANAGED,
        LABEL_PROJECT,
        LABEL_ENV,
        LABEL_SERVICE,
        LABEL_TAG,
        LABEL_AGENT,
    ];
    if let Some(key) = w
        .extra_labels
        .keys()
        .find(|k| reserved.contains(&k.as_str()))
    {
        return Err(invalid(
            "extra_labels",
            format!("`{key}` is set by the agent, not the caller"),
        ));
    }
    let command = match w.command {
        Some(argv) if argv.args.is_empty() => {
            return Err(invalid(
                "command",
                "an empty argv (omit `command` to keep the image's CMD)",
            ));
        }
        other => other.map(|a| a.args),
    };
    for key in w.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(invalid("env", format!("bad variable name `{key}`")));
        }
    }
    let publish = match w.publish {
        None => None,
        Some(p) => Some(PortPublish {
            host_ip: p.host_ip.parse::<IpAddr>().map_err(|_| {
                invalid(
                    "publish.host_ip",
                    format!("`{}` is not an IP address", p.host_ip),
                )
            })?,
            host_port: port("publish.host_port", p.host_port)?,
            container_port: port("publish.container_port", p.container_port)?,
        }),
    };
    let mut secrets = BTreeMap::new();
    for (key, value) in w.secrets {
        name("secrets", &key)?;
        secrets.insert(key, SecretValue::new(value));
    }
    Ok(ContainerSpec {
        name: w.name,
        image: w.image,
        labels: ServiceLabels {
            project: w.project,
            environment: w.environment,
            service: w.service,
            tag: w.tag,
        },
        extra_labels: w.extra_labels.into_iter().collect(),
        command,
        env: w.env.into_iter().collect(),
        publish,
        secrets,
        init: w.init,
    })
}

/// The `Run` request for `spec` (secret values included: mTLS only).
pub fn spec_to_wire(spec: &ContainerSpec) -> wire::ContainerSpec {
    wire::ContainerSpec {
        name: spec.name.clone(),
        image: spec.image.clone(),
        project: spec.labels.project.clone(),
        environment: spec.labels.environment.clone(),
        service: spec.labels.service.clone(),
        tag: spec.labels.tag.clone(),
        extra_labels: spec.extra_labels.clone().into_iter().collect(),
        command: spec.command.clone().map(|args| wire::Argv { args }),
        env: spec.env.clone().into_iter().collect(),
        publish: spec.publish.map(|p| wire::PortPublish {
            host_ip: p.host_ip.to_string(),
            host_port: p.host_port.into(),
            container_port: p.container_port.into(),
        }),
        secrets: spec
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        init: spec.init,
    }
}

pub fn info_to_wire(c: ContainerInfo) -> wire::ContainerInfo {
    wire::ContainerInfo {
        id: c.id,
        name: c.name,
        image: c.image,
        labels: c.labels.into_iter().collect(),
        state: c.state,
        running: c.running,
        ports: c
            .ports
            .into_iter()
            .map(|(container_port, host_ip, host_port)| wire::PublishedPort {
                container_port: container_port.into(),
                host_ip,
                host_port: host_port.into(),
            })
            .collect(),
    }
}

/// A container as the agent reported it; `Err` names a bad port.
pub fn info_from_wire(w: wire::ContainerInfo) -> Result<ContainerInfo, String> {
    let mut ports = Vec::new();
    for p in w.ports {
        let cport = u16::try_from(p.container_port).map_err(|_| bad_port(p.container_port))?;
        let hport = u16::try_from(p.host_port).map_err(|_| bad_port(p.host_port))?;
        ports.push((cport, p.host_ip, hport));
    }
    Ok(ContainerInfo {
        id: w.id,
        name: w.name,
        image: w.image,
        labels: w.labels.into_iter().collect(),
        state: w.state,
        running: w.running,
        ports,
    })
}

fn bad_port(p: u32) -> String {
    format!("the agent reported port {p}")
}

pub fn image_to_wire(i: ImageInfo) -> wire::ImageInfo {
    wire::ImageInfo {
        id: i.id,
        tags: i.tags,
        labels: i.labels.into_iter().collect(),
    }
}

pub fn image_from_wire(w: wire::ImageInfo) -> ImageInfo {
    ImageInfo {
        id: w.id,
        tags: w.tags,
        labels: w.labels.into_iter().collect(),
    }
}

#[cfg(test)]
#[path = "containers_wire_tests.rs"]
mod tests;
