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
    gpkg.close().await;
    std::fs::rename(&partial, store).map_err(|e| format!("{}: {e}", store.display()))?;
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
