-- api.lua: a fixture that exercises every function of the Lua API. Each
-- message is a command, "name argument", answered on the same connection.
local svc = {}

function svc.start()
  log.info("fixture started", { state = service.state, states = service.states })
end

function svc.connect(client, req)
  if req.query.deny then
    return false, 401, "denied: " .. req.query.deny
  end
  if req.query.crash then
    error("connect crashed on purpose")
  end
  client:set("name", req.query.name or client.id)
  client:set("test_header", req.headers["x-test"] or "")
end

local cmds = {}

function cmds.whoami(c)
  c:send(json.encode({
    id = c.id, path = c.path, remote = c.remote, host = c.host,
    name = c:get("name"), query = c:query("name"), header = c:header("X-Test"),
    from_connect = c:get("test_header"), state = service.state,
  }))
end

function cmds.binary(c, arg) c:send(arg, "binary") end
function cmds.close(c, arg) c:close(4001, "bye " .. arg) end

function cmds.set(c, arg)
  local k, v = arg:match("^(%S+)=(.*)$")
  c:set(k, json.decode(v))
  c:send("ok")
end

function cmds.get(c, arg) c:send(json.encode({ value = c:get(arg) })) end
function cmds.attrs(c) c:send(json.encode(c:attrs())) end

function cmds.getof(c, arg)
  local id, key = arg:match("^(%S+) (%S+)$")
  c:send(json.encode({ value = clients.get(id):get(key) }))
end

function cmds.join(c, room)
  c:send(json.encode({ joined = rooms.join(room, c), count = rooms.count(room),
    has = rooms.has(room, c), mine = c:rooms() }))
end

function cmds.leave(c, room)
  c:send(json.encode({ left = rooms.leave(room, c), count = rooms.count(room), has = rooms.has(room, c) }))
end

function cmds.members(c, room)
  local names = {}
  for _, m in ipairs(rooms.members(room)) do names[#names + 1] = m:get("name") end
  c:send(json.encode(json.array(names)))
end

function cmds.list(c) c:send(json.encode(rooms.list())) end

function cmds.say(c, arg)
  local room, text = arg:match("^(%S+) (.*)$")
  local n = rooms.broadcast(room, c:get("name") .. ": " .. text, c)
  c:send("delivered " .. n)
end

function cmds.shout(c, arg)
  local room, text = arg:match("^(%S+) (.*)$")
  rooms.broadcast(room, text, nil, "binary")
end

function cmds.tell(c, arg)
  local id, text = arg:match("^(%S+) (.*)$")
  local other = clients.get(id)
  if not other then c:send("no such client") return end
  other:send("from " .. c:get("name") .. ": " .. text)
  c:send("sent")
end

function cmds.same(c, arg)
  c:send(tostring(clients.get(c.id) == c) .. " " .. tostring(clients.get(arg) == c))
end

function cmds.count(c) c:send(tostring(clients.count())) end

function cmds.after(c, arg)
  local began = clock.mono()
  timer.after(tonumber(arg), function()
    c:send(string.format("timer fired after %.3f", clock.mono() - began))
  end)
end

function cmds.every(c, arg)
  local n, id = 0, nil
  id = timer.every(tonumber(arg), function()
    n = n + 1
    c:send("tick " .. n)
    if n == 3 then timer.cancel(id) end
  end)
end

function cmds.cancel(c)
  local id = timer.after(0.05, function() c:send("cancelled timer fired") end)
  c:send("cancel " .. tostring(timer.cancel(id)) .. " " .. tostring(timer.cancel(id)))
  timer.after(0.2, function() c:send("done") end)
end

function cmds.json(c, arg)
  local v, err = json.decode(arg)
  if v == nil then c:send("error: " .. err) return end
  c:send(json.encode(v))
end

function cmds.log(c, arg)
  log.warn("note from script", { text = arg, n = 3 })
  print("printed", arg)
  c:send("logged")
end

function cmds.clock(c)
  c:send(json.encode({ now = clock.now(), millis = clock.millis(), mono = clock.mono() }))
end

function cmds.options(c) c:send(json.encode(options)) end
function cmds.service(c) c:send(json.encode(service)) end
function cmds.error(c) error("boom on purpose") end
function cmds.loop(c) while true do end end

function cmds.sandbox(c)
  local found = {}
  -- require is Moongate's own, for the script's folder only (test/modules_test.go)
  for _, name in ipairs({ "os", "io", "debug", "package", "dofile", "loadfile", "load", "loadstring" }) do
    if _G[name] ~= nil then found[#found + 1] = name end
  end
  c:send(json.encode(json.array(found)))
end

function svc.message(client, data, kind)
  local cmd, arg = data:match("^(%S+) ?(.*)$")
  local f = cmds[cmd]
  if not f then
    client:send("unknown command " .. tostring(cmd))
    return
  end
  f(client, arg)
end

function svc.close(client, code, reason)
  for _, room in ipairs(client:rooms()) do
    rooms.broadcast(room, client:get("name") .. " left with " .. code)
  end
  log.info("fixture close", { client = client.id, code = code, reason = reason })
end

return svc
