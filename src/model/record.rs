//! One state lifetime whole, as the queries answer it and the exports write it, wherever
//! a store keeps it.

use super::Micros;
use std::net::IpAddr;

/// One state lifetime as the query commands print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    pub private_ip: IpAddr,
    pub private_port: u16,
    pub public_ip: IpAddr,
    pub public_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub proto: u8,
    /// 2 inet, 24 inet6.
    pub af: u8,
    pub direction: u8,
    pub ifname: String,
    pub nat: bool,
    pub start: Micros,
    pub end: Option<Micros>,
    pub end_reason: Option<String>,
    pub last_seen: Micros,
    pub state_id: u64,
    pub creator_id: u32,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

impl Lifetime {
    /// 0 when the lifetime contains `at`, else the gap to its nearest edge.
    pub fn distance(&self, at: Micros) -> i64 {
        if at < self.start {
            self.start - at
        } else {
            match self.end {
                Some(e) if at > e => at - e,
                _ => 0,
            }
        }
    }
}
