//! `--lake URL`: a local directory or an S3 bucket, as an object store whose
//! root is the lake's root.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

#[derive(Debug, Clone, Args)]
pub(crate) struct LakeArgs {
    /// The lake: `file:///path`, a plain path, or `s3://bucket/prefix` (credentials from the standard AWS_* variables).
    #[arg(long, env = "GRIDSTAT_LAKE", default_value = "./gridstat-data/lake")]
    pub(crate) lake: String,
    /// S3 endpoint for S3-compatible servers (MinIO, …); also AWS_ENDPOINT.
    #[arg(long, env = "GRIDSTAT_S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// Allow plain-HTTP S3 endpoints; also AWS_ALLOW_HTTP=true.
    #[arg(long, env = "GRIDSTAT_S3_ALLOW_HTTP")]
    pub(crate) s3_allow_http: bool,
}

/// Where a lake is, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LakeLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

pub(crate) fn parse_location(url: &str) -> anyhow::Result<LakeLocation> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(
            !bucket.is_empty(),
            "--lake {url:?}: no bucket name after s3://"
        );
        return Ok(LakeLocation::S3 {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
        });
    }
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(LakeLocation::Local(PathBuf::from(path)));
    }
    anyhow::ensure!(
        !url.contains("://"),
        "--lake {url:?}: unsupported scheme; use file:///path, a path, or s3://bucket/prefix"
    );
    Ok(LakeLocation::Local(PathBuf::from(url)))
}

impl LakeArgs {
    /// Open the lake for ingest: on local disk, what ingest writes is
    /// synced before it is committed.
    pub(crate) fn open_for_ingest(&self) -> anyhow::Result<gridstat_ingest::LakeStore> {
        let lake = gridstat_ingest::LakeStore::new(self.open()?);
        Ok(match parse_location(&self.lake)? {
            LakeLocation::Local(path) => lake.with_local_root(
                std::fs::canonicalize(&path)
                    .with_context(|| format!("opening the lake at {}", path.display()))?,
            ),
            LakeLocation::S3 { .. } => lake,
        })
    }

    /// Open the lake, creating a local directory if needed.
    pub(crate) fn open(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        match parse_location(&self.lake)? {
            LakeLocation::Local(path) => {
                std::fs::create_dir_all(&path)
                    .with_context(|| format!("creating the lake directory {}", path.display()))?;
                let store = LocalFileSystem::new_with_prefix(&path)
                    .with_context(|| format!("opening the lake at {}", path.display()))?;
                Ok(Arc::new(store))
            }
            LakeLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                if let Some(endpoint) = &self.s3_endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if self.s3_allow_http {
                    builder = builder.with_allow_http(true);
                }
                let s3: Arc<dyn ObjectStore> = Arc::new(
                    builder
                        .build()
                        .with_context(|| format!("configuring S3 for {}", self.lake))?,
                );
                if prefix.is_empty() {
                    Ok(s3)
                } else {
                    Ok(Arc::new(PrefixStore::new(s3, prefix.as_str())))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls() {
        assert_eq!(
            parse_location("/tmp/x").unwrap(),
            LakeLocation::Local("/tmp/x".into())
        );
        assert_eq!(
            parse_location("file:///tmp/x").unwrap(),
            LakeLocation::Local("/tmp/x".into())
        );
        assert_eq!(
            parse_location("s3://b/some/prefix/").unwrap(),
            LakeLocation::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into()
            }
        );
        assert!(parse_location("gs://b").is_err());
        assert!(parse_location("s3://").is_err());
    }
}

/// `gridstat lake …`: operators' tools for a lake's bookkeeping.
#[derive(Debug, clap::Args)]
pub(crate) struct LakeCommandArgs {
    #[command(subcommand)]
    command: LakeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LakeCommand {
    /// List every ingest partition's newest state: where it stands, its epoch and owner, or why it cannot be read.
    States {
        #[command(flatten)]
        lake: LakeArgs,
    },
    /// Repair a partition whose state cannot be read: its unreadable newest versions are moved aside and the newest readable one restored.
    RepairState {
        #[command(flatten)]
        lake: LakeArgs,
        /// The topic, as ingest consumes it (`file:NAME` for a file source).
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
    },
}

pub(crate) fn run(args: LakeCommandArgs) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    match args.command {
        LakeCommand::States { lake } => {
            let store = lake.open()?;
            let states = runtime.block_on(gridstat_ingest::repair::list_states(store.as_ref()))?;
            println!("topic\tpartition\tversion\tnext_offset\tepoch\towner");
            for s in states {
                let version = s.seq.map_or_else(|| "legacy".into(), |v| v.to_string());
                match s.state {
                    Ok(state) => println!(
                        "{}\t{}\t{version}\t{}\t{}\t{}",
                        s.topic_slug,
                        s.partition,
                        state.next_offset,
                        state.epoch,
                        state.owner.as_deref().unwrap_or("-")
                    ),
                    Err(reason) => println!(
                        "{}\t{}\t{version}\tUNREADABLE: {reason} — repair with `gridstat lake repair-state --topic … --partition {}`",
                        s.topic_slug, s.partition, s.partition
                    ),
                }
            }
            Ok(())
        }
        LakeCommand::RepairState {
            lake,
            topic,
            partition,
        } => {
            let store = lake.open()?;
            let repaired = runtime.block_on(gridstat_ingest::repair::repair_state(
                store.as_ref(),
                &topic,
                partition,
            ))?;
            for path in &repaired.moved_aside {
                println!("moved aside: {path} (kept as {path}.corrupt)");
            }
            match repaired.restored {
                Some((seq, next_offset)) => println!(
                    "{topic}/{partition} restored to version {seq}: next_offset {next_offset}. \
                     Offsets from {next_offset} on are read again by the partition's next owner if the \
                     group's committed offset is not past {next_offset}; if it is, reset it, e.g. \
                     `kafka-consumer-groups.sh --group GROUP --topic {topic}:{partition} --reset-offsets --to-offset {next_offset} --execute`."
                ),
                None => println!(
                    "{topic}/{partition} has no readable state left: its next owner starts from offset 0 and \
                     skips nothing; reset the group's offset for it to where its data in the lake ends, or replay it into a new lake."
                ),
            }
            Ok(())
        }
    }
}
