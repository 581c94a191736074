//! The device table in an S3 bucket (GRIDSTAT_TEST_S3_ENDPOINT, which
//! infra/test.sh sets): a change made from a stale read is refused by the
//! store and made again on the fresh table, so two administrators do not
//! lose each other's change.

use std::sync::Arc;

use gridstat_intake::devices::Area;
use gridstat_intake::store::DeviceStore;
use gridstat_schemas::Registry;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

#[tokio::test]
async fn a_change_from_a_stale_read_is_refused_and_made_again() {
    let Ok(endpoint) = std::env::var("GRIDSTAT_TEST_S3_ENDPOINT") else {
        eprintln!("skipped: set GRIDSTAT_TEST_S3_ENDPOINT (infra/test.sh does)");
        return;
    };
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("gridstat-test")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let prefix = format!(
        "devices-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap()
    );
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()));
    let path = Path::from("devices.json");
    let table = DeviceStore::new(
        Arc::clone(&store),
        path.clone(),
        "s3://gridstat-test/…/devices.json",
    );
    let registry = Registry::jiangmen();
    let now = chrono::Utc::now().fixed_offset();
    let county = || Area::County(registry.counties[0].code.clone());
    table
        .update(|t| t.add("rp-a", county(), &registry, now))
        .await
        .unwrap();

    // Administrator A reads; B changes the table; A's write of its stale
    // read is refused by the store.
    let (mut stale, version) = table.load().await.unwrap();
    table
        .update(|t| t.add("rp-b", county(), &registry, now))
        .await
        .unwrap();
    stale.add("rp-c", county(), &registry, now).unwrap();
    let version: UpdateVersion = version.unwrap();
    let put = store
        .put_opts(
            &path,
            PutPayload::from(stale.to_json()),
            PutOptions::from(PutMode::Update(version)),
        )
        .await;
    assert!(
        matches!(put, Err(object_store::Error::Precondition { .. })),
        "a stale write is refused: {put:?}"
    );
    // Through `update`, A's change is made on the fresh table.
    table
        .update(|t| t.add("rp-c", county(), &registry, now))
        .await
        .unwrap();
    let (fresh, _) = table.load().await.unwrap();
    let reporters: Vec<&str> = fresh
        .devices
        .iter()
        .map(|d| d.reporter_id.as_str())
        .collect();
    assert_eq!(reporters, ["rp-a", "rp-b", "rp-c"]);
}
