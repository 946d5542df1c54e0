//! MapLibre expressions: compiled once per style, evaluated per feature and zoom.
//!
//! The subset our styles use and a little more: `get`, `has`, `literal`, `match`, `case`,
//! `interpolate` (linear, exponential), `step`, `zoom`, `heatmap-density`, `geometry-type`,
//! `id`, comparisons, `!`, `all`, `any`, `in`, `coalesce`, `concat`, `to-string`, `to-number`,
//! arithmetic, and legacy zoom functions (`{"stops": [...]}`).

use crate::color::Color;
use citytwin_tiles::Value;
use serde_json::Value as Json;
use std::sync::Arc;

/// A value while an expression is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// missing
    Null,
    /// boolean
    Bool(bool),
    /// number
    Num(f64),
    /// string
    Str(Arc<str>),
    /// colour
    Color(Color),
    /// array (from `literal`)
    Array(Arc<[Val]>),
}

impl Val {
    fn from_json(j: &Json) -> Val {
        match j {
            Json::Null | Json::Object(_) => Val::Null,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Val::Str(s.as_str().into()),
            Json::Array(a) => Val::Array(a.iter().map(Val::from_json).collect()),
        }
    }

    /// A feature attribute as an expression value.
    #[must_use]
    pub fn from_value(v: &Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(i) => Val::Num(*i as f64),
            Value::Float(f) => Val::Num(*f),
            Value::Text(s) => Val::Str(Arc::clone(s)),
        }
    }

    /// The value as a number, if it is one (or a numeric string).
    #[must_use]
    pub fn num(&self) -> Option<f64> {
        match self {
            Val::Num(n) if n.is_finite() => Some(*n),
            Val::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a colour (colour strings parse).
    #[must_use]
    pub fn color(&self) -> Option<Color> {
        match self {
            Val::Color(c) => Some(*c),
            Val::Str(s) => Color::parse(s).ok(),
            _ => None,
        }
    }

    /// Truthiness as MapLibre's `case` and filters see it: only `true` is true.
    #[must_use]
    pub fn truthy(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    /// The value as text, as `to-string` writes it.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(b) => b.to_string(),
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Val::Num(n) => n.to_string(),
            Val::Str(s) => s.to_string(),
            Val::Color(c) => {
                let [r, g, b, _] = c.to_rgba8();
                format!("rgba({r},{g},{b},{})", c.a)
            }
            Val::Array(a) => a.iter().map(Val::text).collect::<Vec<_>>().join(","),
        }
    }
}

/// What an expression may ask about the feature being drawn.
pub trait Props {
    /// The attribute called `key`, if the feature has it.
    fn get(&self, key: &str) -> Option<&Value>;
    /// The feature id.
    fn id(&self) -> Option<i64>;
    /// `Point`, `LineString` or `Polygon`.
    fn geometry_type(&self) -> &'static str;
}

/// A feature with no attributes (background layers, legends).
#[derive(Debug, Clone, Copy)]
pub struct NoProps;

impl Props for NoProps {
    fn get(&self, _: &str) -> Option<&Value> {
        None
    }
    fn id(&self) -> Option<i64> {
        None
    }
    fn geometry_type(&self) -> &'static str {
        "Unknown"
    }
}

