-- Binds user and openid, unless the openid belongs to another user, and
-- releases the user's previous openid; a stream entry either way.  users
-- and openids are the account's two hashes of bindings.  Returns "bound"
-- or "conflict".  A scan asks first (ask true when its scene wants the
-- holder's confirm, false when not, nil for a binding already confirmed):
-- with the confirm, any scan but the binding that is already there waits
-- for the holder's code, "scanned", with nothing written, a conflict too
-- (a stranger's scan decides nothing); without, a binding it would
-- replace.
local function bind(stream, users, openids, user, openid, scene, kind, now,
                    maxlen, ask)
  local outcome, replaced = 'conflict', ''
  local owner = redis.call('HGET', openids, openid)
  if ask and owner ~= user then
    return 'scanned'
  end
  if not owner or owner == user then
    local old = redis.call('HGET', users, user)
    if ask ~= nil and old ~= openid and (ask or old) then
      return 'scanned'
    end
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
