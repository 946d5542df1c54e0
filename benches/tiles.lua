-- wrk script: cycles through the tile paths in $TILES (one z/x/y per line) for layer $LAYER,
-- asking for gzip like a browser does.
local paths = {}
local layer = os.getenv("LAYER") or "buildings"
for line in io.lines(os.getenv("TILES") or "tiles.txt") do
  paths[#paths + 1] = "/tiles/" .. layer .. "/" .. line .. ".mvt"
end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], { ["Accept-Encoding"] = "gzip" })
end
local statuses = {}
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency)
  io.write(string.format("requests %d in %.1fs: %.0f req/s; latency p50 %.2f ms, p99 %.2f ms\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
