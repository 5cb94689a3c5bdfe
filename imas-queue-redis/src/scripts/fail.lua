-- A failed attempt: the job retries at a given instant, or goes to the dead
-- letters (after state.lua). The attempt count stays in the state either way.
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: id, token, now, dead (1/0), retry-at, error, key.
-- Returns 0 stale (the token is not the current reservation's), 1 retry,
-- 2 dead-lettered.
local id = ARGV[1]
local attempt, token = state(redis.call('HGET', KEYS[3], id))
if token ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], id, attempt)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[4], id, redis.call('HGET', KEYS[2], id))
  redis.call('HSET', KEYS[5], id, ARGV[6])
  redis.call('ZADD', KEYS[6], tonumber(ARGV[3]), id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[8], ARGV[7])
  return 2
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[5]), id)
return 1
