//! Coordinate systems met in Chinese city data, and the conversions between them.
//!
//! CGCS2000 (EPSG:4490) is treated as WGS84 (EPSG:4326): they differ by well under a metre.
//! GCJ-02 is the obfuscated datum of Chinese consumer maps (Amap, Tencent); it is converted to
//! WGS84 by inverting the published forward formula iteratively.

use crate::tile::WEB_MERCATOR_MAX;
use crate::{Error, Result};
use std::f64::consts::PI;

const EARTH_RADIUS: f64 = 6_378_137.0;
/// Latitude limit of the Web Mercator square.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// A coordinate reference system accepted on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crs {
    /// WGS84 longitude/latitude.
    Wgs84,
    /// China Geodetic Coordinate System 2000, taken as WGS84.
    Cgcs2000,
    /// The GCJ-02 offset datum of Chinese consumer maps.
    Gcj02,
    /// Web Mercator metres.
    WebMercator,
}

impl Crs {
    /// Parses the names an operator types: `EPSG:4326`, `4490`, `gcj02`, `EPSG:3857`…
    ///
    /// ```
    /// use citytwin_tiles::Crs;
    /// assert_eq!(Crs::parse("EPSG:4490").unwrap(), Crs::Cgcs2000);
    /// assert_eq!(Crs::parse("gcj-02").unwrap(), Crs::Gcj02);
    /// assert!(Crs::parse("EPSG:2000").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        let norm: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect();
        let code = norm
            .strip_prefix("epsg:")
            .or_else(|| norm.strip_prefix("urn:ogc:def:crs:epsg::"))
            .unwrap_or(&norm);
        match code {
            "4326" | "wgs84" | "urn:ogc:def:crs:ogc:1.3:crs84" | "crs84" => Ok(Crs::Wgs84),
            "4490" | "cgcs2000" => Ok(Crs::Cgcs2000),
            "gcj02" | "gcj" | "amap" => Ok(Crs::Gcj02),
            "3857" | "900913" | "webmercator" | "102100" => Ok(Crs::WebMercator),
            _ => Err(Error::UnknownCrs(s.to_owned())),
        }
    }

    /// The EPSG code, where the system has one.
    #[must_use]
    pub fn epsg(self) -> Option<u32> {
        match self {
            Crs::Wgs84 => Some(4326),
            Crs::Cgcs2000 => Some(4490),
            Crs::Gcj02 => None,
            Crs::WebMercator => Some(3857),
        }
    }

    /// Converts one coordinate in this system to WGS84 longitude/latitude.
    #[must_use]
    pub fn to_wgs84(self, x: f64, y: f64) -> (f64, f64) {
        match self {
            Crs::Wgs84 | Crs::Cgcs2000 => (x, y),
            Crs::Gcj02 => gcj02_to_wgs84(x, y),
            Crs::WebMercator => mercator_to_lonlat(x, y),
        }
    }
}

impl std::fmt::Display for Crs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.epsg() {
            Some(code) => write!(f, "EPSG:{code}"),
            None => f.write_str("GCJ-02"),
        }
    }
}

/// WGS84 longitude/latitude to Web Mercator metres (latitude clamped to the square).
#[must_use]
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE);
    let x = lon.to_radians() * EARTH_RADIUS;
    let y = (PI / 4.0 + lat.to_radians() / 2.0).tan().ln() * EARTH_RADIUS;
    (x, y.clamp(-WEB_MERCATOR_MAX, WEB_MERCATOR_MAX))
}

/// Web Mercator metres to WGS84 longitude/latitude.
#[must_use]
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / EARTH_RADIUS).to_degrees();
    let lat = (2.0 * (y / EARTH_RADIUS).exp().atan() - PI / 2.0).to_degrees();
    (lon, lat)
}

const GCJ_A: f64 = 6_378_245.0;
const GCJ_EE: f64 = 0.006_693_421_622_965_943;

/// Whether GCJ-02 applies at all: outside mainland China's box the datum equals WGS84.
#[must_use]
pub fn in_china(lon: f64, lat: f64) -> bool {
    (72.004..=137.8347).contains(&lon) && (0.8293..=55.8271).contains(&lat)
}

fn offset_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn offset_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 to GCJ-02: the published forward offset.
#[must_use]
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let dlat = offset_lat(lon - 105.0, lat - 35.0);
    let dlon = offset_lon(lon - 105.0, lat - 35.0);
    let rad = lat.to_radians();
    let magic = 1.0 - GCJ_EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (GCJ_A / sqrt_magic * rad.cos() * PI);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 to WGS84, inverting [`wgs84_to_gcj02`] by fixed-point iteration to about 1e-9°
/// (a tenth of a millimetre).
///
/// ```
/// use citytwin_tiles::proj::{gcj02_to_wgs84, wgs84_to_gcj02};
/// let (lon, lat) = (118.7969, 32.0603);
/// let (glon, glat) = wgs84_to_gcj02(lon, lat);
/// let (blon, blat) = gcj02_to_wgs84(glon, glat);
/// assert!((blon - lon).abs() < 1e-8 && (blat - lat).abs() < 1e-8);
/// ```
#[must_use]
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..30 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (dx, dy) = (glon - lon, glat - lat);
        wlon -= dx;
        wlat -= dy;
        if dx.abs() < 1e-10 && dy.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

/// Great-circle distance between two WGS84 points, in metres.
#[must_use]
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.0 - a.0).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mercator_round_trip() {
        let (x, y) = lonlat_to_mercator(118.78, 32.04);
        let (lon, lat) = mercator_to_lonlat(x, y);
        assert!((lon - 118.78).abs() < 1e-9 && (lat - 32.04).abs() < 1e-9);
        let (x0, y0) = lonlat_to_mercator(0.0, 0.0);
        assert!(x0.abs() < 1e-6 && y0.abs() < 1e-6);
    }

    #[test]
    fn gcj_offset_at_nanjing_is_hundreds_of_metres() {
        let (glon, glat) = wgs84_to_gcj02(118.78, 32.04);
        let d = haversine_m((118.78, 32.04), (glon, glat));
        assert!((400.0..700.0).contains(&d), "offset {d} m");
    }

    #[test]
    fn gcj_outside_china_is_identity() {
        assert_eq!(gcj02_to_wgs84(2.35, 48.85), (2.35, 48.85));
    }

    #[test]
    fn crs_names() {
        assert_eq!(Crs::parse("EPSG:4326").unwrap(), Crs::Wgs84);
        assert_eq!(Crs::parse("epsg:3857").unwrap(), Crs::WebMercator);
        assert_eq!(Crs::parse("GCJ02").unwrap(), Crs::Gcj02);
        assert!(matches!(
            Crs::parse("EPSG:27700"),
            Err(Error::UnknownCrs(_))
        ));
    }
}
