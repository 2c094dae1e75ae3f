-- IMPORT_SWEEP, the end of a resync: one HSCAN page of the bindings that
-- the run did not mark, removed.  KEYS users, openids, stream, the run's
-- mark; ARGV flags (d: dry run, s: a stream entry per binding removed),
-- now, stream maxlen, which hash ("users", then "openids"), cursor, count.
-- users: a user the file did not name loses its binding; openids: an
-- openid whose user is not bound to it (left over) goes.  The last page
-- drops the mark.  Returns { next cursor, user, openid, ... } of those
-- removed, or that a dry run would remove.
local users, openids, stream, mark = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local flags, now, maxlen = ARGV[1], ARGV[2], ARGV[3]
local dry = string.find(flags, 'd', 1, true)
local record = string.find(flags, 's', 1, true)
local by_user = ARGV[4] == 'users'
local page = redis.call('HSCAN', by_user and users or openids, ARGV[5],
                        'COUNT', ARGV[6])
local out = { page[1] }
local items = page[2]
for i = 1, #items, 2 do
  local user, openid = items[i], items[i + 1]
  local gone
  if by_user then
    gone = redis.call('SISMEMBER', mark, user) == 0
  else
    user, openid = openid, user
    gone = redis.call('HGET', users, user) ~= openid
  end
  if gone then
    out[#out + 1] = user
    out[#out + 1] = openid
    if not dry then
      if by_user then
        redis.call('HDEL', users, user)
        if redis.call('HGET', openids, openid) == user then
          redis.call('HDEL', openids, openid)
        end
      else
        redis.call('HDEL', openids, openid)
      end
      if record then
        redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
                   'kind', 'unbind', 'user', user, 'openid', openid,
                   'status', 'unbound', 'reason', 'resync', 'time', now)
      end
    end
  end
end
if not by_user and page[1] == '0' then
  redis.call('DEL', mark)
end
return out
