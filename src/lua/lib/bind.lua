-- Binds user and openid, unless the openid belongs to another user, and
-- releases the user's previous openid; a stream entry either way.  users
-- and openids are the account's two hashes of bindings.  Returns "bound"
-- or "conflict".
local function bind(stream, users, openids, user, openid, scene, kind, now,
                    maxlen)
  local outcome, replaced = 'conflict', ''
  local owner = redis.call('HGET', openids, openid)
  if not owner or owner == user then
    local old = redis.call('HGET', users, user)
    if old and old ~= openid then
      redis.call('HDEL', openids, old)
      replaced = old
    end
    redis.call('HSET', users, user, openid)
    redis.call('HSET', openids, openid, user)
    outcome = 'bound'
  end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
             'scene', scene, 'kind', kind, 'user', user,
             'openid', openid, 'status', outcome,
             'replaced', replaced, 'time', now)
  return outcome
end
