// Moongate chat: a browser client for scripts/chat/chat.lua
// (docs/chat-protocol.md). Everything a user or another client typed is
// shown with textContent (links as <a> elements whose text is set as
// text), never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

let MAX_TEXT = 2000;          // the server's options.max_text, in characters (from /chat/api/info)
const KEEP_LINES = 500;       // lines a conversation keeps in memory
const KEEP_PM_LINES = 100;    // lines a private conversation keeps across reloads
const GROUP_MS = 5 * 60 * 1000;
const ROOM_RE = /^[a-z0-9_-]{1,32}$/;
const NICK_RE = /^[A-Za-z0-9_-]{1,24}$/;
const HISTORY_KEY = "moongate-chat";
const PM_KEY = "moongate-chat-pms:";
const TITLE = document.title;

const chat = {
  nick: "", token: "", ws: null, current: null,
  convos: new Map(),   // "lobby" or "@bob" (a nick in lower case) -> conversation (see convo)
  retry: 0, helloTries: 0, welcomed: false, everWelcomed: false,
  wantRoom: null,      // a room asked for by the user: selected when joined
  pending: [],         // sent say/pm lines waiting for the server, oldest first
  newBelow: 0,         // messages appended below a reader who scrolled up
  reconnectAt: 0, reconnectTimer: null, countdownTimer: null,
  seq: 0,
  since: new Map(),    // room -> the id a re-join asked for history after
  typing: new Map(),   // room -> Map nick -> when their "typing…" ends (ms)
  typingSent: new Map(), // room -> when we last said we are typing there (ms)
};
const TYPING_SHOW_MS = 5000;  // how long "nick is typing…" shows after an event
const TYPING_SEND_MS = 3000;  // how often we say we are typing (the server's window)

// pmKey names the private conversation with nick. The server's nicks are
// one without regard to case ("/pm Bob" and a pm from "bob" reach the same
// person), so the page keys them in lower case: one conversation whatever
// spelling opened it or the server uses.
const pmKey = (nick) => "@" + String(nick).toLowerCase();
const convoKey = (name) => (name.startsWith("@") ? pmKey(name.slice(1)) : name);

// convo returns the conversation called name, making it when new: a room
// ("lobby") or a private conversation ("@Bob", kept as "@bob"; its peer is
// the nick as shown, the spelling that opened it until the server's is
// known: see spelled). ids holds the ids of the messages it has shown, so
// a message met twice (history and live, or a re-join's history after a
// reconnect) shows once; ids never repeat on the server, restarts
// included, and the set is per conversation. A private conversation's
// online is whether the other is connected: true, false, or null while the
// page does not know.
function convo(name) {
  const pm = name.startsWith("@"), key = convoKey(name);
  if (!chat.convos.has(key)) {
    chat.convos.set(key, { name: key, kind: pm ? "pm" : "room", peer: pm ? name.slice(1) : "", lines: [], members: [], unread: 0, ids: new Set(), online: null });
  }
  return chat.convos.get(key);
}

// partner returns the private conversation with nick, if there is one.
const partner = (nick) => chat.convos.get(pmKey(nick));

// spelled notes nick as the server spells it (in a pm, a member list, a
// presence event): the conversation with them shows it from then on. It
// reports whether that changed what shows.
function spelled(nick) {
  const c = partner(nick);
  if (!c || c.peer === nick) return false;
  c.peer = nick;
  return true;
}

// setOnline notes whether nick is connected in the conversation with them,
// and redraws when that changes what shows.
function setOnline(nick, online) {
  const c = partner(nick);
  if (c && c.online !== online) { c.online = online; renderSide(); }
}

// askOnline asks the server which of nicks (by default every private
// conversation's partner) are connected, 50 a request (the server's bound).
const ONLINE_MAX = 50;
function askOnline(nicks) {
  if (!chat.welcomed) return;
  nicks ??= [...chat.convos.values()].filter((c) => c.kind === "pm").map((c) => c.peer);
  nicks = [...new Set(nicks)].filter((n) => NICK_RE.test(n));
  for (let i = 0; i < nicks.length; i += ONLINE_MAX) send({ type: "online", nicks: nicks.slice(i, i + ONLINE_MAX) });
}

// save keeps what a reload needs to resume in sessionStorage. The token is
// never stored: it lives in memory only, so a signed-in reload asks for it.
function save() {
  const rooms = [...chat.convos.values()].filter((c) => c.kind === "room").map((c) => c.name);
  const signedIn = !!chat.token;
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify({ nick: signedIn ? "" : chat.nick, signedIn, rooms, current: chat.current }));
}

