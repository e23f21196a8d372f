-- Tests of the chat protocol (docs/chat-protocol.md) against chat.lua as
-- config.example.yaml serves it: `moongate test` (or `make test`) runs
-- them; docs/testing.md describes the API. Each test gets a fresh service,
-- store and database, and a virtual clock that moves only with t:advance.

local tests = {}

-- request sends one request, encoded as JSON.
local function request(c, msg)
  c:send(json.encode(msg))
end

-- guest connects a guest and says hello as nick.
local function guest(t, nick)
  local c = t:connect()
  request(c, { type = "hello", nick = nick })
  c:expect { type = "welcome", nick = nick }
  return c
end

-- join joins room and takes the joined reply.
local function join(c, room)
  request(c, { type = "join", room = room })
  return c:expect { type = "joined", room = room }
end

-- failure expects the error code for the request type ref.
local function failure(c, code, ref)
  return c:expect { type = "error", code = code, ref = ref }
end

function tests.test_hello_welcomes_with_the_client_id(t)
  local a = t:connect()
  request(a, { type = "hello", nick = "alice" })
  local w = a:expect { type = "welcome", nick = "alice" }
  if w.id ~= a:id() then t:fail("welcome id", w.id, "is not the client's id", a:id()) end
  a:expect_nothing()
end

function tests.test_requests_before_hello_are_refused(t)
  local a = t:connect()
  for _, kind in ipairs { "join", "say", "leave", "who", "rooms", "pm", "online" } do
    request(a, { type = kind, room = "lobby", text = "hi", to = "bob", nicks = { "bob" } })
    failure(a, "hello_first", kind)
  end
end

function tests.test_bad_requests(t)
  local a = t:connect()
  a:send("not json")
  local e = failure(a, "bad_request")
  if e.ref ~= nil and e.ref ~= "" then t:fail("a request without a type has no ref, got", e.ref) end
  a:send("42")
  failure(a, "bad_request")
  a:send('{"nick":"alice"}')
  a:expect { type = "error", code = "bad_request", message = "missing field: type" }
  a:send_binary("\1\2")
  a:expect { type = "error", code = "bad_request", message = "the chat protocol uses JSON text frames" }
  request(a, { type = "hello" })
  a:expect { type = "error", code = "bad_request", message = "missing field: nick", ref = "hello" }
  request(a, { type = "hello", nick = "alice" })
  a:expect { type = "welcome" }
  request(a, { type = "hello", nick = "alice" })
  failure(a, "bad_request", "hello")
  for _, kind in ipairs { "join", "say", "leave", "who" } do
    request(a, { type = kind })
    a:expect { type = "error", code = "bad_request", message = "missing field: room", ref = kind }
  end
  join(a, "lobby")
  request(a, { type = "say", room = "lobby" })
  a:expect { type = "error", code = "bad_request", message = "missing field: text", ref = "say" }
  request(a, { type = "pm", text = "psst" })
  a:expect { type = "error", code = "bad_request", message = "missing field: to", ref = "pm" }
  request(a, { type = "pm", to = "alice" })
  a:expect { type = "error", code = "bad_request", message = "missing field: text", ref = "pm" }
end

function tests.test_unknown_type(t)
  local a = guest(t, "alice")
  request(a, { type = "dance" })
  failure(a, "unknown_type", "dance")
end

function tests.test_invalid_nicks(t)
  local a = t:connect()
  for _, nick in ipairs { "", "bad nick", "émile", string.rep("x", 25) } do
    request(a, { type = "hello", nick = nick })
    failure(a, "invalid_nick", "hello")
  end
  request(a, { type = "hello", nick = string.rep("x", 24) })
  a:expect { type = "welcome" }
end

function tests.test_nicks_are_unique_without_regard_to_case(t)
  local a = guest(t, "Alice")
  local b = t:connect()
  request(b, { type = "hello", nick = "alice" })
  failure(b, "nick_taken", "hello")
  a:close()
  request(b, { type = "hello", nick = "alice" }) -- a guest's nick is freed when it leaves
  b:expect { type = "welcome", nick = "alice" }
