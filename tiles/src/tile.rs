//! The XYZ tile pyramid over Web Mercator (EPSG:3857).

use crate::{Error, Result};
use geo::{Rect, coord};

/// Half the width of the Web Mercator square, in metres.
pub const WEB_MERCATOR_MAX: f64 = 20_037_508.342_789_244;

/// The deepest zoom the server accepts.
pub const MAX_ZOOM: u8 = 24;

/// One tile of the XYZ pyramid (y grows southwards, as web maps expect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileCoord {
    /// zoom level, 0..=[`MAX_ZOOM`]
    pub z: u8,
    /// column, 0..2^z
    pub x: u32,
    /// row, 0..2^z, counted from the north
    pub y: u32,
}

impl TileCoord {
    /// Checks a requested z/x/y against the pyramid.
    ///
    /// ```
    /// use citytwin_tiles::TileCoord;
    /// assert!(TileCoord::new(14, 13_600, 6_700).is_ok());
    /// assert!(TileCoord::new(2, 4, 0).is_err());
    /// assert!(TileCoord::new(25, 0, 0).is_err());
    /// ```
    pub fn new(z: u64, x: u64, y: u64) -> Result<Self> {
        let err = |reason: String| Error::TileOutOfRange { z, x, y, reason };
        if z > u64::from(MAX_ZOOM) {
            return Err(err(format!("zoom must be between 0 and {MAX_ZOOM}")));
        }
        let n = 1u64 << z;
        if x >= n || y >= n {
            return Err(err(format!("x and y must be below 2^{z} = {n}")));
        }
        Ok(Self {
            z: z as u8,
            x: x as u32,
            y: y as u32,
        })
    }

    /// Width of this tile in Web Mercator metres.
    #[must_use]
    pub fn span(&self) -> f64 {
        2.0 * WEB_MERCATOR_MAX / f64::from(1u32 << self.z.min(31))
    }

    /// The tile's bounds in Web Mercator metres.
    #[must_use]
    pub fn bounds(&self) -> Rect<f64> {
        let span = self.span();
        let min_x = -WEB_MERCATOR_MAX + f64::from(self.x) * span;
        let max_y = WEB_MERCATOR_MAX - f64::from(self.y) * span;
        Rect::new(
            coord! { x: min_x, y: max_y - span },
            coord! { x: min_x + span, y: max_y },
        )
    }

    /// The tile at zoom `z` that contains a Web Mercator point (clamped to the pyramid).
    #[must_use]
    pub fn containing(x: f64, y: f64, z: u8) -> Self {
        let n = f64::from(1u32 << z);
        let span = 2.0 * WEB_MERCATOR_MAX / n;
        let max = (1u32 << z) - 1;
        let col = ((x + WEB_MERCATOR_MAX) / span)
            .floor()
            .clamp(0.0, f64::from(max));
        let row = ((WEB_MERCATOR_MAX - y) / span)
            .floor()
            .clamp(0.0, f64::from(max));
        Self {
            z,
            x: col as u32,
            y: row as u32,
        }
    }

    /// Every tile at zoom `z` touching a Web Mercator rectangle, row by row.
    #[must_use]
    pub fn covering(bounds: Rect<f64>, z: u8) -> Vec<Self> {
        let a = Self::containing(bounds.min().x, bounds.max().y, z);
        let b = Self::containing(bounds.max().x, bounds.min().y, z);
        (a.y..=b.y)
            .flat_map(|y| (a.x..=b.x).map(move |x| Self { z, x, y }))
            .collect()
    }
}

impl std::fmt::Display for TileCoord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_zero_is_the_whole_world() {
        let b = TileCoord::new(0, 0, 0).unwrap().bounds();
        assert!((b.min().x + WEB_MERCATOR_MAX).abs() < 1e-6);
        assert!((b.max().y - WEB_MERCATOR_MAX).abs() < 1e-6);
        assert!((b.width() - 2.0 * WEB_MERCATOR_MAX).abs() < 1e-6);
    }

    #[test]
    fn four_children_cover_their_parent() {
        let parent = TileCoord::new(3, 5, 2).unwrap().bounds();
        let kids = TileCoord::covering(
            Rect::new(
                coord! { x: parent.min().x + 1.0, y: parent.min().y + 1.0 },
                coord! { x: parent.max().x - 1.0, y: parent.max().y - 1.0 },
            ),
            4,
        );
        let want: Vec<_> = [(10, 4), (11, 4), (10, 5), (11, 5)]
            .iter()
            .map(|&(x, y)| TileCoord { z: 4, x, y })
            .collect();
        assert_eq!(kids, want);
    }

    #[test]
    fn out_of_range_is_refused() {
        assert!(TileCoord::new(1, 2, 0).is_err());
        assert!(TileCoord::new(1, 0, 2).is_err());
        assert!(TileCoord::new(30, 0, 0).is_err());
    }

    #[test]
    fn nanjing_centre_at_z14() {
        let (x, y) = crate::proj::lonlat_to_mercator(118.7969, 32.0603);
        let t = TileCoord::containing(x, y, 14);
        assert_eq!((t.x, t.y), (13598, 6650));
    }
}
