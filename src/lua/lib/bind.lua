-- Binds user and openid, unless the openid belongs to another user, and
-- releases the user's previous openid; a stream entry either way.
-- Returns "bound" or "conflict".
local function bind(stream, p, user, openid, scene, kind, now, maxlen)
  local outcome, replaced = 'conflict', ''
  local owner = redis.call('GET', p .. 'openid:' .. openid)
  if not owner or owner == user then
    local old = redis.call('GET', p .. 'user:' .. user)
    if old and old ~= openid then
      redis.call('DEL', p .. 'openid:' .. old)
      replaced = old
    end
    redis.call('SET', p .. 'user:' .. user, openid)
    redis.call('SET', p .. 'openid:' .. openid, user)
    outcome = 'bound'
  end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
             'scene', scene, 'kind', kind, 'user', user,
             'openid', openid, 'status', outcome,
             'replaced', replaced, 'time', now)
  return outcome
end
