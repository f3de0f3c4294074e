// Light JavaScript for the phone UI: JSON calls with the CSRF token, clear errors, retry.
"use strict";
const CSRF = (document.querySelector('meta[name="csrf"]') || {}).content || "";
const L = JSON.parse((document.getElementById("strings") || {}).textContent || "{}");
function say(text, bad) {
  const m = document.getElementById("msg");
  if (m) { m.textContent = text; m.className = bad ? "err" : ""; }
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
      if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return null; }
      if (r.status === 503 && i + 1 < tries && (method === "GET" || key)) {
        const wait = Math.min(5, parseInt(r.headers.get("retry-after") || "2", 10) || 2);
        await new Promise(ok => setTimeout(ok, 1000 * wait));
        continue;
      }
      const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
      if (!r.ok) {
        const d = data.detail || data.error;
        // a validation error (422) is a list: show its messages, not JSON
        throw new Error(typeof d === "string" ? d : Array.isArray(d) ?
          d.map(x => (x.loc ? x.loc.slice(1).join(".") + ": " : "") + x.msg).join("; ") : JSON.stringify(d || r.status));
      }
      return data;
    } catch (e) {
      if (e instanceof TypeError && i + 1 < tries) { await new Promise(ok => setTimeout(ok, 1000 * (i + 1))); continue; }
      if (e instanceof TypeError) e = new Error(L.network_error || "network error");
      throw e;
    }
  }
}
function lang(code) { document.cookie = "lang=" + code + ";path=/;max-age=31536000;samesite=strict"; location.reload(); }
async function logout() { try { await api("POST", "/api/logout"); } finally { location.href = "/login"; } }
function checked(name) { return [...document.querySelectorAll('input[name="' + name + '"]:checked')].map(e => e.value); }
function busy(btn, on) { if (btn) btn.disabled = on; }
