//! Where a frame's time goes: scene building on the CPU (features, tessellation, text) against
//! the GPU (upload, drawing, readback), for the frames the render bench measures.
//! `cargo run --release -p citytwin-benches --example render-profile`

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use citytwin::render::{CitySource, load_layout, load_style, panel_data};
use citytwin_benches::demo_city;
use citytwin_city::clock::clock_line;
use citytwin_city::live::ts;
use citytwin_renderer::dashboard::Look;
use citytwin_renderer::{BoardInput, Frame, Options, Renderer};
use std::path::Path;

fn report(what: &str, frames: impl Fn() -> Frame) {
    let mut best = None::<Frame>;
    for _ in 0..5 {
        let f = frames();
        if best
            .as_ref()
            .is_none_or(|b| f.prepare + f.draw < b.prepare + b.draw)
        {
            best = Some(f);
        }
    }
    let f = best.unwrap();
    println!(
        "{what}: scene {:.0} ms, GPU {:.0} ms",
        f.prepare.as_secs_f64() * 1e3,
        f.draw.as_secs_f64() * 1e3
    );
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let styles = repo.join("styles");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (city, _scratch) = demo_city(&rt, &repo);
    // the operations centre's view: every layer it may read
    let who = citytwin_city::testing::operator();
    let r = std::cell::RefCell::new(Renderer::new(Options::default()).unwrap());
    println!("{}", r.borrow().describe());
    let source = CitySource::of(&city, &who.principal);
    let (layout, board_styles) = load_layout(&styles, "nanjing").unwrap();
    let now = ts::now();
    let data = rt.block_on(panel_data(&city, &who.principal, &layout, now));
    let input = BoardInput {
        now: clock_line(now),
        data,
        styles: &board_styles,
        source: &source,
        credit: String::new(),
    };
    report("dashboard 3840x2160", || {
        r.borrow_mut()
            .render_dashboard(&layout, &input, 3840, 2160)
            .unwrap()
    });
    report("dashboard 1920x1080", || {
        r.borrow_mut()
            .render_dashboard(&layout, &input, 1920, 1080)
            .unwrap()
    });
    let style = load_style(&styles, "nanjing").unwrap();
    for (name, zoom, pitch) in [
        ("z13 centre", 13.0, 0.0),
        ("z15 pitched", 15.0, 55.0),
        ("z11", 11.0, 0.0),
    ] {
        report(&format!("static map 1920x1080 {name}"), || {
            r.borrow_mut()
                .render_map(
                    &style,
                    &source,
                    Look::Center((118.79, 32.04), zoom),
                    0.0,
                    pitch,
                    (1920, 1080, 1.0),
                    "",
                )
                .unwrap()
        });
    }
}
