//! Inclusion proofs in an export (`export --proof`, `verify-export --proof`;
//! docs/integrity.md, "Proofs in an export"): each exported lifetime of a closed day carries
//! its audit path against the day's newest root, and the recipient, with no database,
//! re-encodes the row into its leaf and checks the path against the root the manifest
//! lists (which they compare with the published syslog lines).

use crate::model::digest::{
    day_name, day_of, day_range, hex, hex_into, leaf_hash, parse_day, DayRoot, Tree,
};
use crate::model::{Lifetime, Micros};
use crate::report::parse_proto;
use crate::store::ReadStore;
use anyhow::anyhow;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// One closed day of one creator: its newest root and its whole tree, with the leaves'
/// order keys (state id, start) to find a lifetime's index.
struct DayTree {
    root: DayRoot,
    keys: Vec<(u64, Micros)>,
    tree: Tree,
}

/// The trees of every closed (creator, day) an export touches.
pub(crate) struct Proofs {
    days: HashMap<(u32, i64), DayTree>,
}

impl Proofs {
    /// Recompute the days an export of `[from, to]` touches (the days of `from` to `to`,
    /// and earlier days of lifetimes still alive at the first one's start) from the store,
    /// by the walk `verify` uses, and check each against its newest stored root: a
    /// database that no longer matches it gives no proof at all (it would be false).
    /// The inner `Err` is that mismatch, named.
    pub fn build(
        store: &dyn ReadStore,
        from: Micros,
        to: Micros,
    ) -> anyhow::Result<Result<Proofs, String>> {
        let mut newest: BTreeMap<(u32, i64), DayRoot> = BTreeMap::new();
        for r in store.day_roots()? {
            newest.insert((r.creator_id, r.day), r);
        }
        let (first, last) = (day_of(from), day_of(to));
        let mut days: BTreeSet<i64> = (first..=last).collect();
        // Lifetimes of earlier days that reach into the range: alive at the first day's
        // start (a short walk: only what was open at that instant).
        let edge = day_range(first).0 - 1;
        store.each_lifetime(edge, edge, &mut |l| {
            if l.start < day_range(first).0 && l.end.is_none_or(|e| e >= from) {
                days.insert(day_of(l.start));
            }
            Ok(())
        })?;
        let closed: BTreeSet<i64> = newest.keys().map(|(_, d)| *d).collect();
        let mut out = HashMap::new();
        for day in days {
            // Only days with a root: a day not closed yet has nothing to prove against.
            if !closed.contains(&day) {
                continue;
            }
            let (leaves, damaged) = store.day_leaves(day)?;
            for (creator, mut l) in leaves {
                let Some(root) = newest.get(&(creator, day)) else {
                    continue;
                };
                l.sort_unstable();
                let keys: Vec<(u64, Micros)> = l.iter().map(|(id, s, _)| (*id, *s)).collect();
                let tree = Tree::new(l.into_iter().map(|(_, _, h)| h).collect());
                if damaged || tree.root() != root.root || tree.len() as u64 != root.count {
                    return Ok(Err(format!(
                        "database does not match its published root for creator {creator:08x} day {} (version {}): see `pfstatelog verify`; nothing exported",
                        day_name(day),
                        root.version
                    )));
                }
                out.insert(
                    (creator, day),
                    DayTree {
                        root: root.clone(),
                        keys,
                        tree,
                    },
                );
            }
            // A creator whose day has a root but no lifetime left: no row to prove, and
            // verify names it.
        }
        Ok(Ok(Proofs { days: out }))
    }

    /// The proof of one exported lifetime as the JSON object the export appends to its row
    /// (`{"day":…,"creator":…,"version":…,"index":…,"size":…,"path":[…]}`), or `None` when
    /// its day is not closed. Written by hand: formatting the path through `Value` cost
    /// more than the rest of the row. `Err` when the lifetime is not a leaf of its closed
    /// day's tree (the store changed between the two reads).
    pub fn proof(&self, l: &Lifetime, out: &mut String) -> anyhow::Result<bool> {
        let day = day_of(l.start);
        let Some(d) = self.days.get(&(l.creator_id, day)) else {
            return Ok(false);
        };
        if !reads_back(l) {
            return Ok(false);
        }
        let h = leaf_hash(l);
        let lo = d.keys.partition_point(|k| *k < (l.state_id, l.start));
        let index = (lo..d.keys.len())
            .take_while(|&i| d.keys[i] == (l.state_id, l.start))
            .find(|&i| d.tree.leaf(i) == Some(&h))
            .ok_or_else(|| {
                anyhow!(
                    "lifetime {:016x} of creator {:08x} is not in the tree of day {} as read a moment before (the database changed during the export)",
                    l.state_id,
                    l.creator_id,
                    day_name(day)
                )
            })?;
        use std::fmt::Write;
        let _ = write!(
            out,
            r#"{{"day":"{}","creator":"{:08x}","version":{},"index":{index},"size":{},"path":["#,
            day_name(day),
            l.creator_id,
            d.root.version,
            d.tree.len()
        );
        for (i, p) in d.tree.path(index).unwrap_or_default().iter().enumerate() {
            out.push_str(if i == 0 { "\"" } else { ",\"" });
            hex_into(p, out);
            out.push('"');
        }
        out.push_str("]}");
        Ok(true)
    }

    /// The roots used, for the manifest: creator, day, version, lifetimes, root.
    pub fn roots(&self) -> Vec<Value> {
        let mut r: Vec<&DayRoot> = self.days.values().map(|d| &d.root).collect();
        r.sort_by_key(|r| (r.day, r.creator_id));
        r.iter().map(|r| root_json(r)).collect()
    }
}

