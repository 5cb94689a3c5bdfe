-- Lists the oldest dead letters (after state.lua).
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: the most to list.
-- Returns job, error, attempts, failed-at quadruples, oldest failure first.
local out = {}
local ids = redis.call('ZRANGE', KEYS[6], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id = ids[i]
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[5], id) or ''
  out[#out + 1] = tostring(state(redis.call('HGET', KEYS[3], id)))
  out[#out + 1] = ids[i + 1]
end
return out
