//! The OData expressions of SensorThings API 1.1 (`$filter`, and the terms of `$orderby`):
//! comparison, logical and arithmetic operators, string, date, math and geospatial functions,
//! literals of numbers, strings, times, durations and `geography'…'`, and property paths
//! through to-one relations (`Datastream/Thing/name`) and into JSON (`properties/kind`).
//!
//! Written here rather than taken from a crate: the OData crates on crates.io parse OData v4's
//! core subset only (no arithmetic, no `geography'…'` literals, no navigation paths) and
//! bring a calendar and big-decimal stack this server has no other use for.

use crate::{Error, Result};
use geo::{Contains, Distance, Euclidean, Geometry, Intersects, Point};

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// a literal
    Lit(Lit),
    /// a property path, e.g. `["Datastream", "Thing", "name"]`
    Path(Vec<String>),
    /// `a op b`
    Binary(Box<Expr>, Op, Box<Expr>),
    /// `not a`
    Not(Box<Expr>),
    /// `-a`
    Neg(Box<Expr>),
    /// `f(a, …)`
    Call(String, Vec<Expr>),
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `null`
    Null,
    /// `true`, `false`
    Bool(bool),
    /// a number
    Num(f64),
    /// `'text'`
    Str(String),
    /// an instant, in milliseconds since the epoch
    Time(i64),
    /// `duration'P1D'`, in milliseconds
    Duration(i64),
    /// `geography'POINT(118.78 32.04)'`
    Geo(Geometry<f64>),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `or`
    Or,
    /// `and`
    And,
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
    /// `add`
    Add,
    /// `sub`
    Sub,
    /// `mul`
    Mul,
    /// `div`
    Div,
    /// `mod`
    Mod,
}

impl Op {
    fn word(w: &str) -> Option<Self> {
        Some(match w {
            "or" => Self::Or,
            "and" => Self::And,
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            "add" => Self::Add,
            "sub" => Self::Sub,
            "mul" => Self::Mul,
            "div" => Self::Div,
            "mod" => Self::Mod,
            _ => return None,
        })
    }

    fn level(self) -> u8 {
        match self {
            Self::Or => 1,
            Self::And => 2,
            Self::Eq | Self::Ne | Self::Gt | Self::Ge | Self::Lt | Self::Le => 4,
            Self::Add | Self::Sub => 5,
            Self::Mul | Self::Div | Self::Mod => 6,
        }
    }

    /// The comparison with its operands swapped (`1 lt x` is `x gt 1`).
    #[must_use]
    pub fn flipped(self) -> Self {
        match self {
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            o => o,
        }
    }

    /// Whether it compares.
    #[must_use]
    pub fn compares(self) -> bool {
        self.level() == 4
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Lit(Lit),
    Open,
    Close,
    Comma,
}

fn bad(detail: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("$filter: {detail}"))
}

/// Longest input taken, in bytes.
const MAX_LEN: usize = 8_192;
/// Deepest nesting taken.
const MAX_DEPTH: usize = 64;

fn time_literal(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit) {
        let text = if s.len() == 10 {
            format!("{s}T00:00:00Z")
        } else {
            s.to_owned()
        };
        return crate::change::ts::parse(&text).ok();
    }
    None
}

/// An ISO 8601 duration (`P1DT2H30M`, `PT15M`, `P2W`) in milliseconds; years and months are
/// not fixed lengths and are refused.
fn duration(text: &str) -> Result<i64> {
    let rest = text
        .strip_prefix('P')
        .ok_or_else(|| bad(format!("{text:?} is not an ISO 8601 duration")))?;
    let (mut ms, mut num, mut in_time) = (0f64, String::new(), false);
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' | '.' => num.push(c),
            'Y' | 'W' | 'D' | 'H' | 'M' | 'S' => {
                let n: f64 = num
                    .parse()
                    .map_err(|_| bad(format!("{text:?} is not an ISO 8601 duration")))?;
                num.clear();
                let unit = match (c, in_time) {
                    ('W', false) => 604_800_000.0,
                    ('D', false) => 86_400_000.0,
                    ('H', true) => 3_600_000.0,
                    ('M', true) => 60_000.0,
                    ('S', true) => 1_000.0,
                    _ => {
                        return Err(bad(format!(
                            "{text:?}: durations in years or months have no fixed length"
                        )));
                    }
                };
                ms += n * unit;
            }
            _ => return Err(bad(format!("{text:?} is not an ISO 8601 duration"))),
        }
    }
    if !num.is_empty() {
        return Err(bad(format!("{text:?} is not an ISO 8601 duration")));
    }
    Ok(ms as i64)
}

