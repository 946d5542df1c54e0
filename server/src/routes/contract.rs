//! What the route annotations cannot say: the exact shape of every request body, the values a
//! parameter takes (enumerations, patterns, ranges), and the problems every operation can
//! answer with (bad input, credentials, access, rate limits, a store that cannot answer).
//! Applied once to the generated document; schemathesis holds the server to it in CI.

use citytwin_city::access::Role;
use citytwin_city::live::state::KINDS;
use citytwin_city::live::{Action, EventState, LiveLayer, UnitStatus};
use citytwin_city::territory::Level;
use serde_json::{Map, Value, json};

/// 1 to 63 lowercase letters, digits or `_`, starting with a letter (as the store demands).
const LAYER: &str = "[a-z][a-z0-9_]{0,62}";
/// A style or dashboard id.
const NAME: &str = "[A-Za-z0-9_-]{1,64}";
/// A territorial code (district 6 digits, street 9, community 12, grid longer).
const CODE: &str = "^[0-9]{1,32}$";
/// A sensor, unit or key id: 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
const ID: &str = "^[A-Za-z0-9_.:-]{1,64}$";
/// A category or type: 1 to 64 lowercase letters, digits and `-`.
const SLUG: &str = "^[a-z0-9-]{1,64}$";
/// A department: 1 to 64 letters, digits, `-` or `_`.
const DEPARTMENT: &str = "^[\\w-]{1,64}$";
/// Free text without control characters other than newline and tab.
const TEXT: &str = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$";
/// Text that says something.
const SAYS: &str = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$";

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn list_of(values: &[&str]) -> Value {
    let alt = values
        .iter()
        .map(|v| v.replace('.', "\\."))
        .collect::<Vec<_>>()
        .join("|");
    json!({ "type": "string", "pattern": format!("^({alt})(,({alt}))*$"),
            "description": format!("comma-separated, of: {}", values.join(", ")) })
}

fn pattern(p: &str) -> Value {
    json!({ "type": "string", "pattern": p })
}

fn range(kind: &str, min: f64, max: f64) -> Value {
    json!({ "type": kind, "minimum": min, "maximum": max })
}

fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": TEXT })
}

/// An optional member the server also takes as `null` (absent).
fn or_null(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

fn says(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": SAYS })
}

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

fn levels() -> Vec<&'static str> {
    names(&Level::ALL, Level::name)
}

fn lon() -> Value {
    range("number", -180.0, 180.0)
}

fn lat() -> Value {
    range("number", -85.0, 85.0)
}

const EVENT_STATES: [EventState; 8] = [
    EventState::Reported,
    EventState::Accepted,
    EventState::Dispatched,
    EventState::Handling,
    EventState::Feedback,
    EventState::Verified,
    EventState::Closed,
    EventState::Rejected,
];
const UNIT_STATUSES: [UnitStatus; 3] =
    [UnitStatus::Available, UnitStatus::Busy, UnitStatus::OffDuty];
const SOURCES: [&str; 6] = [
    "hotline",
    "citizen",
    "inspector",
    "sensor",
    "video",
    "department",
];
const SEVERITIES: [&str; 4] = ["general", "serious", "major", "extraordinary"];
/// What `/grants?status=` takes: a grant's state, or `expired` for an approved one past its term.
pub(crate) const GRANT_STATUSES: [&str; 5] =
    ["requested", "approved", "expired", "refused", "revoked"];
const OBJECTION_STATES: [&str; 3] = ["open", "upheld", "rejected"];
const ROLES_NOTE: &str = "the roles of a key: auditor and security-admin belong to people signed \
    in; a gateway key names the sensors it sends for";
const DATE_TIME: &str = "an RFC 3339 time, or a date (YYYY-MM-DD)";

