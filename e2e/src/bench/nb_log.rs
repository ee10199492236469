//! Counting the records of a standalone OVSDB database file. ovsdb-server appends one record
//! per committed transaction (after the schema record), so the difference between two counts
//! is the number of transactions committed in between. Every transaction rovn-controller sends
//! ends in a comment that the server keeps in the record's `_comment`, so rovn's own writes are
//! told apart from ovn-northd's. The parser is pure; [`RecordCounter`] reads only what was
//! appended since its last count.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rovn_api::names::COMMENT_PREFIX;

use super::error::BenchError;

const HEADER_PREFIX: &[u8] = b"OVSDB JSON ";

/// Records counted in a database file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Records {
    /// Every whole record (the schema record included).
    pub all: usize,
    /// Those that rovn-controller's transactions wrote.
    pub rovn: usize,
}

/// Whether a record's body is a transaction rovn-controller sent (its `_comment`).
fn written_by_rovn(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|record| {
            record
                .get("_comment")
                .and_then(|c| c.as_str())
                .map(|c| c.starts_with(COMMENT_PREFIX))
        })
        .unwrap_or(false)
}

/// The whole records in the bytes of a standalone database file, and how many bytes they
/// take. A torn last record (a write in progress) is left for the next count.
pub fn count_records(bytes: &[u8]) -> Result<(Records, usize), String> {
    let mut at = 0;
    let mut records = Records::default();
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some(line_end) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let header = &rest[..line_end];
        let Some(fields) = header.strip_prefix(HEADER_PREFIX) else {
            return Err(format!(
                "no record header at byte {at}: {:?}",
                String::from_utf8_lossy(&header[..header.len().min(40)])
            ));
        };
        let length: usize = std::str::from_utf8(fields)
            .ok()
            .and_then(|f| f.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad record header at byte {at}"))?;
        let end = line_end + 1 + length;
        if end > rest.len() {
            break;
        }
        let mut next = at + end;
        if bytes.get(next) == Some(&b'\n') {
            next += 1;
        }
        records.all += 1;
        if written_by_rovn(&rest[line_end + 1..end]) {
            records.rovn += 1;
        }
        at = next;
    }
    Ok((records, at))
}

/// Counts the records of one database file as it grows.
#[derive(Debug)]
pub struct RecordCounter {
    path: PathBuf,
    offset: u64,
    records: Records,
}

impl RecordCounter {
    /// A counter of `path`, which has not been read yet.
    pub fn new(path: &Path) -> RecordCounter {
        RecordCounter {
            path: path.to_path_buf(),
            offset: 0,
            records: Records::default(),
        }
    }

    /// The number of records now. A file that shrank was compacted by ovsdb-server, which
    /// would make counts meaningless, so that is an error.
    pub fn count(&mut self) -> Result<Records, BenchError> {
        let path = &self.path;
        let mut file = std::fs::File::open(path).map_err(|e| BenchError::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| BenchError::io("stat", path, e))?
            .len();
        if len < self.offset {
            return Err(BenchError::protocol(
                format!("database file {}", path.display()),
                "it shrank: ovsdb-server compacted it, so its records no longer count transactions",
            ));
        }
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| BenchError::io("seek", path, e))?;
        let mut appended = Vec::new();
        file.read_to_end(&mut appended)
            .map_err(|e| BenchError::io("read", path, e))?;
        let (records, used) = count_records(&appended).map_err(|detail| {
            BenchError::protocol(format!("database file {}", path.display()), detail)
        })?;
        self.records.all += records.all;
        self.records.rovn += records.rovn;
        self.offset += used as u64;
        Ok(self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> String {
        format!(
            "OVSDB JSON {} 0123456789abcdef0123456789abcdef01234567\n{json}\n",
            json.len()
        )
    }

    #[test]
    fn counts_whole_records_only() {
        let two = record("{\"name\":\"OVN_Northbound\"}") + &record("{\"a\":{}}");
        let all = |all, rovn| Records { all, rovn };
        assert_eq!(count_records(two.as_bytes()), Ok((all(2, 0), two.len())));
        let torn = two.clone() + "OVSDB JSON 50 0123\n{\"x\"";
        assert_eq!(count_records(torn.as_bytes()), Ok((all(2, 0), two.len())));
        assert_eq!(count_records(b""), Ok((all(0, 0), 0)));
        let ours = two.clone()
            + &record(&format!(
                "{{\"_comment\":\"{COMMENT_PREFIX} Pod/a/b\",\"x\":{{}}}}"
            ))
            + &record("{\"_comment\":\"ovn-nbctl: ls-add x\"}");
        assert_eq!(count_records(ours.as_bytes()), Ok((all(4, 1), ours.len())));
        assert!(count_records(b"garbage\n").is_err());
    }

    #[test]
    fn a_real_database_file_counts_one_record_per_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nb.db");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ovsdb-tool")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let db_arg = db.to_str().unwrap();
        run(&["create", db_arg, super::super::central::NB_SCHEMA]);
        let mut counter = RecordCounter::new(&db);
        assert_eq!(counter.count().unwrap().all, 1);
        for name in ["a", "b"] {
            let txn = format!(
                r#"["OVN_Northbound",{{"op":"insert","table":"Logical_Switch","row":{{"name":"{name}"}}}}]"#
            );
            run(&["transact", db_arg, &txn]);
        }
        assert_eq!(counter.count().unwrap(), Records { all: 3, rovn: 0 });
        // A transaction that ends in rovn's comment is told apart by the server's record.
        let ours = format!(
            r#"["OVN_Northbound",{{"op":"insert","table":"Logical_Switch","row":{{"name":"c"}}}},{{"op":"comment","comment":"{COMMENT_PREFIX} Subnet/c"}}]"#
        );
        run(&["transact", db_arg, &ours]);
        assert_eq!(counter.count().unwrap(), Records { all: 4, rovn: 1 });
        assert_eq!(counter.count().unwrap(), Records { all: 4, rovn: 1 });
    }
}
