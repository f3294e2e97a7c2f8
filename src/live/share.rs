//! A large fan-out's socket writes, shared between the log reader and one helper thread.
//!
//! The writes of a message to a 200-member group are most of its delivery time: ~8 µs each,
//! nearly all of it the kernel's loopback or TCP work, one after the other on the reader's thread
//! while the other core idles. The reader now offers the list to a helper thread and both take
//! writes from it one at a time. A helper that wakes late (or is busy) costs nothing but the
//! offer: the reader simply does more of the writes itself. The reader returns only when every
//! write is done (at most one is then still in the helper's hands, a few microseconds), so the
//! next event's writes never overtake this one's on any stream.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// Fan-outs with fewer writes than this are written by the reader alone: the helper's wake-up
/// (~0.1–0.25 ms on an idle virtual machine) would come after the reader had finished.
pub const SHARE_FROM: usize = 64;

/// One write of a fan-out; true when it was delivered (written or queued).
pub trait Write: Send + Sync + 'static {
    /// Does the write (never waits).
    fn write(&self) -> bool;
}

/// A fan-out's writes, claimed one at a time by whoever is free.
struct Writes<T> {
    items: Vec<T>,
    /// The next write to claim.
    next: AtomicUsize,
    /// Writes finished.
    finished: AtomicUsize,
    /// Writes that delivered.
    delivered: AtomicU64,
    /// The reader, woken by the helper when it finishes the last write.
    reader: Thread,
}

impl<T: Write> Writes<T> {
    fn work(&self, helper: bool) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = self.items.get(i) else {
                return;
            };
            // Counted as finished even if the write panics, so the reader never waits for it
            // (a helper that died is then no longer offered anything: its channel is closed).
            let _finished = Finished { job: self, helper };
            if item.write() {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Marks one claimed write finished when dropped.
struct Finished<'a, T> {
    job: &'a Writes<T>,
    helper: bool,
}

impl<T> Drop for Finished<'_, T> {
    fn drop(&mut self) {
        let finished = self.job.finished.fetch_add(1, Ordering::Release) + 1;
        if self.helper && finished == self.job.items.len() {
            self.job.reader.unpark();
        }
    }
}

/// The helper thread, started at the first large fan-out (none on a single core).
pub struct Helper<T> {
    tx: OnceLock<Option<SyncSender<Arc<Writes<T>>>>>,
    apart: Arc<Apart>,
}

impl<T> Default for Helper<T> {
    fn default() -> Self {
        Helper {
            tx: OnceLock::new(),
            apart: Arc::default(),
        }
    }
}

/// Keeps the helper off the reader's CPU. Woken by the reader, the helper was at times placed on
/// the reader's own CPU (the scheduler's affine wake-up) and took turns with it there, while the
/// other CPU idled: those fan-outs took as long as the reader alone (the tail of the time from
/// the first stream to the last). Before offering a job the reader allows the helper every CPU
/// but its own; the mask changes only when the reader has moved.
#[derive(Default)]
struct Apart {
    /// The helper's thread id and the CPUs it may use at all (its mask when it started).
    #[cfg(target_os = "linux")]
    helper: OnceLock<(nix::unistd::Pid, nix::sched::CpuSet)>,
    /// The CPU the helper is kept off (`usize::MAX`: none yet).
    #[cfg(target_os = "linux")]
    off: AtomicUsize,
}

impl Apart {
    /// On the helper thread, as it starts.
    fn started(&self) {
        #[cfg(target_os = "linux")]
        {
            use nix::sched::sched_getaffinity;
            use nix::unistd::{Pid, gettid};
            self.off.store(usize::MAX, Ordering::Relaxed);
            if let Ok(set) = sched_getaffinity(Pid::from_raw(0)) {
                let _ = self.helper.set((gettid(), set));
            }
        }
    }