/// The context of one evaluation.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// map zoom
    pub zoom: f64,
    /// the feature
    pub props: &'a dyn Props,
    /// density for `heatmap-color`, 0..=1
    pub density: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Min,
    Max,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// a constant
    Lit(Val),
    /// `["get", key]`
    Get(Box<Expr>),
    /// `["has", key]`
    Has(Box<Expr>),
    /// `["zoom"]`
    Zoom,
    /// `["heatmap-density"]`
    Density,
    /// `["geometry-type"]`
    GeometryType,
    /// `["id"]`
    Id,
    /// `["match", input, labels, output, ..., default]`
    Match(Box<Expr>, Vec<(Vec<Val>, Expr)>, Box<Expr>),
    /// `["case", cond, output, ..., default]`
    Case(Vec<(Expr, Expr)>, Box<Expr>),
    /// `["interpolate", kind, input, stop, output, ...]`; base 1 is linear
    Interpolate(f64, Box<Expr>, Vec<(f64, Expr)>),
    /// `["step", input, base, stop, output, ...]`
    Step(Box<Expr>, Box<Expr>, Vec<(f64, Expr)>),
    /// comparison
    #[allow(private_interfaces)]
    Compare(Cmp, Box<Expr>, Box<Expr>),
    /// `["!", e]`
    Not(Box<Expr>),
    /// `["all", ...]`
    All(Vec<Expr>),
    /// `["any", ...]`
    Any(Vec<Expr>),
    /// `["in", needle, haystack]`
    In(Box<Expr>, Box<Expr>),
    /// `["coalesce", ...]`
    Coalesce(Vec<Expr>),
    /// `["concat", ...]`
    Concat(Vec<Expr>),
    /// `["to-string", e]`
    ToString(Box<Expr>),
    /// `["image", name]`: the icon's name (the map checks it is on the sprite)
    Image(Box<Expr>),
    /// `["to-number", e, ...fallbacks]`
    ToNumber(Vec<Expr>),
    /// arithmetic
    #[allow(private_interfaces)]
    Math(Arith, Vec<Expr>),
}

impl Expr {
    /// Compiles a JSON property value or filter. Plain JSON values are constants; arrays whose
    /// first element is an operator are expressions; `{"stops": [...]}` is a legacy zoom
    /// function. Unknown operators are errors naming the operator.
    pub fn compile(j: &Json) -> Result<Expr, String> {
        match j {
            Json::Array(items) => match items.first() {
                Some(Json::String(op)) => compile_op(op, &items[1..]),
                _ => Ok(Expr::Lit(Val::from_json(j))),
            },
            Json::Object(o) if o.contains_key("stops") => compile_function(o),
            Json::Object(_) => Err(format!("unexpected object {j}")),
            _ => Ok(Expr::Lit(Val::from_json(j))),
        }
    }

    /// Evaluates the expression.
    #[must_use]
    pub fn eval(&self, cx: &Ctx<'_>) -> Val {
        match self {
            Expr::Lit(v) => v.clone(),
            Expr::Get(key) => match key.eval(cx) {
                Val::Str(k) => cx.props.get(&k).map_or(Val::Null, Val::from_value),
                _ => Val::Null,
            },
            Expr::Has(key) => match key.eval(cx) {
                Val::Str(k) => Val::Bool(cx.props.get(&k).is_some_and(|v| !v.is_null())),
                _ => Val::Bool(false),
            },
            Expr::Zoom => Val::Num(cx.zoom),
            Expr::Density => Val::Num(cx.density),
            Expr::GeometryType => Val::Str(cx.props.geometry_type().into()),
            Expr::Id => cx.props.id().map_or(Val::Null, |i| Val::Num(i as f64)),
            Expr::Match(input, arms, default) => {
                let v = input.eval(cx);
                arms.iter()
                    .find(|(labels, _)| labels.iter().any(|l| loose_eq(l, &v)))
                    .map_or_else(|| default.eval(cx), |(_, out)| out.eval(cx))
            }
            Expr::Case(arms, default) => arms
                .iter()
                .find(|(cond, _)| cond.eval(cx).truthy())
                .map_or_else(|| default.eval(cx), |(_, out)| out.eval(cx)),
            Expr::Interpolate(base, input, stops) => {
                let Some(x) = input.eval(cx).num() else {
                    return Val::Null;
                };
                interpolate(*base, x, stops, cx)
            }
            Expr::Step(input, first, stops) => {
                let x = input.eval(cx).num().unwrap_or(f64::NEG_INFINITY);
                stops
                    .iter()
                    .rev()
                    .find(|(s, _)| x >= *s)
                    .map_or_else(|| first.eval(cx), |(_, out)| out.eval(cx))
            }
            Expr::Compare(op, a, b) => Val::Bool(compare(*op, &a.eval(cx), &b.eval(cx))),
            Expr::Not(e) => Val::Bool(!e.eval(cx).truthy()),
            Expr::All(es) => Val::Bool(es.iter().all(|e| e.eval(cx).truthy())),
            Expr::Any(es) => Val::Bool(es.iter().any(|e| e.eval(cx).truthy())),
            Expr::In(needle, hay) => {
                let n = needle.eval(cx);
                Val::Bool(match hay.eval(cx) {
                    Val::Array(a) => a.iter().any(|v| loose_eq(v, &n)),
                    Val::Str(s) => s.contains(n.text().as_str()),
                    _ => false,
                })
            }
            Expr::Coalesce(es) => es
                .iter()
                .map(|e| e.eval(cx))
                .find(|v| *v != Val::Null)
                .unwrap_or(Val::Null),
            Expr::Concat(es) => Val::Str(
                es.iter()
                    .map(|e| e.eval(cx).text())
                    .collect::<String>()
                    .into(),
            ),
            Expr::ToString(e) | Expr::Image(e) => Val::Str(e.eval(cx).text().into()),
            Expr::ToNumber(es) => es
                .iter()
                .find_map(|e| e.eval(cx).num())
                .map_or(Val::Null, Val::Num),
            Expr::Math(op, es) => math(*op, es, cx),
        }
    }

