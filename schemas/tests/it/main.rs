//! Integration tests of the schemas crate.
mod decode;
mod generate;
mod registry;
