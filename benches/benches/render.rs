//! The renderer on this machine's adapter (a GPU, or Mesa's lavapipe): a 4K frame of the
//! default Nanjing command-centre dashboard with the whole city's 50,000 buildings in view, a
//! 1080p static map, and stream frames (board queries + render + JPEG) at 1080p and 4K.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use citytwin::render::{CitySource, load_layout, load_style, panel_data};
use citytwin_benches::demo_city;
use citytwin_city::clock::clock_line;
use citytwin_city::live::ts;
use citytwin_renderer::dashboard::Look;
use citytwin_renderer::{BoardInput, Options, Renderer};
use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::Duration;

fn render(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let styles = repo.join("styles");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (city, _scratch) = demo_city(&rt, &repo);
    // the operations centre's view: every layer it may read
    let who = citytwin_city::testing::operator();
    let mut r = Renderer::new(Options::default()).expect("a wgpu adapter");
    eprintln!("rendering on {}", r.describe());
    let (layout, board_styles) = load_layout(&styles, "nanjing").unwrap();
    let source = CitySource::of(&city, &who.principal);
    let frame_data = || {
        let now = ts::now();
        (
            rt.block_on(panel_data(&city, &who.principal, &layout, now)),
            clock_line(now),
        )
    };

    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let (data, clock) = frame_data();
    let input = BoardInput {
        now: clock,
        data,
        styles: &board_styles,
        source: &source,
        credit: String::new(),
    };
    g.bench_function("dashboard 3840x2160 (whole city, 50k buildings)", |b| {
        b.iter(|| r.render_dashboard(&layout, &input, 3840, 2160).unwrap());
    });
    let style = load_style(&styles, "nanjing").unwrap();
    g.bench_function("static map 1920x1080 (nanjing, z13 centre)", |b| {
        b.iter(|| {
            r.render_map(
                &style,
                &source,
                Look::Center((118.79, 32.04), 13.0),
                0.0,
                0.0,
                (1920, 1080, 1.0),
                "",
            )
            .unwrap()
        });
    });
    g.bench_function("static map 1920x1080 (nanjing, z15 pitched 3D)", |b| {
        b.iter(|| {
            r.render_map(
                &style,
                &source,
                Look::Center((118.79, 32.04), 15.0),
                30.0,
                55.0,
                (1920, 1080, 1.0),
                "",
            )
            .unwrap()
        });
    });
    for (w, h) in [(1920, 1080), (3840, 2160)] {
        g.bench_function(
            format!("stream frame {w}x{h} (queries + render + JPEG)"),
            |b| {
                b.iter(|| {
                    let (data, clock) = frame_data();
                    let source = CitySource::of(&city, &who.principal);
                    let input = BoardInput {
                        now: clock,
                        data,
                        styles: &board_styles,
                        source: &source,
                        credit: String::new(),
                    };
                    r.render_dashboard(&layout, &input, w, h)
                        .unwrap()
                        .jpeg(80)
                        .unwrap()
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
