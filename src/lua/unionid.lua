-- UNIONID, when WeChat names an openid's unionid (OAuth): KEYS the
-- account's unionids hash, the resolutions stream; ARGV openid, unionid,
-- now, stream maxlen.  The hash holds openid -> unionid and, under
-- "u:" unionid (no openid has a colon), unionid -> openid.  A pair seen
-- for the first time, or changed, gets a stream entry.  Returns { "new" }
-- or { "known" }.
local openid, unionid = ARGV[1], ARGV[2]
local before = redis.call('HGET', KEYS[1], openid)
if before == unionid then return { 'known' } end
-- a changed unionid: the old one no longer leads to this openid
if before and redis.call('HGET', KEYS[1], 'u:' .. before) == openid then
  redis.call('HDEL', KEYS[1], 'u:' .. before)
end
redis.call('HSET', KEYS[1], openid, unionid, 'u:' .. unionid, openid)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'unionid',
           'openid', openid, 'unionid', unionid, 'time', ARGV[3])
return { 'new' }
