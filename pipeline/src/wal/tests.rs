//! The log's promises under crashes: torn tails at every offset, flipped bytes, garbage files.

use super::*;
use proptest::prelude::*;

fn opts(segment_bytes: u64) -> Options {
    Options {
        segment_bytes,
        sync: false,
    }
}

/// Writes `n` records of `size` payload bytes, one commit each; payload = seq repeated.
fn write(dir: &Path, n: u64, size: usize, segment_bytes: u64) -> Vec<u64> {
    let (mut wal, _) = Wal::open(dir, opts(segment_bytes)).unwrap();
    let mut seqs = Vec::new();
    for _ in 0..n {
        let seq = wal.next_seq();
        let payload = vec![seq as u8; size];
        seqs.push(wal.stage(1000 + seq, 3, 7, b"t", &payload));
        wal.commit().unwrap();
        wal.maybe_roll().unwrap();
    }
    seqs
}

fn read_all(dir: &Path, from: u64) -> Vec<Record> {
    let mut cursor = Cursor::new(dir.to_path_buf());
    let mut out = Vec::new();
    let mut want = from;
    while let Next::Record(r) = cursor.next(want).unwrap() {
        want = r.seq + 1;
        out.push(r);
    }
    out
}

#[test]
fn reopening_replays_from_the_checkpoint_and_release_deletes_delivered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let seqs = write(dir.path(), 50, 100, 1024);
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    let (mut wal, rec) = Wal::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(
        (rec.checkpoint.w, rec.next_seq, rec.records, rec.items),
        (0, 50, 50, 150)
    );
    assert!(!rec.checkpoint_lost, "the first open wrote one");
    let before = wal.segments();
    assert!(before > 5, "small segments roll: {before}");
    let freed = wal.release(Checkpoint::at(30)).unwrap();
    assert!(freed > 0 && wal.segments() < before);
    let got = read_all(dir.path(), 30);
    assert_eq!(got.first().map(|r| r.seq), Some(30));
    assert_eq!(got.len(), 20);
    assert!(got
        .iter()
        .all(|r| r.payload == vec![r.seq as u8; 100] && r.meta == b"t" && r.flags == 7));
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), opts(1024)).unwrap();
    assert_eq!((rec.checkpoint.w, rec.next_seq, rec.records), (30, 50, 20));
    assert!(!rec.checkpoint_lost);
    assert_eq!(wal.next_seq(), 50);
}

#[test]
fn a_torn_tail_at_any_offset_loses_only_the_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 6, 40, 1 << 20);
    let (_, path) = segment::list(dir.path()).unwrap().remove(0);
    let full = std::fs::read(&path).unwrap();
    let record = record::HEADER as u64 + 1 + 40;
    for cut in segment::FILE_HEADER..full.len() as u64 {
        let case = tempfile::tempdir().unwrap();
        std::fs::write(case.path().join(segment::name(0)), &full[..cut as usize]).unwrap();
        let (wal, rec) = Wal::open(case.path(), opts(1 << 20)).unwrap();
        let whole = (cut - segment::FILE_HEADER) / record;
        assert_eq!(rec.records, whole, "cut at {cut}");
        assert_eq!(
            rec.invalid_bytes,
            cut - segment::FILE_HEADER - whole * record
        );
        assert_eq!(rec.next_seq, whole);
        drop(wal);
        let got = read_all(case.path(), 0);
        assert_eq!(got.len() as u64, whole, "cut at {cut}");
        // Writing goes on after the cut and a reader sees old and new records in order.
        let (mut wal, _) = Wal::open(case.path(), opts(1 << 20)).unwrap();
        wal.stage(0, 1, 0, b"", b"after");
        wal.commit().unwrap();
        let got = read_all(case.path(), 0);
        assert_eq!(got.len() as u64, whole + 1);
        assert_eq!(got.last().unwrap().payload, b"after");
    }
}

