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

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   ok2xx = 0
   non2xx = 0
   statuses = {}
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
