
/*
 * ngx_http_wechat_module: the Redis steps of a verified push.  A scan of
 * one of our scenes is resolved, and every other push claims its signed
 * query, each in one script and one round trip.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_push.h"


static void ngx_http_wechat_resolve_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_scan_reply(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_resolution_t *res);
static void ngx_http_wechat_unresolved(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_content_key(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *key);
static void ngx_http_wechat_claim_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);




/* Resolves a scan of one of our scenes in one script, one round trip. */

void
ngx_http_wechat_resolve(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* a retry's reply carries a new code, a template message does not */

    rc = ngx_http_wechat_resolve_scene(r, ctx, ngx_http_wechat_resolve_done,
                                       wlcf->code_template.len == 0);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_wechat_unresolved(r, ctx, NGX_HTTP_WECHAT_REDIS_REFUSED);
    }
}


/*
 * The RESOLVE script for ctx->scene and the openid ctx->ev.from_user, the
 * scan's query recorded under ctx->signature with ctx->digest; handler
 * gets the answer.  shown: the answer carries the new code (a passive
 * reply, a page), so that a retry's gets a new one.  ctx->unionid, when
 * WeChat named one (a method-1 link's code exchange), is kept beside the
 * openid in the same script.
 */

ngx_int_t
ngx_http_wechat_resolve_scene(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_http_wechat_redis_handler_pt handler,
    ngx_uint_t shown)
{
    ngx_str_t                    argv[17], openid, digest, ttl, hash;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /*
     * A captured query must not carry another scan: each is kept, with the
     * digest of what it signed, for as long as its timestamp is accepted.
     */

    ttl.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);

    if (ttl.data == NULL || ngx_http_wechat_code_new(r, ctx, &hash) != NGX_OK)
    {
        return NGX_ERROR;
    }

    digest.data = ctx->digest;
    digest.len = WX_SHA1_HEX_LEN;
    ttl.len = ngx_sprintf(ttl.data, "%T", 2 * wlcf->timestamp_skew + 1)
              - ttl.data;

    openid.data = (u_char *) ctx->ev.from_user.data;
    openid.len = ctx->ev.from_user.len;

    /* keys: scene, query, then stream, users, openids, unionids */

    ngx_str_set(&argv[0], "6");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    argv[2] = ngx_http_wechat_key(r, wlcf, "query:", &ctx->signature);
    argv[6] = ngx_http_wechat_key(r, wlcf, "unionids", NULL);
    argv[7] = wlcf->key_prefix;
    argv[8] = openid;
    argv[9] = ngx_http_wechat_now(r);
    argv[10] = ctx->scene;
    argv[11] = ngx_http_wechat_stream_maxlen;
    argv[12] = digest;
    argv[13] = ttl;
    argv[14] = hash;

    if (shown) {
        ngx_str_set(&argv[15], "1");

    } else {
        ngx_str_set(&argv[15], "0");
    }

    if (ctx->unionid.len) {
        argv[16] = ctx->unionid;

    } else {
        ngx_str_set(&argv[16], "");
    }

    if (ngx_http_wechat_binding_keys(r, wlcf, &argv[3]) != NGX_OK
        || argv[1].data == NULL || argv[2].data == NULL
        || argv[6].data == NULL || argv[9].data == NULL)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, handler,
                                         NGX_HTTP_WECHAT_SCRIPT_RESOLVE, 17,
                                         argv);
}


static void
ngx_http_wechat_resolve_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_status_t             status;
    wx_resolution_t         res;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (response == NULL) {
        ngx_http_wechat_unresolved(r, ctx, ended);
        return;
    }

    status = wx_redis_resolution(response, &res);
    if (status != WX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: resolution of scene \"%V\": %s",
                      &ctx->scene, wx_status_text(status));
        ngx_http_wechat_unresolved(r, ctx, NGX_HTTP_WECHAT_REDIS_LOST);
        return;
    }

    if (res.replay) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: replayed query with other content, "
                      "or used more often than WeChat retries, "
                      "scene \"%V\" openid \"%*s\"", &ctx->scene,
                      ctx->ev.from_user.len, ctx->ev.from_user.data);
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_REPLAY]);
        ngx_http_finalize_request(r, NGX_HTTP_FORBIDDEN);
        return;
    }

    ctx->resolution.data = (u_char *) wx_scene_status_name(res.outcome);
    ctx->resolution.len = ngx_strlen(ctx->resolution.data);

    ngx_http_wechat_count(pushes[res.outcome]);

    if (res.duplicate) {
        ngx_http_wechat_count(dedup_hits);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat callback: scene \"%V\" %V%s", &ctx->scene,
                   &ctx->resolution, res.duplicate ? " (retry)" : "");

    ngx_http_wechat_scan_reply(r, ctx, &res);
}


