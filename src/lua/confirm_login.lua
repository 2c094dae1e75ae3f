-- CONFIRM_LOGIN, the scanner's answer on the confirm page in WeChat: KEYS
-- scene, the link's nonce, openids; ARGV openid (from the signed link),
-- "confirm" or "cancel", the nonce's life (s), prefix (for the channel),
-- scene.  The link is taken once; a confirming scene of that openid
-- becomes confirmed (the openid is bound) or unbound, or cancelled.
-- Returns { outcome }, { "used" } for a link used before, { "gone" } for
-- a scene no longer waiting for this openid.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return { 'used' }
end
local s = redis.call('HMGET', KEYS[1], 'kind', 'status', 'openid')
if s[1] ~= 'login' or s[2] ~= 'confirming' or s[3] ~= ARGV[1] then
  return { 'gone' }
end
local outcome = 'cancelled'
if ARGV[2] == 'confirm' then
  local bound = redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1
  outcome = bound and 'confirmed' or 'unbound'
end
redis.call('HSET', KEYS[1], 'status', outcome)
redis.call('PUBLISH', ARGV[4] .. 'resolved:' .. ARGV[5], outcome)
return { outcome }
