// The citytwin map viewer: MapLibre GL JS served by citytwin itself (no CDN), a layer list,
// and feature information on click. `window.citytwin` exposes the map for tests.
import * as maplibregl from '/vendor/maplibre-gl/maplibre-gl.mjs';
import { authHeaders, signInButton, startAuth, ticket } from '/web/auth.js';

const statusEl = document.getElementById('status');
const styleSelect = document.getElementById('style');
const layerList = document.getElementById('layers');

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

async function loadStyles(auth) {
  const res = await fetch('/styles', { headers: authHeaders(auth) });
  if (!res.ok) throw new Error(`styles: HTTP ${res.status}`);
  const { styles } = await res.json();
  for (const s of styles) {
    const opt = document.createElement('option');
    opt.value = s.url;
    opt.textContent = s.name;
    styleSelect.appendChild(opt);
  }
  return styles;
}

function buildLayerList(map) {
  layerList.replaceChildren();
  for (const layer of map.getStyle().layers) {
    if (layer.type === 'background') continue;
    const li = document.createElement('li');
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = map.getLayoutProperty(layer.id, 'visibility') !== 'none';
    box.addEventListener('change', () => {
      map.setLayoutProperty(layer.id, 'visibility', box.checked ? 'visible' : 'none');
    });
    label.append(box, document.createTextNode(layer.id));
    li.appendChild(label);
    layerList.appendChild(li);
  }
}

function featureInfo(map, e) {
  const features = map.queryRenderedFeatures(e.point);
  if (features.length === 0) return;
  const f = features[0];
  const rows = Object.entries(f.properties)
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
    .join('');
  const html = `<div class="feature-info"><table><caption>${escapeHtml(f.sourceLayer)} #${escapeHtml(f.id ?? '')}</caption>${rows}</table></div>`;
  new maplibregl.Popup({ maxWidth: '320px' }).setLngLat(e.lngLat).setHTML(html).addTo(map);
}

// Follows the change feed over a WebSocket (resuming after a reconnect from the last sequence
// number seen) and reloads the live tiles at most once a second after a change.
function followLive(map, auth) {
  const live = { changes: 0, seq: null, connected: false };
  const kinds = 'event.reported,event.merged,event.transitioned,event.assigned,event.commanded,event.updated,'
    + 'sensor.registered,alarm.raised,alarm.cleared,unit.registered,unit.moved,unit.status';
  let pending = false;
  const reload = () => {
    pending = false;
    const src = map.getSource('live');
    if (src && src.tiles) src.setTiles(src.tiles);
  };
  const connect = async () => {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const since = live.seq === null ? '' : `&since=${live.seq}`;
    // signed in, the feed opens with a one-use ticket (a WebSocket cannot send headers)
    const t = await ticket(auth);
    const pass = t ? `&ticket=${encodeURIComponent(t)}` : '';
    const ws = new WebSocket(`${proto}://${location.host}/live?kinds=${kinds}${since}${pass}`);
    ws.onopen = () => { live.connected = true; };
    ws.onmessage = (m) => {
      const c = JSON.parse(m.data);
      if (c.type === 'hello') {
        if (live.seq === null) live.seq = c.seq;
        return;
      }
      live.seq = c.seq;
      live.changes += 1;
      if (!pending) {
        pending = true;
        setTimeout(reload, 1000);
      }
    };
    ws.onclose = () => {
      live.connected = false;
      setTimeout(connect, 2000);
    };
  };
  connect();
  return live;
}

