//! JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 §4).
//!
//! Both ends send requests: the server asks `echo` to probe the client and pushes monitor
//! updates as notifications (requests whose `id` is `null`). Ids are arbitrary JSON; this
//! client uses integers for its own calls but must echo back whatever the server sent.

use serde_json::{Value as Json, json};

use crate::abbreviate::abbreviate;

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response with the same `id`.
    Request {
        /// Any JSON except `null`.
        id: Json,
        /// The method name.
        method: String,
        /// The parameters, an array in OVSDB.
        params: Json,
    },
    /// The answer to a request: exactly one of `result` and `error` is non-null.
    Response {
        /// The id of the request answered.
        id: Json,
        /// The result, `null` on error.
        result: Json,
        /// The error, `null` on success.
        error: Json,
    },
    /// A request with `id: null`, which is never answered (`update`, `locked`, ...).
    Notification {
        /// The method name.
        method: String,
        /// The parameters.
        params: Json,
    },
}

/// Why a JSON text is not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON-RPC message ({reason}): {text}")]
pub struct MessageError {
    /// What is missing or wrong.
    pub reason: &'static str,
    /// The message, abbreviated.
    pub text: String,
}

impl Message {
    /// Classifies a parsed JSON text.
    pub fn from_json(json: Json) -> Result<Message, MessageError> {
        let Json::Object(mut obj) = json else {
            return Err(message_error("not an object", &json));
        };
        match obj.remove("method") {
            Some(Json::String(method)) => {
                let params = obj.remove("params").unwrap_or(Json::Array(Vec::new()));
                match obj.remove("id") {
                    None | Some(Json::Null) => Ok(Message::Notification { method, params }),
                    Some(id) => Ok(Message::Request { id, method, params }),
                }
            }
            Some(other) => {
                obj.insert("method".into(), other);
                Err(message_error("method is not a string", &Json::Object(obj)))
            }
            None => {
                if !obj.contains_key("result") && !obj.contains_key("error") {
                    return Err(message_error(
                        "neither a method nor a result or error",
                        &Json::Object(obj),
                    ));
                }
                let Some(id) = obj.remove("id") else {
                    return Err(message_error("response without id", &Json::Object(obj)));
                };
                Ok(Message::Response {
                    id,
                    result: obj.remove("result").unwrap_or(Json::Null),
                    error: obj.remove("error").unwrap_or(Json::Null),
                })
            }
        }
    }

    /// Parses one JSON text from bytes.
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        let json: Json = serde_json::from_slice(bytes).map_err(|_| MessageError {
            reason: "invalid JSON",
            text: abbreviate(&String::from_utf8_lossy(bytes), 200),
        })?;
        Message::from_json(json)
    }

    /// The message as a JSON object.
    pub fn to_json(&self) -> Json {
        match self {
            Message::Request { id, method, params } => {
                json!({"id": id, "method": method, "params": params})
            }
            Message::Response { id, result, error } => {
                json!({"id": id, "result": result, "error": error})
            }
            Message::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
        }
    }

    /// Appends the message's wire form to `out`, writing the parts in place rather than
    /// building a temporary object around (possibly large) params.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request { id, method, params } => {
                write_member(out, b"{\"id\":", id);
                write_member(out, b",\"method\":", method.as_str());
                write_member(out, b",\"params\":", params);
            }
            Message::Response { id, result, error } => {
                write_member(out, b"{\"id\":", id);
                write_member(out, b",\"result\":", result);
                write_member(out, b",\"error\":", error);
            }
            Message::Notification { method, params } => {
                write_member(out, b"{\"id\":", &Json::Null);
                write_member(out, b",\"method\":", method.as_str());
                write_member(out, b",\"params\":", params);
            }
        }
        out.push(b'}');
    }

    /// The message's wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize_into(&mut out);
        out
    }
}

fn write_member<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, prefix: &[u8], value: &T) {
    out.extend_from_slice(prefix);
    // Serializing a Value into a Vec cannot fail: its keys are strings and the sink infallible.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn message_error(reason: &'static str, json: &Json) -> MessageError {
    MessageError {
        reason,
        text: abbreviate(&json.to_string(), 200),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_responses_and_notifications() {
        let echo = Message::parse(br#"{"id":"echo","method":"echo","params":[]}"#);
        assert_eq!(
            echo,
            Ok(Message::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: json!([])
            })
        );
        let update = Message::parse(br#"{"id":null,"method":"update2","params":[1,{}]}"#);
        assert!(matches!(update, Ok(Message::Notification { .. })));
        let resp = Message::parse(br#"{"id":[1,"x"],"result":null,"error":{"error":"e"}}"#);
        assert!(matches!(resp, Ok(Message::Response { id, .. }) if id == json!([1, "x"])));
        assert!(Message::parse(b"[1]").is_err());
        assert!(Message::parse(br#"{"id":1}"#).is_err());
        assert!(Message::parse(br#"{"method":3}"#).is_err());
    }

    #[test]
    fn serialization_round_trips() {
        for m in [
            Message::Request {
                id: json!(5),
                method: "transact".into(),
                params: json!(["OVN_Northbound", {"op": "comment", "comment": "\"q\""}]),
            },
            Message::Response {
                id: json!("x"),
                result: json!([{}]),
                error: Json::Null,
            },
            Message::Notification {
                method: "update3".into(),
                params: json!([null, "00000000-0000-0000-0000-000000000000", {}]),
            },
        ] {
            assert_eq!(Message::parse(&m.to_bytes()), Ok(m.clone()));
            let via_json: Json = serde_json::from_slice(&m.to_bytes()).unwrap_or_default();
            assert_eq!(via_json, m.to_json());
        }
    }
}
