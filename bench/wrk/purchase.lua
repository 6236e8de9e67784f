-- POST <path> a one-line purchase of a random bench member, each with a
-- receipt id of its own (run id, thread, counter), occurred_at now.
--   wrk ... -s purchase.lua URL -- /api/v1/purchases <run-id>
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk/common.lua")

local cards, stores, currencies, n, path, run
local counter = 0
local second, occurred_at = -1, nil

local BODY = '{"member": {"card": "%s"}, "store_code": "%s", "receipt_id": "%s", ' ..
  '"channel": "store", "occurred_at": "%s", "currency": "%s", "total": "%d.00", ' ..
  '"lines": [{"sku": "BENCH-%d", "category": "bench", "quantity": 1, "amount": "%d.00"}]}'

function init(args)
  path = args[1] or error("give the path, e.g. /api/v1/purchases")
  run = args[2] or error("give a run id")
  cards, stores, currencies = load_members()
  n = #cards
  math.randomseed(os.time() * 100 + tid)
  api_headers()
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local now = os.time()
  if now ~= second then
    -- now, written with a +02:00 offset: the API wants an aware time
    second = now
    occurred_at = os.date("!%Y-%m-%dT%H:%M:%S+02:00", now + 7200)
  end
  counter = counter + 1
  local i = math.random(n)
  local amount = math.random(10, 2000)
  local body = string.format(BODY, cards[i], stores[i], run .. "-" .. tid .. "-" .. counter,
    occurred_at, currencies[i], amount, amount % 97, amount)
  return wrk.format("POST", path, nil, body)
end
