//! The OpenAPI document lists every route the service has, references the
//! exported message schemas, and is what `/v1/openapi.json` serves.

use std::collections::BTreeSet;
use std::sync::Arc;

use gridstat_intake::server::{OPENAPI, ROUTES};
use gridstat_intake::MemorySink;
use serde_json::Value;

use crate::harness::{fast_opts, Served};

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_lists_every_route_and_references_the_exported_schemas() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served, "the document and the router agree");

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        if let Some(pointer) = r.strip_prefix('#') {
            assert!(doc.pointer(pointer).is_some(), "{r} resolves");
        }
    }
    let external: BTreeSet<String> = all.into_iter().filter(|r| !r.starts_with('#')).collect();
    let exported: BTreeSet<String> = gridstat_schemas::json_schema::all()
        .iter()
        .map(|s| format!("schemas/{}", s.file))
        .collect();
    assert_eq!(
        external, exported,
        "both message schemas, by their exported names"
    );
}

#[tokio::test]
async fn every_route_is_served_and_the_schemas_are_downloadable() {
    let served = Served::start(Arc::new(MemorySink::default()), fast_opts()).await;
    let client = reqwest::Client::new();
    for (method, path) in ROUTES {
        let path = path.replace("{file}", gridstat_schemas::json_schema::VISIT_SCHEMA_FILE);
        let r = client
            .request(method.parse().unwrap(), served.url(&path))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status().as_u16(), 404, "{method} {path}");
        assert_ne!(r.status().as_u16(), 405, "{method} {path}");
    }
    let doc = get_json(&client, &served.url("/v1/openapi.json")).await;
    assert_eq!(doc, serde_json::from_str::<Value>(OPENAPI).unwrap());
    // The document's relative references resolve against its own URL.
    for s in gridstat_schemas::json_schema::all() {
        let got = get_json(&client, &served.url(&format!("/v1/schemas/{}", s.file))).await;
        assert_eq!(got, s.schema);
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
