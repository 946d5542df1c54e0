//! Server-rendered images end to end over the demo city on the machine's wgpu adapter (a GPU,
//! or Mesa's lavapipe in CI): static maps, dashboard frames, the MJPEG stream re-rendering on
//! a change, the full-screen page, and bad requests answered as problems.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use common::{client, server};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

async fn get(path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", server().base))
        .send()
        .await
        .unwrap()
}

/// Decodes a PNG: (width, height, RGBA pixels).
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn colours(rgba: &[u8]) -> usize {
    let mut v: Vec<&[u8]> = rgba.chunks_exact(4).step_by(5).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

#[tokio::test]
async fn static_maps_draw_the_city_at_the_size_asked() {
    // the whole city at an odd width (readback rows are padded to 256 bytes on the GPU)
    let resp =
        get("/render/nanjing.png?bbox=118.36,31.23,119.24,32.61&width=1366&height=768").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let (w, h, px) = decode(&resp.bytes().await.unwrap());
    assert_eq!((w, h), (1366, 768));
    assert!(
        colours(&px) > 100,
        "districts, water, roads and lines make many colours"
    );
    // the city's districts are drawn in their style colours: 玄武区 #f3d9b1 at 85 % opacity
    // over the background lands somewhere near (243, 217, 177)
    let warm = px
        .chunks_exact(4)
        .filter(|p| p[0] > 220 && p[1] > 190 && p[2] < 200 && p[2] > 150)
        .count();
    assert!(warm > 100, "district fills present ({warm} px)");

    // a pitched, turned 3D view at scale 2 is twice the CSS size
    let resp = get(
        "/render/nanjing.png?center=118.79,32.05&zoom=15&width=400&height=300&scale=2&pitch=50&bearing=30",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (w, h, px) = decode(&resp.bytes().await.unwrap());
    assert_eq!((w, h), (800, 600));
    assert!(colours(&px) > 100);

    // only some layers
    let resp = get(
        "/render/nanjing.png?center=118.79,32.05&zoom=12&width=200&height=100&layers=background",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (_, _, px) = decode(&resp.bytes().await.unwrap());
    assert!(
        px.chunks_exact(4).all(|p| p == [0xee, 0xf0, 0xeb, 255]),
        "background alone"
    );
}

/// The renderer draws the style's icons from its sprite, as the browser does: the POIs of
/// 新街口 alone are the POI disc's blue with the glyph's white inside.
#[tokio::test]
async fn static_maps_draw_the_sprites_icons() {
    let resp = get(
        "/render/nanjing.png?center=118.7969,32.0603&zoom=16&width=600&height=400&layers=background,pois",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        !resp
            .headers()
            .get("x-render-warnings")
            .is_some_and(|w| w.to_str().unwrap_or("").contains("icon")),
        "icon properties are drawn, not skipped"
    );
    let (_, _, px) = decode(&resp.bytes().await.unwrap());
    // poi discs: #1565c0
    let blue = |px: &[u8]| {
        px.chunks_exact(4)
            .filter(|p| {
                p[0].abs_diff(0x15) < 24 && p[1].abs_diff(0x65) < 24 && p[2].abs_diff(0xc0) < 24
            })
            .count()
    };
    let white = px
        .chunks_exact(4)
        .filter(|p| p[0] > 245 && p[1] > 245 && p[2] > 245)
        .count();
    assert!(
        blue(&px) > 50,
        "POI icons drawn ({} px of their blue)",
        blue(&px)
    );
    // and the blue is theirs: the background alone has none
    let bare = get(
        "/render/nanjing.png?center=118.7969,32.0603&zoom=16&width=600&height=400&layers=background",
    )
    .await;
    let (_, _, bare) = decode(&bare.bytes().await.unwrap());
    assert_eq!(blue(&bare), 0);
    assert!(white > 20, "their white glyphs and rims ({white} px)");
}

#[tokio::test]
async fn bad_render_requests_are_problems_naming_the_fault() {
    for (path, status, parameter) in [
        ("/render/nanjing.png", 400, Some("bbox")),
        ("/render/nanjing.png?bbox=1,2,3", 400, Some("bbox")),
        ("/render/nanjing.png?bbox=119,32,118,33", 400, Some("bbox")),
        (
            "/render/nanjing.png?center=118.8,32&zoom=30",
            400,
            Some("zoom"),
        ),
        (
            "/render/nanjing.png?center=118.8,32&zoom=10&width=0",
            400,
            Some("width"),
        ),
        (
            "/render/nanjing.png?center=118.8,32&zoom=10&width=99999",
            400,
            Some("width"),
        ),
        (
            "/render/nanjing.png?center=118.8,32&zoom=10&width=3000&scale=4",
            400,
            Some("scale"),
        ),
        (
            "/render/nanjing.png?center=118.8,32&zoom=10&pitch=80",
            400,
            Some("pitch"),
        ),
        (
            "/render/nanjing.png?center=118.8,32&zoom=10&layers=nope",
            400,
            Some("layers"),
        ),
        (
            "/render/nanjing.png?center=118.8,32&zoom=10&colour=red",
            400,
            Some("colour"),
        ),
        ("/render/nope.png?center=118.8,32&zoom=10", 404, None),
        ("/render/nanjing.jpg?center=118.8,32&zoom=10", 404, None),
        (
            "/render/..%2Fsecret.png?center=118.8,32&zoom=10",
            400,
            Some("style"),
        ),
        ("/dashboards/nope.png", 404, None),
        ("/dashboards/nanjing.png?width=20000", 400, Some("width")),
        ("/dashboards/nanjing.png?height=abc", 400, Some("height")),
        ("/dashboards/nanjing/stream?fps=100", 400, Some("fps")),
        ("/dashboards/nanjing/stream?quality=0", 400, Some("quality")),
        ("/dashboards/nope/stream", 404, None),
        ("/screen/nope", 404, None),
    ] {
        let resp = get(path).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
        if let Some(p) = parameter {
            assert_eq!(body["parameter"], p, "{path}: {body}");
        }
    }
}

#[tokio::test]
async fn the_default_dashboard_renders_and_its_stream_follows_the_city() {
    let list: Value = get("/dashboards").await.json().await.unwrap();
    assert!(
        list["dashboards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "nanjing"),
        "{list}"
    );
    let layout: Value = get("/dashboards/nanjing.json").await.json().await.unwrap();
    let kinds: Vec<&str> = layout["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    for k in ["title", "clock", "map", "kpi", "bar", "line", "list"] {
        assert!(kinds.contains(&k), "the default dashboard has a {k} panel");
    }

    let resp = get("/dashboards/nanjing.png?width=1366&height=768").await;
    assert_eq!(resp.status(), 200);
    let (w, h, px) = decode(&resp.bytes().await.unwrap());
    assert_eq!((w, h), (1366, 768));
    assert!(colours(&px) > 200, "panels, map, text");

    // the stream: a first frame at once, another when an event is reported
    let resp = get("/dashboards/nanjing/stream?width=640&height=360&fps=10").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "multipart/x-mixed-replace; boundary=frame"
    );
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut reported = false;
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    while frames.len() < 2 {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("a second frame after the report")
            .unwrap()
            .unwrap();
        buf.extend_from_slice(&chunk);
        while let Some(frame) = take_part(&mut buf) {
            assert_eq!(&frame[..2], &[0xFF, 0xD8], "a JPEG");
            frames.push(frame);
        }
        if !frames.is_empty() && !reported {
            reported = true;
            let resp = client()
                .post(format!("{}/events", server().base))
                .json(
                    &json!({ "source": "hotline", "category": "waterlogging", "severity": "major",
                    "description": "立交桥下积水", "lon": 118.7800, "lat": 32.0932 }),
                )
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
        }
    }
    assert_ne!(frames[0], frames[1], "the new event changed the frame");

    let html = get("/screen/nanjing").await;
    assert_eq!(html.status(), 200);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = html.text().await.unwrap();
    assert!(text.contains("/dashboards/nanjing/stream") && text.contains("南京市城市运行指挥中心"));
}

/// Takes one complete `--frame` part (headers, JPEG, CRLF) off the front of `buf`.
fn take_part(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    assert!(head.starts_with("--frame\r\n"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if buf.len() < head_end + len + 2 {
        return None;
    }
    let jpeg = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len + 2);
    Some(jpeg)
}

/// A burst of renders waits its turn without taking the blocking threads tiles and queries run
/// on: uncached tiles answer while 20 static maps queue.
#[tokio::test]
async fn tiles_answer_while_renders_queue() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let done = Arc::new(AtomicUsize::new(0));
    let renders: Vec<_> = (0..20)
        .map(|i| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                // each a different view: none comes from a cache
                let resp = get(&format!(
                    "/render/nanjing.png?center=118.79,32.05&zoom=13&width=1024&height=768&bearing={}",
                    i * 7 + 1
                ))
                .await;
                done.fetch_add(1, Ordering::SeqCst);
                resp.status().as_u16()
            })
        })
        .collect();
    let render = &server().state.render;
    let mut waited = 0;
    while render.queued() < 10 && waited < 600 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert!(render.queued() >= 10, "the renders never queued");
    // tiles nobody asked for yet (the cache cannot answer them)
    for x in 0..8u32 {
        let resp = get(&format!("/tiles/roads,water/12/{}/{}.mvt", 3395 + x, 1661)).await;
        assert!(
            [200, 204].contains(&resp.status().as_u16()),
            "{}",
            resp.status()
        );
    }
    let finished = done.load(Ordering::SeqCst);
    assert!(
        finished < 20,
        "the tiles were answered only after every render ({finished} of 20 done)"
    );
    for r in renders {
        assert_eq!(r.await.unwrap(), 200);
    }
}
