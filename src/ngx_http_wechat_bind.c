
/*
 * ngx_http_wechat_module: the bind flow in Redis.  Scenes are issued for a
 * trusted user, resolved atomically when WeChat pushes the scan, polled by
 * the browser, and bindings can be read and removed by the site.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_TOKEN_BYTES  (WX_TOKEN_LEN / 2)


static ngx_int_t ngx_http_wechat_qrcode_handler(ngx_http_request_t *r);
static void ngx_http_wechat_qrcode_done(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);
static ngx_int_t ngx_http_wechat_poll_handler(ngx_http_request_t *r);
static void ngx_http_wechat_poll_done(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);
static ngx_int_t ngx_http_wechat_binding_handler(ngx_http_request_t *r);
static void ngx_http_wechat_binding_done(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);
static void ngx_http_wechat_unbind_done(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);
static void ngx_http_wechat_resolve_done(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);
static void ngx_http_wechat_unresolved(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_uint_t result);
static void ngx_http_wechat_claim_done(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);
static void ngx_http_wechat_claimed(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_wait(ngx_http_request_t *r, ngx_int_t rc);
static ngx_int_t ngx_http_wechat_dedup_id(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *id);
static ngx_str_t ngx_http_wechat_now(ngx_http_request_t *r);


/* a scene's statuses: the scan outcomes (wx_outcome_t order), then pending */
static ngx_str_t  ngx_http_wechat_statuses[] = {
    ngx_string("bound"),
    ngx_string("conflict"),
    ngx_string("expired"),
    ngx_string("pending")
};


static ngx_str_t  ngx_http_wechat_dedup_ttl =
    ngx_string(NGX_HTTP_WECHAT_DEDUP_TTL);
static ngx_str_t  ngx_http_wechat_stream_maxlen =
    ngx_string(NGX_HTTP_WECHAT_STREAM_MAXLEN);


#define ngx_http_wechat_json_str(k, v)                                       \
    { k, WX_JSON_STRING, { (const unsigned char *) (v)->data, (v)->len }, 0 }


char *
ngx_http_wechat_qrcode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "bind") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid QR code kind \"%V\", it must be "
                           "\"bind\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_http_wechat_endpoint(cf, conf, NGX_HTTP_WECHAT_QRCODE,
                                    ngx_http_wechat_qrcode_handler);
}


char *
ngx_http_wechat_poll(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_wechat_endpoint(cf, conf, NGX_HTTP_WECHAT_POLL,
                                    ngx_http_wechat_poll_handler);
}


char *
ngx_http_wechat_binding(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_wechat_endpoint(cf, conf, NGX_HTTP_WECHAT_BINDING,
                                    ngx_http_wechat_binding_handler);
}


/* Waits for the command just sent, or answers when Redis is away. */

static ngx_int_t
ngx_http_wechat_wait(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_OK) {
        r->main->count++;
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_wechat_send_unavailable(r);
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static ngx_int_t
ngx_http_wechat_qrcode_handler(ngx_http_request_t *r)
{
    u_char                      *p;
    ngx_int_t                    rc;
    ngx_str_t                    user, argv[6];
    wx_span_t                    token;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_complex_value(r, wlcf->user, &user) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (user.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat qrcode: no user");
        return NGX_HTTP_UNAUTHORIZED;
    }

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the poll token is returned once and kept only as its hash */

    ctx->scene.data = ngx_pnalloc(r->pool, WX_SCENE_LEN + WX_TOKEN_LEN
                                           + WX_SHA256_HEX_LEN);
    if (ctx->scene.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->scene.len = WX_SCENE_LEN;
    ctx->poll_token.data = ctx->scene.data + WX_SCENE_LEN;
    ctx->poll_token.len = WX_TOKEN_LEN;
    p = ctx->poll_token.data + WX_TOKEN_LEN;

    token.data = ctx->poll_token.data;
    token.len = WX_TOKEN_LEN;

    if (wx_scene_new((char *) ctx->scene.data) != WX_OK
        || wx_random_hex((char *) ctx->poll_token.data,
                         NGX_HTTP_WECHAT_TOKEN_BYTES) != WX_OK
        || wx_sha256_hex(token, (char *) p) != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat qrcode: no random scene");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&argv[0], "1");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    ngx_str_set(&argv[2], "bind");
    argv[3] = user;
    argv[4].data = p;
    argv[4].len = WX_SHA256_HEX_LEN;
    argv[5].data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);

    if (argv[1].data == NULL || argv[5].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[5].len = ngx_sprintf(argv[5].data, "%T", wlcf->qrcode_expire)
                  - argv[5].data;

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_qrcode_done,
                                       NGX_HTTP_WECHAT_SCRIPT_ISSUE, 6, argv);

    return ngx_http_wechat_wait(r, rc);
}


static void
ngx_http_wechat_qrcode_done(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t result)
{
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (reply == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);
    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("scene", &ctx->scene),
        ngx_http_wechat_json_str("token", &ctx->poll_token),
        { "expire_seconds", WX_JSON_INTEGER, { NULL, 0 },
          wlcf->qrcode_expire }
    };

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, 3));
}


