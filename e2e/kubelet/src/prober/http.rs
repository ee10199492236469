//! The pure half of an `httpGet` probe: the URL and headers of the request, and what a
//! response means, following the real kubelet's HTTP prober (`pkg/probe/http`):
//!
//! - 200..=299 is success; 300..=399 that is not followed is a *warning*, which counts as
//!   success ("Probe terminated redirects"); anything else is a failure.
//! - Redirects (301, 302, 303, 307, 308 with a `Location`) are followed while they stay on the
//!   same host name (any port), at most 10 times; a redirect to another host is not followed
//!   and so ends as a warning.
//! - The request carries `User-Agent: kube-probe/<version>` and `Accept: */*` unless the spec
//!   sets them (an empty `Accept` removes it), the spec's `Host` header as the host, and
//!   `Connection: close`.

use std::fmt;

use super::Outcome;

/// The most of a response body kept (for the warning message), as upstream.
pub const MAX_BODY: usize = 10 * 1024;
/// Redirects followed before giving up, as Go's HTTP client.
pub const MAX_REDIRECTS: usize = 10;
/// The `User-Agent` the real kubelet of the API version this lab speaks sends.
pub const USER_AGENT: &str = "kube-probe/1.33";

/// An `http://` URL, split the way the request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or IP, without brackets.
    pub host: String,
    /// Port (80 when the URL has none).
    pub port: u16,
    /// Path and query, starting with `/`, percent-encoded where needed: the request target.
    pub target: String,
}

impl HttpUrl {
    /// The URL of a probe: `host` (or the pod IP), port and path.
    pub fn new(host: &str, port: u16, path: &str) -> Self {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Self {
            host: host.to_owned(),
            port,
            target: encode_target(strip_fragment(&path)),
        }
    }

    /// `host:port` as a `Host` header and a socket address want it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.target)
    }
}

/// The request headers, in order: what the spec sets plus the real prober's defaults. `Host`
/// comes first (from the spec, or the URL's authority).
pub fn request_headers(url: &HttpUrl, spec: &[(String, String)]) -> Vec<(String, String)> {
    fn named<'a>(spec: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
        spec.iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    let host = named(spec, "Host")
        .next()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| url.authority());
    let mut headers = vec![("Host".to_owned(), host)];
    let accept_cleared = named(spec, "Accept").next().is_some_and(str::is_empty);
    for (k, v) in spec {
        if k.eq_ignore_ascii_case("Host") || (accept_cleared && k.eq_ignore_ascii_case("Accept")) {
            continue;
        }
        headers.push((k.clone(), v.clone()));
    }
    if named(spec, "User-Agent").next().is_none() {
        headers.push(("User-Agent".into(), USER_AGENT.into()));
    }
    if named(spec, "Accept").next().is_none() {
        headers.push(("Accept".into(), "*/*".into()));
    }
    headers.push(("Connection".into(), "close".into()));
    headers
}

/// What to do with one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The probe is over.
    Done(Outcome),
    /// Send the request again to this URL (a same-host redirect); `keep_host` says whether a
    /// `Host` header from the spec still applies (Go keeps it only for a relative `Location`).
    Follow {
        /// Where to.
        url: HttpUrl,
        /// Whether the spec's `Host` header is kept.
        keep_host: bool,
    },
}

/// Classifies a response to the request for `current`, the `redirects`-th redirect of a probe
/// of `original`.
pub fn classify(
    original: &HttpUrl,
    current: &HttpUrl,
    redirects: usize,
    status: u16,
    location: Option<&str>,
    body: &str,
) -> Step {
    let followable = matches!(status, 301 | 302 | 303 | 307 | 308);
    if let Some(location) = location.filter(|l| followable && !l.is_empty()) {
        match resolve(current, location) {
            Err(e) => {
                return Step::Done(Outcome::Failure(format!(
                    "Get \"{current}\": failed to parse Location header {location:?}: {e}"
                )));
            }
            // Another host, or a scheme this prober does not speak: not followed, and the
            // redirect response itself is the result (a warning).
            Ok(Resolved::Other) => {}
            Ok(Resolved::Http(url)) if url.host != original.host => {}
            Ok(Resolved::Http(url)) => {
                if redirects + 1 >= MAX_REDIRECTS {
                    return Step::Done(Outcome::Failure(format!(
                        "Get \"{location}\": stopped after {MAX_REDIRECTS} redirects"
                    )));
                }
                return Step::Follow {
                    url,
                    keep_host: !has_scheme(location),
                };
            }
        }
    }
    Step::Done(status_outcome(status, body))
}

/// The outcome of a final response: upstream's `DoHTTPProbe`.
pub fn status_outcome(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Success(body.to_owned()),
        300..=399 => Outcome::Warning(format!("Probe terminated redirects, Response body: {body}")),
        _ => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
    }
}

