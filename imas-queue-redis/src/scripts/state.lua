-- The helper prepended to the scripts that read job states.
-- state(v): a state value ("attempt" between attempts, "attempt token" while
-- reserved, nil for a job never reserved) as attempt, token (nil when not
-- reserved).
local function state(v)
  if not v then return 0, nil end
  local sp = string.find(v, ' ', 1, true)
  if not sp then return tonumber(v), nil end
  return tonumber(string.sub(v, 1, sp - 1)), string.sub(v, sp + 1)
end