static ngx_int_t
ngx_http_wechat_poll_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[5];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static wx_json_field_t  expired[] = {
        { "status", WX_JSON_STRING,
          { (const unsigned char *) "expired", 7 }, 0 }
    };

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_wechat_arg(r, "scene", &ctx->scene) != NGX_OK
        || ngx_http_wechat_arg(r, "token", &ctx->poll_token) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat poll: no \"scene\" or \"token\"");
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!wx_scene_is_ours(ngx_http_wechat_span(&ctx->scene))) {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_EXPIRED]);
        return ngx_http_wechat_send_json(r, NGX_HTTP_OK, expired, 1);
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "HMGET");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    ngx_str_set(&argv[2], "status");
    ngx_str_set(&argv[3], "openid");
    ngx_str_set(&argv[4], "token");

    if (argv[1].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_poll_done,
                                       NGX_HTTP_WECHAT_NO_SCRIPT, 5, argv);

    if (rc == NGX_OK) {
        ctx->waiting = 1;
        ngx_http_wechat_count(polls_waiting);

    } else if (rc == NGX_DECLINED) {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_UNAVAILABLE]);
    }

    return ngx_http_wechat_wait(r, rc);
}


static void
ngx_http_wechat_poll_done(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t result)
{
    ngx_uint_t              i;
    wx_span_t               status, json;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    ctx->waiting = 0;
    ngx_http_wechat_add(polls_waiting, -1);

    if (reply == NULL
        || wx_redis_poll_answer(reply,
                                ngx_http_wechat_span(&ctx->poll_token),
                                &a, &status, &json)
           != WX_OK)
    {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_UNAVAILABLE]);
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    for (i = 0; i < NGX_HTTP_WECHAT_POLL_UNAVAILABLE; i++) {
        if (status.len == ngx_http_wechat_statuses[i].len
            && ngx_strncmp(status.data, ngx_http_wechat_statuses[i].data,
                           status.len) == 0)
        {
            ngx_http_wechat_count(polls[i]);
        }
    }

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_answer(r, NGX_HTTP_OK, json));
}


static ngx_int_t
ngx_http_wechat_binding_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[8];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_DELETE))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_wechat_arg(r, "user", &ctx->user) == NGX_OK
        && ctx->user.len)
    {
        argv[1] = ngx_http_wechat_key(r, wlcf, "user:", &ctx->user);

    } else if (r->method == NGX_HTTP_GET
               && ngx_http_wechat_arg(r, "openid", &ctx->openid) == NGX_OK
               && ctx->openid.len)
    {
        argv[1] = ngx_http_wechat_key(r, wlcf, "openid:", &ctx->openid);

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat binding: no \"user\" or \"openid\"");
        return NGX_HTTP_BAD_REQUEST;
    }

    if (r->method == NGX_HTTP_GET) {
        ngx_str_set(&argv[0], "GET");

        rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_binding_done,
                                           NGX_HTTP_WECHAT_NO_SCRIPT, 2,
                                           argv);
        return ngx_http_wechat_wait(r, rc);
    }

    ngx_str_set(&argv[0], "1");
    argv[1] = ngx_http_wechat_key(r, wlcf, "resolutions", NULL);
    argv[2] = wlcf->key_prefix;
    ngx_str_set(&argv[3], "user");
    argv[4] = ctx->user;
    ngx_str_set(&argv[5], "site");
    argv[6] = ngx_http_wechat_now(r);
    argv[7] = ngx_http_wechat_stream_maxlen;

    if (argv[1].data == NULL || argv[6].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_unbind_done,
                                       NGX_HTTP_WECHAT_SCRIPT_UNBIND, 8,
                                       argv);
    return ngx_http_wechat_wait(r, rc);
}


