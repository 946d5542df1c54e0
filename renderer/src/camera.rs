//! Where the map is looked at from: MapLibre's camera (512-pixel tiles, 36.87° field of
//! view, bearing clockwise from north, pitch from straight down) over Web Mercator metres.

use citytwin_tiles::WEB_MERCATOR_MAX;
use citytwin_tiles::proj::{lonlat_to_mercator, mercator_to_lonlat};
use geo::{Rect, coord};

/// Highest pitch accepted, as in MapLibre's default `maxPitch`.
pub const MAX_PITCH: f64 = 60.0;
const FOV: f64 = 0.643_501_108_793_284_4; // MapLibre's 36.87°
const WORLD: f64 = 2.0 * WEB_MERCATOR_MAX;

/// A view of the map, in the terms MapLibre's URL hash and static-map APIs use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// centre longitude, latitude (WGS84/CGCS2000 degrees)
    pub center: (f64, f64),
    /// zoom (512-pixel tiles)
    pub zoom: f64,
    /// degrees clockwise from north that the top of the image faces
    pub bearing: f64,
    /// degrees from looking straight down, 0..=60
    pub pitch: f64,
}

impl View {
    /// The view that fits `[west, south, east, north]` into `width`×`height` CSS pixels.
    #[must_use]
    pub fn fit(bbox: [f64; 4], width: f64, height: f64) -> View {
        let (x0, y0) = lonlat_to_mercator(bbox[0], bbox[1]);
        let (x1, y1) = lonlat_to_mercator(bbox[2], bbox[3]);
        let dx = (x1 - x0).abs().max(1.0);
        let dy = (y1 - y0).abs().max(1.0);
        let zx = (WORLD * width / (512.0 * dx)).log2();
        let zy = (WORLD * height / (512.0 * dy)).log2();
        let zoom = zx.min(zy).clamp(0.0, 22.0);
        let center = mercator_to_lonlat(f64::midpoint(x0, x1), f64::midpoint(y0, y1));
        View {
            center,
            zoom,
            bearing: 0.0,
            pitch: 0.0,
        }
    }
}

/// A panel of the frame in physical pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Panel {
    /// left edge
    pub x: f32,
    /// top edge
    pub y: f32,
    /// width
    pub w: f32,
    /// height
    pub h: f32,
}

impl Panel {
    /// The panel as a scissor rectangle inside a `fw`×`fh` frame.
    #[must_use]
    pub fn scissor(&self, fw: u32, fh: u32) -> [u32; 4] {
        let x0 = (self.x.max(0.0) as u32).min(fw);
        let y0 = (self.y.max(0.0) as u32).min(fh);
        let x1 = ((self.x + self.w).ceil().max(0.0) as u32).min(fw);
        let y1 = ((self.y + self.h).ceil().max(0.0) as u32).min(fh);
        [x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0)]
    }
}

/// The camera of one map panel inside a frame.
#[derive(Debug, Clone)]
pub struct Camera {
    /// the view
    pub view: View,
    /// the panel it draws into
    pub panel: Panel,
    frame: (f32, f32),
    /// physical pixels per CSS pixel
    pub scale: f64,
    center: (f64, f64),
    /// physical pixels per Web Mercator metre
    pub k: f64,
    sin_b: f64,
    cos_b: f64,
    sin_p: f64,
    cos_p: f64,
    d: f64,
    near: f64,
    far: f64,
    lat_stretch: f64,
}

impl Camera {
    /// A camera for `view` drawing into `panel` of a `frame` (physical pixels) at `scale`
    /// physical pixels per CSS pixel.
    #[must_use]
    pub fn new(view: View, panel: Panel, frame: (u32, u32), scale: f64) -> Camera {
        let (cx, cy) = lonlat_to_mercator(view.center.0, view.center.1);
        let k = 512.0 * view.zoom.exp2() * scale / WORLD;
        let b = -view.bearing.to_radians();
        let p = view.pitch.clamp(0.0, MAX_PITCH).to_radians();
        let d = 0.5 * f64::from(panel.h) / (FOV / 2.0).tan();
        Camera {
            view,
            panel,
            frame: (frame.0 as f32, frame.1 as f32),
            scale,
            center: (cx, cy),
            k,
            sin_b: b.sin(),
            cos_b: b.cos(),
            sin_p: p.sin(),
            cos_p: p.cos(),
            d,
            near: d * 0.02,
            far: d * 50.0,
            lat_stretch: 1.0 / view.center.1.to_radians().cos().max(0.01),
        }
    }