// savePMs keeps the private conversations of this nick, so a reload shows
// them again: "@" and the partner's nick as shown -> their last lines.
function savePMs() {
  if (!chat.nick) return;
  const pms = {};
  for (const c of chat.convos.values()) {
    if (c.kind !== "pm") continue;
    pms["@" + c.peer] = c.lines.filter((m) => m.type === "pm" && m.id)
      .slice(-KEEP_PM_LINES).map(({ type, from, to, text, ts, id }) => ({ type, from, to, text, ts, id }));
  }
  try { sessionStorage.setItem(PM_KEY + chat.nick.toLowerCase(), JSON.stringify(pms)); } catch { /* full: keep what was kept */ }
}

// restorePMs brings back what savePMs kept. Entries whose nicks differ
// only in case (kept by an earlier page as two conversations) become one,
// their lines in time order, shown with the server's spelling.
function restorePMs() {
  let pms = {};
  try { pms = JSON.parse(sessionStorage.getItem(PM_KEY + chat.nick.toLowerCase())) || {}; } catch { /* none */ }
  const restored = new Set();
  for (const [name, lines] of Object.entries(pms)) {
    if (!name.startsWith("@") || !NICK_RE.test(name.slice(1)) || !Array.isArray(lines)) continue;
    const c = convo(name);
    restored.add(c);
    for (const m of lines) addLine(c, m);
  }
  for (const c of restored) {
    c.lines.sort((a, b) => (a.ts || 0) - (b.ts || 0));
    const last = c.lines.findLast((m) => m.type === "pm");
    if (last) spelled(last.from === chat.nick ? last.to : last.from);
  }
  // The open conversation was drawn line by line as they came: again, in order.
  if (restored.has(chat.convos.get(chat.current))) renderMessages();
}

function restore() {
  try { return JSON.parse(sessionStorage.getItem(HISTORY_KEY)) || {}; } catch { return {}; }
}

// --- connection ------------------------------------------------------------

function connect() {
  clearTimeout(chat.reconnectTimer);
  clearInterval(chat.countdownTimer);
  chat.reconnectTimer = null;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const query = chat.token ? "?token=" + encodeURIComponent(chat.token) : "";
  const ws = new WebSocket(scheme + location.host + "/chat" + query);
  let opened = false;
  chat.ws = ws;
  chat.welcomed = false;
  status("connecting…");
  if (chat.everWelcomed) banner("Reconnecting…");
  ws.onopen = () => { opened = true; chat.helloTries = 0; hello(); };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { showError("bad message from server: " + e.message); return; }
    handle(m);
  };
  ws.onclose = async (ev) => {
    if (chat.ws !== ws) return;
    chat.ws = null;
    chat.welcomed = false;
    failPending("not sent: the connection was lost");
    // Offline, the page cannot know who is connected: say nothing until it asks again.
    for (const c of chat.convos.values()) c.online = null;
    renderSide();
    if (!opened && (chat.token || chat.auth === "required" || !chat.auth) && await serverReachable()) {
      // The server is up but refused the upgrade: with a token, the token
      // (HTTP 401: expired, malformed or wrongly signed); without one, an
      // endpoint that wants sign-in. Retrying would only loop. (A guest
      // refused where guests are welcome is a full server: retry.)
      const why = chat.token
        ? "The server refused your token: it may have expired, be malformed or be signed with another secret. Paste a new one."
        : "The server refused the connection: it may require signing in with a token.";
      chat.token = "";
      showLogin(why);
      return;
    }
    scheduleReconnect(ev.code);
  };
}

// serverReachable tells whether this page's server answers plain HTTP.
async function serverReachable() {
  try {
    const r = await fetch(location.pathname, { method: "HEAD", cache: "no-store" });
    return r.status > 0;
  } catch { return false; }
}

function scheduleReconnect(code) {
  const delay = Math.min(10000, 500 * 2 ** chat.retry) * (0.75 + Math.random() / 2);
  chat.retry++;
  chat.reconnectAt = Date.now() + delay;
  status("offline", true);
  chat.reconnectTimer = setTimeout(connect, delay);
  const tick = () => {
    const s = Math.max(0, Math.ceil((chat.reconnectAt - Date.now()) / 1000));
    banner(`Disconnected${code ? ` (${code})` : ""}. Reconnecting in ${s} s…`);
  };
  tick();
  chat.countdownTimer = setInterval(tick, 250);
}

function banner(text) {
  $("banner").hidden = !text;
  $("banner-text").textContent = text || "";
  $("retry-now").hidden = !chat.reconnectTimer || !!chat.ws;
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
  return false;
}

function status(text, offline) {
  $("status").textContent = text;
  $("status").classList.toggle("offline", !!offline);
}

// --- server messages ---------------------------------------------------------

