//! `DoClient`: the DigitalOcean API v2 implementation of `CloudProvider`
//! (construction, paging, and the thin per-endpoint calls).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::config::{DoConfig, PollPolicy};
use super::error::ProviderError;
use super::http::{Http, decode};
use super::ops::{self, next_page};
use super::ratelimit::{Pacer, RateLimit};
use super::types::{
    WireAccount, WireAction, WireDroplet, WireFirewall, WireImage, WireSnapshot, WireSshKey,
    WireTag,
};
use super::{
    Account, Action, CloudProvider, CreateDroplets, Created, Droplet, DropletAction, Firewall,
    FirewallRule, FirewallSpec, Image, Snapshot, SshKey, Tag,
};

/// Page size for every list (the API's maximum).
pub const PER_PAGE: u32 = 200;
/// A list never follows more pages than this (a guard against a looping `next`).
const MAX_PAGES: usize = 10_000;

/// The DigitalOcean client. Cheap to clone; clones share the rate-limit budget.
#[derive(Clone, Debug)]
pub struct DoClient {
    pub(super) http: Arc<Http>,
    pub(super) poll: PollPolicy,
}

impl DoClient {
    pub fn new(cfg: DoConfig) -> Result<Self, ProviderError> {
        let base = Url::parse(&cfg.base_url).map_err(|e| ProviderError::Config {
            name: "DO_API_URL",
            reason: format!("{:?} is not a URL: {e}", cfg.base_url),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ProviderError::Config {
                name: "DO_API_URL",
                reason: format!("{:?} must be http or https", cfg.base_url),
            });
        }
        if cfg.token.is_empty() {
            return Err(ProviderError::Config {
                name: "DO_TOKEN",
                reason: "empty token".into(),
            });
        }
        let pacer = Pacer::new(cfg.burst_limit, cfg.burst_window);
        let http = Http::new(base, cfg.token, cfg.retry, cfg.request_timeout, pacer)?;
        Ok(Self {
            http: Arc::new(http),
            poll: cfg.poll,
        })
    }

    pub(super) fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        self.http.url(path, query)
    }

    /// GET + decode `body[key]`.
    pub(super) async fn get_one<T: DeserializeOwned>(
        &self,
        url: &Url,
        key: &str,
    ) -> Result<T, ProviderError> {
        let v: Value = self.http.json(Method::GET, url, None).await?;
        take_key(&Method::GET, url, v, key)
    }

    /// Sends with retries and decodes `body[key]`.
    pub(super) async fn send_one<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        body: &Value,
        key: &str,
    ) -> Result<T, ProviderError> {
        let v: Value = self.http.json(method.clone(), url, Some(body)).await?;
        take_key(&method, url, v, key)
    }

    /// Sends and expects no body back (204).
    pub(super) async fn send_empty(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(), ProviderError> {
        self.http.call(method, url, body).await.map(|_| ())
    }

    /// Every item of a paginated list: `per_page=200`, then `links.pages.next` until absent.
    pub(super) async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        key: &str,
    ) -> Result<Vec<T>, ProviderError> {
        let mut q = query.to_vec();
        q.push(("per_page", PER_PAGE.to_string()));
        let mut url = self.url(path, &q);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            seen.insert(url.to_string());
            let mut page: Value = self.http.json(Method::GET, &url, None).await?;
            let next = next_page(&page).map(str::to_string);
            let items: Vec<T> = take_key(&Method::GET, &url, page.take(), key)?;
            out.extend(items);
            let Some(next) = next else { return Ok(out) };
            let next = self.http.rebase(&next)?;
            if seen.contains(next.as_str()) {
                return Err(ProviderError::Decode {
                    method: "GET".into(),
                    path: path.into(),
                    field: "links.pages.next".into(),
                    message: format!("points back to an already fetched page {next}"),
                });
            }
            url = next;
        }
        Err(ProviderError::Decode {
            method: "GET".into(),
            path: path.into(),
            field: "links.pages.next".into(),
            message: format!("more than {MAX_PAGES} pages"),
        })
    }
}

/// Decodes `v[key]`, naming the key in the error.
pub(super) fn take_key<T: DeserializeOwned>(
    method: &Method,
    url: &Url,
    mut v: Value,
    key: &str,
) -> Result<T, ProviderError> {
    let inner = v.get_mut(key).map(Value::take).unwrap_or(Value::Null);
    let bytes = serde_json::to_vec(&inner).unwrap_or_default();
    decode::<T>(method, url, &bytes).map_err(|e| match e {
        ProviderError::Decode {
            method,
            path,
            field,
            message,
        } => ProviderError::Decode {
            method,
            path,
            field: format!("{key}.{field}"),
            message,
        },
        other => other,
    })
}

