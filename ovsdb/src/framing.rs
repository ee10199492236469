//! Splits the byte stream of an OVSDB session into its JSON texts.
//!
//! RFC 7047 sends JSON-RPC messages back to back with no length prefix or delimiter, so the
//! only way to find where one ends is to follow JSON's nesting. A monitor reply for a large
//! database can be tens of megabytes arriving in small reads; rescanning the buffered bytes on
//! every read would make that quadratic. [`Framer`] therefore keeps its scan state (nesting
//! depth, inside-a-string, after-a-backslash) across reads and looks at each byte exactly once,
//! then hands each complete text to `serde_json` once.

use serde_json::Value as Json;

/// Default bound on one message: big enough for a full NB database dump, small enough that a
/// misbehaving peer cannot make the client buffer without limit.
pub const DEFAULT_MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// Why the bytes received are not a stream of JSON texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A byte between messages that cannot start an OVSDB message (`{` or `[`).
    #[error(
        "unexpected byte 0x{byte:02x} at stream offset {offset}, where a JSON message must start"
    )]
    Garbage {
        /// The byte.
        byte: u8,
        /// Its offset from the start of the stream.
        offset: u64,
    },
    /// A closing bracket with nothing open, or nesting deeper than [`MAX_DEPTH`].
    #[error("unbalanced brackets at stream offset {offset}")]
    Unbalanced {
        /// Offset of the offending byte.
        offset: u64,
    },
    /// A message grew past the configured limit before it ended.
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The brackets balance but the text is not valid JSON.
    #[error("invalid JSON in a {len}-byte message: {reason}")]
    Json {
        /// The message's length.
        len: usize,
        /// serde_json's explanation.
        reason: String,
    },
    /// An earlier error left the stream unusable.
    #[error("the stream is unusable after an earlier framing error")]
    Poisoned,
}

/// Buffer capacity beyond which an emptied buffer is given back to the allocator.
const SHRINK_ABOVE: usize = 4 * 1024 * 1024;

/// Deepest nesting accepted; deeper texts are rejected before serde_json would recurse on them.
pub const MAX_DEPTH: u32 = 1024;

