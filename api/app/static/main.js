// The volunteers' app: sign-in, my turfs and their walk lists, logging doors, stall and
// phone sessions, the queue and my numbers. Plain ES modules, no build step.

import { drawMap, mapSlot } from "./map.js";
import { h, localDay, toast } from "./ui.js";
import {
  api,
  discard,
  endSession,
  features,
  HttpError,
  loadSession,
  queued,
  queueDoor,
  queueRecords,
  saveSession,
  session,
  undoLast,
  userGet,
  userSet,
} from "./store.js";
import { onChange, startSync, stats, syncNow } from "./sync.js";

const OUTCOMES = [
  ["conversation", "Samtal"],
  ["not_home", "Ej hemma"],
  ["refused", "Nej tack"],
  ["no_access", "Ingen åtkomst"],
  ["moved", "Flyttat"],
];
const CALL_OUTCOMES = [
  ["conversation", "Samtal"],
  ["not_home", "Inget svar"],
  ["refused", "Nej tack"],
  ["wrong_number", "Fel nummer"],
];
const STATUS_WORDS = { answered: "öppnade", not_home: "ej hemma", no_access: "ingen åtkomst" };
const STALL_FLUSH_MS = 15 * 60 * 1000;
const main = document.getElementById("view");

// ---- the header: the queue is always in sight ----------------------------------------

async function renderHeader() {
  const pending = document.getElementById("pending");
  const net = document.getElementById("net");
  net.textContent = navigator.onLine ? "Uppkopplad" : "Ingen uppkoppling – loggar sparas i telefonen";
  const current = session();
  if (!current) {
    pending.textContent = "0 väntar på att synkas";
    return;
  }
  const { records } = await queued();
  const waiting = records.filter((r) => r.state === "pending").length;
  const refused = records.length - waiting;
  let text = `${waiting} väntar på att synkas`;
  if (refused) text += ` · ${refused} nekade`;
  if (current.expired) text += " · logga in igen för att synka";
  pending.textContent = text;
  pending.dataset.pending = String(waiting);
  pending.dataset.refused = String(refused);
}

function refresh() {
  renderHeader();
  const current = session();
  // A token refused mid-queue: the queue waits, and the volunteer is asked to sign in again.
  if (current && current.expired && currentView !== "signin") return route();
  if (currentView === "queue") showQueue();
}

// ---- routing ---------------------------------------------------------------------------

let currentView = null;

