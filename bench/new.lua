-- wrk scenario "new": no request ever carries a cookie, so every response
-- creates and saves a fresh session (csession, express-session) or is a
-- plain answer (bare server, Express without sessions).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

wrk.method = "GET"
wrk.path = "/"
wrk.headers["Cookie"] = nil

function response(status, headers, body)
  csn_note(status, body)
end
