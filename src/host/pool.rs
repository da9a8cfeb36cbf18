//! Helper threads that split one matrix product with the calling thread.
//!
//! The products of a training step take 20–400 µs each. Waking a sleeping thread costs more than that
//! saves on the 2-vCPU development VM: a scoped spawn measured 20–55 µs and `rayon::join` 20–80 µs
//! (its idle workers sleep), so splitting a 128×784·784×256 product over two cores gained 10–20%, and
//! smaller ones lost. A helper that keeps spinning for a moment after each part picks the next one up
//! within a microsecond, and the same products run 1.7–1.9× faster on two cores. Helpers park after
//! [`SPIN`] without work, so an idle process does not hold a core. A part no helper has started by the
//! time the caller finishes its own runs on the caller: with another busy process on a 2-vCPU machine a
//! descheduled helper otherwise kept the caller spinning for whole scheduler slices (the 784-128-10 epoch
//! went from 50 to 217 ms beside one `yes`; with the take-back, 137 ms).

use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Cores to split large products over, asked once: `available_parallelism` reads cgroup files on Linux,
/// which cost as much as a small product when done per call.
pub(crate) fn available_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How long a helper waits for the next part before it parks: longer than the gaps between the products
/// of one training step (the elementwise work between them), far shorter than anything a user notices.
const SPIN: Duration = Duration::from_millis(1);

/// At most this many threads share a product (the caller included): beyond it the parts of the
/// products this crate trains with get too small to pay for the hand-off.
pub(crate) const MAX_PARTS: usize = 4;

/// A part of the current job, shared by reference with the helpers for the length of one [`run`].
type Part<'a> = &'a (dyn Fn(usize) + Sync);

/// `Part` with its lifetime erased, so a helper that outlives the call can hold it. `run` waits for every
/// helper to finish before the real reference goes out of scope.
#[derive(Clone, Copy)]
struct ErasedPart(*const (dyn Fn(usize) + Sync));
// SAFETY: the pointee is `Sync`, and `run` keeps it alive until every helper has dropped its copy.
unsafe impl Send for ErasedPart {}

struct Helper {
    /// The part to run and its index; `Some` from hand-off until the helper takes it.
    task: Mutex<Option<(ErasedPart, usize)>>,
    /// Set by the caller after the task, cleared by the helper when the part has finished.
    busy: AtomicBool,
    /// Whether the part panicked (reported to the caller, which panics in turn).
    panicked: AtomicBool,
    /// Set while the helper is parked or about to park, so the caller knows to unpark it.
    parked: AtomicBool,
    thread: OnceLock<Thread>,
}

struct Pool {
    helpers: Vec<Helper>,
    /// Held for the length of a `run`: a second thread that wants to split a product at the same time
    /// runs it whole instead of waiting.
    in_use: Mutex<()>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = available_threads().clamp(1, MAX_PARTS);
        Pool {
            helpers: (1..threads)
                .map(|_| Helper {
                    task: Mutex::new(None),
                    busy: AtomicBool::new(false),
                    panicked: AtomicBool::new(false),
                    parked: AtomicBool::new(false),
                    thread: OnceLock::new(),
                })
                .collect(),
            in_use: Mutex::new(()),
        }
    })
}

/// Threads a product may be split over now (1 when none can be had).
pub(crate) fn parts_available() -> usize {
    pool().helpers.len() + 1
}

/// Runs `part(0..parts)`, part 0 on the calling thread and the others on helpers, and returns when all
/// have finished. When another thread is using the helpers, every part runs here in turn.
pub(crate) fn run(parts: usize, part: Part<'_>) {
    let pool = pool();
    let guard = match pool.in_use.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return (0..parts).for_each(part),
    };
    let helpers = &pool.helpers[..(parts - 1).min(pool.helpers.len())];
    // SAFETY: only the lifetime changes; `WaitForHelpers` below outlives every helper's use of it.
    let erased = ErasedPart(unsafe {
        std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync)>(
            part,
        )
    });
    for (index, helper) in helpers.iter().enumerate() {
        helper.hand_off(erased, index + 1);
    }
    // Waits for the helpers even if part 0 panics, so none still holds `part` after this returns.
    struct WaitForHelpers<'a>(&'a [Helper]);
    impl Drop for WaitForHelpers<'_> {
        fn drop(&mut self) {
            for helper in self.0 {
                while helper.busy.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            }
        }
    }
    let wait = WaitForHelpers(helpers);
    part(0);
    for index in helpers.len() + 1..parts {
        part(index);
    }
    // A helper that has not started its part yet (descheduled by another process, or still waking from
    // park) would leave this thread spinning for a scheduler slice: run the part here instead.
    for helper in helpers {
        helper.run_task();
    }
    drop(wait);
    drop(guard);
    if helpers
        .iter()
        .any(|h| h.panicked.swap(false, Ordering::Relaxed))
    {
        panic!("a matrix product part panicked on a helper thread");
    }
}

/// Elementwise loops shorter than this many elements per part stay on one thread.
const ELEMENTWISE_MIN_PART: usize = 1 << 15;

