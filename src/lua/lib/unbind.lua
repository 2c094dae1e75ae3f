-- Removes the binding of a user or an openid, both directions, with a
-- stream entry; 1 when there was one.
local function unbind(stream, p, side, id, reason, now, maxlen)
  local other = side == 'user' and 'openid' or 'user'
  local peer = redis.call('GET', p .. side .. ':' .. id)
  if not peer then return 0 end
  redis.call('DEL', p .. side .. ':' .. id)
  if redis.call('GET', p .. other .. ':' .. peer) == id then
    redis.call('DEL', p .. other .. ':' .. peer)
  end
  local user, openid = id, peer
  if side == 'openid' then user, openid = peer, id end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
             'kind', 'unbind', 'user', user, 'openid', openid,
             'status', 'unbound', 'reason', reason, 'time', now)
  return 1
end
