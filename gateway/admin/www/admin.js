// The admin console: renders the snapshot /admin/state serves and
// /admin/live pushes; the reload button posts to /admin/reload. Text is
// always set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function when(iso) {
  if (!iso || iso.startsWith("0001-")) return "—";
  const d = new Date(iso);
  return d.toLocaleString();
}

function timeEl(iso) {
  return el("time", { datetime: iso, title: iso, text: when(iso) });
}

function renderConfig(cfg) {
  $("config-file").textContent = cfg.file || "—";
  $("config-loaded").replaceChildren(timeEl(cfg.loaded_at));
  $("config-reloads").textContent = String(cfg.reloads);
  const e = $("config-error");
  e.textContent = cfg.last_error || "none";
  e.className = cfg.last_error ? "error mono" : "";
}

function renderEndpoints(eps) {
  const rows = eps.map((ep) => {
    const err = ep.last_error
      ? el("td", { class: "error mono last-error" }, ep.last_error, " ", el("br"), timeEl(ep.last_error_at))
      : el("td", { class: "last-error", text: "none" });
    return el("tr", { "data-endpoint": ep.path },
      el("th", { scope: "row", class: "mono", text: ep.path }),
      el("td", { class: "mono", text: ep.script }),
      el("td", { class: "mono version", text: ep.version }),
      el("td", {}, timeEl(ep.loaded_at)),
      el("td", { class: "num", text: String(ep.reloads) }),
      el("td", { class: "num connections", text: String(ep.connections) }),
      err);
  });
  $("endpoints").tBodies[0].replaceChildren(...rows);
}

function renderLatency(eps) {
  const rows = [];
  for (const ep of eps) {
    for (const l of ep.latency) {
      rows.push(el("tr", {},
        el("td", { class: "mono", text: ep.path }),
        el("td", { text: l.handler }),
        el("td", { class: "num", text: String(l.calls) }),
        el("td", { class: "num", text: l.mean_ms.toFixed(3) }),
        el("td", { class: "num", text: String(l.p50_ms) }),
        el("td", { class: "num", text: String(l.p99_ms) })));
    }
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "6", text: "No handler has run yet." })));
  $("latency").tBodies[0].replaceChildren(...rows);
}

function renderRooms(eps) {
  const parts = [];
  for (const ep of eps) {
    const h = el("h3", { text: `${ep.path}: ${ep.room_count} ${ep.room_count === 1 ? "room" : "rooms"}` });
    parts.push(h);
    if (ep.rooms.length === 0) continue;
    const list = el("ul", { class: "rooms" });
    for (const r of ep.rooms) {
      const names = r.members.map((m) => el("li", { class: "mono", text: m.name ? `${m.name} (${m.id})` : m.id }));
      if (r.count > r.members.length) names.push(el("li", { text: `and ${r.count - r.members.length} more` }));
      list.append(el("li", {},
        el("span", { class: "mono", text: r.name }), ` — ${r.count} ${r.count === 1 ? "member" : "members"}`,
        el("ul", { class: "members" }, ...names)));
    }
    parts.push(list);
  }
  $("rooms").replaceChildren(...parts);
}

function renderLog(id, records, empty) {
  const items = records.slice().reverse().map((r) => {
    const attrs = Object.entries(r.attrs || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    return el("li", { class: `level-${r.level}` }, timeEl(r.time), ` ${r.level} ${r.message}${attrs ? " " + attrs : ""}`);
  });
  if (items.length === 0) items.push(el("li", { text: empty }));
  $(id).replaceChildren(...items);
}

function render(snap) {
  renderConfig(snap.config);
  renderEndpoints(snap.endpoints);
  renderLatency(snap.endpoints);
  renderRooms(snap.endpoints);
  renderLog("errors", snap.errors, "No errors.");
  renderLog("logs", snap.logs, "No log lines.");
  document.body.dataset.updated = snap.time;
}

function feed(text, down) {
  const f = $("feed");
  if (f.textContent !== text) f.textContent = text;
  f.classList.toggle("down", !!down);
}

let retry = 500;
function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/admin/live`);
  ws.onopen = () => { retry = 500; feed("Live"); };
  ws.onmessage = (ev) => { render(JSON.parse(ev.data)); };
  ws.onclose = () => {
    feed(`Live feed lost; retrying in ${Math.round(retry / 1000)} s`, true);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

$("reload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = $("reload");
  const out = $("reload-result");
  button.disabled = true;
  out.textContent = "Reloading…";
  out.className = "";
  try {
    const resp = await fetch("/admin/reload", { method: "POST", headers: { "X-Moongate-Admin": "1" } });
    const body = await resp.json();
    const failed = (body.results || []).filter((r) => r.error);
    if (body.config_error) failed.unshift({ endpoint: "config", error: body.config_error });
    if (failed.length === 0) {
      const changed = (body.results || []).filter((r) => r.changed).map((r) => r.endpoint);
      out.textContent = changed.length ? `Reloaded: ${changed.join(", ")}` : "Reloaded: nothing had changed";
      out.className = "ok";
    } else {
      out.textContent = "Reload refused: " + failed.map((r) => `${r.endpoint}: ${r.error}`).join("; ");
      out.className = "error";
    }
  } catch (err) {
    out.textContent = `Reload failed: ${err}`;
    out.className = "error";
  } finally {
    button.disabled = false;
  }
});

fetch("/admin/state").then((r) => r.json()).then(render).catch(() => {});
connect();