function route() {
  const current = session();
  const tabs = document.getElementById("tabs");
  if (!current || !current.token) {
    tabs.hidden = true;
    currentView = "signin";
    return showSignIn();
  }
  tabs.hidden = false;
  const hash = location.hash.replace(/^#/, "");
  const [view, arg] = hash.split("/");
  currentView = view || "turfs";
  for (const button of tabs.querySelectorAll("button")) {
    button.setAttribute("aria-current", button.dataset.view === currentView ? "page" : "false");
  }
  const views = { turfs: showTurfs, turf: () => showTurf(decodeURIComponent(arg || "")) };
  Object.assign(views, { stall: showStall, phone: showPhone, numbers: showNumbers, queue: showQueue });
  return (views[currentView] || showTurfs)();
}

function go(hash) {
  if (location.hash === `#${hash}`) route();
  else location.hash = hash;
}

function screen(title, ...children) {
  main.replaceChildren(h("h2", { text: title }), ...children);
}

// Each screen takes a ticket when it starts and draws only while it holds the newest one:
// a slow screen (a fetch, IndexedDB on a loaded phone) never paints over the one the user
// has moved on to.
let tickets = 0;

function ticket() {
  const mine = (tickets += 1);
  return () => mine === tickets;
}

// ---- sign-in ---------------------------------------------------------------------------

function showSignIn() {
  ticket();
  const previous = session();
  const email = h("input", {
    id: "email",
    type: "email",
    name: "email",
    autocomplete: "email",
    required: true,
    value: previous && previous.user ? previous.user.email : "",
  });
  const form = h(
    "form",
    { class: "stack", onsubmit: (e) => (e.preventDefault(), askCode(email.value.trim())) },
    h("label", { for: "email", text: "E-postadress" }),
    email,
    h("button", { type: "submit", class: "big primary", text: "Skicka kod" }),
  );
  screen("Logga in", h("p", { text: "Du får en kod med e-post." }), form);
}

async function askCode(email) {
  const live = ticket();
  try {
    await api("/auth/code", { method: "POST", json: { email }, token: null });
  } catch (error) {
    return toast(error instanceof HttpError ? error.message : "Ingen uppkoppling.");
  }
  if (!live()) return;
  const code = h("input", {
    id: "code",
    name: "code",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    required: true,
  });
  const device = h("input", { id: "device", name: "device", value: "Mobilen", required: true });
  const form = h(
    "form",
    {
      class: "stack",
      onsubmit: (e) => (e.preventDefault(), signIn(email, code.value.trim(), device.value.trim())),
    },
    h("label", { for: "code", text: "Koden från mejlet" }),
    code,
    h("label", { for: "device", text: "Den här enhetens namn" }),
    device,
    h("button", { type: "submit", class: "big primary", text: "Logga in" }),
  );
  screen("Logga in", h("p", { text: `Vi har skickat en kod till ${email}.` }), form);
  code.focus();
}

async function signIn(email, code, deviceName) {
  let token;
  try {
    token = await api("/auth/token", {
      method: "POST",
      form: { username: email, password: code, client_id: deviceName },
      token: null,
    });
    const user = await api("/me", { token: token.access_token });
    // Another user's queue stays stored under their id, hidden and unsent, until they are back.
    await saveSession({
      token: token.access_token,
      device_id: token.device_id,
      user: { id: user.id, email: user.email, unit_kind: user.unit_kind, unit_id: user.unit_id },
    });
  } catch (error) {
    return toast(error instanceof HttpError ? error.message : "Ingen uppkoppling.");
  }
  renderHeader();
  await features({ refresh: true });
  prefetch();
  syncNow();
  const link = sessionStorage.getItem("claim");
  if (link) {
    sessionStorage.removeItem("claim");
    return claim(link);
  }
  go("turfs");
}

async function signOut() {
  const current = session();
  try {
    let deviceId = current.device_id;
    if (!deviceId) {
      const devices = await api("/me/devices");
      const live = devices.filter((d) => !d.revoked_at);
      deviceId = live.length ? live.sort((a, b) => (a.last_used_at < b.last_used_at ? 1 : -1))[0].id : null;
    }
    if (deviceId) await api(`/me/devices/${deviceId}`, { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof HttpError && error.status === 401)) {
      return toast("Kunde inte logga ut: ingen uppkoppling. Försök igen.");
    }
  }
  await endSession();
  renderHeader();
  route();
}

// ---- turfs -------------------------------------------------------------------------------

// A message for the next "Mina områden" screen: a refused claim stays in sight, not just
// in a toast.
let notice = null;

// The server's 409 names the holder's förening: "turf X is already taken by F until T UTC".
function takenMessage(message) {
  const m = /^turf (\S+) is already taken by (.+) until (\S+) (\S+) UTC$/.exec(message);
  if (!m) return `Kunde inte ta området: ${message}`;
  const until = new Date(`${m[3]}T${m[4]}:00Z`).toLocaleString("sv-SE", { dateStyle: "short", timeStyle: "short" });
  return `Område ${m[1]} är redan utlånat till ${m[2]} till ${until}.`;
}

async function claim(linkCode) {
  history.replaceState(null, "", "/app/");
  try {
    const turf = await api(`/turfs/claim/${encodeURIComponent(linkCode)}`, { method: "POST" });
    toast("Området är ditt.");
    return go(`turf/${encodeURIComponent(turf.code)}`);
  } catch (error) {
    if (!(error instanceof HttpError)) {
      notice = "Ingen uppkoppling: öppna QR-länken igen när du har nät.";
      return go("turfs");
    }
    if (error.status === 409) {
      // Scanned again by its holder (or a turf lent to their förening): simply open it.
      const mine = await api("/me/turfs").catch(() => []);
      const held = mine.find((t) => t.link_code === linkCode);
      if (held) return go(`turf/${encodeURIComponent(held.code)}`);
      notice = takenMessage(error.message);
    } else {
      notice = `Kunde inte ta området: ${error.message}`;
    }
    go("turfs");
  }
}

async function showTurfs() {
  const live = ticket();
  const refused = notice;
  notice = null;
  screen("Mina områden", h("p", { text: "Hämtar …" }));
  let turfs = await userGet("turfs");
  let note = null;
  try {
    turfs = await api("/me/turfs");
    await userSet("turfs", turfs);
  } catch (error) {
    if (error instanceof HttpError && error.status === 404) {
      note = "Servern visar ännu inte dina områden; öppna ett område från dess QR-kod.";
    } else if (!(error instanceof HttpError)) note = "Ingen uppkoppling – visar sparade områden.";
  }
  const items = (turfs || []).map((turf) =>
    h(
      "li",
      {},
      h(
        "a",
        { class: "card", href: `#turf/${encodeURIComponent(turf.code)}`, "data-turf": turf.code },
        h("strong", { text: `Område ${turf.code}` }),
        h("span", { text: `${turf.address_count} adresser, ${turf.households} hushåll` }),
        turf.walk_length_m ? h("span", { text: `${Math.round(turf.walk_length_m)} m att gå` }) : null,
      ),
    ),
  );
  const open = h("input", { id: "turfcode", name: "turfcode", autocomplete: "off" });
  if (!live()) return;
  main.replaceChildren(
    h("h2", { text: "Mina områden" }),
    refused ? h("p", { class: "note", id: "claim-refused", role: "alert", text: refused }) : null,
    note ? h("p", { class: "note", text: note }) : null,
    items.length ? h("ul", { class: "cards" }, items) : h("p", { text: "Inga områden utlånade till dig." }),
    h(
      "form",
      { class: "stack", onsubmit: (e) => (e.preventDefault(), go(`turf/${encodeURIComponent(open.value.trim())}`)) },
      h("label", { for: "turfcode", text: "Öppna område med kod" }),
      open,
      h("button", { type: "submit", class: "big", text: "Öppna" }),
    ),
    h("button", { type: "button", class: "big quiet", onclick: signOut, text: "Logga ut" }),
  );
}

async function loadDoors(code) {
  const key = `doors:${code}`;
  try {
    const turf = await api(`/app/api/turfs/${encodeURIComponent(code)}/doors`);
    await userSet(key, turf);
    return turf;
  } catch (error) {
    const saved = await userGet(key);
    if (saved) return saved;
    throw error;
  }
}

// What this phone logged at each address today, queued or synced: the walk list is right
// offline too.
async function localVisits(code) {
  const marks = (await userGet(`marks:${code}`)) || {};
  const today = localDay();
  return Object.fromEntries(Object.entries(marks).filter(([, m]) => m.day === today));
}

let selected = null;

async function showTurf(code) {
  const live = ticket();
  screen(`Område ${code}`, h("p", { text: "Hämtar …" }));
  let turf;
  try {
    turf = await loadDoors(code);
  } catch (error) {
    if (!live()) return;
    return screen(`Område ${code}`, h("p", { class: "note", text: error.message || "Kunde inte hämta området." }));
  }
  const marks = await localVisits(code);
  if (!live()) return;
  const today = localDay();
  const visitedToday = (door) =>
    marks[door.address_id] || (door.last_day === today ? { status: door.last_status } : null);
  const next = turf.doors.find((door) => !visitedToday(door));
  const current = turf.doors.find((d) => d.address_id === selected) || next || turf.doors[0];
  const done = turf.doors.filter(visitedToday).length;
  const label = (door) => `${door.street} ${door.number}${door.entrance ? ` ${door.entrance}` : ""}`;
  const list = turf.doors.map((door) => {
    const mark = visitedToday(door);
    const last = mark
      ? `idag: ${STATUS_WORDS[mark.status] || mark.status}`
      : door.last_day
        ? `${door.last_day}: ${STATUS_WORDS[door.last_status] || door.last_status}`
        : "ej knackad";
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: `door${door === next ? " next" : ""}${mark ? " done" : ""}${door === current ? " current" : ""}`,
          "aria-pressed": door === current ? "true" : "false",
          onclick: () => {
            selected = door.address_id;
            showTurf(code);
          },
        },
        h("span", { class: "pos", text: String(door.position) }),
        h("span", { class: "addr", text: label(door) }),
        h("span", { class: "meta", text: `${door.households} hh · ${last}` }),
      ),
    );
  });
  const log = current ? doorPanel(turf, current, label(current)) : h("p", { text: "Området har inga adresser." });
  main.replaceChildren(
    h("h2", { text: `Område ${turf.code}` }),
    h("p", { class: "meta", text: `${done} av ${turf.doors.length} dörrar idag · distrikt ${turf.district_code}` }),
    mapSlot(turf.code),
    log,
    h("h3", { text: "Gånglista" }),
    h("ol", { class: "walk", id: "walk" }, list),
  );
  // A tap on a door on the map picks it, as in the list.
  const pick = (door) => {
    selected = door.address_id;
    showTurf(code);
  };
  await drawMap({ turf, next, isDone: (door) => Boolean(visitedToday(door)), onPick: pick });
}

