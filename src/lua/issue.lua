-- ISSUE: KEYS[1] scene; ARGV kind, user, token hash, lifetime (s), and with
-- WeChat's API the QR code's ticket and url.
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'user', ARGV[2],
           'status', 'pending', 'token', ARGV[3])
if ARGV[5] then
  redis.call('HSET', KEYS[1], 'ticket', ARGV[5], 'url', ARGV[6])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
