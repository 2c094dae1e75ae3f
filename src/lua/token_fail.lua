-- TOKEN_FAIL: KEYS[1] the refresh lock, KEYS[2] the back-off, KEYS[3] the
-- count of refreshes failed in a row; ARGV this caller's lock id, the
-- jitter (per mille taken off the back-off), the channel of refreshes.
-- A failed refresh lets go of the lock, if it is still its own, and starts
-- a back-off in which no refresh starts: 1 s after the first failure in a
-- row, doubling up to 60 s, less the jitter so that nodes do not retry in
-- step.  The count is forgotten 10 minutes after the back-off ends.  The
-- waiters hear of it on the channel.  Returns the back-off (ms).
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local n = redis.call('INCR', KEYS[3])
local ms = math.min(1000 * 2 ^ math.min(n - 1, 6), 60000)
ms = math.floor(ms * (1000 - tonumber(ARGV[2])) / 1000)
redis.call('SET', KEYS[2], n, 'PX', ms)
redis.call('PEXPIRE', KEYS[3], ms + 600000)
redis.call('PUBLISH', ARGV[3], 'failed')
return ms
