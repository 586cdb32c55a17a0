use std::collections::BTreeMap;

use super::*;

const WINDOW: u64 = 2_000;

fn monitors(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    entries
        .iter()
        .map(|(t, ms)| (t.to_string(), ms.iter().map(|m| m.to_string()).collect()))
        .collect()
}

/// Five nodes a..e; each target monitored by three others.
fn five() -> Quorum {
    let mut q = Quorum::new(WINDOW);
    q.set_monitors(&monitors(&[
        ("a", &["b", "c", "d"]),
        ("b", &["c", "d", "e"]),
        ("c", &["d", "e", "a"]),
        ("d", &["e", "a", "b"]),
        ("e", &["a", "b", "c"]),
    ]));
    q
}

fn vote(observer: &str, target: &str, generation: u64, at_ms: u64) -> Vote {
    Vote {
        observer: observer.into(),
        target: target.into(),
        target_generation: generation,
        at_ms,
        observer_sees_down: 1,
    }
}

#[test]
fn votes_needed_is_a_majority_of_at_least_two() {
    assert_eq!(votes_needed(0), None);
    assert_eq!(votes_needed(1), None);
    assert_eq!(votes_needed(2), Some(2));
    assert_eq!(votes_needed(3), Some(2));
    assert_eq!(votes_needed(4), Some(3));
    assert_eq!(votes_needed(5), Some(3));
}

#[test]
fn abstention_threshold_is_half_of_the_peers() {
    // N = 5: up to 2 peers down is fine, 3 is too many.
    assert!(!observer_abstains(5, 2));
    assert!(observer_abstains(5, 3));
    // N = 3: one peer down is fine, two means the observer is isolated.
    assert!(!observer_abstains(3, 1));
    assert!(observer_abstains(3, 2));
}

#[test]
fn majority_of_monitors_confirms_once() {
    let mut q = five();
    q.record_vote(vote("b", "a", 7, 1_000)).unwrap();
    assert!(
        q.evaluate(1_000).is_empty(),
        "one vote of three is not a majority"
    );
    q.record_vote(vote("c", "a", 7, 1_100)).unwrap();
    let confirmed = q.evaluate(1_200);
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].target, "a");
    assert_eq!(confirmed[0].target_generation, 7);
    assert_eq!(confirmed[0].voters, vec!["b".to_string(), "c".to_string()]);
    // A third vote does not confirm the same failure again.
    q.record_vote(vote("d", "a", 7, 1_300)).unwrap();
    assert!(q.evaluate(1_300).is_empty());
    assert_eq!(q.confirmed().count(), 1);
}

#[test]
fn votes_from_non_monitors_do_not_count() {
    let mut q = five();
    assert_eq!(
        q.record_vote(vote("e", "a", 1, 10)),
        Err(VoteRejection::NotAMonitor)
    );
    q.record_vote(vote("b", "a", 1, 10)).unwrap();
    assert!(q.evaluate(20).is_empty());
}

#[test]
fn majority_counts_against_configured_monitors_not_live_view() {
    // Target with 4 monitors needs 3 votes even if one monitor is dead.
    let mut q = Quorum::new(WINDOW);
    q.set_monitors(&monitors(&[("x", &["m1", "m2", "m3", "m4"])]));
    q.record_vote(vote("m1", "x", 1, 0)).unwrap();
    q.record_vote(vote("m2", "x", 1, 0)).unwrap();
    assert!(q.evaluate(10).is_empty());
    q.record_vote(vote("m3", "x", 1, 5)).unwrap();
    assert_eq!(q.evaluate(10).len(), 1);
}

#[test]
fn a_single_monitor_can_never_confirm() {
    let mut q = Quorum::new(WINDOW);
    q.set_monitors(&monitors(&[("x", &["m1"])]));
    let mut v = vote("m1", "x", 1, 0);
    v.observer_sees_down = 0;
    q.record_vote(v).unwrap();
    assert!(q.evaluate(0).is_empty());
}

#[test]
fn votes_outside_the_window_expire() {
    let mut q = five();
    q.record_vote(vote("b", "a", 1, 0)).unwrap();
    q.record_vote(vote("c", "a", 1, WINDOW + 1)).unwrap();
    assert!(q.evaluate(WINDOW + 1).is_empty(), "b's vote expired");
    assert_eq!(q.voters("a"), vec!["c".to_string()]);
}

#[test]
fn heartbeat_after_vote_refutes_it() {
    let mut q = five();
    q.record_vote(vote("b", "a", 1, 100)).unwrap();
    q.record_life("a", 1, 150);
    q.record_vote(vote("c", "a", 1, 120))
        .expect_err("vote older than the heartbeat");
    assert!(q.evaluate(200).is_empty());
    assert!(q.voters("a").is_empty());
    // Votes cast after the heartbeat count again.
    q.record_vote(vote("b", "a", 1, 300)).unwrap();
    q.record_vote(vote("c", "a", 1, 310)).unwrap();
    assert_eq!(q.evaluate(320).len(), 1);
}