/// Runs `body` over `0..len` in disjoint ranges, split between threads when each part gets at least
/// [`ELEMENTWISE_MIN_PART`] elements (the optimizer updates: long, memory-bound loops).
pub(crate) fn for_ranges(len: usize, body: &(dyn Fn(Range<usize>) + Sync)) {
    let parts = parts_available().min(len / ELEMENTWISE_MIN_PART).max(1);
    let per_part = len.div_ceil(parts);
    run(parts, &|index| {
        let first = (index * per_part).min(len);
        body(first..(first + per_part).min(len));
    });
}

/// Runs `body(first, part)` over `output` cut into whole samples of `per_sample` floats: `part` holds samples
/// `first..`, and the parts go to different threads when each gets at least [`ELEMENTWISE_MIN_PART`] floats.
pub(crate) fn for_samples(
    output: &mut [f32],
    per_sample: usize,
    body: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let samples = output.len() / per_sample.max(1);
    let parts = parts_available()
        .min(output.len() / ELEMENTWISE_MIN_PART)
        .min(samples)
        .max(1);
    let per_part = samples.div_ceil(parts);
    let output = Disjoint::new(output);
    run(parts, &|index| {
        let first = (index * per_part).min(samples);
        let last = (first + per_part).min(samples);
        // SAFETY: each part gets its own samples.
        let part = unsafe { output.range(first * per_sample..last * per_sample) };
        body(first, part);
    });
}

/// Multiply-adds a part of a per-sample loop must hold before the loop is split over threads.
const WORK_MIN_PART: usize = 1 << 17;

/// Runs `body` over `0..samples` in contiguous ranges, one per thread when each gets at least
/// [`WORK_MIN_PART`] of the work (`work_per_sample` multiply-adds a sample): loops of small products,
/// where the output's length says little about the time.
pub(crate) fn for_sample_ranges(
    samples: usize,
    work_per_sample: usize,
    body: &(dyn Fn(Range<usize>) + Sync),
) {
    let parts = parts_available()
        .min(samples.saturating_mul(work_per_sample) / WORK_MIN_PART)
        .min(samples)
        .max(1);
    let per_part = samples.div_ceil(parts);
    run(parts, &|index| {
        let first = (index * per_part).min(samples);
        body(first..(first + per_part).min(samples));
    });
}

/// A mutable slice that the parts of one [`for_ranges`] call write through, each in its own range.
pub(crate) struct Disjoint<'a> {
    data: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: access goes through `range`, whose contract keeps the ranges of different threads apart.
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    pub(crate) fn new(slice: &'a mut [f32]) -> Self {
        Disjoint {
            data: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The elements in `range`.
    ///
    /// # Safety
    /// No other reference to any element of `range` may be live while the result is.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range(&self, range: Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len);
        std::slice::from_raw_parts_mut(self.data.add(range.start), range.len())
    }
}

impl Helper {
    fn hand_off(&'static self, part: ErasedPart, index: usize) {
        let thread = self.thread.get_or_init(|| {
            std::thread::Builder::new()
                .name("wgtrain-gemm".into())
                .spawn(move || self.work())
                .expect("spawning a matrix product helper thread")
                .thread()
                .clone()
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some((part, index));
        // SeqCst pairs with the helper's `parked` store and `busy` check: either it sees the task or this
        // sees it parked.
        self.busy.store(true, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            thread.unpark();
        }
    }

    /// Takes the handed-off part, if no thread has yet, and runs it here: the helper's loop and the
    /// caller's take-back both come through this, so each part runs exactly once. Returns whether it ran.
    fn run_task(&self) -> bool {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((part, index)) = task else {
            return false;
        };
        // SAFETY: `run` does not return (so the part stays alive) until `busy` is cleared.
        let part = unsafe { &*part.0 };
        if catch_unwind(AssertUnwindSafe(|| part(index))).is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
        self.busy.store(false, Ordering::Release);
        true
    }

    fn work(&self) {
        let mut last = Instant::now();
        loop {
            if self.busy.load(Ordering::Acquire) {
                if self.run_task() {
                    last = Instant::now();
                }
            } else if last.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                self.parked.store(true, Ordering::SeqCst);
                if !self.busy.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                self.parked.store(false, Ordering::SeqCst);
                last = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_part_runs_once() {
        for parts in 1..=super::MAX_PARTS + 2 {
            let ran: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            run(parts, &|i| {
                ran[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                ran.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                "{parts} parts"
            );
        }
    }

    /// Back-to-back runs race the caller taking a part back against the helper taking it: each part
    /// still runs exactly once.
    #[test]
    fn parts_taken_back_run_once() {
        for round in 0..20_000 {
            let ran: Vec<AtomicUsize> =
                (0..super::MAX_PARTS).map(|_| AtomicUsize::new(0)).collect();
            run(super::MAX_PARTS, &|i| {
                ran[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                ran.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
        }
    }

    #[test]
    fn a_panicking_part_panics_the_caller_and_the_pool_still_works() {
        let result = std::panic::catch_unwind(|| {
            run(2, &|i| assert!(i != 1, "part 1 fails on purpose"));
        });
        assert!(result.is_err());
        let sum = AtomicUsize::new(0);
        run(2, &|i| {
            sum.fetch_add(i + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3);
    }
}