/// A `Location` resolved against the URL it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// An `http://` URL.
    Http(HttpUrl),
    /// Any other scheme.
    Other,
}

/// Resolves a `Location` (absolute, scheme-relative, absolute-path, relative or query-only)
/// against `base`, as RFC 3986 section 5.2 does.
pub fn resolve(base: &HttpUrl, location: &str) -> Result<Resolved, String> {
    let location = strip_fragment(location.trim());
    if has_scheme(location) {
        let (scheme, rest) = location.split_once(':').unwrap_or(("", location));
        if !scheme.eq_ignore_ascii_case("http") {
            return Ok(Resolved::Other);
        }
        let Some(rest) = rest.strip_prefix("//") else {
            return Err("http URL without a host".into());
        };
        return absolute(rest).map(Resolved::Http);
    }
    if let Some(rest) = location.strip_prefix("//") {
        return absolute(rest).map(Resolved::Http);
    }
    let (base_path, _) = split_query(&base.target);
    let target = if location.is_empty() {
        base.target.clone()
    } else if location.starts_with('?') {
        format!("{base_path}{location}")
    } else {
        let (path, query) = split_query(location);
        let merged = if path.is_empty() {
            base_path.to_owned()
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{path}")
        };
        format!("{}{query}", remove_dot_segments(&merged))
    };
    Ok(Resolved::Http(HttpUrl {
        host: base.host.clone(),
        port: base.port,
        target: encode_target(&target),
    }))
}

/// Parses `authority/path?query` of an absolute `http://` URL.
fn absolute(rest: &str) -> Result<HttpUrl, String> {
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid host {authority:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in {rest:?}"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port {p:?}"))?,
    };
    let (path, query) = split_query(target);
    let path = if path.is_empty() { "/" } else { path };
    Ok(HttpUrl {
        host: host.to_owned(),
        port,
        target: encode_target(&format!("{}{query}", remove_dot_segments(path))),
    })
}

fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !scheme.contains('/')
}

fn strip_fragment(s: &str) -> &str {
    s.split_once('#').map_or(s, |(a, _)| a)
}

/// `(path, "?query")`; the query part keeps its `?` (or is empty).
fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

/// RFC 3986 section 5.2.4, for paths starting with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut joined = format!("/{}", out.join("/"));
    if trailing_slash && !joined.ends_with('/') {
        joined.push('/');
    }
    joined
}

