// Sending the outbox: one POST /contacts/batch at a time, per record what the server said.
// created/duplicate leave the queue; conflict/invalid/forbidden stay, visibly, with the
// server's message, and never hold back the others; 401 waits for a new sign-in; network
// errors and 5xx retry with exponential backoff.

import { putAll, removeAll } from "./db.js";
import { api, features, HttpError, queued, session } from "./store.js";

const MAX_BATCH = 500;
const BASE_DELAY_MS = 2000;
const MAX_DELAY_MS = 5 * 60 * 1000;
const PERIOD_MS = 60 * 1000;

let running = null;
let again = false;
let delay = 0;
let retryTimer = null;
const listeners = new Set();
export const stats = { synced: 0, lastError: null, lastSyncAt: null };

export function onChange(fn) {
  listeners.add(fn);
}

function changed() {
  for (const fn of listeners) fn();
}

export function startSync() {
  window.addEventListener("online", () => {
    delay = 0;
    syncNow();
  });
  window.addEventListener("offline", changed);
  setInterval(() => syncNow(), PERIOD_MS);
  syncNow();
}

// A call while an attempt runs asks for one more after it: that attempt may have read the
// queue (or the session: another user has just signed in) before the change it is called for.
export function syncNow() {
  if (running) {
    again = true;
    return running;
  }
  again = false;
  running = attempt().finally(() => {
    running = null;
    changed();
    if (again) syncNow();
  });
  return running;
}

function scheduleRetry() {
  delay = delay ? Math.min(delay * 2, MAX_DELAY_MS) : BASE_DELAY_MS;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => syncNow(), delay);
}

function message(errors, fallback) {
  if (errors && errors.length) return errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  return fallback;
}

async function attempt() {
  const current = session();
  if (!current || !current.token || !navigator.onLine) return;
  const feats = await features();
  const { records, visits } = await queued();
  const pendingRecords = records.filter((r) => r.state === "pending");
  const pendingVisits = feats.visits ? visits.filter((v) => v.state === "pending") : [];
  if (!pendingRecords.length && !pendingVisits.length) return;
  try {
    for (let i = 0; i < Math.max(pendingRecords.length, pendingVisits.length); i += MAX_BATCH) {
      const chunk = pendingRecords.slice(i, i + MAX_BATCH);
      const vchunk = pendingVisits.slice(i, i + MAX_BATCH);
      const body = {
        records: chunk.map((r) => (feats.turf && r.turf ? { ...r.body, turf: r.turf } : r.body)),
      };
      if (feats.visits) body.visits = vchunk.map((v) => v.body);
      const answer = await api("/contacts/batch", { method: "POST", json: body });
      await apply(chunk, answer.results || [], true);
      if (feats.visits) await apply(vchunk, answer.visit_results || [], false);
    }
    delay = 0;
    stats.lastError = null;
    stats.lastSyncAt = new Date();
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) {
      stats.lastError = "Logga in igen för att synka kön.";
      return; // the queue waits for a new sign-in
    }
    stats.lastError =
      error instanceof HttpError ? `Servern svarade ${error.status}: ${error.message}` : "Ingen kontakt med servern.";
    scheduleRetry();
  }
}

async function apply(chunk, results, isRecord) {
  const removals = [];
  const updates = [];
  for (const result of results) {
    const row = chunk[result.index];
    if (!row) continue;
    if (result.status === "created" || result.status === "duplicate") {
      removals.push([isRecord ? "outbox" : "visits", row.client_uuid]);
      if (isRecord) {
        stats.synced += 1;
        updates.push([
          "synced",
          {
            client_uuid: row.client_uuid,
            user_id: row.user_id,
            id: result.id,
            created_at: new Date().toISOString(),
          },
        ]);
      }
    } else {
      updates.push([
        isRecord ? "outbox" : "visits",
        {
          ...row,
          state: "rejected",
          status: result.status,
          errors: result.errors || [],
          message: message(result.errors, result.status),
        },
      ]);
    }
  }
  if (updates.length) await putAll(updates);
  if (removals.length) await removeAll(removals);
}
