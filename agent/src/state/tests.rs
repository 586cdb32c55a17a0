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

fn confirm(name: &str, generation: u64, at_ms: u64) -> CommandEnvelope {
    env(Command::ConfirmFailure {
        name: name.into(),
        generation,
        at_ms,
    })
}

fn step(name: &str, fencing: FencingToken, phase: RecoveryPhase) -> CommandEnvelope {
    env(Command::RecoveryStep {
        name: name.into(),
        fencing,
        phase,
        at_ms: 50,
    })
}

fn opened(resp: &Response) -> FencingToken {
    match resp {
        Response::Recovery {
            fencing,
            opened: true,
        } => *fencing,
        other => panic!("expected a newly opened recovery, got {other:?}"),
    }
}

#[test]
fn confirm_failure_opens_recovery_with_fencing_token_of_its_entry() {
    let mut s = ClusterState::default();
    assert_eq!(s.apply(&upsert("web1", 3), 1, 1), Response::Applied);
    let token = opened(&s.apply(&confirm("web1", 3, 10), 7, 2));
    assert_eq!(token, FencingToken { term: 2, index: 7 });
    let failure = &s.failures["web1"];
    assert_eq!((failure.generation, failure.term), (3, 2));
    assert_eq!(failure.confirmed_at_ms, 10);
    assert_eq!(s.droplets["web1"].status, DropletStatus::Failed);
    assert!(s.open_recovery("web1").is_some());
}

#[test]
fn confirm_failure_of_unknown_droplet_is_rejected() {
    let mut s = ClusterState::default();
    assert!(s.apply(&confirm("ghost", 1, 10), 1, 1).is_rejected());
    // A droplet known only from the topology (no runtime record yet) is fine.
    let mut topology = Topology::default();
    topology.droplets.insert(
        "master".into(),
        crate::topology::DropletState {
            role: crate::spec::Role::Master,
            project: None,
            size: "s-1vcpu-1gb".into(),
            region: "nyc1".into(),
            ip: None,
            monitors: vec![],
            voter: true,
        },
    );
    let set = env(Command::SetTopology { topology, at_ms: 1 });
    assert_eq!(s.apply(&set, 2, 1), Response::Applied);
    opened(&s.apply(&confirm("master", 0, 10), 3, 1));
}

#[test]
fn confirm_failure_for_older_generation_is_rejected() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 5), 1, 1);
    let resp = s.apply(&confirm("web1", 4, 10), 2, 1);
    assert!(resp.is_rejected(), "{resp:?}");
    assert!(s.failures.is_empty());
    assert!(s.recoveries.is_empty());
}

#[test]
fn second_confirm_while_recovery_open_is_idempotent() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 1), 1, 1);
    let token = opened(&s.apply(&confirm("web1", 1, 10), 2, 1));
    let before = s.clone();
    let again = s.apply(&confirm("web1", 1, 20), 3, 2);
    assert_eq!(
        again,
        Response::Recovery {
            fencing: token,
            opened: false
        }
    );
    assert_eq!(s, before, "a repeated confirmation must not change state");
}

#[test]
fn recovery_steps_need_the_current_fencing_token() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 1), 1, 1);
    let token = opened(&s.apply(&confirm("web1", 1, 10), 2, 1));
    assert_eq!(
        s.apply(&step("web1", token, RecoveryPhase::Fenced), 3, 1),
        Response::Applied
    );
    // A new leader takes over: the old token no longer works.
    let resp = s.apply(
        &env(Command::TakeOverRecovery {
            name: "web1".into(),
            at_ms: 60,
        }),
        4,
        2,
    );
    let new_token = FencingToken { term: 2, index: 4 };
    assert_eq!(
        resp,
        Response::Recovery {
            fencing: new_token,
            opened: false
        }
    );
    let stale = s.apply(
        &step(
            "web1",
            token,
            RecoveryPhase::Restoring {
                snapshot_id: "s1".into(),
            },
        ),
        5,
        2,
    );
    assert!(stale.is_rejected(), "{stale:?}");
    assert_eq!(s.recoveries["web1"].phase, RecoveryPhase::Fenced);
    // Replaying the same step is idempotent.
    assert_eq!(
        s.apply(&step("web1", new_token, RecoveryPhase::Fenced), 6, 2),
        Response::Unchanged
    );
}