function doorPanel(turf, door, label) {
  const panel = h("section", { class: "panel", "aria-label": "Logga dörren" });
  const buttons = OUTCOMES.map(([outcome, text]) =>
    h("button", {
      type: "button",
      class: `big outcome ${outcome}`,
      "data-outcome": outcome,
      text,
      onclick: () => (outcome === "conversation" ? conversationForm(panel, turf, door) : logDoor(turf, door, outcome)),
    }),
  );
  panel.append(h("h3", { text: label }), h("div", { class: "grid" }, buttons), undoButton());
  return panel;
}

async function topicsList() {
  try {
    const topics = await api("/topics");
    await userSet("topics", topics);
    return topics.filter((t) => t.active);
  } catch {
    return ((await userGet("topics")) || []).filter((t) => t.active);
  }
}

async function conversationForm(panel, turf, door) {
  const chosen = new Set();
  let member = false;
  const topics = await topicsList();
  const toggle = (button, on) => button.setAttribute("aria-pressed", on ? "true" : "false");
  const topicButtons = topics.map((topic) => {
    const b = h("button", { type: "button", class: "toggle", "aria-pressed": "false", "data-topic": topic.code, text: topic.label });
    b.addEventListener("click", () => {
      if (chosen.has(topic.code)) chosen.delete(topic.code);
      else chosen.add(topic.code);
      toggle(b, chosen.has(topic.code));
    });
    return b;
  });
  const memberButton = h("button", { type: "button", class: "toggle", "aria-pressed": "false", id: "new-member", text: "Ny medlem" });
  memberButton.addEventListener("click", () => toggle(memberButton, (member = !member)));
  panel.replaceChildren(
    h("h3", { text: "Samtal – ämnen" }),
    h("div", { class: "grid" }, topicButtons, memberButton),
    h("div", { class: "grid" },
      h("button", {
        type: "button",
        class: "big primary",
        id: "save-conversation",
        text: "Spara samtal",
        onclick: () => logDoor(turf, door, "conversation", [...chosen], member),
      }),
      h("button", { type: "button", class: "big quiet", text: "Avbryt", onclick: () => showTurf(turf.code) }),
    ),
  );
}