    /// On the reader, before it offers a job: keep the helper off this CPU.
    fn keep_off_mine(&self) {
        #[cfg(target_os = "linux")]
        {
            use nix::sched::{CpuSet, sched_getcpu, sched_setaffinity};
            let (Some((tid, allowed)), Ok(mine)) = (self.helper.get(), sched_getcpu()) else {
                return;
            };
            if self.off.swap(mine, Ordering::Relaxed) == mine {
                return;
            }
            let mut others = *allowed;
            if others.unset(mine).is_err() {
                return;
            }
            // Alone on its CPUs (or not allowed to change them): leave it where it may go.
            let set = if others == CpuSet::new() {
                allowed
            } else {
                &others
            };
            if sched_setaffinity(*tid, set).is_err() {
                self.off.store(usize::MAX, Ordering::Relaxed);
            }
        }
    }
}

impl<T: Write> Helper<T> {
    fn sender(&self) -> Option<&SyncSender<Arc<Writes<T>>>> {
        self.tx
            .get_or_init(|| {
                if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
                    return None;
                }
                // One job waits at most: a helper still busy with the last one is no help.
                let (tx, rx) = sync_channel::<Arc<Writes<T>>>(1);
                let apart = self.apart.clone();
                let spawned = std::thread::Builder::new()
                    .name("parley-fanout".into())
                    // It only calls `write`: a small stack will do.
                    .stack_size(256 * 1024)
                    // Ends when the Hub (the sender) is gone.
                    .spawn(move || {
                        apart.started();
                        while let Ok(job) = rx.recv() {
                            job.work(true);
                        }
                    });
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        tracing::warn!(error = %e, "no helper thread for fan-outs; the reader writes alone");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Does every write of `items`, with the helper's help when there are many; returns how many
    /// delivered. Each item is written once, and all are done when this returns.
    pub fn write_all(&self, items: Vec<T>) -> u64 {
        if items.len() < SHARE_FROM {
            return items.iter().map(|i| u64::from(i.write())).sum();
        }
        let len = items.len();
        let job = Arc::new(Writes {
            items,
            next: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            reader: std::thread::current(),
        });
        let helped = self.sender().is_some_and(|tx| {
            self.apart.keep_off_mine();
            tx.try_send(job.clone()).is_ok()
        });
        job.work(false);
        if helped {
            // Every write is claimed; the helper may still be in its last one (a few µs), or
            // descheduled in it: spin briefly, then sleep until it wakes us.
            let mut spins = 0;
            while job.finished.load(Ordering::Acquire) < len {
                if spins < 200 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::park_timeout(Duration::from_millis(1));
                }
            }
        }
        job.delivered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A write that records which thread did it. The helper's writes take far longer than the
    /// reader's, so the reader runs out of writes to claim while the helper is still in one.
    struct Slow {
        n: usize,
        reader: std::thread::ThreadId,
        log: Arc<Mutex<Vec<(usize, std::thread::ThreadId)>>>,
    }

    impl Write for Slow {
        fn write(&self) -> bool {
            let me = std::thread::current().id();
            let pause = if me == self.reader { 100 } else { 3_000 };
            std::thread::sleep(Duration::from_micros(pause));
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.n, me));
            self.n.is_multiple_of(2)
        }
    }

    fn run(helper: &Helper<Slow>, n: usize) -> (u64, Vec<(usize, std::thread::ThreadId)>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let items = (0..n)
            .map(|n| Slow {
                n,
                reader: std::thread::current().id(),
                log: log.clone(),
            })
            .collect();
        let delivered = helper.write_all(items);
        let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (delivered, log)
    }

    #[test]
    fn every_write_is_done_once_before_write_all_returns() {
        let helper = Helper::default();
        for n in [0, 1, SHARE_FROM - 1, SHARE_FROM, 3 * SHARE_FROM] {
            let (delivered, log) = run(&helper, n);
            let mut done: Vec<usize> = log.iter().map(|(i, _)| *i).collect();
            done.sort_unstable();
            assert_eq!(done, (0..n).collect::<Vec<_>>(), "{n} writes");
            assert_eq!(delivered, n.div_ceil(2) as u64, "{n} writes");
        }
    }

