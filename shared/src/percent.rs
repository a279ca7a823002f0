//! RFC 3986 percent-encoding of everything but the unreserved characters:
//! one encoder for the three places that need exactly this set (the
//! `otpauth://` URI, Duo's canonical request, the state file's login name).

pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_unreserved_characters_stay() {
        assert_eq!(encode("Zoë"), "Zo%C3%AB");
        assert_eq!(encode("A-z0._~"), "A-z0._~");
        assert_eq!(encode("a b/c@d:e%"), "a%20b%2Fc%40d%3Ae%25");
    }
}