static void
ngx_http_wechat_binding_done(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t result)
{
    wx_span_t               found;
    wx_status_t             status;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    static wx_json_field_t  not_found[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) "not found", 9 }, 0 }
    };

    if (reply == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_redis_string(reply, &a, &found);

    if (status == WX_ERR_NOT_FOUND) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_send_json(r, NGX_HTTP_NOT_FOUND, not_found, 1));
        return;
    }

    if (status != WX_OK) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    if (ctx->user.len) {
        ctx->openid.data = (u_char *) found.data;
        ctx->openid.len = found.len;

    } else {
        ctx->user.data = (u_char *) found.data;
        ctx->user.len = found.len;
    }

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("user", &ctx->user),
        ngx_http_wechat_json_str("openid", &ctx->openid)
    };

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, 2));
}


static void
ngx_http_wechat_unbind_done(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t result)
{
    ngx_str_t               status;
    ngx_http_wechat_ctx_t  *ctx;

    if (reply == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);

    /* idempotent: a user with no binding is already unbound */

    ngx_str_set(&status, "unbound");

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("user", &ctx->user),
        ngx_http_wechat_json_str("status", &status)
    };

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, 2));
}


/* Resolves a scan of one of our scenes in one script, one round trip. */

void
ngx_http_wechat_resolve(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[13], id, openid, digest, ttl;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /*
     * A captured query must not carry another scan: each is kept, with the
     * digest of what it signed, for as long as its timestamp is accepted.
     */

    ttl.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);

    if (ttl.data == NULL || ngx_http_wechat_dedup_id(r, ctx, &id) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    digest.data = ctx->digest;
    digest.len = WX_SHA1_HEX_LEN;
    ttl.len = ngx_sprintf(ttl.data, "%T", 2 * wlcf->timestamp_skew + 1)
              - ttl.data;

    openid.data = (u_char *) ctx->ev.from_user.data;
    openid.len = ctx->ev.from_user.len;

    ngx_str_set(&argv[0], "4");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    argv[2] = ngx_http_wechat_key(r, wlcf, "dedup:", &id);
    argv[3] = ngx_http_wechat_key(r, wlcf, "resolutions", NULL);
    argv[4] = ngx_http_wechat_key(r, wlcf, "query:", &ctx->signature);
    argv[5] = wlcf->key_prefix;
    argv[6] = openid;
    argv[7] = ngx_http_wechat_now(r);
    argv[8] = ngx_http_wechat_dedup_ttl;
    argv[9] = ctx->scene;
    argv[10] = ngx_http_wechat_stream_maxlen;
    argv[11] = digest;
    argv[12] = ttl;

    if (argv[1].data == NULL || argv[2].data == NULL || argv[3].data == NULL
        || argv[4].data == NULL || argv[7].data == NULL)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_resolve_done,
                                       NGX_HTTP_WECHAT_SCRIPT_RESOLVE, 13,
                                       argv);
    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_wechat_unresolved(r, ctx, NGX_HTTP_WECHAT_REDIS_REFUSED);
    }
}


static void
ngx_http_wechat_resolve_done(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t result)
{
    wx_span_t                    xml;
    wx_status_t                  status;
    wx_allocator_t               a;
    wx_resolution_t              res;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    ctx = ngx_http_wechat_get_ctx(r);

    if (reply == NULL) {
        ngx_http_wechat_unresolved(r, ctx, result);
        return;
    }

    status = wx_redis_resolution(reply, &res);
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
                      "scene \"%V\" openid \"%*s\"", &ctx->scene,
                      ctx->ev.from_user.len, ctx->ev.from_user.data);
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_REPLAY]);
        ngx_http_finalize_request(r, NGX_HTTP_FORBIDDEN);
        return;
    }

    ctx->resolution = ngx_http_wechat_statuses[res.outcome];

    ngx_http_wechat_count(pushes[res.outcome]);

    if (res.duplicate) {
        ngx_http_wechat_count(dedup_hits);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat callback: scene \"%V\" %V%s", &ctx->scene,
                   &ctx->resolution, res.duplicate ? " (retry)" : "");

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    ngx_http_wechat_allocator(r->pool, &a);

    /* the reply time is the first answer's, so a retry gets its bytes */

    status = wx_reply_text(ctx->ev.from_user, ctx->ev.to_user, res.time,
                           ngx_http_wechat_span(&wlcf->reply[res.outcome]),
                           &a, &xml);
    if (status != WX_OK) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_reject(r, status, "reply"));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_wechat_send_reply(r, ctx, xml));
}


/*
 * No scan is lost: without Redis the push goes to the business app, told
 * whether Redis never ran the resolution ("unavailable") or may have run
 * it ("unknown": the resolution stream then says what happened).
 */