const handlers = {
  welcome(m) {
    const again = chat.everWelcomed;
    chat.nick = m.nick;
    chat.welcomed = true;
    chat.everWelcomed = true;
    chat.retry = 0;
    clearInterval(chat.countdownTimer);
    chat.reconnectTimer = null;
    banner("");
    status("online as " + m.nick);
    if (!again) restorePMs();
    showChat();
    const rooms = [...chat.convos.values()].filter((c) => c.kind === "room").map((c) => c.name);
    if (rooms.length === 0) rooms.push("lobby");
    chat.since.clear();
    for (const room of rooms) {
      const msg = { type: "join", room };
      if (again) {
        const c = convo(room);
        const last = c.lines.findLast((l) => l.id && !l.local);
        addDivider(c, "reconnected");
        if (last) { msg.since = last.id; chat.since.set(room, last.id); }
      }
      send(msg);
    }
    send({ type: "rooms" });
    askOnline();
    save();
    renderSide();
  },
  joined(m) {
    refreshRoomsSoon();
    const c = convo(m.room);
    c.members = m.members;
    for (const nick of m.members) { spelled(nick); setOnline(nick, true); }
    const asked = chat.since.get(m.room);
    chat.since.delete(m.room);
    if (asked && m.since !== asked) addNotice(c, "messages sent while you were away may be missing: the room keeps only its latest");
    for (const h of m.history) addLine(c, h);
    if (!chat.current || chat.wantRoom === m.room || !chat.convos.has(chat.current)) {
      chat.wantRoom = null;
      select(m.room);
    } else {
      renderSide();
    }
    save();
  },
  presence(m) {
    refreshRoomsSoon();
    const c = convo(m.room);
    if (m.event === "join" && !c.members.includes(m.nick)) c.members.push(m.nick);
    if (m.event === "leave") { c.members = c.members.filter((n) => n !== m.nick); stopTyping(m.room, m.nick); }
    addNotice(c, `${m.nick} ${m.event === "join" ? "joined" : "left"}`);
    renderSide();
    // A join means connected; a leave may be a disconnect or only leaving
    // this room: ask (a disconnect leaves the inbox first, so the answer
    // is false for one).
    if (m.event === "join") { if (spelled(m.nick)) renderSide(); setOnline(m.nick, true); }
    else if (partner(m.nick)) askOnline([m.nick]);
  },
  message(m) {
    if (m.from) stopTyping(m.room, m.from);
    const c = convo(m.room);
    if (addLine(c, m) && m.from !== chat.nick) noteUnread(c, m);
    renderSide();
  },
  announce(m) { handlers.message(m); },
  // pm: the server names both nicks as it knows them; the conversation is
  // the one with that nick whatever its case (where a line sent with
  // "/pm BOB" waits for this echo), and shows the server's spelling.
  pm(m) {
    const other = m.from === chat.nick ? m.to : m.from;
    const c = convo("@" + other);
    spelled(other);
    if (addLine(c, m) && m.from !== chat.nick) noteUnread(c, m);
    setOnline(other, true); // a pm reaches only a connected nick
    renderSide();
    savePMs();
  },
  left(m) {
    refreshRoomsSoon();
    chat.convos.delete(m.room);
    if (chat.current === m.room) {
      const next = [...chat.convos.keys()][0] || null;
      if (next) select(next); else { chat.current = null; renderAll(); }
    } else {
      renderSide();
    }
    save();
  },
  typing(m) {
    if (m.nick === chat.nick) return;
    if (!chat.typing.has(m.room)) chat.typing.set(m.room, new Map());
    chat.typing.get(m.room).set(m.nick, Date.now() + TYPING_SHOW_MS);
    renderTyping();
  },
  members(m) {
    convo(m.room).members = m.members;
    for (const nick of m.members) { spelled(nick); setOnline(nick, true); }
    renderSide();
  },
  online(m) {
    for (const [nick, on] of Object.entries(m.nicks || {})) setOnline(nick, on === true);
  },
  rooms(m) { renderAllRooms(m.rooms); },
  error(m) {
    if (m.code === "nick_taken" && !chat.welcomed && $("login").hidden && chat.helloTries++ < 5) {
      // After a reload our old connection may not have let go of the nick yet.
      setTimeout(hello, 400 * chat.helloTries);
      return;
    }
    if (!chat.welcomed && m.ref === "hello") {
      showLogin(m.message);
      return;
    }
    if ((m.ref === "say" || m.ref === "pm") && failOldestPending(m.ref, m)) return;
    if (m.ref === "join") {
      chat.wantRoom = null;
      showJoinError(m.message);
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

// addLine adds a server message to c once (by id) and shows it when c is
// open. An own message settles the pending line that sent it instead.
// It reports whether the message is new.
function addLine(c, m) {
  if (m.id && c.ids.has(m.id)) return false;
  if (m.id) c.ids.add(m.id);
  if (m.from && m.from === chat.nick) {
    const p = c.lines.find((l) => l.local && l.text === m.text);
    if (p) { settle(c, p, m); return true; }
  }
  push(c, m);
  return true;
}

function addNotice(c, text) { push(c, { notice: text, ts: Date.now() }); }
function addDivider(c, text) { push(c, { divider: text, ts: Date.now() }); }

function push(c, m) {
  c.lines.push(m);
  if (c.lines.length > KEEP_LINES) {
    const gone = c.lines.shift();
    if (gone.node && c.name === chat.current) gone.node.remove();
  }
  if (c.name === chat.current) appendNodes(c, c.lines.length - 1);
}

function noteUnread(c, m) {
  if (c.name !== chat.current || document.hidden) c.unread++;
  updateTitle();
  if (m) notify(c, m);
}

// notify shows a browser notification for a PM or a mention while the page
// is not looked at, when the user asked for them and the browser allows.
const NOTIFY_KEY = "moongate-chat-notify";
function notify(c, m) {
  if (!document.hidden || localStorage.getItem(NOTIFY_KEY) !== "on") return;
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (m.type !== "pm" && !(m.type === "message" && mentions(m.text))) return;
  const title = m.type === "pm" ? `${m.from} (private)` : `${m.from} in #${c.name}`;
  const n = new Notification(title, { body: String(m.text).slice(0, 200), tag: c.name });
  n.onclick = () => { window.focus(); select(c.name); n.close(); };
}

function renderNotify() {
  const b = $("notify");
  b.hidden = !("Notification" in window);
  const on = localStorage.getItem(NOTIFY_KEY) === "on" && window.Notification?.permission === "granted";
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? "Notifying of PMs and mentions" : "Notify me of PMs and mentions";
}

// --- typing ------------------------------------------------------------------

function stopTyping(room, nick) {
  if (chat.typing.get(room)?.delete(nick)) renderTyping();
}

// renderTyping shows who is typing in the open room, and drops the ones
// whose time is up.
let typingTimer = null;
function renderTyping() {
  const now = Date.now();
  let soonest = Infinity;
  for (const who of chat.typing.values()) {
    for (const [nick, until] of who) {
      if (until <= now) who.delete(nick); else soonest = Math.min(soonest, until);
    }
  }
  const nicks = [...(chat.typing.get(chat.current)?.keys() || [])];
  $("typing").textContent = nicks.length === 0 ? ""
    : nicks.length === 1 ? `${nicks[0]} is typing…`
    : nicks.length <= 3 ? `${nicks.slice(0, -1).join(", ")} and ${nicks.at(-1)} are typing…`
    : "several people are typing…";
  clearTimeout(typingTimer);
  if (soonest < Infinity) typingTimer = setTimeout(renderTyping, soonest - now + 50);
}

// sayTyping tells the open room we are typing, at most every TYPING_SEND_MS.
function sayTyping() {
  const c = chat.convos.get(chat.current);
  const text = $("text").value;
  if (!c || c.kind !== "room" || !chat.welcomed || !text.trim() || text.startsWith("/")) return;
  const now = Date.now();
  if (now - (chat.typingSent.get(c.name) || 0) < TYPING_SEND_MS) return;
  chat.typingSent.set(c.name, now);
  send({ type: "typing", room: c.name });
}

// --- sending: pending, accepted, failed -----------------------------------

// sendLine shows text in c as pending and sends it; the server's echo
// settles it, an error (or a lost connection) marks it failed with retry.
function sendLine(c, text) {
  const p = { local: ++chat.seq, type: c.kind === "pm" ? "pm" : "message", from: chat.nick, text, ts: Date.now(), state: "pending" };
  push(c, p);
  transmit(c, p);
  scrollToEnd();
}

function transmit(c, p) {
  p.state = "pending";
  p.error = "";
  const msg = c.kind === "pm" ? { type: "pm", to: c.peer, text: p.text } : { type: "say", room: c.name, text: p.text };
  if (!chat.welcomed || !send(msg)) {
    p.state = "failed";
    p.error = "not sent: not connected";
  } else {
    chat.pending.push({ c, p, ref: msg.type });
  }
  redraw(c, p);
}

function settle(c, p, m) {
  chat.pending = chat.pending.filter((x) => x.p !== p);
  delete p.local; delete p.state; delete p.error;
  Object.assign(p, m);
  redraw(c, p);
}

function failOldestPending(ref, err) {
  const i = chat.pending.findIndex((x) => x.ref === ref);
  if (i < 0) return false;
  const { c, p } = chat.pending[i];
  chat.pending.splice(i, 1);
  p.state = "failed";
  p.error = "not sent: " + err.message;
  if (err.code === "no_such_user") { c.online = false; renderSide(); }
  redraw(c, p);
  return true;
}

function failPending(why) {
  for (const { c, p } of chat.pending) {
    p.state = "failed";
    p.error = why;
    redraw(c, p);
  }
  chat.pending = [];
}

function retry(c, p) {
  const i = c.lines.indexOf(p);
  if (i >= 0) c.lines.splice(i, 1);
  if (p.node) p.node.remove();
  c.lines.push(p);
  if (c.name === chat.current) appendNodes(c, c.lines.length - 1);
  transmit(c, p);
  scrollToEnd();
}

function discard(c, p) {
  const i = c.lines.indexOf(p);
  if (i >= 0) c.lines.splice(i, 1);
  if (p.node) p.node.remove();
}

// redraw replaces the line's element in place (when shown).
function redraw(c, p) {
  if (c.name !== chat.current || !p.node) return;
  const i = c.lines.indexOf(p);
  const li = lineNode(c, p, prevMessage(c, i));
  p.node.replaceWith(li);
  p.node = li;
}

// --- rendering -----------------------------------------------------------------

function select(name) {
  const c = convo(name);
  chat.current = c.name;
  c.unread = 0;
  closeDrawers();
  renderAll();
  save();
  updateTitle();
  if (c.kind === "pm") askOnline([c.peer]);
  $("text").focus({ preventScroll: true });
}

function renderAll() {
  renderSide();
  renderMessages();
  renderTyping();
}

// renderSide redraws the room, PM and member lists and the title, keeping
// the focus on the same button when a list is redrawn under it.
function renderSide() {
  const focused = document.activeElement?.dataset?.key;
  const c = chat.convos.get(chat.current);
  const joined = $("joined"), pms = $("pms");
  joined.replaceChildren();
  pms.replaceChildren();
  for (const x of chat.convos.values()) {
    const b = el("button");
    b.type = "button";
    b.dataset.key = "convo:" + x.name;
    b.dataset.room = x.name;
    if (x.name === chat.current) b.setAttribute("aria-current", "page");
    const label = x.kind === "room" ? "#" + x.name : x.peer;
    const name = el("span", "name");
    if (x.kind === "pm") {
      name.append(presenceDot(x.online));
      b.dataset.online = String(x.online);
      if (x.online !== null) b.title = connectedText(x.online);
    }
    name.append(label);
    b.append(name, el("span", "badge", x.unread ? String(x.unread) : ""));
    const about = [label];
    if (x.kind === "pm" && x.online !== null) about.push(connectedText(x.online));
    if (x.unread) about.push(`${x.unread} unread`);
    if (about.length > 1) b.setAttribute("aria-label", about.join(", "));
    b.onclick = () => select(x.name);
    const li = el("li");
    li.dataset.room = x.name;
    li.append(b);
    (x.kind === "room" ? joined : pms).append(li);
  }
  $("title").textContent = c ? (c.kind === "room" ? "#" + c.name : "private: " + c.peer) : "no room";
  if (c?.kind === "pm" && c.online !== null) {
    const peer = el("span", "peer " + (c.online ? "on" : "off"));
    peer.id = "peer";
    peer.append(presenceDot(c.online), connectedText(c.online));
    $("title").append(" ", peer);
  }
  const members = $("members");
  members.replaceChildren();
  $("members-heading").textContent = c?.kind === "pm" ? "Conversation" : "Here";
  if (c) {
    const nicks = c.kind === "room" ? c.members : [chat.nick, c.peer];
    for (const nick of nicks) {
      const li = el("li");
      if (nick === chat.nick) {
        li.append(el("span", "me", nick));
        li.title = "you";
      } else if (c.kind === "pm") {
        li.append(el("span", "me", nick));
        if (c.online !== null) li.append(el("span", "count", ` (${connectedText(c.online)})`));
      } else {
        const b = el("button", "", nick);
        b.type = "button";
        b.dataset.key = "member:" + nick;
        b.setAttribute("aria-label", "private message to " + nick);
        b.onclick = () => select("@" + nick);
        li.append(b);
      }
      members.append(li);
    }
  }
  if (focused) document.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  updateTitle();
}

const connectedText = (online) => (online ? "connected" : "not connected");

// presenceDot is the mark before a private partner's name: filled when
// connected, a ring when not, an empty space while unknown (the words are
// in the button's label and the conversation's header).
function presenceDot(online) {
  const dot = el("span", "presence " + (online === null ? "unknown" : online ? "on" : "off"));
  dot.setAttribute("aria-hidden", "true");
  return dot;
}

function renderMessages() {
  const list = $("messages");
  $("lines").replaceChildren();
  chat.newBelow = 0;
  showNewBelow();
  const c = chat.convos.get(chat.current);
  if (!c) return;
  for (let i = 0; i < c.lines.length; i++) appendNodes(c, i, true);
  list.scrollTop = list.scrollHeight;
}

function atBottom() {
  const list = $("messages");
  return list.scrollHeight - list.scrollTop - list.clientHeight < 48;
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
  chat.newBelow = 0;
  showNewBelow();
}

// appendNodes shows c.lines[i] at the end of the open list, after a day
// divider when its day differs from the line before. A reader at the
// bottom stays at the bottom; one who scrolled up stays put and is told
// how many messages came below.
function appendNodes(c, i, bulk) {
  const list = $("messages"), lines = $("lines");
  const m = c.lines[i];
  const stick = bulk || atBottom();
  const prev = prevMessage(c, i);
  if (m.ts && !m.divider && (!prev || day(prev.ts) !== day(m.ts))) lines.append(dividerNode(dayLabel(m.ts)));
  const li = lineNode(c, m, prev);
  m.node = li;
  lines.append(li);
  if (bulk) return;
  if (stick) {
    list.scrollTop = list.scrollHeight;
  } else if (!m.notice && !m.divider) {
    chat.newBelow++;
    showNewBelow();
  }
}

function prevMessage(c, i) {
  for (let j = i - 1; j >= 0; j--) if (c.lines[j].ts && !c.lines[j].divider) return c.lines[j];
  return null;
}

function showNewBelow() {
  const b = $("new-below");
  b.hidden = chat.newBelow === 0;
  b.textContent = `${chat.newBelow} new message${chat.newBelow === 1 ? "" : "s"} ↓`;
}

const day = (ts) => new Date(ts).toDateString();
function dayLabel(ts) {
  const d = new Date(ts), today = new Date();
  if (d.toDateString() === today.toDateString()) return "Today";
  const y = new Date(today); y.setDate(y.getDate() - 1);
  if (d.toDateString() === y.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

function dividerNode(text) {
  const li = el("li", "divider");
  li.append(el("span", "", text));
  return li;
}

function mentions(text) {
  if (!chat.nick) return false;
  const esc = chat.nick.replace(/[-\\^$*+?.()|[\]{}]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9_-])@?${esc}(?![A-Za-z0-9_-])`, "i").test(text);
}

function lineNode(c, m, prev) {
  if (m.divider) return dividerNode(m.divider);
  const classes = ["msg"];
  if (m.notice) classes.push("notice");
  if (m.type === "pm") classes.push("pm");
  if (m.type === "announce") classes.push("announce");
  const own = m.from && m.from === chat.nick;
  if (own) classes.push("own");
  else if (m.text && m.type !== "announce" && mentions(m.text)) classes.push("mention");
  const action = typeof m.text === "string" && m.text.startsWith("/me ");
  if (action) classes.push("action");
  const grouped = prev && !m.notice && !prev.notice && prev.from === m.from && prev.type === m.type && m.type !== "announce" && !action
    && m.ts - prev.ts < GROUP_MS && day(m.ts) === day(prev.ts) && !(typeof prev.text === "string" && prev.text.startsWith("/me "));
  classes.push(grouped ? "cont" : "first");
  if (m.state) classes.push(m.state);
  const li = el("li", classes.join(" "));
  const when = new Date(m.ts || Date.now());
  const t = el("time", "", when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  t.dateTime = when.toISOString();
  t.title = when.toLocaleString([], { dateStyle: "full", timeStyle: "medium" });
  const body = el("div", "body");
  li.append(t, body);
  if (m.notice) {
    body.append(el("span", "text", m.notice));
    return li;
  }
  const from = m.type === "announce" ? "announcement" : m.from;
  if (action) {
    body.append(el("span", "from", "* " + from), linkified(m.text.slice(4)));
  } else {
    body.append(el("span", "from", from), linkified(m.text));
  }
  if (m.state === "pending") {
    body.append(el("span", "state", "sending…"));
  } else if (m.state === "failed") {
    const s = el("span", "state", m.error || "not sent");
    const again = el("button", "", "Retry");
    again.type = "button";
    again.onclick = () => retry(c, m);
    const drop = el("button", "", "Discard");
    drop.type = "button";
    drop.onclick = () => discard(c, m);
    s.append(again, drop);
    body.append(s);
  }
  return li;
}

// linkified makes a span of text in which http(s) addresses are links.
// Every piece is set with textContent; href is only ever an http(s) URL.
const URL_RE = /\bhttps?:\/\/[^\s<>"']*[^\s<>"'.,;:!?)\]}]/g;
function linkified(text) {
  const span = el("span", "text");
  let at = 0;
  for (const match of String(text).matchAll(URL_RE)) {
    if (match.index > at) span.append(document.createTextNode(text.slice(at, match.index)));
    let url = null;
    try { url = new URL(match[0]); } catch { /* not a URL */ }
    if (url && (url.protocol === "http:" || url.protocol === "https:")) {
      const a = el("a", "", match[0]);
      a.href = url.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      span.append(a);
    } else {
      span.append(document.createTextNode(match[0]));
    }
    at = match.index + match[0].length;
  }
  if (at < text.length) span.append(document.createTextNode(text.slice(at)));
  return span;
}

function renderAllRooms(rooms) {
  const list = $("all-rooms");
  const focused = document.activeElement?.dataset?.key;
  list.replaceChildren();
  for (const r of rooms) {
    const li = el("li");
    li.dataset.room = r.name;
    const b = el("button");
    b.type = "button";
    b.dataset.key = "room:" + r.name;
    b.setAttribute("aria-label", `join #${r.name}, ${r.members} here`);
    b.append(el("span", "name", "#" + r.name), el("span", "count", String(r.members)));
    b.onclick = () => join(r.name);
    li.append(b);
    list.append(li);
  }
  if (focused) document.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function updateTitle() {
  let n = 0;
  for (const c of chat.convos.values()) n += c.unread;
  document.title = n ? `(${n}) ${TITLE}` : TITLE;
  $("menu-dot").hidden = ![...chat.convos.values()].some((c) => c.unread && c.name !== chat.current);
}

function showChat() {
  $("login").hidden = true;
  $("chat").hidden = false;
}

function showLogin(error) {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error || "";
  status("");
  banner("");
  clearInterval(chat.countdownTimer);
  clearTimeout(chat.reconnectTimer);
  chat.reconnectTimer = null;
  if (chat.ws) { const ws = chat.ws; chat.ws = null; ws.close(); }
  $(chat.nick || !error ? "nick" : "token").focus();
}

let errorTimer;
function showError(text) {
  $("errors").textContent = text;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { $("errors").textContent = ""; }, 8000);
}

function showJoinError(text) {
  $("join-error").textContent = text;
  clearTimeout(showJoinError.timer);
  showJoinError.timer = setTimeout(() => { $("join-error").textContent = ""; }, 8000);
  if (window.matchMedia("(max-width: 700px)").matches && !$("side").classList.contains("open")) showError(text);
}

// --- drawers (phone) -------------------------------------------------------

function openDrawer(id, button) {
  closeDrawers();
  $(id).classList.add("open");
  $(button).setAttribute("aria-expanded", "true");
  $("backdrop").hidden = false;
  $(id).querySelector("button, input")?.focus();
}

function closeDrawers() {
  const wasOpen = $("side").classList.contains("open") || $("members-panel").classList.contains("open");
  $("side").classList.remove("open");
  $("members-panel").classList.remove("open");
  $("toggle-side").setAttribute("aria-expanded", "false");
  $("toggle-members").setAttribute("aria-expanded", "false");
  $("backdrop").hidden = true;
  return wasOpen;
}

// --- user actions ----------------------------------------------------------

function join(room) {
  const typed = room.trim();
  room = typed.replace(/^#/, "").toLowerCase();
  if (!room) return false;
  if (!ROOM_RE.test(room)) {
    showJoinError(`"${typed}" is not a room name: 1 to 32 of a-z, 0-9, _ or -`);
    return false;
  }
  if (chat.convos.has(room)) { select(room); return true; }
  chat.wantRoom = room;
  if (!send({ type: "join", room })) { showJoinError("not connected: try again when online"); return false; }
  return true;
}

const HELP = [
  "/join room — join or create a room",
  "/leave — leave this room",
  "/pm nick text — a private message (/pm nick opens the conversation)",
  "/me does something — an action",
  "/help — this list; start with // to send a line beginning with /",
  "Enter sends, Shift+Enter starts a new line.",
];

// say runs what the message box holds and reports whether it may be
// cleared: false keeps the typed text (a refused command, a bad room, too
// long, nowhere to send it).
function say(text) {
  if (!text.trim()) return false;
  const c = chat.convos.get(chat.current);
  if (text.startsWith("/") && !text.startsWith("//")) {
    const [, cmd, rest = ""] = text.match(/^\/(\S*)\s*([\s\S]*)$/);
    switch (cmd.toLowerCase()) {
      case "join": return rest.trim() ? join(rest) : (showError("/join needs a room: /join games"), false);
      case "leave": {
        const room = rest.trim() || chat.current;
        if (!room || room.startsWith("@") || !chat.convos.has(room)) { showError("/leave leaves a room you are in"); return false; }
        return send({ type: "leave", room }) || (showError("not connected"), false);
      }
      case "pm": {
        const pm = rest.match(/^(\S+)\s*([\s\S]*)$/);
        if (!pm || !NICK_RE.test(pm[1])) { showError("/pm needs a nick: /pm bob hello"); return false; }
        if (pm[1].toLowerCase() === chat.nick.toLowerCase()) { showError("that is you"); return false; }
        const target = convo("@" + pm[1]);
        if (!pm[2].trim()) { select(target.name); return true; }
        if (!fits(pm[2])) return false;
        select(target.name);
        sendLine(target, pm[2]);
        return true;
      }
      case "me":
        if (!rest.trim()) { showError("/me needs an action: /me waves"); return false; }
        if (!c) { showError("join a room first"); return false; }
        if (!fits("/me " + rest)) return false;
        sendLine(c, "/me " + rest);
        return true;
      case "help":
        if (c) { for (const h of HELP) addNotice(c, h); scrollToEnd(); } else showError(HELP.join(" · "));
        return true;
      default:
        showError(`unknown command /${cmd}: /help lists the commands (start with // to send a line beginning with /)`);
        return false;
    }
  }
  if (text.startsWith("//")) text = text.slice(1);
  if (!c) { showError("join a room first"); return false; }
  if (!fits(text)) return false;
  sendLine(c, text);
  return true;
}

// characters counts as the server does: UTF-8 characters, that is code points.
const characters = (text) => [...text].length;

function fits(text) {
  const n = characters(text);
  if (n > MAX_TEXT) { showError(`too long: ${n} characters, at most ${MAX_TEXT}`); return false; }
  return true;
}

function updateCount() {
  const n = characters($("text").value);
  const count = $("count");
  count.textContent = n > MAX_TEXT - 200 ? `${n}/${MAX_TEXT}` : "";
  count.classList.toggle("over", n > MAX_TEXT);
  const box = $("text");
  box.style.height = "auto";
  box.style.height = Math.min(box.scrollHeight + 2, 160) + "px";
}

$("login-form").onsubmit = (ev) => {
  ev.preventDefault();
  chat.nick = $("nick").value.trim();
  chat.token = $("token").value.trim();
  $("token").value = "";
  if (!chat.token && chat.auth === "required") { $("login-error").textContent = "this server needs a token: paste one from `moongate token`"; return; }
  if (!chat.nick && !chat.token) { $("login-error").textContent = chat.auth === "none" ? "pick a nick" : "pick a nick, or sign in with a token"; return; }
  if (!chat.token && !NICK_RE.test(chat.nick)) { $("login-error").textContent = "a nick is 1 to 24 of letters, digits, _ or -"; return; }
  $("login-error").textContent = "";
  connect();
};
$("join-form").onsubmit = (ev) => {
  ev.preventDefault();
  if (join($("room-input").value)) $("room-input").value = "";
};
$("say-form").onsubmit = (ev) => {
  ev.preventDefault();
  if (say($("text").value)) { $("text").value = ""; updateCount(); }
};
$("text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("say-form").requestSubmit();
  }
});
$("text").addEventListener("input", () => { updateCount(); sayTyping(); });
$("messages").addEventListener("scroll", () => { if (atBottom() && chat.newBelow) { chat.newBelow = 0; showNewBelow(); } });
$("new-below").onclick = () => { scrollToEnd(); $("text").focus(); };
$("notify").onclick = async () => {
  if (localStorage.getItem(NOTIFY_KEY) === "on" && Notification.permission === "granted") {
    localStorage.removeItem(NOTIFY_KEY);
  } else if ((await Notification.requestPermission()) === "granted") {
    localStorage.setItem(NOTIFY_KEY, "on");
  } else {
    showError("the browser does not allow notifications for this page");
  }
  renderNotify();
};
renderNotify();
$("refresh").onclick = () => send({ type: "rooms" });
$("retry-now").onclick = () => { if (!chat.ws) { chat.retry = 0; connect(); } };
$("toggle-side").onclick = () => ($("side").classList.contains("open") ? closeDrawers() : openDrawer("side", "toggle-side"));
$("toggle-members").onclick = () => ($("members-panel").classList.contains("open") ? closeDrawers() : openDrawer("members-panel", "toggle-members"));
$("backdrop").onclick = () => closeDrawers();
for (const b of document.querySelectorAll(".close-drawer")) b.onclick = () => { closeDrawers(); $("text").focus(); };
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && closeDrawers()) $("text").focus(); });
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && chat.current) { convo(chat.current).unread = 0; renderSide(); }
});
// Every 15 s: the room list, and who of the private partners is connected
// (one who shares no room with us sends no presence event).
setInterval(() => { if (chat.welcomed) { send({ type: "rooms" }); askOnline(); } }, 15000);

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