    /// Evaluates to a number, or `default` when the result is not one.
    #[must_use]
    pub fn num(&self, cx: &Ctx<'_>, default: f64) -> f64 {
        self.eval(cx).num().unwrap_or(default)
    }

    /// Evaluates to a colour, or `default` when the result is not one.
    #[must_use]
    pub fn color(&self, cx: &Ctx<'_>, default: Color) -> Color {
        self.eval(cx).color().unwrap_or(default)
    }
}

fn loose_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x == y,
        _ => a == b,
    }
}

fn compare(op: Cmp, a: &Val, b: &Val) -> bool {
    let ord = match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        Cmp::Eq => loose_eq(a, b),
        Cmp::Ne => !loose_eq(a, b),
        Cmp::Lt => ord.is_some_and(std::cmp::Ordering::is_lt),
        Cmp::Le => ord.is_some_and(std::cmp::Ordering::is_le),
        Cmp::Gt => ord.is_some_and(std::cmp::Ordering::is_gt),
        Cmp::Ge => ord.is_some_and(std::cmp::Ordering::is_ge),
    }
}

fn math(op: Arith, es: &[Expr], cx: &Ctx<'_>) -> Val {
    let mut nums = es.iter().map(|e| e.eval(cx).num());
    let Some(Some(first)) = nums.next() else {
        return Val::Null;
    };
    if op == Arith::Sub && es.len() == 1 {
        return Val::Num(-first);
    }
    let mut acc = first;
    for n in nums {
        let Some(n) = n else { return Val::Null };
        acc = match op {
            Arith::Add => acc + n,
            Arith::Sub => acc - n,
            Arith::Mul => acc * n,
            Arith::Div => acc / n,
            Arith::Rem => acc % n,
            Arith::Min => acc.min(n),
            Arith::Max => acc.max(n),
        };
    }
    Val::Num(acc)
}

