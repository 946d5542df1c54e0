//! The floor for cached tiles over HTTP: a bare axum server that answers
//! `GET /tiles/{layer}/{z}/{x}/{y}.mvt` with gzip bodies held in memory, and nothing else — no
//! access check, no metrics, no cache lookup, no ETag (run by `benches/cached-vs-bare.sh`).
//!
//! `bare-tiles DIR ADDR`: DIR holds `{z}/{x}/{y}.mvt.gz` as citytwin served them.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;

type Bodies = Arc<HashMap<(u8, u32, u32), Bytes>>;

fn load(dir: &std::path::Path) -> std::io::Result<HashMap<(u8, u32, u32), Bytes>> {
    let mut out = HashMap::new();
    for z in std::fs::read_dir(dir)? {
        let z = z?;
        let Ok(zn) = z.file_name().to_string_lossy().parse::<u8>() else {
            continue;
        };
        for x in std::fs::read_dir(z.path())? {
            let x = x?;
            let Ok(xn) = x.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            for y in std::fs::read_dir(x.path())? {
                let y = y?;
                let name = y.file_name().to_string_lossy().into_owned();
                let Some(Ok(yn)) = name.strip_suffix(".mvt.gz").map(str::parse::<u32>) else {
                    continue;
                };
                out.insert((zn, xn, yn), Bytes::from(std::fs::read(y.path())?));
            }
        }
    }
    Ok(out)
}

async fn tile(
    State(bodies): State<Bodies>,
    Path((_layer, z, x, y)): Path<(String, u8, u32, String)>,
) -> Response {
    let Some(Ok(y)) = y.strip_suffix(".mvt").map(str::parse::<u32>) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match bodies.get(&(z, x, y)) {
        Some(b) => (
            [
                (header::CONTENT_TYPE, "application/vnd.mapbox-vector-tile"),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            b.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: bare-tiles DIR ADDR");
        std::process::exit(2)
    };
    let bodies = match load(std::path::Path::new(&dir)) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("cannot read {dir}: {e}");
            std::process::exit(1)
        }
    };
    eprintln!("{} tiles from {dir}", bodies.len());
    let app = Router::new()
        .route("/tiles/{layer}/{z}/{x}/{y}", get(tile))
        .with_state(bodies);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1)
        }
    };
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("{e}");
        std::process::exit(1)
    }
}
