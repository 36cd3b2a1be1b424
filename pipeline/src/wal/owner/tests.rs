use super::*;
use crate::ticket::Completion;
use crate::wal::follower::IDLE;
use crate::wal::{checkpoint, Checkpoint, Follower, Handed, Lifecycle, LogHandle, Options, Step};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;

/// Appends are payloads; refusals are recorded.
struct Plain(Arc<Mutex<Vec<Refusal>>>);

impl Hooks for Plain {
    type Append = Vec<u8>;
    fn parts(a: &Vec<u8>) -> Parts<'_> {
        Parts {
            items: 1,
            flags: 0,
            meta: &[],
            payload: a,
        }
    }
    fn refuse(&mut self, _: Vec<u8>, why: Refusal) {
        self.0.lock().unwrap().push(why);
    }
    fn settle(&mut self, _: Vec<Staged<Vec<u8>>>, ok: bool) {
        assert!(ok);
    }
    fn disk_error(&mut self, op: &'static str, error: &io::Error) {
        panic!("{op}: {error}");
    }
}

fn cadence() -> Cadence {
    Cadence {
        commit_interval: Duration::ZERO,
        commit_bytes: 1 << 20,
        commit_each: false,
        // Long: only the checkpoints the test asks for (finish) are written.
        checkpoint_interval: Duration::from_secs(3600),
        completion_checkpoint: None,
        truncate_drained: false,
        max_bytes: 1 << 30,
        drop_oldest: false,
    }
}

struct Log {
    handle: LogHandle<Vec<u8>, mpsc::SyncSender<Msg<Vec<u8>>>>,
    follower: Follower<()>,
    refused: Arc<Mutex<Vec<Refusal>>>,
}

fn open(dir: &Path, cadence: Cadence) -> Log {
    let opts = Options {
        segment_bytes: 1 << 20,
        sync: false,
    };
    let (wal, recovered) = Wal::open(dir, opts).unwrap();
    let state = LogState::new(&recovered);
    let refused = Arc::default();
    let owner = Owner::new(
        wal,
        &recovered,
        state.clone(),
        cadence,
        Plain(Arc::clone(&refused)),
    );
    let (tx, rx) = mpsc::sync_channel(8);
    let thread = owner.spawn("test-owner".into(), rx, || {}).unwrap();
    let follower = Follower::new(state.clone(), dir.to_path_buf(), recovered.checkpoint);
    Log {
        handle: LogHandle::new(tx, state, vec![thread]),
        follower,
        refused,
    }
}

fn none() -> impl FnMut() -> Option<Handed<()>> {
    || None
}

fn disk(step: Step<()>) -> crate::wal::Record {
    match step {
        Step::Disk(r) => r,
        Step::Memory(_) => panic!("nothing was handed over"),
        Step::ReadError(e) => panic!("{e}"),
        Step::End => panic!("ended early"),
    }
}

#[test]
fn the_follower_is_woken_by_a_commit_not_by_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cadence());
    let rounds = 40;
    let start = Instant::now();
    for n in 0..rounds {
        log.handle.send(Msg::Append(vec![n as u8; 10])).unwrap();
        let r = disk(log.follower.next(&mut none()));
        assert_eq!((r.seq, r.payload[0]), (n, n as u8));
    }
    let took = start.elapsed();
    // Waiting out the timer would cost IDLE / 2 a round on average, 1 s in all.
    assert!(
        took < IDLE * rounds as u32 / 4,
        "{took:?} for {rounds} rounds"
    );
    log.handle.finish();
}

#[test]
fn finish_after_close_writes_the_last_checkpoint_and_the_follower_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cadence());
    for n in 0..5u8 {
        log.handle.send(Msg::Append(vec![n])).unwrap();
    }
    log.handle.close();
    let state = log.handle.state().clone();
    let mut seen = Vec::new();
    loop {
        match log.follower.next(&mut none()) {
            Step::End => break,
            step => seen.push(disk(step).seq),
        }
    }
    assert_eq!(
        seen,
        vec![0, 1, 2, 3, 4],
        "everything committed, then the end"
    );
    for seq in [0, 1, 2, 4] {
        state.progress().complete(seq);
    }
    log.handle.send(Msg::Append(vec![9])).unwrap();
    log.handle.finish();
    assert_eq!(
        *log.refused.lock().unwrap(),
        vec![Refusal::Closed],
        "nothing is appended after close"
    );
    assert_eq!(
        checkpoint::read(dir.path()),
        Some(Checkpoint::new(3, [4])),
        "the last checkpoint names what was complete"
    );

    let again = open(dir.path(), cadence());
    let mut follower = again.follower;
    let handle = again.handle;
    let r = disk(follower.next(&mut none()));
    assert_eq!(r.seq, 3, "only the record still out is read again");
    handle.close();
    assert!(
        matches!(follower.next(&mut none()), Step::End),
        "4 is passed over"
    );
    handle.finish();
}

#[test]
fn abandon_stops_a_waiting_follower_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), cadence());
    let mut follower = log.follower;
    let waiting = std::thread::spawn(move || {
        let start = Instant::now();
        let step = follower.next(&mut none());
        (matches!(step, Step::End), start.elapsed())
    });
    std::thread::sleep(IDLE * 3);
    let start = Instant::now();
    log.handle.abandon();
    let (ended, _) = waiting.join().unwrap();
    assert!(ended);
    assert!(start.elapsed() < IDLE, "woken, not timed out");
    log.handle.finish();
}

#[test]
fn a_hand_over_is_taken_in_order_and_what_it_skips_is_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cadence());
    for n in 0..3u8 {
        log.handle.send(Msg::Append(vec![n])).unwrap();
    }
    while log.handle.state().committed() < 3 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // As if the hand-over queue had room only for the last record.
    let mut queue = vec![Handed {
        seq: 2,
        ts_ms: 0,
        item: (),
    }];
    let mut handed = || queue.pop();
    assert_eq!(disk(log.follower.next(&mut handed)).seq, 0);
    assert_eq!(disk(log.follower.next(&mut handed)).seq, 1);
    assert!(matches!(log.follower.next(&mut handed), Step::Memory(h) if h.seq == 2));
    log.handle.abandon();
    assert!(matches!(log.follower.next(&mut none()), Step::End));
    log.handle.finish();
}

#[test]
fn a_full_log_refuses_and_a_dead_owner_closes_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let small = Cadence {
        max_bytes: 100,
        ..cadence()
    };
    let mut log = open(dir.path(), small);
    log.handle.send(Msg::Append(vec![0; 10])).unwrap();
    log.handle.send(Msg::Append(vec![0; 200])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.refused.lock().unwrap().is_empty() || log.handle.state().committed() < 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    log.handle.send(Msg::Crash).unwrap();
    assert_eq!(disk(log.follower.next(&mut none())).seq, 0);
    assert!(
        matches!(log.follower.next(&mut none()), Step::End),
        "the owner died: what was committed is handed out, then the end"
    );
    let state = log.handle.state();
    assert!(state.dead() && !state.healthy());
    assert_eq!(*log.refused.lock().unwrap(), vec![Refusal::Full]);
    assert!(log.handle.send(Msg::Close).is_err());
    log.handle.finish();
}
