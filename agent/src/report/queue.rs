//! The on-disk report queue: reports wait here, in order, until the
//! collector takes them.
//!
//! Two files in one private directory:
//!
//! - `queue`: records appended one after another, each
//!   `len: u32 LE | crc32(seq ‖ payload): u32 LE | seq: u64 LE | payload`,
//!   fsynced before [`Queue::push`] returns. A crash mid-append leaves a
//!   short or mis-summed last record: it is detected on open and cut off,
//!   and it was never acknowledged. Anything after a bad record is ignored.
//! - `cursor`: `{"next_seq", "delivered_before", "dropped"}` written
//!   atomically (`fsutil::write_atomic`): records with `seq <
//!   delivered_before` are done (delivered, refused, or dropped when full).
//!
//! Sequence numbers live in the records, not positions, so compaction
//! (rewriting `queue` with only pending records, atomically) never
//! disagrees with the cursor, whichever of the two a crash leaves newer.

use std::collections::VecDeque;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};

/// Bounds: when either would be exceeded, the oldest pending record goes.
pub const MAX_RECORDS: usize = 1000;
pub const MAX_BYTES: u64 = 1024 * 1024;
/// The queue file is compacted once this much of it is done.
const COMPACT_DONE_BYTES: u64 = 64 * 1024;
const HEADER: usize = 16;
/// Largest queue file read on open: pending data plus a done prefix.
const MAX_FILE_BYTES: u64 = 4 * MAX_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("cannot append to {path}: {source}")]
    Append { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid queue cursor: {reason}")]
    Cursor { path: PathBuf, reason: String },
    #[error("a report of {0} bytes is larger than the whole queue")]
    TooLarge(usize),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The sequence number the next record gets.
    next_seq: u64,
    /// Every record below this is done.
    delivered_before: u64,
    /// Records dropped and not yet told to the collector.
    dropped: u64,
}

#[derive(Debug)]
pub struct Queue {
    file: PathBuf,
    cursor_file: PathBuf,
    cursor: Cursor,
    pending: VecDeque<(u64, Vec<u8>)>,
    pending_bytes: u64,
    /// Length of the valid part of the queue file.
    file_len: u64,
    /// Whether opening found (and cut off) a torn last record.
    pub recovered_torn_record: bool,
}

