-- uses: claim unbind
-- CLAIM, for every verified query that is not a scan: KEYS[1] the query's
-- record, KEYS[2] stream; ARGV digest, record ttl, then what else to do for
-- the sender: "" nothing, "user" look up the site user bound to the openid,
-- "unbind" remove its binding (an unsubscribe); prefix, openid, now, stream
-- maxlen.  Returns { "new" or "retry", the user or nil }, or { "replay" }.
local used = claim(KEYS[1], ARGV[1], ARGV[2])
if used == 'replay' then return { 'replay' } end
local state = used and 'retry' or 'new'
local action, p, openid = ARGV[3], ARGV[4], ARGV[5]
if action == 'user' then
  return { state, redis.call('GET', p .. 'openid:' .. openid) }
end
if action == 'unbind' and not used then
  unbind(KEYS[2], p, 'openid', openid, 'unsubscribe', ARGV[6], ARGV[7])
end
return { state }
