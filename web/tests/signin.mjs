// Signs in to the viewer through the identity provider's own login page, in headless
// Chromium (Debian's, through playwright-core), and counts what each canary layer draws
// before and after: a layer shared between departments appears once signed in.
//   node web/tests/signin.mjs <base-url> <user> <password> <screenshot.png>
import { launch } from './chromium.mjs';

const [base, user, password, shot] = process.argv.slice(2);
if (!base || !user || !password || !shot) {
  console.error('usage: node signin.mjs <base-url> <user> <password> <screenshot.png>');
  process.exit(2);
}
const layers = ['canary-open', 'canary-shared', 'canary-conditional', 'canary-private', 'canary-secret', 'canary-unclassified'];
const browser = await launch();
let failed = false;
const idle = (page) => page.evaluate(() => new Promise((resolve) => {
  const map = window.citytwin.map;
  const done = () => (map.loaded() && map.areTilesLoaded() ? resolve() : map.once('idle', done));
  done();
}));
const counts = (page) => page.evaluate((ids) => {
  const map = window.citytwin.map;
  return Object.fromEntries(ids.map((id) => [id, map.getLayer(id) ? map.queryRenderedFeatures({ layers: [id] }).length : 0]));
}, layers);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await page.goto(`${base}/?zoom=15.5&pitch=0&lon=118.7815&lat=32.0935`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.citytwin?.map || window.citytwinError, null, { timeout: 60000 });
  await idle(page);
  const before = await counts(page);
  await page.click('#sign-in');
  await page.waitForSelector('input[name=login]', { timeout: 30000 });
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(base), { timeout: 30000 }),
    page.click('button[type=submit]'),
  ]);
  await page.waitForFunction(() => window.citytwin?.auth?.user || window.citytwinError, null, { timeout: 60000 });
  const err = await page.evaluate(() => window.citytwinError);
  if (err) throw new Error(`viewer failed: ${err}`);
  await idle(page);
  const after = await counts(page);
  const who = await page.textContent('#auth span');
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ before, after, who }));
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
