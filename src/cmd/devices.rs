//! `gridstat devices add|list|revoke`: the intake's per-device credentials.

use std::sync::Arc;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use gridstat_intake::devices::{Area, Device};
use gridstat_intake::store::DeviceStore;
use object_store::path::Path as ObjectPath;

use super::lake::{parse_location, LakeArgs, LakeLocation};

/// Where the device table is.
#[derive(Debug, Clone, Args)]
pub(crate) struct DevicesLocation {
    /// The device table: a JSON file path, or `s3://bucket/key.json` to share it between intake replicas.
    #[arg(
        long = "devices",
        env = "GRIDSTAT_DEVICES",
        default_value = "./gridstat-data/devices.json",
        value_name = "PATH|URL"
    )]
    pub(crate) location: String,
    /// S3 endpoint for S3-compatible servers (MinIO, …); also AWS_ENDPOINT.
    #[arg(long, env = "GRIDSTAT_S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// Allow plain-HTTP S3 endpoints; also AWS_ALLOW_HTTP=true.
    #[arg(long, env = "GRIDSTAT_S3_ALLOW_HTTP")]
    pub(crate) s3_allow_http: bool,
}

impl DevicesLocation {
    /// The table's store and key (a local table's directory is created).
    pub(crate) fn open(&self) -> anyhow::Result<DeviceStore> {
        let (root, key) = match parse_location(&self.location)? {
            LakeLocation::S3 { bucket, prefix } => {
                anyhow::ensure!(
                    !prefix.is_empty(),
                    "--devices {:?}: name the object, e.g. s3://{bucket}/devices.json",
                    self.location
                );
                (format!("s3://{bucket}"), prefix)
            }
            LakeLocation::Local(path) => {
                let name = path
                    .file_name()
                    .with_context(|| format!("--devices {:?}: name a file", self.location))?
                    .to_string_lossy()
                    .into_owned();
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| ".".into(), |p| p.display().to_string());
                (dir, name)
            }
        };
        let store = LakeArgs {
            lake: root,
            s3_endpoint: self.s3_endpoint.clone(),
            s3_allow_http: self.s3_allow_http,
        }
        .open()
        .with_context(|| format!("opening the device table {}", self.location))?;
        Ok(DeviceStore::new(
            store,
            ObjectPath::from(key.as_str()),
            self.location.clone(),
        ))
    }
}

#[derive(Debug, Args)]
pub(crate) struct DevicesArgs {
    #[command(subcommand)]
    command: DevicesCommand,
    #[command(flatten)]
    pub(crate) location: DevicesLocation,
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// Add a device; prints its token once (only its SHA-256 is stored).
    Add(AddArgs),
    /// List the devices (never their tokens).
    List {
        /// One JSON object per device instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: every intake replica refuses its token within 30 s.
    Revoke {
        /// The device id (`dev_…`, see `devices list`).
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("area").required(true).args(["grids", "village", "town", "county"])))]
struct AddArgs {
    /// The reporter id the device submits as (`reporter_id` of visits, `handler_id` of case updates).
    #[arg(long)]
    reporter: String,
    /// The grids it may submit for (comma-separated grid ids).
    #[arg(long, value_delimiter = ',')]
    grids: Vec<String>,
    /// Every grid of this village or community (12-digit code).
    #[arg(long)]
    village: Option<String>,
    /// Every grid of this town or street (9-digit code).
    #[arg(long)]
    town: Option<String>,
    /// Every grid of this county-level division (6-digit code).
    #[arg(long)]
    county: Option<String>,
    /// Print the device and its token as one JSON object.
    #[arg(long)]
    json: bool,
}

impl AddArgs {
    fn area(&self) -> Area {
        if let Some(v) = &self.village {
            Area::Village(v.clone())
        } else if let Some(t) = &self.town {
            Area::Town(t.clone())
        } else if let Some(c) = &self.county {
            Area::County(c.clone())
        } else {
            Area::Grids(self.grids.clone())
        }
    }
}

pub(crate) fn run(registry_dir: Option<&std::path::Path>, args: DevicesArgs) -> anyhow::Result<()> {
    let registry = Arc::new(super::load_registry(registry_dir)?);
    let store = args.location.open()?;
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        match args.command {
            DevicesCommand::Add(add) => {
                let now = chrono::Utc::now().with_timezone(&gridstat_schemas::time::shanghai());
                let area = add.area();
                let (device, token) = store
                    .update(|t| t.add(&add.reporter, area.clone(), &registry, now))
                    .await?;
                if add.json {
                    let mut v = serde_json::to_value(&device)?;
                    v["token"] = token.expose().into();
                    println!("{v}");
                } else {
                    println!("Added device {} for reporter {} ({}).", device.id, device.reporter_id, device.area);
                    println!("Token (shown only now; give it to the phone):");
                    println!("{}", token.expose());
                }
            }
            DevicesCommand::List { json } => {
                let (table, _) = store.load().await?;
                for d in &table.devices {
                    if json {
                        println!("{}", serde_json::to_string(d)?);
                    } else {
                        println!("{}", line(d));
                    }
                }
            }
            DevicesCommand::Revoke { id } => {
                let now = chrono::Utc::now().with_timezone(&gridstat_schemas::time::shanghai());
                let device = store
                    .update(|t| t.revoke(&id, now).cloned())
                    .await?;
                println!(
                    "Revoked device {} (reporter {}); intake replicas refuse its token within 30 s.",
                    device.id, device.reporter_id
                );
            }
        }
        anyhow::Ok(())
    })
}

fn line(d: &Device) -> String {
    let state = match d.revoked_at {
        Some(t) => format!("revoked {}", t.to_rfc3339()),
        None => "active".into(),
    };
    format!(
        "{}  {}  {}  added {}  {}",
        d.id,
        d.reporter_id,
        d.area,
        d.created_at.to_rfc3339(),
        state
    )
}
