//! The open lifetimes a database holds when a writer opens it, that the tracker has not
//! read yet.
//!
//! A file of months holds ~1 M open states; reading them all whole at the start of every
//! import was a quarter of importing 1 M lifetimes into 55 M (BENCHMARKS.md, session 9),
//! though a capture of other times names few or none of them. So an import reads only their
//! keys, and a state's row when a message first names it (or all of a creator's at a CLR,
//! which ends them without naming them).

use crate::wire::StateRef;
use roaring::RoaringTreemap;

/// Looked up per message, by creator: ahash, as the writer's small-key maps.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// Keys of stored open lifetimes not handed to the tracker yet: state ids per creator
/// (pf counts ids upwards, so a bitmap holds them in a few bytes each).
#[derive(Debug, Default)]
pub struct Unloaded {
    by_creator: HashMap<u32, RoaringTreemap>,
    len: u64,
    /// How many of them may be closed: the keys can come from every row of `states`, a few
    /// of which are closed lifetimes (not sealed yet), counted out when read.
    maybe_closed: u64,
}

impl Unloaded {
    pub fn insert(&mut self, k: StateRef) {
        if self
            .by_creator
            .entry(k.creator_id)
            .or_default()
            .insert(k.id)
        {
            self.len += 1;
        }
    }

    /// How many are left.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// How many of the keys are open lifetimes (the store counted them).
    pub fn set_open(&mut self, open: u64) {
        self.maybe_closed = self.len.saturating_sub(open);
    }

    /// Of `asked` keys taken, the store held `found` open.
    pub fn found(&mut self, asked: u64, found: u64) {
        self.maybe_closed = self
            .maybe_closed
            .saturating_sub(asked.saturating_sub(found));
    }

    /// How many open lifetimes are left (exact once every key is read; at most `len`).
    pub fn open_left(&self) -> u64 {
        self.len.saturating_sub(self.maybe_closed)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `k` was left; it is not any more (a key is handed over once: after that the
    /// tracker knows it, or has ended it, and the store's row may be about to change).
    pub fn take(&mut self, k: &StateRef) -> bool {
        let taken = self
            .by_creator
            .get_mut(&k.creator_id)
            .is_some_and(|ids| ids.remove(k.id));
        if taken {
            self.len -= 1;
        }
        taken
    }

    /// All that are left of one creator.
    pub fn take_creator(&mut self, creator_id: u32) -> RoaringTreemap {
        let ids = self.by_creator.remove(&creator_id).unwrap_or_default();
        self.len -= ids.len();
        ids
    }

    /// All that are left, by creator.
    pub fn take_all(&mut self) -> Vec<(u32, RoaringTreemap)> {
        self.len = 0;
        self.maybe_closed = 0;
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
        let mut u = Unloaded::default();
        for id in [5, 6, u64::MAX] {
            u.insert(k(1, id));
        }
        u.insert(k(1, 5));
        u.insert(k(2, 5));
        assert_eq!(u.len(), 4);
        assert!(u.take(&k(1, u64::MAX)));
        assert!(!u.take(&k(1, u64::MAX)), "handed over already");
        assert!(!u.take(&k(3, 5)), "never there");
        assert_eq!(u.len(), 3);
        let ids: Vec<u64> = u.take_creator(1).iter().collect();
        assert_eq!(ids, [5, 6]);
        assert_eq!(u.len(), 1);
        assert!(u.take_creator(1).is_empty());
        u.insert(k(2, 7));
        u.insert(k(2, 9));
        u.set_open(2);
        assert_eq!(u.open_left(), 2, "one of the three left is closed");
        assert!(u.take(&k(2, 9)));
        u.found(1, 1);
        assert_eq!(
            u.open_left(),
            1,
            "it was open: one of the two left is closed"
        );
        assert!(u.take(&k(2, 7)));
        u.found(1, 0);
        assert_eq!(u.open_left(), 1, "that was the closed one");
        let all = u.take_all();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].0, all[0].1.len()), (2, 1));
        assert!(u.is_empty());
    }
}
