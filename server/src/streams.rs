//! Caps on open streams (the live feed's WebSocket and server-sent events, dashboard MJPEG):
//! each holds a task, buffers and a socket for as long as its client stays, so their number
//! is bounded in all and per caller. A stream takes a [`StreamPermit`] before it starts and
//! gives it back when it ends, however it ends.

use crate::problem::Problem;
use axum::http::StatusCode;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The open streams, counted in all and per caller.
#[derive(Debug)]
pub struct Streams {
    total: usize,
    each: usize,
    open: Mutex<Open>,
    gauge: Gauge,
}

#[derive(Debug, Default)]
struct Open {
    all: usize,
    by: HashMap<String, usize>,
}

/// One open stream's place; dropping it frees the place.
#[derive(Debug)]
pub struct StreamPermit {
    streams: Arc<Streams>,
    who: String,
}

impl Streams {
    /// At most `total` streams open at once, `each` of them per caller; `gauge` shows how
    /// many are open.
    #[must_use]
    pub fn new(total: usize, each: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            total,
            each,
            open: Mutex::default(),
            gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for one more stream of `who` (a principal's id; the public is one caller).
    ///
    /// # Errors
    /// 429 when the caller has its most streams open (one must close first), 503 when the
    /// server has (try again later).
    pub fn open(self: &Arc<Self>, who: &str) -> Result<StreamPermit, Problem> {
        let mut open = self.lock();
        let theirs = open.by.get(who).copied().unwrap_or(0);
        if theirs >= self.each {
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                format!(
                    "{theirs} streams of yours are open, the most one caller may have (limits.streams_per_caller): close one first"
                ),
            );
            p.retry_after = std::num::NonZeroU32::new(10);
            return Err(p);
        }
        if open.all >= self.total {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-streams",
                format!(
                    "{} streams are open, the most this server takes (limits.streams): try again shortly",
                    open.all
                ),
            );
            p.retry_after = std::num::NonZeroU32::new(10);
            return Err(p);
        }
        open.all += 1;
        *open.by.entry(who.to_owned()).or_default() += 1;
        self.gauge.inc();
        Ok(StreamPermit {
            streams: Arc::clone(self),
            who: who.to_owned(),
        })
    }

    /// Streams open now.
    #[must_use]
    pub fn open_now(&self) -> usize {
        self.lock().all
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.lock();
        open.all = open.all.saturating_sub(1);
        if let Some(n) = open.by.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                open.by.remove(&self.who);
            }
        }
        self.streams.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn streams_are_capped_in_all_and_per_caller_and_freed_when_they_end() {
        let gauge = Gauge::default();
        let s = Streams::new(3, 2, gauge.clone());
        let a1 = s.open("key:a").unwrap();
        let a2 = s.open("key:a").unwrap();
        let third = s.open("key:a").unwrap_err();
        assert_eq!(third.status, 429);
        let b1 = s.open("key:b").unwrap();
        let full = s.open("key:c").unwrap_err();
        assert_eq!(full.status, 503);
        assert!(full.retry_after.is_some());
        assert_eq!((s.open_now(), gauge.get()), (3, 3));
        drop(a1);
        let c1 = s.open("key:c").unwrap();
        drop((a2, b1, c1));
        assert_eq!((s.open_now(), gauge.get()), (0, 0));
        assert!(s.lock().by.is_empty());
    }
}