async function logDoor(turf, door, outcome, topics = [], newMember = false) {
  await queueDoor({ turf, door, outcome, topics, newMember });
  const marks = (await userGet(`marks:${turf.code}`)) || {};
  marks[door.address_id] = { status: { conversation: "answered", refused: "answered", moved: "answered" }[outcome] || outcome, day: localDay() };
  await userSet(`marks:${turf.code}`, marks);
  selected = null;
  renderHeader();
  syncNow();
  await showTurf(turf.code);
  toast(`Sparat: ${door.street} ${door.number}`);
}

function undoButton() {
  return h("button", {
    type: "button",
    class: "big quiet",
    id: "undo",
    text: "Ångra senaste",
    onclick: async () => {
      try {
        toast(await undoLast());
      } catch (error) {
        toast(error instanceof HttpError ? `Kunde inte ångra: ${error.message}` : "Ingen uppkoppling – försök igen.");
      }
      renderHeader();
      route();
    },
  });
}

// ---- district choice for stalls and calls ----------------------------------------------

async function districtPicker(id, chosen) {
  let districts = await userGet("districts");
  try {
    const page = await api("/districts?limit=500");
    districts = page.items.map((d) => ({ code: d.code, name: d.name }));
    await userSet("districts", districts);
  } catch {
    // offline: the saved list
  }
  const turfs = (await userGet("turfs")) || [];
  const codes = new Map((districts || []).map((d) => [d.code, d.name]));
  for (const t of turfs) if (!codes.has(t.district_code)) codes.set(t.district_code, t.district_code);
  const select = h("select", { id, name: id });
  for (const [code, name] of codes) {
    select.append(h("option", { value: code, selected: code === chosen, text: `${name} (${code})` }));
  }
  return select;
}

