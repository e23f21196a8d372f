-- chat.lua: multi-room chat. The protocol is in docs/chat-protocol.md.
--
-- Everything shared lives in the Go core, so the service behaves the same
-- with one Lua state or many: nicks are claimed in the store (store.add is
-- atomic across states), rate limits and connection counts are store
-- counters, rooms and their history are the gateway's, and a client's nick
-- is an attribute.
--
-- A nick belongs to its owner: a signed-in user (all connections with the
-- token's sub) or one guest connection. Every connection of a nick's owner
-- is in the private room "~<nick>" (its inbox: a pm is a broadcast to it),
-- and counts of the owner's connections per room decide presence: join with
-- the first, leave with the last.

local chat = {}

local LIMIT = tonumber(options.rate_limit) or 20     -- say/pm per window
local JOIN_LIMIT = tonumber(options.join_limit) or 10 -- joins per window
local WINDOW = tonumber(options.rate_window) or 10   -- seconds
local NICK_HOLD = math.max(tonumber(options.nick_hold) or 86400, 1) -- seconds a signed-in nick stays its user's
local HISTORY = tonumber(options.history) or 50      -- messages kept per room
local MAX_TEXT = tonumber(options.max_text) or 2000  -- characters
local TYPING_WINDOW = math.max(tonumber(options.typing_window) or 3, 1) -- seconds between typing events of an owner in a room
local ANNOUNCE_SECRET = options.announce_secret_env or "MOONGATE_ANNOUNCE_SECRET" -- names the variable
local MAX_ONLINE = 50 -- nicks one online request may ask about

-- replies ------------------------------------------------------------------

local function send(client, msg)
  client:send(json.encode(msg))
end

local function fail(client, code, message, ref)
  send(client, { type = "error", code = code, message = message, ref = ref })
end

-- validation ---------------------------------------------------------------

local function valid_nick(nick)
  return type(nick) == "string" and #nick >= 1 and #nick <= 24 and nick:match("^[A-Za-z0-9_%-]+$") ~= nil
end

local function valid_room(room)
  return type(room) == "string" and #room >= 1 and #room <= 32 and room:match("^[a-z0-9_%-]+$") ~= nil
end

-- characters counts UTF-8 characters (bytes that do not continue a sequence).
local function characters(text)
  local _, n = text:gsub("[^\128-\191]", "")
  return n
end

local function nick_key(nick)
  return "nick:" .. nick:lower()
end

-- owner_of names who a client's nick belongs to: the signed-in user, or
-- the guest connection itself.
local function owner_of(client)
  if client.user then return "user:" .. client.user end
  return "guest:" .. client.id
end

-- inbox is the private room of a nick's owner ("~" is not allowed in a
-- room name a client asks for, and the gateway does not list such rooms).
local function inbox(nick)
  return "~" .. nick:lower()
end

-- nick_from_token turns a token's name (or, when the name is not a
-- non-empty string, its sub) into a nick.
local function nick_from_token(client)
  local name = client.claims.name
  if type(name) ~= "string" or name == "" then name = client.user end
  return (name:gsub("[^A-Za-z0-9_%-]", "_"):sub(1, 24))
end

