//! The parameters every feature query shares: `bbox`, `datetime`, `filter` (CQL2 text).

use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use citytwin_city::LayerMeta;
use citytwin_city::filter::Filter;
use citytwin_city::query::{Selection, mercator_rect};
use citytwin_city::temporal::TimeInterval;

/// Names of the parameters [`selection`] reads.
pub const SELECTION_PARAMS: [&str; 6] = [
    "bbox",
    "bbox-crs",
    "datetime",
    "filter",
    "filter-lang",
    "at",
];

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
    // a layer with versions and no time of its own: `datetime` chose the version it is read as
    // of (see `dated`), it filters nothing more
    let datetime = datetime.filter(|_| {
        meta.time_field.is_some() || (meta.versions.is_empty() && meta.as_of.is_none())
    });
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

/// For a layer with versions and no time field of its own, OGC API's `datetime` (one instant)
/// chooses the version the layer is read as of, as `at` does.
pub fn dated(
    state: &crate::app::AppState,
    mut caller: crate::auth::Caller,
    layer: &str,
    p: &Params,
) -> ApiResult<crate::auth::Caller> {
    let Some(dt) = p.text("datetime") else {
        return Ok(caller);
    };
    let versioned = state
        .city
        .layer(layer)
        .is_some_and(|l| l.meta.time_field.is_none() && !l.meta.versions.is_empty());
    if !versioned || caller.cx.at.is_some() {
        return Ok(caller);
    }
    let day = citytwin_city::versions::Day::parse(dt).map_err(|_| {
        Problem::bad_parameter(
            "datetime",
            format!(
                "layer {layer} has versions and no time field: give one date (YYYY-MM-DD) to read it as of, not {dt:?}"
            ),
        )
    })?;
    caller.cx.at = Some(day);
    Ok(caller)
}
