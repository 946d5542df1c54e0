//! Every other format GDAL's vector drivers read — OpenStreetMap PBF, Esri File Geodatabase,
//! KML, GML, DXF, MapInfo, GPX, … — and every CRS it knows (CGCS2000's projected zones such as
//! EPSG:4549 among them), through GDAL's own `ogr2ogr`: the source layer is converted to a
//! temporary GeoPackage in WGS84, which the native reader then takes, so the same validation,
//! repair and all-or-nothing write apply. GDAL's command-line tools are a package the machine
//! installs (Debian's `gdal-bin`); without them the error says what to install.

use super::{Progress, RawLayer, formats};
use crate::{Error, Result};
use std::path::Path;
use std::process::Command;

/// A layer of the base map made from an OpenStreetMap extract: which features, and their tags
/// mapped to the fields of citytwin's own layers (the demo's styles draw them as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Osm {
    /// `building=*` areas: use (the building tag unless `yes`), height (metres, when numeric),
    /// floors (`building:levels`), year (of `start_date`), name
    Buildings,
    /// `highway=*` lines: class (the highway tag), name, lanes, oneway
    Roads,
    /// water areas (`natural=water`, `water=*`, reservoirs and basins): kind, name
    Water,
    /// points of interest (`amenity`, `shop`, `tourism`, `leisure` or `railway` points):
    /// category (the first of those tags), name
    Pois,
}

/// A tag's value as a number of an SQL type, when it is one (SQLite's CAST would make a
/// value such as "approx. 12" 0).
macro_rules! number {
    ($tag:literal, $ty:literal) => {
        concat!(
            "CAST(CASE WHEN hstore_get_value(other_tags,'",
            $tag,
            "') GLOB '[0-9]*' THEN hstore_get_value(other_tags,'",
            $tag,
            "') END AS ",
            $ty,
            ")"
        )
    };
}

impl Osm {
    /// `buildings`, `roads`, `water` or `pois`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "buildings" => Ok(Self::Buildings),
            "roads" => Ok(Self::Roads),
            "water" => Ok(Self::Water),
            "pois" => Ok(Self::Pois),
            other => Err(Error::Invalid(format!(
                "--osm {other:?}: use buildings, roads, water or pois"
            ))),
        }
    }

    /// Its numeric fields: GDAL's SQLite dialect hands computed columns over as text.
    fn numbers(self) -> &'static [(&'static str, crate::layer::FieldKind)] {
        use crate::layer::FieldKind::{Integer, Real};
        match self {
            Self::Buildings => &[("height", Real), ("floors", Integer), ("year", Integer)],
            Self::Roads => &[("lanes", Integer), ("oneway", Integer)],
            Self::Water | Self::Pois => &[],
        }
    }

    /// Its name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Buildings => "buildings",
            Self::Roads => "roads",
            Self::Water => "water",
            Self::Pois => "pois",
        }
    }

    /// The query over GDAL's OSM layers (its SQLite dialect; tags outside GDAL's default
    /// columns are in the `other_tags` hstore).
    fn sql(self) -> &'static str {
        match self {
            Self::Buildings => concat!(
                "SELECT COALESCE(osm_id, osm_way_id) AS osm_id, ",
                "CASE WHEN building IN ('yes', '1', 'true') THEN NULL ELSE building END AS use, ",
                number!("height", "REAL"),
                " AS height, ",
                number!("building:levels", "INTEGER"),
                " AS floors, ",
                "CAST(CASE WHEN substr(hstore_get_value(other_tags,'start_date'),1,4) ",
                "GLOB '[0-9][0-9][0-9][0-9]' THEN substr(hstore_get_value(other_tags,'start_date'),1,4) ",
                "END AS INTEGER) AS year, ",
                "name, geometry FROM multipolygons WHERE building IS NOT NULL"
            ),
            Self::Roads => concat!(
                "SELECT osm_id, highway AS class, name, ",
                number!("lanes", "INTEGER"),
                " AS lanes, ",
                "CASE WHEN hstore_get_value(other_tags,'oneway') IN ('yes', '1', 'true') ",
                "THEN 1 ELSE 0 END AS oneway, ",
                "geometry FROM lines WHERE highway IS NOT NULL"
            ),
            Self::Water => concat!(
                "SELECT COALESCE(osm_id, osm_way_id) AS osm_id, name, ",
                "COALESCE(hstore_get_value(other_tags,'water'), ",
                "CASE WHEN landuse IN ('reservoir', 'basin') THEN landuse END, 'water') AS kind, ",
                "geometry FROM multipolygons WHERE \"natural\" = 'water' ",
                "OR landuse IN ('reservoir', 'basin') OR hstore_get_value(other_tags,'water') IS NOT NULL"
            ),
            Self::Pois => concat!(
                "SELECT osm_id, name, COALESCE(hstore_get_value(other_tags,'amenity'), ",
                "hstore_get_value(other_tags,'shop'), hstore_get_value(other_tags,'tourism'), ",
                "hstore_get_value(other_tags,'leisure'), hstore_get_value(other_tags,'railway')) ",
                "AS category, geometry FROM points WHERE category IS NOT NULL"
            ),
        }
    }
}

/// What to install when GDAL's tools are missing.
const INSTALL: &str = "install GDAL's command-line tools (Debian/Ubuntu: apt install gdal-bin; macOS: brew install gdal)";

