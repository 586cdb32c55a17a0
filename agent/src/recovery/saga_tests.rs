//! Unit tests of the pure saga core: tokens, step order, fencing and replacement choices.

use chrono::{TimeZone, Utc};

use super::saga::*;

fn template() -> DropletTemplate {
    DropletTemplate {
        region: "nyc3".into(),
        size: "s-1vcpu-1gb".into(),
        base_image: "ubuntu-24-04-x64".into(),
        ssh_key_ids: vec![1],
        tags: vec!["infra-managed".into()],
        user_data: None,
        vpc_uuid: None,
    }
}

fn saga() -> SagaRecord {
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    SagaRecord::open(
        "web1",
        4,
        Some(77),
        template(),
        FencingToken { term: 3, index: 17 },
        now,
    )
}

#[test]
fn token_tag_is_a_valid_do_tag_and_round_trips() {
    let t = FencingToken { term: 3, index: 17 };
    assert_eq!(t.tag(), "infra-fence:3-17");
    assert!(
        t.tag()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-:".contains(c))
    );
    assert_eq!(FencingToken::from_tag(&t.tag()), Some(t));
    assert_eq!(FencingToken::from_tag("infra-op:3-17"), None);
    assert_eq!(FencingToken::from_tag("infra-fence:x-1"), None);
    assert!(FencingToken { term: 4, index: 1 } > FencingToken { term: 3, index: 90 });
}

#[test]
fn steps_run_in_order_and_a_finished_step_is_never_repeated() {
    let mut s = saga();
    let mut seen = Vec::new();
    for _ in 0..20 {
        match next_step(&s) {
            Decision::Start(step) => {
                seen.push(step);
                assert_eq!(next_step(&s), Decision::Start(step));
                s.at = Some((step, Progress::Started));
                assert_eq!(next_step(&s), Decision::Resume(step));
                s.at = Some((step, Progress::Finished));
            }
            Decision::Resume(step) => panic!("unexpected resume of {step:?}"),
            Decision::Done => break,
        }
    }
    assert_eq!(seen, Step::ALL.to_vec());
    assert!(s.is_finished());
    assert_eq!(next_step(&s), Decision::Done);
}

#[test]
fn take_over_needs_a_newer_token_and_keeps_the_old_ones() {
    let mut s = saga();
    let old = s.token;
    assert!(s.take_over(old).is_err());
    assert!(s.take_over(FencingToken { term: 2, index: 99 }).is_err());
    let new = FencingToken { term: 4, index: 20 };
    s.take_over(new).unwrap();
    assert_eq!(s.token, new);
    assert_eq!(s.all_tokens().collect::<Vec<_>>(), vec![old, new]);
}

#[test]
fn record_serializes_with_version_and_round_trips() {
    let mut s = saga();
    s.at = Some((Step::Replace, Progress::Started));
    s.replacement = Some(Replacement::Create {
        image: SourceImage::Snapshot { id: 9 },
    });
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["version"], SAGA_VERSION);
    assert_eq!(json["at"], serde_json::json!(["replace", "started"]));
    assert_eq!(json["replacement"]["method"], "create");
    let back: SagaRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    assert_eq!(s.new_generation(), 5);
}

#[test]
fn fencing_powers_off_then_destroys() {
    let f = |off, failed| {
        fence_action(FenceFacts {
            droplet_off: off,
            power_off_failed: failed,
        })
    };
    assert_eq!(f(Some(false), false), FenceAction::PowerOff);
    assert_eq!(f(Some(false), true), FenceAction::Destroy);
    assert_eq!(f(Some(true), false), FenceAction::Done(Fence::PoweredOff));
    assert_eq!(f(None, false), FenceAction::Done(Fence::AlreadyGone));
    assert_eq!(f(None, true), FenceAction::Done(Fence::AlreadyGone));
}

#[test]
fn replacement_choice() {
    let c = |old, snap, failed| {
        choose_replacement(
            ReplaceFacts {
                old_droplet: old,
                latest_snapshot: snap,
                rebuild_failed: failed,
            },
            "base-img",
        )
    };
    let snap = SourceImage::Snapshot { id: 5 };
    let base = SourceImage::Base {
        slug: "base-img".into(),
    };
    assert_eq!(
        c(Some(7), Some(5), false),
        Replacement::RebuildInPlace {
            droplet_id: 7,
            image: snap.clone()
        }
    );
    assert_eq!(
        c(None, Some(5), false),
        Replacement::Create {
            image: snap.clone()
        }
    );
    assert_eq!(
        c(Some(7), Some(5), true),
        Replacement::Create { image: snap }
    );
    let r = c(None, None, false);
    assert_eq!(
        r,
        Replacement::Create {
            image: base.clone()
        }
    );
    assert!(r.needs_redeploy());
    let r = c(Some(7), None, false);
    assert!(matches!(
        r,
        Replacement::RebuildInPlace { droplet_id: 7, .. }
    ));
    assert!(r.needs_redeploy());
}

#[test]
fn old_droplet_is_destroyed_only_when_replaced_and_still_there() {
    let mut s = saga();
    s.fence = Some(Fence::PoweredOff);
    s.replacement = Some(Replacement::RebuildInPlace {
        droplet_id: 77,
        image: SourceImage::Snapshot { id: 5 },
    });
    s.new_droplet_id = Some(77);
    assert_eq!(old_needs_destroy(&s), None, "rebuilt in place");
    s.replacement = Some(Replacement::Create {
        image: SourceImage::Snapshot { id: 5 },
    });
    s.new_droplet_id = Some(88);
    assert_eq!(old_needs_destroy(&s), Some(77));
    s.old_destroyed = true;
    assert_eq!(old_needs_destroy(&s), None, "already destroyed");
    s.old_destroyed = false;
    s.fence = Some(Fence::Destroyed);
    assert_eq!(old_needs_destroy(&s), None, "fencing destroyed it");
    s.fence = Some(Fence::PoweredOff);
    s.old_droplet_id = None;
    assert_eq!(old_needs_destroy(&s), None);
}

#[test]
fn outcome_needs_a_replacement() {
    let mut s = saga();
    assert!(s.outcome().is_none());
    s.fence = Some(Fence::PoweredOff);
    s.replacement = Some(Replacement::Create {
        image: SourceImage::Snapshot { id: 5 },
    });
    s.new_droplet_id = Some(88);
    let o = s.outcome().unwrap();
    assert_eq!(
        (o.droplet.as_str(), o.generation, o.droplet_id),
        ("web1", 5, 88)
    );
}

#[test]
fn debug_output_hides_user_data() {
    let mut s = saga();
    s.template.user_data = Some("#cloud-config\njoin_token: s3cr3t".into());
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
}
