-- Moves each current reservation's expiry to a new instant (after state.lua).
-- KEYS (every script gets all eight): 1 sched, 2 jobs, 3 state, 4 dead:jobs,
-- 5 dead:errors, 6 dead:index, 7 wake, 8 keys.
-- ARGV: the instant the reservations last until, then (id, token) pairs.
-- Returns a flag per pair: 1 if the reservation was current, else 0.
local expiry = ARGV[1]
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local flags = {}
if #ids == 0 then return flags end
local states = redis.call('HMGET', KEYS[3], unpack(ids))
local sched = {}
for i, id in ipairs(ids) do
  local _, token = state(states[i])
  if token and token == ARGV[2 * i + 1] then
    sched[#sched + 1] = expiry
    sched[#sched + 1] = id
    flags[i] = 1
  else
    flags[i] = 0
  end
end
if #sched > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(sched)) end
return flags
