-- Shared by the bench's wrk scripts: the members to pick from, the API key,
-- per-thread ids, and a done() that prints the figures as one JSON line.
--   env BENCH_CARDS    file of "card store_code currency" lines (bench/seed.py)
--   env BENCH_API_KEY  the bench client's key (sent as Authorization: Api-Key)

local threads_made = 0

function setup(thread)
  threads_made = threads_made + 1
  thread:set("tid", threads_made)
end

function load_members()
  local path = os.getenv("BENCH_CARDS") or error("BENCH_CARDS is not set")
  local cards, stores, currencies = {}, {}, {}
  for line in io.lines(path) do
    local card, store, currency = line:match("^(%S+) (%S+) (%S+)")
    if card then
      cards[#cards + 1] = card
      stores[#stores + 1] = store
      currencies[#currencies + 1] = currency
    end
  end
  if #cards == 0 then error("no members in " .. path) end
  return cards, stores, currencies
end

function api_headers()
  local key = os.getenv("BENCH_API_KEY") or error("BENCH_API_KEY is not set")
  wrk.headers["Authorization"] = "Api-Key " .. key
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
  -- The latency distribution as 1000 quantiles ("percent microseconds"
  -- lines), so that the driver can merge the runs of one case.
  local path = os.getenv("BENCH_QUANTILES")
  if path and summary.requests > 0 then
    local out = assert(io.open(path, "w"))
    for i = 1, 999 do
      out:write(string.format("%.1f %d\n", i / 10, latency:percentile(i / 10)))
    end
    out:write(string.format("100.0 %d\n", latency.max))
    out:close()
  end
end
