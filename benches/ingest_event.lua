-- POST /v2/enqueue for benches/ingest_load.sh: one PagerDuty Events v2 trigger
-- per request, as PagerDuty's client libraries send it.
--   BENCH_KEY   the integration key (routing_key)
--   BENCH_MODE  "new": every event a new dedup key (a new alert and incident
--               each); "repeat": dedup keys bench-0..bench-(BENCH_KEYS-1), open
--               already, so each event is a repeated trigger.
--   BENCH_KEYS  how many open keys "repeat" cycles over (default 1000)
-- Answers are counted by benches/wrk_answers.lua, whose totals line the
-- script checks against the database.
local key = os.getenv("BENCH_KEY")
local mode = os.getenv("BENCH_MODE") or "new"
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local counter = 0

local function body(dedup)
    return '{"routing_key":"' .. key .. '","event_action":"trigger","dedup_key":"' .. dedup ..
        '","payload":{"summary":"Disk almost full on ' .. dedup ..
        '","source":"host-' .. dedup .. '","severity":"warning",' ..
        '"custom_details":{"free_bytes":1048576,"mount":"/var"}}}'
end

function request()
    counter = counter + 1
    local dedup
    if mode == "repeat" then
        dedup = "bench-" .. tostring(math.random(0, keys - 1))
    else
        dedup = prefix .. tostring(counter)
    end
    return wrk.format("POST", "/v2/enqueue", {["Content-Type"] = "application/json"}, body(dedup))
end

dofile("benches/wrk_answers.lua")(202)
