-- REDEEM: KEYS scene, openids; ARGV the kind the code's shape names
-- ("login" or "code"), the code's hash, the attempts allowed, and the
-- hash of the poll token of the browser that asks ("" when the location
-- does not bind redeeming to the browser).  The code of a scanned login or
-- code scene is taken once: { "ok", kind, openid, the user bound to it or
-- nil }.  Anything else is { "wrong", why } (why, for the metrics only:
-- "not_found", "wrong", or "burnt"); a wrong code or token counts against
-- the scene, which is burnt (deleted) at the limit.
local s = redis.call('HMGET', KEYS[1], 'kind', 'status', 'openid', 'code',
                     'token')
if (s[1] ~= 'login' and s[1] ~= 'code') or s[2] == 'redeemed' then
  return { 'wrong', 'not_found' }
end
if s[1] ~= ARGV[1] or s[4] ~= ARGV[2]
   or (ARGV[4] ~= '' and s[5] ~= ARGV[4])
   or (s[2] ~= 'confirmed' and s[2] ~= 'unbound' and s[2] ~= 'code_sent')
then
  if redis.call('HINCRBY', KEYS[1], 'attempts', 1) >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1])
    return { 'wrong', 'burnt' }
  end
  return { 'wrong', 'wrong' }
end
redis.call('HSET', KEYS[1], 'status', 'redeemed')
redis.call('HDEL', KEYS[1], 'code')
return { 'ok', s[1], s[3], redis.call('HGET', KEYS[2], s[3]) }
