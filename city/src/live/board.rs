//! What command-centre dashboards ask of the live twin: counts, breakdowns, series over time
//! and ranked lists, by query name. Times are shown in Nanjing's local time (UTC+8).

use super::model::{EventState, Millis, UnitStatus};
use super::state::LiveState;
use crate::clock;
use crate::twin::City;
use crate::{Error, Result};
use std::collections::BTreeMap;

/// A dashboard query's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardValue {
    /// one number
    Number(f64),
    /// labelled counts, largest first
    Counts(Vec<(String, f64)>),
    /// series over shared x labels
    Series {
        /// x labels (local times)
        x: Vec<String>,
        /// (name, values); `None` where there is no value
        series: Vec<(String, Vec<Option<f64>>)>,
    },
    /// a table
    Table {
        /// column headings
        columns: Vec<String>,
        /// rows
        rows: Vec<Vec<String>>,
    },
}

/// A dashboard query: its name and the panel's parameters.
#[derive(Debug, Clone, Default)]
pub struct BoardQuery {
    /// query name, one of [`BOARD_QUERIES`]
    pub name: String,
    /// hours back (series)
    pub hours: Option<u32>,
    /// sensor kind (readings)
    pub kind: Option<String>,
    /// most rows or series
    pub limit: Option<usize>,
}

/// Every query name with what it answers.
pub const BOARD_QUERIES: &[(&str, &str)] = &[
    ("open_events", "number of events not yet closed or rejected"),
    ("overdue_events", "open events past their deadline"),
    ("events_24h", "events reported in the last 24 hours"),
    ("closed_24h", "events closed in the last 24 hours"),
    ("sensors_in_alarm", "sensors in alarm"),
    ("units_available", "response units available"),
    ("units_busy", "response units busy"),
    ("events_by_district", "open events per district"),
    ("events_by_category", "open events per category"),
    ("events_by_state", "open events per lifecycle state"),
    ("units_by_status", "response units per status"),
    (
        "events_per_hour",
        "events reported per hour (hours: window, default 24)",
    ),
    (
        "readings",
        "hourly mean readings of sensors of a kind (kind, hours, limit)",
    ),
    ("latest_alarms", "sensors in alarm, latest first"),
    ("overdue_list", "overdue events, longest overdue first"),
    ("latest_events", "events reported, latest first"),
    (
        "open_objections",
        "objections to data not yet decided (those the viewer may see)",
    ),
    (
        "overdue_objections",
        "objections past their five working days (those the viewer may see)",
    ),
    (
        "objections_list",
        "open objections, overdue first, with their deadlines",
    ),
    (
        "layers_overdue",
        "layers older than their declared update frequency (those the viewer may see)",
    ),
    (
        "quality_list",
        "data quality per layer, the worst first: completeness, invalid geometries, outside the city, age",
    ),
];

/// The queries answered from the data bureau's records rather than the live layers.
const RECORD_QUERIES: [&str; 5] = [
    "open_objections",
    "overdue_objections",
    "objections_list",
    "layers_overdue",
    "quality_list",
];

/// The queries that list things (they would show a level-3 live layer's records).
const LIST_QUERIES: [&str; 3] = ["latest_alarms", "overdue_list", "latest_events"];

const HOUR: Millis = 3_600_000;

/// Checks that a query name is known.
pub fn check_query(name: &str) -> Result<()> {
    if BOARD_QUERIES.iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "unknown dashboard query {name:?}; known: {}",
        BOARD_QUERIES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn state_name(s: EventState) -> &'static str {
    match s {
        EventState::Reported => "已上报",
        EventState::Accepted => "已受理",
        EventState::Dispatched => "已派遣",
        EventState::Handling => "处置中",
        EventState::Feedback => "已反馈",
        EventState::Verified => "已核查",
        EventState::Closed => "已结案",
        EventState::Rejected => "不予受理",
    }
}

fn unit_status_name(s: UnitStatus) -> &'static str {
    match s {
        UnitStatus::Available => "待命",
        UnitStatus::Busy => "出动",
        UnitStatus::OffDuty => "离线",
    }
}

