-- Enqueues the jobs whose key has no live job (nor came earlier in the call).
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: now, then (key, id, job, due) quadruples.
-- Returns how many jobs were enqueued. Fixed commands per call: HMGET of the
-- keys, HMGET of the jobs they map to (only those that map), then one
-- HSET/HSET/ZADD/ZADD for all.
local n = (#ARGV - 1) / 4
local ks = {}
for i = 1, n do ks[i] = ARGV[4 * i - 2] end
local mapped = redis.call('HMGET', KEYS[8], unpack(ks))
local ids, at = {}, {}
for i = 1, n do
  if mapped[i] then ids[#ids + 1] = mapped[i]; at[#ids] = ks[i] end
end
local live = {}
if #ids > 0 then
  local held = redis.call('HMGET', KEYS[2], unpack(ids))
  for j = 1, #ids do if held[j] then live[at[j]] = true end end
end
local keys, jobs, sched = {}, {}, {}
local added = 0
for i = 1, n do
  local k = ks[i]
  if not live[k] then
    live[k] = true
    local id = ARGV[4 * i - 1]
    keys[#keys + 1] = k
    keys[#keys + 1] = id
    jobs[#jobs + 1] = id
    jobs[#jobs + 1] = ARGV[4 * i]
    sched[#sched + 1] = ARGV[4 * i + 1]
    sched[#sched + 1] = id
    added = added + 1
  end
end
if added > 0 then
  redis.call('HSET', KEYS[8], unpack(keys))
  redis.call('HSET', KEYS[2], unpack(jobs))
  redis.call('ZADD', KEYS[1], unpack(sched))
  redis.call('ZADD', KEYS[7], 1, 0)
end
return added
