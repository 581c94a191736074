//! Helpers shared by the unit tests that compare a table built outside
//! SQL with the SQL it replaces.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;

/// A small deterministic generator (xorshift64), so that random cases are
/// the same on every run.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every row of `batches` as text, sorted. Each column is cast to strings;
/// floats print in their shortest round-trip form, so equal text means
/// equal bits.
pub(crate) fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for b in batches {
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).expect("castable to text"))
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!arrow::array::Array::is_null(c, r)).then(|| c.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}
