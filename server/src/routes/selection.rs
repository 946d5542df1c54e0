//! The parameters every feature query shares: `bbox`, `datetime`, `filter` (CQL2 text).

use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use citytwin_city::LayerMeta;
use citytwin_city::filter::Filter;
use citytwin_city::query::{Selection, mercator_rect};
use citytwin_city::temporal::TimeInterval;

/// Names of the parameters [`selection`] reads.
pub const SELECTION_PARAMS: [&str; 5] = ["bbox", "bbox-crs", "datetime", "filter", "filter-lang"];

/// Builds the selection a request asks for from a layer.
pub fn selection(p: &Params, meta: &LayerMeta) -> ApiResult<Selection> {
    let bbox = p
        .bbox("bbox")?
        .map(mercator_rect)
        .transpose()
        .map_err(|e| Problem::bad_parameter("bbox", e.to_string()))?;
    if let Some(crs) = p.text("bbox-crs")
        && !is_crs84(crs)
    {
        return Err(Problem::bad_parameter(
            "bbox-crs",
            format!("only CRS84 bounding boxes are supported, not {crs}"),
        ));
    }
    let datetime = p
        .text("datetime")
        .map(TimeInterval::parse_window)
        .transpose()
        .map_err(|e| Problem::bad_parameter("datetime", e.to_string()))?;
    if datetime.is_some() {
        meta.time_index().ok().flatten().ok_or_else(|| {
            Problem::bad_parameter(
                "datetime",
                format!("layer {} has no time field to filter on", meta.name),
            )
        })?;
    }
    if let Some(lang) = p.text("filter-lang")
        && lang != "cql2-text"
        // the name drafts of Part 3 used, which GDAL ≤ 3.6 sends
        && lang != "cql-text"
    {
        return Err(Problem::bad_parameter(
            "filter-lang",
            format!("only cql2-text filters are supported, not {lang}"),
        ));
    }
    let filter = p
        .text("filter")
        .map(|f| Filter::parse(f, meta))
        .transpose()
        .map_err(|e| Problem::bad_parameter("filter", e.to_string()))?;
    Ok(Selection {
        bbox,
        datetime,
        filter,
        rows: None,
    })
}

/// Whether a CRS URI names WGS84 longitude/latitude.
#[must_use]
pub fn is_crs84(crs: &str) -> bool {
    matches!(
        crs,
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84" | "CRS84" | "EPSG:4326"
    )
}
