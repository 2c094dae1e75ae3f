-- ISSUE: KEYS[1] scene; ARGV kind, user, token hash, lifetime (s).
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'user', ARGV[2],
           'status', 'pending', 'token', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
