//! Wire types of the agent's gRPC API. Only the `api` module of the agent and
//! `infractl` touch these; domain code works on its own types.

#![allow(clippy::all, clippy::pedantic)]

/// Version 1 of the agent API (`infra.v1`).
pub mod v1 {
    tonic::include_proto!("infra.v1");

    /// Secret names only: the values never reach a log.
    fn secret_names<V>(map: &std::collections::HashMap<String, V>) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    impl std::fmt::Debug for ContainerSpec {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ContainerSpec")
                .field("name", &self.name)
                .field("image", &self.image)
                .field("project", &self.project)
                .field("environment", &self.environment)
                .field("service", &self.service)
                .field("tag", &self.tag)
                .field("extra_labels", &self.extra_labels)
                .field("command", &self.command)
                .field("env", &self.env)
                .field("publish", &self.publish)
                .field("secrets", &secret_names(&self.secrets))
                .field("init", &self.init)
                .finish()
        }
    }

    impl std::fmt::Debug for DeployRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DeployRequest")
                .field("project", &self.project)
                .field("environment", &self.environment)
                .field("branch", &self.branch)
                .field("tag", &self.tag)
                .field("local", &self.local)
                .field("project_path", &self.project_path)
                .field("secrets", &secret_names(&self.secrets))
                .field("deployment_json", &self.deployment_json)
                .finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::v1::{ContainerSpec, DeployRequest};

    #[test]
    fn debug_never_shows_secret_values() {
        let spec = ContainerSpec {
            name: "web".into(),
            secrets: [("api_key".to_string(), "s3cr3t-value".to_string())].into(),
            ..ContainerSpec::default()
        };
        let text = format!("{spec:?}");
        assert!(
            text.contains("api_key") && !text.contains("s3cr3t"),
            "{text}"
        );
        let deploy = DeployRequest {
            project: "shop".into(),
            secrets: [("db".to_string(), b"s3cr3t-value".to_vec())].into(),
            ..DeployRequest::default()
        };
        let text = format!("{deploy:?}");
        assert!(
            text.contains("\"db\"") && !text.contains("s3cr3t"),
            "{text}"
        );
    }
}