-- member_nicks lists each nick in room once, in the order they joined.
local function member_nicks(room)
  local nicks, seen = {}, {}
  for _, member in ipairs(rooms.members(room)) do
    local nick = member:get("nick")
    if nick and not seen[nick] then
      seen[nick] = true
      nicks[#nicks + 1] = nick
    end
  end
  return json.array(nicks)
end

-- limited counts one request of a kind against the owner's window.
local function limited(kind, limit, client)
  return store.incr(kind .. ":" .. owner_of(client), 1, WINDOW) > limit
end

-- rate_limited counts a say or pm against the owner's window.
local function rate_limited(client)
  return limited("rate", LIMIT, client)
end

local function check_text(client, text, ref)
  if type(text) ~= "string" then
    fail(client, "bad_request", "missing field: text", ref)
    return false
  end
  if characters(text) > MAX_TEXT then
    fail(client, "too_long", "text is longer than " .. MAX_TEXT .. " characters", ref)
    return false
  end
  if rate_limited(client) then
    fail(client, "rate_limited", "too many messages: at most " .. LIMIT .. " every " .. WINDOW .. " s", ref)
    return false
  end
  return true
end

local function presence(room, nick, event, except)
  rooms.broadcast(room, json.encode({ type = "presence", room = room, nick = nick, event = event }), except)
end

-- nick claims ------------------------------------------------------------------
--
-- "nick:<nick>" holds the owner. A guest's claim is removed when the guest
-- closes. A signed-in user's connections with the nick are counted in
-- "conns:<nick>:<sub>"; when the last one closes the claim is kept for
-- NICK_HOLD seconds, so nobody else can take the nick meanwhile, and the
-- user's next connection makes it permanent again.

local function conns_key(nick, client)
  return "conns:" .. nick:lower() .. ":" .. client.user
end

-- uncount takes one from a counter and drops it at zero (or below: a
-- count an earlier version of this script never made).
local function uncount(key)
  local n = store.incr(key, -1)
  if n <= 0 then store.del(key, n) end
  return n
end

local function taken(nick, holder)
  if type(holder) == "string" and holder:sub(1, 5) == "user:" then
    return "the nick " .. nick .. " belongs to a signed-in user"
  end
  return "the nick " .. nick .. " is taken"
end

-- claim makes nick client's, or returns false and why not.
local function claim(client, nick)
  local key, owner = nick_key(nick), owner_of(client)
  if not client.user then
    -- bound to the connection: gone with it, even if close never runs
    if store.add(key, owner, { owner = client }) then return true end
    return false, taken(nick, store.get(key))
  end
  local count = conns_key(nick, client)
  store.incr(count, 1) -- before the claim: a closing connection of the same user sees it
  for _ = 1, 3 do
    if store.add(key, owner) then return true end
    local holder = store.get(key)
    if holder == owner then
      store.set(key, owner) -- no expiry while the user has a connection
      return true
    elseif holder ~= nil then
      uncount(count)
      return false, taken(nick, holder)
    end
  end
  uncount(count)
  return false, taken(nick)
end

-- release gives up client's claim on nick: at once for a guest, after
-- NICK_HOLD seconds for a signed-in user's last connection.
local function release(client, nick)
  local key, owner = nick_key(nick), owner_of(client)
  store.del(key, client.id) -- a claim made by an earlier version of this script
  if not client.user then
    store.del(key, owner)
    return
  end
  local count = conns_key(nick, client)
  if uncount(count) > 0 or store.get(key) ~= owner then return end
  store.set(key, owner, NICK_HOLD)
  if (store.get(count) or 0) > 0 then
    store.set(key, owner) -- a connection of the same user said hello meanwhile
  end
end

-- presence of owners --------------------------------------------------------------
--
-- "in:<room>:<owner>" counts the owner's connections in a room and
-- "users:<room>" the owners in it.

local function in_key(room, client)
  return "in:" .. room .. ":" .. owner_of(client)
end

-- entered counts client in room and announces its owner's first connection.
local function entered(room, client, nick)
  if store.incr(in_key(room, client), 1) == 1 then
    store.incr("users:" .. room, 1)
    presence(room, nick, "join", client)
  end
end

-- departed uncounts client from room (which it has left) and announces its
-- owner's last connection. Should another connection of the owner have
-- joined meanwhile, whose join may have been announced first, the join is
-- announced again, so that the last word members hear is the truth.
local function departed(room, client, nick)
  local key = in_key(room, client)
  if uncount(key) > 0 then return end
  uncount("users:" .. room)
  presence(room, nick, "leave")
  if (store.get(key) or 0) > 0 then
    presence(room, nick, "join")
  end
end

-- ids and durable history ----------------------------------------------------
--
-- A message's id is the number rooms.reserve gives it: greater than every
-- number the service gave before (on every node of a cluster), and a
-- room's messages reach everyone in the order of their numbers, so ids
-- increase within a room in the order its members receive them.
--
-- With a database granted to the endpoint (the first of its databases:),
-- every room message is stored there under its id before anyone receives
-- it: after a restart a join still returns the room's last HISTORY
-- messages, and the numbering starts above every stored id. Without a
-- database, history lasts as long as the process, and ids carry the start
-- time as a prefix so that they never repeat across restarts.

local DB = service.databases[1]
local INSERT = "INSERT INTO chat_messages (id, room, body) VALUES (?, ?, ?)"

local function create_schema()
  db.exec(DB, "CREATE TABLE IF NOT EXISTS chat_messages (id BIGINT PRIMARY KEY, room TEXT NOT NULL, body TEXT NOT NULL)")
  db.exec(DB, "CREATE INDEX IF NOT EXISTS chat_messages_room ON chat_messages (room, id)")
end

-- raise_numbers makes every number given from now on greater than every
-- stored id, and returns that top (the reservation it makes is given up
-- when the handler returns).
local function raise_numbers(room)
  local top = db.query(DB, "SELECT COALESCE(MAX(id), 0) AS top FROM chat_messages")[1].top
  return rooms.reserve(room, top)
end

-- recover puts each room's last stored messages back into the room's
-- history, once per process (a reload finds it done; in a cluster, once
-- for all the nodes).
local function recover()
  if not store.add("chat:recovered", true) then return end
  local rows = db.query(DB, [[SELECT room, body FROM (
      SELECT room, body, id, ROW_NUMBER() OVER (PARTITION BY room ORDER BY id DESC) AS n FROM chat_messages
    ) AS recent WHERE n <= ? ORDER BY id]], HISTORY)
  for _, row in ipairs(rows) do
    rooms.publish(row.room, row.body, { history = HISTORY }) -- nobody is in the room yet: history only
  end
end

-- epoch is the id prefix without a database: the time the first state
-- of the process (or of the cluster) started.
local function epoch()
  local at = store.get("chat:epoch")
  if at then return at end
  store.add("chat:epoch", tostring(clock.millis()))
  return store.get("chat:epoch")
end

local function id_text(n)
  if DB then return tostring(n) end
  return epoch() .. "-" .. n
end

-- store_message stores a message numbered n; if the numbering fell
-- below the stored ids (a cluster's Redis came back empty) it raises the
-- numbering once and stores it under a new number. It returns the
-- number and the body stored.
local function store_message(room, message, n)
  message.id = id_text(n)
  local body = json.encode(message)
  if DB and not pcall(db.exec, DB, INSERT, n, room, body) then
    n = raise_numbers(room)
    message.id = id_text(n)
    body = json.encode(message)
    db.exec(DB, INSERT, n, room, body)
  end
  return n, body
end

-- publish gives message an id and sends it to the room, keeping it in the
-- room's history; with a database, only once it is stored there. It
-- returns false and the error when the message could not be stored.
local function publish(room, message)
  return pcall(function()
    local n, body = store_message(room, message, rooms.reserve(room))
    rooms.publish(room, body, { history = HISTORY, number = n })
  end)
end

-- requests -----------------------------------------------------------------

local requests = {}

-- chosen_nick returns the nick a hello asks for, or nil, an error code and
-- a message. A signed-in user chats as the token's name.
local function chosen_nick(client, asked)
  if client.claims then
    if not client.user then
      return nil, "invalid_nick", "the token has no user id (sub)"
    end
    local own = nick_from_token(client)
    if asked ~= nil and asked ~= own then
      return nil, "invalid_nick", "signed-in users chat as " .. own
    end
    asked = own
  end
  if asked == nil then
    return nil, "bad_request", "missing field: nick"
  end
  if not valid_nick(asked) then
    return nil, "invalid_nick", "a nick is 1 to 24 letters, digits, _ or -"
  end
  return asked
end

function requests.hello(client, msg)
  if client:get("nick") then
    return fail(client, "bad_request", "hello was already said on this connection", "hello")
  end
  local nick, code, why = chosen_nick(client, msg.nick)
  if not nick then
    return fail(client, code, why, "hello")
  end
  local ok, reason = claim(client, nick)
  if not ok then
    return fail(client, "nick_taken", reason, "hello")
  end
  client:set("nick", nick)
  rooms.join(inbox(nick), client)
  send(client, { type = "welcome", id = client.id, nick = nick })
end

function requests.join(client, msg, nick)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "join") end
  if not valid_room(room) then
    return fail(client, "invalid_room", "a room is 1 to 32 of a-z, 0-9, _ or -", "join")
  end
  local since = msg.since
  if since ~= nil and (type(since) ~= "string" or since == "") then
    return fail(client, "bad_request", "since is the id of a message, a string", "join")
  end
  if limited("joins", JOIN_LIMIT, client) then
    return fail(client, "rate_limited", "too many joins: at most " .. JOIN_LIMIT .. " every " .. WINDOW .. " s", "join")
  end
  local joined, history = rooms.join(room, client, HISTORY)
  -- since: when that message is in the history, only what came after it.
  -- Entries are JSON made by json.encode, where "id":"<id>" (quotes
  -- unescaped) can only be the message's own id.
  local found = nil
  if since then
    local key = '"id":' .. json.encode(since)
    for i = #history, 1, -1 do
      if history[i]:find(key, 1, true) then
        local after = {}
        for j = i + 1, #history do after[#after + 1] = history[j] end
        history, found = after, since
        break
      end
    end
  end
  -- history entries are already JSON: splice them in rather than decode them.
  local recovered = nil
  if since then recovered = found ~= nil end
  local reply = json.encode({ type = "joined", room = room, members = member_nicks(room), since = found,
    recovered = recovered, history = json.array() })
  local at = reply:find('"history":[]', 1, true)
  reply = reply:sub(1, at + 10) .. table.concat(history, ",") .. reply:sub(at + 11)
  client:send(reply)
  if joined then
    entered(room, client, nick)
  end
end

function requests.say(client, msg, nick)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "say") end
  if not valid_room(room) then return fail(client, "invalid_room", "no such room name: " .. tostring(room), "say") end
  if not rooms.has(room, client) then
    return fail(client, "not_joined", "join " .. room .. " before saying something there", "say")
  end
  if not check_text(client, msg.text, "say") then return end
  local ok, err = publish(room, { type = "message", room = room, from = nick, text = msg.text, ts = clock.millis() })
  if not ok then
    log.error("chat: a message could not be stored", { room = room, err = tostring(err) })
    return fail(client, "unavailable", "the message could not be stored; try again", "say")
  end
