// Light JavaScript for the phone UI: JSON calls with the CSRF token, clear errors, retry.
"use strict";
const CSRF = (document.querySelector('meta[name="csrf"]') || {}).content || "";
const L = JSON.parse((document.getElementById("strings") || {}).textContent || "{}");
// A result or an error is shown next to the action that caused it (the last button pressed, or
// ``near``) and announced (aria-live); #msg at the top is only the fallback.
let lastAction = null;
document.addEventListener("click", ev => {
  const b = ev.target instanceof Element && ev.target.closest("button, .btn");
  if (b) lastAction = b;
}, true);
function say(text, bad, near) {
  const at = near || lastAction;
  let m = at && at.isConnected ? at.nextElementSibling : null;
  if (at && at.isConnected && !(m && m.classList.contains("note"))) {
    m = document.createElement("p");
    m.setAttribute("role", bad ? "alert" : "status");
    m.setAttribute("aria-live", bad ? "assertive" : "polite");
    at.insertAdjacentElement("afterend", m);
  }
  m = m || document.getElementById("msg");
  if (m) { m.textContent = text; m.className = "note" + (bad ? " err" : " ok"); m.setAttribute("role", bad ? "alert" : "status"); }
}
// The page's sentence for an API error: ``byStatus`` (status → text) first, then the general ones.
function errText(e, byStatus) {
  const st = e && e.status;
  if (st === 429) return (L.too_many || "").replace("{s}", e.retry || "30");
  const t = (e.code && L["err_" + e.code]) || (byStatus || {})[st] || {401: L.login_wrong, 403: L.forbidden, 422: L.invalid_input}[st];
  if (t) return t;
  return st ? (L.error_generic || "") + " (" + st + ")" : (e && e.message) || L.error_generic;
}
// Airing and writing a bulletin are retried with the same Idempotency-Key (docs/faults.md): a retry
// after a 503 or a lost answer gets the first answer and makes nothing twice. Other writes: once.
const IDEMPOTENT = new Set(["/api/broadcasts", "/api/bulletins"]);
function newKey() {
  return window.crypto && crypto.randomUUID ? crypto.randomUUID() :
    Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
}
async function api(method, url, body, tries) {
  const key = method === "POST" && IDEMPOTENT.has(url) ? newKey() : null;
  tries = tries || (method === "GET" || key ? 3 : 1);
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(url, {method, credentials: "same-origin",
        headers: Object.assign({"X-CSRF-Token": CSRF}, body ? {"content-type": "application/json"} : {},
                               key ? {"Idempotency-Key": key} : {}),
        body: body ? JSON.stringify(body) : undefined});
      if (r.status === 401 && !url.startsWith("/api/login") && !url.startsWith("/api/me/password")) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return null; }
      if (r.status === 503 && i + 1 < tries && (method === "GET" || key)) {
        const wait = Math.min(5, parseInt(r.headers.get("retry-after") || "2", 10) || 2);
        await new Promise(ok => setTimeout(ok, 1000 * wait));
        continue;
      }
      const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
      if (!r.ok) {
        const d = data.detail || data.error;
        // a validation error (422) is a list: show its messages, not JSON
        const err = new Error(typeof d === "string" ? d : Array.isArray(d) ?
          d.map(x => (x.loc ? x.loc.slice(1).join(".") + ": " : "") + x.msg).join("; ") : JSON.stringify(d || r.status));
        err.status = r.status; err.detail = d; err.code = data.code; err.retry = r.headers.get("retry-after");
        if (data.code && L["err_" + data.code] && !(r.status === 429 && L.too_many)) err.message = L["err_" + data.code];
        // a refusal this page has no sentence for: said by its status, never the API's English on a Vietnamese screen
        else if (document.documentElement.lang !== "en") err.message = errText(err);
        throw err;
      }
      return data;
    } catch (e) {
      if (e instanceof TypeError && i + 1 < tries) { await new Promise(ok => setTimeout(ok, 1000 * (i + 1))); continue; }
      if (e instanceof TypeError) e = new Error(L.network_error || "network error");
      throw e;
    }
  }
}
function toggleMenu() {  // the bottom bar's "Thêm": the other screens, the language, logging out
  const m = document.getElementById("menu"), b = document.getElementById("morebtn");
  m.hidden = !m.hidden; b.setAttribute("aria-expanded", String(!m.hidden));
}
function setLang(code) { lang(code); }  // an inline onclick="lang()" would find the element's own lang attribute
function lang(code) { document.cookie = "lang=" + code + ";path=/;max-age=31536000;samesite=strict"; location.reload(); }
async function logout() { try { await api("POST", "/api/logout"); } finally { location.href = "/login"; } }
function checked(name) { return [...document.querySelectorAll('input[name="' + name + '"]:checked')].map(e => e.value); }
function busy(btn, on) { if (btn) btn.disabled = on; }
// The header's alert badge (units offline, failed broadcasts, alarms not yet acknowledged), kept
// current while the page is open.
async function refreshBell() {
  const bell = document.getElementById("bell");
  if (!bell) return;
  try {
    const r = await fetch("/alerts/items", {credentials: "same-origin"});
    if (!r.ok) return;
    const d = await r.json();
    bell.hidden = !d.n;
    document.getElementById("belln").textContent = d.n;
    document.getElementById("bellt").textContent = d.badge;
  } catch (e) { /* offline: the badge stays as it was */ }
}
if (document.getElementById("bell")) { refreshBell(); setInterval(refreshBell, 30000); }
// the installable app: a service worker keeps the app shell (static files) only, never data
if ("serviceWorker" in navigator && window.isSecureContext) navigator.serviceWorker.register("/sw.js").catch(() => {});
