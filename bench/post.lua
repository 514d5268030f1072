-- wrk script for bench/ingest: POSTs one JSON body (the file named by the
-- environment variable BENCH_BODY) with Content-Type application/json on
-- every request, counts the answers by status class, and prints one
-- machine-readable line at the end:
--
--   BENCH requests=N ok2xx=N non2xx=N sockerr=N rps=F p50_us=N p99_us=N
--         duration_us=N statuses=CODE:N,...
--
-- wrk runs each thread in its own Lua state, so the counters below are
-- per thread; setup() keeps the thread objects and done() (which runs in
-- the main state after all threads stopped) adds them up with
-- thread:get(), the pattern of wrk's scripts/setup.lua.
--
-- Two more environment variables, for runs (d) and (e) of bench/ingest:
--   BENCH_HUB_SIGNATURE  sent as X-Hub-Signature-256 on every request (the
--                        script computes it once: the body never changes)
--   BENCH_IDEMPOTENCY=1  every request gets an Idempotency-Key of its own,
--                        "<thread>-<counter>": the thread's number from
--                        setup() and a counter of that thread, so keys
--                        never repeat within a run (nor across runs: each
--                        run of bench/ingest starts on an empty Redis)

local path = os.getenv("BENCH_BODY")
if not path then
   error("BENCH_BODY is not set")
end

local f = assert(io.open(path, "rb"))
local payload = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = payload
wrk.headers["Content-Type"] = "application/json"
-- wrk.format() adds Content-Length from wrk.body

local signature = os.getenv("BENCH_HUB_SIGNATURE")
if signature and signature ~= "" then
   wrk.headers["X-Hub-Signature-256"] = signature
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

function init(args)
   ok2xx = 0
   non2xx = 0
   statuses = {}
   sent = 0
end

-- only when asked: a script with request() makes wrk build every request
-- in Lua instead of sending one prepared request
if os.getenv("BENCH_IDEMPOTENCY") == "1" then
   function request()
      sent = sent + 1
      wrk.headers["Idempotency-Key"] = thread_id .. "-" .. sent
      return wrk.format()
   end
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
   else
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local ok, bad, codes = 0, 0, {}

   for _, t in ipairs(threads) do
      ok = ok + (t:get("ok2xx") or 0)
      bad = bad + (t:get("non2xx") or 0)
      local s = t:get("statuses") or {}
      for code, n in pairs(s) do
         codes[code] = (codes[code] or 0) + n
      end
   end

   local list = {}
   for code, n in pairs(codes) do
      list[#list + 1] = string.format("%d:%d", code, n)
   end
   table.sort(list)

   local e = summary.errors
   local sockerr = e.connect + e.read + e.write + e.timeout

   io.write(string.format(
      "BENCH requests=%d ok2xx=%d non2xx=%d sockerr=%d rps=%.1f " ..
      "p50_us=%d p99_us=%d duration_us=%d statuses=%s\n",
      summary.requests, ok, bad, sockerr,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99),
      summary.duration, #list > 0 and table.concat(list, ",") or "-"))
end