// ---- stall mode: a counter, one record per session (or per 15 minutes) --------------------

async function flushStall(stall, { end }) {
  const conversations = stall.conversations;
  if (conversations > 0) {
    const topics = Object.entries(stall.topics).filter(([, n]) => n > 0).map(([code]) => code).slice(0, 10);
    const members = Math.min(stall.members, conversations);
    // A record's new_member is yes or no: each new member is a record of one, so that
    // the new members count right; the rest of the session is one record with its count.
    const records = [];
    if (conversations - members > 0) {
      records.push({ kind: "stall", outcome: "conversation", count: conversations - members, topics, district_code: stall.district_code });
    }
    for (let i = 0; i < members; i += 1) {
      records.push({ kind: "stall", outcome: "conversation", count: 1, new_member: true, district_code: stall.district_code });
    }
    await queueRecords(records, "stall");
  }
  const next = end ? null : { ...stall, conversations: 0, members: 0, topics: {}, segment_at: Date.now() };
  await userSet("stall", next);
  renderHeader();
  syncNow();
  return next;
}

async function checkStallTimer() {
  if (!session() || !session().token) return;
  const stall = await userGet("stall");
  if (stall && Date.now() - stall.segment_at >= STALL_FLUSH_MS) {
    await flushStall(stall, { end: false });
    if (currentView === "stall") showStall();
  }
}

async function showStall() {
  const live = ticket();
  const stall = await userGet("stall");
  if (!stall) {
    const picker = await districtPicker("stall-district");
    if (!live()) return;
    return screen(
      "Torg och gata",
      h("p", { text: "Räkna samtalen vid ett bord eller på gatan. De skickas som en post när du avslutar (och var 15:e minut)." }),
      h("label", { for: "stall-district", text: "Distrikt" }),
      picker,
      h("button", {
        type: "button",
        class: "big primary",
        id: "stall-start",
        text: "Starta torgpass",
        onclick: async () => {
          await userSet("stall", { district_code: picker.value, conversations: 0, members: 0, topics: {}, segment_at: Date.now() });
          showStall();
        },
      }),
    );
  }
  const topics = await topicsList();
  if (!live()) return;
  const bump = (change) => async () => {
    const fresh = await userGet("stall");
    change(fresh);
    await userSet("stall", fresh);
    showStall();
  };
  screen(
    "Torgpass",
    h("p", { class: "meta", text: `Distrikt ${stall.district_code}` }),
    h("p", { class: "counter", id: "stall-count", text: `${stall.conversations} samtal · ${stall.members} nya medlemmar` }),
    h("div", { class: "grid" },
      h("button", { type: "button", class: "big primary", id: "stall-plus", text: "+1 samtal", onclick: bump((x) => (x.conversations += 1)) }),
      h("button", {
        type: "button",
        class: "big",
        id: "stall-member",
        text: "+1 ny medlem",
        onclick: bump((x) => {
          x.members += 1;
          x.conversations = Math.max(x.conversations, x.members);
        }),
      }),
    ),
    h("h3", { text: "Ämnen" }),
    h("div", { class: "grid" },
      topics.map((t) =>
        h("button", {
          type: "button",
          class: "toggle",
          text: `${t.label} (${stall.topics[t.code] || 0})`,
          onclick: bump((x) => (x.topics[t.code] = (x.topics[t.code] || 0) + 1)),
        }),
      ),
    ),
    h("button", {
      type: "button",
      class: "big",
      id: "stall-end",
      text: "Avsluta torgpass",
      onclick: async () => {
        await flushStall(await userGet("stall"), { end: true });
        toast("Torgpasset är sparat.");
        showStall();
      },
    }),
    undoButton(),
  );
}

