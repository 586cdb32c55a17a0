//! Unit tests of the nginx.conf text.

use super::*;

fn route(p: &str, e: &str, s: &str, backends: &[&str]) -> Route {
    Route {
        project: p.into(),
        env: e.into(),
        service: s.into(),
        backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
    }
}

fn cfg() -> LbConfig {
    let mut c = LbConfig::new("127.0.0.1:8080".parse().unwrap());
    c.routes = vec![
        route(
            "hostomatic",
            "prod",
            "backend",
            &["10.0.0.2:20001", "10.0.0.3:20001"],
        ),
        route("hostomatic", "prod", "frontend", &["10.0.0.2:20002"]),
        route("shop", "uat", "web", &[]),
    ];
    c
}

/// The text of the block that starts at the first line containing `head`.
fn block<'a>(text: &'a str, head: &str) -> &'a str {
    let start = text
        .find(head)
        .unwrap_or_else(|| panic!("no `{head}` in:\n{text}"));
    let end = text[start..].find('}').unwrap() + start;
    &text[start..=end]
}

#[test]
fn upstream_per_service_with_backends() {
    let text = render(&cfg(), 7).unwrap();
    let up = block(&text, "upstream hostomatic-prod-backend {");
    assert!(up.contains("server 10.0.0.2:20001 max_fails=0;"), "{up}");
    assert!(up.contains("server 10.0.0.3:20001 max_fails=0;"), "{up}");
    assert!(text.contains("upstream hostomatic-prod-frontend {"));
    // No backends: no (invalid, empty) upstream, a 503 location instead.
    assert!(!text.contains("upstream shop-uat-web"), "{text}");
    let loc = block(&text, "location /shop/uat/web/ {");
    assert!(loc.contains("return 503"), "{loc}");
}

#[test]
fn locations_strip_the_prefix_and_rate_limit() {
    let text = render(&cfg(), 7).unwrap();
    let loc = block(&text, "location /hostomatic/prod/backend/ {");
    assert!(
        loc.contains("proxy_pass http://hostomatic-prod-backend/;"),
        "{loc}"
    );
    assert!(loc.contains("limit_req zone=infra_perip burst=100 nodelay;"));
    assert!(text.contains("rate=50r/s;"));
    assert!(text.contains("limit_req_status 429;"));
}

#[test]
fn own_health_reports_generation() {
    let text = render(&cfg(), 42).unwrap();
    let health = block(&text, "location = /health {");
    assert!(health.contains("ok generation=42"), "{health}");
    assert!(text.contains("listen 127.0.0.1:8080 default_server;"));
}

#[test]
fn domains_get_their_own_server() {
    let mut c = cfg();
    c.domains.insert(
        ("hostomatic".into(), "prod".into()),
        "hostomatic.example.com".into(),
    );
    let text = render(&c, 1).unwrap();
    let start = text.find("server_name hostomatic.example.com;").unwrap();
    let server = &text[start..];
    assert!(server.contains("location /backend/ {"), "{server}");
    assert!(server.contains("location /frontend/ {"));
    assert!(server.contains("location / {"));
    assert!(!server.contains("/shop/"), "{server}");
    // Without domains there is only the default server.
    assert_eq!(render(&cfg(), 1).unwrap().matches("server_name").count(), 1);
}

#[test]
fn rejects_names_that_would_inject_directives() {
    let mut c = cfg();
    c.routes[0].service = "x; return 200".into();
    let err = render(&c, 1).unwrap_err();
    assert!(err.to_string().contains("service `x; return 200`"), "{err}");

    let mut c = cfg();
    c.domains
        .insert(("a".into(), "b".into()), "evil.com; }".into());
    assert!(render(&c, 1).is_err());

    let mut c = cfg();
    c.routes.push(route("shop", "uat", "web", &[]));
    assert!(
        render(&c, 1)
            .unwrap_err()
            .to_string()
            .contains("routed twice")
    );
}

#[test]
fn braces_balance() {
    let mut c = cfg();
    c.domains
        .insert(("shop".into(), "uat".into()), "shop.test".into());
    let text = render(&c, 3).unwrap();
    assert_eq!(text.matches('{').count(), text.matches('}').count());
}
