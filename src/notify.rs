//! [`Wakeup`]: lets readers in the writer's process sleep until new records are published,
//! without polling and without costing the writer a system call when nobody waits.

use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::error::Result;

/// Signalled by the writer each time it publishes records to readers.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    /// Readers currently inside [`wait_until`](Self::wait_until). The writer takes the lock and
    /// wakes them only when this is non-zero: a condition variable's notify is a system call
    /// even with no waiter, and the writer publishes at every flush.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Wakeup {
    /// Called by the writer after it changed what readers see.
    pub(crate) fn notify(&self) {
        // Pairs with the fence in `wait_until`: either the waiter's check sees what was just
        // published, or this load sees the waiter registered (and wakes it).
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Taking the lock waits for a waiter that is between its check and its sleep.
            drop(self.lock.lock());
            self.cv.notify_all();
        }
    }

    /// Sleeps until `ready` returns true (checked first, and after each wake-up) or until
    /// `deadline`. Returns what `ready` said last.
    pub(crate) fn wait_until(
        &self,
        mut ready: impl FnMut() -> Result<bool>,
        deadline: Instant,
    ) -> Result<bool> {
        if ready()? {
            return Ok(true);
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let outcome = self.sleep_until(&mut ready, deadline);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    fn sleep_until(
        &self,
        ready: &mut impl FnMut() -> Result<bool>,
        deadline: Instant,
    ) -> Result<bool> {
        // A poisoned lock only means another waiter panicked; the `()` it guards cannot be
        // inconsistent.
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            fence(Ordering::SeqCst);
            if ready()? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            guard = match self.cv.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    #[test]
    fn a_waiter_wakes_when_the_value_is_published() {
        let p = Arc::new(Wakeup::default());
        let value = Arc::new(AtomicU64::new(0));
        let (p2, v2) = (p.clone(), value.clone());
        let waiter = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            p2.wait_until(|| Ok(v2.load(Ordering::SeqCst) >= 100), deadline)
        });
        for i in 1..=100 {
            value.store(i, Ordering::SeqCst);
            p.notify();
        }
        assert!(matches!(waiter.join(), Ok(Ok(true))));
        assert_eq!(p.waiters.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let p = Wakeup::default();
        let start = Instant::now();
        let got = p.wait_until(|| Ok(false), start + Duration::from_millis(20));
        assert!(matches!(got, Ok(false)));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
