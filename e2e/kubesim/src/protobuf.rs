//! Decoding the Kubernetes protobuf encoding for the few request bodies kubectl sends
//! that way: its typed generators (`kubectl create namespace|configmap|service`) post
//! `application/vnd.kubernetes.protobuf`. The envelope is `k8s\0` +
//! `runtime.Unknown{typeMeta, raw}`; `raw` is the kind's generated message. Only the
//! kinds listed in [`decode`] are understood; others are refused with 415 by the caller.

use serde_json::{Map, Value, json};

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtoError {
    /// Not the `k8s\0` envelope, or truncated/garbled wire data.
    #[error("malformed protobuf body: {0}")]
    Malformed(&'static str),
    /// A kind this server cannot decode from protobuf.
    #[error("protobuf bodies of kind {0:?} are not supported; send application/json")]
    UnsupportedKind(String),
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .data
                .split_first()
                .ok_or(ProtoError::Malformed("truncated varint"))?;
            self.data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError::Malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.data.len() {
            return Err(ProtoError::Malformed("field longer than the message"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    /// Next (field number, value), or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ProtoError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtoError::Malformed("length overflow"))?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            _ => return Err(ProtoError::Malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn fields(data: &[u8]) -> impl Iterator<Item = Result<(u64, Field<'_>), ProtoError>> {
    let mut r = Reader { data };
    std::iter::from_fn(move || r.next().transpose())
}

fn text(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed("string is not UTF-8"))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for f in fields(b) {
        match f? {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) if bytes_value => v = json!(base64(x)),
            (2, Field::Bytes(x)) => v = json!(text(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn object_meta(b: &[u8]) -> Result<Value, ProtoError> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for f in fields(b) {
        match f? {
            (1, Field::Bytes(x)) if !x.is_empty() => {
                m.insert("name".into(), json!(text(x)?));
            }
            (2, Field::Bytes(x)) if !x.is_empty() => {
                m.insert("generateName".into(), json!(text(x)?));
            }
            (3, Field::Bytes(x)) if !x.is_empty() => {
                m.insert("namespace".into(), json!(text(x)?));
            }
            (6, Field::Bytes(x)) if !x.is_empty() => {
                m.insert("resourceVersion".into(), json!(text(x)?));
            }
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                labels.insert(k, v);
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                annotations.insert(k, v);
            }
            (14, Field::Bytes(x)) => finalizers.push(json!(text(x)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

fn config_map(raw: &[u8]) -> Result<Value, ProtoError> {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    let (mut data, mut binary) = (Map::new(), Map::new());
    for f in fields(raw) {
        match f? {
            (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            (2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                data.insert(k, v);
            }
            (3, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, true)?;
                binary.insert(k, v);
            }
            (4, Field::Varint(v)) => obj["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        obj["binaryData"] = Value::Object(binary);
    }
    Ok(obj)
}

fn namespace(raw: &[u8]) -> Result<Value, ProtoError> {
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace"});
    for f in fields(raw) {
        match f? {
            (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            (2, Field::Bytes(x)) => {
                let mut fin = Vec::new();
                for g in fields(x) {
                    if let (1, Field::Bytes(s)) = g? {
                        fin.push(json!(text(s)?));
                    }
                }
                obj["spec"] = json!({"finalizers": fin});
            }
            _ => {}
        }
    }
    Ok(obj)
}

fn int_or_string(b: &[u8]) -> Result<Value, ProtoError> {
    let (mut is_string, mut int_val, mut str_val) = (false, 0i64, String::new());
    for f in fields(b) {
        match f? {
            (1, Field::Varint(t)) => is_string = t == 1,
            (2, Field::Varint(v)) => int_val = i64::from(v as u32 as i32),
            (3, Field::Bytes(x)) => str_val = text(x)?,
            _ => {}
        }
    }
    Ok(if is_string {
        json!(str_val)
    } else {
        json!(int_val)
    })
}

fn service_port(b: &[u8]) -> Result<Value, ProtoError> {
    let mut port = Map::new();
    for f in fields(b) {
        match f? {
            (1, Field::Bytes(x)) if !x.is_empty() => {
                port.insert("name".into(), json!(text(x)?));
            }
            (2, Field::Bytes(x)) if !x.is_empty() => {
                port.insert("protocol".into(), json!(text(x)?));
            }
            (3, Field::Varint(v)) => {
                port.insert("port".into(), json!(v as u32 as i32));
            }
            (4, Field::Bytes(x)) => {
                port.insert("targetPort".into(), int_or_string(x)?);
            }
            (5, Field::Varint(v)) if v != 0 => {
                port.insert("nodePort".into(), json!(v as u32 as i32));
            }
            _ => {}
        }
    }
    Ok(Value::Object(port))
}

fn service(raw: &[u8]) -> Result<Value, ProtoError> {
    let mut obj = json!({"apiVersion": "v1", "kind": "Service"});
    for f in fields(raw) {
        match f? {
            (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            (2, Field::Bytes(x)) => {
                let mut spec = Map::new();
                let (mut ports, mut selector, mut external, mut cluster_ips) =
                    (Vec::new(), Map::new(), Vec::new(), Vec::new());
                for g in fields(x) {
                    match g? {
                        (1, Field::Bytes(p)) => ports.push(service_port(p)?),
                        (2, Field::Bytes(e)) => {
                            let (k, v) = map_entry(e, false)?;
                            selector.insert(k, v);
                        }
                        (3, Field::Bytes(v)) if !v.is_empty() => {
                            spec.insert("clusterIP".into(), json!(text(v)?));
                        }
                        (4, Field::Bytes(v)) if !v.is_empty() => {
                            spec.insert("type".into(), json!(text(v)?));
                        }
                        (5, Field::Bytes(v)) => external.push(json!(text(v)?)),
                        (7, Field::Bytes(v)) if !v.is_empty() => {
                            spec.insert("sessionAffinity".into(), json!(text(v)?));
                        }
                        (10, Field::Bytes(v)) if !v.is_empty() => {
                            spec.insert("externalName".into(), json!(text(v)?));
                        }
                        (18, Field::Bytes(v)) => cluster_ips.push(json!(text(v)?)),
                        _ => {}
                    }
                }
                for (key, list) in [
                    ("ports", ports),
                    ("externalIPs", external),
                    ("clusterIPs", cluster_ips),
                ] {
                    if !list.is_empty() {
                        spec.insert(key.into(), Value::Array(list));
                    }
                }
                if !selector.is_empty() {
                    spec.insert("selector".into(), Value::Object(selector));
                }
                obj["spec"] = Value::Object(spec);
            }
            _ => {}
        }
    }
    Ok(obj)
}

/// Decodes a `k8s\0`-enveloped protobuf body into the JSON form of the object.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtoError::Malformed("missing k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for f in fields(unknown) {
        match f? {
            (1, Field::Bytes(tm)) => {
                for g in fields(tm) {
                    match g? {
                        (1, Field::Bytes(x)) => api_version = text(x)?,
                        (2, Field::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => config_map(raw),
        ("v1", "Namespace") => namespace(raw),
        ("v1", "Service") => service(raw),
        _ => Err(ProtoError::UnsupportedKind(format!("{api_version}/{kind}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(n: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(n << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_config_map() {
        let meta = [
            len_field(1, b"cm"),
            len_field(3, b"ns"),
            len_field(11, &[len_field(1, b"a"), len_field(2, b"b")].concat()),
        ]
        .concat();
        let raw = [
            len_field(1, &meta),
            len_field(2, &[len_field(1, b"k"), len_field(2, b"v")].concat()),
            vec![4 << 3, 1],
        ]
        .concat();
        let type_meta = [len_field(1, b"v1"), len_field(2, b"ConfigMap")].concat();
        let body = [
            b"k8s\0".to_vec(),
            len_field(1, &type_meta),
            len_field(2, &raw),
        ]
        .concat();
        let v = decode(&body).unwrap_or_default();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns", "labels": {"a": "b"}}, "data": {"k": "v"}, "immutable": true})
        );
    }

    #[test]
    fn refuses_garbage_and_unknown_kinds() {
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        let type_meta = [len_field(1, b"v1"), len_field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), len_field(1, &type_meta)].concat();
        assert_eq!(
            decode(&body),
            Err(ProtoError::UnsupportedKind("v1/Secret".into()))
        );
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }
}