/// The schema of a query or path parameter, where the annotation's plain type says too little.
fn parameter(path: &str, name: &str) -> Option<Value> {
    let event_states = {
        let mut s = names(&EVENT_STATES, EventState::name);
        s.push("open");
        s
    };
    Some(match (path, name) {
        (_, "at") => json!({ "type": "string", "format": "date" }),
        (_, "bbox") => {
            pattern("^-?[0-9]{1,3}(\\.[0-9]{1,12})?(,-?[0-9]{1,3}(\\.[0-9]{1,12})?){3}$")
        }
        (_, "layer" | "collectionId") => pattern(&format!("^{LAYER}$")),
        (p, "layers") if p.starts_with("/tiles/") => pattern(&format!("^{LAYER}(,{LAYER})*$")),
        (p, "layers") if p.starts_with("/live") => {
            list_of(&names(&LiveLayer::ALL, LiveLayer::name))
        }
        (_, "kinds") => list_of(KINDS),
        (_, "grid" | "within" | "code") => pattern(CODE),
        ("/tiles/{layers}/{z}/{x}/{y}", "z") => range("integer", 0.0, 24.0),
        ("/tiles/{layers}/{z}/{x}/{y}", "x") => range("integer", 0.0, 16_777_215.0),
        ("/tiles/{layers}/{z}/{x}/{y}", "y") => pattern("^[0-9]{1,8}\\.(mvt|pbf)$"),
        ("/styles/{file}", "file") => pattern(&format!("^{NAME}(\\.json)?$")),
        ("/render/{file}", "file") => pattern(&format!("^{NAME}\\.png$")),
        ("/dashboards/{file}", "file") => pattern(&format!("^{NAME}\\.(png|json)$")),
        ("/dashboards/{id}/stream" | "/screen/{id}", "id") => pattern(&format!("^{NAME}$")),
        ("/render/{file}", "center") => {
            pattern("^-?[0-9]{1,3}(\\.[0-9]{1,12})?,-?[0-9]{1,2}(\\.[0-9]{1,12})?$")
        }
        ("/render/{file}", "zoom") => range("number", 0.0, 22.0),
        ("/render/{file}", "scale") => range("number", 1.0, 4.0),
        ("/render/{file}", "pitch") => range("number", 0.0, 60.0),
        ("/render/{file}", "bearing") => range("number", -360.0, 360.0),
        ("/dashboards/{id}/stream", "fps") => range("number", 0.1, 10.0),
        ("/dashboards/{id}/stream", "quality") => range("integer", 1.0, 100.0),
        ("/api" | "/ogc" | "/", "f") => one_of(&["json", "html"]),
        ("/layers/{layer}/stats", "f") => one_of(&["json", "geojson"]),
        ("/layers/{layer}/stats" | "/layers/{layer}/diff", "by") | ("/territories", "level") => {
            one_of(&levels())
        }
        ("/layers/{layer}/cells", "h3") => range("integer", 0.0, 15.0),
        ("/layers/{layer}/cells", "size") => range("number", 10.0, 100_000.0),
        ("/layers/{layer}/nearest", "max_distance") => range("number", 0.0, 100_000.0),
        ("/layers/{layer}/diff", "change") => one_of(&["added", "removed", "changed"]),
        ("/events", "state") => one_of(&event_states),
        ("/events", "category")
        | ("/sensors" | "/units" | "/events/{id}/nearest-units", "type") => pattern(SLUG),
        ("/units", "status") => one_of(&names(&UNIT_STATUSES, UnitStatus::name)),
        ("/grants", "status") => one_of(&GRANT_STATUSES),
        ("/objections", "state") => one_of(&OBJECTION_STATES),
        ("/audit", "decision") => one_of(&["allow", "deny"]),
        ("/audit" | "/live/changes" | "/sensors/{id}/readings", "from" | "to") => {
            json!({ "type": "string", "format": "date-time", "description": DATE_TIME })
        }
        ("/sensors/{id}/readings", "interval") => pattern("^[1-9][0-9]{0,7}[smhd]$"),
        (
            "/sensors/{id}"
            | "/sensors/{id}/readings"
            | "/units/{id}"
            | "/units/{id}/position"
            | "/units/{id}/status",
            "id",
        ) => pattern(ID),
        ("/reports/{receipt}", "receipt") => pattern("^[0-9a-f]{48}$"),
        ("/fonts/{fontstack}/{range}", "range") => pattern("^[0-9]{1,7}-[0-9]{1,7}\\.pbf$"),
        ("/sprites/{file}", "file") => pattern(&format!("^{NAME}(@2x)?\\.(json|png)$")),
        (
            "/collections/{collectionId}/tiles/{tileMatrixSetId}"
            | "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
            | "/tileMatrixSets/{tileMatrixSetId}",
            "tileMatrixSetId",
        ) => one_of(&["WebMercatorQuad"]),
        (_, "since" | "after") => {
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX })
        }
        ("/layers/{layer}/within", "radius") => json!({ "type": "number", "minimum": 0,
            "exclusiveMinimum": true, "maximum": 100_000, "description": "metres" }),
        _ => return None,
    })
}

