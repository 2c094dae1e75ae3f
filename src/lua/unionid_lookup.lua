-- UNIONID_LOOKUP, for wechat_binding ?unionid=: KEYS the account's
-- unionids and openids hashes; ARGV the unionid.  Returns { openid, the
-- user bound to it or nil }, or { nil } for a unionid never seen.
local openid = redis.call('HGET', KEYS[1], 'u:' .. ARGV[1])
if not openid then return { false } end
return { openid, redis.call('HGET', KEYS[2], openid) }
