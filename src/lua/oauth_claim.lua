-- OAUTH_CLAIM, at the OAuth callback: KEYS the state's key, the code's key
-- (its hash); ARGV how long a claimed code is remembered, the SHA-256 hex
-- of the browser's state cookie.  The state is taken (single use) and the
-- code claimed (never exchanged twice), in one step, and only by the
-- browser the state was given to: another browser's try leaves both, so
-- that whoever learns a state or a callback URL cannot spend it.  Returns
-- { "ok", what the state holds }, { "foreign" } for a state of another
-- browser, { "used" } for a code claimed before, or { "unknown" } for a
-- state unknown, used or expired.
local held = redis.call('GET', KEYS[1])
if not held then return { 'unknown' } end
if string.sub(held, 1, 64) ~= ARGV[2] then return { 'foreign' } end
redis.call('DEL', KEYS[1])
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return { 'used' }
end
return { 'ok', held }