impl Queue {
    /// Opens (creating if needed) the queue in `dir`.
    pub fn open(dir: &Path) -> Result<Self, QueueError> {
        fsutil::ensure_private_dir(dir)?;
        let file = dir.join("queue");
        let cursor_file = dir.join("cursor");
        let mut cursor = match fsutil::read_capped(&cursor_file, 4096)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| QueueError::Cursor {
                path: cursor_file.clone(),
                reason: e.to_string(),
            })?,
            None => Cursor::default(),
        };
        let bytes = fsutil::read_capped(&file, MAX_FILE_BYTES)?.unwrap_or_default();
        let (records, valid_len) = parse(&bytes);
        let recovered_torn_record = valid_len < bytes.len();
        let mut pending = VecDeque::new();
        let mut pending_bytes = 0;
        for (seq, payload) in records {
            cursor.next_seq = cursor.next_seq.max(seq + 1);
            if seq >= cursor.delivered_before {
                pending_bytes += record_len(payload.len());
                pending.push_back((seq, payload.to_vec()));
            }
        }
        let mut queue = Self {
            file,
            cursor_file,
            cursor,
            pending,
            pending_bytes,
            file_len: valid_len as u64,
            recovered_torn_record,
        };
        if recovered_torn_record {
            // Cut the torn tail so the next append follows a good record.
            queue.rewrite()?;
        }
        Ok(queue)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Dropped reports not yet reported.
    pub fn dropped(&self) -> u64 {
        self.cursor.dropped
    }

    /// Builds a record with the dropped count so far (which it then carries,
    /// so the count restarts at 0) and appends it durably. Drops the oldest
    /// pending records first when the queue is full. Returns the record's
    /// sequence number.
    pub fn push_with(&mut self, build: impl FnOnce(u64) -> Vec<u8>) -> Result<u64, QueueError> {
        let carried = self.cursor.dropped;
        let payload = build(carried);
        let size = record_len(payload.len());
        if size > MAX_BYTES {
            return Err(QueueError::TooLarge(payload.len()));
        }
        let mut dropped_now = 0;
        while self.pending.len() >= MAX_RECORDS || self.pending_bytes + size > MAX_BYTES {
            let Some((seq, old)) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= record_len(old.len());
            self.cursor.delivered_before = seq + 1;
            dropped_now += 1;
        }
        if self.file_len + size > MAX_FILE_BYTES {
            self.rewrite()?;
        }
        let seq = self.cursor.next_seq;
        self.append(&encode(seq, &payload))?;
        self.cursor.next_seq = seq + 1;
        self.cursor.dropped = self.cursor.dropped - carried + dropped_now;
        self.pending_bytes += size;
        self.pending.push_back((seq, payload));
        if carried > 0 || dropped_now > 0 {
            self.save_cursor()?;
        }
        Ok(seq)
    }

    /// The oldest pending record.
    pub fn front(&self) -> Option<(u64, &[u8])> {
        self.pending.front().map(|(seq, p)| (*seq, p.as_slice()))
    }

    /// Marks the oldest pending record done (delivered). `seq` must be the
    /// front's; anything else is ignored (a stale answer).
    pub fn ack(&mut self, seq: u64) -> Result<bool, QueueError> {
        self.finish(seq, false)
    }

    /// Marks the front record done without delivery (the collector refused
    /// it); it counts as dropped.
    pub fn reject(&mut self, seq: u64) -> Result<bool, QueueError> {
        self.finish(seq, true)
    }

    fn finish(&mut self, seq: u64, dropped: bool) -> Result<bool, QueueError> {
        if self.pending.front().map(|(s, _)| *s) != Some(seq) {
            return Ok(false);
        }
        if let Some((_, p)) = self.pending.pop_front() {
            self.pending_bytes -= record_len(p.len());
        }
        self.cursor.delivered_before = seq + 1;
        if dropped {
            self.cursor.dropped += 1;
        }
        self.save_cursor()?;
        let done_bytes = self.file_len - self.pending_bytes.min(self.file_len);
        if (self.pending.is_empty() && self.file_len > 0) || done_bytes > COMPACT_DONE_BYTES {
            self.rewrite()?;
        }
        Ok(true)
    }

    fn save_cursor(&self) -> Result<(), QueueError> {
        let bytes = serde_json::to_vec(&self.cursor).map_err(|e| QueueError::Cursor {
            path: self.cursor_file.clone(),
            reason: e.to_string(),
        })?;
        fsutil::write_atomic(&self.cursor_file, &bytes)?;
        Ok(())
    }

    /// Replaces the queue file with the pending records only.
    fn rewrite(&mut self) -> Result<(), QueueError> {
        let mut bytes = Vec::with_capacity(self.pending_bytes as usize);
        for (seq, payload) in &self.pending {
            bytes.extend_from_slice(&encode(*seq, payload));
        }
        fsutil::write_atomic(&self.file, &bytes)?;
        self.file_len = bytes.len() as u64;
        // The cursor's next_seq must survive even when the file is empty.
        self.save_cursor()
    }

    /// Writes one record after the valid part of the file and fsyncs it. On
    /// failure the file is cut back, so a half-written record never sits in
    /// front of the next one.
    fn append(&mut self, record: &[u8]) -> Result<(), QueueError> {
        let err = |source| QueueError::Append {
            path: self.file.clone(),
            source,
        };
        let mut file = fsutil::open_private(&self.file).map_err(err)?;
        let result = (|| {
            file.seek(SeekFrom::Start(self.file_len))?;
            file.write_all(record)?;
            file.sync_data()
        })();
        if let Err(e) = result {
            let _ = file.set_len(self.file_len);
            let _ = file.sync_data();
            return Err(err(e));
        }
        self.file_len += record.len() as u64;
        Ok(())
    }
}

