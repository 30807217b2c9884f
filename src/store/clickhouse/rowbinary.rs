//! ClickHouse's RowBinary format, the few types the tables use: little-endian integers,
//! strings as a LEB128 length and bytes, FixedString as its bytes, Nullable as a flag byte
//! (1 = NULL) before the value. The same bytes go to old (18.x) and new servers.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv6Addr};

/// Rows being encoded for one INSERT.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        let mut n = s.len() as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(b);
                break;
            }
            self.buf.push(b | 0x80);
        }
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.u8(0);
                self.i64(v);
            }
            None => self.u8(1),
        }
    }
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(v) => {
                self.u8(0);
                self.str(v);
            }
            None => self.u8(1),
        }
    }
    /// An address as FixedString(16): IPv6 as is, IPv4 mapped (::ffff:a.b.c.d).
    pub fn addr(&mut self, a: &IpAddr) {
        self.buf.extend_from_slice(&addr16(a));
    }
}

/// The 16 bytes an address is stored as.
pub fn addr16(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address 16 stored bytes hold (an IPv4-mapped one is the IPv4 address).
pub fn addr_of(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Reads RowBinary values off a stream; `at_end` tells a clean end between rows.
pub struct Decoder<R: Read> {
    r: R,
    peeked: Option<u8>,
}

impl<R: Read> Decoder<R> {
    pub fn new(r: R) -> Self {
        Decoder { r, peeked: None }
    }

    /// Whether the stream ended (asked before a row; a short read inside a row is an error).
    pub fn at_end(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        loop {
            match self.r.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut from = 0;
        if let (Some(p), Some(first)) = (self.peeked, buf.first_mut()) {
            *first = p;
            self.peeked = None;
            from = 1;
        }
        self.r.read_exact(&mut buf[from..])
    }

    fn arr<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }
    pub fn u8(&mut self) -> io::Result<u8> {
        Ok(self.arr::<1>()?[0])
    }
    pub fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    pub fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    pub fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    pub fn str(&mut self) -> io::Result<String> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(bad("string length too long"));
            }
        }
        // Our strings are names, sources and details: refuse what no row of ours holds.
        if n > 1 << 20 {
            return Err(bad("string longer than 1 MiB"));
        }
        let mut v = vec![0u8; n as usize];
        self.fill(&mut v)?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }
    fn null(&mut self) -> io::Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("bad Nullable flag")),
        }
    }
    pub fn opt_i64(&mut self) -> io::Result<Option<i64>> {
        Ok(if self.null()? {
            None
        } else {
            Some(self.i64()?)
        })
    }
    pub fn opt_str(&mut self) -> io::Result<Option<String>> {
        Ok(if self.null()? {
            None
        } else {
            Some(self.str()?)
        })
    }
    pub fn addr(&mut self) -> io::Result<IpAddr> {
        Ok(addr_of(self.arr()?))
    }
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RowBinary: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let mut e = Encoder::default();
        e.str(&"x".repeat(300));
        e.opt_i64(None);
        e.opt_i64(Some(-5));
        e.addr(&"192.0.2.1".parse().unwrap());
        e.addr(&"2001:db8::1".parse().unwrap());
        e.u16(443);
        let mut d = Decoder::new(&e.buf[..]);
        assert_eq!(d.str().unwrap().len(), 300);
        assert_eq!(d.opt_i64().unwrap(), None);
        assert_eq!(d.opt_i64().unwrap(), Some(-5));
        assert_eq!(d.addr().unwrap().to_string(), "192.0.2.1");
        assert_eq!(d.addr().unwrap().to_string(), "2001:db8::1");
        assert_eq!(d.u16().unwrap(), 443);
        assert!(d.at_end().unwrap());
    }

    #[test]
    fn a_short_or_hostile_stream_is_an_error_not_a_panic() {
        let mut d =
            Decoder::new(&[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(d.str().is_err());
        let mut d = Decoder::new(&[5u8, b'a'][..]);
        assert!(d.str().is_err());
        let mut d = Decoder::new(&[7u8][..]);
        assert!(d.opt_i64().is_err());
    }
}
