-- chat.lua: multi-room chat. The protocol is in docs/chat-protocol.md.
--
-- Everything shared lives in the Go core, so the service behaves the same
-- with one Lua state or many: nicks are claimed in the store (store.add is
-- atomic across states), rate limits are store counters that expire, rooms
-- and their history are the gateway's, and a client's nick is an attribute.

local chat = {}

local LIMIT = tonumber(options.rate_limit) or 20     -- say/pm per window
local WINDOW = tonumber(options.rate_window) or 10   -- seconds
local HISTORY = tonumber(options.history) or 50      -- messages kept per room
local MAX_TEXT = tonumber(options.max_text) or 2000  -- characters

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

-- nick_from_token turns a token's name (or sub) into a valid nick.
local function nick_from_token(claims)
  local name = tostring(claims.name or claims.sub or "")
  name = name:gsub("[^A-Za-z0-9_%-]", "_"):sub(1, 24)
  return name
end

local function member_nicks(room)
  local nicks = {}
  for _, member in ipairs(rooms.members(room)) do
    nicks[#nicks + 1] = member:get("nick")
  end
  return json.array(nicks)
end

-- rate_limited counts a say or pm against the client's window.
local function rate_limited(client)
  return store.incr("rate:" .. client.id, 1, WINDOW) > LIMIT
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

local function next_id()
  return tostring(store.incr("chat:seq"))
end

-- requests -----------------------------------------------------------------

local requests = {}

function requests.hello(client, msg)
  if client:get("nick") then
    return fail(client, "bad_request", "hello was already said on this connection", "hello")
  end
  local nick = msg.nick
  if client.claims then
    local own = nick_from_token(client.claims)
    if nick == nil then
      nick = own
    elseif service.auth == "required" and nick ~= own then
      return fail(client, "invalid_nick", "signed-in users chat as " .. own, "hello")
    end
  end
  if nick == nil then
    return fail(client, "bad_request", "missing field: nick", "hello")
  end
  if not valid_nick(nick) then
    return fail(client, "invalid_nick", "a nick is 1 to 24 letters, digits, _ or -", "hello")
  end
  if not store.add(nick_key(nick), client.id) then
    return fail(client, "nick_taken", "the nick " .. nick .. " is taken", "hello")
  end
  client:set("nick", nick)
  send(client, { type = "welcome", id = client.id, nick = nick })
end

function requests.join(client, msg, nick)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "join") end
  if not valid_room(room) then
    return fail(client, "invalid_room", "a room is 1 to 32 of a-z, 0-9, _ or -", "join")
  end
  local joined, history = rooms.join(room, client, HISTORY)
  -- history entries are already JSON: splice them in rather than decode them.
  local reply = json.encode({ type = "joined", room = room, members = member_nicks(room), history = json.array() })
  local at = reply:find('"history":[]', 1, true)
  reply = reply:sub(1, at + 10) .. table.concat(history, ",") .. reply:sub(at + 11)
  client:send(reply)
  if joined then
    presence(room, nick, "join", client)
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
  local message = { type = "message", room = room, from = nick, text = msg.text, ts = clock.millis(), id = next_id() }
  rooms.publish(room, json.encode(message), { history = HISTORY })
end

function requests.leave(client, msg, nick)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "leave") end
  if not valid_room(room) then return fail(client, "invalid_room", "no such room name: " .. tostring(room), "leave") end
  if not rooms.leave(room, client) then
    return fail(client, "not_joined", "you are not in " .. room, "leave")
  end
  send(client, { type = "left", room = room })
  presence(room, nick, "leave")
end

function requests.who(client, msg)
  local room = msg.room
  if room == nil then return fail(client, "bad_request", "missing field: room", "who") end
  if not valid_room(room) then return fail(client, "invalid_room", "no such room name: " .. tostring(room), "who") end
  send(client, { type = "members", room = room, members = member_nicks(room) })
end

function requests.rooms(client)
  send(client, { type = "rooms", rooms = json.array(rooms.list()) })
end

function requests.pm(client, msg, nick)
  if type(msg.to) ~= "string" then return fail(client, "bad_request", "missing field: to", "pm") end
  local id = valid_nick(msg.to) and store.get(nick_key(msg.to))
  local to = id and clients.get(id)
  if not to then
    return fail(client, "no_such_user", "nobody is called " .. msg.to, "pm")
  end
  if not check_text(client, msg.text, "pm") then return end
  local pm = json.encode({ type = "pm", from = nick, to = to:get("nick"), text = msg.text, ts = clock.millis(), id = next_id() })
  to:send(pm)
  if to ~= client then client:send(pm) end
end

-- handlers -----------------------------------------------------------------

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
  handle(client, msg, nick)
end

function chat.close(client)
  local nick = client:get("nick")
  if not nick then return end
  for _, room in ipairs(client:rooms()) do
    rooms.leave(room, client) -- first, so whoever hears of it no longer sees the client there
    presence(room, nick, "leave")
  end
  store.del(nick_key(nick), client.id)
  store.del("rate:" .. client.id)
end

return chat
