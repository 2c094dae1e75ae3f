-- TOKEN_UNLOCK: KEYS[1] the refresh lock; ARGV this caller's lock id.  A
-- refresh that failed lets go of the lock at once, if it is still its own,
-- so that the next caller may try.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
