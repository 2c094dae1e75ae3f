-- ISSUE: KEYS[1] scene; ARGV kind, user, token hash, lifetime (s), the
-- login code's hash ("" for other kinds), and with WeChat's API the QR
-- code's ticket and url.
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'user', ARGV[2],
           'status', 'pending', 'token', ARGV[3])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'code', ARGV[5])
end
if ARGV[6] then
  redis.call('HSET', KEYS[1], 'ticket', ARGV[6], 'url', ARGV[7])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
