//! Shortening peer-supplied text for error messages.
//!
//! Errors quote what the server sent so that a failure can be understood from the log alone,
//! but a row or a whole update can be megabytes; they quote its start.

/// `text` if it is at most `max_len` bytes, else its start (cut on a character boundary)
/// followed by `...`, `max_len` bytes in all.
pub(crate) fn abbreviate(text: &str, max_len: usize) -> String {
    if text.len() <= max_len {
        return text.to_string();
    }
    let mut cut = max_len.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::abbreviate;

    #[test]
    fn short_text_is_kept_and_long_text_cut_on_a_char_boundary() {
        assert_eq!(abbreviate("abc", 3), "abc");
        assert_eq!(abbreviate("abcdef", 5), "ab...");
        assert_eq!(abbreviate("aé€xyz", 6), "aé...");
        assert_eq!(
            abbreviate("aé€xyz", 5),
            "a...",
            "a cut inside é backs off to its start"
        );
        assert!(abbreviate(&"x".repeat(1000), 200).len() == 200);
    }
}
