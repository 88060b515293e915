-- wrk script: GET / as one of many logged-in sessions, round robin.
-- COOKIES names a file with one session id per line.
local cookies = {}
for line in io.lines(os.getenv("COOKIES")) do cookies[#cookies + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/", { ["Cookie"] = "berth_session=" .. cookies[(i % #cookies) + 1] })
end
