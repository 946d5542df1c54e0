//! What standard clients ask of citytwin beyond tiles: SensorThings queries over a Datastream
//! of 100,000 Observations (a filter the store takes whole, and one evaluated here over the
//! store's window), a glyph range made from the shipped font (Latin and Chinese), and the
//! sprite sheet built from the shipped icons.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use citytwin_benches::demo_city;
use citytwin_city::live::{NewSensor, Place, ReadingIn, Thresholds, ts};
use citytwin_renderer::glyphs::{GlyphFont, glyph_range};
use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::Duration;

fn standards(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (city, _scratch) = demo_city(&rt, &repo);
    let cx = citytwin_city::testing::operator();
    let t0 = ts::now() - 100_000 * 60_000;
    rt.block_on(async {
        city.register_sensor(
            &cx,
            NewSensor {
                id: "BENCH-1".into(),
                kind: "water-level".into(),
                name: Some("基准 1".into()),
                lon: 118.7969,
                lat: 32.0603,
                unit: "m".into(),
                thresholds: Thresholds::default(),
                place: Place::default(),
                registered_by: None,
            },
        )
        .await
        .unwrap();
        for batch in 0..10 {
            let readings: Vec<ReadingIn> = (0..10_000)
                .map(|i| {
                    let n = batch * 10_000 + i;
                    ReadingIn {
                        sensor: "BENCH-1".into(),
                        at: t0 + n * 60_000,
                        value: (n % 1000) as f64 / 1000.0,
                    }
                })
                .collect();
            city.ingest(&cx, readings).await.unwrap();
        }
    });
    let (_, plan) = city.read_plan(&cx, "sensors").unwrap();
    let base = "http://localhost/v1.1";
    let mut g = c.benchmark_group("sensorthings");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    let query = |filter: &str| {
        vec![
            ("$filter".to_owned(), filter.to_owned()),
            ("$orderby".to_owned(), "phenomenonTime desc".to_owned()),
            ("$top".to_owned(), "100".to_owned()),
        ]
    };
    let pushed = query("result gt 0.5 and phenomenonTime ge 2000-01-01T00:00:00Z");
    g.bench_function("observations_filter_in_store_top100", |b| {
        b.iter(|| {
            rt.block_on(city.sensorthings(
                &plan,
                "Datastreams('BENCH-1')/Observations",
                &pushed,
                base,
            ))
            .unwrap()
        });
    });
    let residual = query("result gt 0.5 and substringof('基准', Datastream/name)");
    g.bench_function("observations_filter_evaluated_over_window_top100", |b| {
        b.iter(|| {
            rt.block_on(city.sensorthings(
                &plan,
                "Datastreams('BENCH-1')/Observations",
                &residual,
                base,
            ))
            .unwrap()
        });
    });
    g.finish();

    let mut g = c.benchmark_group("styles");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let font = GlyphFont::shipped();
    g.bench_function("glyphs_latin_0_255", |b| {
        b.iter(|| glyph_range(&[&font], 0, 255));
    });
    g.bench_function("glyphs_chinese_21248_21503", |b| {
        b.iter(|| glyph_range(&[&font], 21_248, 21_503));
    });
    let icons = citytwin::routes::assets::icon_set(&repo.join("styles"), "citytwin")
        .unwrap()
        .composed()
        .unwrap();
    g.bench_function("sprite_sheet_1x", |b| {
        b.iter(|| citytwin_renderer::sprites::sheet(&icons, 1).unwrap());
    });
    g.finish();
}

criterion_group!(benches, standards);
criterion_main!(benches);
