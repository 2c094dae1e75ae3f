-- ISSUE: KEYS[1] scene; ARGV kind, user, token hash, lifetime (s), the
-- login code's hash ("" for other kinds), "1" when a scan waits for the
-- holder's confirm, the user agent and address that asked for a login
-- scene (its confirm page names them; "" for none), and with WeChat's API
-- the QR code's ticket and url.
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'user', ARGV[2],
           'status', 'pending', 'token', ARGV[3], 'confirm', ARGV[6])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'code', ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'agent', ARGV[7], 'address', ARGV[8])
end
if ARGV[9] then
  redis.call('HSET', KEYS[1], 'ticket', ARGV[9], 'url', ARGV[10])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