fn snapshots(
    list: Vec<WireSnapshot>,
    droplet: Option<u64>,
    url: &Url,
) -> Result<Vec<Snapshot>, ProviderError> {
    list.into_iter()
        .map(|s| {
            s.into_domain(droplet)
                .map_err(|message| ProviderError::Decode {
                    method: "GET".into(),
                    path: url.path().into(),
                    field: "snapshots.id".into(),
                    message,
                })
        })
        .collect()
}

#[async_trait]
impl CloudProvider for DoClient {
    async fn account(&self) -> Result<Account, ProviderError> {
        let a: WireAccount = self
            .get_one(&self.url("/v2/account", &[]), "account")
            .await?;
        Ok(a.into())
    }

    async fn list_ssh_keys(&self) -> Result<Vec<SshKey>, ProviderError> {
        let keys: Vec<WireSshKey> = self.list_all("/v2/account/keys", &[], "ssh_keys").await?;
        Ok(keys.into_iter().map(SshKey::from).collect())
    }

    async fn create_ssh_key(&self, name: &str, public_key: &str) -> Result<SshKey, ProviderError> {
        let body = json!({"name": name, "public_key": public_key});
        let url = self.url("/v2/account/keys", &[]);
        let k: WireSshKey = self.send_one(Method::POST, &url, &body, "ssh_key").await?;
        Ok(k.into())
    }

    async fn list_droplets(&self, tag: Option<&str>) -> Result<Vec<Droplet>, ProviderError> {
        let query: Vec<(&str, String)> = tag
            .map(|t| ("tag_name", t.to_string()))
            .into_iter()
            .collect();
        let list: Vec<WireDroplet> = self.list_all("/v2/droplets", &query, "droplets").await?;
        Ok(list.into_iter().map(Droplet::from).collect())
    }

    async fn get_droplet(&self, id: u64) -> Result<Droplet, ProviderError> {
        let url = self.url(&format!("/v2/droplets/{id}"), &[]);
        let d: WireDroplet = self.get_one(&url, "droplet").await?;
        Ok(d.into())
    }

    async fn create_droplets(&self, req: &CreateDroplets) -> Result<Created, ProviderError> {
        ops::validate_create(req)?;
        self.create_exactly_once(req).await
    }

    async fn delete_droplet(&self, id: u64) -> Result<(), ProviderError> {
        let url = self.url(&format!("/v2/droplets/{id}"), &[]);
        self.send_empty(Method::DELETE, &url, None).await
    }

    async fn delete_droplets_by_tag(&self, tag: &str) -> Result<(), ProviderError> {
        let url = self.url("/v2/droplets", &[("tag_name", tag.to_string())]);
        self.send_empty(Method::DELETE, &url, None).await
    }

    async fn droplet_action(
        &self,
        droplet_id: u64,
        action: &DropletAction,
    ) -> Result<Action, ProviderError> {
        self.start_action(droplet_id, action).await
    }

    async fn list_droplet_actions(&self, droplet_id: u64) -> Result<Vec<Action>, ProviderError> {
        let path = format!("/v2/droplets/{droplet_id}/actions");
        let list: Vec<WireAction> = self.list_all(&path, &[], "actions").await?;
        Ok(list.into_iter().map(Action::from).collect())
    }

    async fn get_action(&self, action_id: u64) -> Result<Action, ProviderError> {
        let url = self.url(&format!("/v2/actions/{action_id}"), &[]);
        let a: WireAction = self.get_one(&url, "action").await?;
        Ok(a.into())
    }

    async fn wait_action(&self, action_id: u64) -> Result<Action, ProviderError> {
        self.poll_action(action_id).await
    }

    async fn list_snapshots(&self) -> Result<Vec<Snapshot>, ProviderError> {
        let q = [("resource_type", "droplet".to_string())];
        let list: Vec<WireSnapshot> = self.list_all("/v2/snapshots", &q, "snapshots").await?;
        snapshots(list, None, &self.url("/v2/snapshots", &[]))
    }

    async fn list_droplet_snapshots(
        &self,
        droplet_id: u64,
    ) -> Result<Vec<Snapshot>, ProviderError> {
        let path = format!("/v2/droplets/{droplet_id}/snapshots");
        let list: Vec<WireSnapshot> = self.list_all(&path, &[], "snapshots").await?;
        snapshots(list, Some(droplet_id), &self.url(&path, &[]))
    }

