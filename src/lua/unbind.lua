-- uses: unbind
-- UNBIND, asked by the site: KEYS stream, users, openids; ARGV side
-- ("user" or "openid"), id, reason, now, stream maxlen.  Returns 1 when a
-- binding was removed.
return unbind(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
              ARGV[5])
