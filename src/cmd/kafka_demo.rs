//! `gridstat demo --brokers`: produce the campaign to Kafka, then ingest it
//! with a consumer-group worker until the group has committed everything.

use std::sync::Arc;
use std::time::Duration;

use gridstat_ingest::kafka::{ensure_topics, group_lag, produce, KafkaIngestConfig};
use gridstat_ingest::{IngestEngine, IngestMetrics, IngestOptions, LakeStore};
use gridstat_schemas::generate::{GenOptions, Generator, Stream};
use gridstat_schemas::Registry;

/// Returns (rows written, messages quarantined).
pub(crate) async fn run(
    brokers: &str,
    tag: &str,
    registry: &Arc<Registry>,
    opts: &GenOptions,
    store: Arc<dyn object_store::ObjectStore>,
    ingest_opts: IngestOptions,
) -> anyhow::Result<(u64, u64)> {
    let visits = format!("gridstat-demo-{tag}.visits");
    let cases = format!("gridstat-demo-{tag}.cases");
    let topics = vec![visits.clone(), cases.clone()];
    let group = format!("gridstat-demo-{tag}");
    let config = KafkaIngestConfig {
        brokers: brokers.into(),
        topics: topics.clone(),
        group: group.clone(),
        settings: vec![],
    };
    ensure_topics(brokers, &topics, 6, &config.settings).await?;
    let already: i64 = group_lag(brokers, &format!("{group}-probe"), &topics, &[])?
        .iter()
        .map(|l| l.2)
        .sum();
    if already == 0 {
        let messages = Generator::new(registry, opts.clone()).map(|m| {
            let topic = match m.stream {
                Stream::Visits => &visits,
                Stream::Cases => &cases,
            };
            (topic.clone(), m)
        });
        produce(brokers, messages).await?;
    }
    let metrics = Arc::new(IngestMetrics::default());
    let mut engine = IngestEngine::new(
        LakeStore::new(store),
        Arc::clone(registry),
        IngestOptions {
            flush_interval: Duration::from_secs(2),
            ..ingest_opts
        },
        Arc::clone(&metrics),
    );
    let consumer = config.build()?;
    let (brokers_owned, group_owned) = (brokers.to_string(), group.clone());
    let caught_up = async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (b, g, t) = (brokers_owned.clone(), group_owned.clone(), topics.clone());
            let lag = tokio::task::spawn_blocking(move || group_lag(&b, &g, &t, &[])).await;
            if let Ok(Ok(lag)) = lag {
                if lag.iter().all(|l| l.2 == 0) {
                    return;
                }
            }
        }
    };
    gridstat_ingest::kafka::run(consumer, &mut engine, caught_up).await?;
    let quarantined = metrics.quarantined_by_class().iter().map(|c| c.1).sum();
    Ok((metrics.rows_written(), quarantined))
}
