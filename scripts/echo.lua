-- echo.lua: sends every message back to its sender, text as text and
-- binary as binary. The smallest useful Moongate service.
local echo = {}

function echo.message(client, data, kind)
  client:send(data, kind)
end

return echo
