-- TOKEN_SET: KEYS[1] the access_token, KEYS[2] the refresh lock; ARGV the
-- token, its life (ms), now (ms), the lock id.  Stores the token and lets
-- go of the lock if it is still this caller's.
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'issued', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1