/// Incremental splitter of concatenated JSON texts.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the message being scanned (bytes before it are consumed).
    start: usize,
    /// Next byte to scan.
    pos: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
    max_message: usize,
    /// Stream offset of `buf[0]`, for error messages.
    base_offset: u64,
    scanned: u64,
    received: u64,
    poisoned: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Framer {
    /// A framer that rejects any message longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            start: 0,
            pos: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            max_message,
            base_offset: 0,
            scanned: 0,
            received: 0,
            poisoned: false,
        }
    }

    /// Appends bytes received from the peer. Call [`Framer::next_message`] until it returns
    /// `None` after each push: the size limit is enforced while scanning, so the buffer never
    /// holds more than one limit plus one read.
    ///
    /// Consumed bytes are dropped only once they make up at least half of the buffer, so every
    /// byte is moved at most a constant number of times however the stream is split.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        if self.poisoned {
            return Err(FramingError::Poisoned);
        }
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.base_offset += self.start as u64;
            self.pos -= self.start;
            self.start = 0;
            // Do not keep the memory of one huge message (a full database dump) for the
            // lifetime of the session.
            if self.buf.capacity() > SHRINK_ABOVE && self.buf.len() < SHRINK_ABOVE / 4 {
                self.buf.shrink_to(SHRINK_ABOVE / 4);
            }
        }
        self.buf.extend_from_slice(bytes);
        self.received += bytes.len() as u64;
        Ok(())
    }

    /// The next complete message, if the bytes pushed so far hold one.
    pub fn next_message(&mut self) -> Result<Option<Json>, FramingError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(range) => {
                let text = &self.buf[range];
                match serde_json::from_slice(text) {
                    Ok(json) => Ok(Some(json)),
                    Err(e) => {
                        let err = FramingError::Json {
                            len: text.len(),
                            reason: e.to_string(),
                        };
                        Err(self.poison(err))
                    }
                }
            }
        }
    }

    /// Finds the next complete text and returns its range in the buffer, marking it consumed.
    fn next_frame(&mut self) -> Result<Option<std::ops::Range<usize>>, FramingError> {
        if self.poisoned {
            return Err(FramingError::Poisoned);
        }
        let end = self.buf.len();
        while self.pos < end {
            let byte = self.buf[self.pos];
            self.scanned += 1;
            if self.depth == 0 {
                match byte {
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        self.pos += 1;
                        self.start = self.pos;
                        continue;
                    }
                    b'{' | b'[' => {
                        self.start = self.pos;
                        self.depth = 1;
                        self.pos += 1;
                        continue;
                    }
                    _ => {
                        let offset = self.offset(self.pos);
                        return Err(self.poison(FramingError::Garbage { byte, offset }));
                    }
                }
            }
            self.pos += 1;
            if self.pos - self.start > self.max_message {
                return Err(self.poison(FramingError::TooLarge {
                    limit: self.max_message,
                }));
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        let offset = self.offset(self.pos - 1);
                        return Err(self.poison(FramingError::Unbalanced { offset }));
                    }
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let range = self.start..self.pos;
                        self.start = self.pos;
                        return Ok(Some(range));
                    }
                }
                _ => {}
            }
        }
        if self.depth == 0 {
            self.start = self.pos;
        }
        Ok(None)
    }

    /// Bytes examined by the scanner since creation; equals [`Framer::received`] once all input
    /// is scanned, which is how the tests prove no byte is looked at twice.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Bytes pushed since creation.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes held for a message that has not ended yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether the stream ended cleanly between messages (no partial message is buffered).
    pub fn is_idle(&self) -> bool {
        self.depth == 0 && self.buf[self.start..].iter().all(u8::is_ascii_whitespace)
    }

    fn offset(&self, pos: usize) -> u64 {
        self.base_offset + pos as u64
    }

    fn poison(&mut self, err: FramingError) -> FramingError {
        self.poisoned = true;
        self.buf = Vec::new();
        self.start = 0;
        self.pos = 0;
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drain(framer: &mut Framer) -> Result<Vec<Json>, FramingError> {
        let mut out = Vec::new();
        while let Some(m) = framer.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn splits_concatenated_messages_with_tricky_strings() {
        let stream = br#"{"a":"}{\"]"} [1,[2],{"b":"\\"}]
{"id":null}"#;
        let mut f = Framer::default();
        f.push(stream).ok();
        let msgs = drain(&mut f).unwrap_or_default();
        assert_eq!(
            msgs,
            vec![
                json!({"a": "}{\"]"}),
                json!([1, [2], {"b": "\\"}]),
                json!({"id": null})
            ]
        );
        assert!(f.is_idle());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_messages() {
        let stream =
            br#"{"method":"echo","params":["x\"y"],"id":"e"}{"result":{},"error":null,"id":7}"#;
        let mut f = Framer::default();
        let mut msgs = Vec::new();
        for b in stream {
            f.push(&[*b]).ok();
            msgs.extend(drain(&mut f).unwrap_or_default());
        }
        assert_eq!(msgs.len(), 2);
        assert_eq!(f.scanned(), stream.len() as u64);
    }

    #[test]
    fn a_15_mb_message_in_4k_reads_is_scanned_once() {
        let big = json!({"result": {"Logical_Switch_Port": (0..170_000).map(|i| (format!("p{i}"), json!({"new": {"name": format!("port-{i}"), "addresses": ["set", ["0a:58:0a:10:00:01 10.16.0.1"]]}}))).collect::<serde_json::Map<_, _>>()}, "error": null, "id": 1});
        let bytes = serde_json::to_vec(&big).unwrap_or_default();
        assert!(bytes.len() > 15_000_000, "only {} bytes", bytes.len());
        let mut f = Framer::default();
        let mut got = None;
        for chunk in bytes.chunks(4096) {
            if f.push(chunk).is_err() {
                break;
            }
            if let Ok(Some(m)) = f.next_message() {
                got = Some(m);
            }
        }
        assert_eq!(
            f.scanned(),
            bytes.len() as u64,
            "every byte scanned exactly once"
        );
        assert_eq!(got.as_ref(), Some(&big));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut f = Framer::default();
        f.push(b"  hello").ok();
        assert!(matches!(
            f.next_message(),
            Err(FramingError::Garbage {
                byte: b'h',
                offset: 2
            })
        ));
        assert!(matches!(f.next_message(), Err(FramingError::Poisoned)));

        let mut f = Framer::default();
        f.push(b"]").ok();
        assert!(f.next_message().is_err());

        let mut f = Framer::default();
        f.push(b"{\"a\":]").ok();
        assert!(matches!(f.next_message(), Err(FramingError::Json { .. })));

        let mut f = Framer::default();
        f.push(&[b'['; 2000]).ok();
        assert!(matches!(
            f.next_message(),
            Err(FramingError::Unbalanced { .. })
        ));
    }

    #[test]
    fn oversized_messages_are_refused_without_unbounded_buffering() {
        let mut f = Framer::new(100);
        f.push(b"{\"a\":\"").ok();
        assert!(matches!(f.next_message(), Ok(None)));
        let mut failed = false;
        for _ in 0..100 {
            if f.push(&[b'x'; 10]).is_err() || f.next_message().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        assert!(f.buffered() <= 200);
    }
}
