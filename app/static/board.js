// The ward board: renders GET /v1/board (the order is the service's, app/urgency.py), the open alerts, the live
// alert stream (/v1/ws/alerts, resumed with ?since= after a drop) and the patient view (#/patients/{id}).
// No build step, no library: plain DOM and SVG.

const KEY = "wardtwin.key";      // the API key: this browser session only
const NURSE = "wardtwin.nurse";  // the nurse's name or badge: asked once per browser session
const OPEN = ["escalated", "raised", "delivered", "acknowledged"];
const UNACKED = ["escalated", "raised", "delivered"];
const KIND = {news2: "NEWS2", criteria: "Criterion met", twin: "Twin risk", obs_due: "Observations due"};
const LEVEL = {
  high: {shape: "▲▲", label: "High", words: "emergency response"},
  medium: {shape: "▲", label: "Medium", words: "urgent review"},
  "low-medium": {shape: "◆", label: "Low–medium", words: "urgent ward-based review"},
  low: {shape: "●", label: "Low", words: "routine / ward-based"},
};
const VITALS = [  // name, label, unit, NEWS2 zones [upper bound (exclusive), points] (models/news2.py, RCP 2017)
  ["hr", "HR", "/min", "Heart rate", [[40.5, 3], [50.5, 1], [90.5, 0], [110.5, 1], [130.5, 2], [Infinity, 3]]],
  ["rr", "RR", "/min", "Respiration rate", [[8.5, 3], [11.5, 1], [20.5, 0], [24.5, 2], [Infinity, 3]]],
  ["spo2", "SpO₂", "%", "SpO₂ (scale 1)", [[91.5, 3], [93.5, 2], [95.5, 1], [Infinity, 0]]],
  ["sbp", "SBP", "mmHg", "Systolic BP", [[90.5, 3], [100.5, 2], [110.5, 1], [219.5, 0], [Infinity, 3]]],
  ["temp", "Temp", "°C", "Temperature", [[35.05, 3], [36.05, 1], [38.05, 0], [39.05, 1], [Infinity, 2]]],
];
const RANGE = {hr: [40, 140], rr: [6, 32], spo2: [84, 100], sbp: [80, 180], temp: [35, 40]};

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const state = {board: null, fetchedAt: 0, alerts: [], seen: new Set(), firstAlerts: true, lastSeq: 0, ws: null,
               offline: false, offlineSince: null, retry: 0, stopped: false, pending: null, dialog: null};

// -- key and nurse ----------------------------------------------------------------------------------------------
function takeKeyFromUrl() {  // "?key=" is taken once and removed, so it stays out of history and screenshots
  const url = new URL(location.href);
  const given = url.searchParams.get("key");
  if (given) {
    sessionStorage.setItem(KEY, given.trim());
    url.searchParams.delete("key");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}
const apiKey = () => sessionStorage.getItem(KEY);
class KeyRefused extends Error {}

function askForKey(message) {  // shown once; nothing retries until a key is given (no re-prompt loop)
  state.stopped = true;
  if (state.ws) state.ws.close();
  $("#key-message").textContent = message;
  $("#conn").textContent = "paused: no valid key";
  $("#conn").classList.add("down");
  $("#key-form").hidden = false;
  $("#key-input").focus();
}
$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("#key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  $("#key-input").value = "";
  $("#key-form").hidden = true;
  start();
});
function refused(status, where) {
  console.warn(`key refused (${status}) by ${where}`);
  sessionStorage.removeItem(KEY);
  askForKey(status === 403
    ? "This key may not read the ward board (it needs the clinician role). Enter a clinician key."
    : "That key was refused (401: unknown, revoked or mistyped). Enter a valid clinician key — a demo restart issues new ones.");
  return new KeyRefused(String(status));
}

function nurse() { return sessionStorage.getItem(NURSE) || ""; }
function showNurse() { $("#nurse-name").textContent = nurse() ? `Nurse: ${nurse()}` : "No nurse named yet"; }
$("#nurse-change").addEventListener("click", () => { sessionStorage.removeItem(NURSE); showNurse(); });

// -- HTTP -------------------------------------------------------------------------------------------------------
async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, {...options, headers: {...(options.headers || {}), Authorization: `Bearer ${apiKey()}`}});
  } catch (err) {
    setOffline(true);
    throw err;
  }
  if (res.status === 401 || res.status === 403) throw refused(res.status, path);
  if (!res.ok) {
    let detail = `${res.status}`;
    try { const body = await res.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch { /* not JSON */ }
    throw new Error(detail);
  }
  return res.json();
}

