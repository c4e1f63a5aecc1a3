// The signed-in session, the server's features, and the outbox: what a tap queues and what a
// sync sends. The token lives only in IndexedDB and in the Authorization header, never in a URL.

import { byUser, get, kvDelete, kvGet, kvSet, putAll, removeAll } from "./db.js";

export const VISIT_STATUS = {
  conversation: "answered",
  refused: "answered",
  moved: "answered",
  not_home: "not_home",
  no_access: "no_access",
};

let current = null;

export async function loadSession() {
  current = (await kvGet("session")) || null;
  return current;
}

export function session() {
  return current;
}

export async function saveSession(value) {
  current = value;
  await kvSet("session", value);
}

// The token is dropped but the user stays named: their queue waits, hidden from anyone else.
export async function endSession() {
  current = null;
  await kvDelete("session");
}

export async function markExpired() {
  if (!current) return;
  current = { ...current, token: null, expired: true };
  await kvSet("session", current);
}

export function userKey(name) {
  return `${name}:${current.user.id}`;
}

export async function userGet(name) {
  return current ? kvGet(userKey(name)) : undefined;
}

export async function userSet(name, value) {
  if (current) await kvSet(userKey(name), value);
}

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", json, form, token } = {}) {
  const headers = { Accept: "application/json" };
  const auth = token === undefined ? current && current.token : token;
  if (auth) headers.Authorization = `Bearer ${auth}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = new URLSearchParams(form);
  }
  const response = await fetch(path, { method, headers, body, cache: "no-store" });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (response.status === 401 && auth) await markExpired();
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}

// What this server's sync accepts beyond records (visits, a record's turf): read once from
// its OpenAPI schema when online, so that a server without them never sees (and refuses)
// fields it does not know.
export async function features({ refresh = false } = {}) {
  let known = await kvGet("features");
  if ((!known || refresh) && navigator.onLine) {
    try {
      const schema = await api("/openapi.json", { token: null });
      const schemas = (schema.components && schema.components.schemas) || {};
      const props = (name) => (schemas[name] && schemas[name].properties) || {};
      known = {
        visits: "visits" in props("BatchIn"),
        turf: "turf" in props("ContactIn"),
        checked_at: new Date().toISOString(),
      };
      await kvSet("features", known);
    } catch {
      // offline or unreachable: ask again next time
    }
  }
  return known || { visits: false, turf: false };
}

function entry(body, extra = {}) {
  return {
    client_uuid: body.client_uuid,
    user_id: current.user.id,
    created_at: new Date().toISOString(),
    state: "pending",
    body,
    ...extra,
  };
}

// One tap at a door: its contact record and its address visit, queued together.
export async function queueDoor({ turf, door, outcome, topics = [], newMember = false }) {
  const now = new Date().toISOString();
  const record = {
    client_uuid: crypto.randomUUID(),
    kind: "door",
    outcome,
    topics,
    new_member: newMember,
    district_code: turf.district_code,
    occurred_at: now,
  };
  const visit = {
    client_uuid: crypto.randomUUID(),
    turf: turf.code,
    address_id: door.address_id,
    status: VISIT_STATUS[outcome],
    occurred_at: now,
  };
  const rows = [
    ["outbox", entry(record, { turf: turf.code, visit_uuid: visit.client_uuid })],
    ["visits", entry(visit, { record_uuid: record.client_uuid })],
  ];
  await putAll(rows);
  await setLast({
    record_uuid: record.client_uuid,
    visit_uuid: visit.client_uuid,
    turf: turf.code,
    address_id: door.address_id,
    label: outcome,
  });
  return { record, visit };
}

export async function queueRecords(records, label) {
  const full = records.map((r) => ({
    client_uuid: crypto.randomUUID(),
    occurred_at: new Date().toISOString(),
    topics: [],
    new_member: false,
    ...r,
  }));
  await putAll(full.map((r) => ["outbox", entry(r)]));
  if (full.length === 1) await setLast({ record_uuid: full[0].client_uuid, label });
  return full;
}

async function setLast(value) {
  await userSet("last", { ...value, at: new Date().toISOString() });
}

// Undo: still queued, it is simply removed; synced, it is withdrawn on the server (within
// the correction window, which the server enforces).
export async function undoLast() {
  const last = await userGet("last");
  if (!last) return "Inget att ångra.";
  const unmark = async () => {
    if (!last.turf) return;
    const marks = (await userGet(`marks:${last.turf}`)) || {};
    delete marks[last.address_id];
    await userSet(`marks:${last.turf}`, marks);
  };
  const queued = await get("outbox", last.record_uuid);
  if (queued && queued.user_id === current.user.id) {
    const keys = [["outbox", last.record_uuid]];
    if (last.visit_uuid) keys.push(["visits", last.visit_uuid]);
    await removeAll(keys);
    await userSet("last", null);
    await unmark();
    return "Ångrat: borttaget ur kön.";
  }
  const synced = await get("synced", last.record_uuid);
  if (!synced) return "Inget att ångra.";
  await api(`/contacts/${synced.id}/withdraw`, { method: "POST" });
  // The door's visit goes too while it is still on the phone; once sent, it stays (it is
  // only a neutral "someone knocked").
  if (last.visit_uuid) await removeAll([["visits", last.visit_uuid]]);
  await userSet("last", null);
  await unmark();
  return "Ångrat: återkallat på servern.";
}

export async function queued() {
  if (!current) return { records: [], visits: [] };
  const [records, visits] = await Promise.all([
    byUser("outbox", current.user.id),
    byUser("visits", current.user.id),
  ]);
  return { records, visits };
}

export async function discard(store, uuid) {
  const row = await get(store, uuid);
  if (row && row.user_id === current.user.id) await removeAll([[store, uuid]]);
}
