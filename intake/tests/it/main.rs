//! The intake's integration tests: over HTTP against a memory sink
//! (always), and against a real Kafka-protocol broker (with
//! GRIDSTAT_TEST_KAFKA=HOST:PORT, which infra/test.sh sets).

mod broker;
mod harness;
mod http;
mod openapi;
mod store_s3;
