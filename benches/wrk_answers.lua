-- Shared by the wrk scripts of benches/ingest_load.sh and
-- benches/alertmanager_ref.sh: numbers the threads, counts each thread's
-- answers as accepted (the status the script expects) or refused, and prints
-- the totals on one line, "ANSWERS accepted=N refused=M", which the shell
-- scripts check. Use: answers = dofile("benches/wrk_answers.lua")(status).
return function(accepted_status)
    local threads = {}

    function setup(thread)
        thread:set("id", #threads)
        table.insert(threads, thread)
    end

    function init(args)
        accepted = 0
        refused = 0
        math.randomseed(os.time() + id)
        prefix = "w" .. tostring(id) .. "-" .. tostring(math.random(1, 1000000000)) .. "-"
    end

    function response(status, headers, body)
        if status == accepted_status then
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
end