// ---- phone mode: one record per call ---------------------------------------------------

async function showPhone() {
  const live = ticket();
  const saved = (await userGet("phone")) || {};
  const picker = await districtPicker("phone-district", saved.district_code);
  if (!live()) return;
  picker.addEventListener("change", () => userSet("phone", { district_code: picker.value }));
  const panel = h("section", { class: "panel", "aria-label": "Logga samtalet" });
  const log = async (outcome, topics = [], newMember = false) => {
    await userSet("phone", { district_code: picker.value });
    await queueRecords([{ kind: "phone", outcome, topics, new_member: newMember, district_code: picker.value }], outcome);
    renderHeader();
    syncNow();
    toast("Samtalet är sparat.");
    showPhone();
  };
  const buttons = CALL_OUTCOMES.map(([outcome, text]) =>
    h("button", {
      type: "button",
      class: `big outcome ${outcome}`,
      "data-outcome": outcome,
      text,
      onclick: async () => {
        if (outcome !== "conversation") return log(outcome);
        const topics = await topicsList();
        const chosen = new Set();
        let member = false;
        panel.replaceChildren(
          h("div", { class: "grid" },
            topics.map((t) => {
              const b = h("button", { type: "button", class: "toggle", "aria-pressed": "false", text: t.label });
              b.addEventListener("click", () => {
                if (chosen.has(t.code)) chosen.delete(t.code);
                else chosen.add(t.code);
                b.setAttribute("aria-pressed", String(chosen.has(t.code)));
              });
              return b;
            }),
            (() => {
              const b = h("button", { type: "button", class: "toggle", "aria-pressed": "false", text: "Ny medlem" });
              b.addEventListener("click", () => b.setAttribute("aria-pressed", String((member = !member))));
              return b;
            })(),
          ),
          h("button", { type: "button", class: "big primary", text: "Spara samtal", onclick: () => log("conversation", [...chosen], member) }),
        );
      },
    }),
  );
  panel.append(h("div", { class: "grid" }, buttons), undoButton());
  screen("Telefonpass", h("label", { for: "phone-district", text: "Distrikt" }), picker, panel);
}

// ---- the queue ---------------------------------------------------------------------------

async function showQueue() {
  const live = ticket();
  const { records, visits } = await queued();
  const feats = await features();
  if (!live()) return;
  const rows = records.map((r) =>
    h(
      "li",
      { class: r.state === "rejected" ? "rejected" : "waiting", "data-uuid": r.client_uuid },
      h("strong", { text: `${r.body.kind} · ${r.body.outcome}${r.body.count ? ` · ${r.body.count}` : ""}` }),
      h("span", { text: new Date(r.created_at).toLocaleString("sv-SE") }),
      r.state === "rejected"
        ? h("span", { class: "error", text: `Nekad (${r.status}): ${r.message}` })
        : h("span", { text: "Väntar" }),
      r.state === "rejected"
        ? h("button", {
            type: "button",
            class: "quiet",
            text: "Ta bort",
            onclick: async () => {
              await discard("outbox", r.client_uuid);
              refresh();
            },
          })
        : null,
    ),
  );
  const waitingVisits = visits.filter((v) => v.state === "pending").length;
  screen(
    "Kö",
    h("p", { text: stats.lastError || (stats.lastSyncAt ? `Senast synkat ${stats.lastSyncAt.toLocaleTimeString("sv-SE")}` : "") }),
    h("p", { text: `${stats.synced} synkade sedan appen öppnades.` }),
    !feats.visits && waitingVisits
      ? h("p", { class: "note", text: `${waitingVisits} dörrbesök sparas i telefonen tills servern tar emot dem.` })
      : null,
    h("button", { type: "button", class: "big primary", id: "sync-now", text: "Synka nu", onclick: () => syncNow() }),
    rows.length ? h("ul", { class: "queue", id: "queue" }, rows) : h("p", { text: "Kön är tom." }),
  );
}

