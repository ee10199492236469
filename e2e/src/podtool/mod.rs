//! `rovn-podtool`, the program test pods run (in the spirit of Kubernetes' agnhost): servers
//! that say who answered and who asked, a client that reports exactly what it got, and a prober
//! that checks many targets at once.

pub mod connect;
pub mod http;
pub mod probe;
pub mod serve;

use std::time::Duration;

/// Parses durations like `2s`, `500ms`, `1.5s` or `1m` (command-line timeouts).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 2s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit in {text:?}: use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// The name a server reports: `$HOSTNAME`, else the kernel's hostname (the pod's UTS name).
pub fn hostname() -> String {
    if let Ok(name) = std::env::var("HOSTNAME")
        && !name.is_empty()
    {
        return name;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The first line a TCP server writes and the prefix of every UDP reply.
pub fn greeting(hostname: &str, client: std::net::SocketAddr) -> String {
    format!("hostname={hostname} client={client}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn greeting_names_server_and_client() {
        let client = "10.16.0.5:40000".parse().unwrap();
        assert_eq!(
            greeting("pod-a", client),
            "hostname=pod-a client=10.16.0.5:40000\n"
        );
    }
}
