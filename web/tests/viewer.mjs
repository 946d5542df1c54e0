// Drives the viewer in headless Chromium (Debian's, through playwright-core): loads the page,
// waits for the map to be idle, checks through queryRenderedFeatures that districts and
// buildings are drawn, and saves a screenshot.
//   node web/tests/viewer.mjs <base-url> <screenshot.png>
import { launch } from './chromium.mjs';

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error('usage: node viewer.mjs <base-url> <screenshot.png>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const browser = await launch();
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const offline = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !u.protocol.startsWith('blob') && !u.protocol.startsWith('data')) offline.push(r.url());
  });
  page.on('response', (r) => { if (r.status() >= 400) console.error('HTTP', r.status(), r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await page.goto(`${base}/?zoom=14.5&pitch=0&lon=118.784&lat=32.041`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.citytwin?.map || window.citytwinError, null, { timeout: 60000 });
  const err = await page.evaluate(() => window.citytwinError);
  if (err) throw new Error(`viewer failed: ${err}`);
  await page.evaluate(() => new Promise((resolve) => {
    const map = window.citytwin.map;
    const done = () => (map.loaded() && map.areTilesLoaded() ? resolve() : map.once('idle', done));
    done();
  }));
  const counts = await page.evaluate(() => {
    const map = window.citytwin.map;
    const count = (layer) => (map.getLayer(layer) ? map.queryRenderedFeatures({ layers: [layer] }).length : 0);
    return { districts: count('districts-fill'), buildings: count('buildings'), roads: count('roads') };
  });
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ counts, offline }));
  if (counts.districts < 1) { console.error('no districts drawn'); failed = true; }
  if (counts.buildings > 0) { console.error('buildings drawn for the public'); failed = true; }
  if (offline.length > 0) { console.error('page reached outside the server:', offline); failed = true; }
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