end

-- typing tells the other members of a room that nick is typing there: at
-- most one event per owner and room every TYPING_WINDOW seconds; the rest
-- are dropped without an error (a typing signal is advisory).
function requests.typing(client, msg, nick)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "typing") end
  if not valid_room(room) then return fail(client, "invalid_room", "no such room name: " .. tostring(room), "typing") end
  if not rooms.has(room, client) then
    return fail(client, "not_joined", "join " .. room .. " before typing there", "typing")
  end
  if store.incr("typing:" .. owner_of(client) .. ":" .. room, 1, TYPING_WINDOW) > 1 then return end
  rooms.broadcast(room, json.encode({ type = "typing", room = room, nick = nick }), client)
end

function requests.leave(client, msg, nick)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "leave") end
  if not valid_room(room) then return fail(client, "invalid_room", "no such room name: " .. tostring(room), "leave") end
  if not rooms.leave(room, client) then
    return fail(client, "not_joined", "you are not in " .. room, "leave")
  end
  send(client, { type = "left", room = room })
  departed(room, client, nick)
end

function requests.who(client, msg)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "who") end
  if not valid_room(room) then return fail(client, "invalid_room", "no such room name: " .. tostring(room), "who") end
  send(client, { type = "members", room = room, members = member_nicks(room) })
