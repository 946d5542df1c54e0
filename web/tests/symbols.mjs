// Drives the viewer in headless Chromium with no Chinese font of the machine within reach
// (a fontconfig of Latin fonts only): Chinese labels and the icons can only come from
// citytwin's own glyph PBFs and sprite. Checks that the
// glyph ranges and the sprite were fetched from citytwin and answered, that labelled and
// iconed symbols are placed, that no icon is missing from the sprite, and saves a screenshot.
//   node web/tests/symbols.mjs <base-url> <screenshot.png>
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error('usage: node symbols.mjs <base-url> <screenshot.png>');
  process.exit(2);
}
// fontconfig with Latin fonts only (the browser needs some font to run): no Chinese font of
// the machine is within reach, so every Chinese label comes from citytwin's glyphs
const dir = mkdtempSync(join(tmpdir(), 'citytwin-nofonts-'));
const latin = ['/usr/share/fonts/truetype/dejavu', '/usr/share/fonts/truetype/liberation']
  .filter((d) => existsSync(d)).map((d) => `<dir>${d}</dir>`).join('');
writeFileSync(join(dir, 'fonts.conf'),
  `<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>${latin}<cachedir>${dir}/cache</cachedir></fontconfig>\n`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  env: { ...process.env, FONTCONFIG_FILE: join(dir, 'fonts.conf'), FONTCONFIG_PATH: dir },
  args: [
    '--headless=new', '--no-sandbox', '--enable-unsafe-swiftshader', '--use-angle=swiftshader',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-remote-fonts',
  ],
});
let failed = false;
const fail = (m) => { console.error(m); failed = true; };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const fetched = [];
  const offline = [];
  const warnings = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !u.protocol.startsWith('blob') && !u.protocol.startsWith('data')) offline.push(r.url());
  });
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/fonts/') || u.pathname.startsWith('/sprites/')) fetched.push({ path: decodeURIComponent(u.pathname), status: r.status() });
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') warnings.push(m.text());
  });
  // 新街口: POIs with their icons and names, road and street names
  await page.goto(`${base}/?zoom=15.5&pitch=0&lon=118.7969&lat=32.0603`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.citytwin?.map || window.citytwinError, null, { timeout: 60000 });
  const err = await page.evaluate(() => window.citytwinError);
  if (err) throw new Error(`viewer failed: ${err}`);
  await page.evaluate(() => new Promise((resolve) => {
    const map = window.citytwin.map;
    const done = () => (map.loaded() && map.areTilesLoaded() ? resolve() : map.once('idle', done));
    done();
  }));
  const report = await page.evaluate(() => {
    const map = window.citytwin.map;
    const count = (layer) => (map.getLayer(layer) ? map.queryRenderedFeatures({ layers: [layer] }).length : 0);
    const names = (layer) => (map.getLayer(layer) ? map.queryRenderedFeatures({ layers: [layer] }).map((f) => f.properties.name).filter(Boolean) : []);
    return {
      pois: count('pois'),
      poi_names: names('pois').slice(0, 20),
      chinese: names('pois').concat(names('road-names'), names('street-names')).filter((n) => /[\u4e00-\u9fff]/.test(n)).length,
      road_names: count('road-names'),
      street_names: count('street-names'),
      images: map.listImages().length,
      has_hospital_icon: map.hasImage('poi-hospital'),
    };
  });
  await page.screenshot({ path: shot });
  const missing = warnings.filter((w) => /could not be loaded|image.*missing/i.test(w));
  console.log(JSON.stringify({ report, fetched, offline, missing }));
  const glyphs = fetched.filter((f) => f.path.startsWith('/fonts/'));
  const sprites = fetched.filter((f) => f.path.startsWith('/sprites/'));
  if (!glyphs.some((g) => g.path.endsWith('/0-255.pbf'))) fail('no Latin glyph range fetched');
  if (!glyphs.some((g) => { const s = Number(g.path.split('/').pop().split('-')[0]); return s >= 0x4e00 && s < 0xa000; })) fail('no Chinese glyph range fetched');
  if (!sprites.some((s) => s.path.endsWith('.json')) || !sprites.some((s) => s.path.endsWith('.png'))) fail('the sprite was not fetched');
  for (const f of fetched) if (f.status !== 200) fail(`${f.path}: HTTP ${f.status}`);
  if (report.pois < 1) fail('no POI symbols placed');
  if (report.poi_names.length < 1) fail('no POI labels');
  if (report.chinese < 1) fail('no Chinese label placed');
  if (report.road_names + report.street_names < 1) fail('no road or street labels placed');
  if (!report.has_hospital_icon) fail('the sprite has no poi-hospital');
  if (missing.length > 0) fail(`icons missing from the sprite: ${missing.join('; ')}`);
  if (offline.length > 0) fail(`page reached outside the server: ${offline}`);
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
