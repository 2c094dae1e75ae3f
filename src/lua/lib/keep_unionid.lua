-- Keeps the unionid WeChat named for an openid in the account's unionids
-- hash: openid -> unionid and, under "u:" unionid (no openid has a colon),
-- unionid -> openid.  A pair seen for the first time, or changed, gets a
-- stream entry.  Returns "new" or "known".
local function keep_unionid(unionids, stream, openid, unionid, now, maxlen)
  local before = redis.call('HGET', unionids, openid)
  if before == unionid then return 'known' end
  -- a changed unionid: the old one no longer leads to this openid
  if before and redis.call('HGET', unionids, 'u:' .. before) == openid then
    redis.call('HDEL', unionids, 'u:' .. before)
  end
  redis.call('HSET', unionids, openid, unionid, 'u:' .. unionid, openid)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'kind', 'unionid',
             'openid', openid, 'unionid', unionid, 'time', now)
  return 'new'
end