    /// A Web Mercator position on the ground plane: pixels from the centre, x right and y
    /// down as the map is turned by the bearing (before the pitch).
    #[must_use]
    pub fn ground(&self, x: f64, y: f64) -> (f64, f64) {
        let gx = (x - self.center.0) * self.k;
        let gy = (self.center.1 - y) * self.k;
        (
            gx * self.cos_b - gy * self.sin_b,
            gx * self.sin_b + gy * self.cos_b,
        )
    }

    /// Physical pixels of `metres` of height at the centre's latitude.
    #[must_use]
    pub fn height_px(&self, metres: f64) -> f64 {
        metres * self.k * self.lat_stretch
    }

    fn eye(&self, gx: f64, gy: f64, z: f64) -> (f64, f64, f64) {
        let up = -gy;
        let zc = self.d + up * self.sin_p - z * self.cos_p;
        let yc = up * self.cos_p + z * self.sin_p;
        (gx, yc, zc)
    }

    /// Clip-space position of a ground-plane point raised `z` pixels.
    #[must_use]
    pub fn clip(&self, gx: f64, gy: f64, z: f64) -> [f32; 4] {
        let (xc, yc, zc) = self.eye(gx, gy, z);
        let (fw, fh) = (f64::from(self.frame.0), f64::from(self.frame.1));
        let mid_x = f64::from(self.panel.x) + f64::from(self.panel.w) / 2.0;
        let mid_y = f64::from(self.panel.y) + f64::from(self.panel.h) / 2.0;
        let x = (2.0 * mid_x / fw - 1.0) * zc + 2.0 * xc * self.d / fw;
        let y = (1.0 - 2.0 * mid_y / fh) * zc + 2.0 * yc * self.d / fh;
        let depth = (zc - self.near) * self.far / (self.far - self.near);
        [x as f32, y as f32, depth as f32, zc as f32]
    }

    /// Frame pixel of a ground-plane point raised `z` pixels; `None` behind the camera.
    #[must_use]
    pub fn screen(&self, gx: f64, gy: f64, z: f64) -> Option<(f32, f32)> {
        let (xc, yc, zc) = self.eye(gx, gy, z);
        if zc <= self.near {
            return None;
        }
        let sx = f64::from(self.panel.x) + f64::from(self.panel.w) / 2.0 + xc * self.d / zc;
        let sy = f64::from(self.panel.y) + f64::from(self.panel.h) / 2.0 - yc * self.d / zc;
        Some((sx as f32, sy as f32))
    }

    /// Whether a frame pixel lies inside the panel, with `margin` pixels to spare.
    #[must_use]
    pub fn in_panel(&self, (x, y): (f32, f32), margin: f32) -> bool {
        x >= self.panel.x - margin
            && y >= self.panel.y - margin
            && x <= self.panel.x + self.panel.w + margin
            && y <= self.panel.y + self.panel.h + margin
    }

    /// Clip-space position of a frame pixel (for screen-aligned drawing).
    #[must_use]
    pub fn frame_clip(&self, sx: f32, sy: f32) -> [f32; 4] {
        frame_clip(self.frame, sx, sy)
    }

