//! An interface name, held inline.
//!
//! Every state carries one. As a `String` it cost a heap allocation at decode and at every
//! copy (tracker, store), and a cache miss at every look (the batch compares each lifetime's
//! name with the previous one's): ~5 % of an import (perf, measured then; git log -p BENCHMARKS.md).
//! It is as large as a wire name (IFNAMSIZ), not larger: every state in memory (tracked,
//! held, waiting to be archived) and every event carries one, and they are copied often.

use std::fmt;

/// Bytes an [`IfName`] holds: a whole wire name (IFNAMSIZ, 16 bytes with no NUL when the
/// sender is hostile).
pub const IFNAME_CAP: usize = 16;

/// An interface name of at most [`IFNAME_CAP`] bytes of UTF-8; a longer one (only text
/// input can have one: OpenBSD's names are shorter) is cut at the last whole character
/// that fits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName {
    len: u8,
    bytes: [u8; IFNAME_CAP],
}

impl IfName {
    pub fn new(s: &str) -> IfName {
        let mut name = IfName {
            len: 0,
            bytes: [0; IFNAME_CAP],
        };
        name.push(s);
        name
    }

    /// A NUL-padded name as pf sends it. Where `String::from_utf8_lossy` puts a U+FFFD (for
    /// each sequence that is not UTF-8) this puts a `?`: U+FFFD takes three bytes, and a
    /// hostile name would no longer fit whole.
    pub fn from_wire(b: &[u8]) -> IfName {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let mut name = IfName::default();
        for chunk in b[..end].utf8_chunks() {
            name.push(chunk.valid());
            if !chunk.invalid().is_empty() {
                name.push("?");
            }
        }
        name
    }

    /// Append what fits of `s`, up to its last whole character that does.
    fn push(&mut self, s: &str) {
        let at = usize::from(self.len);
        let mut n = s.len().min(IFNAME_CAP - at);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[at..at + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n as u8;
    }

    pub fn as_str(&self) -> &str {
        // Always whole UTF-8: built from a &str, cut at a character boundary.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Default for IfName {
    fn default() -> IfName {
        IfName::new("")
    }
}

impl std::ops::Deref for IfName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for IfName {
    fn from(s: &str) -> IfName {
        IfName::new(s)
    }
}

impl From<String> for IfName {
    fn from(s: String) -> IfName {
        IfName::new(&s)
    }
}

impl From<&String> for IfName {
    fn from(s: &String) -> IfName {
        IfName::new(s)
    }
}

impl PartialEq<str> for IfName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for IfName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_long_ones_are_cut_on_a_character() {
        assert_eq!(IfName::from_wire(b"em0\0\0\0\0\0\0\0\0\0\0\0\0\0"), "em0");
        assert_eq!(IfName::from_wire(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(IfName::from_wire(&[0; 16]), "");
        // Bytes that are not UTF-8: a `?` for each sequence, around what is.
        assert_eq!(IfName::from_wire(&[0xff; 16]).as_str(), "?".repeat(16));
        assert_eq!(IfName::from_wire(b"em\xff\xfe0\xc3\xa9\xc3"), "em??0é?");
        // A longer field (no sender's, but the decoder's caller decides): cut on a character.
        let wide = [b"0123456789abcde".as_slice(), "é".as_bytes()].concat();
        assert_eq!(IfName::from_wire(&wide), "0123456789abcde");
        let long = "é".repeat(30); // 60 bytes
        let cut = IfName::new(&long);
        assert_eq!(cut.as_str(), "é".repeat(8));
        let odd = format!("x{}", "é".repeat(30));
        assert_eq!(IfName::new(&odd).len(), 15, "cut before a split character");
        assert_eq!(
            format!("{}/{:?}", IfName::new("vlan12"), IfName::new("a")),
            "vlan12/\"a\""
        );
    }
}