#[test]
fn newer_generation_refutes_votes_and_clears_confirmation() {
    let mut q = five();
    q.record_vote(vote("b", "a", 1, 100)).unwrap();
    q.record_vote(vote("c", "a", 1, 100)).unwrap();
    assert_eq!(q.evaluate(100).len(), 1);
    q.record_life("a", 2, 50);
    assert_eq!(q.confirmed().count(), 0, "restarted node is alive again");
    assert_eq!(
        q.record_vote(vote("d", "a", 1, 500)),
        Err(VoteRejection::Refuted),
        "vote against the old generation"
    );
    // The new generation can fail again.
    q.record_vote(vote("b", "a", 2, 600)).unwrap();
    q.record_vote(vote("d", "a", 2, 600)).unwrap();
    let c = q.evaluate(600);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].target_generation, 2);
}

#[test]
fn votes_against_different_generations_do_not_add_up() {
    let mut q = five();
    q.record_vote(vote("b", "a", 1, 100)).unwrap();
    q.record_vote(vote("c", "a", 2, 100)).unwrap();
    assert!(q.evaluate(100).is_empty());
}

#[test]
fn isolated_observer_abstains() {
    let mut q = five();
    let mut isolated = vote("b", "a", 1, 100);
    isolated.observer_sees_down = 3;
    assert_eq!(
        q.record_vote(isolated),
        Err(VoteRejection::ObserverAbstains)
    );
    q.record_vote(vote("c", "a", 1, 100)).unwrap();
    assert!(q.evaluate(100).is_empty(), "only one counted vote");
}

#[test]
fn three_node_cluster_confirms_with_both_other_monitors() {
    let mut q = Quorum::new(WINDOW);
    q.set_monitors(&monitors(&[
        ("a", &["b", "c"]),
        ("b", &["a", "c"]),
        ("c", &["a", "b"]),
    ]));
    q.record_vote(vote("b", "a", 3, 10)).unwrap();
    assert!(q.evaluate(10).is_empty());
    q.record_vote(vote("c", "a", 3, 20)).unwrap();
    assert_eq!(q.evaluate(20)[0].voters, vec!["b", "c"]);
}

#[test]
fn changing_monitor_sets_applies_to_later_votes() {
    let mut q = five();
    let mut m = monitors(&[("a", &["b", "c", "d"])]);
    q.record_vote(vote("b", "a", 1, 0)).unwrap();
    m.insert("a".into(), vec!["c".into(), "d".into(), "e".into()]);
    q.set_monitors(&m);
    q.record_vote(vote("c", "a", 1, 0)).unwrap();
    assert!(
        q.evaluate(0).is_empty(),
        "b is no longer a monitor, its vote does not count"
    );
    q.record_vote(vote("e", "a", 1, 0)).unwrap();
    assert_eq!(q.evaluate(0)[0].voters, vec!["c", "e"]);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

    fn arb_monitors() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
        proptest::collection::btree_map(
            0..NAMES.len(),
            proptest::collection::btree_set(0..NAMES.len(), 0..5),
            1..6,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(t, ms)| {
                    let monitors = ms
                        .into_iter()
                        .filter(|&x| x != t)
                        .map(|x| NAMES[x].to_string());
                    (NAMES[t].to_string(), monitors.collect())
                })
                .collect()
        })
    }

    fn arb_votes() -> impl Strategy<Value = Vec<Vote>> {
        proptest::collection::vec(
            (
                0..NAMES.len(),
                0..NAMES.len(),
                1u64..3,
                0u64..5_000,
                0u32..4,
            ),
            0..30,
        )
        .prop_map(|vs| {
            vs.into_iter()
                .map(|(o, t, g, at, down)| Vote {
                    observer: NAMES[o].into(),
                    target: NAMES[t].into(),
                    target_generation: g,
                    at_ms: at,
                    observer_sees_down: down,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn confirmations_always_rest_on_a_monitor_majority(
            monitors in arb_monitors(),
            votes in arb_votes(),
        ) {
            let mut q = Quorum::new(WINDOW);
            q.set_monitors(&monitors);
            let mut counted = Vec::new();
            for v in votes {
                if q.record_vote(v.clone()).is_ok() {
                    counted.push(v);
                }
            }
            for c in q.evaluate(5_000) {
                let ms = &monitors[&c.target];
                let needed = votes_needed(ms.len()).expect("a quorum needs 2 monitors");
                prop_assert!(needed >= 2);
                prop_assert!(c.voters.len() >= needed);
                let mut distinct = c.voters.clone();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), c.voters.len());
                for voter in &c.voters {
                    prop_assert!(ms.contains(voter), "{} is no monitor of {}", voter, c.target);
                    let v = counted
                        .iter()
                        .rev()
                        .find(|v| &v.observer == voter && v.target == c.target)
                        .expect("a counted vote");
                    prop_assert!(!observer_abstains(q.cluster_size(), v.observer_sees_down as usize));
                    prop_assert!(5_000 - v.at_ms <= WINDOW);
                }
            }
        }

        #[test]
        fn a_newer_generation_refutes_everything(
            monitors in arb_monitors(),
            votes in arb_votes(),
        ) {
            let mut q = Quorum::new(WINDOW);
            q.set_monitors(&monitors);
            for v in votes {
                let _ = q.record_vote(v);
            }
            for target in monitors.keys() {
                q.record_life(target, 99, 0);
            }
            prop_assert!(q.evaluate(5_000).is_empty());
            prop_assert_eq!(q.confirmed().count(), 0);
        }
    }
}
