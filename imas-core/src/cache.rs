//! The engine's read cache: callers' principals and incident list pages, each
//! kept with the store [`Generation`] it was read at and used only while the
//! store still reports that generation.
//!
//! A store's generation moves after every committed change to users or
//! incidents, by any writer it hears of (see [`ChangeStore::generation`]), so a
//! cached entry is never served after a change the store has reported. The
//! generation is read *before* the store is queried: a change that lands during
//! the query moves it past the entry's, and the entry is dropped at the next read.
//! A store that cannot vouch for its generation returns `None` and everything is
//! read through.
//!
//! [`ChangeStore::generation`]: crate::ports::ChangeStore::generation

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use crate::engine::Principal;
use crate::model::{Incident, IncidentFilter, Page, PageRequest, UserId};
use crate::ports::Generation;

/// Most principals kept; the map is emptied when it would grow past this.
const MAX_PRINCIPALS: usize = 10_000;
/// Most list pages kept (each up to [`crate::model::MAX_LIMIT`] incidents, so
/// at most ~32 MB with 500 of 1 KB each).
const MAX_PAGES: usize = 64;

/// Entries tagged with the generation they were read at.
#[derive(Debug)]
struct Tagged<K, V> {
    max: usize,
    map: Mutex<HashMap<K, (u64, V)>>,
}

impl<K: Hash + Eq, V: Clone> Tagged<K, V> {
    fn new(max: usize) -> Self {
        Self {
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, generation: u64) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            Some((g, v)) if *g == generation => Some(v.clone()),
            _ => None,
        }
    }

    fn put(&self, key: K, generation: u64, value: V) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max && !map.contains_key(&key) {
            // Stale entries are the common case when full: drop them first.
            map.retain(|_, (g, _)| *g == generation);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(key, (generation, value));
    }
}

/// See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct ReadCache {
    principals: Tagged<UserId, Principal>,
    pages: Tagged<(IncidentFilter, PageRequest), Arc<Page<Incident>>>,
}

impl ReadCache {
    pub(crate) fn new() -> Self {
        Self {
            principals: Tagged::new(MAX_PRINCIPALS),
            pages: Tagged::new(MAX_PAGES),
        }
    }

    pub(crate) fn principal(&self, id: UserId, at: Option<Generation>) -> Option<Principal> {
        self.principals.get(&id, at?.users)
    }

    pub(crate) fn put_principal(&self, p: Principal, at: Option<Generation>) {
        if let Some(at) = at {
            self.principals.put(p.id, at.users, p);
        }
    }

    pub(crate) fn page(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
        at: Option<Generation>,
    ) -> Option<Arc<Page<Incident>>> {
        let at = at?;
        // Cloning the key only on a possible hit would need a borrowed-key
        // lookup; filters are small, and this is cheaper than a query.
        self.pages.get(&(filter.clone(), page), at.incidents)
    }

    pub(crate) fn put_page(
        &self,
        filter: IncidentFilter,
        request: PageRequest,
        at: Option<Generation>,
        page: Arc<Page<Incident>>,
    ) {
        if let Some(at) = at {
            self.pages.put((filter, request), at.incidents, page);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use uuid::Uuid;

    fn at(users: u64, incidents: u64) -> Option<Generation> {
        Some(Generation {
            users,
            incidents,
            integrations: 0,
        })
    }

    #[test]
    fn entries_are_served_only_at_their_generation() {
        let cache = ReadCache::new();
        let p = Principal {
            id: UserId(Uuid::now_v7()),
            role: Role::Engineer,
        };
        cache.put_principal(p, at(1, 7));
        assert_eq!(
            cache.principal(p.id, at(1, 9)),
            Some(p),
            "incident writes do not matter"
        );
        assert_eq!(cache.principal(p.id, at(2, 7)), None, "a user write does");
        assert_eq!(
            cache.principal(p.id, None),
            None,
            "nor without a generation"
        );

        let filter = IncidentFilter::default();
        let req = PageRequest::first(50);
        let page = Arc::new(Page {
            items: vec![],
            next: None,
        });
        cache.put_page(filter.clone(), req, at(1, 7), page.clone());
        assert!(cache.page(&filter, req, at(5, 7)).is_some());
        assert!(cache.page(&filter, req, at(1, 8)).is_none());
        cache.put_page(filter.clone(), req, None, page);
        assert!(
            cache.page(&filter, req, at(1, 8)).is_none(),
            "not stored without one"
        );
    }

    #[test]
    fn a_full_cache_drops_stale_entries_first() {
        let t: Tagged<u32, u32> = Tagged::new(3);
        t.put(1, 1, 10);
        t.put(2, 2, 20);
        t.put(3, 2, 30);
        t.put(4, 2, 40);
        assert_eq!(t.get(&1, 1), None);
        assert_eq!(t.get(&2, 2), Some(20));
        assert_eq!(t.get(&4, 2), Some(40));
    }
}
