// Moongate chat: a browser client for scripts/chat/chat.lua.
// Everything a user or another client typed is shown with textContent,
// never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const chat = {
  nick: "", token: "", ws: null, current: null,
  convos: new Map(),    // "lobby" or "@bob" -> { name, kind, lines: [], members: [], unread, ids: Set }
  retry: 0, helloTries: 0, welcomed: false,
};
const HISTORY_KEY = "moongate-chat";

function convo(name) {
  if (!chat.convos.has(name)) {
    chat.convos.set(name, { name, kind: name.startsWith("@") ? "pm" : "room", lines: [], members: [], unread: 0, ids: new Set() });
  }
  return chat.convos.get(name);
}

// save keeps what a reload needs to resume in sessionStorage. The token is
// never stored: it lives in memory only, so a signed-in reload asks for it.
function save() {
  const rooms = [...chat.convos.values()].filter((c) => c.kind === "room").map((c) => c.name);
  const signedIn = !!chat.token;
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify({ nick: signedIn ? "" : chat.nick, signedIn, rooms, current: chat.current }));
}

function restore() {
  try { return JSON.parse(sessionStorage.getItem(HISTORY_KEY)) || {}; } catch { return {}; }
}

// --- connection ------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const query = chat.token ? "?token=" + encodeURIComponent(chat.token) : "";
  const ws = new WebSocket(scheme + location.host + "/chat" + query);
  chat.ws = ws;
  chat.welcomed = false;
  status("connecting…");
  ws.onopen = () => { chat.helloTries = 0; hello(); };
  ws.onmessage = (ev) => { try { handle(JSON.parse(ev.data)); } catch (e) { showError("bad message from server: " + e.message); } };
  ws.onclose = (ev) => {
    if (chat.ws !== ws) return;
    const delay = Math.min(10000, 500 * 2 ** chat.retry) * (0.75 + Math.random() / 2);
    chat.retry++;
    status(`disconnected (${ev.code}); reconnecting in ${Math.round(delay / 100) / 10} s`, true);
    setTimeout(connect, delay);
  };
}

function hello() {
  const msg = { type: "hello" };
  if (chat.nick) msg.nick = chat.nick;
  send(msg);
}

function send(msg) {
  if (chat.ws && chat.ws.readyState === WebSocket.OPEN) {
    chat.ws.send(JSON.stringify(msg));
    return true;
  }
  showError("not connected: your message was not sent");
  return false;
}

function status(text, offline) {
  $("status").textContent = text;
  $("status").classList.toggle("offline", !!offline);
}

// --- server messages ---------------------------------------------------------

const handlers = {
  welcome(m) {
    chat.nick = m.nick;
    chat.welcomed = true;
    chat.retry = 0;
    status("online as " + m.nick);
    showChat();
    const rooms = [...chat.convos.values()].filter((c) => c.kind === "room").map((c) => c.name);
    if (rooms.length === 0) rooms.push("lobby");
    for (const room of rooms) send({ type: "join", room });
    send({ type: "rooms" });
    save();
  },
  joined(m) {
    refreshRoomsSoon();
    const c = convo(m.room);
    c.members = m.members;
    for (const h of m.history) addLine(c, h);
    if (!chat.current || chat.current === m.room || !chat.convos.has(chat.current)) select(m.room);
    render();
    save();
  },
  presence(m) {
    refreshRoomsSoon();
    const c = convo(m.room);
    if (m.event === "join" && !c.members.includes(m.nick)) c.members.push(m.nick);
    if (m.event === "leave") c.members = c.members.filter((n) => n !== m.nick);
    addNotice(c, `${m.nick} ${m.event === "join" ? "joined" : "left"}`);
    render();
  },
  message(m) {
    const c = convo(m.room);
    if (addLine(c, m) && chat.current !== m.room) c.unread++;
    render();
  },
  announce(m) { handlers.message(m); },
  pm(m) {
    const other = m.from === chat.nick ? m.to : m.from;
    const c = convo("@" + other);
    if (addLine(c, m) && chat.current !== c.name) c.unread++;
    render();
  },
  left(m) {
    refreshRoomsSoon();
    chat.convos.delete(m.room);
    if (chat.current === m.room) chat.current = [...chat.convos.keys()][0] || null;
    render();
    save();
  },
  members(m) { convo(m.room).members = m.members; render(); },
  rooms(m) { renderAllRooms(m.rooms); },
  error(m) {
    if (m.code === "nick_taken" && chat.welcomed === false && $("login").hidden && chat.helloTries++ < 5) {
      // After a reload our old connection may not have let go of the nick yet.
      setTimeout(hello, 400 * chat.helloTries);
      return;
    }
    if (!chat.welcomed && (m.ref === "hello")) {
      showLogin(m.message);
      return;
    }
    showError(m.message + (m.code ? ` (${m.code})` : ""));
  },
};

// refreshRoomsSoon asks for the room list once, shortly after a change.
let roomsTimer = null;
function refreshRoomsSoon() {
  if (roomsTimer) return;
  roomsTimer = setTimeout(() => { roomsTimer = null; send({ type: "rooms" }); }, 1000);
}

function handle(m) {
  const h = handlers[m.type];
  if (h) h(m);
}

function addLine(c, m) {
  if (m.id && c.ids.has(m.id)) return false; // seen in history and live at the same time
  if (m.id) c.ids.add(m.id);
  c.lines.push(m);
  if (c.lines.length > 500) c.lines.shift();
  return true;
}

