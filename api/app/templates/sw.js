// The volunteers' app's service worker: the app shell (with the map library it shares with
// the leads' map) from a versioned cache, first, so the app opens with no network; the API
// is never cached here (the app keeps its own data in IndexedDB, partitioned by user), and
// neither are basemap tiles (another origin: offline they fail, and the map draws without).
const CACHE = "knacka-app-__VERSION__";
const SHELL = ["/app/", "/app/manifest.webmanifest", __ASSETS__];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) =>
        Promise.all(
          keys.filter((k) => k.startsWith("knacka-app-") && k !== CACHE).map((k) => caches.delete(k)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/app/api/")) return;
  // Every page of the app (a turf's QR link too) is the one shell page.
  if (request.mode === "navigate" && url.pathname.startsWith("/app/")) {
    event.respondWith(
      caches.match("/app/", { cacheName: CACHE }).then((hit) => hit || fetch(request)),
    );
    return;
  }
  if (!SHELL.includes(url.pathname)) return;
  event.respondWith(
    caches.match(url.pathname, { cacheName: CACHE }).then((hit) => hit || fetch(request)),
  );
});
