-- wrk script: cycles through the tile coordinates in $TILES (one z/x/y per line), asking for
-- $PREFIX z/x/y $SUFFIX (default /tiles/$LAYER/z/x/y.mvt) with gzip like a browser does.
local paths = {}
local prefix = os.getenv("PREFIX") or ("/tiles/" .. (os.getenv("LAYER") or "buildings") .. "/")
local suffix = os.getenv("SUFFIX") or ".mvt"
for line in io.lines(os.getenv("TILES") or "tiles.txt") do
  paths[#paths + 1] = prefix .. line .. suffix
end
-- $AUTH, when set, is sent as "Authorization: Bearer $AUTH" (a signed-in user or a key)
local headers = { ["Accept-Encoding"] = "gzip" }
local auth = os.getenv("AUTH")
if auth and auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency)
  local bad = summary.errors.status + summary.errors.timeout + summary.errors.connect
    + summary.errors.read + summary.errors.write
  io.write(string.format("requests %d in %.1fs: %.0f req/s; latency p50 %.2f ms, p99 %.2f ms; errors %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad))
end
