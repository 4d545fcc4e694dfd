-- wrk scenario "returning": each wrk thread keeps a pool of session cookies.
-- A request takes a cookie from the pool (or goes without one when the pool
-- is empty) and the response's Set-Cookie goes back into the pool, so after
-- the first round trip every connection reuses a session of its own and the
-- visit counter climbs. done() prints the highest count seen: bench/run.sh
-- fails the run when it never rose above 1, so a broken cookie round trip
-- cannot pass for a fast one.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

local pool = {}      -- cookies free for the next request (a stack)
local sent = {}      -- cookies sent, oldest first: sent[head..tail]
local head, tail = 1, 0
local inflight = {}  -- cookie -> number of requests carrying it

function request()
  local c = table.remove(pool)
  if c then
    tail = tail + 1
    sent[tail] = c
    inflight[c] = (inflight[c] or 0) + 1
    return wrk.format("GET", "/", { Cookie = c })
  end
  return wrk.format("GET", "/")
end

-- Mark one in-flight copy of cookie c as answered.
local function settle(c)
  local n = inflight[c]
  if n == nil then return false end
  if n == 1 then inflight[c] = nil else inflight[c] = n - 1 end
  return true
end

-- Drop answered cookies from the front of the queue, so it stays about as
-- long as the number of connections.
local function trim()
  while head <= tail and inflight[sent[head]] == nil do
    sent[head] = nil
    head = head + 1
  end
end

-- Settle and return the oldest cookie still in flight; nil when none is.
local function settle_oldest()
  trim()
  if head > tail then return nil end
  local c = sent[head]
  sent[head] = nil
  head = head + 1
  settle(c)
  return c
end

function response(status, headers, body)
  csn_note(status, body)
  local sc = headers["Set-Cookie"] or headers["set-cookie"]
  if sc then
    -- A returning session gets its own cookie back (same id, same
    -- signature), so this settles the request that carried it.
    local c = sc:match("^([^;]*)")
    settle(c)
    trim()
    pool[#pool + 1] = c
  else
    -- No Set-Cookie: the session kept its cookie. wrk does not say which
    -- connection answered; with one request in flight per connection the
    -- oldest cookie sent is the best guess, and a wrong guess only lets two
    -- requests share a session for a moment.
    local c = settle_oldest()
    if c then pool[#pool + 1] = c end
  end
end
