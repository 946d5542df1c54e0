//! Query-string parameters read by name, so every bad value is a 400 naming its parameter.

use crate::problem::{ApiResult, Problem};
use axum::extract::{FromRequestParts, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use std::collections::HashMap;

/// The query string of a request.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::from_uri(&parts.uri)
    }
}

impl Params {
    /// The parameters of a request's URI, each at most once.
    pub fn from_uri(uri: &Uri) -> ApiResult<Self> {
        let Query(map) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| Problem::bad_parameter("query", e.body_text()))?;
        let mut out = HashMap::new();
        for (k, v) in map {
            if out.insert(k.clone(), v).is_some() {
                return Err(Problem::bad_parameter(&k, format!("{k} is given twice")));
            }
        }
        Ok(Self(out))
    }

    /// Rejects parameters this endpoint does not define.
    pub fn only(&self, known: &[&str]) -> ApiResult<()> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(Problem::bad_parameter(
                k,
                format!(
                    "unknown parameter {k:?}; this endpoint takes {}",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    /// A text parameter, if given (empty counts as not given).
    #[must_use]
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Refuses a given value that is not of its parameter's kind; `expect` says what it should be.
    pub fn check(&self, name: &str, ok: impl Fn(&str) -> bool, expect: &str) -> ApiResult<()> {
        match self.text(name) {
            Some(v) if !ok(v) => Err(Problem::bad_parameter(
                name,
                format!("{name} is {expect}, not {v:?}"),
            )),
            _ => Ok(()),
        }
    }

    /// An optional `true` or `false` (nothing else: not 1, yes or on).
    pub fn flag(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.text(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(Problem::bad_parameter(
                name,
                format!("{name} is true or false, not {v:?}"),
            )),
        }
    }

    /// An optional sequence number of the change log or audit log (0 to 2⁶³ − 1, as stored).
    pub fn seq(&self, name: &str) -> ApiResult<Option<u64>> {
        self.text(name).map(|v| seq_number(name, v)).transpose()
    }

    /// A required number.
    pub fn f64(&self, name: &str) -> ApiResult<f64> {
        self.opt_f64(name)?
            .ok_or_else(|| Problem::bad_parameter(name, format!("{name} is required")))
    }

    /// An optional finite number.
    pub fn opt_f64(&self, name: &str) -> ApiResult<Option<f64>> {
        self.text(name)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        Problem::bad_parameter(name, format!("{name} must be a number, not {v:?}"))
                    })
            })
            .transpose()
    }

    /// A count within `1..=max`, `default` when absent.
    pub fn count(&self, name: &str, default: usize, max: usize) -> ApiResult<usize> {
        let Some(v) = self.text(name) else {
            return Ok(default);
        };
        match v.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            Ok(n) => Err(Problem::bad_parameter(
                name,
                format!("{name} {n} is not within 1..={max}"),
            )),
            Err(_) => Err(Problem::bad_parameter(
                name,
                format!("{name} must be a whole number, not {v:?}"),
            )),
        }
    }

    /// An offset ≥ 0, 0 when absent.
    pub fn offset(&self, name: &str) -> ApiResult<usize> {
        self.text(name).map_or(Ok(0), |v| {
            v.trim().parse::<usize>().map_err(|_| {
                Problem::bad_parameter(name, format!("{name} must be a whole number ≥ 0"))
            })
        })
    }

    /// A WGS84 bbox `west,south,east,north`.
    pub fn bbox(&self, name: &str) -> ApiResult<Option<[f64; 4]>> {
        let Some(v) = self.text(name) else {
            return Ok(None);
        };
        let parts: Vec<f64> = v
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                Problem::bad_parameter(name, format!("{name} {v:?} is not four numbers"))
            })?;
        match parts.as_slice() {
            // 2D, or 3D with the heights ignored
            [w, s, e, n] | [w, s, _, e, n, _] => Ok(Some([*w, *s, *e, *n])),
            _ => Err(Problem::bad_parameter(
                name,
                format!(
                    "{name} needs 4 numbers west,south,east,north; got {}",
                    parts.len()
                ),
            )),
        }
    }
}

/// A category or type: 1 to 64 lowercase letters, digits and `-`.
#[must_use]
pub fn is_slug(v: &str) -> bool {
    citytwin_city::live::check_slug("", v).is_ok()
}

/// A territorial code: 1 to 32 digits.
#[must_use]
pub fn is_code(v: &str) -> bool {
    (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
}

/// The kind of a parameter holding a category or type.
pub const SLUG: &str = "1 to 64 lowercase letters, digits and -";
/// The kind of a parameter holding a territorial code.
pub const CODE: &str = "a territorial code (digits)";

/// A layer name: 1 to 63 lowercase letters, digits or `_`, starting with a letter.
#[must_use]
pub fn is_layer(v: &str) -> bool {
    (1..=63).contains(&v.len())
        && v.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The kind of a parameter holding a layer name.
pub const LAYER: &str = "a layer name (lowercase letters, digits and _)";

/// A sequence number of the change log or audit log (0 to 2⁶³ − 1, as stored), given as `name`.
pub fn seq_number(name: &str, v: &str) -> ApiResult<u64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(i64::unsigned_abs)
        .ok_or_else(|| {
            Problem::bad_parameter(
                name,
                format!("{name} must be a sequence number (0 to 2^63 - 1), not {v:?}"),
            )
        })
}
