-- TOKEN: KEYS[1] the account's access_token (a hash: value, issued), KEYS[2]
-- the refresh lock, KEYS[3] the back-off after a failed refresh; ARGV how
-- long before its expiry a token is refreshed (ms), this caller's lock id,
-- the lock's lifetime (ms).  Returns { token or nil, its remaining life
-- (ms), when it was issued (ms) or nil, 1 when this caller holds the lock
-- and must refresh, the back-off left (ms) or 0 }.  A token near its expiry
-- is still returned, for use while someone refreshes it; in a back-off no
-- one takes the lock.
local t = redis.call('HMGET', KEYS[1], 'value', 'issued')
local ttl = redis.call('PTTL', KEYS[1])
if t[1] and ttl > tonumber(ARGV[1]) then return { t[1], ttl, t[2], 0, 0 } end
local wait = redis.call('PTTL', KEYS[3])
if wait > 0 then return { t[1], ttl, t[2], 0, wait } end
local locked = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3])
return { t[1], ttl, t[2], locked and 1 or 0, 0 }
