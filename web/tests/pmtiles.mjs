// Reads a PMTiles archive the way a web map does: MapLibre GL JS with the `pmtiles` protocol
// in headless Chromium (Debian's, through playwright-core), the archive served with HTTP range
// requests from a local server as a CDN would. Prints, per source layer, how many features
// MapLibre decoded at the given view, and the number of range requests made.
//   node web/tests/pmtiles.mjs <archive.pmtiles> <lon> <lat> <zoom> <layer,layer,...>
import { launch } from './chromium.mjs';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [archive, lon, lat, zoom, layerList] = process.argv.slice(2);
if (!archive || !layerList) {
  console.error('usage: node pmtiles.mjs <archive.pmtiles> <lon> <lat> <zoom> <layers>');
  process.exit(2);
}
const layers = layerList.split(',');
const web = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const files = {
  '/maplibre-gl.mjs': path.join(web, 'node_modules/maplibre-gl/dist/maplibre-gl.mjs'),
  '/maplibre-gl-shared.mjs': path.join(web, 'node_modules/maplibre-gl/dist/maplibre-gl-shared.mjs'),
  '/maplibre-gl-worker.mjs': path.join(web, 'node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs'),
  '/maplibre-gl.css': path.join(web, 'node_modules/maplibre-gl/dist/maplibre-gl.css'),
  '/pmtiles.js': path.join(web, 'node_modules/pmtiles/dist/pmtiles.js'),
};
const types = { '.mjs': 'text/javascript', '.js': 'text/javascript', '.css': 'text/css' };
let ranges = 0;
const page = `<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/maplibre-gl.css"><script src="/pmtiles.js"></script>
<style>html,body,#map{margin:0;width:100%;height:100%}</style></head>
<body><div id="map"></div><script type="module">
import * as maplibregl from '/maplibre-gl.mjs';
const protocol = new pmtiles.Protocol();
maplibregl.addProtocol('pmtiles', protocol.tile);
const layers = ${JSON.stringify(layers)};
const paint = (l, i) => [
  { id: l + '-fill', type: 'fill', source: 'a', 'source-layer': l, filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': ['#3b7', '#37b', '#b73'][i % 3], 'fill-opacity': 0.5 } },
  { id: l + '-line', type: 'line', source: 'a', 'source-layer': l, filter: ['==', ['geometry-type'], 'LineString'], paint: { 'line-color': '#333' } },
  { id: l + '-point', type: 'circle', source: 'a', 'source-layer': l, filter: ['==', ['geometry-type'], 'Point'], paint: { 'circle-radius': 3 } },
];
try {
  const map = new maplibregl.Map({
    container: 'map',
    style: { version: 8, sources: { a: { type: 'vector', url: 'pmtiles://' + location.origin + '/archive.pmtiles' } },
      layers: [{ id: 'bg', type: 'background', paint: { 'background-color': '#fff' } }, ...layers.flatMap(paint)] },
    center: [${Number(lon)}, ${Number(lat)}], zoom: ${Number(zoom)}, attributionControl: { compact: false },
  });
  map.on('error', (e) => { window.mapError = String(e.error?.message ?? e); });
  map.once('idle', () => {
    const counts = {};
    for (const l of layers) counts[l] = map.querySourceFeatures('a', { sourceLayer: l }).length;
    const attribution = document.querySelector('.maplibregl-ctrl-attrib-inner')?.textContent ?? '';
    window.result = { counts, attribution };
  });
} catch (e) { window.mapError = String(e); }
</script></body></html>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page);
    return;
  }
  if (url.pathname === '/archive.pmtiles') {
    const size = fs.statSync(archive).size;
    const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    if (!m) {
      res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
      fs.createReadStream(archive).pipe(res);
      return;
    }
    ranges += 1;
    const start = Number(m[1]);
    const end = Math.min(m[2] ? Number(m[2]) : size - 1, size - 1);
    res.writeHead(206, {
      'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1,
      'accept-ranges': 'bytes', 'content-type': 'application/octet-stream',
    });
    fs.createReadStream(archive, { start, end }).pipe(res);
    return;
  }
  const file = files[url.pathname];
  if (!file) {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await launch();
let failed = false;
try {
  const p = await browser.newPage({ viewport: { width: 800, height: 600 } });
  p.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await p.goto(base, { waitUntil: 'load' });
  await p.waitForFunction(() => window.result || window.mapError, null, { timeout: 60000 });
  const error = await p.evaluate(() => window.mapError);
  if (error) throw new Error(`map failed: ${error}`);
  const result = await p.evaluate(() => window.result);
  console.log(JSON.stringify({ ...result, ranges }));
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