// ---- my numbers ------------------------------------------------------------------------

async function showNumbers() {
  const live = ticket();
  screen("Mina siffror", h("p", { text: "Hämtar …" }));
  const today = localDay();
  const mine = { today: { doors: 0, conversations: 0 }, all: { doors: 0, conversations: 0 } };
  const figures = [];
  try {
    for (let offset = 0, total = 1; offset < total && offset < 5000; offset += 500) {
      const page = await api(`/contacts?mine=true&limit=500&offset=${offset}`);
      total = page.total;
      for (const c of page.items) {
        const day = localDay(new Date(c.occurred_at));
        for (const bucket of day === today ? [mine.today, mine.all] : [mine.all]) {
          if (c.kind === "door") bucket.doors += 1;
          bucket.conversations += c.conversations;
        }
      }
    }
    figures.push(
      h("h3", { text: "Jag" }),
      table([
        ["Idag", mine.today.doors, mine.today.conversations],
        ["Kampanjen", mine.all.doors, mine.all.conversations],
      ]),
    );
    const user = session().user;
    const campaigns = await api("/campaigns");
    if (user.unit_kind === "forening" && campaigns.length) {
      const campaign = campaigns[0];
      const progress = await api(`/campaigns/${campaign.id}/progress/forening/${user.unit_id}`);
      const metric = (name) => (progress.metrics.find((m) => m.metric === name) || { actual: 0 }).actual;
      const day = progress.daily.find((d) => d.day === progress.today) || { doors: 0, conversations: 0 };
      figures.push(
        h("h3", { text: progress.unit_name }),
        table([
          ["Idag", day.doors, day.conversations],
          [campaign.name, metric("doors"), metric("conversations")],
        ]),
      );
    }
  } catch (error) {
    figures.push(h("p", { class: "note", text: error instanceof HttpError ? error.message : "Ingen uppkoppling – siffrorna kräver nät." }));
  }
  const { records } = await queued();
  if (!live()) return;
  screen("Mina siffror", ...figures, h("p", { class: "meta", text: `${records.length} loggar i kön räknas när de är synkade.` }));
}

function table(rows) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "" }), h("th", { scope: "col", text: "Dörrar" }), h("th", { scope: "col", text: "Samtal" }))),
    h("tbody", {}, rows.map(([label, doors, talks]) => h("tr", {}, h("th", { scope: "row", text: label }), h("td", { text: String(doors) }), h("td", { text: String(talks) })))),
  );
}

// What logging needs offline, fetched whenever the app is online and signed in.
async function prefetch() {
  const current = session();
  if (!current || !current.token || !navigator.onLine) return;
  await Promise.allSettled([topicsList(), features()]);
}

// ---- start ----------------------------------------------------------------------------

async function start() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
  }
  await loadSession();
  const claimed = location.pathname.match(/^\/app\/t\/([^/]+)$/);
  document.getElementById("tabs").addEventListener("click", (event) => {
    const view = event.target.closest("button") && event.target.closest("button").dataset.view;
    if (view) go(view);
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => (refresh(), prefetch()));
  window.addEventListener("offline", refresh);
  onChange(refresh);
  renderHeader();
  startSync();
  prefetch();
  setInterval(checkStallTimer, 30 * 1000);
  checkStallTimer();
  if (claimed) {
    const link = decodeURIComponent(claimed[1]);
    const current = session();
    if (current && current.token) return claim(link);
    sessionStorage.setItem("claim", link);
  }
  route();
}

start();