end

function tests.test_invalid_rooms(t)
  local a = guest(t, "alice")
  for _, kind in ipairs { "join", "say", "leave", "who" } do
    for _, room in ipairs { "Lobby", "", "~alice", string.rep("r", 33) } do
      request(a, { type = kind, room = room, text = "hi" })
      failure(a, "invalid_room", kind)
    end
  end
end

function tests.test_not_joined(t)
  local a = guest(t, "alice")
  request(a, { type = "say", room = "lobby", text = "hi" })
  failure(a, "not_joined", "say")
  request(a, { type = "leave", room = "lobby" })
  failure(a, "not_joined", "leave")
end

function tests.test_join_presence_who_and_rooms(t)
  local a, b = guest(t, "alice"), guest(t, "bob")
  local joined = join(a, "lobby")
  if #joined.members ~= 1 or #joined.history ~= 0 then t:fail("a new room:", json.encode(joined)) end
  join(b, "lobby")
  a:expect { type = "presence", room = "lobby", nick = "bob", event = "join" }
  b:expect_nothing() -- no presence of one's own join
  join(b, "lobby") -- joining again answers joined, with no presence
  b:expect_nothing()
  a:expect_nothing()
  request(a, { type = "who", room = "lobby" })
  a:expect { type = "members", room = "lobby", members = { "alice", "bob" } }
  request(a, { type = "rooms" })
  a:expect { type = "rooms", rooms = { { name = "lobby", members = 2 } } }
  request(b, { type = "leave", room = "lobby" })
  b:expect { type = "left", room = "lobby" }
  a:expect { type = "presence", room = "lobby", nick = "bob", event = "leave" }
  request(a, { type = "who", room = "lobby" })
  a:expect { type = "members", members = { "alice" } }
end

function tests.test_say_reaches_every_member_with_the_virtual_time(t)
  local a, b, c = guest(t, "alice"), guest(t, "bob"), guest(t, "carol")
  join(a, "lobby")
  join(b, "lobby")
  a:expect { type = "presence", nick = "bob" }
  request(a, { type = "say", room = "lobby", text = "hi" })
  local m = a:expect { type = "message", room = "lobby", from = "alice", text = "hi" }
  b:expect { type = "message", room = "lobby", from = "alice", text = "hi", id = m.id }
  c:expect_nothing() -- not a member
  if m.ts ~= math.floor(t:now() * 1000) then t:fail("ts", m.ts, "is not the virtual time", t:now()) end
  t:advance(5)
  request(b, { type = "say", room = "lobby", text = "later" })
  local later = b:expect { type = "message", text = "later" }
  if later.ts - m.ts ~= 5000 then t:fail("5 virtual seconds apart, got", later.ts - m.ts, "ms") end
  if tonumber(later.id) <= tonumber(m.id) then t:fail("ids grow:", m.id, later.id) end
end

function tests.test_history_on_join(t)
  local a = guest(t, "alice")
  join(a, "lobby")
  for i = 1, 3 do
    request(a, { type = "say", room = "lobby", text = "m" .. i })
    a:expect { type = "message", text = "m" .. i }
  end
  local b = guest(t, "bob")
  local joined = join(b, "lobby")
  local want = { { text = "m1", from = "alice" }, { text = "m2" }, { text = "m3" } }
  if #joined.history ~= #want then t:fail("history:", json.encode(joined.history)) end
  for i, w in ipairs(want) do
    for k, v in pairs(w) do
      if joined.history[i][k] ~= v then t:fail("history[" .. i .. "]." .. k, joined.history[i][k], "~=", v) end
    end
  end
end