end

function requests.rooms(client)
  local list = rooms.list() -- private rooms (inboxes) are not listed
  for _, r in ipairs(list) do
    r.members = tonumber(store.get("users:" .. r.name)) or r.members
  end
  send(client, { type = "rooms", rooms = json.array(list) })
end

-- online tells which of the nicks asked about are connected now: a nick is
-- online while a connection of its owner is in its inbox. At most
-- MAX_ONLINE nicks a request; like who and rooms it is not rate-limited
-- (it is bounded, and costs one room count per nick).
function requests.online(client, msg)
  local nicks = msg.nicks
  if nicks == nil then return fail(client, "bad_request", "missing field: nicks", "online") end
  local list = "nicks is a list of nicks"
  if type(nicks) ~= "table" then return fail(client, "bad_request", list, "online") end
  local n = 0
  for k in pairs(nicks) do -- a decoded list has the keys 1 to n; an object has strings
    if type(k) ~= "number" then return fail(client, "bad_request", list, "online") end
    n = n + 1
    if n > MAX_ONLINE then
      return fail(client, "bad_request", "at most " .. MAX_ONLINE .. " nicks at once", "online")
    end
  end
  local answer = {}
  for i = 1, n do
    local asked = nicks[i]
    if not valid_nick(asked) then
      return fail(client, "invalid_nick", "nicks[" .. i .. "]: a nick is 1 to 24 letters, digits, _ or -", "online")
    end
    answer[asked] = rooms.count(inbox(asked)) > 0
  end
  send(client, { type = "online", nicks = answer }) -- an empty table encodes as {}
end

function requests.pm(client, msg, nick)
  if type(msg.to) ~= "string" then return fail(client, "bad_request", "missing field: to", "pm") end
  local box = valid_nick(msg.to) and inbox(msg.to)
  local to = box and rooms.members(box)[1]
  if not to then
    return fail(client, "no_such_user", "nobody is called " .. msg.to, "pm")
  end
  if not check_text(client, msg.text, "pm") then return end
  local ok, n = pcall(rooms.reserve, box)
  if not ok then
    log.error("chat: no id for a pm", { err = tostring(n) })
    return fail(client, "unavailable", "the message could not be sent; try again", "pm")
  end
  local pm = json.encode({ type = "pm", from = nick, to = to:get("nick"), text = msg.text, ts = clock.millis(),
    id = id_text(n) })
  rooms.publish(box, pm, { number = n }) -- every connection of the addressee
  if box ~= inbox(nick) then
    rooms.broadcast(inbox(nick), pm) -- and of the sender
  end
end

-- the HTTP API -------------------------------------------------------------

