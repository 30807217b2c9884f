//! An interface name, held inline.
//!
//! Every state carries one. As a `String` it cost a heap allocation at decode and at every
//! copy (tracker, store), and a cache miss at every look (the seal compares each lifetime's
//! name with the previous one's): ~5 % of an import (perf, BENCHMARKS.md session 12).

use std::fmt;

/// Bytes an [`IfName`] holds: a 16-byte wire name (IFNAMSIZ) decoded lossily can grow to
/// three bytes per byte (U+FFFD for each invalid one).
pub const IFNAME_CAP: usize = 48;

/// An interface name of at most [`IFNAME_CAP`] bytes of UTF-8; a longer one (only text
/// input can have one) is cut at the last whole character that fits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName {
    len: u8,
    bytes: [u8; IFNAME_CAP],
}

impl IfName {
    pub fn new(s: &str) -> IfName {
        let mut n = s.len().min(IFNAME_CAP);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        let mut bytes = [0u8; IFNAME_CAP];
        bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        IfName {
            len: n as u8,
            bytes,
        }
    }

    /// A NUL-padded name as pf sends it.
    pub fn from_wire(b: &[u8]) -> IfName {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        match std::str::from_utf8(&b[..end]) {
            Ok(s) => IfName::new(s),
            Err(_) => IfName::new(&String::from_utf8_lossy(&b[..end])),
        }
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
        // Sixteen invalid bytes: sixteen replacement characters, all kept.
        let bad = IfName::from_wire(&[0xff; 16]);
        assert_eq!(bad.as_str(), "\u{fffd}".repeat(16));
        let long = "é".repeat(30); // 60 bytes
        let cut = IfName::new(&long);
        assert_eq!(cut.as_str(), "é".repeat(24));
        let odd = format!("x{}", "é".repeat(30));
        assert_eq!(IfName::new(&odd).len(), 47, "cut before a split character");
        assert_eq!(
            format!("{}/{:?}", IfName::new("vlan12"), IfName::new("a")),
            "vlan12/\"a\""
        );
    }
}
