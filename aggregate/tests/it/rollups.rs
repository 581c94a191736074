//! Step 2: rollups at every level, daily and cumulative, with the
//! catalogue's columns; children sum to their parent.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type, Schema};
use gridstat_aggregate::{AggregateOptions, NoProgress};
use gridstat_schemas::lake::dt_partition;
use gridstat_schemas::metrics::{Kind, Metric};
use gridstat_schemas::Registry;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{aggregated, query, two_days};

/// The daily and cumulative files hold the catalogue's rollup columns,
/// in its order and with its types. Their nullability is the
/// catalogue's but for the distinct reporter counts, which the files
/// declare never null.
#[tokio::test]
async fn rollup_files_have_the_catalogues_columns() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let registry = Registry::jiangmen();
    let campaign = gridstat_schemas::generate::GenOptions {
        days: 2,
        scale: 0.002,
        ..Default::default()
    };
    gridstat_testkit::lake::write_raw_lake(&store, &registry, campaign).await;
    let opts = AggregateOptions::default();
    let report = gridstat_aggregate::run(Arc::clone(&store), &registry, &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.rollup_days.len(), 2, "{report:?}");
    let columns = |schema: &Schema| -> Vec<(String, DataType)> {
        schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    let catalogue = gridstat_schemas::metrics::rollup_schema();
    let expected = columns(&catalogue);
    let nullable = |schema: &Schema| -> Vec<bool> {
        schema.fields().iter().map(|f| f.is_nullable()).collect()
    };
    let expected_nullable: Vec<bool> = catalogue
        .fields()
        .iter()
        .map(|f| {
            let reporters = gridstat_schemas::metrics::Metric::from_name(f.name())
                .is_some_and(|m| m.is_reporter_count());
            f.is_nullable() && !reporters
        })
        .collect();
    for table in ["rollups/daily", "rollups/cumulative"] {
        for day in &report.rollup_days {
            let path = format!("{table}/{}/part-00000.parquet", dt_partition(*day));
            let object = store.get(&path.as_str().into()).await.unwrap();
            let file =
                ParquetRecordBatchReaderBuilder::try_new(object.bytes().await.unwrap()).unwrap();
            assert_eq!(columns(file.schema()), expected, "{path}");
            assert_eq!(nullable(file.schema()), expected_nullable, "{path}");
        }
    }
}

/// The registry's towns that have grids: a town without any (a prison
/// in the Jiangmen registry) has nothing to roll up and no row.
fn towns_with_grids(registry: &Registry) -> usize {
    let towns: BTreeSet<usize> = registry.grids.iter().map(|g| g.town).collect();
    towns.len()
}

/// The registry's villages that have grids.
fn villages_with_grids(registry: &Registry) -> usize {
    let villages: BTreeSet<usize> = registry.grids.iter().map(|g| g.village).collect();
    villages.len()
}

/// Every area of the registry at its level that has grids has a row on
/// every day, in both tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_area_of_every_level_has_a_row_each_day() {
    let (lake, report, _) = aggregated(two_days()).await;
    let registry = Registry::jiangmen();
    let areas = [
        ("city", 1),
        ("county", registry.counties.len()),
        ("town", towns_with_grids(&registry)),
        ("village", villages_with_grids(&registry)),
        ("grid", registry.grids.len()),
    ];
    for table in ["rollups_daily", "rollups_cumulative"] {
        let sql = format!(
            "SELECT level, CAST(dt AS VARCHAR) AS dt, COUNT(DISTINCT area_code) AS n FROM {table} GROUP BY level, dt"
        );
        let mut got = Vec::new();
        for b in query(&lake, &sql).await {
            let text = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
            let (levels, days) = (text(0), text(1));
            let n = b.column(2).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                let level = levels.as_string::<i32>().value(r).to_string();
                let day = days.as_string::<i32>().value(r).to_string();
                got.push((day, level, n.value(r) as usize));
            }
        }
        got.sort();
        let mut want = Vec::new();
        for day in &report.rollup_days {
            for (level, n) in areas {
                want.push((day.to_string(), level.to_string(), n));
            }
        }
        want.sort();
        assert_eq!(got, want, "{table}");
    }
}

/// The catalogue's additive figures: those of the registry, flows,
/// states, and the distinct households, enterprises and venues (each
/// belongs to one grid), not the distinct reporters.
fn additive() -> Vec<&'static str> {
    Metric::stored()
        .filter(|m| match m.kind() {
            Kind::Registered | Kind::Flow | Kind::State => true,
            Kind::Distinct => !m.is_reporter_count(),
            _ => false,
        })
        .map(Metric::name)
        .collect()
}

/// Additive figures of an area's children sum to the area's, at every
/// level, in both tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additive_figures_of_children_sum_to_their_parent() {
    let (lake, _, _) = aggregated(two_days()).await;
    let additive = additive();
    assert!(additive.contains(&"households_visited") && additive.contains(&"hardships_open"));
    let registry = Registry::jiangmen();
    let parents =
        1 + registry.counties.len() + towns_with_grids(&registry) + villages_with_grids(&registry);
    let mut exercised = BTreeSet::new();
    for table in ["rollups_daily", "rollups_cumulative"] {
        let inner: Vec<String> = additive
            .iter()
            .map(|c| format!("SUM(c.{c}) AS s_{c}, MAX(p.{c}) AS p_{c}"))
            .collect();
        let outer: Vec<String> = additive
            .iter()
            .map(|c| {
                format!("SUM(CASE WHEN s_{c} <> p_{c} THEN 1 ELSE 0 END) AS off_{c}, SUM(p_{c}) AS total_{c}")
            })
            .collect();
        let sql = format!(
            "SELECT COUNT(*) AS parents, {} \
             FROM (SELECT c.dt, c.parent_code, {} \
                   FROM {table} c JOIN {table} p ON c.parent_code = p.area_code AND c.dt = p.dt \
                   GROUP BY c.dt, c.parent_code)",
            outer.join(", "),
            inner.join(", ")
        );
        let b = &query(&lake, &sql).await[0];
        let value = |name: &str| {
            let c =
                arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().value(0)
        };
        assert_eq!(value("parents") as usize, 2 * parents, "{table}");
        for column in &additive {
            let off = value(&format!("off_{column}"));
            assert_eq!(
                off, 0,
                "{table} {column}: children differ from their parent"
            );
            if value(&format!("total_{column}")) > 0 {
                exercised.insert(*column);
            }
        }
    }
    // Most figures are non-zero somewhere: the sums are not vacuous.
    assert!(
        exercised.len() * 4 >= additive.len() * 3,
        "{exercised:?} of {additive:?}"
    );
}
