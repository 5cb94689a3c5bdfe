-- POST /incidents for benches/http_load.sh (token and encoding from the environment).
wrk.method = "POST"
wrk.body = '{"title":"load test incident","description":"created by wrk","priority":"low"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
if os.getenv("BENCH_ENCODING") == "gzip" then
    wrk.headers["Accept-Encoding"] = "gzip"
end
