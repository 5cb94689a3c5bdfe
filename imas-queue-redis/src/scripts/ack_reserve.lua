-- Acks the jobs handed back, then reserves up to `max` ready jobs (after
-- state.lua). Each redis.call costs a few microseconds of the script's time
-- whatever it does, so this makes as few as it can: one command per structure
-- per call, over all the jobs the call carries.
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: now, max, visibility (>= 1 ms), max attempts, a nonce unique to the
-- call, then (id, token, key) triples to ack.
-- Returns job, attempt, token triples (the reservations), then an ack flag per
-- triple handed back (1 if its reservation was current, the job then
-- removed), then the number of flags.
--
-- Reservation: the candidates' jobs and states are read with one HMGET each
-- and the reservations written with one HSET and one ZADD; only when some
-- candidates turn out gone (or go to the dead letters) does another round fill
-- `max`. A reserved job past its last attempt goes to the dead letters.
-- Tokens are `id:nonce`, so no two reservations share one.

-- ack_from(first): acks the (id, token, key) triples in ARGV from `first` on
-- and returns a flag per triple. One HMGET reads the states, one command per
-- structure removes all acked jobs.
local function ack_from(first)
  local ids, acks = {}, {}
  for i = first, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
  if #ids == 0 then return acks end
  local states = redis.call('HMGET', KEYS[3], unpack(ids))
  local gone, keys, seen = {}, {}, {}
  for i, id in ipairs(ids) do
    local _, token = state(states[i])
    if token and token == ARGV[first + 3 * i - 2] and not seen[id] then
      seen[id] = true
      gone[#gone + 1] = id
      keys[#keys + 1] = ARGV[first + 3 * i - 1]
      acks[i] = 1
    else
      acks[i] = 0
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[2], unpack(gone))
    redis.call('HDEL', KEYS[3], unpack(gone))
    redis.call('ZREM', KEYS[1], unpack(gone))
    redis.call('HDEL', KEYS[8], unpack(keys))
  end
  return acks
end
local now, max, vis, max_attempts, nonce = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local acks = ack_from(6)
local out, taken = {}, 0
while taken < max do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max - taken)
  if #ids == 0 then break end
  local jobs = redis.call('HMGET', KEYS[2], unpack(ids))
  local states = redis.call('HMGET', KEYS[3], unpack(ids))
  local gone, reserved, sched = {}, {}, {}
  for i, id in ipairs(ids) do
    local job = jobs[i]
    local attempt, token = state(states[i])
    if not job then
      gone[#gone + 1] = id
    elseif token and attempt >= max_attempts then
      redis.call('HSET', KEYS[4], id, job)
      redis.call('HSET', KEYS[5], id, 'reservation expired on the last attempt')
      redis.call('ZADD', KEYS[6], now, id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HSET', KEYS[3], id, attempt)
      redis.call('HDEL', KEYS[8], cjson.decode(job).key)
      gone[#gone + 1] = id
    else
      attempt = attempt + 1
      token = id .. ':' .. nonce
      reserved[#reserved + 1] = id
      reserved[#reserved + 1] = attempt .. ' ' .. token
      sched[#sched + 1] = now + vis
      sched[#sched + 1] = id
      out[#out + 1] = job
      out[#out + 1] = attempt
      out[#out + 1] = token
      taken = taken + 1
    end
  end
  if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
  if #reserved > 0 then
    redis.call('HSET', KEYS[3], unpack(reserved))
    redis.call('ZADD', KEYS[1], unpack(sched))
  end
end
for _, a in ipairs(acks) do out[#out + 1] = a end
out[#out + 1] = #acks
return out
