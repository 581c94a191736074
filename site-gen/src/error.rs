//! Errors of the site generator.

use thiserror::Error;

/// Why a site could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A template failed to render (a bug in an overriding template, or ours).
    #[error("template {name} failed to render")]
    Template {
        /// Template name.
        name: String,
        /// minijinja's error (with line).
        source: minijinja::Error,
    },
    /// A chart failed to draw.
    #[error("chart drawing failed: {0}")]
    Chart(String),
    /// The lake could not be read.
    #[error("reading {path} from the lake failed")]
    Store {
        /// Object or prefix.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A Parquet file could not be decoded.
    #[error("decoding {path} failed")]
    Parquet {
        /// Object.
        path: String,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// A table in the lake does not have the schema this build expects
    /// (written by another version of gridstat, or not by gridstat).
    #[error("table {table}: column `{column}` {problem}; expected {expected} (run `gridstat aggregate --all` with this version to rewrite it)")]
    Schema {
        /// Table (object path).
        table: String,
        /// Column.
        column: String,
        /// What is wrong: missing, or the type found.
        problem: String,
        /// The type expected.
        expected: String,
    },
    /// No rollups in the lake.
    #[error("the lake has no rollups yet: run `gridstat aggregate` first")]
    NoRollups,
    /// Writing the output failed.
    #[error("writing {path} failed")]
    Write {
        /// File.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A site file's path would lead outside the output directory.
    #[error("refusing to write {path}: a site file's path must be relative and made of plain names (an area code in the lake that is not one?)")]
    UnsafePath {
        /// The file's path in the site.
        path: String,
    },
    /// The output directory holds files `gridstat site` did not write.
    #[error("refusing to write the site into {path}: it is not empty and was not made by `gridstat site` (no {marker} file); give a new or empty directory")]
    ForeignDirectory {
        /// The directory.
        path: String,
        /// The marker file a site directory holds.
        marker: &'static str,
    },
    /// A templates directory could not be read.
    #[error("reading template {path} failed")]
    ReadTemplate {
        /// File.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