/// Percent-encodes what may not appear in a request target (controls, space, non-ASCII and
/// the characters RFC 3986 excludes), leaving existing `%XX` escapes alone.
pub fn encode_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for b in target.bytes() {
        let keep = b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The first [`MAX_BODY`] bytes of a body as text.
pub fn body_text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, path: &str) -> HttpUrl {
        HttpUrl::new(host, port, path)
    }

    #[test]
    fn status_classification_as_upstream() {
        assert_eq!(status_outcome(200, "ok"), Outcome::Success("ok".into()));
        assert_eq!(status_outcome(204, ""), Outcome::Success(String::new()));
        assert_eq!(status_outcome(299, ""), Outcome::Success(String::new()));
        assert_eq!(
            status_outcome(302, "moved"),
            Outcome::Warning("Probe terminated redirects, Response body: moved".into())
        );
        assert!(matches!(status_outcome(304, ""), Outcome::Warning(_)));
        assert!(matches!(status_outcome(399, ""), Outcome::Warning(_)));
        for code in [100, 199, 400, 404, 500, 503, 600] {
            assert_eq!(
                status_outcome(code, "body"),
                Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
                "{code}"
            );
        }
    }

    #[test]
    fn same_host_redirects_are_followed() {
        let u = url("10.0.0.5", 8080, "/healthz");
        assert_eq!(
            classify(&u, &u, 0, 302, Some("/ready"), ""),
            Step::Follow {
                url: url("10.0.0.5", 8080, "/ready"),
                keep_host: true
            }
        );
        // Another port on the same host name is still "local".
        assert_eq!(
            classify(&u, &u, 0, 301, Some("http://10.0.0.5:9090/x"), ""),
            Step::Follow {
                url: url("10.0.0.5", 9090, "/x"),
                keep_host: false
            }
        );
        // The final answer after a redirect decides.
        let next = url("10.0.0.5", 8080, "/ready");
        assert_eq!(
            classify(&u, &next, 1, 200, None, "fine"),
            Step::Done(Outcome::Success("fine".into()))
        );
        assert_eq!(
            classify(&u, &next, 1, 500, None, ""),
            Step::Done(Outcome::Failure(
                "HTTP probe failed with statuscode: 500".into()
            ))
        );
    }

    #[test]
    fn other_host_redirect_is_a_warning_so_success() {
        let u = url("10.0.0.5", 8080, "/");
        let step = classify(&u, &u, 0, 302, Some("http://example.test/login"), "go away");
        assert_eq!(
            step,
            Step::Done(Outcome::Warning(
                "Probe terminated redirects, Response body: go away".into()
            ))
        );
        assert!(matches!(
            classify(&u, &u, 0, 307, Some("https://10.0.0.5/"), ""),
            Step::Done(Outcome::Warning(_))
        ));
    }

    #[test]
    fn redirect_without_location_or_unfollowable_code_ends() {
        let u = url("10.0.0.5", 80, "/");
        assert!(matches!(
            classify(&u, &u, 0, 302, None, ""),
            Step::Done(Outcome::Warning(_))
        ));
        assert!(matches!(
            classify(&u, &u, 0, 300, Some("/elsewhere"), ""),
            Step::Done(Outcome::Warning(_))
        ));
        assert!(matches!(
            classify(&u, &u, 0, 404, Some("/elsewhere"), ""),
            Step::Done(Outcome::Failure(_))
        ));
    }

    #[test]
    fn redirect_loops_stop_after_ten() {
        let u = url("10.0.0.5", 80, "/loop");
        assert!(matches!(
            classify(&u, &u, 8, 302, Some("/loop"), ""),
            Step::Follow { .. }
        ));
        assert_eq!(
            classify(&u, &u, 9, 302, Some("/loop"), ""),
            Step::Done(Outcome::Failure(
                "Get \"/loop\": stopped after 10 redirects".into()
            ))
        );
    }

    #[test]
    fn locations_resolve_per_rfc_3986() {
        let base = url("h", 8080, "/a/b/c?q=1");
        let r = |loc: &str| match resolve(&base, loc) {
            Ok(Resolved::Http(u)) => u.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(r("/x"), "http://h:8080/x");
        assert_eq!(r("d"), "http://h:8080/a/b/d");
        assert_eq!(r("../d?z"), "http://h:8080/a/d?z");
        assert_eq!(r("./"), "http://h:8080/a/b/");
        assert_eq!(r("?y=2"), "http://h:8080/a/b/c?y=2");
        assert_eq!(r("//other:81/p"), "http://other:81/p");
        assert_eq!(r("http://other"), "http://other:80/");
        assert_eq!(r("HTTP://[fd00::1]:90/p#frag"), "http://[fd00::1]:90/p");
        assert_eq!(r("/with space"), "http://h:8080/with%20space");
        assert_eq!(resolve(&base, "https://h/"), Ok(Resolved::Other));
        assert!(resolve(&base, "http://h:99999/").is_err());
        assert!(resolve(&base, "http:///nohost").is_err());
    }

    #[test]
    fn bad_location_is_a_failure() {
        let u = url("h", 80, "/");
        assert!(matches!(
            classify(&u, &u, 0, 302, Some("http://h:notaport/"), ""),
            Step::Done(Outcome::Failure(m)) if m.contains("failed to parse Location")
        ));
    }

    #[test]
    fn urls_and_targets() {
        assert_eq!(
            url("10.0.0.5", 80, "healthz").to_string(),
            "http://10.0.0.5:80/healthz"
        );
        assert_eq!(url("fd00::5", 8080, "/").authority(), "[fd00::5]:8080");
        assert_eq!(url("h", 1, "/a b?c=\"d\"#frag").target, "/a%20b?c=%22d%22");
        assert_eq!(url("h", 1, "/%41é").target, "/%41%C3%A9");
    }

    #[test]
    fn headers_default_and_override() {
        let u = url("10.0.0.5", 8080, "/");
        let h = request_headers(&u, &[]);
        assert_eq!(
            h,
            vec![
                ("Host".to_owned(), "10.0.0.5:8080".to_owned()),
                ("User-Agent".to_owned(), USER_AGENT.to_owned()),
                ("Accept".to_owned(), "*/*".to_owned()),
                ("Connection".to_owned(), "close".to_owned()),
            ]
        );
        let spec = vec![
            ("host".to_owned(), "svc.example".to_owned()),
            ("user-agent".to_owned(), "mine".to_owned()),
            ("X-A".to_owned(), "1".to_owned()),
            ("X-A".to_owned(), "2".to_owned()),
            ("Accept".to_owned(), String::new()),
        ];
        let h = request_headers(&u, &spec);
        assert_eq!(h[0], ("Host".to_owned(), "svc.example".to_owned()));
        assert!(h.iter().all(|(k, _)| !k.eq_ignore_ascii_case("accept")));
        assert!(!h.iter().any(|(_, v)| v == USER_AGENT));
        assert_eq!(h.iter().filter(|(k, _)| k == "X-A").count(), 2);
    }

    #[test]
    fn body_is_capped() {
        let big = vec![b'a'; MAX_BODY + 100];
        assert_eq!(body_text(&big).len(), MAX_BODY);
        assert_eq!(body_text(b"hi"), "hi");
    }
}
