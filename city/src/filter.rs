//! Attribute, spatial and temporal filters over a layer's index, compiled from CQL2 text.
//!
//! The `cql2` crate parses; this module checks the expression against the layer (every
//! property must exist, literals must fit the property's type, geometries must be valid) and
//! turns it into a predicate evaluated on indexed features, with SQL's three-valued logic: a
//! comparison with a null is unknown, and only features for which the whole filter is true match.

use crate::index::IndexedFeature;
use crate::layer::{FieldKind, LayerMeta};
use crate::temporal::{self, TimeInterval};
use crate::{Error, Result};
use citytwin_tiles::Value;
use citytwin_tiles::proj::mercator_to_lonlat;
use cql2::Expr;
use geo::{BoundingRect, Contains, Distance, Euclidean, Geometry, Intersects, Rect, Relate};
use std::cmp::Ordering;

/// Names a filter may use for the feature's geometry.
pub const GEOMETRY_PROPERTIES: [&str; 2] = ["geometry", "geom"];
/// Name a filter may use for the feature id.
pub const ID_PROPERTY: &str = "id";

/// A compiled filter for one layer.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
    /// Web Mercator area every matching feature touches, when the filter implies one
    pub area: Option<Rect<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spatial {
    Intersects,
    Disjoint,
    Within,
    Contains,
    Touches,
    Overlaps,
    Crosses,
    Equals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Temporal {
    Intersects,
    Disjoint,
    Before,
    After,
    During,
}

#[derive(Debug, Clone)]
enum Operand {
    Field(usize),
    Id,
    Const(Value),
    Lower(Box<Operand>),
}

#[derive(Debug, Clone)]
enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Compare(Operand, Cmp, Operand),
    Like(Operand, String),
    In(Operand, Vec<Value>),
    IsNull(Operand),
    Spatial(Spatial, Box<Geometry<f64>>),
    /// within a distance in Web Mercator units (metres scaled to the query's latitude)
    DWithin(Box<Geometry<f64>>, f64),
    Temporal(Temporal, usize, TimeInterval),
}

/// How deep brackets may nest in a filter. The CQL2 parser backtracks in time exponential in
/// the depth of a malformed filter (found by fuzzing: 16 unclosed parentheses took 3 s, 20
/// took 40 s); 10 is ample for any real filter and costs it at most milliseconds.
pub const MAX_NESTING: usize = 10;

