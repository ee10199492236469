//! The few bits of HTTP/1.1 the pod tool speaks, as pure functions: parsing a request head,
//! routing it, rendering a response, percent-encoding.

use std::net::SocketAddr;

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
}

/// Parses the request line of a request head.
pub fn parse_request(head: &str) -> Result<Request, String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
    })
}

/// The value of query parameter `key`, percent-decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

/// Status code and body for a request to the pod tool's HTTP server.
pub fn route(request: &Request, hostname: &str, client: SocketAddr) -> (u16, String) {
    if request.method != "GET" {
        return (405, format!("method {} not allowed\n", request.method));
    }
    match request.path.as_str() {
        "/hostname" => (200, hostname.to_string()),
        "/clientip" => (200, client.to_string()),
        "/echo" => (200, query_param(&request.query, "msg").unwrap_or_default()),
        other => (404, format!("no handler for {other}\n")),
    }
}

/// A complete `Connection: close` response.
pub fn render_response(status: u16, body: &str) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Splits a raw response into status code and body.
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "incomplete HTTP response".to_string())?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    Ok((code, body.to_string()))
}

/// Decodes `%XX` escapes and `+` (space) in a query value; invalid escapes stay as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match hex_byte(bytes[i + 1], bytes[i + 2]) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(high: u8, low: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

/// Percent-encodes everything but unreserved characters, for building `/echo?msg=` URLs.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SocketAddr {
        "10.0.0.9:5555".parse().unwrap()
    }

    #[test]
    fn requests_parse_and_route() {
        let r = parse_request("GET /echo?msg=hi%20there HTTP/1.1\r\nHost: x\r\n").unwrap();
        assert_eq!(r.path, "/echo");
        assert_eq!(route(&r, "h", client()), (200, "hi there".to_string()));
        let r = parse_request("GET /hostname HTTP/1.0").unwrap();
        assert_eq!(route(&r, "pod-a", client()), (200, "pod-a".to_string()));
        let r = parse_request("GET /clientip HTTP/1.1").unwrap();
        assert_eq!(route(&r, "h", client()), (200, "10.0.0.9:5555".to_string()));
        let r = parse_request("GET /nope HTTP/1.1").unwrap();
        assert_eq!(route(&r, "h", client()).0, 404);
        let r = parse_request("POST /hostname HTTP/1.1").unwrap();
        assert_eq!(route(&r, "h", client()).0, 405);
        assert!(parse_request("garbage").is_err());
        assert!(parse_request("GET / SPDY/3").is_err());
    }

    #[test]
    fn percent_coding_round_trips() {
        for s in ["hello", "a b&c=d", "100%", "ünï"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn responses_render_and_parse() {
        let raw = render_response(200, "pod-a");
        assert_eq!(
            parse_response(raw.as_bytes()).unwrap(),
            (200, "pod-a".to_string())
        );
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }
}