/* The passive reply of a scan's outcome, and what else it sends. */

static void
ngx_http_wechat_scan_reply(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_resolution_t *res)
{
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* with a template message, a code goes after the answer, once */

    if ((res->outcome == WX_SCENE_CODE_SENT
         || res->outcome == WX_SCENE_SCANNED)
        && wlcf->code_template.len)
    {
        if (!res->duplicate) {
            ngx_http_wechat_code_template(r, ctx);
        }

        ngx_http_finalize_request(r,
            ngx_http_wechat_send(r, NGX_HTTP_OK, "text/plain",
                                 (u_char *) "success", 7));
        return;
    }

    /*
     * the reply time is the first answer's, so a retry gets its bytes,
     * but for a fresh code or link in them
     */

    ngx_http_finalize_request(r,
        ngx_http_wechat_code_reply(r, ctx, &wlcf->reply[res->outcome],
                                   res->time));
}


/*
 * No scan is lost: without Redis the push goes to the business app, told
 * whether Redis never ran the resolution ("unavailable") or may have run
 * it ("unknown": the resolution stream then says what happened).
 */

static void
ngx_http_wechat_unresolved(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_uint_t ended)
{
    ngx_uint_t                   outcome;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ended == NGX_HTTP_WECHAT_REDIS_LOST) {
        ngx_str_set(&ctx->resolution, "unknown");
        outcome = NGX_HTTP_WECHAT_PUSH_UNKNOWN;

    } else {
        ngx_str_set(&ctx->resolution, "unavailable");
        outcome = NGX_HTTP_WECHAT_PUSH_UNAVAILABLE;
    }

    ngx_http_wechat_count(pushes[outcome]);

    if (wlcf->pass.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: scan not resolved, redis %V: "
                      "appid \"%V\" openid \"%*s\" event \"%*s\" "
                      "scene \"%V\" time \"%*s\"",
                      &ctx->resolution, &wlcf->appid,
                      ctx->ev.from_user.len, ctx->ev.from_user.data,
                      ctx->ev.event.len, ctx->ev.event.data, &ctx->scene,
                      ctx->ev.create_time.len, ctx->ev.create_time.data);
    }

    ngx_http_wechat_pass(r, ctx);
}


/*
 * Claims a verified query that carries no scan in Redis, where every node
 * sees it, with what the push asks of the sender's binding: the site user
 * for $wechat_user, or unbinding on unsubscribe.
 */

