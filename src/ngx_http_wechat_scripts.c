
/*
 * ngx_http_wechat_module: the Lua scripts run in Redis.  Each one touches
 * only keys under one account's prefix "wx:{APPID}:", so all of them hash
 * to one Redis Cluster slot; the README documents the schema.
 */


#include "ngx_http_wechat_module.h"


/*
 * The signed query's single-use record: the first use keeps the digest of
 * what the query signed; the same digest again is a retry, another one a
 * replay, which ends the script.
 */

#define NGX_HTTP_WECHAT_LUA_CLAIM(key, digest, ttl)                          \
    "local used = redis.call('GET', " key ")\n"                               \
    "if used and used ~= " digest " then return { 'replay' } end\n"          \
    "if not used then\n"                                                     \
    "  redis.call('SET', " key ", " digest ", 'EX', " ttl ")\n"               \
    "end\n"


/*
 * Removes the binding of a user or an openid, both directions, with a
 * stream entry; 1 when there was one.
 */

#define NGX_HTTP_WECHAT_LUA_UNBIND                                           \
    "local function unbind(stream, p, side, id, reason, now, maxlen)\n"      \
    "  local other = side == 'user' and 'openid' or 'user'\n"                \
    "  local peer = redis.call('GET', p .. side .. ':' .. id)\n"             \
    "  if not peer then return 0 end\n"                                      \
    "  redis.call('DEL', p .. side .. ':' .. id)\n"                          \
    "  if redis.call('GET', p .. other .. ':' .. peer) == id then\n"         \
    "    redis.call('DEL', p .. other .. ':' .. peer)\n"                     \
    "  end\n"                                                                \
    "  local user, openid = id, peer\n"                                      \
    "  if side == 'openid' then user, openid = peer, id end\n"               \
    "  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',\n"             \
    "             'kind', 'unbind', 'user', user, 'openid', openid,\n"       \
    "             'status', 'unbound', 'reason', reason, 'time', now)\n"     \
    "  return 1\n"                                                           \
    "end\n"


ngx_str_t  ngx_http_wechat_scripts[NGX_HTTP_WECHAT_SCRIPTS] = {

    /*
     * ISSUE: KEYS[1] scene; ARGV kind, user, token hash, lifetime (s).
     */

    ngx_string(
    "redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'user', ARGV[2],\n"
    "           'status', 'pending', 'token', ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return 1\n"),

    /*
     * RESOLVE: KEYS[1] scene, KEYS[2] de-dup record, KEYS[3] stream,
     * KEYS[4] the signed query's record; ARGV prefix, openid, now, de-dup
     * ttl, scene, stream maxlen, digest of what the query signed, query
     * record ttl.  Returns { outcome, reply time, "new" }; a retry gets
     * the first answer, marked "dup"; a replayed query { "replay" }.
     */

    ngx_string(
    NGX_HTTP_WECHAT_LUA_CLAIM("KEYS[4]", "ARGV[7]", "ARGV[8]")
    "local seen = redis.call('GET', KEYS[2])\n"
    "if seen then\n"
    "  local sp = string.find(seen, ' ', 1, true)\n"
    "  return { string.sub(seen, 1, sp - 1), string.sub(seen, sp + 1),"
    " 'dup' }\n"
    "end\n"
    "local p, openid, now = ARGV[1], ARGV[2], ARGV[3]\n"
    "local outcome = 'expired'\n"
    "local s = redis.call('HMGET', KEYS[1], 'status', 'user', 'openid',"
    " 'kind')\n"
    "if s[1] == 'pending' then\n"
    "  local user, replaced = s[2], ''\n"
    "  local owner = redis.call('GET', p .. 'openid:' .. openid)\n"
    "  if owner and owner ~= user then\n"
    "    outcome = 'conflict'\n"
    "  else\n"
    "    local old = redis.call('GET', p .. 'user:' .. user)\n"
    "    if old and old ~= openid then\n"
    "      redis.call('DEL', p .. 'openid:' .. old)\n"
    "      replaced = old\n"
    "    end\n"
    "    redis.call('SET', p .. 'user:' .. user, openid)\n"
    "    redis.call('SET', p .. 'openid:' .. openid, user)\n"
    "    outcome = 'bound'\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], 'status', outcome, 'openid', openid)\n"
    "  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',\n"
    "             'scene', ARGV[5], 'kind', s[4], 'user', user,\n"
    "             'openid', openid, 'status', outcome,\n"
    "             'replaced', replaced, 'time', now)\n"
    "  redis.call('PUBLISH', p .. 'resolved', ARGV[5])\n"
    "elseif s[1] and s[3] == openid then\n"
    "  outcome = s[1]\n"
    "end\n"
    "redis.call('SET', KEYS[2], outcome .. ' ' .. now, 'EX', ARGV[4])\n"
    "return { outcome, now, 'new' }\n"),

    /*
     * UNBIND, asked by the site: KEYS[1] stream; ARGV prefix, side ("user"
     * or "openid"), id, reason, now, stream maxlen.  Returns 1 when a
     * binding was removed.
     */

    ngx_string(
    NGX_HTTP_WECHAT_LUA_UNBIND
    "return unbind(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],"
    " ARGV[6])\n"),

    /*
     * CLAIM, for every verified query that is not a scan: KEYS[1] the
     * query's record, KEYS[2] stream; ARGV digest, record ttl, then what
     * else to do for the sender: "" nothing, "user" look up the site user
     * bound to the openid, "unbind" remove its binding (an unsubscribe);
     * prefix, openid, now, stream maxlen.  Returns { "new" or "retry",
     * the user or nil }, or { "replay" }.
     */

    ngx_string(
    NGX_HTTP_WECHAT_LUA_CLAIM("KEYS[1]", "ARGV[1]", "ARGV[2]")
    NGX_HTTP_WECHAT_LUA_UNBIND
    "local state = used and 'retry' or 'new'\n"
    "local action, p, openid = ARGV[3], ARGV[4], ARGV[5]\n"
    "if action == 'user' then\n"
    "  return { state, redis.call('GET', p .. 'openid:' .. openid) }\n"
    "end\n"
    "if action == 'unbind' and not used then\n"
    "  unbind(KEYS[2], p, 'openid', openid, 'unsubscribe', ARGV[6],"
    " ARGV[7])\n"
    "end\n"
    "return { state }\n")
};
