-- uses: bind
-- BIND, asked by the site once it registered the follower of a login
-- scene: KEYS stream, users, openids; ARGV user, openid, now, stream
-- maxlen.  The rules and the stream entry of a scan (kind "site", no
-- scene).  Returns { "bound" or "conflict", now, "new" }, as RESOLVE does.
local outcome = bind(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], '', 'site',
                     ARGV[3], ARGV[4])
return { outcome, ARGV[3], 'new' }
