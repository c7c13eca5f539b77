-- The requests of `just bench-http` (benchmarks/bench_http.py), for wrk.
--
--   wrk -t1 -c16 -d15s -s benchmarks/bench_http.lua URL -- order TATA_INR 100.00
--   wrk -t1 -c16 -d15s -s benchmarks/bench_http.lua URL -- depth TATA_INR
--
-- order: POST /api/v1/order, crossing limit orders of quantity 1 at one price, a buy by user 1
-- then a sell by user 2 (dev auth names the user in the body), so the book stays at one level.
-- depth: GET /api/v1/depth?symbol=MARKET.
-- The requests are formatted once per thread; done() prints one line, "BENCH_HTTP " and a JSON
-- object: requests, duration, socket errors, non-2xx/3xx responses ("status") and latency
-- percentiles in microseconds.

local requests = {}
local next_index = 0

function init(args)
  local mode, market = args[1], args[2]
  if mode == "order" then
    local price = args[3]
    local headers = { ["Content-Type"] = "application/json" }
    for _, who in ipairs({ { "buy", "1" }, { "sell", "2" } }) do
      local body = string.format(
        '{"market":"%s","side":"%s","price":"%s","quantity":"1","user_id":"%s"}',
        market, who[1], price, who[2])
      requests[#requests + 1] = wrk.format("POST", "/api/v1/order", headers, body)
    end
  elseif mode == "depth" then
    requests[1] = wrk.format("GET", "/api/v1/depth?symbol=" .. market)
  else
    error("mode must be order or depth, not " .. tostring(mode))
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_HTTP {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