/// The deepest nesting of brackets outside string literals.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max, mut quoted) = (0usize, 0usize, false);
    for c in text.chars() {
        match c {
            // '' inside a literal toggles twice
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

impl Filter {
    /// Parses CQL2 text and compiles it against a layer.
    pub fn parse(text: &str, meta: &LayerMeta) -> Result<Self> {
        if text.len() > 64 * 1024 {
            return Err(Error::Invalid("the filter is longer than 64 KiB".into()));
        }
        if nesting(text) > MAX_NESTING {
            return Err(Error::Invalid(format!(
                "the filter nests brackets deeper than {MAX_NESTING} levels"
            )));
        }
        let expr = cql2::parse_text(text)
            .map_err(|e| Error::Invalid(format!("not valid CQL2 text (or WKT in it): {e}")))?;
        Self::compile(&expr, meta)
    }

    /// Compiles a parsed expression against a layer.
    pub fn compile(expr: &Expr, meta: &LayerMeta) -> Result<Self> {
        let root = Compiler { meta, depth: 0 }.node(expr)?;
        let area = area_of(&root);
        Ok(Self { root, area })
    }

    /// Whether the feature matches (the filter is true for it, not false or unknown).
    #[must_use]
    pub fn matches(&self, f: &IndexedFeature) -> bool {
        eval(&self.root, f) == Some(true)
    }
}

struct Compiler<'a> {
    meta: &'a LayerMeta,
    depth: usize,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

impl Compiler<'_> {
    fn node(&mut self, e: &Expr) -> Result<Node> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(invalid("the filter nests deeper than 64 levels"));
        }
        let out = self.node_inner(e);
        self.depth -= 1;
        out
    }

    fn node_inner(&mut self, e: &Expr) -> Result<Node> {
        let (op, args) = match e {
            Expr::Bool(b) => return Ok(Node::Const(*b)),
            Expr::Operation { op, args } => (op.to_ascii_lowercase(), args),
            other => {
                return Err(invalid(format!(
                    "{} is not a condition",
                    other.to_text().unwrap_or_default()
                )));
            }
        };
        let arity = |n: usize| -> Result<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{op} takes {n} arguments, not {}",
                    args.len()
                )))
            }
        };
        Ok(match op.as_str() {
            "and" => Node::And(args.iter().map(|a| self.node(a)).collect::<Result<_>>()?),
            "or" => Node::Or(args.iter().map(|a| self.node(a)).collect::<Result<_>>()?),
            "not" => {
                arity(1)?;
                Node::Not(Box::new(self.node(&args[0])?))
            }
            "=" | "<>" | "<" | "<=" | ">" | ">=" => {
                arity(2)?;
                let cmp = match op.as_str() {
                    "=" => Cmp::Eq,
                    "<>" => Cmp::Ne,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                let (a, b) = self.typed_pair(&args[0], &args[1])?;
                Node::Compare(a, cmp, b)
            }
            "between" => {
                arity(3)?;
                let (a, lo) = self.typed_pair(&args[0], &args[1])?;
                let (_, hi) = self.typed_pair(&args[0], &args[2])?;
                Node::And(vec![
                    Node::Compare(a.clone(), Cmp::Ge, lo),
                    Node::Compare(a, Cmp::Le, hi),
                ])
            }
            "like" => {
                arity(2)?;
                let a = self.operand(&args[0])?;
                if let Some(kind) = self.kind_of(&a)
                    && kind != FieldKind::Text
                {
                    return Err(invalid(format!(
                        "LIKE needs a text property; {} is not text",
                        args[0].to_text().unwrap_or_default()
                    )));
                }
                let pattern = match self.operand(&args[1])? {
                    Operand::Const(Value::Text(t)) => t.to_string(),
                    Operand::Lower(inner) => match *inner {
                        Operand::Const(Value::Text(t)) => t.to_lowercase(),
                        _ => return Err(invalid("the pattern of LIKE must be a text literal")),
                    },
                    _ => return Err(invalid("the pattern of LIKE must be a text literal")),
                };
                Node::Like(a, pattern)
            }
            "in" => {
                arity(2)?;
                let a = self.operand(&args[0])?;
                let Expr::Array(items) = &*args[1] else {
                    return Err(invalid("IN needs a list of values"));
                };
                let kind = self.kind_of(&a);
                let values = items
                    .iter()
                    .map(|i| match self.operand(i)? {
                        Operand::Const(v) => coerce(v, kind, &args[0]),
                        _ => Err(invalid("IN takes literal values only")),
                    })
                    .collect::<Result<_>>()?;
                Node::In(a, values)
            }
            "isnull" => {
                arity(1)?;
                Node::IsNull(self.operand(&args[0])?)
            }
            "s_intersects" | "s_disjoint" | "s_within" | "s_contains" | "s_touches"
            | "s_overlaps" | "s_crosses" | "s_equals" => {
                arity(2)?;
                let g = Self::geometry_arg(args)?;
                let kind = match op.as_str() {
                    "s_intersects" => Spatial::Intersects,
                    "s_disjoint" => Spatial::Disjoint,
                    "s_within" => Spatial::Within,
                    "s_contains" => Spatial::Contains,
                    "s_touches" => Spatial::Touches,
                    "s_overlaps" => Spatial::Overlaps,
                    "s_crosses" => Spatial::Crosses,
                    _ => Spatial::Equals,
                };
                Node::Spatial(kind, Box::new(g))
            }
            "s_dwithin" => {
                if !(3..=4).contains(&args.len()) {
                    return Err(invalid(
                        "S_DWITHIN takes a property, a geometry and a distance in metres",
                    ));
                }
                let g = Self::geometry_arg(&args[..2])?;
                let metres = match &*args[2] {
                    Expr::Float(d) if d.is_finite() && *d >= 0.0 => *d,
                    _ => return Err(invalid("the distance of S_DWITHIN must be metres ≥ 0")),
                };
                if let Some(unit) = args.get(3) {
                    match &**unit {
                        Expr::Literal(u) | Expr::Property { property: u }
                            if matches!(u.as_str(), "m" | "meters" | "metres") => {}
                        _ => return Err(invalid("S_DWITHIN measures in metres only")),
                    }
                }
                let lat = g
                    .bounding_rect()
                    .map_or(0.0, |r| mercator_to_lonlat(r.center().x, r.center().y).1);
                Node::DWithin(Box::new(g), metres / lat.to_radians().cos().max(0.01))
            }
            "t_intersects" | "t_disjoint" | "t_before" | "t_after" | "t_during" => {
                arity(2)?;
                let field = self.time_property(&args[0])?;
                let window = Self::time_literal(&args[1])?;
                let kind = match op.as_str() {
                    "t_intersects" => Temporal::Intersects,
                    "t_disjoint" => Temporal::Disjoint,
                    "t_before" => Temporal::Before,
                    "t_after" => Temporal::After,
                    _ => Temporal::During,
                };
                Node::Temporal(kind, field, window)
            }
            other => {
                return Err(invalid(format!(
                    "operator {other} is not supported (comparisons, AND/OR/NOT, LIKE, IN, \
                     BETWEEN, IS NULL, CASEI, S_INTERSECTS/S_DISJOINT/S_WITHIN/S_CONTAINS/\
                     S_TOUCHES/S_OVERLAPS/S_CROSSES/S_EQUALS/S_DWITHIN, T_INTERSECTS/T_DISJOINT/T_BEFORE/T_AFTER/T_DURING are)"
                )));
            }
        })
    }

    fn property(&self, name: &str) -> Result<Operand> {
        if name == ID_PROPERTY {
            return Ok(Operand::Id);
        }
        self.meta
            .field_index(name)
            .map(Operand::Field)
            .ok_or_else(|| {
                invalid(format!(
                    "unknown property {name:?}; the queryables of {} are {}",
                    self.meta.name,
                    std::iter::once("id")
                        .chain(self.meta.fields.iter().map(|f| f.name.as_str()))
                        .chain(["geometry"])
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    fn operand(&mut self, e: &Expr) -> Result<Operand> {
        Ok(match e {
            Expr::Property { property } => self.property(property)?,
            Expr::Float(v) => Operand::Const(if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Value::Int(*v as i64)
            } else {
                Value::Float(*v)
            }),
            Expr::Literal(s) => Operand::Const(Value::from(s.as_str())),
            Expr::Bool(b) => Operand::Const(Value::Bool(*b)),
            Expr::Null => Operand::Const(Value::Null),
            Expr::Operation { op, args } if op.eq_ignore_ascii_case("casei") && args.len() == 1 => {
                Operand::Lower(Box::new(self.operand(&args[0])?))
            }
            Expr::Operation { op, args }
                if op.eq_ignore_ascii_case("accenti") && args.len() == 1 =>
            {
                self.operand(&args[0])?
            }
            other => {
                return Err(invalid(format!(
                    "{} cannot be compared here",
                    other.to_text().unwrap_or_default()
                )));
            }
        })
    }

    fn kind_of(&self, o: &Operand) -> Option<FieldKind> {
        match o {
            Operand::Field(i) => Some(self.meta.fields[*i].kind),
            Operand::Id => Some(FieldKind::Integer),
            Operand::Lower(inner) => self.kind_of(inner),
            Operand::Const(_) => None,
        }
    }

    /// Two operands of a comparison, with the literal coerced to the property's type.
    fn typed_pair(&mut self, a: &Expr, b: &Expr) -> Result<(Operand, Operand)> {
        let x = self.operand(a)?;
        let y = self.operand(b)?;
        let coerce_side = |o: Operand, kind: Option<FieldKind>, name: &Expr| -> Result<Operand> {
            Ok(match o {
                Operand::Const(v) => Operand::Const(coerce(v, kind, name)?),
                Operand::Lower(inner) => match *inner {
                    Operand::Const(v) => Operand::Const(Value::from(
                        coerce(v, kind, name)?.to_string().to_lowercase().as_str(),
                    )),
                    other => Operand::Lower(Box::new(other)),
                },
                other => other,
            })
        };
        let (kx, ky) = (self.kind_of(&x), self.kind_of(&y));
        Ok((coerce_side(x, ky, b)?, coerce_side(y, kx, a)?))
    }

    fn geometry_arg(args: &[Box<Expr>]) -> Result<Geometry<f64>> {
        let ((Expr::Property { property: prop }, Expr::Geometry(geom))
        | (Expr::Geometry(geom), Expr::Property { property: prop })) = (&*args[0], &*args[1])
        else {
            return Err(invalid(
                "spatial operators compare the geometry property with a WKT geometry",
            ));
        };
        if !GEOMETRY_PROPERTIES.contains(&prop.as_str()) {
            return Err(invalid(format!(
                "unknown geometry property {prop:?}; use \"geometry\""
            )));
        }
        let g = match geom {
            cql2::Geometry::Wkt(text) => parse_wkt(text)?,
            cql2::Geometry::GeoJSON(g) => Geometry::<f64>::try_from(g.clone())
                .map_err(|e| invalid(format!("invalid geometry: {e}")))?,
        };
        crate::layer::to_mercator(&g)
    }

    fn time_property(&self, e: &Expr) -> Result<usize> {
        let Expr::Property { property } = e else {
            return Err(invalid(
                "temporal operators take the time property as their first argument",
            ));
        };
        let field = self.meta.time_index()?;
        match field {
            Some(i) if self.meta.fields[i].name == *property || property == "datetime" => Ok(i),
            Some(i) => Err(invalid(format!(
                "{property:?} is not the time property of {}; it is {:?}",
                self.meta.name, self.meta.fields[i].name
            ))),
            None => Err(invalid(format!(
                "layer {} has no time property",
                self.meta.name
            ))),
        }
    }

    fn time_literal(e: &Expr) -> Result<TimeInterval> {
        let text = |e: &Expr| -> Result<String> {
            match e {
                Expr::Literal(s) => Ok(s.clone()),
                Expr::Timestamp { timestamp: t } | Expr::Date { date: t } => match &**t {
                    Expr::Literal(s) => Ok(s.clone()),
                    _ => Err(invalid("a timestamp must be a text literal")),
                },
                _ => Err(invalid(
                    "temporal operators take TIMESTAMP, DATE or INTERVAL literals",
                )),
            }
        };
        match e {
            Expr::Interval { interval } if interval.len() == 2 => {
                let a = text(&interval[0])?;
                let b = text(&interval[1])?;
                TimeInterval::parse_window(&format!("{a}/{b}"))
            }
            other => temporal::parse_instant(&text(other)?),
        }
    }
}

/// Parses WKT in longitude/latitude.
pub fn parse_wkt(text: &str) -> Result<Geometry<f64>> {
    let w: wkt::Wkt<f64> = text
        .parse()
        .map_err(|e| invalid(format!("invalid WKT {text:?}: {e}")))?;
    Geometry::try_from(w).map_err(|e| invalid(format!("invalid WKT {text:?}: {e}")))
}

/// Coerces a literal to a property's kind: numbers to numbers, numeric text to numbers.
fn coerce(v: Value, kind: Option<FieldKind>, prop: &Expr) -> Result<Value> {
    let name = || prop.to_text().unwrap_or_default();
    Ok(match (kind, v) {
        (Some(FieldKind::Text), Value::Int(i)) => Value::from(i.to_string().as_str()),
        (Some(FieldKind::Text), Value::Float(f)) => Value::from(f.to_string().as_str()),
        (Some(FieldKind::Integer | FieldKind::Real), Value::Text(t)) => {
            match t.trim().parse::<f64>() {
                Ok(f) => Value::Float(f),
                Err(_) => {
                    return Err(invalid(format!(
                        "{} is a number, not comparable with {t:?}",
                        name()
                    )));
                }
            }
        }
        (Some(FieldKind::Boolean), Value::Text(t)) => match t.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(invalid(format!("{} is true or false, not {t:?}", name()))),
        },
        (_, v) => v,
    })
}

/// The Web Mercator area a node confines matches to, if any.
fn area_of(n: &Node) -> Option<Rect<f64>> {
    match n {
        Node::Spatial(Spatial::Disjoint, _) => None,
        // every other spatial relation implies the two intersect
        Node::Spatial(_, g) => g.bounding_rect(),
        Node::DWithin(g, d) => g.bounding_rect().map(|r| {
            Rect::new(
                geo::coord! { x: r.min().x - d, y: r.min().y - d },
                geo::coord! { x: r.max().x + d, y: r.max().y + d },
            )
        }),
        Node::And(parts) => parts.iter().filter_map(area_of).reduce(|a, b| {
            let min_x = a.min().x.max(b.min().x);
            let min_y = a.min().y.max(b.min().y);
            let max_x = a.max().x.min(b.max().x).max(min_x);
            let max_y = a.max().y.min(b.max().y).max(min_y);
            Rect::new(
                geo::coord! { x: min_x, y: min_y },
                geo::coord! { x: max_x, y: max_y },
            )
        }),
        Node::Or(parts) => {
            let areas: Option<Vec<Rect<f64>>> = parts.iter().map(area_of).collect();
            areas?.into_iter().reduce(|a, b| {
                Rect::new(
                    geo::coord! { x: a.min().x.min(b.min().x), y: a.min().y.min(b.min().y) },
                    geo::coord! { x: a.max().x.max(b.max().x), y: a.max().y.max(b.max().y) },
                )
            })
        }
        _ => None,
    }
}

fn value_of<'a>(o: &'a Operand, f: &'a IndexedFeature) -> std::borrow::Cow<'a, Value> {
    use std::borrow::Cow;
    match o {
        Operand::Field(i) => Cow::Borrowed(&f.values[*i]),
        Operand::Id => Cow::Owned(Value::Int(f.id)),
        Operand::Const(v) => Cow::Borrowed(v),
        Operand::Lower(inner) => match value_of(inner, f).as_ref() {
            Value::Text(t) => Cow::Owned(Value::from(t.to_lowercase().as_str())),
            other => Cow::Owned(other.clone()),
        },
    }
}

/// Orders two non-null values of comparable types; `None` when they are not comparable.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn eval(n: &Node, f: &IndexedFeature) -> Option<bool> {
    match n {
        Node::Const(b) => Some(*b),
        Node::And(parts) => {
            let mut unknown = false;
            for p in parts {
                match eval(p, f) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            (!unknown).then_some(true)
        }
        Node::Or(parts) => {
            let mut unknown = false;
            for p in parts {
                match eval(p, f) {
                    Some(true) => return Some(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            (!unknown).then_some(false)
        }
        Node::Not(inner) => eval(inner, f).map(|b| !b),
        Node::Compare(a, cmp, b) => {
            let (a, b) = (value_of(a, f), value_of(b, f));
            if matches!(*a, Value::Null) || matches!(*b, Value::Null) {
                return None;
            }
            let o = order(&a, &b)?;
            Some(match cmp {
                Cmp::Eq => o == Ordering::Equal,
                Cmp::Ne => o != Ordering::Equal,
                Cmp::Lt => o == Ordering::Less,
                Cmp::Le => o != Ordering::Greater,
                Cmp::Gt => o == Ordering::Greater,
                Cmp::Ge => o != Ordering::Less,
            })
        }
        Node::Like(a, pattern) => match value_of(a, f).as_ref() {
            Value::Text(t) => like::Like::<true>::like(t.as_ref(), pattern.as_str()).ok(),
            _ => None,
        },
        Node::In(a, values) => {
            let a = value_of(a, f);
            if matches!(*a, Value::Null) {
                return None;
            }
            Some(values.iter().any(|v| order(&a, v) == Some(Ordering::Equal)))
        }
        Node::IsNull(a) => Some(matches!(*value_of(a, f), Value::Null)),
        Node::Spatial(kind, g) => Some(match kind {
            Spatial::Intersects => g.intersects(&f.geometry),
            Spatial::Disjoint => !g.intersects(&f.geometry),
            Spatial::Within => g.contains(&f.geometry),
            Spatial::Contains => f.geometry.contains(&**g),
            Spatial::Touches => f.geometry.relate(&**g).is_touches(),
            Spatial::Overlaps => f.geometry.relate(&**g).is_overlaps(),
            Spatial::Crosses => f.geometry.relate(&**g).is_crosses(),
            Spatial::Equals => f.geometry.relate(&**g).is_equal_topo(),
        }),
        Node::DWithin(g, d) => Some(Euclidean.distance(&f.geometry, &**g) <= *d),
        Node::Temporal(kind, field, window) => {
            let t = temporal::of_value(&f.values[*field])?;
            Some(match kind {
                Temporal::Intersects => t.intersects(window),
                Temporal::Disjoint => !t.intersects(window),
                Temporal::Before => t.end < window.start,
                Temporal::After => t.start > window.end,
                Temporal::During => t.start >= window.start && t.end <= window.end,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Field, GeometryKind};
    use citytwin_tiles::proj::lonlat_to_mercator;
    use geo::Point;

    fn meta() -> LayerMeta {
        let mut m = LayerMeta::new("pois", GeometryKind::Point);
        m.fields = vec![
            Field {
                name: "name".into(),
                kind: FieldKind::Text,
            },
            Field {
                name: "height".into(),
                kind: FieldKind::Real,
            },
            Field {
                name: "year".into(),
                kind: FieldKind::Integer,
            },
        ];
        m.time_field = Some("year".into());
        m
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_backtracks() {
        // the case fuzzing found: parentheses left open, the parser's time doubling with each
        let deep = format!("height = {}1", "(".repeat(40));
        let e = Filter::parse(&deep, &meta()).unwrap_err();
        assert!(e.to_string().contains("deeper than 10"), "{e}");
        // brackets inside a string literal do not count; real filters nest far less
        assert!(Filter::parse("name = '((((((((((((((('", &meta()).is_ok());
        let ok = format!("{}height > 1{}", "(".repeat(10), ")".repeat(10));
        assert!(Filter::parse(&ok, &meta()).is_ok());
        assert_eq!(nesting("a IN (1, (2)) AND b = '(('"), 2);
    }

    fn feature(
        id: i64,
        lon: f64,
        lat: f64,
        name: &str,
        height: Option<f64>,
        year: i64,
    ) -> IndexedFeature {
        let (x, y) = lonlat_to_mercator(lon, lat);
        IndexedFeature {
            id,
            geometry: Point::new(x, y).into(),
            values: vec![
                Value::from(name),
                height.map_or(Value::Null, Value::Float),
                Value::Int(year),
            ]
            .into_boxed_slice(),
            size: 0.0,
            anchor: geo::coord! { x: x, y: y },
        }
    }

    fn ids(text: &str) -> Vec<i64> {
        let f = Filter::parse(text, &meta()).unwrap();
        [
            feature(1, 118.78, 32.04, "新街口站", Some(30.0), 2005),
            feature(2, 118.79, 32.05, "Gulou Hospital", None, 2019),
            feature(3, 118.90, 32.10, "仙林湖", Some(3.5), 2021),
        ]
        .iter()
        .filter(|x| f.matches(x))
        .map(|x| x.id)
        .collect()
    }

    #[test]
    fn comparisons_logic_and_nulls() {
        assert_eq!(ids("height > 10"), vec![1]);
        assert_eq!(ids("height >= 3.5 AND year > 2010"), vec![3]);
        assert_eq!(
            ids("NOT height > 10"),
            vec![3],
            "unknown stays unknown under NOT"
        );
        assert_eq!(ids("height > 10 OR year = 2019"), vec![1, 2]);
        assert_eq!(ids("height IS NULL"), vec![2]);
        assert_eq!(ids("height IS NOT NULL"), vec![1, 3]);
        assert_eq!(ids("year BETWEEN 2006 AND 2021"), vec![2, 3]);
        assert_eq!(ids("year IN (2005, 2021)"), vec![1, 3]);
        assert_eq!(ids("id <> 2"), vec![1, 3]);
        assert_eq!(
            ids("height > '10'"),
            vec![1],
            "numeric text is read as a number"
        );
    }

    #[test]
    fn like_casei_and_unicode() {
        assert_eq!(ids("name LIKE '%站'"), vec![1]);
        assert_eq!(ids("name LIKE 'G_lou%'"), vec![2]);
        assert_eq!(ids("CASEI(name) LIKE CASEI('gulou%')"), vec![2]);
        assert_eq!(ids("name NOT LIKE '%湖'"), vec![1, 2]);
    }

    #[test]
    fn spatial_and_temporal() {
        assert_eq!(
            ids(
                "S_INTERSECTS(geometry, POLYGON((118.7 32.0, 118.8 32.0, 118.8 32.06, 118.7 32.06, 118.7 32.0)))"
            ),
            vec![1, 2]
        );
        assert_eq!(
            ids(
                "S_WITHIN(geometry, POLYGON((118.85 32.0, 119 32.0, 119 32.2, 118.85 32.2, 118.85 32.0)))"
            ),
            vec![3]
        );
        // 新街口站 to Gulou Hospital is about 1.45 km
        assert_eq!(
            ids("S_DWITHIN(geometry, POINT(118.78 32.04), 1000)"),
            vec![1]
        );
        assert_eq!(
            ids("S_DWITHIN(geometry, POINT(118.78 32.04), 2000)"),
            vec![1, 2]
        );
        assert_eq!(
            ids("T_INTERSECTS(year, INTERVAL('2019-06-01', '2022-01-01'))"),
            vec![2, 3]
        );
        assert_eq!(ids("T_BEFORE(year, DATE('2019-01-01'))"), vec![1]);
        let f = Filter::parse(
            "S_INTERSECTS(geometry, POINT(118.78 32.04)) AND year > 1",
            &meta(),
        )
        .unwrap();
        assert!(f.area.is_some());
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let err = |t: &str| Filter::parse(t, &meta()).unwrap_err().to_string();
        assert!(err("colour = 'red'").contains("unknown property \"colour\""));
        assert!(err("height > 'tall'").contains("not comparable"));
        assert!(err("S_INTERSECTS(geometry, POLYGON((1 2, 3)))").contains("WKT"));
        assert!(err("S_INTERSECTS(geometry, POINT(500 32))").contains("longitude"));
        assert!(err("height >").contains("CQL2"));
        assert!(err("year LIKE '20%'").contains("LIKE"));
        assert!(err("T_INTERSECTS(name, DATE('2020-01-01'))").contains("time property"));
    }
}