#[test]
fn full_recovery_bumps_generation_and_rejects_stale_failures() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 1), 1, 1);
    let t = opened(&s.apply(&confirm("web1", 1, 10), 2, 1));
    let phases = [
        RecoveryPhase::Fenced,
        RecoveryPhase::Restoring {
            snapshot_id: "s1".into(),
        },
        RecoveryPhase::Restored {
            provider_id: 777,
            ip: "10.0.0.9".into(),
        },
        RecoveryPhase::Done,
    ];
    for (i, phase) in phases.into_iter().enumerate() {
        assert_eq!(
            s.apply(&step("web1", t, phase), 3 + i as u64, 1),
            Response::Applied
        );
    }
    let rec = &s.recoveries["web1"];
    assert!(!rec.is_open());
    assert_eq!(rec.finished_at_ms, Some(50));
    assert_eq!(rec.history.len(), 5);
    let d = &s.droplets["web1"];
    assert_eq!((d.generation, d.provider_id), (2, Some(777)));
    assert_eq!(d.ip.as_deref(), Some("10.0.0.9"));
    assert_eq!(d.status, DropletStatus::Active);
    // Votes about the dead incarnation arrive late: rejected.
    assert!(s.apply(&confirm("web1", 1, 99), 10, 1).is_rejected());
    // Steps after the end are rejected.
    assert!(
        s.apply(&step("web1", t, RecoveryPhase::Fenced), 11, 1)
            .is_rejected()
    );
    // The new incarnation can fail and be recovered again.
    opened(&s.apply(&confirm("web1", 2, 100), 12, 1));
}

#[test]
fn releases_keep_bounded_history_and_dedupe() {
    let mut s = ClusterState::default();
    let rel = |tag: &str| {
        env(Command::RecordRelease {
            project: "p".into(),
            environment: "prod".into(),
            tag: tag.into(),
            images: BTreeMap::from([("web".to_string(), format!("sha-{tag}"))]),
            commit: None,
            at_ms: 5,
        })
    };
    assert_eq!(s.apply(&rel("v1"), 1, 1), Response::Applied);
    assert_eq!(s.apply(&rel("v1"), 2, 1), Response::Unchanged);
    for i in 0..30 {
        s.apply(&rel(&format!("v{}", i + 2)), 3 + i, 1);
    }
    assert_eq!(s.releases["p/prod"].len(), MAX_RELEASES);
    assert_eq!(s.current_release("p", "prod").unwrap().tag, "v31");
    // A rollback makes an older kept release live; an unknown one is refused.
    let live = |tag: &str| {
        env(Command::SetLiveRelease {
            project: "p".into(),
            environment: "prod".into(),
            tag: tag.into(),
            at_ms: 6,
        })
    };
    assert_eq!(s.apply(&live("v30"), 40, 1), Response::Applied);
    assert_eq!(s.current_release("p", "prod").unwrap().tag, "v30");
    assert!(s.apply(&live("v1"), 41, 1).is_rejected());
    // Re-recording the newest release makes it live again.
    assert_eq!(s.apply(&rel("v31"), 42, 1), Response::Applied);
    assert_eq!(s.current_release("p", "prod").unwrap().tag, "v31");
    assert_eq!(s.releases["p/prod"].len(), MAX_RELEASES);
}

#[test]
fn sealed_secrets_merge_and_load_balancer_is_recorded() {
    let mut s = ClusterState::default();
    let store = |name: &str, sealed: &str| {
        env(Command::StoreSecrets {
            project: "p".into(),
            environment: "uat".into(),
            sealed: BTreeMap::from([(name.to_string(), sealed.to_string())]),
            at_ms: 1,
        })
    };
    assert_eq!(s.apply(&store("a", "00"), 1, 1), Response::Applied);
    assert_eq!(s.apply(&store("b", "01"), 2, 1), Response::Applied);
    assert_eq!(s.apply(&store("b", "01"), 3, 1), Response::Unchanged);
    assert_eq!(s.secrets["p/uat"].len(), 2);
    let lb = env(Command::SetLoadBalancer {
        url: "http://127.0.0.2:7480".into(),
        at_ms: 1,
    });
    assert_eq!(s.apply(&lb, 4, 1), Response::Applied);
    assert_eq!(s.apply(&lb, 5, 1), Response::Unchanged);
    assert_eq!(s.load_balancer.as_deref(), Some("http://127.0.0.2:7480"));
    // An old state without the new fields still parses.
    let mut old = serde_json::to_value(ClusterState::default()).unwrap();
    old.as_object_mut().unwrap().remove("load_balancer");
    let back: ClusterState = serde_json::from_value(old).unwrap();
    assert!(back.secrets.is_empty() && back.load_balancer.is_none());
}

