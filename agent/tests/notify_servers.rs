//! Notifications against real servers on loopback: an aiosmtpd SMTP server
//! (python3-aiosmtpd, with AUTH over plain SMTP) for the e-mail channel and
//! the heartbeats, an in-test HTTP server standing in for Twilio's Messages
//! API for the SMS channel. With CI=true a missing aiosmtpd fails the test.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use infra_agent::notify::{
    Channel, ChannelKind, Fanout, HeartbeatSummary, Message, Retry, SmsConfig, SmsNotifier,
    run_heartbeats,
};
use infra_agent::provider::Secret;
use infra_agent::recovery::{Fence, Notice, Notifier, Replacement, SagaOutcome, SourceImage};
use tokio_util::sync::CancellationToken;

mod notify_support;
use notify_support::{PASSWORD, SmtpSink, USER};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-t0ken-value";

fn recovered() -> Notice {
    Notice::Recovered(SagaOutcome {
        droplet: "blog-web1".into(),
        generation: 2,
        droplet_id: 9001,
        ip: Some("10.0.0.9".parse().unwrap()),
        replacement: Replacement::Create {
            image: SourceImage::Snapshot { id: 55 },
        },
        fence: Fence::Destroyed,
        old_destroyed: true,
    })
}

fn quick_retry() -> Retry {
    Retry {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_recovery_notice_is_mailed_through_the_fanout_with_auth() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let shutdown = CancellationToken::new();
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(sink.notifier(PASSWORD))];
    let (fanout, task) = Fanout::start(channels, quick_retry(), "[infra]".into(), shutdown.clone());
    fanout.notify(&recovered()).await;
    let got = sink.wait_for(1).await;
    let m = &got[0];
    assert_eq!(m["login"], USER);
    assert_eq!(m["mail_from"], "alerts@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    assert_eq!(m["from"], "Infra Alerts <alerts@example.com>");
    assert!(m["to"].as_str().unwrap().contains("ops@example.com"));
    assert!(m["to"].as_str().unwrap().contains("oncall@example.com"));
    assert_eq!(m["subject"], "[infra] Recovered droplet blog-web1");
    let body = m["body"].as_str().unwrap();
    assert!(
        body.contains("Droplet blog-web1 failed and was recovered automatically."),
        "{body}"
    );
    assert!(
        body.contains("replaced by a new droplet from snapshot 55"),
        "{body}"
    );
    assert!(body.contains("IP: 10.0.0.9"), "{body}");
    wait_until("the sent counter", || fanout.counters().get() == (1, 0, 0)).await;
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_rejected_password_is_a_permanent_error_without_the_password() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let wrong = "wr0ng-pa55-value";
    let err = sink
        .notifier(wrong)
        .send(&Message {
            subject: "s".into(),
            body: "b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.channel, ChannelKind::Email);
    assert!(err.permanent, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn heartbeats_are_mailed_only_while_leader() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let shutdown = CancellationToken::new();
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(sink.notifier(PASSWORD))];
    let (fanout, task) = Fanout::start(channels, quick_retry(), "[infra]".into(), shutdown.clone());
    let leader = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let (l, a) = (leader.clone(), asked.clone());
    let beats = tokio::spawn(run_heartbeats(
        fanout.clone(),
        Duration::from_millis(50),
        move || {
            a.fetch_add(1, Ordering::SeqCst);
            l.load(Ordering::SeqCst)
        },
        || HeartbeatSummary {
            cluster_id: "c1".into(),
            at: chrono::Utc::now(),
            window_minutes: 15,
            alive: vec!["master".into(), "blog-web1".into()],
            failed: vec![],
            leader: Some("master".into()),
            recoveries: vec![],
            releases: vec![],
        },
        shutdown.clone(),
    ));
    wait_until("three follower ticks", || asked.load(Ordering::SeqCst) >= 3).await;
    assert_eq!(
        fanout.counters().get(),
        (0, 0, 0),
        "a follower sent a heartbeat"
    );
    leader.store(true, Ordering::SeqCst);
    let got = sink.wait_for(2).await;
    assert_eq!(got[0]["subject"], "[infra] Heartbeat c1: 2 alive, healthy");
    assert!(got[0]["body"].as_str().unwrap().contains("Leader: master"));
    shutdown.cancel();
    beats.await.unwrap();
    task.await.unwrap();
}

/// What the fake Twilio saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: Option<String>,
    form: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Twilio {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Answers 500 to this many requests first.
    fail_first: Arc<AtomicUsize>,
}

async fn messages(
    State(t): State<Twilio>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let form = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    t.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
        form,
    });
    let failing = t
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"try later"}"#.into(),
        )
    } else {
        (
            StatusCode::CREATED,
            r#"{"sid":"SM1","status":"queued"}"#.into(),
        )
    }
}

