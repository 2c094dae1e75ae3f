-- uses: bind
-- BIND, asked by the site once it registered the follower of a login
-- scene: KEYS[1] stream; ARGV prefix, user, openid, now, stream maxlen.
-- The rules and the stream entry of a scan (kind "site", no scene).
-- Returns { "bound" or "conflict", now, "new" }, as RESOLVE does.
local outcome = bind(KEYS[1], ARGV[1], ARGV[2], ARGV[3], '', 'site',
                     ARGV[4], ARGV[5])
return { outcome, ARGV[4], 'new' }
