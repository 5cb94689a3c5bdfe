-- POST /api/v2/alerts of a real Alertmanager, for benches/alertmanager_ref.sh:
-- one alert per request, as Prometheus sends them (labels, annotations,
-- generatorURL; no endsAt).
--   BENCH_MODE  "new": every alert a new label set (a new alert each);
--               "repeat": instances host-0..host-(BENCH_KEYS-1), re-sent.
--   BENCH_KEYS  default 1000.
local mode = os.getenv("BENCH_MODE") or "new"
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local threads = {}
local counter = 0
local prefix = ""

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    prefix = "w" .. tostring(id) .. "-" .. tostring(math.random(1, 1000000000)) .. "-"
    accepted = 0
    refused = 0
    math.randomseed(os.time() + id)
end

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

function response(status, headers, body)
    if status == 200 then
        accepted = accepted + 1
    else
        refused = refused + 1
    end
end

function done(summary, latency, requests)
    local a, r = 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("accepted")
        r = r + t:get("refused")
    end
    io.write(string.format("ANSWERS accepted=%d refused=%d\n", a, r))
end
