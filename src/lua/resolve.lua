-- uses: claim bind keep_unionid
-- RESOLVE: KEYS scene, the signed query's record, stream, users, openids,
-- unionids; ARGV prefix (for the channel), openid, now, scene, stream
-- maxlen, digest of what the query signed, query record ttl, the hash of
-- a fresh verification code, "1" when the answer carries that code (the
-- passive reply: a retry's answer then carries a new one), the unionid
-- WeChat named for the openid (a method-1 link's code exchange) or "".
-- A unionid is kept first, as keep_unionid says, whatever the outcome.
-- A bind scene becomes bound or conflict, a login scene confirmed (the
-- openid is bound) or unbound, a code scene code_sent with the code's
-- hash; the scene keeps the openid and the time of its answer.  What needs
-- the holder's say waits instead: a bind scene that asks for it, or whose
-- user holds another openid, becomes scanned (with the code's hash, which
-- the page must send back), a login scene that asks for it confirming
-- (until the scanner confirms in WeChat).  A later scan by another openid
-- takes the place of a scanned one (its code goes to the new scanner), and
-- voids a confirming one: of two scanners of a login, neither confirms.  Returns { outcome, reply time, "new" }; the same user
-- again (WeChat's retry, or a second scan) gets the first answer, marked
-- "dup"; a replayed query { "replay" }.
if claim(KEYS[2], ARGV[6], ARGV[7]) == 'replay' then return { 'replay' } end
local p, openid, now = ARGV[1], ARGV[2], ARGV[3]
if ARGV[10] ~= '' then
  keep_unionid(KEYS[6], KEYS[3], openid, ARGV[10], now, ARGV[5])
end
local s = redis.call('HMGET', KEYS[1], 'status', 'user', 'openid', 'kind',
                     'time', 'confirm')
local waiting = s[1] == 'scanned' or s[1] == 'confirming'
if s[1] == 'pending' or (waiting and s[3] ~= openid) then
  local outcome
  if s[1] == 'confirming' then
    -- two WeChats scanned one login: neither may confirm it
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', p .. 'resolved:' .. ARGV[4], 'expired')
    return { 'expired', now, 'new' }
  elseif waiting then
    outcome = s[1]
  elseif s[4] == 'bind' then
    outcome = bind(KEYS[3], KEYS[4], KEYS[5], s[2], openid, ARGV[4], 'bind',
                   now, ARGV[5], s[6] == '1')
  elseif s[4] == 'login' then
    if s[6] == '1' then
      outcome = 'confirming'
    else
      local bound = redis.call('HEXISTS', KEYS[5], openid) == 1
      outcome = bound and 'confirmed' or 'unbound'
    end
  else
    outcome = 'code_sent'
  end
  redis.call('HSET', KEYS[1], 'status', outcome, 'openid', openid,
             'time', now)
  if outcome == 'code_sent' or outcome == 'scanned' then
    redis.call('HSET', KEYS[1], 'code', ARGV[8])
  end
  -- one channel per scene, where the polls of that scene wait; SPUBLISH
  -- with NGX_HTTP_WECHAT_SHARDED (in the channel's slot: the hash tag)
  if not waiting then
    redis.call('PUBLISH', p .. 'resolved:' .. ARGV[4], outcome)
  end
  return { outcome, now, 'new' }
end
if s[1] and s[3] == openid and s[1] ~= 'redeemed' and s[1] ~= 'cancelled'
then
  -- the same user again: a code sent anew, nothing else moves
  if (s[1] == 'code_sent' or s[1] == 'scanned') and ARGV[9] == '1' then
    redis.call('HSET', KEYS[1], 'code', ARGV[8])
  end
  return { s[1], s[5], 'dup' }
end
return { 'expired', now, 'new' }
