-- Tests of echo.lua: `moongate test` runs them (docs/testing.md).
local tests = {}

function tests.test_text_comes_back(t)
  local a = t:connect()
  a:send("hello")
  a:expect("hello")
  a:expect_nothing()
end

function tests.test_binary_comes_back(t)
  local a = t:connect()
  a:send_binary("\0\1\2")
  a:expect{binary = "\0\1\2"}
end

return tests
