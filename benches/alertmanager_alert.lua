-- POST /api/v2/alerts of a real Alertmanager, for benches/alertmanager_ref.sh:
-- one alert per request, as Prometheus sends them (labels, annotations,
-- generatorURL; no endsAt).
--   BENCH_MODE  "new": every alert a new label set (a new alert each);
--               "repeat": instances host-0..host-(BENCH_KEYS-1), re-sent.
--   BENCH_KEYS  default 1000.
local mode = os.getenv("BENCH_MODE") or "new"
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local counter = 0

function request()
    counter = counter + 1
    local instance
    if mode == "repeat" then
        instance = "host-" .. tostring(math.random(0, keys - 1))
    else
        instance = prefix .. tostring(counter)
    end
    local body = '[{"labels":{"alertname":"DiskAlmostFull","severity":"warning","instance":"' ..
        instance .. '"},"annotations":{"summary":"Disk almost full on ' .. instance ..
        '"},"generatorURL":"http://prometheus:9090/graph?g0.expr=disk_free"}]'
    return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"}, body)
end

dofile("benches/wrk_answers.lua")(200)