fn interpolate(base: f64, x: f64, stops: &[(f64, Expr)], cx: &Ctx<'_>) -> Val {
    let Some(first) = stops.first() else {
        return Val::Null;
    };
    if x <= first.0 {
        return first.1.eval(cx);
    }
    let Some(i) = stops.iter().position(|(s, _)| *s > x) else {
        return stops.last().map_or(Val::Null, |(_, e)| e.eval(cx));
    };
    let (x0, e0) = &stops[i - 1];
    let (x1, e1) = &stops[i];
    let span = x1 - x0;
    let t = if span <= 0.0 {
        0.0
    } else if (base - 1.0).abs() < 1e-9 {
        (x - x0) / span
    } else {
        (base.powf(x - x0) - 1.0) / (base.powf(span) - 1.0)
    };
    let (a, b) = (e0.eval(cx), e1.eval(cx));
    match (&a, &b) {
        (Val::Num(a), Val::Num(b)) => Val::Num(a + (b - a) * t),
        _ => match (a.color(), b.color()) {
            (Some(ca), Some(cb)) => Val::Color(ca.lerp(cb, t as f32)),
            _ => a,
        },
    }
}

fn arg(args: &[Json], i: usize, op: &str) -> Result<Expr, String> {
    args.get(i)
        .ok_or_else(|| format!("{op:?} needs an argument at position {}", i + 1))
        .and_then(Expr::compile)
}

fn boxed(args: &[Json], i: usize, op: &str) -> Result<Box<Expr>, String> {
    arg(args, i, op).map(Box::new)
}

fn all_args(args: &[Json]) -> Result<Vec<Expr>, String> {
    args.iter().map(Expr::compile).collect()
}

fn stops(pairs: &[Json], op: &str) -> Result<Vec<(f64, Expr)>, String> {
    if !pairs.len().is_multiple_of(2) || pairs.is_empty() {
        return Err(format!("{op:?} needs pairs of stop and output"));
    }
    let mut out: Vec<(f64, Expr)> = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks(2) {
        let s = p[0]
            .as_f64()
            .ok_or_else(|| format!("{op:?} stop {} is not a number", p[0]))?;
        if out.last().is_some_and(|(prev, _)| *prev >= s) {
            return Err(format!("{op:?} stops must increase ({s} does not)"));
        }
        out.push((s, Expr::compile(&p[1])?));
    }
    Ok(out)
}