// learnEndpoint asks the endpoint what it accepts (docs/chat-protocol.md,
// "What the endpoint accepts"): the token field shows only when tokens
// are accepted, the nick field only when guests are.
async function learnEndpoint() {
  let info;
  try {
    const r = await fetch("/chat/api/info", { cache: "no-store" });
    if (!r.ok) return;
    info = await r.json();
  } catch { return; }
  if (Number.isInteger(info.max_text) && info.max_text > 0) MAX_TEXT = info.max_text;
  chat.auth = info.auth;
  const guests = info.auth !== "required", tokens = info.auth !== "none";
  for (const id of ["nick", "nick-label"]) $(id).hidden = !guests;
  for (const id of ["token", "token-label"]) $(id).hidden = !tokens;
  $("token-label").querySelector("small").hidden = !guests;
  if (!guests && document.activeElement === $("nick")) $("token").focus();
}
learnEndpoint();

// A reload resumes the session: same nick (a guest's) or sign-in (when the
// address brings a token), same rooms, same private conversations.
const saved = restore();
chat.token = takeUrlToken();
chat.current = typeof saved.current === "string" && saved.current ? convoKey(saved.current) : null;
for (const room of saved.rooms || []) if (ROOM_RE.test(room)) convo(room);
if (chat.token || (saved.nick && !saved.signedIn)) {
  chat.nick = chat.token ? "" : saved.nick;
  connect();
} else {
  if (saved.signedIn) $("login-error").textContent = "sign in again: your token is not kept when the page reloads";
  $("nick").focus();
}