// -- time -------------------------------------------------------------------------------------------------------
function serverNow() {  // the service clock (simulated in the demo), advanced locally between reads
  const b = state.board;
  if (!b) return Date.now();
  return Date.parse(b.now) + (Date.now() - state.fetchedAt) * b.clock_speed;
}
function tz() { return state.board?.time_zone || undefined; }
function fmtTime(iso, withDay = false) {
  if (!iso) return "—";
  const opts = {timeZone: tz(), hour: "2-digit", minute: "2-digit", hourCycle: "h23"};
  if (withDay) Object.assign(opts, {weekday: "short", day: "numeric", month: "short"});
  return new Intl.DateTimeFormat("en-GB", opts).format(new Date(iso));
}
function fmtAge(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}
const ageOf = (iso) => (serverNow() - Date.parse(iso)) / 1000;
const pct = (r) => r == null ? "—" : `${(100 * r).toFixed(r < 0.1 ? 1 : 0)} %`;

function showClock() {
  const b = state.board;
  if (!b) return;
  const now = new Date(serverNow()).toISOString();
  const sim = b.clock_speed !== 1
    ? ` <span class="sim">Simulated clock, runs at ${b.clock_speed}× real time (demo)</span>` : "";
  $("#clock").innerHTML = `Ward time <b>${fmtTime(now, true)}</b> (${esc(b.time_zone)})${sim}`;
}

// -- offline ----------------------------------------------------------------------------------------------------
function setOffline(off) {
  $("#conn").textContent = off ? "offline — reconnecting…" : "live";
  $("#conn").classList.toggle("down", off);
  if (off === state.offline) return;
  state.offline = off;
  state.offlineSince = off ? Date.now() : null;
  document.body.classList.toggle("offline", off);
  $("#offline").hidden = !off;
  $("#conn").textContent = off ? "offline — reconnecting…" : "live";
  $("#conn").classList.toggle("down", off);
  document.querySelectorAll("main button, main input, main select").forEach((el) => { el.disabled = off; });
}

// -- board ------------------------------------------------------------------------------------------------------
function spark(bed, [name, label, unit]) {
  const t = bed.vitals.t, ys = bed.vitals[name];
  const pts = t.map((x, i) => [x, ys[i]]).filter(([, y]) => y != null);
  const last = pts.length ? pts[pts.length - 1][1] : null;
  let path = "";
  if (pts.length) {
    const t0 = t[0], t1 = Math.max(t[t.length - 1], t0 + 1);
    const lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
    const span = hi - lo || 1;
    let prev = null;
    for (const [i, y] of ys.entries()) {
      if (y == null) { prev = null; continue; }
      const x = (100 * (t[i] - t0)) / (t1 - t0), v = 20 - (18 * (y - lo)) / span;
      path += `${prev === null ? "M" : "L"}${x.toFixed(1)},${v.toFixed(1)}`;
      prev = i;
    }
  }
  const value = last == null ? "—" : name === "temp" ? last.toFixed(1) : Math.round(last);
  return `<div class="spark" data-vital="${name}"><span>${label}</span> <b>${value}</b>
    <span class="visually-hidden"> ${unit}</span><svg viewBox="0 0 100 22" preserveAspectRatio="none" aria-hidden="true">
    <path d="${path}" vector-effect="non-scaling-stroke"/></svg></div>`;
}

function bedStale(bed) {
  if (bed.stale) return true;
  return bed.last_data_at == null || ageOf(bed.last_data_at) > state.board.stale_after_s;
}

