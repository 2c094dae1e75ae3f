-- EXPORT: one HSCAN page of an account's bindings, flat, as a reply's
-- nested arrays are held to a few elements.  KEYS users; ARGV cursor,
-- count.  Returns { next cursor, user, openid, ... }.
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local out = { page[1] }
for i = 1, #page[2] do
  out[i + 1] = page[2][i]
end
return out