ngx_int_t
ngx_http_wechat_claim(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_http_wechat_next_pt next)
{
    ngx_str_t                     argv[13], openid, ttl, content;
    ngx_uint_t                    keys;
    ngx_http_wechat_loc_conf_t   *wlcf;
    ngx_http_wechat_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_wechat_module);

    openid.data = (u_char *) ctx->ev.from_user.data;
    openid.len = ctx->ev.from_user.len;

    ttl.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (ttl.data == NULL
        || ngx_http_wechat_content_key(r, ctx, &content) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ttl.len = ngx_sprintf(ttl.data, "%T", 2 * wlcf->timestamp_skew + 1)
              - ttl.data;

    /* keys: query, then stream, users, openids, unionids, the content's */

    keys = content.len ? 6 : 5;

    argv[0] = ngx_http_wechat_number(r->pool, keys);
    argv[1] = ngx_http_wechat_key(r, wlcf, "query:", &ctx->signature);
    argv[5] = ngx_http_wechat_key(r, wlcf, "unionids", NULL);

    if (content.len) {
        argv[6] = ngx_http_wechat_key(r, wlcf, "content:", &content);
    }

    argv[keys + 1].data = ctx->digest;
    argv[keys + 1].len = WX_SHA1_HEX_LEN;
    argv[keys + 2] = ttl;
    ngx_str_set(&argv[keys + 3], "");
    argv[keys + 4] = openid;
    argv[keys + 5] = ngx_http_wechat_now(r);
    argv[keys + 6] = ngx_http_wechat_stream_maxlen;

    if (ngx_http_wechat_binding_keys(r, wlcf, &argv[2]) != NGX_OK
        || argv[0].len == 0 || argv[1].data == NULL || argv[5].data == NULL
        || argv[6].data == NULL || argv[keys + 5].data == NULL)
    {
        return NGX_ERROR;
    }

    if (openid.len == 0) {
        /* a URL verification: no sender */

    } else if (wlcf->unbind_on_unsubscribe
               && ctx->ev.event.len == sizeof("unsubscribe") - 1
               && ngx_strncmp(ctx->ev.event.data, "unsubscribe",
                              ctx->ev.event.len) == 0)
    {
        ngx_str_set(&argv[keys + 3], "unbind");

    } else if (ctx->want_user || (wlcf->pass.len && wmcf->lookup_user)) {
        ngx_str_set(&argv[keys + 3], "user");
    }

    ctx->claimed = next;

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_claim_done,
                                         NGX_HTTP_WECHAT_SCRIPT_CLAIM,
                                         keys + 7, argv);
}


/*
 * What WeChat's retries have in common whatever their signature: the
 * MsgId of a message ("m:" and its digits); the SHA-256 of the sender,
 * CreateTime, Event and EventKey of an event, each length-prefixed, so that
 * no two pushes share a key.  Empty without a sender.
 */

static ngx_int_t
ngx_http_wechat_content_key(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *key)
{
    u_char      *p;
    wx_span_t    fields;
    wx_event_t  *ev;

    ev = &ctx->ev;

    ngx_str_null(key);

    if (ev->from_user.len == 0) {
        return NGX_OK;
    }

    if (ev->msg_id.len) {
        p = ngx_pnalloc(r->pool, sizeof("m:") - 1 + ev->msg_id.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        key->data = p;
        key->len = ngx_sprintf(p, "m:%*s", ev->msg_id.len, ev->msg_id.data)
                   - p;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 4 * (NGX_SIZE_T_LEN + 1) + ev->from_user.len
                             + ev->create_time.len + ev->event.len
                             + ev->event_key.len);
    key->data = ngx_pnalloc(r->pool, sizeof("e:") - 1 + WX_SHA256_HEX_LEN);

    if (p == NULL || key->data == NULL) {
        return NGX_ERROR;
    }

    fields.data = p;
    fields.len = ngx_sprintf(p, "%uz:%*s%uz:%*s%uz:%*s%uz:%*s",
                             ev->from_user.len, ev->from_user.len,
                             ev->from_user.data,
                             ev->create_time.len, ev->create_time.len,
                             ev->create_time.data,
                             ev->event.len, ev->event.len, ev->event.data,
                             ev->event_key.len, ev->event_key.len,
                             ev->event_key.data)
                 - p;

    key->len = sizeof("e:") - 1 + WX_SHA256_HEX_LEN;
    ngx_memcpy(key->data, "e:", 2);

    return wx_sha256_hex(fields, (char *) key->data + 2) == WX_OK
           ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_wechat_claim_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_claim_t              claim;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ngx_http_wechat_allocator(r->pool, &a);

    /* the node-local record has claimed it already: Redis is the fleet's */

    if (response == NULL || wx_redis_claim(response, &a, &claim) != WX_OK) {
        ctx->claimed(r, ctx);
        return;
    }

    if (claim.replay) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: replayed query with other content, "
                      "or used more often than WeChat retries");
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_REPLAY]);
        ngx_http_finalize_request(r, NGX_HTTP_FORBIDDEN);
        return;
    }

    ctx->user.data = (u_char *) claim.user.data;
    ctx->user.len = claim.user.len;
    ctx->unionid.data = (u_char *) claim.unionid.data;
    ctx->unionid.len = claim.unionid.len;
    ctx->retry |= claim.retry;
    ctx->looked_up = 1;

    ctx->claimed(r, ctx);
}


