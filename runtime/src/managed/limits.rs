//! Admission limits in front of a provider: a token-bucket rate limit and a concurrency limit
//! with a bounded queue. Both fail fast with how long to wait or how busy it is, never block
//! past the call's deadline.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::RateLimitSpec;

/// `requests_per_second` with a `burst`, as a token bucket (governor's GCRA).
pub struct RateLimit {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    spec: RateLimitSpec,
    /// Calls refused, for metrics (counted only on the refusing path).
    hits: AtomicU64,
}

impl RateLimit {
    pub fn new(spec: &RateLimitSpec) -> Self {
        let period = Duration::from_secs_f64(1.0 / spec.requests_per_second.max(1e-6));
        let burst = NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            spec: *spec,
            hits: AtomicU64::new(0),
        }
    }

    /// The limit as configured.
    pub fn spec(&self) -> RateLimitSpec {
        self.spec
    }

    /// Takes a token, or says how long until one is available.
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_until| {
            self.hits.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(self.clock.now())
        })
    }

    /// Calls this limit refused so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// At most `max` calls at once; up to `max_queue` more wait for a slot.
pub struct Slots {
    sem: Arc<Semaphore>,
    max: u32,
    max_queue: u32,
    queued: AtomicU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// Every slot is busy and the queue is full.
    QueueFull { running: u32, queued: u32 },
    /// The call's deadline passed while it waited in the queue.
    TimedOut,
}

impl Slots {
    pub fn new(max: u32, max_queue: u32) -> Self {
        Self {
            sem: Arc::new(Semaphore::new(max.max(1) as usize)),
            max: max.max(1),
            max_queue,
            queued: AtomicU32::new(0),
        }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn running(&self) -> u32 {
        self.max - self.sem.available_permits() as u32
    }

    pub async fn acquire(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<OwnedSemaphorePermit, SlotError> {
        if let Ok(permit) = self.sem.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // Join the queue only if there is room; the counter is the queue's length.
        let joined = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max_queue).then_some(q + 1)
            });
        if let Err(queued) = joined {
            return Err(SlotError::QueueFull {
                running: self.running(),
                queued,
            });
        }
        // Leaves the queue however the wait ends, a caller that gave up (dropped) included.
        let _place = QueuePlace(&self.queued);
        let waited = tokio::time::timeout_at(deadline, self.sem.clone().acquire_owned()).await;
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one would mean no slot will come.
            Ok(Err(_)) | Err(_) => Err(SlotError::TimedOut),
        }
    }
}

/// A place in a [`Slots`] queue, given up on drop.
struct QueuePlace<'a>(&'a AtomicU32);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_burst_then_says_when_to_retry() {
        let rl = RateLimit::new(&RateLimitSpec {
            requests_per_second: 2.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(rl.check().is_ok());
        }
        let wait = rl.check().expect_err("fourth call in a burst of three");
        assert_eq!(rl.hits(), 1, "only the refused call counts as a hit");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn calls_beyond_the_slots_queue_and_beyond_the_queue_are_refused() {
        let slots = Slots::new(1, 1);
        let far = tokio::time::Instant::now() + Duration::from_secs(5);
        let first = slots.acquire(far).await.expect("free slot");
        let queued = {
            let slots = &slots;
            async move { slots.acquire(far).await }
        };
        tokio::pin!(queued);
        // Poll once so the second call joins the queue.
        assert!(futures::poll!(&mut queued).is_pending());
        assert_eq!(slots.queued(), 1);
        let third = slots.acquire(far).await;
        assert_eq!(
            third.err(),
            Some(SlotError::QueueFull {
                running: 1,
                queued: 1
            })
        );
        drop(first);
        assert!(queued.await.is_ok(), "the queued call gets the freed slot");
    }

    #[tokio::test]
    async fn a_queued_call_gives_up_at_its_deadline() {
        let slots = Slots::new(1, 4);
        let _busy = slots
            .acquire(tokio::time::Instant::now() + Duration::from_secs(5))
            .await
            .expect("free slot");
        let soon = tokio::time::Instant::now() + Duration::from_millis(30);
        assert_eq!(slots.acquire(soon).await.err(), Some(SlotError::TimedOut));
        assert_eq!(slots.queued(), 0, "the queue place is released");
    }

    #[tokio::test]
    async fn a_queued_call_whose_caller_goes_away_leaves_the_queue() {
        let slots = Slots::new(1, 4);
        let far = tokio::time::Instant::now() + Duration::from_secs(5);
        let _busy = slots.acquire(far).await.expect("free slot");
        {
            let queued = slots.acquire(far);
            tokio::pin!(queued);
            assert!(futures::poll!(&mut queued).is_pending());
            assert_eq!(slots.queued(), 1);
        }
        assert_eq!(
            slots.queued(),
            0,
            "a cancelled wait must not hold a queue place"
        );
    }
}
