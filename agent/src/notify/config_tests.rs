//! Unit tests of the notification config parsing and secret resolution.

use super::*;

const EMAIL: &str = r#"{
  "version": 1, "enabled": true,
  "smtp": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
           "username": "alerts@example.com", "password_env": "INFRA_SMTP_PASSWORD"},
  "from": "Infra Alerts <alerts@example.com>", "to": ["ops@example.com"],
  "subject_prefix": "[infra]", "heartbeat_interval_minutes": 15
}"#;

const SMS: &str = r#"{
  "version": 1, "enabled": true, "provider": "twilio",
  "twilio": {"account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "from": "+15005550006",
             "auth_token_env": "INFRA_TWILIO_AUTH_TOKEN"},
  "to": ["+447700900123"]
}"#;

fn email_with(from: &str, to: &str) -> String {
    EMAIL.replace(from, to)
}

#[test]
fn the_shipped_configs_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let e = EmailConfig::load(&root.join(EMAIL_CONFIG_FILE)).unwrap();
    assert_eq!(e.smtp.tls, TlsMode::Starttls);
    assert_eq!(e.heartbeat_interval_minutes, 15);
    let s = SmsConfig::load(&root.join(SMS_CONFIG_FILE)).unwrap();
    assert_eq!(s.provider, SmsProvider::Twilio);
    assert!(!s.enabled);
}

#[test]
fn email_fields_are_typed() {
    let c = EmailConfig::parse("email_config.json", EMAIL).unwrap();
    assert_eq!(c.smtp.port, 587);
    assert_eq!(c.smtp.password_env.as_deref(), Some("INFRA_SMTP_PASSWORD"));
    assert_eq!(c.to, vec!["ops@example.com"]);
    for mode in ["tls", "none"] {
        let t = email_with("\"starttls\"", &format!("\"{mode}\""));
        EmailConfig::parse("f", &t).unwrap();
    }
}

#[test]
fn a_wrong_type_names_file_field_and_reason() {
    let text = email_with("587", "\"abc\"");
    let e = EmailConfig::parse("email_config.json", &text).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("email_config.json: field `smtp.port`"), "{s}");
    assert!(s.contains("abc"), "{s}");
}

#[test]
fn an_unknown_tls_mode_is_rejected_with_its_value() {
    let text = email_with("\"starttls\"", "\"ssl\"");
    let s = EmailConfig::parse("email_config.json", &text)
        .unwrap_err()
        .to_string();
    assert!(s.contains("smtp.tls") && s.contains("ssl"), "{s}");
}

#[test]
fn unknown_fields_and_versions_are_rejected() {
    let text = email_with("\"subject_prefix\"", "\"subject_prefx\"");
    let s = EmailConfig::parse("e.json", &text).unwrap_err().to_string();
    assert!(s.contains("subject_prefx"), "{s}");
    let text = email_with("\"version\": 1", "\"version\": 2");
    let e = EmailConfig::parse("e.json", &text).unwrap_err();
    assert_eq!(
        e,
        ConfigError::Invalid {
            file: "e.json".into(),
            field: "version".into(),
            value: "2".into(),
            expected: "this version of infractl reads version 1".into()
        }
    );
}

#[test]
fn bad_addresses_name_their_index() {
    let text = email_with(
        "[\"ops@example.com\"]",
        "[\"ops@example.com\", \"not an address\"]",
    );
    let s = EmailConfig::parse("e.json", &text).unwrap_err().to_string();
    assert!(s.contains("`to[1]`") && s.contains("not an address"), "{s}");
    let text = email_with("\"Infra Alerts <alerts@example.com>\"", "\"nobody\"");
    let s = EmailConfig::parse("e.json", &text).unwrap_err().to_string();
    assert!(s.contains("`from`") && s.contains("nobody"), "{s}");
    let text = email_with("[\"ops@example.com\"]", "[]");
    assert!(
        EmailConfig::parse("e.json", &text)
            .unwrap_err()
            .to_string()
            .contains("`to`")
    );
    let text = email_with("\"INFRA_SMTP_PASSWORD\"", "\"lower-case\"");
    let s = EmailConfig::parse("e.json", &text).unwrap_err().to_string();
    assert!(s.contains("smtp.password_env"), "{s}");
    assert!(
        !s.contains("lower-case"),
        "a maybe-secret value is not echoed: {s}"
    );
}

