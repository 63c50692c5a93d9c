//! How kckpt prints bytes that come from an image or from the outside
//! (paths, names, command lines): valid UTF-8 as it is, but control bytes
//! (below 0x20 and 0x7f), backslashes and bytes that are not UTF-8 as
//! `\xNN`. A message that names such a string therefore stays one line and
//! shows exactly which bytes it holds. Used by the stub's messages and by
//! `kckpt info`'s text output and errors (JSON escapes by its own rules).

/// Call `out` with successive pieces of the escaped form of `bytes`.
pub fn escaped(bytes: &[u8], mut out: impl FnMut(&[u8])) {
    let mut rest = bytes;
    while let Some(&b) = rest.first() {
        let n = utf8_len(rest);
        if n > 1 || (n == 1 && (0x20..0x7f).contains(&b) && b != b'\\') {
            out(&rest[..n]);
        } else {
            let hex = b"0123456789abcdef";
            out(&[
                b'\\',
                b'x',
                hex[usize::from(b >> 4)],
                hex[usize::from(b & 15)],
            ]);
        }
        rest = &rest[n.max(1)..];
    }
}

/// Length of the UTF-8 character `b` starts with, 0 if it does not start
/// with one (a stray continuation byte, an overlong form, a surrogate,
/// beyond U+10FFFF, cut short).
fn utf8_len(b: &[u8]) -> usize {
    // (length, lowest and highest second byte) by lead byte.
    let (n, lo, hi) = match b.first() {
        None => return 0,
        Some(0..=0x7f) => return 1,
        Some(0xc2..=0xdf) => (2, 0x80, 0xbf),
        Some(0xe0) => (3, 0xa0, 0xbf),
        Some(0xed) => (3, 0x80, 0x9f),
        Some(0xe1..=0xef) => (3, 0x80, 0xbf),
        Some(0xf0) => (4, 0x90, 0xbf),
        Some(0xf1..=0xf3) => (4, 0x80, 0xbf),
        Some(0xf4) => (4, 0x80, 0x8f),
        Some(_) => return 0,
    };
    match b.get(1..n) {
        Some([second, more @ ..])
            if (lo..=hi).contains(second) && more.iter().all(|&c| c & 0xc0 == 0x80) =>
        {
            n
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;
    use std::vec::Vec;

    fn esc(bytes: &[u8]) -> String {
        let mut v = Vec::new();
        super::escaped(bytes, |p| v.extend_from_slice(p));
        String::from_utf8(v).expect("escaped text is UTF-8")
    }

    #[test]
    fn plain_text_and_utf8_pass() {
        assert_eq!(esc(b"/tmp/a b.txt"), "/tmp/a b.txt");
        assert_eq!(
            esc("caf\u{e9} \u{1f600} \u{20ac}".as_bytes()),
            "caf\u{e9} \u{1f600} \u{20ac}"
        );
    }

    #[test]
    fn control_bytes_backslash_and_bad_utf8_are_escaped() {
        assert_eq!(
            esc(b"a\nb\r\x1b[1m\x7f\\"),
            "a\\x0ab\\x0d\\x1b[1m\\x7f\\x5c"
        );
        assert_eq!(esc(b"\0"), "\\x00");
        // Stray continuation, overlong, surrogate, beyond U+10FFFF, cut short.
        assert_eq!(esc(b"\x80"), "\\x80");
        assert_eq!(esc(b"\xc0\xaf"), "\\xc0\\xaf");
        assert_eq!(esc(b"\xed\xa0\x80"), "\\xed\\xa0\\x80");
        assert_eq!(esc(b"\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
        assert_eq!(esc(b"x\xe2\x82"), "x\\xe2\\x82");
        assert!(!esc(&(0..=255u8).collect::<Vec<_>>()).contains('\n'));
    }
}
