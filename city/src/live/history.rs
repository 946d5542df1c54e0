//! The live twin's history kept bounded: raw readings past their retention are folded into
//! rollups per sensor and interval (count, min, max, mean, last) and leave the change log;
//! checkpoints of the whole twin, taken every few hours, let the past (`/live/state?at=`, a
//! dashboard as of a date, start-up) be read from the nearest one instead of the whole log.
//! Events, sensors and units keep every change: they are the closed loop's record.

use super::{LiveState, Millis};
use crate::Result;
use crate::store::{Checkpoint, Store};
use crate::twin::City;
use serde::{Deserialize, Serialize};

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

/// How much of the past is kept raw, and how often the twin is checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryPolicy {
    /// days raw readings are kept; older ones are folded into rollups (at least 1)
    pub raw_readings_days: u32,
    /// minutes a rollup spans (1 to 1440, dividing a day)
    pub rollup_minutes: u32,
    /// hours between checkpoints of the live twin (1 to 168); past the raw readings'
    /// retention one checkpoint a day is kept
    pub checkpoint_hours: u32,
}

impl Default for HistoryPolicy {
    fn default() -> Self {
        Self {
            raw_readings_days: 90,
            rollup_minutes: 60,
            checkpoint_hours: 6,
        }
    }
}

impl HistoryPolicy {
    /// Checks the policy's ranges.
    ///
    /// # Errors
    /// A message naming the value out of range.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.raw_readings_days == 0 {
            return Err("raw_readings_days must be at least 1".into());
        }
        if !(1..=1440).contains(&self.rollup_minutes) || 1440 % self.rollup_minutes != 0 {
            return Err(format!(
                "rollup_minutes {} must divide a day (1 to 1440: 1, 5, 10, 15, 30, 60, …)",
                self.rollup_minutes
            ));
        }
        if !(1..=168).contains(&self.checkpoint_hours) {
            return Err(format!(
                "checkpoint_hours {} must be 1 to 168",
                self.checkpoint_hours
            ));
        }
        Ok(())
    }

    fn step(&self) -> Millis {
        Millis::from(self.rollup_minutes) * 60_000
    }
}

/// What one [`City::maintain_history`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// raw readings folded into rollups and removed from the log
    pub readings_folded: u64,
    /// the checkpoint taken, when one was due
    pub checkpoint: Option<Checkpoint>,
    /// checkpoints past the retention dropped (one a day is kept)
    pub checkpoints_dropped: usize,
}

/// The live twin as it stood at `at`: from the nearest checkpoint at or before it and the
/// changes after that, or from the whole log where there is none.
pub(crate) async fn state_at(store: &dyn Store, at: Millis) -> Result<LiveState> {
    let from = store.checkpoint_before(at).await?;
    let rows = store.live_at(from, at).await?;
    let seq = rows.iter().map(|c| c.seq).max().unwrap_or(0);
    LiveState::fold(&rows, seq)
}

impl City {
    /// The events, sensors and units as they stood at a time (readings older than the raw
    /// retention at their rollup's resolution: a sensor's latest reading is the last one of
    /// the last interval ending by then).
    pub async fn live_state_at(&self, at: Millis) -> Result<LiveState> {
        state_at(self.store().as_ref(), at).await
    }

    /// Keeps the history bounded at `now` under the live options' policy: folds the raw
    /// readings older than the retention (whole intervals, an hour of them per transaction,
    /// so writes wait for short ones), takes a checkpoint when the last one is older than
    /// the policy's hours and the log has grown since, and thins checkpoints past the
    /// retention to the last of each day. Only the instance that writes runs it.
    pub async fn maintain_history(&self, now: Millis) -> Result<Maintenance> {
        let policy = self.live_options().history;
        let store = self.store();
        let mut done = Maintenance::default();
        let step = policy.step();
        let keep_from = now - Millis::from(policy.raw_readings_days) * DAY;
        let cut = keep_from.div_euclid(step) * step;
        if let Some(oldest) = store.oldest_reading().await? {
            let chunk = step.max(HOUR);
            let mut from = oldest.div_euclid(step) * step;
            while from < cut {
                let to = (from + chunk).min(cut);
                done.readings_folded += store.downsample_readings(from, to, step).await?;
                from = to;
            }
        }
        let seq = store.last_change().await?;
        let last = store.checkpoint_before(now).await?;
        let due = last.is_none_or(|c| {
            c.at <= now - Millis::from(policy.checkpoint_hours) * HOUR && c.seq < seq
        });
        if due && seq > 0 {
            let mark = Checkpoint { at: now, seq };
            store.put_checkpoint(mark, last).await?;
            done.checkpoint = Some(mark);
        }
        let old: Vec<Checkpoint> = store
            .checkpoints()
            .await?
            .into_iter()
            .filter(|c| c.at < keep_from)
            .collect();
        // oldest first: of two on the same day the earlier goes, so the last of each stays
        let day = |c: &Checkpoint| crate::clock::day_number(c.at);
        let drop: Vec<Millis> = old
            .windows(2)
            .filter(|w| day(&w[0]) == day(&w[1]))
            .map(|w| w[0].at)
            .collect();
        if !drop.is_empty() {
            store.drop_checkpoints(&drop).await?;
            done.checkpoints_dropped = drop.len();
        }
        Ok(done)
    }
}
