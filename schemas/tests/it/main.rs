//! Integration tests of the schemas crate.
mod decode;
mod generate;
mod json_schema;
mod registry;