fn compile_op(op: &str, args: &[Json]) -> Result<Expr, String> {
    let cmp = |c: Cmp| -> Result<Expr, String> {
        Ok(Expr::Compare(c, boxed(args, 0, op)?, boxed(args, 1, op)?))
    };
    let math_op = |a: Arith| all_args(args).map(|es| Expr::Math(a, es));
    match op {
        "literal" => args
            .first()
            .map(|v| Expr::Lit(Val::from_json(v)))
            .ok_or_else(|| "\"literal\" needs a value".to_owned()),
        "get" => {
            if args.len() > 1 {
                return Err("\"get\" from an object is not supported".into());
            }
            Ok(Expr::Get(boxed(args, 0, op)?))
        }
        "has" => Ok(Expr::Has(boxed(args, 0, op)?)),
        "zoom" => Ok(Expr::Zoom),
        "heatmap-density" => Ok(Expr::Density),
        "geometry-type" => Ok(Expr::GeometryType),
        "id" => Ok(Expr::Id),
        "match" => {
            if args.len() < 4 || !args.len().is_multiple_of(2) {
                return Err("\"match\" needs input, label/output pairs and a default".into());
            }
            let input = boxed(args, 0, op)?;
            let mut arms = Vec::new();
            for pair in args[1..args.len() - 1].chunks(2) {
                let labels = match &pair[0] {
                    Json::Array(ls) => ls.iter().map(Val::from_json).collect(),
                    l => vec![Val::from_json(l)],
                };
                arms.push((labels, Expr::compile(&pair[1])?));
            }
            Ok(Expr::Match(input, arms, boxed(args, args.len() - 1, op)?))
        }
        "case" => {
            if args.len() < 3 || args.len().is_multiple_of(2) {
                return Err("\"case\" needs condition/output pairs and a default".into());
            }
            let arms = args[..args.len() - 1]
                .chunks(2)
                .map(|p| Ok((Expr::compile(&p[0])?, Expr::compile(&p[1])?)))
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Expr::Case(arms, boxed(args, args.len() - 1, op)?))
        }
        "interpolate" | "interpolate-hcl" | "interpolate-lab" => {
            let kind = args
                .first()
                .and_then(Json::as_array)
                .ok_or("\"interpolate\" needs an interpolation type")?;
            let base = match kind.first().and_then(Json::as_str) {
                Some("linear") => 1.0,
                Some("exponential") => kind
                    .get(1)
                    .and_then(Json::as_f64)
                    .ok_or("\"exponential\" needs a base")?,
                other => return Err(format!("interpolation {other:?} is not supported")),
            };
            Ok(Expr::Interpolate(
                base,
                boxed(args, 1, op)?,
                stops(&args[2.min(args.len())..], op)?,
            ))
        }
        "step" => Ok(Expr::Step(
            boxed(args, 0, op)?,
            boxed(args, 1, op)?,
            if args.len() > 2 {
                stops(&args[2..], op)?
            } else {
                Vec::new()
            },
        )),
        "==" => cmp(Cmp::Eq),
        "!=" => cmp(Cmp::Ne),
        "<" => cmp(Cmp::Lt),
        "<=" => cmp(Cmp::Le),
        ">" => cmp(Cmp::Gt),
        ">=" => cmp(Cmp::Ge),
        "!" => Ok(Expr::Not(boxed(args, 0, op)?)),
        "all" => all_args(args).map(Expr::All),
        "any" => all_args(args).map(Expr::Any),
        "in" => Ok(Expr::In(boxed(args, 0, op)?, boxed(args, 1, op)?)),
        "coalesce" => all_args(args).map(Expr::Coalesce),
        "concat" => all_args(args).map(Expr::Concat),
        "to-string" => Ok(Expr::ToString(boxed(args, 0, op)?)),
        "image" => Ok(Expr::Image(boxed(args, 0, op)?)),
        "to-number" => all_args(args).map(Expr::ToNumber),
        "+" => math_op(Arith::Add),
        "-" => math_op(Arith::Sub),
        "*" => math_op(Arith::Mul),
        "/" => math_op(Arith::Div),
        "%" => math_op(Arith::Rem),
        "min" => math_op(Arith::Min),
        "max" => math_op(Arith::Max),
        other => Err(format!("expression operator {other:?} is not supported")),
    }
}

