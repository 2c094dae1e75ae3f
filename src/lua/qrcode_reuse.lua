-- QRCODE_REUSE: KEYS a scene the browser's cookie or the site user named
-- (else the new scene), the account's count of scenes issued this second,
-- the new poll token's index, and for a bind scene the user's index; ARGV
-- kind, user, the hash of the browser's poll token ("" when the scene was
-- found by the user), the new poll token's hash, the new scene, its
-- lifetime (s), the most scenes issued a second, the scene KEYS[1] is, and
-- for a login scene the hash of its login code with the new token.
-- A scene still pending, of this kind and for this user, whose token the
-- browser holds or which the user asked for, is given back with the new
-- token in place of the old one: { "reused", ticket, url, life left (s) }.
-- A planted cookie thus never hands a page a token someone else knows.
-- Else a new scene is counted: { "rate", ms left in this second } past the
-- ceiling, or { "new" }, its indexes set.
local s = redis.call('HMGET', KEYS[1], 'status', 'kind', 'user', 'token',
                     'ticket', 'url')
local ttl = redis.call('TTL', KEYS[1])
if s[1] == 'pending' and s[2] == ARGV[1] and s[3] == ARGV[2] and ttl > 1
   and (ARGV[3] == '' or s[4] == ARGV[3]) then
  redis.call('HSET', KEYS[1], 'token', ARGV[4])
  if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'code', ARGV[9]) end
  redis.call('SET', KEYS[3], ARGV[8], 'EX', ttl)
  return { 'reused', s[5] or '', s[6] or '', ttl }
end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], 1000) end
if n > tonumber(ARGV[7]) then return { 'rate', redis.call('PTTL', KEYS[2]) } end
redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6]) end
return { 'new' }
