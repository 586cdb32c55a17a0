//! Property tests of `ClusterState::apply` over random command sequences.

use proptest::prelude::*;

use super::*;

const NAMES: [&str; 3] = ["master", "p-web1", "p-web2"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(&NAMES[..]).prop_map(str::to_string)
}

fn phase() -> impl Strategy<Value = RecoveryPhase> {
    prop_oneof![
        Just(RecoveryPhase::Fenced),
        Just(RecoveryPhase::Restoring {
            snapshot_id: "s".into()
        }),
        (1u64..5).prop_map(|id| RecoveryPhase::Restored {
            provider_id: id,
            ip: format!("10.0.0.{id}")
        }),
        Just(RecoveryPhase::Done),
        Just(RecoveryPhase::Failed {
            reason: "gave up".into()
        }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (name(), 0u64..4).prop_map(|(name, generation)| Command::UpsertDroplet {
            name,
            provider_id: Some(generation),
            ip: None,
            generation,
            status: DropletStatus::Active,
            at_ms: 1,
        }),
        (name(), 0u64..4).prop_map(|(name, generation)| Command::ConfirmFailure {
            name,
            generation,
            at_ms: 2,
        }),
        name().prop_map(|name| Command::TakeOverRecovery { name, at_ms: 3 }),
        // Steps use a token chosen from recent entries (index 0..40, term 1..3).
        (name(), 1u64..3, 0u64..40, phase()).prop_map(|(name, term, index, phase)| {
            Command::RecoveryStep {
                name,
                fencing: FencingToken { term, index },
                phase,
                at_ms: 4,
            }
        }),
        name().prop_map(|name| Command::RemoveDroplet { name, at_ms: 5 }),
        (name(), 0u64..3).prop_map(|(droplet, i)| Command::RecordSnapshot {
            droplet,
            snapshot_id: format!("id{i}"),
            name: format!("snap{i}"),
            at_ms: 6 + i,
        }),
    ]
}

proptest! {
    #[test]
    fn apply_is_deterministic_and_keeps_invariants(
        cmds in prop::collection::vec((command(), 1u64..3), 0..40)
    ) {
        let run = || {
            let mut s = ClusterState::default();
            let mut term = 1;
            let out: Vec<Response> = cmds
                .iter()
                .enumerate()
                .map(|(i, (c, bump))| {
                    term = term.max(*bump); // terms never go backwards
                    s.apply(&CommandEnvelope::new(c.clone()), i as u64 + 1, term)
                })
                .collect();
            (s, out)
        };
        let (a, ra) = run();
        let (b, rb) = run();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(ra, rb);

        // Persisted form round-trips.
        let back: ClusterState = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        prop_assert_eq!(&back, &a);

        for (name, r) in &a.recoveries {
            // An open recovery is never finished, a closed one is terminal.
            prop_assert_eq!(r.is_open(), !r.phase.is_terminal());
            // Every recovery started from a confirmed failure of its generation.
            let f = &a.failures[name];
            prop_assert_eq!(f.generation, r.generation);
            prop_assert!(r.fencing.index as usize <= cmds.len());
            if let Some(d) = a.droplets.get(name) {
                prop_assert!(d.generation >= r.generation);
            }
        }
        prop_assert!(a.events.len() <= MAX_EVENTS);
        for list in a.snapshots.values() {
            prop_assert!(list.len() <= MAX_SNAPSHOTS);
        }
    }
}
