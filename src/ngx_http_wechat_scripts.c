
/*
 * ngx_http_wechat_module: the Lua scripts run in Redis.  Each one touches
 * only keys under one account's prefix "wx:{APPID}:", so all of them hash
 * to one Redis Cluster slot; the README documents the schema.
 */


#include "ngx_http_wechat_module.h"


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
     * KEYS[4] the signed query's single-use record; ARGV prefix, openid,
     * now, de-dup ttl, scene, stream maxlen, body digest, query record ttl.
     * Returns { outcome, reply time, "new" }; a retry gets the first
     * answer, marked "dup"; a captured query with another body { "replay" }.
     */

    ngx_string(
    "local used = redis.call('GET', KEYS[4])\n"
    "if used and used ~= ARGV[7] then return { 'replay' } end\n"
    "if not used then\n"
    "  redis.call('SET', KEYS[4], ARGV[7], 'EX', ARGV[8])\n"
    "end\n"
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
     * UNBIND: KEYS[1] stream; ARGV prefix, side ("user" or "openid"), id,
     * reason, now, stream maxlen.  Returns 1 when a binding was removed.
     */

    ngx_string(
    "local p, side, id = ARGV[1], ARGV[2], ARGV[3]\n"
    "local other = side == 'user' and 'openid' or 'user'\n"
    "local peer = redis.call('GET', p .. side .. ':' .. id)\n"
    "if not peer then return 0 end\n"
    "redis.call('DEL', p .. side .. ':' .. id)\n"
    "if redis.call('GET', p .. other .. ':' .. peer) == id then\n"
    "  redis.call('DEL', p .. other .. ':' .. peer)\n"
    "end\n"
    "local user, openid = id, peer\n"
    "if side == 'openid' then user, openid = peer, id end\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*',\n"
    "           'kind', 'unbind', 'user', user, 'openid', openid,\n"
    "           'status', 'unbound', 'reason', ARGV[4], 'time', ARGV[5])\n"
    "return 1\n")
};