function bedHtml(bed) {
  const lvl = LEVEL[bed.level] || LEVEL.low;
  const stale = bedStale(bed);
  const n2 = bed.news2, charted = bed.charted_news2;
  const shown = charted ?? n2;  // a charted set's NEWS2 (RCP 2017) before the monitor window's
  const trend = bed.risk_change_1h == null ? "" : (() => {
    const pts = 100 * bed.risk_change_1h;
    const arrow = pts > 0.5 ? "▲" : pts < -0.5 ? "▼" : "▶";
    const words = pts > 0.5 ? "rising" : pts < -0.5 ? "falling" : "steady";
    return `<span class="trend" title="change over the last hour">${arrow} ${pts >= 0 ? "+" : "−"}${Math.abs(pts).toFixed(1)} pts in 1 h (${words})</span>`;
  })();
  const silent = bed.last_data_at ? ageOf(bed.last_data_at) : null;
  const since = stale
    ? `<span class="stale-note">◌ STALE — no data for <span class="js-age" data-at="${esc(bed.last_data_at)}">${fmtAge(silent)}</span></span> (expected within ${fmtAge(state.board.stale_after_s)}); scores are not current`
    : `last data <span class="js-age" data-at="${esc(bed.last_data_at)}">${fmtAge(silent)}</span> ago`;
  const chips = bed.alerts.map((a) => `<li class="chip ${esc(a.state)}">${a.state === "escalated" ? "⚠ " : ""}${esc(KIND[a.kind] || a.kind)}: ${esc(a.state)}</li>`).join("");
  return `<li class="bed lvl-${esc(bed.level)}${stale ? " is-stale" : ""}" data-patient-id="${esc(bed.patient_id)}"
      data-news2="${shown ? shown.total : ""}" data-risk="${bed.risk ?? ""}" data-stale="${stale}" data-level="${esc(bed.level)}"
      data-rank="${bed.rank}">
    <div class="bed-head"><span class="rank">#${bed.rank}</span>
      <h3><a href="#/patients/${encodeURIComponent(bed.patient_id)}">${esc(bed.patient_id)}</a></h3>
      <span class="badge"><span aria-hidden="true">${lvl.shape}</span> ${lvl.label}</span></div>
    <div class="scores">
      <span class="score">NEWS2 <b>${shown ? shown.total : "—"}</b> <small>${shown ? `${esc(shown.band)}, ${charted ? "charted set" : `monitor${n2.partial ? ", partial" : ""}`}` : "not scored"}</small></span>
      ${charted && n2 ? `<span class="score"><small>monitor now ${n2.total}</small></span>` : ""}
      <span class="score">Risk 6 h <b>${pct(bed.risk)}</b> ${trend}</span>
    </div>
    <div class="sparks" aria-label="Last ${state.board.hours} h">${VITALS.map((v) => spark(bed, v)).join("")}</div>
    <p class="reason">${esc(bed.top_reason || (n2 ? n2.response : "No score yet"))}</p>
    <p class="since">${since} · level: ${esc(bed.level_why)}</p>
    ${chips ? `<ul class="bed-alerts" aria-label="Open alerts">${chips}</ul>` : ""}
  </li>`;
}

function renderBoard() {
  const b = state.board;
  const beds = b.beds;
  const stale = beds.filter(bedStale).length;
  const urgent = beds.filter((x) => x.level === "high" || x.level === "medium").length;
  $("#bed-summary").textContent = `${beds.length} beds · ${urgent} high or medium · ${stale} stale`;
  $("#beds").innerHTML = beds.map(bedHtml).join("");
  const down = Boolean(b.store && !b.store.ok);  // the service answers, its vital store does not (issue 21)
  $("#store-down").hidden = !down;
  $("#store-down-why").textContent = down ? `(${b.store.error || "no reason given"})` : "";
  showClock();
}

async function loadBoard() {
  const board = await api("/v1/board");
  state.board = board;
  state.fetchedAt = Date.now();
  renderBoard();
}

// -- alerts -----------------------------------------------------------------------------------------------------
const RANK = {escalated: 0, raised: 1, delivered: 1, acknowledged: 2};
async function loadAlerts() {
  const lists = await Promise.all(OPEN.map((s) => api(`/v1/alerts?state=${s}&limit=500`)));
  const alerts = lists.flat().sort((a, b) => RANK[a.state] - RANK[b.state] || Date.parse(b.raised_at) - Date.parse(a.raised_at));
  const fresh = new Set(alerts.filter((a) => !state.seen.has(a.id) && !state.firstAlerts).map((a) => a.id));
  alerts.forEach((a) => { if (fresh.has(a.id)) a.isNew = Date.now(); else a.isNew = state.alerts.find((x) => x.id === a.id)?.isNew; });
  alerts.forEach((a) => state.seen.add(a.id));
  state.firstAlerts = false;
  state.alerts = alerts;
  renderAlerts();
}

