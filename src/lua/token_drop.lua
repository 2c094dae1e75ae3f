-- TOKEN_DROP: KEYS[1] the access_token; ARGV the token WeChat refused, now
-- (ms, on the clock that wrote its "issued" in ms too), how long a new
-- token is kept whatever is said of it (ms).  Drops it only if it is still
-- the stored one, so that a burst of failures with one token causes one
-- refresh, and not if it is younger than that, so that a caller who keeps
-- being refused cannot refresh again and again.
local t = redis.call('HMGET', KEYS[1], 'value', 'issued')
if t[1] == ARGV[1]
   and tonumber(ARGV[2]) - tonumber(t[2] or 0) >= tonumber(ARGV[3]) then
  return redis.call('DEL', KEYS[1])
end
return 0
