-- The signed query's single-use record: the first use keeps the digest of
-- what the query signed and counts the uses.  Returns false the first
-- time, true for the same digest again (one of WeChat's retries: three
-- tries in all), "replay" for another digest or for a fourth use.
local function claim(key, digest, ttl)
  if redis.call('SET', key, digest .. ' 1', 'NX', 'EX', ttl) then
    return false
  end
  local used = redis.call('GET', key)
  local sp = string.find(used, ' ', 1, true)
  local uses = tonumber(string.sub(used, sp + 1))
  if string.sub(used, 1, sp - 1) ~= digest or uses >= 3 then
    return 'replay'
  end
  redis.call('SET', key, digest .. ' ' .. (uses + 1), 'KEEPTTL')
  return true
end