pub(crate) fn root_json(r: &DayRoot) -> Value {
    json!({
        "creator": format!("{:08x}", r.creator_id),
        "day": day_name(r.day),
        "version": r.version,
        "lifetimes": r.count,
        "root": hex(&r.root),
    })
}

/// A manifest's root entry back.
pub(crate) fn root_of(v: &Value) -> Option<DayRoot> {
    Some(DayRoot {
        creator_id: u32::from_str_radix(v["creator"].as_str()?, 16).ok()?,
        day: parse_day(v["day"].as_str()?)?,
        count: v["lifetimes"].as_u64()?,
        root: crate::model::digest::parse_hex(v["root"].as_str()?)?,
        version: u32::try_from(v["version"].as_u64()?).ok()?,
        reason: String::new(),
    })
}

/// Whether the export's row of `l` carries every leaf field as it is: an address family or
/// direction the names cannot say, or a time outside the years 1970..=9999, would not
/// re-encode into the same leaf (no decoder stores one; such a row gets no proof).
fn reads_back(l: &Lifetime) -> bool {
    const YEAR_10000: Micros = 253_402_300_800_000_000;
    let t = |us: Micros| (0..YEAR_10000).contains(&us);
    matches!(l.af, 2 | 24) && matches!(l.direction, 1 | 2) && t(l.start) && l.end.is_none_or(t)
}

fn micros(s: &str) -> Option<Micros> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// The lifetime an exported JSON row describes, as far as the leaf needs it (counters and
/// "last seen" are not in the leaf and are left at zero). `Err` names the field that does
/// not read.
pub(crate) fn lifetime_of_row(v: &Value) -> Result<Lifetime, String> {
    let s = |k: &str| v[k].as_str().ok_or_else(|| format!("no \"{k}\""));
    let ip = |k: &str| -> Result<IpAddr, String> {
        s(k)?
            .parse()
            .map_err(|_| format!("\"{k}\" is not an address"))
    };
    let port = |k: &str| -> Result<u16, String> {
        v[k].as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("\"{k}\" is not a port"))
    };
    let time = |k: &str| micros(s(k)?).ok_or_else(|| format!("\"{k}\" is not a time"));
    let hex_int = |k: &str| u64::from_str_radix(s(k).unwrap_or("x"), 16).ok();
    let af = match s("af")? {
        "inet" => 2,
        "inet6" => 24,
        _ => return Err("\"af\" is not inet or inet6".into()),
    };
    let direction = match s("direction")? {
        "in" => 1,
        "out" => 2,
        _ => return Err("\"direction\" is not in or out".into()),
    };
    Ok(Lifetime {
        private_ip: ip("private_ip")?,
        private_port: port("private_port")?,
        public_ip: ip("public_ip")?,
        public_port: port("public_port")?,
        remote_ip: ip("remote_ip")?,
        remote_port: port("remote_port")?,
        proto: parse_proto(s("proto")?).ok_or("\"proto\" is not a protocol")?,
        af,
        direction,
        ifname: s("ifname")?.to_string(),
        nat: v["nat"].as_bool().ok_or("\"nat\" is not true or false")?,
        start: time("start")?,
        end: match &v["end"] {
            Value::Null => None,
            _ => Some(time("end")?),
        },
        end_reason: match &v["end_reason"] {
            Value::Null => None,
            _ => Some(s("end_reason")?.to_string()),
        },
        last_seen: 0,
        state_id: hex_int("state_id").ok_or("\"state_id\" is not a hex id")?,
        creator_id: hex_int("creator_id")
            .and_then(|c| u32::try_from(c).ok())
            .ok_or("\"creator_id\" is not a hex id")?,
        packets: [0; 2],
        bytes: [0; 2],
    })
}

/// Check one exported row's proof against the manifest's roots: `Ok(true)` it verifies,
/// `Ok(false)` the row has no proof (its day was not closed), `Err` why it fails.
pub(crate) fn check_row(
    row: &Value,
    roots: &HashMap<(u32, i64, u32), DayRoot>,
) -> Result<bool, String> {
    let p = &row["proof"];
    if p.is_null() {
        return Ok(false);
    }
    let l = lifetime_of_row(row)?;
    let creator = p["creator"]
        .as_str()
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or("the proof names no creator")?;
    let day = p["day"]
        .as_str()
        .and_then(parse_day)
        .ok_or("the proof names no day")?;
    if creator != l.creator_id || day != day_of(l.start) {
        return Err("the proof is for another creator or day than the row's".into());
    }
    let version = p["version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or("the proof has no version")?;
    let root = roots.get(&(creator, day, version)).ok_or_else(|| {
        format!(
            "the manifest lists no root for creator {creator:08x} day {} version {version}",
            day_name(day)
        )
    })?;
    let (Some(index), Some(size)) = (p["index"].as_u64(), p["size"].as_u64()) else {
        return Err("the proof has no index or size".into());
    };
    if size != root.count {
        return Err(format!(
            "the proof's tree has {size} leaves, the root {}",
            root.count
        ));
    }
    let path = p["path"]
        .as_array()
        .ok_or("the proof has no path")?
        .iter()
        .map(|h| h.as_str().and_then(crate::model::digest::parse_hex))
        .collect::<Option<Vec<_>>>()
        .ok_or("the proof's path is not a list of hashes")?;
    if crate::model::digest::verify_path(index, size, &leaf_hash(&l), &path, &root.root) {
        Ok(true)
    } else {
        Err(format!(
            "the row is not leaf {index} of the root of creator {creator:08x} day {} version {version}",
            day_name(day)
        ))
    }
}
