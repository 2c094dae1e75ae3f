-- uses: claim unbind
-- CLAIM, for every verified query that is not a scan: KEYS the query's
-- record, stream, users, openids, unionids, and the content's record when
-- the push has a sender (its MsgId, or sender, time and event: WeChat may
-- retry under a fresh signature); ARGV digest, record ttl, then what else
-- to do for the sender: "" nothing, "user" look up the site user bound to
-- the openid and its unionid, "unbind" remove its binding (an
-- unsubscribe); openid, now, stream maxlen.  Returns { "new" or "retry",
-- the user or nil, the unionid or nil }, or { "replay" }.
local used = claim(KEYS[1], ARGV[1], ARGV[2])
if used == 'replay' then return { 'replay' } end
if not used and KEYS[6]
   and not redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[2]) then
  used = true
end
local state = used and 'retry' or 'new'
local action, openid = ARGV[3], ARGV[4]
if action == 'user' then
  return { state, redis.call('HGET', KEYS[4], openid),
           redis.call('HGET', KEYS[5], openid) }
end
if action == 'unbind' and not used then
  unbind(KEYS[2], KEYS[3], KEYS[4], 'openid', openid, 'unsubscribe', ARGV[5],
         ARGV[6])
end
return { state }