    /// The Web Mercator rectangle on the ground the panel shows, with `margin` pixels around.
    #[must_use]
    pub fn visible_area(&self, margin: f64) -> Rect<f64> {
        let (w, h) = (
            f64::from(self.panel.w) + 2.0 * margin,
            f64::from(self.panel.h) + 2.0 * margin,
        );
        let mut xs = Vec::with_capacity(8);
        for (fx, fy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.0)] {
            let u = (fx - 0.5) * w / self.d;
            let v = (0.5 - fy) * h / self.d;
            let denom = self.cos_p - v * self.sin_p;
            let up = if denom > 0.05 {
                v * self.d / denom
            } else {
                20.0 * self.d
            };
            let gx = u * (self.d + up * self.sin_p);
            let gy = -up;
            // undo the bearing
            let rx = gx * self.cos_b + gy * self.sin_b;
            let ry = -gx * self.sin_b + gy * self.cos_b;
            xs.push((self.center.0 + rx / self.k, self.center.1 - ry / self.k));
        }
        let min_x = xs.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let max_x = xs.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let min_y = xs.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let max_y = xs.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        Rect::new(coord! { x: min_x, y: min_y }, coord! { x: max_x, y: max_y })
    }
}

/// Clip-space position of a pixel of a `frame`.
#[must_use]
pub fn frame_clip(frame: (f32, f32), sx: f32, sy: f32) -> [f32; 4] {
    [2.0 * sx / frame.0 - 1.0, 1.0 - 2.0 * sy / frame.1, 0.0, 1.0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_centre_lands_mid_panel_and_north_is_up() {
        let view = View {
            center: (118.78, 32.04),
            zoom: 12.0,
            bearing: 0.0,
            pitch: 0.0,
        };
        let panel = Panel {
            x: 100.0,
            y: 50.0,
            w: 800.0,
            h: 600.0,
        };
        let cam = Camera::new(view, panel, (1366, 768), 1.0);
        let (x, y) = lonlat_to_mercator(118.78, 32.04);
        let (gx, gy) = cam.ground(x, y);
        let (sx, sy) = cam.screen(gx, gy, 0.0).unwrap();
        assert!(
            (sx - 500.0).abs() < 1e-3 && (sy - 350.0).abs() < 1e-3,
            "{sx} {sy}"
        );
        let (gx, gy) = cam.ground(x, y + 1000.0);
        let (_, north) = cam.screen(gx, gy, 0.0).unwrap();
        assert!(north < 350.0);
        // 512 px per world at zoom 0: 1000 m is k * 1000 px
        assert!((f64::from(350.0 - north) - cam.k * 1000.0).abs() < 1e-2);
        let c = cam.clip(gx, gy, 0.0);
        let ndc_y = c[1] / c[3];
        assert!((ndc_y - (1.0 - 2.0 * north / 768.0)).abs() < 1e-4);
        let area = cam.visible_area(0.0);
        assert!(area.min().x < x && area.max().x > x && area.min().y < y && area.max().y > y);
    }

    #[test]
    fn bearing_turns_east_up_and_pitch_shrinks_the_far_side() {
        let mut view = View {
            center: (118.78, 32.04),
            zoom: 12.0,
            bearing: 90.0,
            pitch: 0.0,
        };
        let panel = Panel {
            x: 0.0,
            y: 0.0,
            w: 800.0,
            h: 600.0,
        };
        let (x, y) = lonlat_to_mercator(118.78, 32.04);
        let cam = Camera::new(view, panel, (800, 600), 1.0);
        let (gx, gy) = cam.ground(x + 1000.0, y);
        let (sx, sy) = cam.screen(gx, gy, 0.0).unwrap();
        assert!((sx - 400.0).abs() < 1e-3 && sy < 300.0, "{sx} {sy}");
        view.bearing = 0.0;
        view.pitch = 60.0;
        let cam = Camera::new(view, panel, (800, 600), 1.0);
        let (gx, gy) = cam.ground(x, y + 1000.0);
        let (_, far) = cam.screen(gx, gy, 0.0).unwrap();
        let (gx, gy) = cam.ground(x, y - 1000.0);
        let (_, near) = cam.screen(gx, gy, 0.0).unwrap();
        assert!(300.0 - far < near - 300.0, "far {far} near {near}");
        let fit = View::fit([118.7, 32.0, 118.9, 32.1], 800.0, 600.0);
        assert!(fit.zoom > 10.0 && fit.zoom < 13.0, "{}", fit.zoom);
    }
}
