
/*
 * ngx_http_wechat_module: wechat_qrcode, which issues a scene for a trusted
 * site user: 128 random bits, with a poll token kept only as its hash.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_TOKEN_BYTES  (WX_TOKEN_LEN / 2)


static ngx_int_t ngx_http_wechat_new_scene(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *token_hash);
static void ngx_http_wechat_qrcode_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);


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

    return ngx_http_wechat_wait_redis(r, rc);
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
