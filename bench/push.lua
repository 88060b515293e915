-- wrk script: authenticated GitLab push events, each with a fresh delivery
-- id, spread over BERTH_ACCOUNTS accounts (bench0000, bench0001, …).
local accounts = tonumber(os.getenv("BERTH_ACCOUNTS") or "200")
local secret = os.getenv("BERTH_WEBHOOK_SECRET") or "bench-secret"
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function request()
  counter = counter + 1
  local account = string.format("bench%04d", counter % accounts)
  local sha = string.format("%040x", counter)
  local body = '{"object_kind":"push","event_name":"push","before":"' .. string.rep("0", 40) ..
    '","after":"' .. sha .. '","ref":"refs/heads/main","checkout_sha":"' .. sha ..
    '","user_id":1,"user_name":"' .. account .. '","user_username":"' .. account ..
    '","user_email":"","project_id":' .. (counter % accounts) ..
    ',"project":{"id":' .. (counter % accounts) .. ',"name":"workspace","path_with_namespace":"' .. account ..
    '/workspace","default_branch":"main"},"commits":[],"total_commits_count":1}'
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Gitlab-Token"] = secret,
    ["X-Gitlab-Event"] = "Push Hook",
    ["X-Gitlab-Event-UUID"] = thread_id .. "-" .. counter,
  }
  return wrk.format("POST", "/hooks/gitlab", headers, body)
end
