-- GET <path> each request; a "{}" in the path is replaced by a random
-- member's first field from BENCH_CARDS (a card or a member number).
--   wrk ... -s paths.lua URL -- "/api/v1/members/{}/insights"
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk/common.lua")

local items, n, path

function init(args)
  path = args[1] or error("give the path, e.g. /api/v1/insights/segments?market=SE")
  if path:find("{}", 1, true) then
    items = load_members()
    n = #items
  end
  math.randomseed(os.time() * 100 + tid)
  api_headers()
end

function request()
  if items then
    local chosen = path:gsub("{}", items[math.random(n)])
    return wrk.format("GET", chosen)
  end
  return wrk.format("GET", path)
end
