// The walk list's map, on the leads' map's library (Leaflet, vendored once under /karta and
// cached by the service worker): the turf's polygon, the doors in walking order joined by
// the walk, the next door highlighted. Tiles are only a background: offline or blocked they
// fail, and the turf and its doors are drawn all the same.

import { h } from "./ui.js";

const COLOURS = { turf: "#08519c", walk: "#555", door: "#111", done: "#8c8c8c", next: "#be1024" };

let library = null;
// One map per turf, kept while the walk list is redrawn after each door, so that it keeps
// its place and zoom and its tiles are not fetched again.
let shown = null;

function loadLibrary() {
  if (!library) {
    // The page names the library's URL (the server has it in one place) and preloads it.
    const href = document.getElementById("map-library").href;
    library = import(href).catch((error) => {
      library = null;
      throw error;
    });
  }
  return library;
}

// The element the map lives in, for this turf: the same one on every redraw of its list.
export function mapSlot(code) {
  if (shown && shown.code === code) return shown.node;
  if (shown && shown.map) shown.map.remove();
  const node = h("div", {
    id: "walk-map",
    class: "walkmap",
    role: "region",
    "aria-label": "Karta över områdets dörrar i gångordning",
  });
  shown = { code, node, map: null, layer: null };
  return node;
}

function baseLayer(L, map, node) {
  const url = document.body.dataset.basemapUrl;
  if (!url) {
    node.dataset.basemap = "off";
    return;
  }
  // The attribution is set as text: Leaflet would parse it as markup.
  const attribution = h("span", { text: document.body.dataset.basemapAttribution || "" }).innerHTML;
  const tiles = L.tileLayer(url, { maxZoom: 19, attribution, crossOrigin: false });
  tiles.on("tileerror", () => (node.dataset.basemap = "unreachable"));
  tiles.on("tileload", () => (node.dataset.basemap = "ok"));
  tiles.addTo(map);
}

function createMap(L, node, turf) {
  const map = L.map(node, { zoomControl: false, attributionControl: true });
  map.attributionControl.setPrefix(false);
  L.control.zoom({ zoomInTitle: "Zooma in", zoomOutTitle: "Zooma ut" }).addTo(map);
  baseLayer(L, map, node);
  const outline = turf.geometry
    ? L.geoJSON(turf.geometry, {
        interactive: false,
        style: { className: "turf-outline", color: COLOURS.turf, weight: 2, fillOpacity: 0.06 },
      }).addTo(map)
    : null;
  // Framed on the doors, which are what is walked: a rural turf's polygon may reach far
  // into the forest. A turf without doors is framed on its polygon.
  const points = turf.doors.map((d) => [d.lat, d.lon]);
  const bounds = points.length ? L.latLngBounds(points) : outline && outline.getBounds();
  if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 18 });
  else map.setView([63.18, 14.64], 12);
  return map;
}

// Draws (or redraws) the doors of `turf` in the slot, which must be in the page by now.
export async function drawMap({ turf, next, isDone, onPick }) {
  const view = shown;
  if (!view || view.code !== turf.code) return;
  let L;
  try {
    L = await loadLibrary();
  } catch {
    view.node.dataset.map = "unavailable";
    view.node.replaceChildren(h("p", { class: "note", text: "Kartan kunde inte laddas; gånglistan nedan fungerar." }));
    return;
  }
  if (view !== shown || !view.node.isConnected) return;
  if (!view.map) view.map = createMap(L, view.node, turf);
  else view.map.invalidateSize();
  if (view.layer) view.layer.remove();
  const walk = L.polyline(
    turf.doors.map((d) => [d.lat, d.lon]),
    { className: "walk-route", color: COLOURS.walk, weight: 2, interactive: false },
  );
  const dots = turf.doors.map((door) => {
    const kind = door === next ? "next" : isDone(door) ? "done" : "door";
    const dot = L.circleMarker([door.lat, door.lon], {
      className: `door-dot ${kind}`,
      radius: kind === "next" ? 11 : 6,
      color: "#fff",
      weight: 2,
      fillColor: COLOURS[kind],
      fillOpacity: 1,
    });
    dot.on("click", () => onPick(door));
    return dot;
  });
  view.layer = L.layerGroup([walk, ...dots]).addTo(view.map);
  dots.forEach((dot, i) => (dot.getElement().dataset.position = String(turf.doors[i].position)));
  // The next door on top of its neighbours.
  const nextDot = dots[turf.doors.indexOf(next)];
  if (nextDot) nextDot.bringToFront();
  view.node.dataset.map = "ready";
}
