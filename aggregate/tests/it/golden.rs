//! Golden rollups of a small day: the city and its counties, every
//! figure on a line of its own.

use gridstat_schemas::generate::GenOptions;
use gridstat_testkit::figures::one_figure_per_line;

use crate::{aggregated, query};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_rollups_of_a_small_day() {
    let opts = GenOptions {
        seed: 5,
        days: 2,
        scale: 0.002,
        ..GenOptions::default()
    };
    let (lake, _, _) = aggregated(opts).await;
    for table in ["rollups_daily", "rollups_cumulative"] {
        let sql = format!(
            "SELECT * EXCLUDE (area_name) FROM {table} WHERE level IN ('city', 'county') AND dt = '2022-11-26' ORDER BY level, area_code"
        );
        let batches = query(&lake, &sql).await;
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(!text.is_empty());
        let figures = one_figure_per_line(&batches, &["level", "area_code", "dt"]);
        insta::assert_snapshot!(table, figures);
    }
}
