-- wrk script for bench/ingest.sh: POST /v1/usage for seeded resources, round robin, each thread
-- starting at a different resource. Reads the token and the resource uuids from files named by
-- the BENCH_TOKEN_FILE and BENCH_RESOURCES_FILE environment variables.

local function read_lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then
      out[#out + 1] = line
    end
  end
  return out
end

local token = read_lines(os.getenv("BENCH_TOKEN_FILE"))[1]
local resources = read_lines(os.getenv("BENCH_RESOURCES_FILE"))
local counter = 0
local thread_no = 0

function setup(thread)
  thread:set("thread_no", thread_no)
  thread_no = thread_no + 1
end

function init(args)
  counter = thread_no * 7919
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local r = resources[(counter % #resources) + 1]
  local body = string.format(
    '{"resource_uuid":"%s","usages":{"cpu_k_hours":"%d.%02d","gpu_k_hours":%d}}',
    r, counter % 100000, counter % 100, counter % 977)
  return wrk.format(nil, "/v1/usage", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f socket_errors=%d non2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