fn ranked(counts: BTreeMap<String, f64>) -> BoardValue {
    let mut v: Vec<(String, f64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    BoardValue::Counts(v)
}

/// A number query over one state (also used for the state some time ago, for trends).
#[must_use]
pub fn number(state: &LiveState, name: &str, now: Millis) -> Option<f64> {
    let open = || state.events.values().filter(|e| !e.state.is_final());
    let n = match name {
        "open_events" => open().count(),
        "overdue_events" => open().filter(|e| e.overdue(now)).count(),
        "events_24h" => state
            .events
            .values()
            .filter(|e| e.reported_at > now - 24 * HOUR && e.reported_at <= now)
            .count(),
        "closed_24h" => state
            .events
            .values()
            .filter(|e| e.state == EventState::Closed && e.updated_at > now - 24 * HOUR)
            .count(),
        "sensors_in_alarm" => state.sensors.values().filter(|s| s.alarm.is_some()).count(),
        "units_available" => state
            .units
            .values()
            .filter(|u| u.status == UnitStatus::Available)
            .count(),
        "units_busy" => state
            .units
            .values()
            .filter(|u| u.status == UnitStatus::Busy)
            .count(),
        _ => return None,
    };
    Some(n as f64)
}

/// Answers a query from one state; `None` for queries that need the store (readings).
#[must_use]
pub fn from_state(state: &LiveState, q: &BoardQuery, now: Millis) -> Option<BoardValue> {
    if let Some(n) = number(state, &q.name, now) {
        return Some(BoardValue::Number(n));
    }
    let limit = q.limit.unwrap_or(10);
    let open = || state.events.values().filter(|e| !e.state.is_final());
    let count_by = |key: &dyn Fn(&super::model::Event) -> String| {
        let mut m = BTreeMap::new();
        for e in open() {
            *m.entry(key(e)).or_insert(0.0) += 1.0;
        }
        ranked(m)
    };
    Some(match q.name.as_str() {
        "events_by_district" => count_by(&|e| {
            e.place
                .district
                .as_ref()
                .map_or_else(|| "未定位".to_owned(), |d| d.name.clone())
        }),
        "events_by_category" => count_by(&|e| e.category.clone()),
        "events_by_state" => count_by(&|e| state_name(e.state).to_owned()),
        "units_by_status" => {
            let mut m = BTreeMap::new();
            for u in state.units.values() {
                *m.entry(unit_status_name(u.status).to_owned())
                    .or_insert(0.0) += 1.0;
            }
            ranked(m)
        }
        "events_per_hour" => {
            let hours = i64::from(q.hours.unwrap_or(24).clamp(2, 24 * 7));
            let end = clock::hour_end(now);
            let start = end - hours * HOUR;
            let mut counts = vec![0.0; hours as usize];
            for e in state.events.values() {
                if e.reported_at >= start && e.reported_at < end {
                    counts[((e.reported_at - start) / HOUR) as usize] += 1.0;
                }
            }
            BoardValue::Series {
                x: (0..hours).map(|h| clock::hh_mm(start + h * HOUR)).collect(),
                series: vec![("上报".to_owned(), counts.into_iter().map(Some).collect())],
            }
        }
        "latest_alarms" => {
            let mut s: Vec<_> = state
                .sensors
                .values()
                .filter(|s| s.alarm.is_some())
                .collect();
            s.sort_by_key(|s| std::cmp::Reverse(s.alarm.as_ref().map_or(0, |a| a.since)));
            BoardValue::Table {
                columns: ["时间", "设备", "读数", "位置"].map(str::to_owned).to_vec(),
                rows: s
                    .into_iter()
                    .take(limit)
                    .map(|s| {
                        let a = s.alarm.as_ref().expect("filtered on alarms");
                        vec![
                            clock::hh_mm(a.since),
                            s.name.clone().unwrap_or_else(|| s.id.clone()),
                            format!("{} {}", trim(a.value), s.unit),
                            place(&s.place),
                        ]
                    })
                    .collect(),
            }
        }
        "overdue_list" => {
            let mut es: Vec<_> = open().filter(|e| e.overdue(now)).collect();
            es.sort_by_key(|e| e.deadline_at);
            BoardValue::Table {
                columns: ["编号", "类别", "位置", "超期"].map(str::to_owned).to_vec(),
                rows: es
                    .into_iter()
                    .take(limit)
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.category.clone(),
                            place(&e.place),
                            format!("{}小时", (now - e.deadline_at) / HOUR),
                        ]
                    })
                    .collect(),
            }
        }
        "latest_events" => {
            let mut es: Vec<_> = state.events.values().collect();
            es.sort_by_key(|e| std::cmp::Reverse(e.reported_at));
            BoardValue::Table {
                columns: ["时间", "类别", "位置", "状态"].map(str::to_owned).to_vec(),
                rows: es
                    .into_iter()
                    .take(limit)
                    .map(|e| {
                        vec![
                            clock::hh_mm(e.reported_at),
                            e.category.clone(),
                            place(&e.place),
                            state_name(e.state).to_owned(),
                        ]
                    })
                    .collect(),
            }
        }
        _ => return None,
    })
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn place(p: &super::model::Place) -> String {
    [p.district.as_ref(), p.street.as_ref()]
        .into_iter()
        .flatten()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The live layer a dashboard query reads.
#[must_use]
pub fn query_layer(name: &str) -> super::LiveLayer {
    if name.starts_with("units") {
        super::LiveLayer::Units
    } else if name.starts_with("sensors") || name == "readings" || name == "latest_alarms" {
        super::LiveLayer::Sensors
    } else {
        super::LiveLayer::Events
    }
}

/// Only what a read plan shows of a live state.
fn narrowed(s: &LiveState, plan: &crate::access::ReadPlan) -> LiveState {
    let mut out = s.clone();
    out.events.retain(|_, e| plan.shows_code(e.place.code()));
    out.sensors.retain(|_, x| plan.shows_code(x.place.code()));
    out.units.retain(|_, u| plan.shows_code(u.place.code()));
    out
}

impl City {
    /// The read plan of the live layer a query reads, for a principal; a layer it may not
    /// see gives no data.
    fn board_plan(
        &self,
        p: &crate::access::Principal,
        name: &str,
    ) -> Result<crate::access::ReadPlan> {
        let layer = query_layer(name);
        let index = self
            .layer(layer.name())
            .ok_or_else(|| Error::NotFound("no data".into()))?;
        let plan = self
            .plan_for(p, &index.meta)
            .map_err(|_| Error::NotFound("no data".into()))?;
        if plan.form == crate::access::Form::Aggregate && LIST_QUERIES.contains(&name) {
            return Err(Error::NotFound(
                "level-3 data: counts only, no lists".into(),
            ));
        }
        Ok(plan)
    }

    /// The dashboard queries about data quality, from the last assessments of the layers
    /// the principal may see.
    fn quality_board(&self, p: &crate::access::Principal, name: &str) -> BoardValue {
        let cached = self.qualities.read().map(|m| m.clone()).unwrap_or_default();
        let mut seen: Vec<std::sync::Arc<crate::quality::Quality>> = self
            .visible_layers(p)
            .iter()
            .filter_map(|(l, _)| cached.get(&l.meta.name).cloned())
            .collect();
        if name == "layers_overdue" {
            return BoardValue::Number(seen.iter().filter(|q| q.overdue).count() as f64);
        }
        let badness = |q: &crate::quality::Quality| {
            (
                !q.overdue,
                -((q.invalid_geometries + q.outside_city + q.duplicate_ids) as i64),
                (q.completeness_ratio * 1000.0) as i64,
            )
        };
        seen.sort_by_key(|q| badness(q));
        BoardValue::Table {
            columns: vec![
                "图层".into(),
                "完整".into(),
                "无效".into(),
                "越界".into(),
                "时效".into(),
            ],
            rows: seen
                .iter()
                .map(|q| {
                    vec![
                        q.layer.clone(),
                        format!("{:.0}%", q.completeness_ratio * 100.0),
                        q.invalid_geometries.to_string(),
                        q.outside_city.to_string(),
                        if q.overdue {
                            "超期".into()
                        } else {
                            format!("{:.0}天", q.age_days)
                        },
                    ]
                })
                .collect(),
        }
    }

    /// The dashboard queries about objections, for what the principal may see of them.
    fn records_board(
        &self,
        p: &crate::access::Principal,
        name: &str,
        now: Millis,
    ) -> Option<BoardValue> {
        if !RECORD_QUERIES.contains(&name) {
            return None;
        }
        if name == "layers_overdue" || name == "quality_list" {
            return Some(self.quality_board(p, name));
        }
        let mut open: Vec<crate::objections::Objection> = self
            .objections_for(p)
            .into_iter()
            .filter(crate::objections::Objection::disputes)
            .collect();
        Some(match name {
            "open_objections" => BoardValue::Number(open.len() as f64),
            "overdue_objections" => {
                BoardValue::Number(open.iter().filter(|o| o.overdue(now)).count() as f64)
            }
            _ => {
                open.sort_by_key(|o| (!o.overdue(now), o.due));
                BoardValue::Table {
                    columns: vec!["图层".into(), "要素".into(), "期限".into(), "状态".into()],
                    rows: open
                        .iter()
                        .map(|o| {
                            vec![
                                o.layer.clone(),
                                o.feature.map_or_else(|| "全部".into(), |f| f.to_string()),
                                clock::mm_dd(o.due),
                                if o.overdue(now) {
                                    "超期".into()
                                } else {
                                    "待答复".into()
                                },
                            ]
                        })
                        .collect(),
                }
            }
        })
    }

    /// Answers a dashboard query at `now` with what the principal may see: nothing from a
    /// live layer it may not read, and only its territory's things when it has one.
    pub async fn board_as(
        &self,
        p: &crate::access::Principal,
        q: &BoardQuery,
        now: Millis,
    ) -> Result<BoardValue> {
        check_query(&q.name)?;
        if let Some(v) = self.records_board(p, &q.name, now) {
            return Ok(v);
        }
        let plan = self.board_plan(p, &q.name)?;
        if plan.territory.is_none() {
            return self.board(q, now).await;
        }
        let state = self.with_live(|s| narrowed(s, &plan));
        if let Some(v) = from_state(&state, q, now) {
            return Ok(v);
        }
        self.readings_board(&state, q, now).await
    }

    /// Number queries as they stood at `at` for a principal (see [`City::board_as`]).
    pub async fn board_numbers_as(
        &self,
        p: &crate::access::Principal,
        names: &[String],
        at: Millis,
    ) -> Result<Vec<Option<f64>>> {
        for n in names {
            check_query(n)?;
        }
        let state = self.live_state_at(at).await?;
        Ok(names
            .iter()
            .map(|n| {
                if let Some(BoardValue::Number(v)) = self.records_board(p, n, at) {
                    return Some(v);
                }
                let plan = self.board_plan(p, n).ok()?;
                number(&narrowed(&state, &plan), n, at)
            })
            .collect())
    }

    /// Answers a dashboard query at `now`.
    pub async fn board(&self, q: &BoardQuery, now: Millis) -> Result<BoardValue> {
        check_query(&q.name)?;
        if let Some(v) = self.with_live(|s| from_state(s, q, now)) {
            return Ok(v);
        }
        let state = self.with_live(|s| LiveState {
            sensors: s.sensors.clone(),
            ..LiveState::default()
        });
        self.readings_board(&state, q, now).await
    }

    async fn readings_board(
        &self,
        state: &LiveState,
        q: &BoardQuery,
        now: Millis,
    ) -> Result<BoardValue> {
        // readings: hourly means of up to `limit` sensors of a kind, those in alarm first
        let kind = q
            .kind
            .as_deref()
            .ok_or_else(|| Error::Invalid("the readings query needs a sensor \"kind\"".into()))?;
        let hours = i64::from(q.hours.unwrap_or(24).clamp(2, 24 * 7));
        let mut sensors: Vec<(bool, String, String)> = state
            .sensors
            .values()
            .filter(|x| x.kind == kind)
            .map(|x| {
                (
                    x.alarm.is_none(),
                    x.id.clone(),
                    x.name.clone().unwrap_or_else(|| x.id.clone()),
                )
            })
            .collect();
        sensors.sort();
        sensors.truncate(q.limit.unwrap_or(4).clamp(1, 8));
        let end = clock::hour_end(now);
        let start = end - hours * HOUR;
        let mut series = Vec::new();
        for (_, id, name) in sensors {
            let buckets = self
                .readings(&id, start, end, Some(HOUR), hours as usize + 1)
                .await?;
            let mut values = vec![None; hours as usize];
            for b in buckets {
                let i = (b.start - start).div_euclid(HOUR);
                if (0..hours).contains(&i) && b.count > 0 {
                    values[i as usize] = Some(b.avg);
                }
            }
            series.push((name, values));
        }
        Ok(BoardValue::Series {
            x: (0..hours).map(|h| clock::hh_mm(start + h * HOUR)).collect(),
            series,
        })
    }

    /// Number queries as they stood at `at` (for KPI trends), from one replay of the change
    /// log; `None` for names that are not number queries.
    pub async fn board_numbers_at(&self, names: &[String], at: Millis) -> Result<Vec<Option<f64>>> {
        for n in names {
            check_query(n)?;
        }
        let state = self.live_state_at(at).await?;
        Ok(names.iter().map(|n| number(&state, n, at)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_nanjing_time_and_unknown_queries_are_named() {
        // 2026-11-22T12:15:00Z is 20:15 in Nanjing
        assert_eq!(clock::hh_mm(1_795_349_700_000), "20:15");
        let err = check_query("pie").unwrap_err().to_string();
        assert!(err.contains("pie") && err.contains("open_events"), "{err}");
        let empty = LiveState::default();
        let q = BoardQuery {
            name: "events_per_hour".into(),
            hours: Some(6),
            ..BoardQuery::default()
        };
        let Some(BoardValue::Series { x, series }) = from_state(&empty, &q, 1_795_349_700_000)
        else {
            panic!("a series")
        };
        assert_eq!(x.len(), 6);
        assert_eq!(x.last().unwrap(), "20:00");
        assert_eq!(series[0].1, vec![Some(0.0); 6]);
        assert_eq!(number(&empty, "open_events", 0), Some(0.0));
    }
}