// Rules recorded on this alert instead of raising a second one (app.alerts.rules.fold_header heads their reasons).
const FOLD_HEADER = "Also holding, recorded here instead of a second alert: the ";

function ownReasons(a) {
  const folded = a.reasons.findIndex((r) => r.startsWith(FOLD_HEADER));
  return folded < 0 ? a.reasons : a.reasons.slice(0, folded);
}

function alsoHtml(a) {
  const also = a.reasons.flatMap((r, i) => {
    if (!r.startsWith(FOLD_HEADER)) return [];
    const kind = r.slice(FOLD_HEADER.length).replace(/ rule$/, "");
    return [`${KIND[kind] || kind}: ${a.reasons[i + 1] || ""}`];
  });
  return also.length ? `<small class="also">also: ${also.map(esc).join("; ")}</small>` : "";
}

function alertHtml(a) {
  const isNew = a.isNew && Date.now() - a.isNew < 60000;
  const who = a.acknowledged_by ? ` · acknowledged by ${esc(a.acknowledged_by)} at ${fmtTime(a.acknowledged_at)}` : "";
  const esc_ = a.escalated_at ? ` · escalated at ${fmtTime(a.escalated_at)}` : "";
  const dis = state.offline ? " disabled" : "";
  const ack = UNACKED.includes(a.state) ? `<button type="button" data-act="acknowledge" data-id="${esc(a.id)}"${dis}>Acknowledge</button>` : "";
  return `<li class="alert ${esc(a.state)}" data-alert-id="${esc(a.id)}" data-kind="${esc(a.kind)}" data-state="${esc(a.state)}">
    <div class="what"><span class="kind">${a.state === "escalated" ? "⚠ " : ""}${esc(KIND[a.kind] || a.kind)}</span>
      <a href="#/patients/${encodeURIComponent(a.patient_id)}">${esc(a.patient_id)}</a>
      <span class="state">${esc(a.state)}</span>${isNew ? ' <span class="new">NEW</span>' : ""}</div>
    <small>raised ${fmtTime(a.raised_at)} · <span class="js-age" data-at="${esc(a.raised_at)}">${fmtAge(ageOf(a.raised_at))}</span> ago${esc_}${who}</small>
    <small>${ownReasons(a).slice(0, 2).map(esc).join("; ")}</small>${alsoHtml(a)}
    <div class="buttons">${ack}<button type="button" class="secondary" data-act="resolve" data-id="${esc(a.id)}"${dis}>Resolve</button></div>
  </li>`;
}

function renderAlerts() {
  const escalated = state.alerts.filter((a) => a.state === "escalated").length;
  $("#alert-count").textContent = `${state.alerts.length}${escalated ? ` · ${escalated} escalated` : ""}`;
  $("#alerts").innerHTML = state.alerts.map(alertHtml).join("") || "<li>No open alerts.</li>";
}

