-- Removes the binding of a user or an openid, both directions, with a
-- stream entry; 1 when there was one.
local function unbind(stream, users, openids, side, id, reason, now, maxlen)
  local this, other = users, openids
  if side == 'openid' then this, other = openids, users end
  local peer = redis.call('HGET', this, id)
  if not peer then return 0 end
  redis.call('HDEL', this, id)
  if redis.call('HGET', other, peer) == id then
    redis.call('HDEL', other, peer)
  end
  local user, openid = id, peer
  if side == 'openid' then user, openid = peer, id end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
             'kind', 'unbind', 'user', user, 'openid', openid,
             'status', 'unbound', 'reason', reason, 'time', now)
  return 1
end
