-- uses: keep_unionid
-- UNIONID, when WeChat names an openid's unionid (OAuth): KEYS the
-- account's unionids hash, the resolutions stream; ARGV openid, unionid,
-- now, stream maxlen.  Kept as keep_unionid says.  Returns { "new" } or
-- { "known" }.
return { keep_unionid(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3],
                      ARGV[4]) }
