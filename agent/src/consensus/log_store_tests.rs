use std::fs;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};

use super::*;
use crate::consensus::state_machine::StateMachineStore;
use crate::state::{Command, CommandEnvelope};

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(CommandEnvelope::new(Command::RecordEvent {
            message: format!("e{index}"),
            at_ms: index,
        })),
    }
}

/// Appends without going through openraft's flush callback (which only
/// openraft can construct): the same code path `append` uses.
fn append(store: &LogStore, entries: Vec<Entry>) {
    store.lock().append(entries).unwrap();
}

async fn indexes(store: &mut LogStore) -> Vec<u64> {
    store
        .try_get_log_entries(0..u64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

#[tokio::test]
async fn entries_vote_truncate_and_purge_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = LogStore::open(dir.path()).unwrap();
        append(&s, (1..=10).map(|i| entry(1, i)).collect());
        s.save_vote(&Vote::new(3, 42)).await.unwrap();
        s.truncate(log_id(1, 9)).await.unwrap();
        s.purge(log_id(1, 3)).await.unwrap();
        append(&s, vec![entry(2, 9)]);
    }
    let mut s = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut s).await, (4..=9).collect::<Vec<_>>());
    assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(3, 42)));
    let state = s.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 9)));
}

#[tokio::test]
async fn committed_hint_survives_reopen_and_garbage_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = LogStore::open(dir.path()).unwrap();
        s.save_committed(Some(log_id(1, 7))).await.unwrap();
    }
    let mut s = LogStore::open(dir.path()).unwrap();
    assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 7)));
    drop(s);
    fs::write(dir.path().join(COMMITTED_FILE), b"\x05\0\0\0garbage").unwrap();
    let mut s = LogStore::open(dir.path()).unwrap();
    assert_eq!(s.read_committed().await.unwrap(), None);
}

#[tokio::test]
async fn purge_everything_keeps_last_log_id() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = LogStore::open(dir.path()).unwrap();
        append(&s, (1..=5).map(|i| entry(1, i)).collect());
        s.purge(log_id(1, 5)).await.unwrap();
    }
    let mut s = LogStore::open(dir.path()).unwrap();
    let state = s.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    assert!(indexes(&mut s).await.is_empty());
}

#[tokio::test]
async fn truncated_tail_record_is_ignored_on_load() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path()).unwrap();
        append(&s, (1..=3).map(|i| entry(1, i)).collect());
    }
    let path = dir.path().join(LOG_FILE);
    let full = fs::read(&path).unwrap();
    // Simulate a crash in the middle of writing entry 3.
    fs::write(&path, &full[..full.len() - 5]).unwrap();
    {
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![1, 2]);
        // The torn bytes were dropped from the file: appends continue cleanly.
        append(&s, vec![entry(2, 3)]);
    }
    let mut s = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut s).await, vec![1, 2, 3]);
    let last = s.get_log_state().await.unwrap().last_log_id;
    assert_eq!(last, Some(log_id(2, 3)));
}

#[tokio::test]
async fn crc_mismatch_inside_the_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path()).unwrap();
        append(&s, (1..=3).map(|i| entry(1, i)).collect());
    }
    let path = dir.path().join(LOG_FILE);
    let mut data = fs::read(&path).unwrap();
    let decoded = frame::decode(&data).unwrap();
    // Flip one byte inside the payload of the second record (entry 1).
    let offset = 8 + decoded.records[0].len() + 8 + 3;
    data[offset] ^= 0x20;
    fs::write(&path, &data).unwrap();
    let err = LogStore::open(dir.path())
        .err()
        .expect("corruption must be reported");
    let msg = err.to_string();
    assert!(msg.contains("checksum mismatch"), "{msg}");
    assert!(msg.contains("raft-log"), "{msg}");
}

#[tokio::test]
async fn corrupt_vote_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = LogStore::open(dir.path()).unwrap();
        s.save_vote(&Vote::new(1, 1)).await.unwrap();
    }
    let path = dir.path().join(VOTE_FILE);
    let mut data = fs::read(&path).unwrap();
    let last = data.len() - 2;
    data[last] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let msg = LogStore::open(dir.path()).err().expect("error").to_string();
    assert!(msg.contains("raft-vote"), "{msg}");
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("open log");
        let sm = StateMachineStore::open(dir.path()).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}