/// Serves the fake Twilio on 127.0.0.1:0 until `shutdown`.
async fn start_twilio(
    twilio: Twilio,
    shutdown: CancellationToken,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(messages),
        )
        .with_state(twilio);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .unwrap();
    });
    (base, task)
}

fn sms_config() -> SmsConfig {
    SmsConfig::parse(
        "sms_config.json",
        &serde_json::json!({
            "version": 1, "enabled": true, "provider": "twilio",
            "twilio": {"account_sid": SID, "from": "+15005550006",
                       "auth_token_env": "INFRA_TWILIO_AUTH_TOKEN"},
            "to": ["+447700900123", "+447700900456"]
        })
        .to_string(),
    )
    .unwrap()
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[tokio::test]
async fn a_notice_is_texted_to_every_number_through_twilios_api() {
    let stop = CancellationToken::new();
    let twilio = Twilio::default();
    let (base, server) = start_twilio(twilio.clone(), stop.clone()).await;
    let config = sms_config();
    let twilio_config = config.twilio_in("sms_config.json").unwrap();
    let sms = SmsNotifier::new(twilio_config, &config.to, Secret::new(TOKEN), Some(&base)).unwrap();
    assert!(!format!("{sms:?}").contains(TOKEN));
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(sms)];
    let (fanout, task) = Fanout::start(channels, quick_retry(), "[infra]".into(), stop.clone());
    fanout.notify(&recovered()).await;
    wait_until("one delivery", || fanout.counters().get() == (1, 0, 0)).await;
    let seen = twilio.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (s, to) in seen.iter().zip(["+447700900123", "+447700900456"]) {
        assert_eq!(s.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(s.auth.as_deref(), Some(basic(SID, TOKEN).as_str()));
        let field = |k: &str| s.form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(field("To"), Some(to));
        assert_eq!(field("From"), Some("+15005550006"));
        assert_eq!(
            field("Body"),
            Some(
                "[infra] Recovered droplet blog-web1: Droplet blog-web1 failed and was recovered automatically."
            )
        );
    }
    stop.cancel();
    task.await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_failing_twilio_is_retried_with_backoff() {
    let stop = CancellationToken::new();
    let twilio = Twilio::default();
    twilio.fail_first.store(1, Ordering::SeqCst);
    let (base, server) = start_twilio(twilio.clone(), stop.clone()).await;
    let mut config = sms_config();
    config.to.truncate(1);
    let twilio_config = config.twilio_in("sms_config.json").unwrap();
    let sms = SmsNotifier::new(twilio_config, &config.to, Secret::new(TOKEN), Some(&base)).unwrap();
    let err = sms
        .send(&Message {
            subject: "s".into(),
            body: String::new(),
        })
        .await
        .unwrap_err();
    assert!(!err.permanent && err.reason.contains("try later"), "{err}");
    assert!(!err.to_string().contains(TOKEN));
    twilio.fail_first.store(2, Ordering::SeqCst);
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(sms)];
    let (fanout, task) = Fanout::start(channels, quick_retry(), String::new(), stop.clone());
    fanout.notify(&recovered()).await;
    wait_until("the retried delivery", || {
        fanout.counters().get() == (1, 0, 0)
    })
    .await;
    assert_eq!(twilio.seen.lock().unwrap().len(), 1 + 3);
    twilio.fail_first.store(5, Ordering::SeqCst);
    fanout.notify(&recovered()).await;
    wait_until("the given-up delivery", || {
        fanout.counters().get() == (1, 1, 0)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    server.await.unwrap();
}