#[test]
fn snapshots_are_bounded_and_latest_is_newest() {
    let mut s = ClusterState::default();
    for i in 0..15u64 {
        let cmd = env(Command::RecordSnapshot {
            droplet: "web1".into(),
            snapshot_id: format!("id{i}"),
            name: format!("snap{i}"),
            at_ms: 1000 + i,
        });
        assert_eq!(s.apply(&cmd, i + 1, 1), Response::Applied);
    }
    assert_eq!(s.snapshots["web1"].len(), MAX_SNAPSHOTS);
    assert_eq!(s.latest_snapshot("web1").unwrap().snapshot_id, "id14");
    let forget = env(Command::ForgetSnapshot {
        droplet: "web1".into(),
        snapshot_id: "id14".into(),
    });
    assert_eq!(s.apply(&forget, 20, 1), Response::Applied);
    assert_eq!(s.latest_snapshot("web1").unwrap().snapshot_id, "id13");
}

#[test]
fn events_are_bounded_and_unknown_versions_rejected() {
    let mut s = ClusterState::default();
    for i in 0..(MAX_EVENTS as u64 + 10) {
        let cmd = env(Command::RecordEvent {
            message: format!("e{i}"),
            at_ms: i,
        });
        s.apply(&cmd, i + 1, 1);
    }
    assert_eq!(s.events.len(), MAX_EVENTS);
    assert_eq!(s.events.front().unwrap().message, "e10");
    let mut future = upsert("web1", 1);
    future.version = COMMAND_VERSION + 1;
    assert!(s.apply(&future, 999, 1).is_rejected());
    assert!(s.droplets.is_empty());
}

#[test]
fn upsert_rejects_older_generation_and_dedupes() {
    let mut s = ClusterState::default();
    assert_eq!(s.apply(&upsert("web1", 2), 1, 1), Response::Applied);
    assert_eq!(s.apply(&upsert("web1", 2), 2, 1), Response::Unchanged);
    assert!(s.apply(&upsert("web1", 1), 3, 1).is_rejected());
    let rm = env(Command::RemoveDroplet {
        name: "web1".into(),
        at_ms: 9,
    });
    assert_eq!(s.apply(&rm, 4, 1), Response::Applied);
    assert_eq!(s.apply(&rm, 5, 1), Response::Unchanged);
}

#[test]
fn apply_is_deterministic_and_state_round_trips_through_json() {
    let cmds = [
        upsert("web1", 1),
        confirm("web1", 1, 10),
        env(Command::SetTopology {
            topology: Topology::default(),
            at_ms: 3,
        }),
        env(Command::RecordEvent {
            message: "hello".into(),
            at_ms: 4,
        }),
    ];
    let run = || {
        let mut s = ClusterState::default();
        let out: Vec<Response> = cmds
            .iter()
            .enumerate()
            .map(|(i, c)| s.apply(c, i as u64 + 1, 1))
            .collect();
        (s, out)
    };
    let (a, ra) = run();
    let (b, rb) = run();
    assert_eq!((&a, &ra), (&b, &rb));
    let json = serde_json::to_string(&a).unwrap();
    let back: ClusterState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    let cmd_json = serde_json::to_string(&cmds[1]).unwrap();
    assert!(cmd_json.contains("\"version\":1"), "{cmd_json}");
}

#[test]
fn removing_a_droplet_ends_its_recovery_and_history() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 3), 1, 1);
    let token = opened(&s.apply(&confirm("web1", 3, 10), 2, 1));
    let rm = env(Command::RemoveDroplet {
        name: "web1".into(),
        at_ms: 20,
    });
    assert_eq!(s.apply(&rm, 3, 1), Response::Applied);
    assert!(s.recoveries.is_empty() && s.failures.is_empty());
    // The saga of the removed droplet cannot continue.
    assert!(
        s.apply(&step("web1", token, RecoveryPhase::Fenced), 4, 1)
            .is_rejected()
    );
    // A new droplet with the same name starts from generation 0.
    assert_eq!(s.apply(&upsert("web1", 0), 5, 1), Response::Applied);
    opened(&s.apply(&confirm("web1", 0, 30), 6, 1));
}

