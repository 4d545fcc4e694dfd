-- Shared by new.lua and returning.lua (loaded with dofile from the script's
-- own directory). wrk runs one Lua state per thread plus one for setup() and
-- done(), so per-thread figures live in each thread's globals and done()
-- collects them through thread:get().

-- Per-thread counters (globals of that thread's state).
max_views = 0  -- highest "You've visited this page N times" seen
non2xx = 0     -- responses outside 200-299

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Record the status and the visit count of one response.
function csn_note(status, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if body then
    local n = body:match("visited this page (%d+) times")
    if n then
      n = tonumber(n)
      if n > max_views then max_views = n end
    end
  end
end

-- One machine-readable line for bench/run.sh, then a readable one.
function done(summary, latency, requests)
  local views, bad = 0, 0
  for _, t in ipairs(threads) do
    local v = t:get("max_views") or 0
    if v > views then views = v end
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  local sock = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  local rps = secs > 0 and summary.requests / secs or 0
  io.write(string.format(
    "CSNBENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d socket_errors=%d non2xx=%d max_views=%d\n",
    rps, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, sock, bad, views))
end