function tests.test_join_since_an_id_returns_only_what_came_after(t)
  local a = guest(t, "alice")
  join(a, "lobby")
  local ids = {}
  for i = 1, 4 do
    request(a, { type = "say", room = "lobby", text = "m" .. i })
    ids[i] = a:expect({ type = "message", text = "m" .. i }).id
  end
  local b = guest(t, "bob")
  request(b, { type = "join", room = "lobby", since = ids[2] })
  local j = b:expect { type = "joined", room = "lobby", since = ids[2], recovered = true }
  if #j.history ~= 2 or j.history[1].text ~= "m3" or j.history[2].text ~= "m4" then
    t:fail("history after", ids[2], ":", json.encode(j.history))
  end
  request(b, { type = "join", room = "lobby", since = ids[4] }) -- up to date
  j = b:expect { type = "joined", room = "lobby", since = ids[4], recovered = true }
  if #j.history ~= 0 then t:fail("history after the last:", json.encode(j.history)) end
  request(b, { type = "join", room = "lobby", since = "no-such-id" }) -- unknown: all of it, no since
  j = b:expect { type = "joined", room = "lobby" }
  if #j.history ~= 4 or j.since ~= nil or j.recovered ~= false then t:fail("history after an unknown id:", json.encode(j)) end
  request(b, { type = "join", room = "lobby", since = 42 })
  failure(b, "bad_request", "join")
end

function tests.test_too_long(t)
  local a, b = guest(t, "alice"), guest(t, "bob")
  join(a, "lobby")
  request(a, { type = "say", room = "lobby", text = string.rep("x", 2001) })
  failure(a, "too_long", "say")
  request(a, { type = "pm", to = "bob", text = string.rep("x", 2001) })
  failure(a, "too_long", "pm")
  request(a, { type = "say", room = "lobby", text = string.rep("é", 2000) }) -- characters, not bytes
  a:expect { type = "message" }
  b:expect_nothing()
end

function tests.test_pm(t)
  local a, b = guest(t, "alice"), guest(t, "bob")
  request(a, { type = "pm", to = "BOB", text = "psst" })
  local pm = b:expect { type = "pm", from = "alice", to = "bob", text = "psst" }
  a:expect { type = "pm", from = "alice", to = "bob", text = "psst", id = pm.id }
  request(a, { type = "pm", to = "nobody", text = "hello?" })
  failure(a, "no_such_user", "pm")
  request(a, { type = "pm", to = "not a nick", text = "hello?" })
  failure(a, "no_such_user", "pm")
end

-- online expects the answer to an online request for nicks, which must
-- name exactly the nicks in want.
local function online(t, c, nicks, want)
  request(c, { type = "online", nicks = nicks })
  local got = c:expect { type = "online", nicks = want }
  local n, m = 0, 0
  for _ in pairs(got.nicks) do n = n + 1 end
  for _ in pairs(want) do m = m + 1 end
  if n ~= m then t:fail("online answered for", json.encode(got.nicks), "want", json.encode(want)) end
end

function tests.test_online_tells_who_is_connected(t)
  local a, b = guest(t, "alice"), guest(t, "bob")
  online(t, a, { "bob", "carol", "BOB", "alice", "bob" }, { bob = true, carol = false, BOB = true, alice = true })
  b:expect_nothing() -- asking tells nobody
  b:close()
  online(t, a, { "bob" }, { bob = false })
  local claims = { sub = "u-carol", name = "carol" }
  local c1, c2 = t:connect { claims = claims }, t:connect { claims = claims }
  request(c1, { type = "hello" })
  c1:expect { type = "welcome", nick = "carol" }
  request(c2, { type = "hello" })
  c2:expect { type = "welcome", nick = "carol" }
  online(t, a, { "carol" }, { carol = true })
  c1:close()
  online(t, a, { "carol" }, { carol = true }) -- in her other tab
  c2:drop()
  online(t, a, { "carol" }, { carol = false }) -- her nick is held, but nobody is there
  request(a, { type = "online", nicks = json.array() })
  a:expect { match = '^{"nicks":{},"type":"online"}$' }
end

