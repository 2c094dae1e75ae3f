-- TOKEN_DROP: KEYS[1] the access_token; ARGV the token WeChat refused.
-- Drops it only if it is still the stored one, so that a burst of
-- failures with one token causes one refresh, not one each.
if redis.call('HGET', KEYS[1], 'value') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
