-- wrk script: cycles through the request paths in $PATHS (one per line, query string included),
-- asking for JSON with gzip like a client library does.
local paths = {}
for line in io.lines(os.getenv("PATHS") or "paths.txt") do
  paths[#paths + 1] = line
end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], { ["Accept-Encoding"] = "gzip", ["Accept"] = "application/json" })
end
done = function(summary, latency)
  local bad = summary.errors.status + summary.errors.timeout + summary.errors.connect
    + summary.errors.read + summary.errors.write
  io.write(string.format("requests %d in %.1fs: %.0f req/s; latency p50 %.2f ms, p99 %.2f ms; errors %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad))
end