function tests.test_online_refuses_bad_lists(t)
  local a = guest(t, "alice")
  request(a, { type = "online" })
  a:expect { type = "error", code = "bad_request", ref = "online", message = "missing field: nicks" }
  for _, bad in ipairs { "bob", 42, true, { bob = true } } do
    request(a, { type = "online", nicks = bad })
    a:expect { type = "error", code = "bad_request", ref = "online", message = "nicks is a list of nicks" }
  end
  for _, bad in ipairs { { "bob", "not a nick" }, { "bob", 7 }, { "" }, { string.rep("x", 25) }, { { "bob" } } } do
    request(a, { type = "online", nicks = bad })
    failure(a, "invalid_nick", "online")
  end
  a:send('{"type":"online","nicks":[null]}')
  failure(a, "invalid_nick", "online")
  local nicks, want = {}, {}
  for i = 1, 50 do
    nicks[i] = "n" .. i
    want[nicks[i]] = false
  end
  online(t, a, nicks, want) -- 50 at once
  nicks[51] = "n51"
  request(a, { type = "online", nicks = nicks })
  a:expect { type = "error", code = "bad_request", ref = "online", message = "at most 50 nicks at once" }
  a:expect_nothing()
end

function tests.test_pm_reaches_every_connection_of_a_user(t)
  local claims = { sub = "u-bob", name = "bob" }
  local b1, b2 = t:connect { claims = claims }, t:connect { claims = claims }
  request(b1, { type = "hello" })
  b1:expect { type = "welcome", nick = "bob" }
  request(b2, { type = "hello", nick = "bob" })
  b2:expect { type = "welcome", nick = "bob" } -- a second tab chats as the same nick
  local a = guest(t, "alice")
  request(a, { type = "pm", to = "bob", text = "psst" })
  b1:expect { type = "pm", text = "psst" }
  b2:expect { type = "pm", text = "psst" }
  a:expect { type = "pm", text = "psst" }
  request(b1, { type = "pm", to = "alice", text = "hi" })
  a:expect { type = "pm", from = "bob", text = "hi" }
  b1:expect { type = "pm", from = "bob", text = "hi" }
  b2:expect { type = "pm", from = "bob", text = "hi" } -- the sender's other tabs see it too
end

function tests.test_signed_in_users_chat_as_their_token_name(t)
  local a = t:connect { claims = { sub = "u1", name = "Alice Smith" } }
  request(a, { type = "hello", nick = "someone" })
  a:expect { type = "error", code = "invalid_nick", ref = "hello", message = "signed-in users chat as Alice_Smith" }
  request(a, { type = "hello" })
  a:expect { type = "welcome", nick = "Alice_Smith" }
  local nosub = t:connect { claims = { name = "x" } }
  request(nosub, { type = "hello" })
  failure(nosub, "invalid_nick", "hello")
end

function tests.test_presence_is_per_user(t)
  local a = guest(t, "alice")
  join(a, "lobby")
  local claims = { sub = "u-bob", name = "bob" }
  local b1, b2 = t:connect { claims = claims }, t:connect { claims = claims }
  request(b1, { type = "hello" })
  request(b2, { type = "hello" })
  b1:expect { type = "welcome" }
  b2:expect { type = "welcome" }
  join(b1, "lobby")
  a:expect { type = "presence", nick = "bob", event = "join" }
  join(b2, "lobby")
  a:expect_nothing() -- bob was already here
  b1:expect_nothing()
  b1:close()
  a:expect_nothing() -- bob is still here, in his other tab
  b2:drop() -- a lost connection leaves every room too
  a:expect { type = "presence", nick = "bob", event = "leave" }
end

function tests.test_rate_limit_follows_the_virtual_clock(t)
  local a = guest(t, "alice")
  join(a, "lobby")
  for i = 1, 20 do
    request(a, { type = "say", room = "lobby", text = "m" .. i })
    a:expect { type = "message", text = "m" .. i }
  end
  request(a, { type = "say", room = "lobby", text = "one too many" })
  failure(a, "rate_limited", "say")
  request(a, { type = "pm", to = "alice", text = "pm counts too" })
  failure(a, "rate_limited", "pm")
  t:advance(9.9)
  request(a, { type = "say", room = "lobby", text = "still limited" })
  failure(a, "rate_limited", "say")
  t:advance(0.1) -- the window (10 s from the first message) is over
  request(a, { type = "say", room = "lobby", text = "again" })
  a:expect { type = "message", text = "again" }
