//! The Lua scripts of the queue, one file each under `scripts/`, compiled in with
//! `include_str!`. Those that read job states get `state.lua` (the `state(v)`
//! helper) prepended. Every script receives the same eight KEYS: 1 sched, 2 jobs,
//! 3 state, 4 dead:jobs, 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
//!
//! A key's job is live while `keys` maps the key to an id that `jobs` holds (dead
//! letters leave `jobs`). A job's state is "attempt" between attempts and
//! "attempt token" while reserved; a job never reserved has none (attempt 0).
//! [`Script`] runs each by its SHA (`EVALSHA`), loading it once per server.

use redis::Script;

/// The `state(v)` helper, prepended to the scripts that read states.
macro_rules! with_state {
    ($file:literal) => {
        concat!(include_str!("scripts/state.lua"), include_str!($file))
    };
}

/// The queue's scripts, hashed once per [`crate::RedisQueue`].
pub(crate) struct Scripts {
    pub(crate) enqueue: Script,
    pub(crate) extend: Script,
    pub(crate) ack_reserve: Script,
    pub(crate) fail: Script,
    pub(crate) dead_list: Script,
    pub(crate) redrive: Script,
    pub(crate) stats: Script,
}

impl Scripts {
    pub(crate) fn load() -> Self {
        Self {
            enqueue: Script::new(include_str!("scripts/enqueue.lua")),
            extend: Script::new(with_state!("scripts/extend.lua")),
            ack_reserve: Script::new(with_state!("scripts/ack_reserve.lua")),
            fail: Script::new(with_state!("scripts/fail.lua")),
            dead_list: Script::new(with_state!("scripts/dead_list.lua")),
            redrive: Script::new(include_str!("scripts/redrive.lua")),
            stats: Script::new(with_state!("scripts/stats.lua")),
        }
    }
}
