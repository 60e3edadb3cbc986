-- wrk script for bench/run.py, workload 1: a PUT of a small body (10 series: two counters,
-- two gauges and a histogram with 4 buckets) per request, to a group that rotates over
-- /metrics/job/bench/instance/i0 .. i<GROUPS-1>.
--
--   wrk -t2 -c32 -d10s -s bench/push.lua http://127.0.0.1:PORT -- <threads> <groups>
--
-- done() prints one line "BENCHJSON {...}" that run.py parses.

local nthreads = 1
local groups = 1000
local counter = 0
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  if args[1] then nthreads = tonumber(args[1]) end
  if args[2] then groups = tonumber(args[2]) end
  counter = tid or 0
end

local headers = { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" }

local template = [[
# TYPE bench_requests_total counter
bench_requests_total{code="200"} %d
bench_requests_total{code="500"} %d
# TYPE bench_in_progress gauge
bench_in_progress %d
# TYPE bench_last_run_timestamp_seconds gauge
bench_last_run_timestamp_seconds %d.5
# TYPE bench_duration_seconds histogram
# HELP bench_duration_seconds Duration of the benchmark job.
bench_duration_seconds_bucket{le="0.1"} %d
bench_duration_seconds_bucket{le="0.5"} %d
bench_duration_seconds_bucket{le="1"} %d
bench_duration_seconds_bucket{le="+Inf"} %d
bench_duration_seconds_sum %d.25
bench_duration_seconds_count %d
]]

function request()
  local n = counter
  counter = counter + nthreads
  local path = "/metrics/job/bench/instance/i" .. (n % groups)
  local body = string.format(template, n, n % 7, n % 3, 1700000000 + n,
                             n, 2 * n, 3 * n, 4 * n, n, 4 * n)
  return wrk.format("PUT", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
