//! `gridstat-bench aggregate`: a one-day refresh (`gridstat aggregate`
//! after the last day's files arrive) against a full rebuild (`gridstat
//! aggregate --all`) of the same lake: the binary, a process per run,
//! timed from start to exit.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use futures::TryStreamExt;
use gridstat_schemas::generate::Generator;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::campaign::{load_registry, CampaignArgs};
use crate::gridstat::Gridstat;
use crate::harness::{best, empty_lake, runs_list, runtime};

#[derive(Debug, Args)]
pub(crate) struct AggregateArgs {
    #[command(flatten)]
    campaign: CampaignArgs,
    /// Scratch directory (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Runs of the refresh and of the rebuild, taking turns; the best
    /// of each is compared. Each refresh starts from the lake the
    /// first one started from, so it redoes the same work.
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

pub(crate) fn run(registry_dir: Option<&Path>, args: AggregateArgs) -> anyhow::Result<()> {
    let gridstat = Gridstat::next_to_this_binary(registry_dir)?;
    let registry = load_registry(registry_dir)?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let opts = args.campaign.options()?;
    let last_day = opts.start + chrono::Days::new(u64::from(opts.days.max(1)) - 1);
    let last_day_ms = gridstat_schemas::time::local_midnight(last_day).timestamp_millis();
    // Messages sent before the last day, and those of the last day.
    let (mut before, mut last) = (Vec::new(), Vec::new());
    for m in Generator::new(&registry, opts.clone()) {
        let out = if m.sent_at_ms < last_day_ms {
            &mut before
        } else {
            &mut last
        };
        out.extend_from_slice(&m.bytes);
        out.push(b'\n');
    }
    std::fs::create_dir_all(&dir)?;
    let lake = dir.join("lake");
    empty_lake(&lake)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&lake)?);
    let runtime = runtime()?;
    let start = opts.start.to_string();
    let on_lake = [
        OsStr::new("--lake"),
        lake.as_os_str(),
        OsStr::new("--campaign-start"),
        OsStr::new(&start),
    ];
    let aggregate = |all: bool| {
        let flag = all.then_some(OsStr::new("--all"));
        gridstat.run(
            [OsStr::new("aggregate")]
                .into_iter()
                .chain(on_lake)
                .chain(flag),
        )
    };
    let mut before_refresh = Vec::new();
    for (name, bytes) in [("before.ndjson", &before), ("last-day.ndjson", &last)] {
        let file = dir.join(name);
        std::fs::write(&file, bytes)?;
        let from = [OsStr::new("ingest"), OsStr::new("--from"), file.as_os_str()];
        gridstat.run(from.into_iter().chain(on_lake))?;
        if name == "before.ndjson" {
            aggregate(false)?;
            before_refresh = runtime.block_on(aggregate_outputs(&store))?;
        }
    }
    // The two take turns, so that a busy spell of a shared machine slows
    // both rather than one side's every run. Each refresh starts from the
    // outputs and state the first one started from, so that it redoes the
    // same work, writing every file the new day changes (left as the
    // rebuild wrote them, they would be found unchanged and not written).
    let (mut incremental, mut full, mut what) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..args.runs.max(1) {
        runtime.block_on(restore_outputs(&store, &before_refresh))?;
        let refresh = aggregate(false)?;
        incremental.push(refresh.seconds);
        what = refresh.stdout.trim().to_string();
        full.push(aggregate(true)?.seconds);
    }
    println!(
        "aggregate: {} days, {:.0} MB of messages before the last day, {:.0} MB on it",
        opts.days,
        before.len() as f64 / 1e6,
        last.len() as f64 / 1e6
    );
    println!(
        "  one-day refresh   {:7.2} s  ({what})  runs: {}",
        best(&incremental),
        runs_list(&incremental)
    );
    println!(
        "  full rebuild      {:7.2} s  runs: {}",
        best(&full),
        runs_list(&full)
    );
    println!(
        "  ratio             {:.1}x (best against best)",
        best(&full) / best(&incremental)
    );
    Ok(())
}

/// What `gridstat aggregate` writes: curated tables, rollups, its state.
const AGGREGATE_OUTPUTS: [&str; 3] = ["curated", "rollups", "_state"];

/// Every object under [`AGGREGATE_OUTPUTS`].
async fn aggregate_output_objects(store: &Arc<dyn ObjectStore>) -> anyhow::Result<Vec<ObjectMeta>> {
    let mut objects = Vec::new();
    for prefix in AGGREGATE_OUTPUTS {
        objects.extend(
            store
                .list(Some(&prefix.into()))
                .try_collect::<Vec<_>>()
                .await?,
        );
    }
    Ok(objects)
}

/// Every object under [`AGGREGATE_OUTPUTS`], with its bytes.
async fn aggregate_outputs(
    store: &Arc<dyn ObjectStore>,
) -> anyhow::Result<Vec<(ObjectPath, Bytes)>> {
    let mut outputs = Vec::new();
    for meta in aggregate_output_objects(store).await? {
        let bytes = store.get(&meta.location).await?.bytes().await?;
        outputs.push((meta.location, bytes));
    }
    Ok(outputs)
}

/// Put the lake's aggregate outputs back to `outputs` exactly: objects
/// written since are deleted, changed ones put back, and unchanged ones
/// left alone (rewriting them all would leave the refresh timed next
/// amid the write-back of a hundred megabytes).
async fn restore_outputs(
    store: &Arc<dyn ObjectStore>,
    outputs: &[(ObjectPath, Bytes)],
) -> anyhow::Result<()> {
    let now: HashMap<_, _> = aggregate_output_objects(store)
        .await?
        .into_iter()
        .map(|meta| (meta.location, meta.size))
        .collect();
    let kept: HashSet<_> = outputs.iter().map(|(path, _)| path).collect();
    for path in now.keys().filter(|path| !kept.contains(path)) {
        store.delete(path).await?;
    }
    for (path, bytes) in outputs {
        let same = match now.get(path) {
            Some(&size) if size == bytes.len() as u64 => {
                store.get(path).await?.bytes().await? == *bytes
            }
            _ => false,
        };
        if !same {
            store.put(path, bytes.clone().into()).await?;
        }
    }
    Ok(())
}