end

function tests.test_typing_reaches_the_others_at_most_once_a_window(t)
  local a, b = guest(t, "alice"), guest(t, "bob")
  join(a, "lobby")
  join(b, "lobby")
  a:expect { type = "presence", nick = "bob", event = "join" }
  request(a, { type = "typing", room = "lobby" })
  b:expect { type = "typing", room = "lobby", nick = "alice" }
  a:expect_nothing() -- not to the typist
  request(a, { type = "typing", room = "lobby" })
  t:advance(2.9)
  request(a, { type = "typing", room = "lobby" })
  b:expect_nothing() -- dropped, without an error
  a:expect_nothing()
  t:advance(0.1) -- the window (3 s from the first) is over
  request(a, { type = "typing", room = "lobby" })
  b:expect { type = "typing", room = "lobby", nick = "alice" }
  request(b, { type = "typing", room = "lobby" }) -- a window per owner
  a:expect { type = "typing", room = "lobby", nick = "bob" }
  request(a, { type = "typing", room = "elsewhere" })
  failure(a, "not_joined", "typing")
  request(a, { type = "typing", room = "Bad Room" })
  failure(a, "invalid_room", "typing")
  request(a, { type = "typing" })
  failure(a, "bad_request", "typing")
end

function tests.test_join_rate_limit(t)
  local a = guest(t, "alice")
  for i = 1, 10 do
    join(a, "room" .. i)
  end
  request(a, { type = "join", room = "room11" })
  failure(a, "rate_limited", "join")
  request(a, { type = "who", room = "room11" })
  a:expect { type = "members", members = json.array() } -- the join changed nothing
  t:advance(10)
  join(a, "room11")
end

function tests.test_a_signed_in_nick_is_held_after_the_user_leaves(t)
  local a = t:connect { claims = { sub = "u-alice", name = "alice" } }
  request(a, { type = "hello" })
  a:expect { type = "welcome", nick = "alice" }
  a:close()
  local g = t:connect()
  request(g, { type = "hello", nick = "alice" })
  failure(g, "nick_taken", "hello")
  local other = t:connect { claims = { sub = "u-other", name = "alice" } }
  request(other, { type = "hello" })
  failure(other, "nick_taken", "hello")
  local back = t:connect { claims = { sub = "u-alice", name = "alice" } }
  request(back, { type = "hello" })
  back:expect { type = "welcome", nick = "alice" } -- the user gets it back
  back:close()
  t:advance(86400) -- options.nick_hold, default a day
  request(g, { type = "hello", nick = "alice" })
  g:expect { type = "welcome", nick = "alice" }
end

function tests.test_a_guest_keeps_a_name_a_user_wants(t)
  local g = guest(t, "alice")
  local u = t:connect { claims = { sub = "u-alice", name = "alice" } }
  request(u, { type = "hello" })
  failure(u, "nick_taken", "hello")
  g:close()
  request(u, { type = "hello" })
  u:expect { type = "welcome", nick = "alice" }
end

function tests.test_a_message_that_cannot_be_stored_is_refused_and_sent_to_nobody(t)
  local a, b = guest(t, "alice"), guest(t, "bob")
  join(a, "lobby")
  join(b, "lobby")
  a:expect { type = "presence", event = "join", nick = "bob" }
  t:database_down("main")
  request(a, { type = "say", room = "lobby", text = "lost?" })
  failure(a, "unavailable", "say")
  b:expect_nothing()
  t:database_up("main")
  request(a, { type = "say", room = "lobby", text = "stored" })
  a:expect { type = "message", text = "stored" }
  b:expect { type = "message", text = "stored" }
  local c = guest(t, "carol")
  local joined = join(c, "lobby")
  if #joined.history ~= 1 or joined.history[1].text ~= "stored" then
    t:fail("history:", json.encode(joined.history))
  end
end

return tests
