// The leads' map. Plain ES module, no build step. Every name from the database is written
// with textContent (never parsed as HTML), and the token lives in localStorage and in the
// Authorization header only: never in a URL.
import * as L from './vendor/leaflet/leaflet-src.esm.js';
import {
  LABELS, STATUS, colourOf, legendOf, formatNumber, formatShare,
} from './karta-style.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'knacka.token';
const state = {
  token: localStorage.getItem(TOKEN_KEY),
  me: null,
  campaign: null,
  metric: 'conversations',
  districts: null, // the GeoJSON layer
  features: new Map(), // district code -> feature
  turfs: new Map(), // turf code -> feature
  turfLayer: null,
  loadedKommuner: new Set(),
  foreningar: [],
  kommuner: [],
  map: null,
  zoomLoaded: null,
  selectedTurf: null,
};

class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set('Authorization', `Bearer ${state.token}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && state.token) {
    signOut();
    throw new ApiError(401, 'Du har loggats ut.');
  }
  return response;
}

async function detailOf(response) {
  try {
    const body = await response.json();
    return typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function getJson(path) {
  const response = await api(path);
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response.json();
}

function text(el, value) {
  el.textContent = value == null ? '' : String(value);
  return el;
}

function make(tag, value, className) {
  const el = document.createElement(tag);
  if (value != null) el.textContent = String(value);
  if (className) el.className = className;
  return el;
}

function setStatus(message) {
  text($('status'), message);
}

// -- signing in -------------------------------------------------------------------------

function showSignIn() {
  $('app').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  text($('who'), '');
  $('email').focus();
}

function signOut() {
  state.token = null;
  localStorage.removeItem(TOKEN_KEY);
  showSignIn();
}

function deviceName() {
  const tablet = /iPad|Tablet|Android/.test(navigator.userAgent) ? 'surfplatta' : 'dator';
  return `Kartan (${tablet})`;
}

$('code-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  text($('signin-error'), '');
  const email = $('email').value.trim();
  const response = await fetch('/auth/code', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email }),
  });
  if (!response.ok) {
    text($('signin-error'), `Kunde inte skicka koden: ${await detailOf(response)}`);
    return;
  }
  $('token-form').hidden = false;
  $('code').focus();
});

$('token-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  text($('signin-error'), '');
  const form = new URLSearchParams({
    grant_type: 'password',
    username: $('email').value.trim(),
    password: $('code').value.trim(),
    client_id: deviceName(),
  });
  const response = await fetch('/auth/token', { method: 'POST', body: form });
  if (!response.ok) {
    text($('signin-error'), 'Koden stämmer inte eller är för gammal. Försök igen.');
    return;
  }
  const body = await response.json();
  state.token = body.access_token;
  localStorage.setItem(TOKEN_KEY, state.token);
  $('code').value = '';
  $('token-form').hidden = true;
  start();
});

$('sign-out').addEventListener('click', signOut);

// -- the map ----------------------------------------------------------------------------

function zoomLevel() {
  return Math.max(4, Math.min(18, Math.round(state.map.getZoom())));
}

function initMap() {
  if (state.map) return;
  const body = document.body;
  state.map = L.map('map', { zoomControl: true, keyboard: true }).setView([63.2, 14.6], 7);
  // Above the districts' fill, so that kommun borders show; never clicked.
  const outlines = state.map.createPane('outlines');
  outlines.style.zIndex = 450;
  outlines.style.pointerEvents = 'none';
  const url = body.dataset.basemapUrl;
  if (url) {
    const tiles = L.tileLayer(url, {
      maxZoom: 18,
      attribution: body.dataset.basemapAttribution,
      crossOrigin: false,
    });
    // An unreachable tile server is not an error of the page: the outlines stay.
    tiles.on('tileerror', () => { $('map').dataset.basemap = 'unreachable'; });
    tiles.on('tileload', () => { $('map').dataset.basemap = 'ok'; });
    tiles.addTo(state.map);
  } else {
    $('map').dataset.basemap = 'off';
  }
  state.map.attributionControl.setPrefix(false);
  state.map.on('zoomend', () => {
    if (state.zoomLoaded !== null && Math.abs(zoomLevel() - state.zoomLoaded) >= 2) {
      loadDistricts(false);
    }
  });
}

async function loadOutlines() {
  const data = await getJson(`/map/outlines.geojson?zoom=${zoomLevel()}`);
  if (state.outlines) state.outlines.remove();
  state.outlines = L.geoJSON(data, {
    pane: 'outlines',
    interactive: false,
    style: (f) => (f.properties.layer === 'partidistrikt'
      ? { color: '#222', weight: 3, fill: false, className: 'knacka-outline' }
      : { color: '#555', weight: 2, fill: false, dashArray: null, className: 'knacka-outline' }),
  }).addTo(state.map);
}

function styleOf(feature) {
  const p = feature.properties;
  const base = {
    fillColor: colourOf(state.metric, p),
    fillOpacity: 0.72,
    color: '#333',
    weight: 1,
    className: 'knacka-district',
  };
  if (p.uncovered) {
    // Uncovered: a thick dashed outline, told apart without colour.
    return { ...base, color: '#000', weight: 3, dashArray: '6 4', className: 'knacka-district knacka-uncovered' };
  }
  return base;
}

function tooltipOf(p) {
  const el = make('span');
  el.append(make('strong', p.name), document.createElement('br'));
  el.append(make('span', p.forening ? p.forening : 'Ingen förening'));
  return el;
}

async function loadDistricts(fit) {
  const zoom = zoomLevel();
  const campaign = state.campaign ? `campaign=${state.campaign.id}&` : '';
  setStatus('Hämtar valdistrikten …');
  const data = await getJson(`/map/districts.geojson?${campaign}zoom=${zoom}`);
  state.zoomLoaded = zoom;
  if (state.districts) state.districts.remove();
  state.features.clear();
  state.districts = L.geoJSON(data, {
    style: styleOf,
    onEachFeature: (feature, layer) => {
      state.features.set(feature.properties.code, feature);
      layer.bindTooltip(tooltipOf(feature.properties), { sticky: true });
      layer.on('click', () => selectDistrict(feature.properties.code));
    },
  }).addTo(state.map);
  if (state.turfLayer) state.turfLayer.bringToFront();
  $('map').dataset.districts = String(data.features.length);
  fillDistrictPicker(data.features);
  restyle();
  if (fit && data.features.length) state.map.fitBounds(state.districts.getBounds());
  setStatus(`${data.features.length} valdistrikt.`);
}

function restyle() {
  drawLegend(); // first: the priority scale's breaks come from the data
  if (state.districts) state.districts.setStyle(styleOf);
}

function drawLegend() {
  const { title, items } = legendOf(state.metric, [...state.features.values()]);
  text($('legend-title'), title);
  const list = $('legend-items');
  list.replaceChildren();
  for (const item of items) {
    const li = make('li');
    const swatch = make('span', null, `swatch${item.dashed ? ' dashed' : ''}`);
    swatch.style.backgroundColor = item.colour;
    li.append(swatch, make('span', item.label));
    list.append(li);
  }
}

function fillDistrictPicker(features) {
  const pick = $('district-pick');
  const first = pick.options[0];
  pick.replaceChildren(first);
  const sorted = [...features].sort((a, b) => a.properties.code.localeCompare(b.properties.code));
  for (const f of sorted) {
    const option = make('option', `${f.properties.name} (${f.properties.code})`);
    option.value = f.properties.code;
    pick.append(option);
  }
}

$('district-pick').addEventListener('change', (event) => {
  if (event.target.value) selectDistrict(event.target.value, true);
});

$('metric').addEventListener('change', (event) => {
  state.metric = event.target.value;
  restyle();
});

$('campaign').addEventListener('change', async (event) => {
  state.campaign = state.campaigns.find((c) => String(c.id) === event.target.value) || null;
  await loadDistricts(false);
  await loadOverview();
});

// -- a district -------------------------------------------------------------------------

async function selectDistrict(code, zoomTo = false) {
  const feature = state.features.get(code);
  if (!feature) return;
  const p = feature.properties;
  $('district-pick').value = code;
  $('district-panel').hidden = false;
  $('turf-panel').hidden = true;
  $('district-panel').dataset.code = code;
  text($('district-title'), `${p.name} (${p.code})`);
  text($('district-forening'), p.forening ? `Förening: ${p.forening}` : 'Ingen förening täcker distriktet.');
  if (zoomTo) {
    state.districts.eachLayer((layer) => {
      if (layer.feature.properties.code === code) state.map.fitBounds(layer.getBounds());
    });
  }
  const tbody = $('district-numbers');
  tbody.replaceChildren();
  if (state.campaign) {
    try {
      const progress = await getJson(
        `/campaigns/${state.campaign.id}/progress/district/${encodeURIComponent(code)}`,
      );
      for (const m of progress.metrics) {
        const row = make('tr');
        row.dataset.metric = m.metric;
        row.append(
          make('th', LABELS[m.metric] || m.metric),
          make('td', formatNumber(m.actual)),
          make('td', m.target == null ? '–' : formatNumber(m.target)),
          make('td', m.expected == null ? '–' : formatNumber(Math.round(m.expected))),
          make('td', STATUS[m.status] || m.status),
        );
        row.firstChild.setAttribute('scope', 'row');
        tbody.append(row);
      }
    } catch (error) {
      tbody.append(make('tr', `Kunde inte hämta siffrorna: ${error.message}`));
    }
  }
  $('district-panel').dataset.loaded = 'true';
  await loadTurfs(p.kommun_code);
  listTurfs(code);
}

async function loadTurfs(kommunCode, force = false) {
  if (state.loadedKommuner.has(kommunCode) && !force) return;
  const campaign = state.campaign ? `campaign=${state.campaign.id}&` : '';
  const data = await getJson(
    `/map/districts.geojson?${campaign}kommun=${encodeURIComponent(kommunCode)}&zoom=${zoomLevel()}&turfs=true`,
  );
  state.loadedKommuner.add(kommunCode);
  const turfs = data.features.filter((f) => f.properties.layer === 'turf');
  for (const f of turfs) state.turfs.set(f.properties.code, f);
  redrawTurfs();
}

function redrawTurfs() {
  if (state.turfLayer) state.turfLayer.remove();
  state.turfLayer = L.geoJSON(
    { type: 'FeatureCollection', features: [...state.turfs.values()] },
    {
      style: (f) => ({
        fillColor: colourOf('coverage', { coverage: { share: f.properties.coverage.share } }),
        fillOpacity: 0.55,
        color: f.properties.lease ? '#08306b' : '#444',
        weight: f.properties.lease ? 3 : 1,
        className: 'knacka-turf',
      }),
      onEachFeature: (feature, layer) => {
        layer.bindTooltip(make('span', feature.properties.code), { sticky: true });
        layer.on('click', (event) => {
          L.DomEvent.stopPropagation(event);
          selectTurf(feature.properties.code);
        });
      },
    },
  ).addTo(state.map);
}

function leaseText(lease) {
  if (!lease) return 'Ledigt';
  const until = new Date(lease.expires_at).toLocaleDateString('sv-SE');
  const who = lease.holder === 'forening' ? 'föreningen' : 'en volontär i';
  return `Utlånat till ${who} ${lease.forening || '(okänd förening)'} till ${until}`;
}

function listTurfs(districtCode) {
  const list = $('district-turfs');
  list.replaceChildren();
  const turfs = [...state.turfs.values()].filter((f) => f.properties.district_code === districtCode);
  if (!turfs.length) {
    list.append(make('li', 'Inga områden är skurna här ännu.'));
    return;
  }
  for (const f of turfs) {
    const p = f.properties;
    const button = make('button', `${p.code}: ${p.households} hushåll, ${formatShare(p.coverage.share)} knackat – ${leaseText(p.lease)}`, 'link');
    button.type = 'button';
    button.dataset.turf = p.code;
    button.addEventListener('click', () => selectTurf(p.code));
    const li = make('li');
    li.append(button);
    list.append(li);
  }
}

// -- a turf -----------------------------------------------------------------------------

function fact(dl, label, value) {
  dl.append(make('dt', label), make('dd', value));
}

async function selectTurf(code) {
  const feature = state.turfs.get(code);
  if (!feature) return;
  state.selectedTurf = code;
  const p = feature.properties;
  $('turf-panel').hidden = false;
  $('turf-panel').dataset.code = code;
  text($('turf-title'), `Område ${p.code}`);
  text($('turf-message'), '');
  $('turf-qr').hidden = true;
  const dl = $('turf-facts');
  dl.replaceChildren();
  fact(dl, 'Hushåll', formatNumber(p.households));
  fact(dl, 'Adresser', formatNumber(p.address_count));
  fact(dl, 'Gånglängd', `${formatNumber(p.walk_length_m)} m`);
  fact(dl, 'Dörrar knackade', formatNumber(p.coverage.doors_knocked));
  fact(dl, 'Täckning', formatShare(p.coverage.share));
  fact(dl, 'Svarade', formatNumber(p.coverage.answered));
  fact(dl, 'Samtal', formatNumber(p.coverage.conversations));
  fact(dl, 'Senaste besök', p.coverage.last_visit || '–');
  text($('turf-lease'), leaseText(p.lease));
  const district = state.features.get(p.district_code);
  const kommun = state.kommuner.find((k) => district && k.code === district.properties.kommun_code);
  const select = $('turf-forening');
  select.replaceChildren();
  for (const f of state.foreningar) {
    if (kommun && f.kommun_id !== kommun.id) continue;
    const option = make('option', f.name);
    option.value = String(f.id);
    if (district && f.id === district.properties.forening_id) option.selected = true;
    select.append(option);
  }
  await fillVolunteers();
}

async function fillVolunteers() {
  // A turf goes to a förening as a team, or to one of its volunteers.
  const select = $('turf-user');
  const first = select.options[0];
  select.replaceChildren(first);
  if (state.users === undefined) {
    try {
      state.users = await getJson('/users');
    } catch {
      state.users = [];
    }
  }
  const forening = Number($('turf-forening').value);
  for (const u of state.users) {
    if (u.role !== 'volunteer' || u.unit_kind !== 'forening' || u.unit_id !== forening) continue;
    const option = make('option', u.display_name);
    option.value = String(u.id);
    select.append(option);
  }
}

$('turf-forening').addEventListener('change', fillVolunteers);

async function refreshTurf(code) {
  // The turf API's own view is the truth about the lease; the map's layer follows it.
  const response = await api(`/turfs/${encodeURIComponent(code)}`);
  const feature = state.turfs.get(code);
  if (response.ok && feature) {
    const { lease } = await response.json();
    let fid = lease ? lease.forening_id : null;
    if (lease && fid == null) {
      const holder = (state.users || []).find((u) => u.id === lease.user_id);
      fid = holder ? holder.unit_id : null;
    }
    feature.properties.lease = lease
      ? {
        holder: lease.forening_id != null ? 'forening' : 'volunteer',
        forening_id: fid,
        forening: (state.foreningar.find((f) => f.id === fid) || {}).name || null,
        expires_at: lease.expires_at,
      }
      : null;
  }
  redrawTurfs();
  if (feature) {
    text($('turf-lease'), leaseText(feature.properties.lease));
    listTurfs(feature.properties.district_code);
  }
}

$('turf-assign').addEventListener('click', async () => {
  const code = state.selectedTurf;
  const forening = Number($('turf-forening').value);
  const user = Number($('turf-user').value);
  if (!code || !forening) return;
  const holder = user ? { user_id: user } : { forening_id: forening };
  const response = await api(`/turfs/${encodeURIComponent(code)}/lease`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(holder),
  });
  if (response.status === 409) {
    text($('turf-message'), 'Området är redan utlånat. Släpp det först.');
  } else if (!response.ok) {
    text($('turf-message'), `Kunde inte tilldela: ${await detailOf(response)}`);
  } else {
    text($('turf-message'), 'Området är tilldelat.');
  }
  await refreshTurf(code);
});

$('turf-release').addEventListener('click', async () => {
  const code = state.selectedTurf;
  if (!code) return;
  const response = await api(`/turfs/${encodeURIComponent(code)}/lease`, { method: 'DELETE' });
  text($('turf-message'), response.ok ? 'Området är släppt.' : `Kunde inte släppa: ${await detailOf(response)}`);
  await refreshTurf(code);
});

async function fetchBlobUrl(path) {
  // Fetched with the token in its header, then shown from a blob: the token stays out of URLs.
  const response = await api(path);
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return URL.createObjectURL(await response.blob());
}

$('turf-walklist').addEventListener('click', async () => {
  // A tab of its own, to print. Its blob: copy keeps this page's policy (style-src 'self'),
  // so the walk list links its style sheet by absolute URL and has no inline style.
  const code = state.selectedTurf;
  try {
    const url = await fetchBlobUrl(`/turfs/${encodeURIComponent(code)}/walklist`);
    window.open(url, '_blank', 'noopener');
  } catch (error) {
    text($('turf-message'), `Gånglistan gick inte att hämta: ${error.message}`);
  }
});

$('turf-qr-show').addEventListener('click', async () => {
  const code = state.selectedTurf;
  try {
    const img = $('turf-qr');
    img.src = await fetchBlobUrl(`/turfs/${encodeURIComponent(code)}/qr.svg`);
    img.hidden = false;
  } catch (error) {
    text($('turf-message'), `QR-koden gick inte att hämta: ${error.message}`);
  }
});

// -- the overview -----------------------------------------------------------------------

function unitRef() {
  const { unit_kind: kind, unit_id: id } = state.me;
  if (kind === 'kommun') {
    const kommun = state.kommuner.find((k) => k.id === id);
    return kommun ? kommun.code : null;
  }
  return String(id);
}

function card(child, expectedShare) {
  const el = make('article', null, 'card');
  el.dataset.unit = String(child.unit_id);
  el.append(make('h3', child.unit_name));
  for (const m of child.metrics) {
    if (m.metric === 'active_volunteers' && m.target == null) continue;
    const row = make('div', null, 'card-row');
    row.append(make('span', LABELS[m.metric] || m.metric, 'card-label'));
    row.append(make('span', `${formatNumber(m.actual)} av ${m.target == null ? '–' : formatNumber(m.target)}`));
    const bar = make('span', null, 'bar');
    bar.setAttribute('aria-hidden', 'true');
    const fill = make('span', null, 'bar-fill');
    fill.style.width = `${Math.min(100, Math.round((m.share || 0) * 100))}%`;
    const mark = make('span', null, 'bar-pace');
    mark.style.left = `${Math.min(100, Math.round(expectedShare * 100))}%`;
    bar.append(fill, mark);
    row.append(bar, make('span', STATUS[m.status] || m.status, `status status-${m.status}`));
    el.append(row);
  }
  return el;
}

async function loadOverview() {
  const section = $('overview');
  const ref = unitRef();
  if (!state.campaign || !ref || state.me.unit_kind === 'forening') {
    section.hidden = true;
    return;
  }
  const kind = state.me.unit_kind;
  const base = `/campaigns/${state.campaign.id}/progress/${kind}/${encodeURIComponent(ref)}`;
  const data = await getJson(`${base}/children`);
  const cards = $('overview-cards');
  cards.replaceChildren();
  for (const child of data.children) cards.append(card(child, child.expected_share));
  text($('overview-title'), kind === 'partidistrikt' ? 'Kommunerna sida vid sida' : 'Föreningarna sida vid sida');
  section.hidden = false;
  try {
    const params = new URLSearchParams({ campaign: state.campaign.id, unit_kind: kind, unit: ref });
    $('overview-chart').src = await fetchBlobUrl(`/map/chart.png?${params}`);
  } catch {
    $('overview-chart').hidden = true;
  }
}

// -- starting ---------------------------------------------------------------------------

function runningCampaign(campaigns) {
  const today = new Date().toISOString().slice(0, 10);
  return campaigns.find((c) => c.starts_on <= today && today <= c.ends_on) || campaigns[0] || null;
}

async function allPages(path) {
  const items = [];
  for (let offset = 0; ; offset += 500) {
    const page = await getJson(`${path}${path.includes('?') ? '&' : '?'}limit=500&offset=${offset}`);
    items.push(...page.items);
    if (items.length >= page.total || !page.items.length) return items;
  }
}

async function start() {
  if (!state.token) {
    showSignIn();
    return;
  }
  try {
    state.me = await getJson('/me');
  } catch {
    showSignIn();
    return;
  }
  if (state.me.role === 'volunteer') {
    // Volunteers have their own app; the map is for leads.
    window.location.assign('/app');
    return;
  }
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  text($('who'), `Inloggad som ${state.me.display_name}`);
  const [campaigns, foreningar, kommuner] = await Promise.all([
    getJson('/campaigns'),
    allPages('/foreningar?kind=geographic'),
    allPages('/kommuner'),
  ]);
  state.campaigns = campaigns;
  state.foreningar = foreningar;
  state.kommuner = kommuner;
  state.campaign = runningCampaign(campaigns);
  const select = $('campaign');
  select.replaceChildren();
  for (const c of campaigns) {
    const option = make('option', c.name);
    option.value = String(c.id);
    option.selected = state.campaign && c.id === state.campaign.id;
    select.append(option);
  }
  initMap();
  await Promise.all([loadOutlines(), loadDistricts(true)]);
  await loadOverview();
  document.body.dataset.ready = 'true';
}

start().catch((error) => setStatus(`Något gick fel: ${error.message}`));
