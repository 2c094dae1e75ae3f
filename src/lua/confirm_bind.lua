-- uses: bind
-- CONFIRM_BIND, the page of a scanned bind scene sending the code the
-- scanner got: KEYS scene, stream, users, openids; ARGV the poll token's
-- hash, the code's hash, the attempts allowed, the site user the asking
-- location names ("" for none), prefix (for the channel), scene, now,
-- stream maxlen.  The right code binds, with the rules of a scan:
-- { "bound" or "conflict", openid }.  A wrong one counts against the
-- scene, burnt at the limit: { "wrong" }.  A scene that is not scanned:
-- { its status }; an unknown scene, or another token or user: { "unknown" }.
local s = redis.call('HMGET', KEYS[1], 'kind', 'status', 'user', 'openid',
                     'code', 'token')
if s[1] ~= 'bind' or s[6] ~= ARGV[1] or (ARGV[4] ~= '' and ARGV[4] ~= s[3])
then
  return { 'unknown' }
end
if s[2] ~= 'scanned' then return { s[2] } end
local channel = ARGV[5] .. 'resolved:' .. ARGV[6]
if s[5] ~= ARGV[2] then
  if redis.call('HINCRBY', KEYS[1], 'attempts', 1) >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', channel, 'expired')
  end
  return { 'wrong' }
end
local outcome = bind(KEYS[2], KEYS[3], KEYS[4], s[3], s[4], ARGV[6], 'bind',
                     ARGV[7], ARGV[8])
redis.call('HSET', KEYS[1], 'status', outcome, 'time', ARGV[7])
redis.call('HDEL', KEYS[1], 'code')
redis.call('PUBLISH', channel, outcome)
return { outcome, s[4] }