static void
ngx_http_wechat_unresolved(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_uint_t result)
{
    ngx_uint_t                   outcome;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (result == NGX_HTTP_WECHAT_REDIS_LOST) {
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
ngx_http_wechat_claim(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                     argv[10], openid, ttl;
    ngx_http_wechat_loc_conf_t   *wlcf;
    ngx_http_wechat_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_wechat_module);

    openid.data = (u_char *) ctx->ev.from_user.data;
    openid.len = ctx->ev.from_user.len;

    ttl.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (ttl.data == NULL) {
        return NGX_ERROR;
    }

    ttl.len = ngx_sprintf(ttl.data, "%T", 2 * wlcf->timestamp_skew + 1)
              - ttl.data;

    ngx_str_set(&argv[0], "2");
    argv[1] = ngx_http_wechat_key(r, wlcf, "query:", &ctx->signature);
    argv[2] = ngx_http_wechat_key(r, wlcf, "resolutions", NULL);
    argv[3].data = ctx->digest;
    argv[3].len = WX_SHA1_HEX_LEN;
    argv[4] = ttl;
    ngx_str_set(&argv[5], "");
    argv[6] = wlcf->key_prefix;
    argv[7] = openid;
    argv[8] = ngx_http_wechat_now(r);
    argv[9] = ngx_http_wechat_stream_maxlen;

    if (argv[1].data == NULL || argv[2].data == NULL || argv[8].data == NULL)
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
        ngx_str_set(&argv[5], "unbind");

    } else if (wlcf->pass.len && wmcf->lookup_user) {
        ngx_str_set(&argv[5], "user");
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_claim_done,
                                         NGX_HTTP_WECHAT_SCRIPT_CLAIM, 10,
                                         argv);
}


static void
ngx_http_wechat_claim_done(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t result)
{
    wx_claim_t              claim;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ngx_http_wechat_allocator(r->pool, &a);

    /* the node-local record has claimed it already: Redis is the fleet's */

    if (reply == NULL || wx_redis_claim(reply, &a, &claim) != WX_OK) {
        ngx_http_wechat_claimed(r, ctx);
        return;
    }

    if (claim.replay) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: replayed query with other content");
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_REPLAY]);
        ngx_http_finalize_request(r, NGX_HTTP_FORBIDDEN);
        return;
    }

    ctx->user.data = (u_char *) claim.user.data;
    ctx->user.len = claim.user.len;

    ngx_http_wechat_claimed(r, ctx);
}


static void
ngx_http_wechat_claimed(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    if (ctx->echostr.data) {
        ngx_http_finalize_request(r, ngx_http_wechat_send(r, NGX_HTTP_OK,
                                     "text/plain", ctx->echostr.data,
                                     ctx->echostr.len));
        return;
    }

    ngx_http_wechat_pass(r, ctx);
}


/*
 * Retries carry the same MsgId, or the same sender, time, event and key;
 * the fields are length-delimited before hashing so none can bleed into
 * the next.
 */

static ngx_int_t
ngx_http_wechat_dedup_id(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *id)
{
    u_char      *p;
    size_t       len;
    wx_span_t    all;
    ngx_uint_t   i;
    wx_span_t    parts[5];

    parts[0] = ctx->ev.to_user;
    parts[1] = ctx->ev.from_user;
    parts[2] = ctx->ev.create_time;
    parts[3] = ctx->ev.event;
    parts[4] = ctx->ev.event_key;

    if (ctx->ev.msg_id.len) {
        parts[1] = ctx->ev.msg_id;
        parts[2].len = parts[3].len = parts[4].len = 0;
    }

    len = 0;
    for (i = 0; i < 5; i++) {
        len += NGX_SIZE_T_LEN + 1 + parts[i].len;
    }

    p = ngx_pnalloc(r->pool, len + WX_SHA1_HEX_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    all.data = p;
    for (i = 0; i < 5; i++) {
        p = ngx_sprintf(p, "%uz:", parts[i].len);
        p = ngx_cpymem(p, parts[i].data, parts[i].len);
    }

    all.len = p - all.data;

    if (wx_sha1_hex(all, (char *) p) != WX_OK) {
        return NGX_ERROR;
    }

    id->data = p;
    id->len = WX_SHA1_HEX_LEN;

    return NGX_OK;
}


static ngx_str_t
ngx_http_wechat_now(ngx_http_request_t *r)
{
    ngx_str_t  now;

    now.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (now.data == NULL) {
        now.len = 0;
        return now;
    }

    now.len = ngx_sprintf(now.data, "%T", ngx_time()) - now.data;

    return now;
}