#[test]
fn sms_fields_are_checked() {
    let c = SmsConfig::parse("sms_config.json", SMS).unwrap();
    assert_eq!(c.twilio_in("sms_config.json").unwrap().from, "+15005550006");
    let cases = [
        ("\"+447700900123\"", "\"07700900123\"", "to[0]"),
        ("\"+15005550006\"", "\"555\"", "twilio.from"),
        (
            "\"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"",
            "\"XY123\"",
            "twilio.account_sid",
        ),
        ("\"twilio\"", "\"nexmo\"", "provider"),
        (
            "\"INFRA_TWILIO_AUTH_TOKEN\"",
            "\"\"",
            "twilio.auth_token_env",
        ),
    ];
    for (from, to, field) in cases {
        let s = SmsConfig::parse("sms_config.json", &SMS.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(
            s.starts_with("sms_config.json: field `") && s.contains(field),
            "{s}"
        );
    }
}

#[test]
fn secrets_come_from_the_named_variable_and_never_show() {
    let c = EmailConfig::parse("e.json", EMAIL).unwrap();
    let p = c
        .password("e.json", |v| {
            (v == "INFRA_SMTP_PASSWORD").then(|| "hunter2".to_string())
        })
        .unwrap()
        .unwrap();
    assert_eq!(p.expose(), "hunter2");
    assert!(!format!("{p:?} {p}").contains("hunter2"));
    let e = c.password("e.json", |_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "e.json: environment variable INFRA_SMTP_PASSWORD (named by field `smtp.password_env`) is not set or empty"
    );
    let s = SmsConfig::parse("s.json", SMS).unwrap();
    let t = s.auth_token("s.json", |_| Some("tok-123".into())).unwrap();
    assert!(!format!("{t:?}").contains("tok-123"));
    assert!(s.auth_token("s.json", |_| Some(String::new())).is_err());
}

#[test]
fn setup_reads_enabled_channels_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        NotifySetup::from_dir(dir.path(), |_| None)
            .unwrap()
            .is_none()
    );
    std::fs::write(dir.path().join(EMAIL_CONFIG_FILE), EMAIL).unwrap();
    std::fs::write(dir.path().join(SMS_CONFIG_FILE), SMS).unwrap();
    let err = NotifySetup::from_dir(dir.path(), |_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("INFRA_SMTP_PASSWORD"), "{err}");
    let setup = NotifySetup::from_dir(dir.path(), |_| Some("s3cret-value".into()))
        .unwrap()
        .unwrap();
    assert_eq!(setup.channels.len(), 2);
    assert_eq!(setup.subject_prefix, "[infra]");
    assert_eq!(setup.heartbeat, Some(std::time::Duration::from_secs(900)));
    let shown = format!("{setup:?}");
    assert!(!shown.contains("s3cret-value"), "{shown}");
}

#[test]
fn a_bundle_carries_configs_and_secrets_and_round_trips_through_a_directory() {
    let caller = tempfile::tempdir().unwrap();
    std::fs::write(caller.path().join(EMAIL_CONFIG_FILE), EMAIL).unwrap();
    std::fs::write(caller.path().join(SMS_CONFIG_FILE), SMS).unwrap();
    let env = |v: &str| match v {
        "INFRA_SMTP_PASSWORD" => Some("pw-value-1".to_string()),
        "INFRA_TWILIO_AUTH_TOKEN" => Some("tok-value-2".to_string()),
        _ => None,
    };
    let bundle = NotifyBundle::from_caller(caller.path(), env)
        .unwrap()
        .unwrap();
    let shown = format!("{bundle:?}");
    assert!(
        !shown.contains("pw-value-1") && !shown.contains("tok-value-2"),
        "{shown}"
    );
    assert!(shown.contains("INFRA_SMTP_PASSWORD"), "{shown}");
    let missing = NotifyBundle::from_caller(caller.path(), |_| None).unwrap_err();
    assert!(missing.to_string().contains("INFRA_SMTP_PASSWORD"));

    let agent = tempfile::tempdir().unwrap();
    for (name, content) in bundle.files() {
        std::fs::write(agent.path().join(name), content).unwrap();
    }
    let loaded = NotifyBundle::load(agent.path()).unwrap().unwrap();
    assert_eq!(loaded, bundle);
    // The agent's environment has nothing: the bundle's secrets suffice.
    let setup = NotifySetup::from_dir(agent.path(), |_| None)
        .unwrap()
        .unwrap();
    assert_eq!(setup.channels.len(), 2);
    assert!(
        NotifyBundle::load(tempfile::tempdir().unwrap().path())
            .unwrap()
            .is_none()
    );
}

#[test]
fn bundle_files_are_the_configs_then_the_secret_lines() {
    let bundle = NotifyBundle {
        email_json: Some(EMAIL.into()),
        sms_json: None,
        secrets: [(
            "INFRA_SMTP_PASSWORD".to_string(),
            crate::provider::Secret::new("pw-3"),
        )]
        .into(),
    };
    let files = bundle.files();
    let names: Vec<_> = files.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, vec![EMAIL_CONFIG_FILE, SECRETS_FILE]);
    assert_eq!(files[1].1, "INFRA_SMTP_PASSWORD=pw-3\n");
}