#[test]
fn damage_in_an_older_segment_skips_to_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 40, 100, 600);
    let segments = segment::list(dir.path()).unwrap();
    assert!(segments.len() >= 4);
    let (first_of_second, second) = &segments[1];
    let mut bytes = std::fs::read(second).unwrap();
    let at = segment::FILE_HEADER as usize + record::HEADER + 10;
    bytes[at] ^= 0xff;
    std::fs::write(second, &bytes).unwrap();
    let (_, rec) = Wal::open(dir.path(), opts(600)).unwrap();
    assert!(rec.invalid_bytes > 0);
    let got: Vec<u64> = read_all(dir.path(), 0).iter().map(|r| r.seq).collect();
    let (first_of_third, _) = &segments[2];
    assert!(got
        .iter()
        .all(|s| *s < *first_of_second || *s >= *first_of_third));
    assert_eq!(
        got.last(),
        Some(&39),
        "everything after the damaged segment is read: {got:?}"
    );
}

#[test]
fn dropping_the_oldest_segment_counts_what_the_reader_had_not_reached() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), opts(300)).unwrap();
    for _ in 0..20 {
        wal.stage(0, 5, 0, b"", &[0; 100]);
        wal.commit().unwrap();
        wal.maybe_roll().unwrap();
    }
    let before = wal.bytes();
    let d = wal.drop_oldest(|_| 1).unwrap().unwrap();
    assert_eq!(
        d.until, 3,
        "three records of 132 bytes take a segment past 300"
    );
    assert_eq!(
        (d.records, d.items),
        (2, 10),
        "record 0 was handed out already"
    );
    assert_eq!(wal.bytes(), before - d.bytes);
    wal.release(Checkpoint::new(0, [4])).unwrap();
    let d = wal.drop_oldest(|_| 3).unwrap().unwrap();
    assert_eq!(
        (d.until, d.records),
        (6, 2),
        "record 4 was delivered out of order: not lost"
    );
    while wal.drop_oldest(|_| 100).unwrap().is_some() {}
    assert_eq!(wal.segments(), 1, "the active segment stays");
}

#[test]
fn a_segment_that_cannot_be_created_keeps_writing_in_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), opts(100)).unwrap();
    // The next segment's name leads to a device where every write fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", dir.path().join(segment::name(1))).unwrap();
    wal.stage(0, 1, 0, b"", &[1; 200]);
    wal.commit().unwrap();
    assert!(wal.maybe_roll().is_err());
    wal.stage(0, 1, 0, b"", &[2; 200]);
    wal.commit().unwrap();
    std::fs::remove_file(dir.path().join(segment::name(1))).unwrap();
    wal.maybe_roll().unwrap();
    wal.stage(0, 1, 0, b"", &[3; 200]);
    wal.commit().unwrap();
    drop(wal);
    let got: Vec<u8> = read_all(dir.path(), 0)
        .iter()
        .map(|r| r.payload[0])
        .collect();
    assert_eq!(got, vec![1, 2, 3]);
}

#[test]
fn a_lost_checkpoint_replays_everything_rather_than_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 10, 10, 1 << 20);
    let (mut wal, _) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    wal.release(Checkpoint::new(5, [7, 8])).unwrap();
    drop(wal);
    std::fs::write(dir.path().join("checkpoint"), b"garbage!!").unwrap();
    let (_, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert!(rec.checkpoint_lost);
    assert_eq!((rec.checkpoint, rec.records), (Checkpoint::at(0), 10));
}