// -- acknowledge / resolve, with who ----------------------------------------------------------------------------
document.addEventListener("click", (e) => {
  const btn = e.target.closest("button[data-act]");
  if (!btn || state.offline) return;
  const alert = state.alerts.find((a) => a.id === btn.dataset.id);
  state.dialog = {act: btn.dataset.act, id: btn.dataset.id};
  $("#action-title").textContent = btn.dataset.act === "acknowledge" ? "Acknowledge alert" : "Resolve alert";
  $("#action-ok").textContent = btn.dataset.act === "acknowledge" ? "Acknowledge" : "Resolve";
  $("#action-what").textContent = alert ? `${KIND[alert.kind] || alert.kind} alert for ${alert.patient_id}, raised ${fmtTime(alert.raised_at)}` : btn.dataset.id;
  $("#action-by").value = nurse();
  $("#action-note").value = "";
  $("#action-error").textContent = "";
  $("#action-dialog").showModal();
  (nurse() ? $("#action-note") : $("#action-by")).focus();
});
$("#action-cancel").addEventListener("click", () => $("#action-dialog").close());
$("#action-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const by = $("#action-by").value.trim(), note = $("#action-note").value.trim();
  if (!by) { $("#action-error").textContent = "Enter your name or badge."; return; }
  sessionStorage.setItem(NURSE, by);
  showNurse();
  const {act, id} = state.dialog;
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/${act}`, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(note ? {by, note} : {by})});
    $("#action-dialog").close();
    refreshSoon(0);
  } catch (err) {
    if (!(err instanceof KeyRefused)) $("#action-error").textContent = `Not recorded: ${err.message}`;
    else $("#action-dialog").close();
  }
});

// -- live stream ------------------------------------------------------------------------------------------------
function refreshSoon(ms = 300) {  // a burst of events (a replay) costs one refresh
  if (state.pending) return;
  state.pending = setTimeout(() => { state.pending = null; refresh(); }, ms);
}
async function refresh() {
  if (state.stopped) return;
  try {
    await Promise.all([loadBoard(), loadAlerts()]);
    if (state.ws && state.ws.readyState === WebSocket.OPEN) setOffline(false);
    if (route().patient) loadPatient(route().patient, false);
  } catch (err) {
    if (!(err instanceof KeyRefused)) console.warn("refresh failed", err);
  }
}

function connect() {
  if (state.stopped) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const since = state.lastSeq ? `&since=${state.lastSeq}` : "";  // resume after a drop: no gap
  const ws = new WebSocket(`${proto}://${location.host}/v1/ws/alerts?ward=1&batch=1${since}`);
  state.ws = ws;
  ws.onopen = () => { ws.send(JSON.stringify({key: apiKey()})); state.retry = 0; refresh(); };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "event" || msg.type === "events") {
      const seq = msg.type === "events" ? msg.events[msg.events.length - 1].seq : msg.seq;
      state.lastSeq = Math.max(state.lastSeq, seq);
      ws.send(JSON.stringify({type: "ack", seq}));  // cumulative: an alert counts as delivered once a board confirms it
      refreshSoon();
    } else if (msg.type === "ward" || msg.type === "replay") {
      refreshSoon();
    }
  };
  ws.onclose = (e) => {
    if (state.ws !== ws || state.stopped) return;
    if (e.code === 1008) { refused(401, `the alert stream (${e.reason})`); return; }  // the key was refused on the stream
    setOffline(true);
    const wait = Math.min(5000, 500 * 2 ** state.retry++);
    setTimeout(connect, wait);
  };
}

