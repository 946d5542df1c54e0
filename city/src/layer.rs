//! Layers, their metadata and their features.

use crate::{Error, Result};
use citytwin_tiles::Value;
use geo::Geometry;
use serde::{Deserialize, Serialize};

/// The type of an attribute column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// 64-bit integer
    Integer,
    /// double-precision number
    Real,
    /// UTF-8 text
    Text,
    /// true/false
    Boolean,
}

impl FieldKind {
    /// The GeoPackage/SQLite column type.
    #[must_use]
    pub fn sql_type(self) -> &'static str {
        match self {
            FieldKind::Integer => "INTEGER",
            FieldKind::Real => "REAL",
            FieldKind::Text => "TEXT",
            FieldKind::Boolean => "BOOLEAN",
        }
    }

    /// The type name TileJSON's `vector_layers[].fields` uses.
    #[must_use]
    pub fn tilejson_type(self) -> &'static str {
        match self {
            FieldKind::Integer | FieldKind::Real => "Number",
            FieldKind::Text => "String",
            FieldKind::Boolean => "Boolean",
        }
    }

    /// The widest kind holding both (integers widen to reals, anything mixed with text is text).
    #[must_use]
    pub fn widen(self, other: FieldKind) -> FieldKind {
        use FieldKind::{Boolean, Integer, Real, Text};
        match (self, other) {
            (a, b) if a == b => a,
            (Integer, Real) | (Real, Integer) => Real,
            (Boolean, Integer) | (Integer, Boolean) => Integer,
            _ => Text,
        }
    }
}

/// One attribute column of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// column name
    pub name: String,
    /// column type
    pub kind: FieldKind,
}

/// The geometry type a layer holds. Single and multi forms share one kind (stored as multi).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GeometryKind {
    /// points
    Point,
    /// lines
    LineString,
    /// polygons
    Polygon,
}

impl GeometryKind {
    /// The kind of one geometry, or `None` for collections.
    #[must_use]
    pub fn of(g: &Geometry<f64>) -> Option<Self> {
        match g {
            Geometry::Point(_) | Geometry::MultiPoint(_) => Some(Self::Point),
            Geometry::LineString(_) | Geometry::MultiLineString(_) | Geometry::Line(_) => {
                Some(Self::LineString)
            }
            Geometry::Polygon(_)
            | Geometry::MultiPolygon(_)
            | Geometry::Rect(_)
            | Geometry::Triangle(_) => Some(Self::Polygon),
            Geometry::GeometryCollection(_) => None,
        }
    }

    /// The GeoPackage geometry type name of the column.
    #[must_use]
    pub fn gpkg_name(self) -> &'static str {
        match self {
            Self::Point => "GEOMETRY",
            Self::LineString => "MULTILINESTRING",
            Self::Polygon => "MULTIPOLYGON",
        }
    }

    /// The name TileJSON and the catalogue show.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Point => "Point",
            Self::LineString => "LineString",
            Self::Polygon => "Polygon",
        }
    }

    /// Parses [`GeometryKind::name`] (and the GeoPackage names).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "POINT" | "MULTIPOINT" | "GEOMETRY" => Some(Self::Point),
            "LINESTRING" | "MULTILINESTRING" => Some(Self::LineString),
            "POLYGON" | "MULTIPOLYGON" => Some(Self::Polygon),
            _ => None,
        }
    }
}

/// What the catalogue knows about a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMeta {
    /// table and URL name
    pub name: String,
    /// human title
    pub title: String,
    /// what the layer holds
    pub description: String,
    /// geometry type
    pub geometry_kind: GeometryKind,
    /// attribute columns
    pub fields: Vec<Field>,
    /// the columns written into tiles; `None` means all
    pub tile_fields: Option<Vec<String>>,
    /// lowest zoom with tiles
    pub minzoom: u8,
    /// highest zoom with full detail (deeper zooms overzoom it)
    pub maxzoom: u8,
    /// where the data came from
    pub source: String,
    /// when the source data was acquired (ISO date), as Data art. 27 requires products to state
    pub acquired: Option<String>,
    /// when the layer last changed (RFC 3339)
    pub updated_at: String,
    /// WGS84 bounds `[west, south, east, north]`
    pub bounds: Option<[f64; 4]>,
    /// number of features
    pub feature_count: u64,
    /// set when the layer is a database table citytwin did not create (published, read-only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalTable>,
    /// the field holding each feature's time (an RFC 3339 timestamp or date as text, or a year
    /// as an integer), which `datetime` queries and temporal filters use
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_field: Option<String>,
    /// the layer's entry in the classified catalogue (owner, share and open class, security
    /// level); a layer without one is treated as not shared and not open
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<crate::catalog::Classification>,
    /// the text field holding each feature's territorial code: readers scoped to a territory
    /// see only the features whose code lies inside theirs
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub territory_field: Option<String>,
    /// the field that identifies a feature across versions of a versioned layer
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_key: Option<String>,
    /// a versioned layer's versions, oldest first (empty: the layer keeps no past)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<crate::versions::Version>,
    /// set on the layer as it was on a past date (the version in force then); never stored
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

