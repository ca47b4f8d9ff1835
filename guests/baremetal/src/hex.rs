//! Hexadecimal number parsing for bootargs and console commands (`0x` prefix optional).

/// Parses `0x1f`, `0X1F` or `1f` as an unsigned 64-bit number. `None` if empty, not hex, or
/// wider than 64 bits.
pub fn parse_u64(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    // `from_str_radix` accepts a leading '+', which is not hex.
    if digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Parses a decimal number (bootarg values such as `heartbeat=500`).
pub fn parse_decimal_u32(text: &str) -> Option<u32> {
    if text.is_empty() || text.starts_with('+') {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn hex_with_and_without_prefix() {
        assert_eq!(parse_u64("0x10000000"), Some(0x1000_0000));
        assert_eq!(parse_u64("0XdeadBEEF"), Some(0xdead_beef));
        assert_eq!(parse_u64("84000000"), Some(0x8400_0000));
        assert_eq!(parse_u64("ffffffffffffffff"), Some(u64::MAX));
    }

    #[test]
    fn hex_rejects_junk() {
        for bad in [
            "",
            "0x",
            "0xg",
            "+1",
            "0x+1",
            "1_000",
            "10000000000000000",
            " 1",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decimal() {
        assert_eq!(parse_decimal_u32("500"), Some(500));
        assert_eq!(parse_decimal_u32(""), None);
        assert_eq!(parse_decimal_u32("+5"), None);
        assert_eq!(parse_decimal_u32("0x10"), None);
        assert_eq!(parse_decimal_u32("4294967296"), None);
    }
}
