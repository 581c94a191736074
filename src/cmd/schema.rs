//! `gridstat schema export`: the contract for client teams.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Write the messages' JSON Schemas (DIR/schemas/*.schema.json) and the intake's OpenAPI document (DIR/openapi.json).
    Export {
        /// Output directory (created if needed).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) fn run(args: SchemaArgs) -> anyhow::Result<()> {
    let SchemaCommand::Export { out } = args.command;
    let dir = out.join("schemas");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for s in gridstat_schemas::json_schema::all() {
        let path = dir.join(s.file);
        let mut text = serde_json::to_string_pretty(&s.schema)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{} ({})", path.display(), s.tag);
    }
    let path = out.join("openapi.json");
    std::fs::write(&path, gridstat_intake::server::OPENAPI)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{} (the intake's OpenAPI 3.1 document)", path.display());
    Ok(())
}
