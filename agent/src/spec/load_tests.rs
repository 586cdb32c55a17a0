//! Tests of the notification configs and of loading a config directory.

use std::path::Path;

use serde_json::json;

use super::edit::to_pretty_json;
use super::examples::example;
use super::validate_tests::{assert_error, example_value};
use super::*;

#[test]
fn email_config_rules() {
    let f = Path::new("config/email_config.json");
    let mut v = example_value(EMAIL_FILE);
    parse_email(&to_pretty_json(&v), f).unwrap();
    v["smtp"]["password"] = json!("hunter2");
    let e = parse_email(&to_pretty_json(&v), f).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown field \"password\" (did you mean \"password_env\"?)"),
        "{e}"
    );
    assert!(
        !format!("{e:?}").contains("hunter2"),
        "secret echoed: {e:?}"
    );
    v["smtp"].as_object_mut().unwrap().remove("password");
    v["smtp"]["password_env"] = json!("s3cret pa55");
    v["to"] = json!(["ops@example.com", "nobody"]);
    v["from"] = json!("Alerts <alerts@example.com");
    let e = parse_email(&to_pretty_json(&v), f).unwrap_err();
    let file = "config/email_config.json";
    assert!(
        !format!("{e} {e:?}").contains("s3cret"),
        "secret echoed: {e:?}"
    );
    assert_error(
        &e,
        file,
        "smtp.password_env",
        "the value (hidden, it may be a secret)",
        "must name an environment variable",
    );
    assert_error(&e, file, "to[1]", "\"nobody\"", "must be an email address");
    assert_error(
        &e,
        file,
        "from",
        "\"Alerts <alerts@example.com\"",
        "must be an email address",
    );
    v = example_value(EMAIL_FILE);
    v["smtp"].as_object_mut().unwrap().remove("password_env");
    let e = parse_email(&to_pretty_json(&v), f).unwrap_err();
    assert!(e.to_string().contains("set both or neither"), "{e}");
}

#[test]
fn sms_config_rules() {
    let f = Path::new("config/sms_config.json");
    let file = "config/sms_config.json";
    let mut v = example_value(SMS_FILE);
    v["to"] = json!(["+447700900123", "07700900123", "+447700900123"]);
    v["twilio"]["auth_token_env"] = json!("token-env");
    let e = parse_sms(&to_pretty_json(&v), f).unwrap_err();
    assert_error(&e, file, "to[1]", "\"07700900123\"", "E.164");
    assert_error(
        &e,
        file,
        "to[2]",
        "\"+447700900123\"",
        "recipients must be unique",
    );
    assert_error(
        &e,
        file,
        "twilio.auth_token_env",
        "the value (hidden, it may be a secret)",
        "environment variable",
    );
    let v = json!({"provider": "webhook", "to": ["+15550100999"]});
    let e = parse_sms(&to_pretty_json(&v), f).unwrap_err();
    assert_error(
        &e,
        file,
        "provider",
        "\"webhook\"",
        "needs a \"webhook\" section",
    );
    let v = json!({"provider": "webhook", "webhook": {"url": "ftp://x"}, "to": ["+15550100999"]});
    let e = parse_sms(&to_pretty_json(&v), f).unwrap_err();
    assert_error(
        &e,
        file,
        "webhook.url",
        "\"ftp://x\"",
        "http:// or https://",
    );
    let v = json!({"provider": "webhook", "webhook": {"url": "https://hooks.example.com/sms", "token_env": "SMS_TOKEN"}, "to": ["+15550100999"]});
    let sms = parse_sms(&to_pretty_json(&v), f).unwrap();
    assert_eq!(sms.version, 1);
    assert!(sms.enabled);
}

#[test]
fn load_dir_reports_missing_spec_and_every_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_dir(dir.path()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&dir.path().join(INFRASTRUCTURE_FILE).display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("infractl init"), "{msg}");

    std::fs::write(
        dir.path().join(INFRASTRUCTURE_FILE),
        example(INFRASTRUCTURE_FILE).unwrap(),
    )
    .unwrap();
    let loaded = load_dir(dir.path()).unwrap();
    assert_eq!(loaded.deployment, DeploymentConfig::default());
    assert!(loaded.email.is_none() && loaded.sms.is_none());
    assert_eq!(
        loaded.infrastructure_text,
        example(INFRASTRUCTURE_FILE).unwrap()
    );
    assert_eq!(loaded.deployment_text, None);
    assert_eq!(
        loaded.spec().infrastructure,
        loaded.infrastructure.infrastructure_spec
    );

    std::fs::write(
        dir.path().join(DEPLOYMENT_FILE),
        r#"{"git_config": {"base_url": "b", "url_pattern": "x"}, "projects": {"nope": {}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join(SMS_FILE),
        r#"{"provider": "twilio", "to": []}"#,
    )
    .unwrap();
    let e = load_dir(dir.path()).unwrap_err();
    assert_eq!(e.len(), 4, "{e}");
    // The file's own error and the cross-file one are both reported.
    assert_eq!(e.0[0].path, "git_config.url_pattern", "{e}");
    assert!(
        e.0[1].file.ends_with(DEPLOYMENT_FILE) && e.0[1].path == "projects.nope",
        "{e}"
    );
    assert!(
        e.iter().filter(|x| x.file.ends_with(SMS_FILE)).count() == 2,
        "{e}"
    );
}
