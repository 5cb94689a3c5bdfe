-- Puts the dead letter of a key back in the schedule, due now. A live job of
-- the same key delivers it already: then the dead letter is only removed.
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: key, now.
-- Returns 1 if a dead letter of the key was found, else 0.
local ids = redis.call('ZRANGE', KEYS[6], 0, -1)
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[4], id)
  if job and cjson.decode(job).key == ARGV[1] then
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
    local other = redis.call('HGET', KEYS[8], ARGV[1])
    if other and redis.call('HEXISTS', KEYS[2], other) == 1 then
      redis.call('HDEL', KEYS[3], id)
      return 1
    end
    redis.call('HSET', KEYS[2], id, job)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HSET', KEYS[8], ARGV[1], id)
    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), id)
    redis.call('ZADD', KEYS[7], 0, 1)
    return 1
  end
end
return 0