    /// Waits (up to 5 s) until `flag` is set.
    fn wait_for(flag: &std::sync::atomic::AtomicBool) {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !flag.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// A write that, on the reader, waits (up to 5 s) until the helper has written once.
    struct Gate {
        reader: std::thread::ThreadId,
        helped: Arc<std::sync::atomic::AtomicBool>,
        by_helper: Arc<AtomicUsize>,
    }

    impl Write for Gate {
        fn write(&self) -> bool {
            if std::thread::current().id() == self.reader {
                wait_for(&self.helped);
            } else {
                self.by_helper.fetch_add(1, Ordering::SeqCst);
                self.helped.store(true, Ordering::SeqCst);
            }
            true
        }
    }

    /// A write that panics on the helper; on the reader it waits (up to 5 s) until the helper
    /// has tried one.
    struct Boom {
        reader: std::thread::ThreadId,
        tried: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for Boom {
        fn write(&self) -> bool {
            if std::thread::current().id() != self.reader {
                self.tried.store(true, Ordering::SeqCst);
                panic!("a write panicked on the helper (this test's own)");
            }
            wait_for(&self.tried);
            true
        }
    }

    #[test]
    fn a_helper_that_dies_never_holds_the_reader_up() {
        let helper = Helper::default();
        let cores = cores();
        let tried = Arc::new(std::sync::atomic::AtomicBool::new(cores < 2));
        let booms = || {
            (0..SHARE_FROM)
                .map(|_| Boom {
                    reader: std::thread::current().id(),
                    tried: tried.clone(),
                })
                .collect()
        };
        // Returns, with the write the helper died in counted as not delivered.
        let delivered = helper.write_all(booms());
        assert_eq!(delivered, SHARE_FROM as u64 - u64::from(cores > 1));
        // From then on the reader writes alone (a helper would panic again).
        assert_eq!(helper.write_all(booms()), SHARE_FROM as u64);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_helper_is_kept_off_the_readers_cpu() {
        use nix::sched::{CpuSet, sched_getaffinity};
        let apart = Arc::new(Apart::default());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let a = apart.clone();
        let helper = std::thread::spawn(move || {
            a.started();
            let _ = rx.recv();
        });
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while apart.helper.get().is_none() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (tid, allowed) = *apart.helper.get().expect("the helper's CPUs");
        let cpus = |set: &CpuSet| {
            (0..CpuSet::count())
                .filter(|c| set.is_set(*c).unwrap_or(false))
                .collect::<Vec<_>>()
        };
        apart.keep_off_mine();
        let off = apart.off.load(Ordering::Relaxed);
        let now = cpus(&sched_getaffinity(tid).expect("the helper's mask"));
        if cpus(&allowed).len() > 1 {
            // Every CPU it had, but the one the reader was on.
            let want: Vec<usize> = cpus(&allowed).into_iter().filter(|c| *c != off).collect();
            assert_eq!(now, want, "kept off CPU {off}");
        } else {
            // One CPU only: it stays there.
            assert_eq!(now, cpus(&allowed));
        }
        let _ = tx.send(());
        helper.join().expect("the helper thread");
    }

    #[test]
    fn a_large_fan_out_is_shared_with_the_helper_on_several_cores() {
        let helper = Helper::default();
        let cores = cores();
        let fan_out = |n: usize| {
            let helped = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let by_helper = Arc::new(AtomicUsize::new(0));
            let items = (0..n)
                .map(|_| Gate {
                    reader: std::thread::current().id(),
                    // On one core there is no helper: nobody to wait for.
                    helped: if cores > 1 {
                        helped.clone()
                    } else {
                        Arc::new(true.into())
                    },
                    by_helper: by_helper.clone(),
                })
                .collect();
            assert_eq!(helper.write_all(items), n as u64);
            by_helper.load(Ordering::SeqCst)
        };
        assert_eq!(fan_out(SHARE_FROM) > 0, cores > 1, "{cores} cores");
        // A small one stays with the reader.
        let (_, log) = run(&Helper::default(), SHARE_FROM - 1);
        assert!(log.iter().all(|(_, t)| *t == std::thread::current().id()));
    }
}
