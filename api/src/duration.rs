//! Durations as rovn's flags and environment variables write them (`300s`, `1500ms`), read the
//! same way by the controller and the node agent.

use std::time::Duration;

/// Why a duration flag could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duration {input:?}: expected a number with a unit (ms, s, m, h), e.g. 300s")]
pub struct DurationError {
    /// What was given.
    pub input: String,
}

/// Parses `300s`, `1500ms`, `5m`, `1h` (a bare number is seconds), as the flags are written.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError {
        input: input.to_string(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