/// A table or view of someone else's, served as a layer: where its rows and columns are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalTable {
    /// schema-qualified, quoted table or view name, as it goes into SQL
    pub table: String,
    /// the geometry column
    pub geometry_column: String,
    /// the integer column that identifies a row
    pub id_column: String,
    /// the SRID of the geometries (converted to WGS84 on the way out)
    pub srid: i32,
    /// whether the column declares no SRID, so `srid` is assigned when reading
    #[serde(default)]
    pub assign_srid: bool,
}

impl LayerMeta {
    /// A new layer's metadata with defaults for everything but name and geometry kind.
    #[must_use]
    pub fn new(name: &str, geometry_kind: GeometryKind) -> Self {
        Self {
            name: name.to_owned(),
            title: name.to_owned(),
            description: String::new(),
            geometry_kind,
            fields: Vec::new(),
            tile_fields: None,
            minzoom: 0,
            maxzoom: 14,
            source: String::new(),
            acquired: None,
            updated_at: now_rfc3339(),
            bounds: None,
            feature_count: 0,
            external: None,
            time_field: None,
            classification: None,
            territory_field: None,
            version_key: None,
            versions: Vec::new(),
            as_of: None,
        }
    }

    /// Index of a field by name.
    #[must_use]
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Index of the time field, checked to be text or integer.
    pub fn time_index(&self) -> Result<Option<usize>> {
        let Some(name) = &self.time_field else {
            return Ok(None);
        };
        match self.field_index(name) {
            Some(i) if matches!(self.fields[i].kind, FieldKind::Text | FieldKind::Integer) => {
                Ok(Some(i))
            }
            Some(_) => Err(Error::Invalid(format!(
                "time field {name:?} must hold text (RFC 3339 dates) or integer years"
            ))),
            None => Err(Error::Invalid(format!(
                "time field {name:?} is not a field of layer {}",
                self.name
            ))),
        }
    }

    /// The (index, name) pairs of the fields written into tiles.
    #[must_use]
    pub fn tile_columns(&self) -> Vec<(usize, &str)> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                self.tile_fields
                    .as_ref()
                    .is_none_or(|keep| keep.iter().any(|k| k == &f.name))
            })
            .map(|(i, f)| (i, f.name.as_str()))
            .collect()
    }
}

/// One feature: WGS84 geometry and values aligned with the layer's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// feature id, unique in its layer
    pub id: i64,
    /// geometry in WGS84 longitude/latitude
    pub geometry: Geometry<f64>,
    /// one value per layer field
    pub values: Vec<Value>,
}

/// Checks a layer name: it becomes a table name and a URL segment.
///
/// ```
/// use citytwin_city::layer::check_layer_name;
/// assert!(check_layer_name("buildings").is_ok());
/// assert!(check_layer_name("Buildings").is_err());
/// assert!(check_layer_name("gpkg_contents").is_err());
/// ```
pub fn check_layer_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("gpkg_")
        && !name.starts_with("rtree_")
        && !name.starts_with("citytwin_")
        && !name.starts_with("sqlite_");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidLayerName(name.to_owned()))
    }
}

/// Checks a field name (it becomes a column name).
pub fn check_field_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.eq_ignore_ascii_case("fid")
        && !name.eq_ignore_ascii_case("geom")
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid field name {name:?}: use letters, digits and _, not fid or geom"
        )))
    }
}

/// The current UTC time as RFC 3339.
#[must_use]
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A WGS84 geometry moved to Web Mercator, with its coordinates checked.
pub fn to_mercator(g: &Geometry<f64>) -> Result<Geometry<f64>> {
    use geo::MapCoords;
    g.try_map_coords(|c| {
        check_point((c.x, c.y))?;
        let (x, y) = citytwin_tiles::proj::lonlat_to_mercator(c.x, c.y);
        Ok(geo::Coord { x, y })
    })
}

/// Checks a WGS84 point.
pub fn check_point((lon, lat): (f64, f64)) -> Result<()> {
    if lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-85.06..=85.06).contains(&lat)
    {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "({lon}, {lat}) is not a longitude within -180..180 and a latitude within -85..85"
        )))
    }
}