/// The body of an operation, as JSON Schema.
fn body(method: &str, path: &str) -> Option<Value> {
    let strict = |required: &[&str], properties: Value| {
        json!({ "type": "object", "required": required, "properties": properties,
                "additionalProperties": false })
    };
    let ids = |max: usize| json!({ "type": "array", "maxItems": max, "items": pattern(ID) });
    let until = json!({ "type": "string", "format": "date", "description": "the term's end (a date: the end of that day in Beijing; or an RFC 3339 time)" });
    let fields =
        json!({ "type": "array", "items": pattern("^[^\\u0000-\\u001f]{1,63}$"), "maxItems": 200 });
    let reason_required = strict(&["reason"], json!({ "reason": says(2000) }));
    let reading = |sensor_required: bool| {
        let required: &[&str] = if sensor_required {
            &["sensor", "value"]
        } else {
            &["value"]
        };
        strict(
            required,
            json!({
                "sensor": or_null(pattern(ID)),
                "value": { "type": "number" },
                "at": or_null(json!({ "type": "string", "format": "date-time", "description": "when it was measured; now when absent" })),
            }),
        )
    };
    Some(match (method, path) {
        ("post", "/events") => strict(
            &["source", "category", "lon", "lat"],
            json!({
                "source": one_of(&SOURCES),
                "category": pattern(SLUG),
                "severity": one_of(&SEVERITIES),
                "description": text(2000),
                "lon": lon(), "lat": lat(),
                "media": { "type": "array", "maxItems": 20,
                           "items": pattern("^https?://[^\\s]{1,2040}$") },
                "reporter": or_null(text(200)),
            }),
        ),
        ("post", "/events/{id}/transitions") => strict(
            &["action"],
            json!({ "action": one_of(&names(&Action::ALL, Action::name)), "note": text(2000) }),
        ),
        ("post", "/events/{id}/units") => strict(&["units"], json!({ "units": ids(100) })),
        ("post", "/events/{id}/command") => strict(
            &[],
            json!({ "events": { "type": "array", "maxItems": 100, "items": { "type": "integer", "format": "int64" } },
                    "units": ids(100) }),
        ),
        ("post", "/sensors") => strict(
            &["id", "type", "lon", "lat", "unit"],
            json!({
                "id": pattern(ID), "type": pattern(SLUG), "name": or_null(text(200)),
                "lon": lon(), "lat": lat(), "unit": text(32),
                "thresholds": strict(&[], json!({
                    "high": { "type": "number" }, "low": { "type": "number" },
                    "rate": { "type": "number", "exclusiveMinimum": true, "minimum": 0 },
                })),
            }),
        ),
        ("post", "/sensors/{id}/readings") => reading(false),
        ("post", "/v1.1/{path}") => strict(
            &["result"],
            json!({
                "result": { "type": "number" },
                "phenomenonTime": { "type": "string", "format": "date-time", "description": "when it was measured; now when absent" },
                "resultTime": { "type": "string", "format": "date-time" },
                "Datastream": strict(&["@iot.id"], json!({ "@iot.id": pattern(ID) })),
                "FeatureOfInterest": strict(&["@iot.id"], json!({ "@iot.id": pattern(ID) })),
            }),
        ),
        ("post", "/readings") => strict(
            &["readings"],
            json!({ "readings": { "type": "array", "maxItems": 100_000, "items": reading(true) } }),
        ),
        ("post", "/units") => strict(
            &["id", "name", "type", "lon", "lat"],
            json!({
                "id": pattern(ID), "name": says(200), "type": pattern(SLUG),
                "status": one_of(&names(&UNIT_STATUSES, UnitStatus::name)),
                "lon": lon(), "lat": lat(),
            }),
        ),
        ("post", "/units/{id}/position") => {
            strict(&["lon", "lat"], json!({ "lon": lon(), "lat": lat() }))
        }
        ("post", "/units/{id}/status") => strict(
            &["status"],
            json!({ "status": one_of(&names(&UNIT_STATUSES, UnitStatus::name)) }),
        ),
        ("post", "/grids/locate") => strict(
            &["points"],
            json!({ "points": { "type": "array", "maxItems": 10_000, "items": {
                "type": "array", "minItems": 2, "maxItems": 2, "items": { "type": "number" },
                "description": "[lon, lat]" } } }),
        ),
        ("post", "/layers/{layer}/intersects") => json!({
            "type": "object", "required": ["type"],
            "description": "a GeoJSON geometry, Feature or FeatureCollection in WGS84 (RFC 7946)",
            "properties": { "type": one_of(&["Point", "MultiPoint", "LineString", "MultiLineString",
                "Polygon", "MultiPolygon", "GeometryCollection", "Feature", "FeatureCollection"]) },
        }),
        ("post", "/admin/keys") => {
            let roles: Vec<&str> = Role::ALL
                .into_iter()
                .filter(|r| !r.is_personal())
                .map(Role::name)
                .collect();
            strict(
                &["name", "roles"],
                json!({
                    "name": pattern("^[\\w.-]{1,64}$"),
                    "roles": { "type": "array", "minItems": 1,
                               "items": one_of(&roles), "description": ROLES_NOTE },
                    "department": or_null(pattern(DEPARTMENT)),
                    "territory": or_null(pattern(CODE)),
                    "sensors": or_null(json!({ "type": "array", "minItems": 1, "maxItems": 10_000,
                                 "items": pattern("^[A-Za-z0-9_.:*-]{1,64}$") })),
                    "days": range("integer", 1.0, 3650.0),
                }),
            )
        }
        ("post", "/admin/keys/{id}/revoke") => strict(&[], json!({ "reason": text(400) })),
        ("post", "/admin/revocations") => json!({
            "description": "a user may be revoked and restored; a revoked key stays revoked",
            "oneOf": [
                strict(&["subject"], json!({
                    "subject": pattern("^user:[^\\u0000-\\u001f\\u007f-\\u009f]{1,255}$"),
                    "revoked": { "type": "boolean" }, "reason": text(400) })),
                strict(&["subject"], json!({
                    "subject": pattern("^key:[^\\u0000-\\u001f\\u007f-\\u009f]{1,255}$"),
                    "revoked": { "type": "boolean", "enum": [true] }, "reason": text(400) })),
            ],
        }),
        ("post", "/grants") => strict(
            &["layer", "purpose", "until"],
            json!({ "layer": pattern(&format!("^{LAYER}$")), "purpose": says(2000), "until": until,
                    "public": { "type": "boolean" }, "fields": or_null(fields.clone()),
                    "territory": or_null(pattern(CODE)) }),
        ),
        ("post", "/grants/{id}/approve") => strict(
            &[],
            json!({ "until": or_null(until.clone()), "fields": or_null(fields.clone()),
                    "territory": or_null(pattern(CODE)), "note": text(2000) }),
        ),
        ("post", "/grants/{id}/refuse" | "/grants/{id}/revoke") => reason_required,
        ("post", "/objections") => strict(
            &["layer", "reason"],
            json!({ "layer": pattern(&format!("^{LAYER}$")), "reason": says(2000),
                    "feature": or_null(json!({ "type": "integer", "format": "int64" })) }),
        ),
        ("post", "/objections/{id}/decision") => strict(
            &["outcome", "reason"],
            json!({ "outcome": one_of(&["upheld", "rejected"]), "reason": says(2000) }),
        ),
        _ => return None,
    })
}

