//! A file source's identity: its name alone would let a second file of the
//! same name resume where the first stopped and silently skip its lines.

use gridstat_schemas::lake::SourceIdentity;

use crate::error::{Error, Result};

/// Leading bytes of a file source that identify it.
pub const IDENTITY_BYTES: usize = 64 * 1024;

/// The identity of a source whose first bytes are `prefix` (at most
/// [`IDENTITY_BYTES`]), checked against the one recorded when `topic` was
/// first ingested: the same file, or the same file grown by appended
/// lines, has the recorded number of leading bytes unchanged.
pub fn check_identity(
    topic: &str,
    recorded: Option<&SourceIdentity>,
    prefix: &[u8],
) -> Result<SourceIdentity> {
    if let Some(recorded) = recorded {
        let len = usize::try_from(recorded.len).unwrap_or(usize::MAX);
        let same = prefix.len() >= len && digest(&prefix[..len]) == recorded.hash;
        if !same {
            return Err(Error::OtherSource {
                topic: topic.to_string(),
                len: recorded.len,
            });
        }
    }
    Ok(SourceIdentity {
        len: prefix.len() as u64,
        hash: digest(prefix),
    })
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_or_the_file_grown_passes_another_file_does_not() {
        let first = check_identity("file:c", None, b"line 1\nline 2\n").unwrap();
        assert_eq!(first.len, 14);
        check_identity("file:c", Some(&first), b"line 1\nline 2\n").unwrap();
        let grown = check_identity("file:c", Some(&first), b"line 1\nline 2\nline 3\n").unwrap();
        assert_eq!(grown.len, 21);
        let err = check_identity("file:c", Some(&first), b"line 9\nline 2\n").unwrap_err();
        assert!(err.to_string().contains("--source-id"), "{err}");
        assert!(
            check_identity("file:c", Some(&first), b"line 1\n").is_err(),
            "shrunk"
        );
    }
}