#[test]
fn records_delivered_out_of_order_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 20, 10, 256);
    let (mut wal, _) = Wal::open(dir.path(), opts(256)).unwrap();
    wal.release(Checkpoint::new(4, [6, 7, 8, 15])).unwrap();
    drop(wal);
    let (mut wal, rec) = Wal::open(dir.path(), opts(256)).unwrap();
    assert_eq!(rec.checkpoint, Checkpoint::new(4, [6, 7, 8, 15]));
    assert_eq!(
        (rec.records, rec.items),
        (12, 36),
        "20 - 4 below w - 4 in ranges"
    );
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    wal.release(Checkpoint::new(4, [6, 7, 8, 15])).unwrap();
    assert!(
        !dir.path().join("checkpoint").exists(),
        "unchanged: not written again"
    );
    wal.release(Checkpoint::new(4, [5, 6, 7, 8, 15])).unwrap();
    assert!(dir.path().join("checkpoint").exists(), "changed: written");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WEIR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes where segments should be: opening and reading never panic, never allocate more
    /// than the file holds, and whatever is read passed its checksum.
    #[test]
    fn garbage_segments_never_panic(
        files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 1..4),
        keep_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (i, mut bytes) in files.into_iter().enumerate() {
            if keep_header && bytes.len() >= 16 {
                bytes[..8].copy_from_slice(b"WEIRWAL\0");
                bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
            }
            std::fs::write(dir.path().join(segment::name(i as u64 * 3)), bytes).unwrap();
        }
        let _ = read_all(dir.path(), 0);
        let (_, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
        let _ = read_all(dir.path(), rec.checkpoint.w);
    }

    /// Valid records with random bytes overwritten and a random cut: never a panic, and every record
    /// read back is one that was written, byte for byte.
    #[test]
    fn corrupted_logs_only_yield_records_that_were_written(
        n in 1u64..20,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), n, 30, 400);
        for (_, path) in segment::list(dir.path()).unwrap() {
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, v) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= v | 1;
            }
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep.max(bytes.len() / 2));
            std::fs::write(&path, bytes).unwrap();
        }
        for r in read_all(dir.path(), 0) {
            prop_assert!(r.seq < n);
            prop_assert_eq!(r.payload, vec![r.seq as u8; 30]);
        }
        let (_, rec) = Wal::open(dir.path(), opts(400)).unwrap();
        prop_assert!(rec.records <= n);
    }
}

#[test]
fn a_delivered_segment_behind_a_record_still_out_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 30, 10, 256);
    let (mut wal, _) = Wal::open(dir.path(), opts(256)).unwrap();
    let firsts: Vec<u64> = segment::list(dir.path())
        .unwrap()
        .into_iter()
        .map(|(first, _)| first)
        .collect();
    assert!(firsts.len() > 3, "{firsts:?}");
    let before = wal.bytes();
    // Record 0 is still out; everything from the second segment to the fourth is delivered.
    let (from, to) = (firsts[1], firsts[3]);
    let freed = wal.release(Checkpoint::new(0, from..to)).unwrap();
    assert!(freed > 0 && wal.bytes() == before - freed);
    let left: Vec<u64> = segment::list(dir.path())
        .unwrap()
        .into_iter()
        .map(|(first, _)| first)
        .collect();
    assert!(left.contains(&firsts[0]) && !left.contains(&firsts[1]) && !left.contains(&firsts[2]));
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), opts(256)).unwrap();
    assert_eq!(rec.records, 30 - (to - from));
    let seqs: Vec<u64> = read_all(dir.path(), 0).iter().map(|r| r.seq).collect();
    let expected: Vec<u64> = (0..30).filter(|s| !(from..to).contains(s)).collect();
    assert_eq!(seqs, expected, "the reader steps over the gap");
}

#[test]
fn a_drained_log_truncates_to_nothing_and_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 5, 100, 1 << 20);
    let (mut wal, _) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(
        wal.truncate_if_drained().unwrap(),
        0,
        "nothing delivered yet"
    );
    wal.release(Checkpoint::at(5)).unwrap();
    let next = wal.next_seq();
    for _ in 0..3 {
        wal.stage(0, 1, 0, b"", &[1; 100]);
    }
    wal.commit().unwrap();
    assert_eq!(
        wal.truncate_if_drained().unwrap(),
        0,
        "8 records, 5 delivered"
    );
    wal.release(Checkpoint::at(next + 3)).unwrap();
    assert!(wal.truncate_if_drained().unwrap() > 0);
    assert_eq!(wal.bytes(), segment::FILE_HEADER, "one empty segment left");
    assert_eq!(wal.next_seq(), next + 3, "numbering goes on");
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!((rec.records, rec.next_seq), (0, next + 3));
}