// -- patient view -----------------------------------------------------------------------------------------------
function route() {
  const m = location.hash.match(/^#\/patients\/([^/?#]+)/);
  return {patient: m ? decodeURIComponent(m[1]) : null};
}

function chart({title, unit, t0, t1, series, zones = [], thresholds = [], range, dots = [], step = false}) {
  const W = 600, H = 150, L = 40, R = 8, T = 8, B = 22;
  const ys = series.filter(([, y]) => y != null).map(([, y]) => y);
  dots = dots.filter(([t]) => t >= t0 && t <= t1);
  let lo = Math.min(range[0], ...ys, ...dots.map((d) => d[1])), hi = Math.max(range[1], ...ys, ...dots.map((d) => d[1]));
  if (hi === lo) hi = lo + 1;
  const x = (t) => L + ((W - L - R) * (t - t0)) / (t1 - t0);
  const y = (v) => T + ((H - T - B) * (hi - v)) / (hi - lo);
  let bands = "", prev = -Infinity;
  for (const [upper, pts] of zones) {
    const a = Math.max(prev, lo), b = Math.min(upper, hi);
    if (pts > 0 && b > a) bands += `<rect class="z${Math.min(pts, 3)}" x="${L}" width="${W - L - R}" y="${y(b)}" height="${y(a) - y(b)}"/>`;
    prev = upper;
  }
  let d = "", open = false, lastY = null;
  for (const [t, v] of series) {
    if (v == null) { open = false; continue; }
    if (step && open) d += `L${x(t).toFixed(1)},${y(lastY).toFixed(1)}`;
    d += `${open ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    open = true; lastY = v;
  }
  const thr = thresholds.filter((h) => h.value >= lo && h.value <= hi).map((h) =>
    `<line class="thr" x1="${L}" x2="${W - R}" y1="${y(h.value)}" y2="${y(h.value)}"><title>${esc(h.text)}</title></line>`).join("");
  const ticks = [];
  for (let k = 0; k <= 4; k++) {
    const t = t0 + ((t1 - t0) * k) / 4;
    ticks.push(`<text class="axis" x="${x(t)}" y="${H - 6}" text-anchor="${k === 0 ? "start" : k === 4 ? "end" : "middle"}">${fmtTime(new Date(t).toISOString())}</text>`);
  }
  const last = ys.length ? ys[ys.length - 1] : null;
  const label = `${title}: ${ys.length} points over the last 24 h${last != null ? `, latest ${+last.toFixed(2)} ${unit}` : ", no data"}`;
  const marks = dots.map(([t, v]) => `<circle class="charted" data-charted="${esc(v)}" cx="${x(t)}" cy="${y(v)}" r="4"><title>charted set, ${fmtTime(new Date(t).toISOString())}: ${esc(v)} ${esc(unit)}</title></circle>`).join("");
  const key = dots.length ? ` <span class="chart-key"><span class="key-line">— monitor</span> <span class="key-charted">● charted by a nurse</span></span>` : "";
  return `<figure class="chart" data-chart="${esc(title)}" data-points="${ys.length}" data-charted-points="${dots.length}"><figcaption>${esc(title)} <span class="muted">${esc(unit)}</span>${key}</figcaption>
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}">${bands}
      <line class="grid" x1="${L}" x2="${W - R}" y1="${y(hi)}" y2="${y(hi)}"/><line class="grid" x1="${L}" x2="${W - R}" y1="${y(lo)}" y2="${y(lo)}"/>
      <text class="axis" x="${L - 4}" y="${y(hi) + 4}" text-anchor="end">${+hi.toFixed(1)}</text>
      <text class="axis" x="${L - 4}" y="${y(lo)}" text-anchor="end">${+lo.toFixed(1)}</text>
      ${thr}<path class="line" d="${d}"/>${marks}${ticks.join("")}</svg></figure>`;
}

async function loadPatient(pid, full = true) {
  const now = serverNow(), since = new Date(now - 24 * 3600e3).toISOString(), until = new Date(now).toISOString();
  const q = `since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`;
  const id = encodeURIComponent(pid);
  const [windows, history, alerts, observed] = await Promise.all([
    api(`/v1/patients/${id}/windows?${q}`), api(`/v1/patients/${id}/risk/history?${q}`),
    api(`/v1/alerts?patient_id=${id}&limit=20`), api(`/v1/patients/${id}/observations?${q}`)]);
  let latest = null;
  try { latest = await api(`/v1/patients/${id}/risk`); } catch (err) { if (err instanceof KeyRefused) throw err; }
  const bed = state.board?.beds.find((b) => b.patient_id === pid);
  const t0 = now - 24 * 3600e3, t1 = now;
  $("#patient-title").textContent = `Patient ${pid}`;
  const n2 = latest?.news2;
  $("#patient-summary").innerHTML = latest ? `
    <p>NEWS2 <b>${n2?.total ?? "—"}</b> (${esc(n2?.band ?? "—")}) — ${esc(n2?.response ?? "")}</p>
    <p>Risk within 6 h <b>${pct(latest.risk)}</b> at ${fmtTime(latest.window_end, true)}</p>
    ${bed ? `<p>${bedStale(bed) ? "<b>◌ STALE:</b> no data for" : "Last data"} ${fmtAge(bed.last_data_at ? ageOf(bed.last_data_at) : null)}${bedStale(bed) ? "" : " ago"}</p>` : ""}` : "<p>Not scored yet.</p>";
  const moving = (latest?.contributions || []).filter((c) => c.sentence && Math.abs(c.points) >= 0.01)  // what moves it
    .sort((a, b) => Math.abs(b.points) - Math.abs(a.points));
  $("#patient-why").innerHTML = moving.map((c) => `<li>${esc(c.sentence)} <span class="muted">(${c.points > 0 ? "raises" : "lowers"} the risk)</span></li>`).join("")
    || "<li>No explanation yet.</li>";
  const thresholds = state.board?.event_thresholds || [];
  const cols = {hr: "hr_mean", rr: "rr_mean", spo2: "spo2_mean", sbp: "sbp", temp: "temp"};
  $("#patient-charts").innerHTML = VITALS.map(([name, , unit, title, zones]) => chart({
    title, unit, t0, t1, zones, range: RANGE[name], thresholds: thresholds.filter((h) => h.vital === name),
    series: windows.map((w) => [Date.parse(w.start) + 150e3, w[cols[name]]]),
    dots: observed.sets.filter((o) => typeof o.values[name] === "number").map((o) => [Date.parse(o.ts), o.values[name]]),
  })).join("");
  const threshold = state.board?.twin_alert_threshold;
  $("#patient-scores").innerHTML = chart({
    title: "Twin risk (6 h)", unit: "%", t0, t1, range: [0, Math.max(20, 100 * (threshold || 0) * 1.5)],
    thresholds: threshold ? [{value: 100 * threshold, text: "twin alert threshold"}] : [],
    series: history.map((s) => [Date.parse(s.window_end), 100 * s.risk]),
  }) + chart({
    title: "NEWS2", unit: "line: monitor windows · dots: charted sets behind NEWS2 alerts", t0, t1, range: [0, 10],
    step: true, zones: [[4.5, 0], [6.5, 2], [Infinity, 3]],
    series: history.map((s) => [Date.parse(s.window_end), s.news2?.total ?? null]),
    dots: alerts.filter((a) => a.kind === "news2" && a.news2).map((a) => [Date.parse(a.window_end), a.news2.total]),
  });
  if (full) {
    const rows = await Promise.all(alerts.map(async (a) => {
      const moves = await api(`/v1/alerts/${encodeURIComponent(a.id)}/transitions`);
      return `<tr><td>${esc(KIND[a.kind] || a.kind)}</td><td>${fmtTime(a.raised_at, true)}</td><td>${esc(a.state)}</td>
        <td>${moves.map((m) => `${fmtTime(m.at)} ${esc(m.event)} by ${esc(m.actor)}${m.note ? ` — “${esc(m.note)}”` : ""}`).join("<br>")}</td></tr>`;
    }));
    $("#patient-alerts").innerHTML = rows.length
      ? `<table class="history"><thead><tr><th scope="col">Kind</th><th scope="col">Raised</th><th scope="col">State</th><th scope="col">Transitions</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
      : "<p>No alerts for this patient.</p>";
  }
}

