-- The signed query's single-use record: the first use keeps the digest of
-- what the query signed.  Returns false the first time, true for the same
-- digest again (a retry), "replay" for another one.
local function claim(key, digest, ttl)
  local used = redis.call('GET', key)
  if used and used ~= digest then return 'replay' end
  if used then return true end
  redis.call('SET', key, digest, 'EX', ttl)
  return false
end
