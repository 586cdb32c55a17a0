//! Operator-requested recoveries (`Command::RequestRecovery`).

use super::*;

fn env(command: Command) -> CommandEnvelope {
    CommandEnvelope::new(command)
}

fn upsert(name: &str, generation: u64) -> CommandEnvelope {
    env(Command::UpsertDroplet {
        name: name.into(),
        provider_id: Some(100),
        ip: Some("10.0.0.1".into()),
        generation,
        status: DropletStatus::Active,
        at_ms: 1,
    })
}

fn request(name: &str, generation: u64, force: bool, at_ms: u64) -> CommandEnvelope {
    env(Command::RequestRecovery {
        name: name.into(),
        generation,
        force,
        at_ms,
    })
}

fn close(s: &mut ClusterState, name: &str, index: u64) {
    let fencing = s.recoveries[name].fencing;
    let done = env(Command::RecoveryStep {
        name: name.into(),
        fencing,
        phase: RecoveryPhase::Done,
        at_ms: 2,
    });
    assert_eq!(s.apply(&done, index, 1), Response::Applied);
}

#[test]
fn request_opens_a_manual_recovery_of_the_newest_incarnation() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 3), 1, 1);
    let resp = s.apply(&request("web1", 1_700, false, 10), 5, 2);
    assert_eq!(
        resp,
        Response::Recovery {
            fencing: FencingToken { term: 2, index: 5 },
            opened: true
        }
    );
    let r = &s.recoveries["web1"];
    assert!(r.manual && r.is_open());
    assert_eq!(r.generation, 1_700, "gossip saw a newer incarnation");
    assert!(s.failures.is_empty(), "no failure was confirmed");
    assert_eq!(s.droplets["web1"].status, DropletStatus::Failed);
}

#[test]
fn request_while_open_is_idempotent_and_unknown_droplet_rejected() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 3), 1, 1);
    s.apply(&request("web1", 3, false, 10), 2, 1);
    let before = s.clone();
    let again = s.apply(&request("web1", 3, false, 11), 3, 1);
    assert_eq!(
        again,
        Response::Recovery {
            fencing: FencingToken { term: 1, index: 2 },
            opened: false
        }
    );
    assert_eq!(s, before);
    let unknown = s.apply(&request("ghost", 0, false, 10), 4, 1);
    assert!(unknown.is_rejected(), "{unknown:?}");
}

#[test]
fn force_forgets_earlier_recoveries_and_plain_request_keeps_them() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 3), 1, 1);
    s.apply(&request("web1", 3, false, 10), 2, 1);
    close(&mut s, "web1", 3);
    s.apply(&request("web1", 3, false, 20), 4, 1);
    assert_eq!(s.recoveries["web1"].earlier_starts_ms, vec![10]);
    close(&mut s, "web1", 5);
    s.apply(&request("web1", 3, true, 30), 6, 1);
    let r = &s.recoveries["web1"];
    assert!(r.earlier_starts_ms.is_empty(), "{r:?}");
    assert_eq!(r.started_at_ms, 30);
}
