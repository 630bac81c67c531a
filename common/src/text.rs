//! Bounding and sanitising attacker-controlled text before it reaches a response or a log
//! (requirements.md "Limits and identity": strings are truncated and made valid UTF-8).

/// Longest error message we emit, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// Longest single DNS record rendering we echo, in bytes (a TXT RRset can be 64 KiB).
pub const MAX_RECORD_ECHO_BYTES: usize = 1024;

/// `s` cut to at most `max_bytes` bytes on a character boundary, with `…` appended when cut.
pub fn truncate_for_echo(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 3);
    out.push_str(&s[..end]);
    out.push('…');
    out
}

/// Bytes from the network as printable, valid UTF-8: valid UTF-8 is kept, each invalid byte
/// becomes U+FFFD, control characters (including NUL) become `\u{..}` escapes, and the result
/// is bounded by `max_bytes`.
pub fn bytes_for_echo(bytes: &[u8], max_bytes: usize) -> String {
    let lossy = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(lossy.len().min(max_bytes));
    for c in lossy.chars() {
        if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
        if out.len() > max_bytes {
            break;
        }
    }
    truncate_for_echo(&out, max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        struct Case {
            name: &'static str,
            input: &'static str,
            max: usize,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "short",
                input: "abc",
                max: 5,
                want: "abc",
            },
            Case {
                name: "exact",
                input: "abcde",
                max: 5,
                want: "abcde",
            },
            Case {
                name: "cut",
                input: "abcdef",
                max: 3,
                want: "abc…",
            },
            Case {
                name: "multibyte",
                input: "ééé",
                max: 3,
                want: "é…",
            },
        ];
        for c in cases {
            assert_eq!(truncate_for_echo(c.input, c.max), c.want, "{}", c.name);
        }
    }

    #[test]
    fn bytes_are_made_printable() {
        assert_eq!(bytes_for_echo(b"ok", 10), "ok");
        assert_eq!(bytes_for_echo(b"a\0b", 20), "a\\u{0}b");
        assert_eq!(bytes_for_echo(&[0x61, 0xff, 0x62], 20), "a\u{fffd}b");
        assert_eq!(bytes_for_echo(&[b'x'; 100], 10), "xxxxxxxxxx…");
    }
}
