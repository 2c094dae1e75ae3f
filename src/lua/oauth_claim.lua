-- OAUTH_CLAIM, at the OAuth callback: KEYS the state's key, the code's key
-- (its hash); ARGV how long a claimed code is remembered.  The state is
-- taken (single use) and the code claimed (never exchanged twice), in one
-- step.  Returns { "ok", what the state holds }, { "used" } for a code
-- claimed before, or { "unknown" } for a state unknown, used or expired.
local held = redis.call('GET', KEYS[1])
if not held then return { 'unknown' } end
redis.call('DEL', KEYS[1])
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return { 'used' }
end
return { 'ok', held }
