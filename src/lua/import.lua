-- IMPORT, a batch of a bulk import of bindings: KEYS users, openids,
-- stream, the run's mark (a set of the users seen, for a resync); ARGV
-- flags (r: replace a conflicting binding, d: dry run, s: a stream entry
-- per binding written, m: mark the users), now, stream maxlen, the mark's
-- ttl, then user, openid pairs.  Returns, per pair, its outcome ("added",
-- "unchanged", "replaced", "conflict"), the user the openid was bound to
-- and the openid the user was bound to (empty when none).
local users, openids, stream, mark = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local flags, now, maxlen = ARGV[1], ARGV[2], ARGV[3]
local replace = string.find(flags, 'r', 1, true)
local dry = string.find(flags, 'd', 1, true)
local record = string.find(flags, 's', 1, true)
local marking = string.find(flags, 'm', 1, true)
local out = {}
for i = 5, #ARGV, 2 do
  local user, openid = ARGV[i], ARGV[i + 1]
  local owner = redis.call('HGET', openids, openid)
  local old = redis.call('HGET', users, user)
  local outcome
  if owner == user and old == openid then
    outcome = 'unchanged'
  elseif not owner and not old then
    outcome = 'added'
  elseif replace then
    outcome = 'replaced'
  else
    outcome = 'conflict'
  end
  if not dry and (outcome == 'added' or outcome == 'replaced') then
    -- the other halves of the bindings this one takes the place of
    if owner and owner ~= user
       and redis.call('HGET', users, owner) == openid then
      redis.call('HDEL', users, owner)
    end
    if old and old ~= openid
       and redis.call('HGET', openids, old) == user then
      redis.call('HDEL', openids, old)
    end
    redis.call('HSET', users, user, openid)
    redis.call('HSET', openids, openid, user)
    if record then
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
                 'scene', '', 'kind', 'import', 'user', user,
                 'openid', openid, 'status', 'bound',
                 'replaced', (old and old ~= openid) and old or '',
                 'time', now)
    end
  end
  if marking then
    redis.call('SADD', mark, user)
  end
  out[#out + 1] = outcome
  out[#out + 1] = owner or ''
  out[#out + 1] = old or ''
end
if marking then
  redis.call('EXPIRE', mark, ARGV[4])
end
return out