$("#what-if").addEventListener("submit", async (e) => {
  e.preventDefault();
  const pid = route().patient;
  const vital = $("#wi-vital").value, value = Number($("#wi-value").value);
  try {
    const r = await api(`/v1/patients/${encodeURIComponent(pid)}/what-if`, {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({changes: {[vital]: value}})});
    const d = 100 * r.risk_change;
    $("#wi-out").textContent = `Risk ${pct(r.before.risk)} → ${pct(r.after.risk)} (${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(1)} points)`;
  } catch (err) {
    $("#wi-out").textContent = `Not rescored: ${err.message}`;
  }
});

function showRoute() {
  const {patient} = route();
  document.body.classList.toggle("route-patient", !!patient);
  $("#patient-view").hidden = !patient;
  if (patient) {
    $("#patient-title").textContent = `Patient ${patient}`;
    $("#patient-charts").innerHTML = "";
    loadPatient(patient).catch((err) => { if (!(err instanceof KeyRefused)) $("#patient-summary").textContent = `Could not load: ${err.message}`; });
    $("#patient-title").focus?.();
  }
}
window.addEventListener("hashchange", showRoute);

// -- start ------------------------------------------------------------------------------------------------------
function tick() {  // ages and the clock move between reads; staleness is re-judged against the service clock
  showClock();
  document.querySelectorAll(".js-age").forEach((el) => { if (el.dataset.at) el.textContent = fmtAge(ageOf(el.dataset.at)); });
  if (state.board) {
    for (const bed of state.board.beds) {
      const el = document.querySelector(`.bed[data-patient-id="${CSS.escape(bed.patient_id)}"]`);
      if (el && String(bedStale(bed)) !== el.dataset.stale) el.outerHTML = bedHtml(bed);
    }
  }
  if (state.offline) $("#offline-since").textContent = `(for ${fmtAge((Date.now() - state.offlineSince) / 1000)})`;
}

function start() {
  state.stopped = false;
  refresh().then(showRoute);
  connect();
}

const m = location.pathname.match(/^\/patients\/([^/]+)$/);  // /patients/{id}: the same page, routed in the hash
takeKeyFromUrl();
if (m) history.replaceState(null, "", `/${location.search}#/patients/${m[1]}`);
showNurse();
setInterval(tick, 1000);
setInterval(() => { if (!state.offline) refresh(); }, 15000);  // a fallback: each cycle's ward message refreshes at once
if (apiKey()) start(); else askForKey("This board needs an API key (a clinician key, from `wardtwin keys create` or printed by the demo). It is kept for this browser session only.");
