//! Names no other test process uses, so tests run in parallel with each other and beside a
//! developer's lab: a caller's tag, this process's id and, for [`name`], a per-process counter,
//! all in base 36 so they fit short limits (lab names: 8 characters; interface names: 15).

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// `tag` followed by this process's id in base 36 (at most 5 characters for Linux pids):
/// the same on every call, unique among running processes. For the one lab per tag a test
/// process makes, whose name must stay short.
pub fn per_process(tag: &str) -> String {
    format!("{tag}{}", base36(u64::from(std::process::id())))
}

/// [`per_process`] followed by a counter in base 36: unique on every call.
pub fn name(tag: &str) -> String {
    format!(
        "{}{}",
        per_process(tag),
        base36(NEXT.fetch_add(1, Ordering::Relaxed))
    )
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(std::char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_and_fresh() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 - 1), "zz");
        assert!(per_process("ab").len() <= 7);
        let (a, b) = (name("t"), name("t"));
        assert_ne!(a, b);
        assert!(a.starts_with(&per_process("t")));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