/// Whether `ogr2ogr` and `ogrinfo` run here.
#[must_use]
pub fn available() -> bool {
    ["ogr2ogr", "ogrinfo"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The layers GDAL finds in a source.
fn layers(file: &str, path: &Path) -> Result<Vec<String>> {
    let out = Command::new("ogrinfo")
        .args(["-ro", "-q"])
        .arg(path)
        .output()
        .map_err(|e| Error::ImportFile {
            file: file.to_owned(),
            reason: format!("cannot run ogrinfo ({e}): {INSTALL}"),
        })?;
    if !out.status.success() {
        return Err(Error::ImportFile {
            file: file.to_owned(),
            reason: format!(
                "GDAL cannot read it: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    // "1: multipolygons (Multi Polygon)", or "Layer: districts (Multi Polygon)" for drivers
    // that list their layers so
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.trim().split_once(": ")?;
            if n != "Layer" && n.parse::<u32>().is_err() {
                return None;
            }
            let name = rest.rsplit_once(" (").map_or(rest, |(name, _)| name);
            Some(name.trim().to_owned())
        })
        .collect())
}

/// Reads one layer of a source through GDAL, in WGS84. `source_crs` is the source's CRS when it
/// does not say (any definition GDAL takes: `EPSG:4549`, a WKT or PROJ string).
pub(super) fn read(
    path: &Path,
    source_layer: Option<&str>,
    source_crs: Option<&str>,
    osm: Option<Osm>,
    progress: &dyn Progress,
) -> Result<RawLayer> {
    let file = path.display().to_string();
    if !available() {
        return Err(Error::ImportFile {
            file,
            reason: format!(
                "this format is read through GDAL, which is not installed: {INSTALL}; or convert the file to GeoPackage, GeoJSON, FlatGeobuf or Shapefile"
            ),
        });
    }
    let found = layers(&file, path)?;
    let layer = match (source_layer, found.as_slice()) {
        _ if osm.is_some() => String::new(),
        (Some(l), _) if found.iter().any(|f| f == l) => l.to_owned(),
        (Some(l), _) => {
            return Err(Error::ImportFile {
                file,
                reason: format!("no layer {l:?} in it; its layers: {}", found.join(", ")),
            });
        }
        (None, [one]) => one.clone(),
        (None, []) => {
            return Err(Error::ImportFile {
                file,
                reason: "GDAL finds no layer in it".into(),
            });
        }
        (None, many) => {
            return Err(Error::ImportFile {
                file,
                reason: format!(
                    "it holds several layers ({}): choose one with --source-layer",
                    many.join(", ")
                ),
            });
        }
    };
    let dir = tempfile::tempdir().map_err(|e| Error::Io {
        path: std::env::temp_dir().display().to_string(),
        source: e,
    })?;
    let out = dir.path().join("converted.gpkg");
    let mut cmd = Command::new("ogr2ogr");
    cmd.args(["-f", "GPKG"]).arg(&out).arg(path);
    match osm {
        Some(o) => {
            if !found.iter().any(|l| l == "multipolygons") {
                return Err(Error::ImportFile {
                    file,
                    reason: "--osm takes an OpenStreetMap file (.osm.pbf or .osm)".into(),
                });
            }
            cmd.args(["-dialect", "SQLite", "-sql", o.sql()]);
        }
        None => {
            cmd.arg(&layer);
        }
    }
    cmd.args([
        "-t_srs",
        "EPSG:4326",
        "-nln",
        "converted",
        "-lco",
        "GEOMETRY_NAME=geom",
    ])
    // geometries as they are: citytwin validates (and repairs) them itself
    .args(["-dim", "XY", "-nlt", "PROMOTE_TO_MULTI"]);
    if let Some(srs) = source_crs {
        cmd.args(["-s_srs", srs]);
    }
    progress.phase("converting with GDAL", None);
    let done = cmd.output().map_err(|e| Error::ImportFile {
        file: file.clone(),
        reason: format!("cannot run ogr2ogr ({e}): {INSTALL}"),
    })?;
    if !done.status.success() {
        return Err(Error::ImportFile {
            file,
            reason: format!(
                "GDAL could not convert layer {layer:?}: {}",
                String::from_utf8_lossy(&done.stderr).trim()
            ),
        });
    }
    let mut raw = formats::read(
        formats::Format::GeoPackage,
        &out,
        Some("converted"),
        progress,
    )
    .map_err(|e| match e {
        Error::ImportFile { reason, .. } => Error::ImportFile {
            file: file.clone(),
            reason,
        },
        Error::ImportFeature {
            feature, reason, ..
        } => Error::ImportFeature {
            file: file.clone(),
            feature,
            reason,
        },
        other => other,
    })?;
    if let Some(o) = osm {
        retype(&mut raw, o.numbers());
    }
    if raw.features.is_empty()
        && let Some(o) = osm
    {
        return Err(Error::ImportFile {
            file,
            reason: format!("the extract holds nothing for --osm {}", o.name()),
        });
    }
    raw.crs = Some(citytwin_tiles::Crs::Wgs84);
    raw.via_gdal = true;
    Ok(raw)
}

/// Gives fields their numeric kind, parsing their text values (what is not a number is null).
fn retype(raw: &mut RawLayer, numbers: &[(&str, crate::layer::FieldKind)]) {
    use crate::layer::FieldKind;
    use citytwin_tiles::Value;
    for (name, kind) in numbers {
        if let Some(f) = raw.fields.iter_mut().find(|f| f.name == *name) {
            f.kind = *kind;
        }
        for feature in &mut raw.features {
            for (n, v) in &mut feature.properties {
                if n != name {
                    continue;
                }
                let text = match v {
                    Value::Text(t) => t.trim().to_owned(),
                    _ => continue,
                };
                *v = match kind {
                    FieldKind::Integer => text.parse::<i64>().map_or(Value::Null, Value::Int),
                    _ => text.parse::<f64>().map_or(Value::Null, Value::Float),
                };
            }
        }
    }
}
