-- Counts the jobs ready, delayed, in flight (reserved, lease not over) and
-- dead (after state.lua). Walks the states, i.e. the jobs reserved, retrying
-- or dead, not the whole backlog.
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: now.
-- Returns { ready, delayed, in flight, dead }.
local now = tonumber(ARGV[1])
local ready = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local live = 0
local states = redis.call('HGETALL', KEYS[3])
for i = 1, #states, 2 do
  local _, token = state(states[i + 1])
  if token then
    local at = redis.call('ZSCORE', KEYS[1], states[i])
    if at and tonumber(at) > now then live = live + 1 end
  end
end
local total = redis.call('ZCARD', KEYS[1])
return { ready, total - ready - live, live, redis.call('ZCARD', KEYS[6]) }
