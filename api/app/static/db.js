// The app's durable storage: one IndexedDB database. Every log is written here (in one
// strict-durability transaction) before anything else happens to it, so that a killed app,
// a reboot or an expired token loses nothing. Queues are partitioned by user id.

const NAME = "knacka";
const VERSION = 1;
export const QUEUES = ["outbox", "visits", "synced"];
let opening = null;

export function openDb() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(NAME, VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore("kv");
        for (const name of QUEUES) {
          db.createObjectStore(name, { keyPath: "client_uuid" }).createIndex("user", "user_id");
        }
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opening;
}

async function run(stores, mode, work) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(stores, mode, { durability: "strict" });
    let result;
    Promise.resolve(work(tx)).then((r) => {
      result = r;
    }, reject);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

function req(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export function kvGet(key) {
  return run(["kv"], "readonly", (tx) => req(tx.objectStore("kv").get(key)));
}

export function kvSet(key, value) {
  return run(["kv"], "readwrite", (tx) => {
    tx.objectStore("kv").put(value, key);
  });
}

export function kvDelete(key) {
  return run(["kv"], "readwrite", (tx) => {
    tx.objectStore("kv").delete(key);
  });
}

// Several rows into several stores, all or nothing: a door's record and its visit.
export function putAll(rows) {
  const stores = [...new Set(rows.map(([store]) => store))];
  return run(stores, "readwrite", (tx) => {
    for (const [store, value] of rows) tx.objectStore(store).put(value);
  });
}

export function removeAll(keys) {
  const stores = [...new Set(keys.map(([store]) => store))];
  return run(stores, "readwrite", (tx) => {
    for (const [store, key] of keys) tx.objectStore(store).delete(key);
  });
}

export function get(store, key) {
  return run([store], "readonly", (tx) => req(tx.objectStore(store).get(key)));
}

export async function byUser(store, userId) {
  const rows = await run([store], "readonly", (tx) =>
    req(tx.objectStore(store).index("user").getAll(userId)),
  );
  return rows.sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
}
