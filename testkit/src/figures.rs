//! Record batches as text with one figure per line: a golden snapshot
//! that reads and diffs figure by figure.

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;

/// The rows of `batches` as text: each row opens with its `keys` columns
/// in brackets, then has one `column=value` line for each other column,
/// in the batches' column order (an empty value is a null); a blank line
/// ends each row.
///
/// ```text
/// [level=city area_code=440700]
/// visits=1544
/// tested_share=
/// ```
pub fn one_figure_per_line(batches: &[RecordBatch], keys: &[&str]) -> String {
    let mut out = String::new();
    for b in batches {
        let schema = b.schema();
        let cell = |i: usize, r: usize| {
            let value = array_value_to_string(b.column(i), r).expect("a displayable value");
            format!("{}={value}", schema.field(i).name())
        };
        let key_columns: Vec<usize> = keys
            .iter()
            .map(|k| schema.index_of(k).expect("a key column"))
            .collect();
        for r in 0..b.num_rows() {
            let heading: Vec<String> = key_columns.iter().map(|&i| cell(i, r)).collect();
            out += &format!("[{}]\n", heading.join(" "));
            for i in (0..b.num_columns()).filter(|i| !key_columns.contains(i)) {
                out += &cell(i, r);
                out.push('\n');
            }
            out.push('\n');
        }
    }
    out
}