fn record_len(payload: usize) -> u64 {
    (HEADER + payload) as u64
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The good records, in order, and where the good part of `bytes` ends.
fn parse(bytes: &[u8]) -> (Vec<(u64, &[u8])>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    let mut last_seq = None;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let len = word(0) as usize;
        let crc = word(4);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&header[8..16]);
        let seq = u64::from_le_bytes(seq_bytes);
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if checksum(seq, payload) != crc || last_seq.is_some_and(|l| seq <= l) {
            break;
        }
        last_seq = Some(seq);
        records.push((seq, payload));
        at += HEADER + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(q: &Queue) -> Vec<String> {
        q.pending
            .iter()
            .map(|(_, p)| String::from_utf8(p.clone()).unwrap())
            .collect()
    }

    fn push(q: &mut Queue, text: &str) -> u64 {
        q.push_with(|_| text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn records_survive_reopen_in_order_and_acks_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        let a = push(&mut q, "a");
        push(&mut q, "b");
        push(&mut q, "c");
        assert!(q.ack(a).unwrap());
        assert!(!q.ack(a).unwrap(), "a stale ack is ignored");
        drop(q);
        let mut q = Queue::open(dir.path()).unwrap();
        assert!(!q.recovered_torn_record);
        assert_eq!(payloads(&q), ["b", "c"]);
        let (seq, _) = q.front().unwrap();
        q.ack(seq).unwrap();
        let (seq, _) = q.front().unwrap();
        q.ack(seq).unwrap();
        assert!(q.is_empty());
        // Emptied: the file is compacted, the sequence keeps counting.
        assert_eq!(
            std::fs::metadata(dir.path().join("queue")).unwrap().len(),
            0
        );
        drop(q);
        let mut q = Queue::open(dir.path()).unwrap();
        assert!(q.is_empty());
        assert_eq!(push(&mut q, "d"), 3);
    }

    #[test]
    fn a_torn_last_record_is_discarded_at_every_cut_and_acknowledged_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        push(&mut q, "first");
        push(&mut q, "second");
        drop(q);
        let file = dir.path().join("queue");
        let good = std::fs::read(&file).unwrap();
        let third = encode(2, b"third, never acknowledged");
        // Every prefix of the third record: a crash at any byte of the write.
        for cut in 1..third.len() {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&third[..cut]);
            std::fs::write(&file, &bytes).unwrap();
            let mut q = Queue::open(dir.path()).unwrap();
            assert!(q.recovered_torn_record, "cut {cut}");
            assert_eq!(payloads(&q), ["first", "second"], "cut {cut}");
            assert_eq!(std::fs::read(&file).unwrap(), good, "tail cut off");
            // The next append lands after the good records and is readable.
            push(&mut q, "next");
            drop(q);
            let q = Queue::open(dir.path()).unwrap();
            assert_eq!(payloads(&q), ["first", "second", "next"], "cut {cut}");
            std::fs::write(&file, &good).unwrap();
        }
    }

    #[test]
    fn a_flipped_bit_ends_the_readable_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        push(&mut q, "one");
        push(&mut q, "two");
        drop(q);
        let file = dir.path().join("queue");
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let q = Queue::open(dir.path()).unwrap();
        assert_eq!(payloads(&q), ["one"]);
    }

    #[test]
    fn when_full_the_oldest_go_and_the_next_report_carries_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        for i in 0..MAX_RECORDS + 1 {
            q.push_with(|carried| {
                assert_eq!(carried, 0);
                format!("r{i}").into_bytes()
            })
            .unwrap();
        }
        assert_eq!(q.len(), MAX_RECORDS);
        assert_eq!(q.dropped(), 1, "r0 went to make room");
        assert_eq!(payloads(&q)[0], "r1");
        drop(q);
        let mut q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.dropped(), 1, "the count survives a restart");
        let mut seen = None;
        q.push_with(|carried| {
            seen = Some(carried);
            b"carrier".to_vec()
        })
        .unwrap();
        assert_eq!(seen, Some(1), "the next report carries the count");
        assert_eq!(q.dropped(), 1, "the carrier itself pushed r1 out");
        assert_eq!(payloads(&q)[0], "r2");
        q.push_with(|carried| {
            assert_eq!(carried, 1);
            b"next".to_vec()
        })
        .unwrap();
        // A refused report counts as dropped too.
        let before = q.dropped();
        let (seq, _) = q.front().unwrap();
        q.reject(seq).unwrap();
        assert_eq!(q.dropped(), before + 1);
    }

    #[test]
    fn the_byte_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        let big = vec![b'x'; 300 * 1024];
        for _ in 0..5 {
            q.push_with(|_| big.clone()).unwrap();
        }
        assert_eq!(q.len(), 3);
        assert!(q.pending_bytes <= MAX_BYTES);
        assert!(matches!(
            q.push_with(|_| vec![0; MAX_BYTES as usize]),
            Err(QueueError::TooLarge(_))
        ));
    }
}
