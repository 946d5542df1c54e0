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
    cmd.args(["-f", "GPKG"])
        .arg(&out)
        .arg(path)
        .arg(&layer)
        .args([
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
    raw.crs = Some(citytwin_tiles::Crs::Wgs84);
    raw.via_gdal = true;
    Ok(raw)
}
