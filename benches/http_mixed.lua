-- GET /incidents?limit=50 with one POST /incidents in every 10 requests, for
-- benches/http_load.sh (token and encoding from the environment). Every POST
-- moves the store's generation, so the GETs after it read the database again
-- instead of the cached page.
local headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
}
if os.getenv("BENCH_ENCODING") == "gzip" then
    headers["Accept-Encoding"] = "gzip"
end
local body = '{"title":"mixed load incident","description":"created by wrk","priority":"low"}'
local n = 0

request = function()
    n = n + 1
    if n % 10 == 0 then
        return wrk.format("POST", "/incidents", headers, body)
    end
    return wrk.format("GET", "/incidents?limit=50", headers, nil)
end
