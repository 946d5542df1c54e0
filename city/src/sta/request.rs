//! What a SensorThings request says: its resource path, its query options, and an
//! Observation's body (over HTTP or MQTT) as a reading.

use super::model::Id;
use super::odata::{self, Expr};
use super::{MAX_EXPAND, MAX_TOP};
use crate::change::{Millis, ts};
use crate::live::ReadingIn;
use crate::{Error, Result};
use serde_json::Value;

/// A request's query options.
#[derive(Debug, Clone, Default)]
pub(super) struct Options {
    pub(super) filter: Option<Expr>,
    pub(super) order: Vec<(Expr, bool)>,
    pub(super) top: Option<u64>,
    pub(super) skip: u64,
    pub(super) count: bool,
    pub(super) select: Option<Vec<String>>,
    pub(super) expand: Vec<(Vec<String>, Options)>,
}

pub(super) fn invalid(name: &str, detail: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{name}: {detail}"))
}

/// Splits at `sep` outside parentheses and quotes.
pub(super) fn split_top(s: &str, sep: char) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for c in s.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

impl Options {
    pub(super) fn parse(params: &[(String, String)], depth: usize) -> Result<Self> {
        let mut o = Self::default();
        for (k, v) in params {
            match k.as_str() {
                "$filter" => o.filter = Some(odata::parse(v)?),
                "$orderby" => {
                    for term in split_top(v, ',') {
                        let (e, desc) = match term.rsplit_once(' ') {
                            Some((e, "desc")) => (e, true),
                            Some((e, "asc")) => (e, false),
                            _ => (term.as_str(), false),
                        };
                        o.order
                            .push((odata::parse(e).map_err(|e| invalid("$orderby", e))?, desc));
                    }
                }
                "$top" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| invalid("$top", format!("{v:?} is not a count")))?;
                    if n > MAX_TOP {
                        return Err(invalid("$top", format!("at most {MAX_TOP}")));
                    }
                    o.top = Some(n);
                }
                "$skip" => {
                    o.skip = v
                        .parse()
                        .map_err(|_| invalid("$skip", format!("{v:?} is not a count")))?;
                }
                "$count" => {
                    o.count = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("$count", "true or false")),
                    };
                }
                "$select" => {
                    o.select = Some(
                        split_top(v, ',')
                            .into_iter()
                            .map(|s| s.trim().to_owned())
                            .collect(),
                    );
                }
                "$expand" => {
                    if depth >= MAX_EXPAND {
                        return Err(invalid(
                            "$expand",
                            format!("nested deeper than {MAX_EXPAND}"),
                        ));
                    }
                    for item in split_top(v, ',') {
                        let (path, inner) = match item.find('(') {
                            Some(i) if item.ends_with(')') => {
                                (&item[..i], &item[i + 1..item.len() - 1])
                            }
                            _ => (item.as_str(), ""),
                        };
                        let nested: Vec<(String, String)> = split_top(inner, ';')
                            .into_iter()
                            .map(|kv| match kv.split_once('=') {
                                Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
                                None => Err(invalid(
                                    "$expand",
                                    format!("{kv:?} is not an option=value"),
                                )),
                            })
                            .collect::<Result<_>>()?;
                        let path: Vec<String> = path.trim().split('/').map(str::to_owned).collect();
                        o.expand.push((path, Self::parse(&nested, depth + 1)?));
                    }
                }
                "$resultFormat" => {
                    return Err(invalid(
                        "$resultFormat",
                        "only the default JSON format is served",
                    ));
                }
                k if k.starts_with('$') => {
                    return Err(Error::Invalid(format!(
                        "unknown query option {k}; known: $filter, $expand, $select, $orderby, $top, $skip, $count"
                    )));
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// A resource path as segments: `Datastreams('x')` → ("Datastreams", Some(id)).
pub(super) fn segments(path: &str) -> Result<Vec<(String, Option<Id>)>> {
    let mut out = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        match seg.find('(') {
            Some(i) if seg.ends_with(')') => {
                out.push((
                    seg[..i].to_owned(),
                    Some(Id::parse(&seg[i + 1..seg.len() - 1])?),
                ));
            }
            _ => out.push((seg.to_owned(), None)),
        }
    }
    Ok(out)
}

/// A SensorThings Observation body (from HTTP or MQTT) as a reading.
pub fn observation_in(path: &str, body: &Value, now: Millis) -> Result<ReadingIn> {
    let segs = segments(path)?;
    let from_path = match segs.as_slice() {
        [(o, None)] if o == "Observations" => None,
        [(d, Some(id)), (o, None)] if d == "Datastreams" && o == "Observations" => Some(id.text()),
        _ => {
            return Err(Error::Invalid(format!(
                "Observations are created at v1.1/Observations or v1.1/Datastreams(id)/Observations, not {path}"
            )));
        }
    };
    let obj = body
        .as_object()
        .ok_or_else(|| Error::Invalid("an Observation is a JSON object".into()))?;
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "result"
                | "phenomenonTime"
                | "resultTime"
                | "Datastream"
                | "FeatureOfInterest"
                | "@iot.id"
        ) {
            return Err(Error::Invalid(format!(
                "{k}: not kept by citytwin (an Observation here has result, phenomenonTime, resultTime and its Datastream)"
            )));
        }
    }
    let value = obj
        .get("result")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .ok_or_else(|| Error::Invalid("result: a finite number is required".into()))?;
    let time = |k: &str| -> Result<Option<Millis>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.contains('/') => Err(Error::Invalid(format!(
                "{k}: an interval; citytwin's readings are instants"
            ))),
            Some(Value::String(s)) => ts::parse(s)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("{k}: {e}"))),
            Some(_) => Err(Error::Invalid(format!("{k}: an ISO 8601 time"))),
        }
    };
    let at = time("phenomenonTime")?
        .or(time("resultTime")?)
        .unwrap_or(now);
    let from_body = match obj.get("Datastream") {
        None => None,
        Some(d) => Some(match d.get("@iot.id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(Error::Invalid(
                    "Datastream: {\"@iot.id\": …} names the datastream".into(),
                ));
            }
        }),
    };
    let sensor = match (from_path, from_body) {
        (Some(p), Some(b)) if p != b => {
            return Err(Error::Invalid(format!(
                "Datastream: the body names {b:?} on the path of {p:?}"
            )));
        }
        (Some(p), _) => p,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(Error::Invalid(
                "Datastream: an Observation names its Datastream".into(),
            ));
        }
    };
    if let Some(Value::Object(f)) = obj.get("FeatureOfInterest")
        && f.get("@iot.id")
            .is_some_and(|i| i.as_str() != Some(sensor.as_str()))
    {
        return Err(Error::Invalid(format!(
            "FeatureOfInterest: a reading of {sensor} is of its own place"
        )));
    }
    Ok(ReadingIn { sensor, at, value })
}
