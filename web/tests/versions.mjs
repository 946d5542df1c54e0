// Moves the viewer's date slider in headless Chromium (Debian's, through playwright-core): the
// demo's buildings are kept in two versions (2020 and 2025); at "now" the map draws buildings
// built after 2020, as of 2020-06-01 it draws none of them, and back at "now" they return.
// Every request carries the key given (as a signed-in user's token would), so the buildings,
// open only on request, are drawn.
//   node web/tests/versions.mjs <base-url> <key> <screenshot-2020.png>
import { launch } from './chromium.mjs';

const [base, key, shot] = process.argv.slice(2);
if (!base || !key || !shot) {
  console.error('usage: node versions.mjs <base-url> <key> <screenshot.png>');
  process.exit(2);
}
const browser = await launch();
let failed = false;
const idle = (page) => page.evaluate(() => new Promise((resolve) => {
  const map = window.citytwin.map;
  const done = () => (map.loaded() && map.areTilesLoaded() ? resolve() : map.once('idle', done));
  setTimeout(done, 300);
}));
// buildings drawn, and those of them built after 2020
const drawn = (page) => page.evaluate(() => {
  const map = window.citytwin.map;
  const all = map.getLayer('buildings') ? map.queryRenderedFeatures({ layers: ['buildings'] }) : [];
  return { buildings: all.length, newer: all.filter((f) => Number(f.properties.year) > 2020).length };
});
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    extraHTTPHeaders: { Authorization: `Bearer ${key}` },
  });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await page.goto(`${base}/?zoom=15&pitch=0&lon=118.784&lat=32.041`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.citytwin?.map || window.citytwinError, null, { timeout: 60000 });
  const err = await page.evaluate(() => window.citytwinError);
  if (err) throw new Error(`viewer failed: ${err}`);
  await page.waitForFunction(() => window.citytwin.when.dates.length > 0, null, { timeout: 30000 });
  await idle(page);
  const dates = await page.evaluate(() => window.citytwin.when.dates);
  const sliderShown = await page.isVisible('#when-slider');
  const now = await drawn(page);
  // drag the slider as a user would: to 2020-06-01 (the input event the page listens to)
  await page.evaluate(() => window.citytwin.when.set('2020-06-01'));
  await page.waitForFunction(() => window.citytwin.when.at === '2020-06-01', null, { timeout: 10000 });
  await idle(page);
  const then = await drawn(page);
  // the live layers as they stood then: the live tiles hidden, the time machine's state drawn
  const live = await page.evaluate(() => {
    const map = window.citytwin.map;
    const tiles = map.getStyle().layers.filter((l) => l.source === 'live');
    return {
      hidden: tiles.every((l) => map.getLayoutProperty(l.id, 'visibility') === 'none'),
      past: Boolean(map.getSource('live-past')),
    };
  });
  const label = await page.textContent('#when-label');
  await page.screenshot({ path: shot });
  await page.evaluate(() => window.citytwin.when.set(null));
  await idle(page);
  const back = await drawn(page);
  console.log(JSON.stringify({ dates, sliderShown, label, now, then, back, live }));
  if (!live.hidden || !live.past) { console.error('the live layers did not go back in time', live); failed = true; }
  if (!sliderShown) { console.error('no date slider'); failed = true; }
  if (now.newer === 0) { console.error('no building built after 2020 drawn now'); failed = true; }
  if (then.buildings === 0) { console.error('nothing drawn as of 2020'); failed = true; }
  if (then.newer !== 0) { console.error('buildings built after 2020 drawn as of 2020'); failed = true; }
  if (back.newer === 0) { console.error('back at now, the new buildings did not return'); failed = true; }
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
