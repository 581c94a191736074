//! Generated campaigns over the Jiangmen registry, with chosen options.

use gridstat_schemas::generate::{write_ndjson, Expect, GenOptions, GeneratedMessage, Generator};
use gridstat_schemas::{Registry, Stream};

/// Five days at 1 % scale with every kind of message the rollups count:
/// byte-identical resends, invalid messages and late arrivals.
pub fn mixed() -> GenOptions {
    GenOptions {
        days: 5,
        scale: 0.01,
        duplicate_rate: 0.05,
        invalid_rate: 0.02,
        late_rate: 0.08,
        ..GenOptions::default()
    }
}

/// `days` days at `scale` with byte-identical resends and invalid
/// messages of every class: what a transport must deliver exactly once.
pub fn faulty(days: u32, scale: f64) -> GenOptions {
    GenOptions {
        days,
        scale,
        duplicate_rate: 0.05,
        invalid_rate: 0.03,
        ..GenOptions::default()
    }
}

/// Every message of the campaign `opts` over the Jiangmen registry.
pub fn messages(opts: GenOptions) -> Vec<GeneratedMessage> {
    Generator::new(&Registry::jiangmen(), opts).collect()
}

/// The first `n` valid messages of the default campaign over `registry`,
/// of `stream` if given.
pub fn valid_payloads(registry: &Registry, stream: Option<Stream>, n: usize) -> Vec<Vec<u8>> {
    Generator::new(registry, GenOptions::default())
        .filter(|m| m.expect == Expect::Valid)
        .filter(|m| stream.is_none_or(|s| m.stream == s))
        .take(n)
        .map(|m| m.bytes)
        .collect()
}

/// `messages` as an NDJSON file's bytes.
pub fn ndjson(messages: &[GeneratedMessage]) -> Vec<u8> {
    let mut text = Vec::new();
    write_ndjson(&mut text, messages.iter().cloned()).expect("writing to memory");
    text
}
