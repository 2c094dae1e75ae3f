-- uses: claim bind
-- RESOLVE: KEYS[1] scene, KEYS[2] de-dup record, KEYS[3] stream, KEYS[4]
-- the signed query's record; ARGV prefix, openid, now, de-dup ttl, scene,
-- stream maxlen, digest of what the query signed, query record ttl, the
-- hash of a fresh verification code, "1" when the answer carries that
-- code (the passive reply: a retry's answer then carries a new one).
-- A bind scene becomes bound or conflict, a login scene confirmed (the
-- openid is bound) or unbound, a code scene code_sent with the code's
-- hash.  Returns { outcome, reply time, "new" }; a retry gets the first
-- answer, marked "dup"; a replayed query { "replay" }.
if claim(KEYS[4], ARGV[7], ARGV[8]) == 'replay' then return { 'replay' } end
local p, openid, now = ARGV[1], ARGV[2], ARGV[3]
local s = redis.call('HMGET', KEYS[1], 'status', 'user', 'openid', 'kind')
local seen = redis.call('GET', KEYS[2])
if seen then
  local sp = string.find(seen, ' ', 1, true)
  if s[1] == 'code_sent' and s[3] == openid and ARGV[10] == '1' then
    redis.call('HSET', KEYS[1], 'code', ARGV[9])
  end
  return { string.sub(seen, 1, sp - 1), string.sub(seen, sp + 1), 'dup' }
end
local outcome = 'expired'
if s[1] == 'pending' then
  if s[4] == 'bind' then
    outcome = bind(KEYS[3], p, s[2], openid, ARGV[5], 'bind', now, ARGV[6])
  elseif s[4] == 'login' then
    local bound = redis.call('EXISTS', p .. 'openid:' .. openid) == 1
    outcome = bound and 'confirmed' or 'unbound'
  else
    outcome = 'code_sent'
    redis.call('HSET', KEYS[1], 'code', ARGV[9])
  end
  redis.call('HSET', KEYS[1], 'status', outcome, 'openid', openid)
  -- one channel per scene, where the polls of that scene wait; SPUBLISH
  -- with NGX_HTTP_WECHAT_SHARDED (in the channel's slot: the hash tag)
  redis.call('PUBLISH', p .. 'resolved:' .. ARGV[5], outcome)
elseif s[1] and s[3] == openid and s[1] ~= 'redeemed' then
  -- the same user again: a code scene sends a new code, nothing else moves
  outcome = s[1]
  if outcome == 'code_sent' then
    redis.call('HSET', KEYS[1], 'code', ARGV[9])
  end
end
redis.call('SET', KEYS[2], outcome .. ' ' .. now, 'EX', ARGV[4])
return { outcome, now, 'new' }
