-- GET <path><card> for a random bench member each request.
--   wrk ... -s lookup.lua URL -- /api/v1/members/lookup?card=
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk/common.lua")

local cards, n, prefix

function init(args)
  prefix = args[1] or error("give the path prefix, e.g. /api/v1/members/lookup?card=")
  cards = load_members()
  n = #cards
  math.randomseed(os.time() * 100 + tid)
  api_headers()
end

function request()
  return wrk.format("GET", prefix .. cards[math.random(n)])
end
