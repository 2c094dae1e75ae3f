
/*
 * ngx_http_wechat_module: wechat_poll, the browser's question about its
 * scene, answered from Redis by any node.
 */


#include "ngx_http_wechat_module.h"


static void ngx_http_wechat_poll_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_poll_cleanup(void *data);


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

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET|NGX_HTTP_HEAD, &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_wechat_args(r, names, 2, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* the token from the query, else from wechat_qrcode's cookie */

    if (args[1].data == NULL) {
        (void) ngx_http_wechat_cookie(r, &wlcf->poll_cookie, &args[1]);
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

    return ngx_http_wechat_wait_redis(r, rc);
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
        || wx_redis_poll_answer(response, ngx_http_wechat_span(&ctx->scene),
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
