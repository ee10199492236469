//! The NB transactions that name an owner, read from `ovsdb-tool show-log -m` of the NB
//! database file: rovn ends every transaction with a `comment` "rovn-controller: <owners>",
//! which ovsdb-server records with it, so who changed a row, and for which object, can be read
//! back. Pure.

use rovn_api::names::COMMENT_PREFIX;

/// One transaction record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its header line (`record 9: <date> <time> "<comment>"`).
    pub header: String,
    /// The indented lines that follow it (tables and rows changed).
    pub lines: Vec<String>,
}

/// The comment of a header line, without its quotes.
fn comment(header: &str) -> Option<&str> {
    let start = header.find('"')?;
    let end = header.rfind('"')?;
    (end > start).then(|| &header[start + 1..end])
}

/// Whether a comment is rovn's and lists `owner` among its owners.
pub fn names_owner(comment: &str, owner: &str) -> bool {
    comment
        .strip_prefix(COMMENT_PREFIX)
        .is_some_and(|owners| owners.split(',').any(|o| o.trim() == owner))
}

/// The records of `show_log` whose comment names `owner`.
pub fn records_naming(show_log: &str, owner: &str) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut current: Option<Record> = None;
    for line in show_log.lines() {
        if line.starts_with("record ") {
            records.extend(current.take());
            current = Some(Record {
                header: line.to_string(),
                lines: Vec::new(),
            });
        } else if let Some(record) = current.as_mut()
            && !line.trim().is_empty()
        {
            record.lines.push(line.to_string());
        }
    }
    records.extend(current);
    records
        .into_iter()
        .filter(|r| comment(&r.header).is_some_and(|c| names_owner(c, owner)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_naming_the_owner_exactly() {
        let log = std::fs::read_to_string(format!(
            "{}/fixtures/show_log.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let found = records_naming(&log, "Pod/demo/server-node1");
        let headers: Vec<&str> = found
            .iter()
            .map(|r| r.header.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(headers, vec!["record 9", "record 20", "record 27"]);
        assert!(
            found[0]
                .lines
                .iter()
                .any(|l| l.contains("\"server-node1.demo\""))
        );
        // ovn-northd's records never count, and a prefix of a name is not the name.
        assert!(records_naming(&log, "ovn-northd").is_empty());
        assert!(records_naming(&log, "Pod/demo/server-node").is_empty());
        assert!(names_owner("rovn-controller: Pod/a/b, Pod/a/c", "Pod/a/c"));
        assert!(!names_owner("ovn-nbctl: Pod/a/c", "Pod/a/c"));
    }
}