local api = {}

local function api_error(status, code, message, headers)
  return status, { error = code, message = message }, headers
end

-- POST /chat/api/announce {"room": "...", "text": "..."} publishes an
-- announce to the room, kept in its history; the caller shows the secret
-- of ANNOUNCE_SECRET as Authorization: Bearer <secret>.
api["/api/announce"] = function(req)
  if req.method ~= "POST" then
    return api_error(405, "method_not_allowed", "announce takes POST", { Allow = "POST" })
  end
  local auth = req.headers.authorization
  local given = type(auth) == "string" and auth:match("^[Bb]earer +(.+)$")
  if not given or not secrets.equal(ANNOUNCE_SECRET, given) then
    return api_error(401, "unauthorized", "give the announce secret as Authorization: Bearer <secret>",
      { ["WWW-Authenticate"] = "Bearer" })
  end
  local msg = json.decode(req.body)
  if type(msg) ~= "table" then
    return api_error(400, "bad_request", "the body is a JSON object: {\"room\": ..., \"text\": ...}")
  end
  if msg.room == nil then return api_error(400, "bad_request", "missing field: room") end
  if not valid_room(msg.room) then
    return api_error(400, "invalid_room", "a room is 1 to 32 of a-z, 0-9, _ or -")
  end
  local text = msg.text
  if type(text) ~= "string" or text == "" then return api_error(400, "bad_request", "missing field: text") end
  if characters(text) > MAX_TEXT then
    return api_error(400, "too_long", "text is longer than " .. MAX_TEXT .. " characters")
  end
  local announce = { type = "announce", room = msg.room, text = text, ts = clock.millis() }
  local ok, err = publish(msg.room, announce)
  if not ok then
    log.error("chat: an announce could not be stored", { room = msg.room, err = tostring(err) })
    return api_error(503, "unavailable", "the announce could not be stored; try again", { ["Retry-After"] = "1" })
  end
  return 200, { id = announce.id }
end

-- handlers -----------------------------------------------------------------

-- chat.http answers the HTTP API below the endpoint's path. Without the
-- announce secret configured only /api/info is there (the rest is 404).
-- GET /chat/api/info tells a page what the endpoint accepts, with or
-- without the announce secret: its sign-in (service.auth: "none",
-- "optional" or "required") and the longest text, in characters.
local function info(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return api_error(405, "method_not_allowed", "info takes GET", { Allow = "GET" })
  end
  return 200, { auth = service.auth, max_text = MAX_TEXT }
end

function chat.http(req)
  local below = req.path:sub(#service.path + 1)
  if below == "/api/info" then return info(req) end
  local handle = api[below]
  if not handle or not secrets.configured(ANNOUNCE_SECRET) then
    return api_error(404, "not_found", "no such API: " .. req.path)
  end
  return handle(req)
end

function chat.start()
  if DB then
    create_schema()
    raise_numbers("~ids")
    recover()
  end
end

function chat.message(client, data, kind)
  if kind ~= "text" then
    return fail(client, "bad_request", "the chat protocol uses JSON text frames", nil)
  end
  local msg = json.decode(data)
  if type(msg) ~= "table" then
    return fail(client, "bad_request", "a request is a JSON object", nil)
  end
  local kind_of = msg.type
  if type(kind_of) ~= "string" then
    return fail(client, "bad_request", "missing field: type", nil)
  end
  local handle = requests[kind_of]
  if not handle then
    return fail(client, "unknown_type", "unknown request type: " .. kind_of, kind_of)
  end
  local nick = client:get("nick")
  if not nick and kind_of ~= "hello" then
    return fail(client, "hello_first", "say hello with a nick first", kind_of)
  end
  local ok, err = pcall(handle, client, msg, nick)
  if not ok then
    -- What the request needed could not be done (in a cluster, Redis out
    -- of reach, say): the client hears so, and the error is reported as
    -- any handler's is, with its script:line.
    fail(client, "unavailable", "the server cannot do that now; try again", kind_of)
    error(err, 0)
  end
end

function chat.close(client)
  local nick = client:get("nick")
  if not nick then return end
  local own = inbox(nick)
  -- the inbox first: once a leave is heard, a pm to the nick must not
  -- reach this connection
  rooms.leave(own, client)
  for _, room in ipairs(client:rooms()) do
    rooms.leave(room, client) -- first, so whoever hears of it no longer sees the client there
    departed(room, client, nick)
  end
  release(client, nick)
  if not client.user then -- a guest's windows end with it; a user's run on
    store.del("rate:" .. owner_of(client))
    store.del("joins:" .. owner_of(client))
  end
end

return chat