fn lex(text: &str) -> Result<Vec<Tok>> {
    if text.len() > MAX_LEN {
        return Err(bad(format!("longer than {MAX_LEN} bytes")));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted = |i: &mut usize| -> Result<String> {
        // at the opening quote; '' is a quote inside
        let mut s = String::new();
        *i += 1;
        loop {
            match chars.get(*i) {
                None => return Err(bad("a string is not closed")),
                Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                    s.push('\'');
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(*c);
                    *i += 1;
                }
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => out.push(Tok::Lit(Lit::Str(quoted(&mut i)?))),
            '0'..='9' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '.' | ':' | '-' | '+'))
                {
                    // a sign is part of a number only after an exponent or inside a time
                    if matches!(chars[i], '-' | '+') {
                        let so_far = &chars[start..i];
                        let date = chars[i] == '-'
                            && (so_far.len() == 4 || (so_far.len() == 7 && so_far[4] == '-'));
                        let offset = so_far.contains(&'T');
                        let exponent = matches!(chars[i - 1], 'e' | 'E') && !offset;
                        if !(date || offset || exponent) {
                            break;
                        }
                    }
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if let Some(t) = time_literal(&word) {
                    out.push(Tok::Lit(Lit::Time(t)));
                } else {
                    let n: f64 = word
                        .trim_end_matches(['L', 'l', 'M', 'm', 'd', 'D', 'f', 'F'])
                        .parse()
                        .map_err(|_| bad(format!("{word:?} is neither a number nor a time")))?;
                    out.push(Tok::Lit(Lit::Num(n)));
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '@' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || matches!(chars[i], '_' | '/' | '.' | '@' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') {
                    let inner = quoted(&mut i)?;
                    out.push(Tok::Lit(match word.as_str() {
                        "geography" | "geometry" => Lit::Geo(
                            crate::filter::parse_wkt(&inner)
                                .map_err(|e| bad(format!("{word}'{inner}': {e}")))?,
                        ),
                        "duration" => Lit::Duration(duration(&inner)?),
                        _ => return Err(bad(format!("unknown literal type {word:?}"))),
                    }));
                    continue;
                }
                out.push(match word.as_str() {
                    "true" => Tok::Lit(Lit::Bool(true)),
                    "false" => Tok::Lit(Lit::Bool(false)),
                    "null" => Tok::Lit(Lit::Null),
                    _ => Tok::Word(word),
                });
            }
            '-' => {
                out.push(Tok::Word("-".into()));
                i += 1;
            }
            c => return Err(bad(format!("unexpected {c:?}"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expr(&mut self, min: u8) -> Result<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH}")));
        }
        let mut left = self.unary()?;
        while let Some(op) = match self.peek() {
            Some(Tok::Word(w)) => Op::word(w).filter(|op| op.level() >= min),
            _ => None,
        } {
            self.at += 1;
            let right = self.expr(op.level() + 1)?;
            left = Expr::Binary(Box::new(left), op, Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        match self.next() {
            Some(Tok::Word(w)) if w == "not" => Ok(Expr::Not(Box::new(self.expr(3)?))),
            Some(Tok::Word(w)) if w == "-" => Ok(Expr::Neg(Box::new(self.expr(7)?))),
            Some(Tok::Open) => {
                let e = self.expr(0)?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err(bad("a parenthesis is not closed")),
                }
            }
            Some(Tok::Lit(l)) => Ok(Expr::Lit(l)),
            Some(Tok::Word(w)) => {
                if Op::word(&w).is_some() {
                    return Err(bad(format!("{w:?} where a value was expected")));
                }
                if self.peek() == Some(&Tok::Open) {
                    self.at += 1;
                    let mut args = Vec::new();
                    if self.peek() == Some(&Tok::Close) {
                        self.at += 1;
                    } else {
                        loop {
                            args.push(self.expr(0)?);
                            match self.next() {
                                Some(Tok::Comma) => {}
                                Some(Tok::Close) => break,
                                _ => {
                                    return Err(bad(format!(
                                        "the arguments of {w} are not closed"
                                    )));
                                }
                            }
                        }
                    }
                    check_call(&w, args.len())?;
                    return Ok(Expr::Call(w, args));
                }
                let path: Vec<String> = w.split('/').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return Err(bad(format!("{w:?} is not a property path")));
                }
                Ok(Expr::Path(path))
            }
            Some(t) => Err(bad(format!("unexpected {t:?}"))),
            None => Err(bad("ends where a value was expected")),
        }
    }
}

/// The functions known, with how many arguments each takes.
const FUNCTIONS: &[(&str, usize)] = &[
    ("substringof", 2),
    ("contains", 2),
    ("startswith", 2),
    ("endswith", 2),
    ("length", 1),
    ("indexof", 2),
    ("tolower", 1),
    ("toupper", 1),
    ("trim", 1),
    ("concat", 2),
    ("year", 1),
    ("month", 1),
    ("day", 1),
    ("hour", 1),
    ("minute", 1),
    ("second", 1),
    ("now", 0),
    ("round", 1),
    ("floor", 1),
    ("ceiling", 1),
    ("geo.distance", 2),
    ("geo.intersects", 2),
    ("st_intersects", 2),
    ("st_within", 2),
    ("st_contains", 2),
    ("st_disjoint", 2),
    ("st_equals", 2),
];

fn check_call(name: &str, n: usize) -> Result<()> {
    match FUNCTIONS.iter().find(|(f, _)| *f == name) {
        Some((_, want)) if *want == n => Ok(()),
        Some((_, want)) => Err(bad(format!("{name} takes {want} arguments, not {n}"))),
        None => Err(bad(format!(
            "unknown function {name:?}; known: {}",
            FUNCTIONS
                .iter()
                .map(|(f, _)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Parses a `$filter` expression (or an `$orderby` term).
pub fn parse(text: &str) -> Result<Expr> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(bad("empty"));
    }
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
    };
    let e = p.expr(0)?;
    if let Some(t) = p.peek() {
        return Err(bad(format!("unexpected {t:?} after a whole expression")));
    }
    Ok(e)
}

/// A value while evaluating.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// nothing (a missing property, `null`)
    Null,
    /// a truth
    Bool(bool),
    /// a number
    Num(f64),
    /// text
    Str(String),
    /// an instant (ms)
    Time(i64),
    /// a duration (ms)
    Duration(i64),
    /// a geometry
    Geo(Geometry<f64>),
}

impl Val {
    /// A JSON value as an expression's value: GeoJSON objects become geometries.
    #[must_use]
    pub fn from_json(v: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null | J::Array(_) => Self::Null,
            J::Bool(b) => Self::Bool(*b),
            J::Number(n) => n.as_f64().map_or(Self::Null, Self::Num),
            J::String(s) => Self::Str(s.clone()),
            J::Object(_) => geojson::Geometry::from_json_value(v.clone())
                .ok()
                .and_then(|g| Geometry::<f64>::try_from(g).ok())
                .map_or(Self::Null, Self::Geo),
        }
    }

    fn time(&self) -> Option<i64> {
        match self {
            Self::Time(t) => Some(*t),
            // phenomenonTime "a/b": its start
            Self::Str(s) => time_literal(s.split('/').next().unwrap_or(s)),
            _ => None,
        }
    }

    fn truth(&self) -> bool {
        matches!(self, Self::Bool(true))
    }
}

/// What an expression is evaluated against: the value of a property path.
pub trait Scope {
    /// The value at `path` (`Val::Null` when there is none).
    fn get(&self, path: &[String]) -> Val;
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Num(n) => Some(*n),
        _ => None,
    }
}

fn text(v: &Val) -> Option<&str> {
    match v {
        Val::Str(s) => Some(s),
        _ => None,
    }
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Duration(x), Val::Duration(y)) => Some(x.cmp(y)),
        (Val::Time(_), _) | (_, Val::Time(_)) => Some(a.time()?.cmp(&b.time()?)),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn arith(a: &Val, op: Op, b: &Val) -> Val {
    match (a, op, b) {
        (Val::Time(t), Op::Add, Val::Duration(d)) | (Val::Duration(d), Op::Add, Val::Time(t)) => {
            Val::Time(t + d)
        }
        (Val::Time(t), Op::Sub, Val::Duration(d)) => Val::Time(t - d),
        (Val::Time(x), Op::Sub, Val::Time(y)) => Val::Duration(x - y),
        (Val::Str(_), _, _) | (_, _, Val::Str(_)) if a.time().is_some() && b.time().is_none() => {
            arith(&Val::Time(a.time().unwrap_or(0)), op, b)
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => Val::Num(match op {
                Op::Add => x + y,
                Op::Sub => x - y,
                Op::Mul => x * y,
                Op::Div if y != 0.0 => x / y,
                Op::Mod if y != 0.0 => x % y,
                _ => return Val::Null,
            }),
            _ => Val::Null,
        },
    }
}

fn date_part(v: &Val, part: &str) -> Val {
    let Some(t) = v.time() else { return Val::Null };
    let Ok(dt) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1_000_000) else {
        return Val::Null;
    };
    Val::Num(f64::from(match part {
        "year" => dt.year(),
        "month" => i32::from(u8::from(dt.month())),
        "day" => i32::from(dt.day()),
        "hour" => i32::from(dt.hour()),
        "minute" => i32::from(dt.minute()),
        _ => i32::from(dt.second()),
    }))
}

fn geo_pair(a: &Val, b: &Val) -> Option<(Geometry<f64>, Geometry<f64>)> {
    match (a, b) {
        (Val::Geo(x), Val::Geo(y)) => Some((x.clone(), y.clone())),
        _ => None,
    }
}

fn distance(a: &Geometry<f64>, b: &Geometry<f64>) -> Option<f64> {
    match (a, b) {
        (Geometry::Point(p), g) | (g, Geometry::Point(p)) => Some(point_distance(*p, g)),
        _ => None,
    }
}

fn point_distance(p: Point<f64>, g: &Geometry<f64>) -> f64 {
    if g.contains(&p) {
        0.0
    } else {
        Euclidean.distance(&p, g)
    }
}

/// Evaluates an expression.
pub fn eval(e: &Expr, scope: &dyn Scope, now: i64) -> Val {
    match e {
        Expr::Lit(l) => match l {
            Lit::Null => Val::Null,
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Num(n) => Val::Num(*n),
            Lit::Str(s) => Val::Str(s.clone()),
            Lit::Time(t) => Val::Time(*t),
            Lit::Duration(d) => Val::Duration(*d),
            Lit::Geo(g) => Val::Geo(g.clone()),
        },
        Expr::Path(p) => scope.get(p),
        Expr::Not(a) => match eval(a, scope, now) {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Null,
        },
        Expr::Neg(a) => num(&eval(a, scope, now)).map_or(Val::Null, |n| Val::Num(-n)),
        Expr::Binary(a, op, b) => {
            let x = eval(a, scope, now);
            match op {
                Op::And if !x.truth() => return Val::Bool(false),
                Op::Or if x.truth() => return Val::Bool(true),
                _ => {}
            }
            let y = eval(b, scope, now);
            use std::cmp::Ordering as O;
            match op {
                Op::And | Op::Or => Val::Bool(y.truth()),
                Op::Eq => Val::Bool(x == y || compare(&x, &y) == Some(O::Equal)),
                Op::Ne => Val::Bool(!(x == y || compare(&x, &y) == Some(O::Equal))),
                Op::Gt => Val::Bool(compare(&x, &y) == Some(O::Greater)),
                Op::Ge => Val::Bool(matches!(compare(&x, &y), Some(O::Greater | O::Equal))),
                Op::Lt => Val::Bool(compare(&x, &y) == Some(O::Less)),
                Op::Le => Val::Bool(matches!(compare(&x, &y), Some(O::Less | O::Equal))),
                _ => arith(&x, *op, &y),
            }
        }
        Expr::Call(f, args) => {
            let v: Vec<Val> = args.iter().map(|a| eval(a, scope, now)).collect();
            call(f, &v, now)
        }
    }
}

fn call(f: &str, v: &[Val], now: i64) -> Val {
    let s = |i: usize| v.get(i).and_then(text);
    let n = |i: usize| v.get(i).and_then(num);
    let b = Val::Bool;
    match f {
        // substringof(needle, haystack), as SensorThings 1.1 lists it
        "substringof" => s(0).zip(s(1)).map_or(Val::Null, |(x, y)| b(y.contains(x))),
        "contains" => s(0).zip(s(1)).map_or(Val::Null, |(x, y)| b(x.contains(y))),
        "startswith" => s(0)
            .zip(s(1))
            .map_or(Val::Null, |(x, y)| b(x.starts_with(y))),
        "endswith" => s(0).zip(s(1)).map_or(Val::Null, |(x, y)| b(x.ends_with(y))),
        "length" => s(0).map_or(Val::Null, |x| Val::Num(x.chars().count() as f64)),
        "indexof" => s(0).zip(s(1)).map_or(Val::Null, |(x, y)| {
            Val::Num(x.find(y).map_or(-1.0, |i| x[..i].chars().count() as f64))
        }),
        "tolower" => s(0).map_or(Val::Null, |x| Val::Str(x.to_lowercase())),
        "toupper" => s(0).map_or(Val::Null, |x| Val::Str(x.to_uppercase())),
        "trim" => s(0).map_or(Val::Null, |x| Val::Str(x.trim().to_owned())),
        "concat" => s(0)
            .zip(s(1))
            .map_or(Val::Null, |(x, y)| Val::Str(format!("{x}{y}"))),
        "year" | "month" | "day" | "hour" | "minute" | "second" => {
            v.first().map_or(Val::Null, |x| date_part(x, f))
        }
        "now" => Val::Time(now),
        "round" => n(0).map_or(Val::Null, |x| Val::Num(x.round())),
        "floor" => n(0).map_or(Val::Null, |x| Val::Num(x.floor())),
        "ceiling" => n(0).map_or(Val::Null, |x| Val::Num(x.ceil())),
        "geo.distance" => v
            .first()
            .zip(v.get(1))
            .and_then(|(x, y)| geo_pair(x, y))
            .and_then(|(x, y)| distance(&x, &y))
            .map_or(Val::Null, Val::Num),
        "geo.intersects" | "st_intersects" => {
            geo_pair(&v[0], &v[1]).map_or(Val::Null, |(x, y)| b(x.intersects(&y)))
        }
        "st_disjoint" => geo_pair(&v[0], &v[1]).map_or(Val::Null, |(x, y)| b(!x.intersects(&y))),
        "st_within" => geo_pair(&v[0], &v[1]).map_or(Val::Null, |(x, y)| b(y.contains(&x))),
        "st_contains" => geo_pair(&v[0], &v[1]).map_or(Val::Null, |(x, y)| b(x.contains(&y))),
        "st_equals" => geo_pair(&v[0], &v[1]).map_or(Val::Null, |(x, y)| b(x == y)),
        _ => Val::Null,
    }
}

/// Whether an entity passes a filter.
pub fn passes(e: &Expr, scope: &dyn Scope, now: i64) -> bool {
    eval(e, scope, now).truth()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, Val>);
    impl Scope for Map {
        fn get(&self, path: &[String]) -> Val {
            self.0
                .get(path.join("/").as_str())
                .cloned()
                .unwrap_or(Val::Null)
        }
    }

    fn scope() -> Map {
        Map(HashMap::from([
            ("result", Val::Num(4.2)),
            ("name", Val::Str("水位 玄武湖".into())),
            ("phenomenonTime", Val::Str("2026-11-30T08:00:00Z".into())),
            ("Datastream/Thing/name", Val::Str("WL-0001".into())),
            (
                "location",
                Val::Geo(Geometry::Point(Point::new(118.79, 32.07))),
            ),
        ]))
    }

    fn yes(f: &str) -> bool {
        passes(&parse(f).unwrap(), &scope(), 0)
    }

    #[test]
    fn filters_read_as_the_standard_writes_them() {
        assert!(yes("result gt 4 and result lt 5"));
        assert!(yes("result add 1 ge 5.2"));
        assert!(yes("not (result le 4) or false"));
        assert!(yes(
            "phenomenonTime ge 2026-11-30T00:00:00Z and phenomenonTime lt 2026-11-30T08:00:00.001Z"
        ));
        assert!(yes("phenomenonTime gt 2026-11-30T09:00:00+08:00"));
        assert!(yes(
            "phenomenonTime sub duration'PT1H' lt 2026-11-30T07:30:00Z"
        ));
        assert!(yes(
            "substringof('玄武', name) and startswith(Datastream/Thing/name, 'WL-')"
        ));
        assert!(yes(
            "year(phenomenonTime) eq 2026 and hour(phenomenonTime) eq 8"
        ));
        assert!(yes(
            "geo.intersects(location, geography'POLYGON((118.7 32.0, 118.9 32.0, 118.9 32.1, 118.7 32.1, 118.7 32.0))')"
        ));
        assert!(yes(
            "st_within(location, geography'POLYGON((118.7 32.0, 118.9 32.0, 118.9 32.1, 118.7 32.1, 118.7 32.0))')"
        ));
        assert!(yes(
            "geo.distance(location, geography'POINT(118.79 32.06)') lt 0.02"
        ));
        assert!(yes(
            "-result lt 0 and round(result) eq 4 and length(name) eq 6"
        ));
        assert!(!yes("missing eq 1"));
        assert!(yes("missing eq null"));
        assert!(!yes("result eq 'text'"));
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (f, says) in [
            ("result gt", "ends where"),
            ("(result gt 1", "not closed"),
            ("result gt 1 1", "after a whole expression"),
            ("frobnicate(result)", "unknown function"),
            ("startswith(name)", "takes 2 arguments"),
            ("name eq 'open", "not closed"),
            ("geography'POINT(1'", "geography"),
            ("phenomenonTime gt duration'P1Y'", "fixed length"),
            ("result # 1", "unexpected"),
            ("", "empty"),
        ] {
            let e = parse(f).unwrap_err().to_string();
            assert!(e.contains(says), "{f}: {e}");
        }
        assert!(parse(&"(".repeat(100)).is_err());
        assert!(parse(&"a".repeat(10_000)).is_err());
    }
}
