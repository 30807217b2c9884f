//! The open lifetimes a database holds when a writer opens it, that the tracker has not
//! read yet.
//!
//! A file of months holds ~1 M open states; reading them all whole at the start of every
//! import was a quarter of importing 1 M lifetimes into 55 M (measured then; git log -p BENCHMARKS.md),
//! though a capture of other times names few or none of them. So an import reads a state's
//! row only when a message first names it (or all of a creator's at a CLR, which ends them
//! without naming them), and their keys only for an id group (creator, top byte of the id)
//! a message names at or below the group's highest stored id: reading all 1.2 M keys was
//! still ~5 % of importing a new capture (measured then), which names none of them.

use crate::model::StateRef;
use roaring::RoaringTreemap;

/// Looked up per message, by creator: ahash, as the writer's small-key maps.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// An id group: creator and top byte of the state id (FreeBSD puts the CPU there).
pub type Group = (u32, u8);

/// The group of a key.
pub fn group_of(k: &StateRef) -> Group {
    (k.creator_id, (k.id >> 56) as u8)
}

/// The lowest and highest state id of group `g` as stored (the u64's i64 bit pattern): a
/// contiguous range whatever the top bit.
pub fn group_range(g: Group) -> (i64, i64) {
    let lo = (u64::from(g.1) << 56) as i64;
    (lo, lo | 0x00ff_ffff_ffff_ffff)
}

/// Keys of stored open lifetimes not handed to the tracker yet: state ids per creator
/// (pf counts ids upwards, so a bitmap holds them in a few bytes each), read per group.
#[derive(Debug, Default)]
pub struct Unloaded {
    by_creator: HashMap<u32, RoaringTreemap>,
    /// Groups whose keys are not read yet, with the highest id `states` holds in each.
    unread: HashMap<Group, u64>,
    /// Open lifetimes of the store not handed to the tracker (counted by the store; the
    /// keys can come from every row of `states`, a few of which are closed lifetimes).
    open_left: u64,
}

impl Unloaded {
    /// `open` lifetimes in the store, in `groups` (each with its highest stored id), no
    /// key read yet.
    pub fn new(open: u64, groups: impl IntoIterator<Item = (Group, u64)>) -> Unloaded {
        Unloaded {
            unread: groups.into_iter().collect(),
            open_left: open,
            ..Unloaded::default()
        }
    }

    /// The group whose keys must be read before `k` can be taken, with its highest id
    /// when the writer opened the file: None when they were read, or when `k` is above it.
    ///
    /// Read then, a group's ids up to that highest are those the file held at the start:
    /// this run writes such an id only after a message named it, and that message had the
    /// group read first. The read must stop at that id: above it, `states` can hold rows
    /// this run wrote, which are the tracker's.
    pub fn unread_group(&self, k: &StateRef) -> Option<(Group, u64)> {
        let g = group_of(k);
        self.unread
            .get(&g)
            .filter(|max| k.id <= **max)
            .map(|max| (g, *max))
    }

    /// The groups of `creator_id` not read yet (all of them: `None`), with their highest
    /// ids (as [`Unloaded::unread_group`]).
    pub fn unread_groups(&self, creator_id: Option<u32>) -> Vec<(Group, u64)> {
        let mut v: Vec<(Group, u64)> = self
            .unread
            .iter()
            .filter(|(g, _)| creator_id.is_none_or(|c| g.0 == c))
            .map(|(g, max)| (*g, *max))
            .collect();
        v.sort_unstable();
        v
    }

    /// The keys of group `g`, read.
    pub fn read(&mut self, g: Group, ids: impl IntoIterator<Item = u64>) {
        self.unread.remove(&g);
        let set = self.by_creator.entry(g.0).or_default();
        for id in ids {
            set.insert(id);
        }
    }

    /// `k` was just stored open (written out of the tracker's memory, `--max-open`): a
    /// message that names it reads it back.
    pub fn stored(&mut self, k: &StateRef) {
        if self
            .by_creator
            .entry(k.creator_id)
            .or_default()
            .insert(k.id)
        {
            self.open_left += 1;
        }
    }

    /// The store held `found` of the keys just taken open (the others were closed).
    pub fn found(&mut self, found: u64) {
        self.open_left = self.open_left.saturating_sub(found);
    }

    /// How many open lifetimes are left.
    pub fn open_left(&self) -> u64 {
        self.open_left
    }

    /// Whether no key is left, read or not.
    pub fn is_empty(&self) -> bool {
        self.unread.is_empty() && self.by_creator.values().all(|ids| ids.is_empty())
    }

    /// Whether `k` was left (its group read); it is not any more (a key is handed over
    /// once: after that the tracker knows it, or has ended it, and the store's row may be
    /// about to change).
    pub fn take(&mut self, k: &StateRef) -> bool {
        self.by_creator
            .get_mut(&k.creator_id)
            .is_some_and(|ids| ids.remove(k.id))
    }

    /// All that are left of one creator (its groups read).
    pub fn take_creator(&mut self, creator_id: u32) -> RoaringTreemap {
        self.by_creator.remove(&creator_id).unwrap_or_default()
    }

    /// All that are left, by creator (every group read); the tracker then holds every open
    /// lifetime.
    pub fn take_all(&mut self) -> Vec<(u32, RoaringTreemap)> {
        self.open_left = 0;
        let mut all: Vec<_> = self.by_creator.drain().collect();
        all.sort_unstable_by_key(|(c, _)| *c);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(creator_id: u32, id: u64) -> StateRef {
        StateRef { id, creator_id }
    }

    #[test]
    fn a_key_is_taken_once_and_counted_out() {
        let top = 0x87u64 << 56;
        let mut u = Unloaded::new(3, [((1, 0), 6), ((1, 0x87), top | 9), ((2, 0), 9)]);
        assert!(!u.is_empty());
        assert_eq!(u.unread_group(&k(1, 7)), None, "above the group's highest");
        assert_eq!(u.unread_group(&k(1, 5)), Some(((1, 0), 6)));
        assert_eq!(u.unread_group(&k(1, top | 2)), Some(((1, 0x87), top | 9)));
        assert_eq!(u.unread_group(&k(3, 1)), None, "no such creator");
        assert!(!u.take(&k(1, 5)), "not read yet");
        u.read((1, 0), [5, 6]);
        assert_eq!(u.unread_group(&k(1, 5)), None, "read");
        assert!(u.take(&k(1, 5)));
        assert!(!u.take(&k(1, 5)), "handed over already");
        u.found(1);
        assert_eq!(u.open_left(), 2);
        assert_eq!(u.unread_groups(Some(1)), [((1, 0x87), top | 9)]);
        u.read((1, 0x87), [top | 9]);
        let ids: Vec<u64> = u.take_creator(1).iter().collect();
        assert_eq!(ids, [6, top | 9]);
        assert!(u.take_creator(1).is_empty());
        assert_eq!(u.unread_groups(None), [((2, 0), 9)]);
        u.read((2, 0), [7, 9]);
        assert!(u.take(&k(2, 9)));
        u.found(0);
        assert_eq!(u.open_left(), 2, "that one was closed");
        let all = u.take_all();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].0, all[0].1.len()), (2, 1));
        assert!(u.is_empty());
        assert_eq!(u.open_left(), 0);
    }
}
