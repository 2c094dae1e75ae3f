-- TOKEN_SET: KEYS[1] the access_token, KEYS[2] the refresh lock, KEYS[3]
-- the back-off, KEYS[4] the count of failed refreshes; ARGV the token, its
-- life (ms), now (ms), the lock id, the channel of refreshes.  Stores the
-- token, lets go of the lock if it is still this caller's, ends any
-- back-off, and wakes the waiters.
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'issued', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('PUBLISH', ARGV[5], 'ok')
return 1