fn problem_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": {
        "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

/// Completes the generated document: parameter schemas, bodies, and every operation's
/// problems.
pub(crate) fn complete(doc: &mut Value) {
    doc["components"]["schemas"]["Problem"] = json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string", "description": "a URI naming the kind of problem" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string", "description": "what exactly is wrong" },
            "parameter": { "type": "string", "description": "the parameter at fault" },
            "state": { "type": "string", "description": "409: where the thing stands" },
            "allowed": { "type": "array", "items": { "type": "string" }, "description": "409: what is allowed from there" },
        },
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            complete_operation(path, method, op);
        }
    }
}

fn complete_operation(path: &str, method: &str, op: &mut Value) {
    let mut has_params = false;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        has_params = !params.is_empty();
        for p in params.iter_mut() {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            if let Some(schema) = parameter(path, &name) {
                p["schema"] = schema;
            } else if let Some(s) = p["schema"].as_object_mut() {
                // an absent parameter is what Option means; `null` is not a value to send
                s.remove("nullable");
                if let Some(one) = s.remove("allOf").and_then(|a| a.get(0).cloned()) {
                    s.extend(one.as_object().cloned().unwrap_or_default());
                }
            }
            // the server reads an empty optional parameter (`?grid=`) as one not given
            if p["in"] == "query" && p["required"] != json!(true) {
                p["allowEmptyValue"] = json!(true);
            }
        }
    }
    let body_schema = body(method, path);
    let has_body = op.get("requestBody").is_some();
    if let Some(schema) = body_schema {
        let body = &mut op["requestBody"];
        let types: Vec<String> = body["content"].as_object().map_or_else(
            || vec!["application/json".into()],
            |c| c.keys().cloned().collect(),
        );
        let mut content = Map::new();
        for t in types {
            content.insert(t, json!({ "schema": schema }));
        }
        body["content"] = Value::Object(content);
        body["required"] = json!(true);
    }
    let responses = op["responses"].as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    let mut add = |code: &str, description: &str| {
        let r = responses
            .entry(code)
            .or_insert_with(|| problem_response(description));
        if r["content"].get("application/problem+json").is_some() {
            r["content"]["application/problem+json"]["schema"] =
                json!({ "$ref": "#/components/schemas/Problem" });
        }
    };
    if has_params || has_body || method == "get" {
        add(
            "400",
            "a parameter or the body is malformed, unknown or given twice (the problem names it)",
        );
    }
    add(
        "401",
        "credentials were sent but are unknown, expired or revoked",
    );
    add("403", "the caller's roles or territory do not allow it");
    if path.contains('{') || has_body {
        add(
            "404",
            "what the path or the body names does not exist, or is not the caller's to see",
        );
    }
    if has_body {
        add("413", "the body is larger than this endpoint takes");
        add("415", "the body is not JSON");
    }
    add("429", "too many requests from this caller: see Retry-After");
    add(
        "503",
        "the store could not answer, or the server is too busy: try again",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use citytwin_city::live::Source;

    #[test]
    fn the_described_values_are_the_ones_the_server_reads() {
        for s in SOURCES {
            serde_json::from_value::<Source>(json!(s)).unwrap();
        }
        for s in SEVERITIES {
            serde_json::from_value::<citytwin_city::live::Severity>(json!(s)).unwrap();
        }
        for s in OBJECTION_STATES {
            serde_json::from_value::<citytwin_city::objections::ObjectionState>(json!(s)).unwrap();
        }
    }

    #[test]
    fn every_body_taking_operation_has_a_schema() {
        let doc = super::super::api::openapi();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if let Some(b) = op.get("requestBody") {
                    let content = b["content"].as_object().unwrap();
                    for (t, c) in content {
                        let schema = &c["schema"];
                        assert!(
                            schema["type"] == "object" || schema["oneOf"].is_array(),
                            "{method} {path} ({t}) has no body schema"
                        );
                    }
                }
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: no 401"
                );
                for p in op["parameters"].as_array().into_iter().flatten() {
                    assert!(
                        p["schema"].get("nullable").is_none() && p["schema"].get("allOf").is_none(),
                        "{method} {path} {}: {}",
                        p["name"],
                        p["schema"]
                    );
                }
            }
        }
    }
}