    async fn delete_snapshot(&self, id: u64) -> Result<(), ProviderError> {
        let url = self.url(&format!("/v2/snapshots/{id}"), &[]);
        self.send_empty(Method::DELETE, &url, None).await
    }

    async fn list_private_images(&self) -> Result<Vec<Image>, ProviderError> {
        let q = [("private", "true".to_string())];
        let list: Vec<WireImage> = self.list_all("/v2/images", &q, "images").await?;
        Ok(list.into_iter().map(Image::from).collect())
    }

    async fn create_tag(&self, name: &str) -> Result<Tag, ProviderError> {
        let url = self.url("/v2/tags", &[]);
        let t: WireTag = self
            .send_one(Method::POST, &url, &json!({"name": name}), "tag")
            .await?;
        Ok(t.into())
    }

    async fn tag_droplets(&self, tag: &str, droplet_ids: &[u64]) -> Result<(), ProviderError> {
        let resources: Vec<Value> = droplet_ids
            .iter()
            .map(|id| json!({"resource_id": id.to_string(), "resource_type": "droplet"}))
            .collect();
        let url = self.url(&format!("/v2/tags/{tag}/resources"), &[]);
        self.send_empty(Method::POST, &url, Some(&json!({"resources": resources})))
            .await
    }

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Firewall, ProviderError> {
        self.create_firewall_once(spec).await
    }

    async fn get_firewall(&self, id: &str) -> Result<Firewall, ProviderError> {
        let url = self.url(&format!("/v2/firewalls/{id}"), &[]);
        let f: WireFirewall = self.get_one(&url, "firewall").await?;
        Ok(f.into())
    }

    async fn update_firewall(
        &self,
        id: &str,
        spec: &FirewallSpec,
    ) -> Result<Firewall, ProviderError> {
        let url = self.url(&format!("/v2/firewalls/{id}"), &[]);
        let body = ops::firewall_body(spec);
        let f: WireFirewall = self.send_one(Method::PUT, &url, &body, "firewall").await?;
        Ok(f.into())
    }

    async fn add_firewall_rules(
        &self,
        id: &str,
        inbound: &[FirewallRule],
        outbound: &[FirewallRule],
    ) -> Result<(), ProviderError> {
        let url = self.url(&format!("/v2/firewalls/{id}/rules"), &[]);
        self.send_empty(
            Method::POST,
            &url,
            Some(&ops::rules_body(inbound, outbound)),
        )
        .await
    }

    async fn remove_firewall_rules(
        &self,
        id: &str,
        inbound: &[FirewallRule],
        outbound: &[FirewallRule],
    ) -> Result<(), ProviderError> {
        let url = self.url(&format!("/v2/firewalls/{id}/rules"), &[]);
        self.send_empty(
            Method::DELETE,
            &url,
            Some(&ops::rules_body(inbound, outbound)),
        )
        .await
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.http.rate_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Secret;

    #[test]
    fn client_rejects_bad_urls_and_keeps_token_out_of_debug() {
        let bad = DoClient::new(DoConfig::new("not a url", Secret::new("s3cr3t"))).unwrap_err();
        assert!(bad.to_string().contains("DO_API_URL"));
        assert!(!bad.to_string().contains("s3cr3t"));
        let c = DoClient::new(DoConfig::new("http://127.0.0.1:9", Secret::new("s3cr3t"))).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(
            c.url("/v2/droplets", &[("tag_name", "infra-op:a".into())])
                .as_str(),
            "http://127.0.0.1:9/v2/droplets?tag_name=infra-op%3Aa"
        );
    }

    #[test]
    fn decode_errors_name_the_field() {
        let url = Url::parse("http://127.0.0.1:9/v2/droplets").unwrap();
        let body = json!({"droplets": [{"id": 1, "name": "a", "status": "weird"}]});
        let e = take_key::<Vec<WireDroplet>>(&Method::GET, &url, body, "droplets").unwrap_err();
        match e {
            ProviderError::Decode { field, path, .. } => {
                assert!(field.starts_with("droplets.[0].status"), "{field}");
                assert_eq!(path, "/v2/droplets");
            }
            other => panic!("{other:?}"),
        }
        let missing = take_key::<Vec<WireDroplet>>(&Method::GET, &url, json!({}), "droplets");
        assert!(missing.unwrap_err().to_string().contains("droplets"));
    }
}