// The date slider: base layers kept in versions are drawn as of the chosen day (their tiles
// carry ?at=), and the live layers as they stood then (the time machine, from /live/state).
// At the right end, "now": everything current and live again.
async function timeSlider(map, auth, when) {
  const res = await fetch('/catalog', { headers: authHeaders(auth) });
  if (!res.ok) return;
  const { layers } = await res.json();
  const dates = [...new Set(layers.flatMap((l) => (l.versions ?? []).map((v) => v.date)))].sort();
  const box = document.getElementById('when');
  if (dates.length === 0) { box.hidden = true; return; }
  box.hidden = false;
  const slider = document.getElementById('when-slider');
  const label = document.getElementById('when-label');
  const day = 86400000;
  const first = Date.parse(`${dates[0]}T00:00:00Z`);
  const today = Math.floor(Date.now() / day) * day;
  slider.min = 0;
  slider.max = Math.round((today - first) / day);
  slider.value = slider.max;
  const marks = document.getElementById('when-marks');
  marks.replaceChildren(...dates.map((d) => {
    const o = document.createElement('option');
    o.value = Math.round((Date.parse(`${d}T00:00:00Z`) - first) / day);
    o.label = d;
    return o;
  }));
  const versioned = new Set(layers.filter((l) => (l.versions ?? []).length > 0).map((l) => l.name));
  // the style's sources that draw a versioned layer
  const sources = () => Object.entries(map.getStyle().sources)
    .filter(([, s]) => s.type === 'vector' && typeof s.url === 'string'
      && s.url.split('/tiles/')[1]?.split('?')[0].split(',').some((n) => versioned.has(n)))
    .map(([id]) => id);
  const liveLayers = () => map.getStyle().layers.filter((l) => l.source === 'live').map((l) => l.id);
  let timer = null;
  // the time machine's layer: added once the style is there (again after a style change)
  const addPast = () => {
    if (map.getSource('live-past')) return;
    map.addSource('live-past', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    map.addLayer({
      id: 'live-past', type: 'circle', source: 'live-past',
      paint: {
        'circle-radius': 5,
        'circle-color': ['match', ['get', 'kind'], 'event', '#d7301f', 'sensor', '#2b8cbe', '#31a354'],
        'circle-stroke-color': '#fff', 'circle-stroke-width': 1,
      },
    });
  };
  const apply = async () => {
    addPast();
    const atNow = Number(slider.value) >= Number(slider.max);
    const date = new Date(first + Number(slider.value) * day).toISOString().slice(0, 10);
    when.at = atNow ? null : date;
    label.textContent = atNow ? 'now' : date;
    for (const id of sources()) {
      const src = map.getSource(id);
      const base = src.url.split('?')[0];
      src.setUrl(when.at ? `${base}?at=${when.at}` : base);
    }
    // the live layers: tiles now, the state as of the end of that day before
    for (const id of liveLayers()) map.setLayoutProperty(id, 'visibility', when.at ? 'none' : 'visible');
    let past = { type: 'FeatureCollection', features: [] };
    if (when.at) {
      const r = await fetch(`/live/state?at=${when.at}T23:59:59%2B08:00`, { headers: authHeaders(auth) });
      if (r.ok) {
        const s = await r.json();
        const point = (kind, x) => ({ type: 'Feature', geometry: { type: 'Point', coordinates: [x.lon, x.lat] }, properties: { kind, id: x.id, state: x.state ?? x.status ?? '' } });
        past.features = [
          ...(s.events ?? []).filter((x) => x.lon !== undefined).map((x) => point('event', x)),
          ...(s.sensors ?? []).filter((x) => x.lon !== undefined).map((x) => point('sensor', x)),
          ...(s.units ?? []).filter((x) => x.lon !== undefined).map((x) => point('unit', x)),
        ];
      }
    }
    const src = map.getSource('live-past');
    if (src) src.setData(past);
    when.live = past.features.length;
  };
  slider.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(apply, 150);
  });
  map.on('style.load', () => { if (when.at) apply(); });
  when.set = (date) => {
    slider.value = date === null ? slider.max : Math.round((Date.parse(`${date}T00:00:00Z`) - first) / day);
    return apply();
  };
  when.dates = dates;
}

async function main() {
  const auth = await startAuth();
  signInButton(auth, document.getElementById('account'));
  const styles = await loadStyles(auth);
  if (styles.length === 0) throw new Error('the server has no styles');
  const params = new URLSearchParams(location.search);
  const map = new maplibregl.Map({
    container: 'map',
    style: styles[0].url,
    center: [Number(params.get('lon') ?? 118.784), Number(params.get('lat') ?? 32.041)],
    zoom: Number(params.get('zoom') ?? 13.5),
    pitch: Number(params.get('pitch') ?? 40),
    hash: true,
    // every label, Chinese too, from citytwin's own glyphs: the page never depends on the
    // fonts of the machine it runs on
    localIdeographFontFamily: false,
    // the signed-in user's token goes with every request to citytwin itself (styles, tiles)
    transformRequest: (url) => (url.startsWith(location.origin) ? { url, headers: authHeaders(auth) } : { url }),
  });
  const when = { at: null, live: 0, dates: [] };
  map.addControl(new maplibregl.NavigationControl(), 'top-right');
  map.addControl(new maplibregl.ScaleControl(), 'bottom-left');
  window.citytwin = { map, auth, live: followLive(map, auth), when };
  timeSlider(map, auth, when).catch((err) => { statusEl.textContent = `date slider: ${err.message}`; });
  map.on('style.load', () => buildLayerList(map));
  map.on('click', (e) => featureInfo(map, e));
  map.on('error', (e) => { statusEl.textContent = `error: ${e.error?.message ?? e}`; });
  map.on('idle', () => {
    const z = map.getZoom().toFixed(1);
    const live = window.citytwin.live;
    statusEl.textContent = `zoom ${z} · ${map.getCenter().lng.toFixed(4)}, ${map.getCenter().lat.toFixed(4)}`
      + ` · live ${live.connected ? `#${live.seq}` : 'offline'}`
      + (when.at ? ` · as of ${when.at}` : '');
  });
  styleSelect.addEventListener('change', () => map.setStyle(styleSelect.value));
}

main().catch((err) => {
  statusEl.textContent = `failed: ${err.message}`;
  window.citytwinError = err.message;
});