/// `{"base": b, "stops": [[zoom, value], ...]}`, optionally with `"property"`.
fn compile_function(o: &serde_json::Map<String, Json>) -> Result<Expr, String> {
    let base = o.get("base").and_then(Json::as_f64).unwrap_or(1.0);
    let pairs = o
        .get("stops")
        .and_then(Json::as_array)
        .ok_or("function \"stops\" must be an array")?;
    let flat: Vec<Json> = pairs
        .iter()
        .flat_map(|p| p.as_array().cloned().unwrap_or_default())
        .collect();
    let input = match o.get("property").and_then(Json::as_str) {
        Some(p) => Expr::Get(Box::new(Expr::Lit(Val::Str(p.into())))),
        None => Expr::Zoom,
    };
    let stops = stops(&flat, "stops")?;
    if o.get("type").and_then(Json::as_str) == Some("interval") {
        let first = stops
            .first()
            .map_or(Expr::Lit(Val::Null), |(_, e)| e.clone());
        return Ok(Expr::Step(Box::new(input), Box::new(first), stops));
    }
    Ok(Expr::Interpolate(base, Box::new(input), stops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct P(Vec<(&'static str, Value)>);
    impl Props for P {
        fn get(&self, key: &str) -> Option<&Value> {
            self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
        }
        fn id(&self) -> Option<i64> {
            Some(7)
        }
        fn geometry_type(&self) -> &'static str {
            "Polygon"
        }
    }

    #[allow(clippy::needless_pass_by_value)]
    fn eval(e: Json, zoom: f64) -> Val {
        let props = P(vec![
            ("class", Value::Text("trunk".into())),
            ("height", Value::Int(30)),
            ("overdue", Value::Bool(true)),
        ]);
        let cx = Ctx {
            zoom,
            props: &props,
            density: 0.5,
        };
        Expr::compile(&e).unwrap().eval(&cx)
    }

    #[test]
    fn the_operators_our_styles_use_evaluate_like_maplibre() {
        assert_eq!(eval(json!(["get", "height"]), 10.0), Val::Num(30.0));
        assert_eq!(eval(json!(["get", "nope"]), 10.0), Val::Null);
        assert_eq!(eval(json!(["has", "overdue"]), 10.0), Val::Bool(true));
        assert_eq!(
            eval(
                json!([
                    "match",
                    ["get", "class"],
                    "motorway",
                    1,
                    ["trunk", "primary"],
                    2,
                    3
                ]),
                10.0
            ),
            Val::Num(2.0)
        );
        assert_eq!(
            eval(
                json!([
                    "case",
                    ["==", ["get", "overdue"], true],
                    "#d50000",
                    "#43a047"
                ]),
                10.0
            )
            .color(),
            Some(Color::parse("#d50000").unwrap())
        );
        let z = json!(["interpolate", ["linear"], ["zoom"], 8, 1, 14, 3]);
        assert_eq!(eval(z.clone(), 5.0), Val::Num(1.0));
        assert_eq!(eval(z.clone(), 11.0), Val::Num(2.0));
        assert_eq!(eval(z, 20.0), Val::Num(3.0));
        let Val::Num(e) = eval(
            json!(["interpolate", ["exponential", 2], ["zoom"], 0, 0, 2, 3]),
            1.0,
        ) else {
            panic!("not a number")
        };
        assert!((e - 1.0).abs() < 1e-9, "{e}");
        assert_eq!(
            eval(json!(["step", ["zoom"], "a", 10, "b", 12, "c"]), 11.0),
            Val::Str("b".into())
        );
        assert_eq!(
            eval(
                json!(["in", ["get", "class"], ["literal", ["motorway", "trunk"]]]),
                1.0
            ),
            Val::Bool(true)
        );
        assert_eq!(
            eval(
                json!(["any", ["!", ["has", "height"]], [">=", ["zoom"], 11]]),
                12.0
            ),
            Val::Bool(true)
        );
        assert_eq!(
            eval(json!(["concat", ["get", "class"], "-", ["id"]]), 1.0),
            Val::Str("trunk-7".into())
        );
        assert_eq!(
            eval(json!(["*", ["get", "height"], 2, ["heatmap-density"]]), 1.0),
            Val::Num(30.0)
        );
        let c = eval(
            json!([
                "interpolate",
                ["linear"],
                ["heatmap-density"],
                0,
                "#000000",
                1,
                "#ffffff"
            ]),
            1.0,
        );
        assert_eq!(c.color().unwrap().to_rgba8(), [128, 128, 128, 255]);
        assert_eq!(
            eval(json!({"base": 1, "stops": [[10, 1], [12, 5]]}), 11.0),
            Val::Num(3.0)
        );
    }

    #[test]
    fn unknown_operators_and_broken_forms_are_named() {
        let err = Expr::compile(&json!(["within", {}])).unwrap_err();
        assert!(err.contains("within"), "{err}");
        assert!(Expr::compile(&json!(["match", ["get", "a"], 1])).is_err());
        assert!(
            Expr::compile(&json!([
                "interpolate",
                ["cubic-bezier", 0, 0, 1, 1],
                ["zoom"],
                1,
                2
            ]))
            .is_err()
        );
        assert!(Expr::compile(&json!(["interpolate", ["linear"], ["zoom"], 5, 1, 3, 2])).is_err());
        assert!(Expr::compile(&json!(["case", true, 1])).is_err());
    }
}