function addNotice(c, text) {
  c.lines.push({ notice: text, ts: Date.now() });
}

// --- rendering -----------------------------------------------------------------

function select(name) {
  chat.current = name;
  const c = chat.convos.get(name);
  if (c) c.unread = 0;
  $("side").classList.remove("open");
  render();
  save();
  $("text").focus();
}

function render() {
  const joined = $("joined");
  joined.replaceChildren();
  for (const c of chat.convos.values()) {
    const li = el("li", c.name === chat.current ? "current" : "");
    li.dataset.room = c.name;
    li.append(el("span", "name", c.kind === "room" ? "#" + c.name : c.name), el("span", "badge", c.unread ? String(c.unread) : ""));
    li.onclick = () => select(c.name);
    joined.append(li);
  }
  const c = chat.convos.get(chat.current);
  $("title").textContent = c ? (c.kind === "room" ? "#" + c.name : "private: " + c.name.slice(1)) : "no room";
  const list = $("messages");
  list.replaceChildren();
  const members = $("members");
  members.replaceChildren();
  if (!c) return;
  for (const m of c.lines) list.append(line(m));
  list.scrollTop = list.scrollHeight;
  for (const nick of c.kind === "room" ? c.members : [chat.nick, c.name.slice(1)]) {
    const li = el("li", "", nick);
    if (nick !== chat.nick) {
      li.title = "private message";
      li.onclick = () => { select("@" + nick); convo("@" + nick); render(); };
    }
    members.append(li);
  }
}

function line(m) {
  const kind = { pm: " pm", announce: " announce" }[m.type] || "";
  const li = el("li", m.notice ? "msg notice" : "msg" + kind);
  const t = el("time", "", new Date(m.ts || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  li.append(t);
  if (m.notice) {
    li.append(el("span", "text", m.notice));
  } else {
    li.append(el("span", "from", m.type === "announce" ? "announcement" : m.from), el("span", "text", m.text));
  }
  return li;
}

function renderAllRooms(rooms) {
  const list = $("all-rooms");
  list.replaceChildren();
  for (const r of rooms) {
    const li = el("li");
    li.dataset.room = r.name;
    li.append(el("span", "name", "#" + r.name), el("span", "count", String(r.members)));
    li.onclick = () => join(r.name);
    list.append(li);
  }
}

function showChat() {
  $("login").hidden = true;
  $("chat").hidden = false;
}

function showLogin(error) {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error || "";
  if (chat.ws) { const ws = chat.ws; chat.ws = null; ws.close(); }
}

let errorTimer;
function showError(text) {
  $("errors").textContent = text;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { $("errors").textContent = ""; }, 6000);
}

// --- user actions ----------------------------------------------------------

function join(room) {
  room = room.trim().toLowerCase();
  if (!room) return;
  if (chat.convos.has(room)) { select(room); return; }
  chat.current = room;
  send({ type: "join", room });
}

function say(text) {
  if (!text.trim()) return;
  const pm = text.match(/^\/pm\s+(\S+)\s+([\s\S]+)$/);
  if (pm) { send({ type: "pm", to: pm[1], text: pm[2] }); return; }
  if (text.trim() === "/leave") { if (chat.current && !chat.current.startsWith("@")) send({ type: "leave", room: chat.current }); return; }
  const c = chat.convos.get(chat.current);
  if (!c) { showError("join a room first"); return; }
  if (c.kind === "pm") send({ type: "pm", to: c.name.slice(1), text });
  else send({ type: "say", room: c.name, text });
}

$("login-form").onsubmit = (ev) => {
  ev.preventDefault();
  chat.nick = $("nick").value.trim();
  chat.token = $("token").value.trim();
  $("token").value = "";
  if (!chat.nick && !chat.token) { $("login-error").textContent = "pick a nick, or sign in with a token"; return; }
  $("login-error").textContent = "";
  connect();
};
$("join-form").onsubmit = (ev) => { ev.preventDefault(); join($("room-input").value); $("room-input").value = ""; };
$("say-form").onsubmit = (ev) => { ev.preventDefault(); say($("text").value); $("text").value = ""; };
$("refresh").onclick = () => send({ type: "rooms" });
$("toggle-side").onclick = () => $("side").classList.toggle("open");
setInterval(() => { if (chat.welcomed) send({ type: "rooms" }); }, 15000);

// takeUrlToken returns the ?token= of the address and removes it from the
// address bar and the tab's history, so it is neither shown, bookmarked nor
// kept: the token stays in memory only.
function takeUrlToken() {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (token === null) return "";
  params.delete("token");
  const query = params.toString();
  history.replaceState(history.state, "", location.pathname + (query ? "?" + query : "") + location.hash);
  return token;
}

// A reload resumes the session: same nick (a guest's) or sign-in (when the
// address brings a token), same rooms.
const saved = restore();
chat.token = takeUrlToken();
chat.current = saved.current || null;
for (const room of saved.rooms || []) convo(room);
if (chat.token || (saved.nick && !saved.signedIn)) {
  chat.nick = chat.token ? "" : saved.nick;
  connect();
} else {
  if (saved.signedIn) $("login-error").textContent = "sign in again: your token is not kept when the page reloads";
  $("nick").focus();
}
