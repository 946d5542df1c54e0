//! `--demo`: fills the store from the committed Nanjing fixtures.
//!
//! A GeoPackage is built beside the target and renamed into place once complete. A PostGIS
//! store gets each fixture layer it lacks, one atomic import per layer, so an interrupted
//! start picks up where it stopped.

use citytwin_city::Store;
use citytwin_city::generate::{ManifestEntry, read_manifest};
use citytwin_city::import::{ImportRequest, Progress, import};
use citytwin_city::store::gpkg::GeoPackageStore;
use std::path::Path;
use std::sync::Arc;

/// Creates the GeoPackage at `store` from the fixture manifest in `fixtures`, unless it exists.
/// The file appears only once complete: it is built beside the target and renamed.
pub async fn ensure_demo_store(
    store: &Path,
    fixtures: &Path,
    progress: Arc<dyn Progress>,
) -> Result<bool, String> {
    if store.exists() {
        return Ok(false);
    }
    let manifest = read_manifest(fixtures).map_err(|e| e.to_string())?;
    if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let partial = store.with_extension("gpkg.partial");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    let gpkg = GeoPackageStore::open(&partial)
        .await
        .map_err(|e| e.to_string())?;
    for entry in &manifest {
        import_entry(&gpkg, fixtures, entry, Arc::clone(&progress)).await?;
    }
    // a whole copy, not the working file: renaming a database whose write-ahead log another
    // connection may still hold would leave the log's pages behind under the old name
    let whole = store.with_extension("gpkg.whole");
    gpkg.copy_to(&whole).await.map_err(|e| e.to_string())?;
    gpkg.close().await;
    std::fs::rename(&whole, store).map_err(|e| format!("{}: {e}", store.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    Ok(true)
}

/// Imports every fixture layer the store does not have yet; returns how many it imported.
pub async fn ensure_demo_layers(
    store: &dyn Store,
    fixtures: &Path,
    progress: Arc<dyn Progress>,
) -> Result<usize, String> {
    let manifest = read_manifest(fixtures).map_err(|e| e.to_string())?;
    let present = store.layers().await.map_err(|e| e.to_string())?;
    let mut imported = 0;
    for entry in &manifest {
        if !present.iter().any(|m| m.name == entry.meta.name) {
            import_entry(store, fixtures, entry, Arc::clone(&progress)).await?;
            imported += 1;
        }
    }
    Ok(imported)
}

async fn import_entry(
    store: &dyn Store,
    fixtures: &Path,
    entry: &ManifestEntry,
    progress: Arc<dyn Progress>,
) -> Result<(), String> {
    tracing::info!(layer = %entry.meta.name, file = %entry.file, "importing demo layer");
    if entry.meta.name == "buildings" {
        return import_versions(store, fixtures, entry, progress).await;
    }
    let mut req = ImportRequest::new(fixtures.join(&entry.file), &entry.meta.name);
    req.title = Some(entry.meta.title.clone());
    req.description = Some(entry.meta.description.clone());
    req.minzoom = Some(entry.meta.minzoom);
    req.maxzoom = Some(entry.meta.maxzoom);
    req.source = Some(entry.meta.source.clone());
    req.acquired.clone_from(&entry.meta.acquired);
    req.tile_fields.clone_from(&entry.meta.tile_fields);
    req.time_field.clone_from(&entry.meta.time_field);
    import(store, req, progress)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(field) = &entry.meta.territory_field {
        let change = citytwin_city::catalog::CatalogUpdate {
            territory_field: Some(field.clone()),
            ..Default::default()
        };
        citytwin_city::catalog::update(store, &entry.meta.name, &change)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The day the demo's earlier buildings hold from, and the day of the fixtures' own.
pub const DEMO_VERSIONS: [&str; 2] = ["2020-01-01", "2025-01-01"];

/// The demo's buildings in two versions, as the planning bureau would keep them: the survey
/// of 2020 and the fixtures' own of 2025, each building named by a stable `code`. Between
/// them, the buildings built after 2020 are new; on every third of their sites an older,
/// lower building stood in 2020 (replaced: removed in 2025); one building in fifty of those
/// standing in 2020 gained two floors since (changed).
pub fn building_versions(geojson: &str) -> Result<[String; 2], String> {
    use serde_json::{Value, json};
    let mut fc: Value = serde_json::from_str(geojson).map_err(|e| e.to_string())?;
    let features = fc["features"]
        .as_array_mut()
        .ok_or("buildings: no features array")?;
    let mut past = Vec::new();
    for f in features.iter_mut() {
        let id = f["id"]
            .as_i64()
            .ok_or("buildings: a feature without an id")?;
        f["properties"]["code"] = json!(format!("NJB{id:06}"));
        let year = f["properties"]["year"].as_i64().unwrap_or(0);
        let floors = f["properties"]["floors"].as_i64().unwrap_or(1);
        if year <= 2020 {
            let mut then = f.clone();
            if id % 50 == 7 && floors > 3 {
                then["properties"]["floors"] = json!(floors - 2);
                let h = f["properties"]["height"].as_f64().unwrap_or(0.0);
                then["properties"]["height"] = json!((h - 6.0).max(3.0));
            }
            past.push(then);
        } else if id % 3 == 0 {
            let mut then = f.clone();
            then["properties"]["code"] = json!(format!("NJB{id:06}-0"));
            then["properties"]["year"] = json!(1985);
            then["properties"]["floors"] = json!(floors.min(3));
            then["properties"]["height"] = json!((floors.min(3) * 3) as f64);
            then["properties"]["use"] = json!("residential");
            past.push(then);
        }
    }
    let now = serde_json::to_string(&fc).map_err(|e| e.to_string())?;
    fc["features"] = Value::Array(past);
    let then = serde_json::to_string(&fc).map_err(|e| e.to_string())?;
    Ok([then, now])
}

/// Imports the demo buildings as two versions (see [`building_versions`]).
async fn import_versions(
    store: &dyn Store,
    fixtures: &Path,
    entry: &ManifestEntry,
    progress: Arc<dyn Progress>,
) -> Result<(), String> {
    let path = fixtures.join(&entry.file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let versions = tokio::task::spawn_blocking(move || building_versions(&text))
        .await
        .map_err(|e| e.to_string())??;
    // a folder of its own (a fixed name per process collided with the benches' demo folder,
    // which this removed under their store)
    let scratch = tempfile::Builder::new()
        .prefix("citytwin-demo-versions-")
        .tempdir()
        .map_err(|e| format!("a scratch folder for the demo's versions: {e}"))?;
    let dir = scratch.path();
    let mut result = Ok(());
    for (body, day) in versions.iter().zip(DEMO_VERSIONS) {
        let file = dir.join(format!("buildings-{}.geojson", &day[..4]));
        if let Err(e) = std::fs::write(&file, body) {
            result = Err(format!("{}: {e}", file.display()));
            break;
        }
        let mut req = ImportRequest::new(&file, &entry.meta.name);
        req.title = Some(entry.meta.title.clone());
        req.description = Some(entry.meta.description.clone());
        req.minzoom = Some(entry.meta.minzoom);
        req.maxzoom = Some(entry.meta.maxzoom);
        req.source = Some(format!("{} (as of {day})", entry.meta.source));
        req.time_field.clone_from(&entry.meta.time_field);
        // the key names each building; tiles carry what they always did
        req.tile_fields = Some(entry.meta.fields.iter().map(|f| f.name.clone()).collect());
        req.as_of = Some(day.to_owned());
        req.version_key = Some("code".into());
        if let Err(e) = import(store, req, Arc::clone(&progress)).await {
            result = Err(e.to_string());
            break;
        }
    }
    drop(scratch);
    result
}

/// The demo's classified catalogue (`demo/catalog.toml`): an entry per layer, base and live.
pub fn demo_catalog(
    path: &Path,
) -> Result<std::collections::BTreeMap<String, citytwin_city::catalog::Classification>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let catalog: std::collections::BTreeMap<String, citytwin_city::catalog::Classification> =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for (layer, c) in &catalog {
        c.check()
            .map_err(|e| format!("{}: [{layer}]: {e}", path.display()))?;
    }
    Ok(catalog)
}

/// Classifies the store's layers that have no entry yet from the demo catalogue; returns
/// how many it classified.
pub async fn classify_demo_layers(
    store: &dyn Store,
    catalog: &std::collections::BTreeMap<String, citytwin_city::catalog::Classification>,
) -> Result<usize, String> {
    let mut n = 0;
    for mut meta in store.layers().await.map_err(|e| e.to_string())? {
        if meta.classification.is_some() {
            continue;
        }
        if let Some(c) = catalog.get(&meta.name) {
            meta.classification = Some(c.clone());
            store
                .set_layer_meta(&meta)
                .await
                .map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

/// A key for the in-process traffic simulator: every operational role, the operations
/// centre's department, all sensors, for a day.
pub async fn simulator_key(city: &citytwin_city::City) -> Result<String, String> {
    use citytwin_city::access::Role;
    let (_, token) = city
        .credentials()
        .create(citytwin_city::keys::NewKey {
            name: "simulator".into(),
            roles: [
                Role::Reporter,
                Role::Dispatcher,
                Role::Handler,
                Role::Verifier,
                Role::SensorAdmin,
                Role::Gateway,
                Role::Tracker,
            ]
            .into_iter()
            .collect(),
            department: Some("ops".into()),
            territory: None,
            sensors: Some(vec!["*".into()]),
            expires_at: citytwin_city::live::ts::now() + 86_400_000,
            created_by: "serve --simulate".into(),
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(token)
}
