
/*
 * ngx_http_wechat_module: the bind flow in Redis.  Scenes are issued for a
 * trusted user, resolved atomically when WeChat pushes the scan, polled by
 * the browser, and bindings can be read and removed by the site.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_TOKEN_BYTES  (WX_TOKEN_LEN / 2)


static ngx_int_t ngx_http_wechat_new_scene(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *token_hash);
static void ngx_http_wechat_qrcode_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_poll_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_poll_cleanup(void *data);
static void ngx_http_wechat_binding_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_unbind_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_wait(ngx_http_request_t *r, ngx_int_t rc);


static ngx_str_t  ngx_http_wechat_stream_maxlen =
    ngx_string(NGX_HTTP_WECHAT_STREAM_MAXLEN);


#define ngx_http_wechat_json_str(k, v)                                       \
    { k, WX_JSON_STRING, { (const unsigned char *) (v)->data, (v)->len }, 0 }


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


ngx_int_t
ngx_http_wechat_qrcode_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    user, argv[6];
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

    /* the user becomes $wechat_user and a header to the business app */

    if (!ngx_http_wechat_is_name(&user)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat qrcode: user has a control character or is "
                      "over %d bytes", NGX_HTTP_WECHAT_NAME_MAX);
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_wechat_new_scene(r, ctx, &argv[4]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&argv[0], "1");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    ngx_str_set(&argv[2], "bind");
    argv[3] = user;
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


/*
 * A scene of 128 random bits and its poll token, which is answered once
 * and kept only as its hash.
 */

static ngx_int_t
ngx_http_wechat_new_scene(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *token_hash)
{
    u_char     *p;
    wx_span_t   token;

    p = ngx_pnalloc(r->pool, WX_SCENE_LEN + WX_TOKEN_LEN + WX_SHA256_HEX_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->scene.data = p;
    ctx->scene.len = WX_SCENE_LEN;
    ctx->poll_token.data = p + WX_SCENE_LEN;
    ctx->poll_token.len = WX_TOKEN_LEN;
    token_hash->data = ctx->poll_token.data + WX_TOKEN_LEN;
    token_hash->len = WX_SHA256_HEX_LEN;

    token = ngx_http_wechat_span(&ctx->poll_token);

    if (wx_scene_new((char *) ctx->scene.data) != WX_OK
        || wx_random_hex((char *) ctx->poll_token.data,
                         NGX_HTTP_WECHAT_TOKEN_BYTES) != WX_OK
        || wx_sha256_hex(token, (char *) token_hash->data) != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat qrcode: no random scene");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_wechat_qrcode_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (response == NULL) {
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


ngx_int_t
ngx_http_wechat_poll_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[5], args[2];
    ngx_pool_cleanup_t          *cln;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "scene", "token" };

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

    if (ngx_http_wechat_args(r, names, 2, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (args[0].data == NULL || args[1].data == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat poll: no \"scene\" or \"token\"");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->scene = args[0];
    ctx->poll_token = args[1];

    if (!wx_scene_is_ours(ngx_http_wechat_span(&ctx->scene))) {
        ngx_http_wechat_count(polls[WX_SCENE_EXPIRED]);
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

    /* the gauge of waiting polls must not keep a client that went away */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_poll_done,
                                       NGX_HTTP_WECHAT_NO_SCRIPT, 5, argv);

    if (rc == NGX_OK) {
        ctx->waiting = 1;
        ngx_http_wechat_count(polls_waiting);
        cln->handler = ngx_http_wechat_poll_cleanup;
        cln->data = ctx;

    } else if (rc == NGX_DECLINED) {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_UNAVAILABLE]);
    }

    return ngx_http_wechat_wait(r, rc);
}


static void
ngx_http_wechat_poll_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_span_t               json;
    wx_allocator_t          a;
    wx_scene_status_t       status;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    ctx->waiting = 0;
    ngx_http_wechat_add(polls_waiting, -1);

    if (response == NULL
        || wx_redis_poll_answer(response,
                                ngx_http_wechat_span(&ctx->poll_token),
                                &a, &status, &json)
           != WX_OK)
    {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_UNAVAILABLE]);
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ngx_http_wechat_count(polls[status]);

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_answer(r, NGX_HTTP_OK, json));
}


static void
ngx_http_wechat_poll_cleanup(void *data)
{
    ngx_http_wechat_ctx_t  *ctx = data;

    if (ctx->waiting) {
        ngx_http_wechat_add(polls_waiting, -1);
    }
}


ngx_int_t
ngx_http_wechat_binding_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[8], args[2];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "user", "openid" };

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

    if (ngx_http_wechat_args(r, names, 2, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (args[0].len && ngx_http_wechat_is_name(&args[0])) {
        ctx->user = args[0];
        argv[1] = ngx_http_wechat_key(r, wlcf, "user:", &ctx->user);

    } else if (r->method == NGX_HTTP_GET && args[0].len == 0
               && args[1].len && ngx_http_wechat_is_name(&args[1]))
    {
        ctx->openid = args[1];
        argv[1] = ngx_http_wechat_key(r, wlcf, "openid:", &ctx->openid);

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat binding: no \"user\" or \"openid\", "
                      "or not a name");
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
ngx_http_wechat_binding_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_span_t               found;
    wx_status_t             status;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    static wx_json_field_t  not_found[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) "not found", 9 }, 0 }
    };

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_redis_string(response, &a, &found);

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
ngx_http_wechat_unbind_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_str_t               status;
    ngx_http_wechat_ctx_t  *ctx;

    if (response == NULL) {
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


