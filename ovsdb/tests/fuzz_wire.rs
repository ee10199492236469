//! Property tests of the wire layer: arbitrary bytes and arbitrary JSON never make framing,
//! JSON-RPC classification or datum decoding panic, and a valid stream decodes the same
//! however it is split into reads.

use proptest::prelude::*;
use rovn_ovsdb::framing::{Framer, FramingError};
use rovn_ovsdb::jsonrpc::Message;
use rovn_ovsdb::{ColumnType, Datum};
use serde_json::{Map, Value as Json};

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        (-4_000_000i32..4_000_000).prop_map(|q| Json::from(f64::from(q) / 4.0)),
        "[ -~\\\\\"{}\\[\\]é\u{1F600}]{0,12}".prop_map(Json::String),
        prop_oneof![Just("set"), Just("map"), Just("uuid"), Just("named-uuid")]
            .prop_map(|s| Json::String(s.to_string())),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec(("[a-z_\"{}]{0,6}", inner), 0..6)
                .prop_map(|kv| Json::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON-RPC-shaped object: requests, responses and notifications with arbitrary payloads.
fn arb_message() -> impl Strategy<Value = Json> {
    (arb_json(), arb_json(), "[a-z_0-9]{1,10}", 0..3u8).prop_map(|(id, payload, method, kind)| {
        match kind {
            0 => serde_json::json!({"id": id, "method": method, "params": [payload]}),
            1 => serde_json::json!({"id": id, "result": payload, "error": null}),
            _ => serde_json::json!({"id": null, "method": method, "params": payload}),
        }
    })
}

fn column_types() -> Vec<ColumnType> {
    [
        serde_json::json!("integer"),
        serde_json::json!("string"),
        serde_json::json!("uuid"),
        serde_json::json!({"key": "string", "min": 0, "max": "unlimited"}),
        serde_json::json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}),
        serde_json::json!({"key": {"type": "integer", "minInteger": 0, "maxInteger": 4095}, "min": 0, "max": 1}),
        serde_json::json!({"key": {"type": "uuid", "refTable": "T"}, "min": 0, "max": "unlimited"}),
        serde_json::json!({"key": "real", "value": "boolean", "min": 0, "max": 2}),
    ]
    .iter()
    .filter_map(|j| ColumnType::from_json(j).ok())
    .collect()
}

/// Feeds `bytes` split at `cuts` and returns every message, or the first error.
fn decode_split(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Json>, FramingError> {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    for pair in points.windows(2) {
        framer.push(&bytes[pair[0]..pair[1]])?;
        while let Some(m) = framer.next_message()? {
            out.push(m);
        }
    }
    assert_eq!(
        framer.scanned(),
        framer.received(),
        "a byte was scanned twice or skipped"
    );
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut framer = Framer::new(1024);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.extend([0, bytes.len()]);
        points.sort_unstable();
        points.dedup();
        'feed: for pair in points.windows(2) {
            if framer.push(&bytes[pair[0]..pair[1]]).is_err() {
                break;
            }
            loop {
                match framer.next_message() {
                    Ok(Some(json)) => { let _ = Message::from_json(json); }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            prop_assert!(framer.buffered() <= 1024 + bytes.len());
        }
        let _ = Message::parse(&bytes);
    }

    #[test]
    fn valid_streams_split_anywhere_decode_identically(
        messages in prop::collection::vec(arb_message(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        pretty in any::<bool>(),
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            let text = if pretty { serde_json::to_vec_pretty(m) } else { serde_json::to_vec(m) };
            stream.extend(text.unwrap_or_default());
            if pretty { stream.push(b'\n'); }
        }
        let whole = decode_split(&stream, &[]);
        let split = decode_split(&stream, &cuts);
        prop_assert_eq!(whole.as_ref().ok(), Some(&messages));
        prop_assert_eq!(split.as_ref().ok(), Some(&messages));
        for m in messages {
            if let Ok(parsed) = Message::from_json(m.clone()) {
                // Our own serialization round-trips through the framer too.
                let bytes = parsed.to_bytes();
                let again = decode_split(&bytes, &cuts);
                let again = again.ok().and_then(|v| v.into_iter().next()).map(Message::from_json);
                prop_assert_eq!(again, Some(Ok(parsed)));
            }
        }
    }

    #[test]
    fn arbitrary_json_never_panics_datum_decoding(json in arb_json()) {
        for ty in column_types() {
            if let Ok(datum) = Datum::from_json(&json, &ty) {
                // Anything accepted re-encodes to something that decodes to the same datum.
                let again = Datum::from_json(&datum.to_json(), &ty);
                prop_assert_eq!(again.as_ref().ok(), Some(&datum));
            }
            let _ = Datum::from_json_unbounded(&json, &ty);
        }
        let _ = Message::from_json(json);
    }
}
