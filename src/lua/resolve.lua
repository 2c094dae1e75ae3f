-- uses: claim
-- RESOLVE: KEYS[1] scene, KEYS[2] de-dup record, KEYS[3] stream, KEYS[4]
-- the signed query's record; ARGV prefix, openid, now, de-dup ttl, scene,
-- stream maxlen, digest of what the query signed, query record ttl.
-- Returns { outcome, reply time, "new" }; a retry gets the first answer,
-- marked "dup"; a replayed query { "replay" }.
if claim(KEYS[4], ARGV[7], ARGV[8]) == 'replay' then return { 'replay' } end
local seen = redis.call('GET', KEYS[2])
if seen then
  local sp = string.find(seen, ' ', 1, true)
  return { string.sub(seen, 1, sp - 1), string.sub(seen, sp + 1), 'dup' }
end
local p, openid, now = ARGV[1], ARGV[2], ARGV[3]
local outcome = 'expired'
local s = redis.call('HMGET', KEYS[1], 'status', 'user', 'openid', 'kind')
if s[1] == 'pending' then
  local user, replaced = s[2], ''
  local owner = redis.call('GET', p .. 'openid:' .. openid)
  if owner and owner ~= user then
    outcome = 'conflict'
  else
    local old = redis.call('GET', p .. 'user:' .. user)
    if old and old ~= openid then
      redis.call('DEL', p .. 'openid:' .. old)
      replaced = old
    end
    redis.call('SET', p .. 'user:' .. user, openid)
    redis.call('SET', p .. 'openid:' .. openid, user)
    outcome = 'bound'
  end
  redis.call('HSET', KEYS[1], 'status', outcome, 'openid', openid)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
             'scene', ARGV[5], 'kind', s[4], 'user', user,
             'openid', openid, 'status', outcome,
             'replaced', replaced, 'time', now)
  -- one channel per scene, where the polls of that scene wait; SPUBLISH
  -- with NGX_HTTP_WECHAT_SHARDED (in the channel's slot: the hash tag)
  redis.call('PUBLISH', p .. 'resolved:' .. ARGV[5], outcome)
elseif s[1] and s[3] == openid then
  outcome = s[1]
end
redis.call('SET', KEYS[2], outcome .. ' ' .. now, 'EX', ARGV[4])
return { outcome, now, 'new' }