#[test]
fn save_saga_needs_the_current_fencing_token_and_an_open_recovery() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 1), 1, 1);
    let token = opened(&s.apply(&confirm("web1", 1, 10), 2, 1));
    let save = |fencing, record: &str| {
        env(Command::SaveSaga {
            name: "web1".into(),
            fencing,
            record: record.into(),
            at_ms: 20,
        })
    };
    assert_eq!(s.apply(&save(token, "{\"a\":1}"), 3, 1), Response::Applied);
    assert_eq!(
        s.apply(&save(token, "{\"a\":1}"), 4, 1),
        Response::Unchanged
    );
    assert_eq!(s.recoveries["web1"].saga.as_deref(), Some("{\"a\":1}"));
    let stale = FencingToken { term: 1, index: 1 };
    assert!(s.apply(&save(stale, "{\"b\":2}"), 5, 1).is_rejected());
    assert_eq!(s.recoveries["web1"].saga.as_deref(), Some("{\"a\":1}"));
    s.apply(&step("web1", token, RecoveryPhase::Done), 6, 1);
    assert!(s.apply(&save(token, "{\"c\":3}"), 7, 1).is_rejected());
}

#[test]
fn a_new_failure_remembers_when_earlier_recoveries_started() {
    let mut s = ClusterState::default();
    s.apply(&upsert("web1", 1), 1, 1);
    let mut index = 2;
    for generation in 1..=(MAX_RECOVERY_HISTORY as u64 + 3) {
        let token = opened(&s.apply(&confirm("web1", generation, generation * 100), index, 1));
        s.apply(&step("web1", token, RecoveryPhase::Done), index + 1, 1);
        index += 2;
    }
    let r = &s.recoveries["web1"];
    assert_eq!(r.earlier_starts_ms.len(), MAX_RECOVERY_HISTORY);
    assert_eq!(r.earlier_starts_ms.last(), Some(&(r.started_at_ms - 100)));
    assert_eq!(r.saga, None, "a new recovery starts without a saga record");
}

#[test]
fn deploys_are_recorded_started_interrupted_and_finished() {
    let mut s = ClusterState::default();
    let started = env(Command::DeployStarted {
        project: "p".into(),
        environment: "uat".into(),
        action: "deploy-uat".into(),
        deployment_json: "{}".into(),
        at_ms: 10,
    });
    let interrupted = env(Command::DeployInterrupted {
        project: "p".into(),
        environment: "uat".into(),
        at_ms: 20,
    });
    let finished = env(Command::DeployFinished {
        project: "p".into(),
        environment: "uat".into(),
        outcome: "interrupted; converged back to v1".into(),
        at_ms: 30,
    });
    assert_eq!(
        s.apply(&finished, 1, 1),
        Response::Unchanged,
        "nothing started"
    );
    assert_eq!(s.apply(&started, 2, 1), Response::Applied);
    assert!(s.deploys["p/uat"].finished_at_ms.is_none());
    assert_eq!(s.apply(&interrupted, 3, 2), Response::Applied);
    assert_eq!(s.apply(&interrupted, 4, 2), Response::Unchanged);
    assert!(s.deploys["p/uat"].interrupted);
    assert_eq!(s.apply(&finished, 5, 2), Response::Applied);
    assert_eq!(s.apply(&finished, 6, 2), Response::Unchanged);
    assert_eq!(s.apply(&interrupted, 7, 2), Response::Unchanged, "done");
    let d = &s.deploys["p/uat"];
    assert_eq!(d.finished_at_ms, Some(30));
    assert_eq!(
        d.outcome.as_deref(),
        Some("interrupted; converged back to v1")
    );
    // A new deploy starts afresh.
    assert_eq!(s.apply(&started, 8, 2), Response::Applied);
    assert!(!s.deploys["p/uat"].interrupted && s.deploys["p/uat"].finished_at_ms.is_none());
    // An old state without the field still parses.
    let mut old = serde_json::to_value(ClusterState::default()).unwrap();
    old.as_object_mut().unwrap().remove("deploys");
    let back: ClusterState = serde_json::from_value(old).unwrap();
    assert!(back.deploys.is_empty());
}
