// The schedules list on /schedule: next runs, edit (in the form below), pause / resume, delete
// (confirmed) and each schedule's runs. Text goes in with textContent only.
"use strict";
const WD = JSON.parse(document.getElementById("wdnames").textContent);
const WDKEYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const CAN = document.getElementById("schedules").dataset.can === "1";
let editing = null;
let exdays = new Set();  // the form's exception days (ISO dates): a repeating schedule skips them
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
function two(n) { return String(n).padStart(2, "0"); }
function ward(iso) {  // an ISO instant → "dd/mm/yyyy HH:MM" in ward time (+07:00)
  const d = new Date(new Date(iso).getTime() + 7 * 3600e3);
  return two(d.getUTCDate()) + "/" + two(d.getUTCMonth() + 1) + "/" + d.getUTCFullYear() + " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
}
function day(s) { const [y, m, d] = s.split("-"); return d + "/" + m + "/" + y; }
function describe(w) {
  const t = (w.times || []).join(", ");
  let out = w.kind === "daily" ? L.sch_daily.replace("{t}", t)
    : w.kind === "weekly" ? L.sch_weekly.replace("{d}", (w.weekdays || []).map(k => WD[WDKEYS.indexOf(k)]).join(", ")).replace("{t}", t)
    : w.kind === "once" ? L.sch_once.replace("{t}", w.at ? ward(w.at) : "")
    : w.kind === "between" ? L.sch_between.replace("{a}", day(w.start_date)).replace("{b}", day(w.end_date)).replace("{t}", t)
    : L.sch_cron.replace("{c}", w.cron || "");
  if (w.kind !== "between" && w.kind !== "once" && (w.start_date || w.end_date))
    out += " " + L.sch_range.replace("{a}", w.start_date ? day(w.start_date) : "…").replace("{b}", w.end_date ? day(w.end_date) : "…");
  return out;
}
function label(sc) { return sc.bulletin_title || sc.name || (sc.relay ? (L.sch_relay_label || "") + ": " + sc.relay.url : "#" + sc.id); }
function reasonText(r) {  // the run's reason in the page's language (never the English one on a Vietnamese page)
  const a = Object.assign({ reason: r.reason }, r.reason_args || {});
  if (a.day) a.day = day(a.day);
  const fill = s => s.replace(/\{(\w+)\}/g, (m, k) => a[k] != null ? a[k] : m);
  let out = fill(L["runr_" + r.reason_code] || L[r.reason_code] || L.runr_other);
  if (a.made != null && a.total != null) out += " " + fill(L.runr_partial);
  return out;
}
async function runs(sc, box, btn) {
  if (!box.hidden) { box.hidden = true; return; }
  try {
    const rows = await api("GET", "/api/schedules/" + sc.id + "/runs?limit=20");
    box.replaceChildren();
    if (!rows.length) box.append(el("p", "mute", L.sch_no_runs));
    for (const r of rows) {
      const li = el("li", "run " + r.status, (r.slot_at ? ward(r.slot_at) : "") + " · " + (L["run_" + r.status] || r.status));
      if (r.late_ms > 1000) li.append(" (" + L.run_late.replace("{s}", Math.round(r.late_ms / 1000)) + ")");
      if (r.reason_code) li.append(el("small", "why", " " + reasonText(r)));
      for (const b of r.broadcast_ids) { const a = el("a", "", " ↗"); a.href = "/broadcasts/" + encodeURIComponent(b); li.append(a); }
      box.append(li);
    }
    box.hidden = false;
  } catch (e) { say(errText(e), true, btn); }
}
function card(sc) {
  const c = el("div", "sched"); c.dataset.id = sc.id;
  c.append(el("b", "ti", label(sc)), el("small", "st " + (sc.enabled ? "ok" : "bad"), " · " + (sc.enabled ? L.sch_on : L.sch_paused)));
  c.append(el("div", "when", describe(sc.when)));
  const zs = sc.target.all ? L.whole_ward : (sc.target.zones || []).map(z => ZN[z] || z).join(", ");
  c.append(el("div", "mute", zs));
  const next = el("div", "next");
  next.append(el("small", "", L.sch_next + ": "), document.createTextNode(sc.next_slots.length ? sc.next_slots.slice(0, 3).map(ward).join(" · ") : L.sch_no_next));
  c.append(next);
  if ((sc.exceptions || []).length) c.append(el("div", "mute exdays", L.sch_ex_list.replace("{d}", sc.exceptions.map(day).join(", "))));
  const box = el("ul", "runs"); box.hidden = true;
  const bRuns = el("button", "sec runsbtn", L.sch_runs); bRuns.type = "button";
  bRuns.onclick = () => runs(sc, box, bRuns);
  c.append(bRuns);
  if (CAN) {
    const bEdit = el("button", "sec edit", L.sch_edit), bPause = el("button", "sec pause", sc.enabled ? L.sch_pause : L.sch_resume),
          bDel = el("button", "sec del", L.sch_delete);
    for (const b of [bEdit, bPause, bDel]) b.type = "button";
    bEdit.onclick = () => edit(sc);
    bPause.onclick = async () => {
      busy(bPause, true);
      try {
        const r = await api("PATCH", "/api/schedules/" + sc.id, {enabled: !sc.enabled});
        const fresh = card(r); c.replaceWith(fresh);
        say(r.enabled ? L.sch_resumed : L.sch_paused_msg, false, fresh.querySelector(".pause"));
      } catch (e) { say(errText(e), true, bPause); } finally { busy(bPause, false); }
    };
    bDel.onclick = async () => {
      if (!confirm(L.sch_delete_confirm.replace("{n}", label(sc)))) return;
      busy(bDel, true);
      try {
        await api("DELETE", "/api/schedules/" + sc.id);
        const gone = el("p", "note ok", L.sch_deleted); gone.setAttribute("role", "status");
        c.replaceWith(gone);
      } catch (e) { say(errText(e), true, bDel); busy(bDel, false); }
    };
    c.append(bEdit, bPause, bDel);
  }
  c.append(box);
  return c;
}
const ZN = JSON.parse(document.getElementById("znames").textContent);
async function loadSchedules() {
  const list = document.getElementById("schedules");
  try {
    const rows = await api("GET", "/api/schedules");
    list.replaceChildren(...(rows.length ? rows.map(card) : [el("p", "mute", L.nothing)]));
  } catch (e) { list.replaceChildren(el("p", "note err", errText(e))); }
}
function setChecks(name, values) { document.querySelectorAll('input[name="' + name + '"]').forEach(i => { i.checked = values.includes(i.value); }); }
function edit(sc) {  // the form below, filled with the schedule; Lưu then changes it (PATCH)
  editing = sc.id;
  const w = sc.when, f = document.getElementById("schedform");
  document.getElementById("formtitle").textContent = L.sch_editing + " · " + label(sc);
  document.getElementById("canceledit").hidden = false;
  document.querySelectorAll('input[name="what"]').forEach(i => { i.checked = i.value === (sc.relay ? "relay" : "bulletin"); });
  what();
  if (sc.relay) { su.value = sc.relay.url; sm.value = sc.relay.mode; sdur.value = Math.round((sc.relay.duration_s || 0) / 60); }
  else if (sc.bulletin_id != null) sb.value = String(sc.bulletin_id);
  kind.value = w.kind; kind.dispatchEvent(new Event("change"));
  times.value = (w.times || []).join(", ");
  at.value = w.at ? ward(w.at).replace(/(\d\d)\/(\d\d)\/(\d{4}) /, "$3-$2-$1T") : "";
  sd.value = w.start_date || ""; ed.value = w.end_date || ""; cr.value = w.cron || "";
  setChecks("wd", w.weekdays || []); setChecks("sz", sc.target.zones || []);
  rep.value = sc.repeat;
  exdays = new Set(sc.exceptions || []); showExceptions();
  f.scrollIntoView();
}
function cancelEdit() {
  editing = null;
  exdays = new Set(); showExceptions();
  document.getElementById("formtitle").textContent = L.new_schedule;
  document.getElementById("canceledit").hidden = true;
}
loadSchedules();
function showExceptions() {  // the list of days off in the form, each with its remove button
  const list = document.getElementById("exlist");
  if (!list) return;
  const days = [...exdays].sort();
  list.replaceChildren(...(days.length ? days.map(d => {
    const li = el("li", "exday", day(d) + " "); li.dataset.day = d;
    const b = el("button", "sec exdel", L.sch_ex_remove); b.type = "button";
    b.setAttribute("aria-label", L.sch_ex_remove_label.replace("{d}", day(d)));
    b.onclick = () => { exdays.delete(d); showExceptions(); say(L.sch_ex_removed.replace("{d}", day(d)), false, document.getElementById("exadd")); };
    li.append(b);
    return li;
  }) : [el("li", "mute", L.sch_ex_none)]));
}
function addException() {
  const input = document.getElementById("exd"), btn = document.getElementById("exadd");
  if (!input.value) { say(L.sch_ex_need_day, true, btn); return; }
  if (exdays.has(input.value)) { say(L.sch_ex_dup.replace("{d}", day(input.value)), true, btn); return; }
  exdays.add(input.value); showExceptions();
  say(L.sch_ex_added.replace("{d}", day(input.value)), false, btn);
  input.value = "";
}
showExceptions();
