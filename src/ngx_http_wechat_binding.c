
/*
 * ngx_http_wechat_module: wechat_binding, for the site's backend: which
 * openid a user is bound to, or which user an openid; binding a user the
 * site registered after a login scan; and unbinding.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_handlers.h"


static void ngx_http_wechat_binding_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_unbind_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_bind(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *args);
static void ngx_http_wechat_bind_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);


ngx_int_t
ngx_http_wechat_binding_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[9], args[2];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "user", "openid" };

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET|NGX_HTTP_DELETE|NGX_HTTP_PUT,
                               &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_wechat_args(r, names, 2, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_PUT) {
        return ngx_http_wechat_wait_redis(r,
                   ngx_http_wechat_bind(r, ctx, args));
    }

    if (args[0].len && ngx_http_wechat_is_name(&args[0])) {
        ctx->user = args[0];
        argv[1] = ngx_http_wechat_key(r, wlcf, "users", NULL);
        argv[2] = ctx->user;

    } else if (r->method == NGX_HTTP_GET && args[0].len == 0
               && args[1].len && ngx_http_wechat_is_name(&args[1]))
    {
        ctx->openid = args[1];
        argv[1] = ngx_http_wechat_key(r, wlcf, "openids", NULL);
        argv[2] = ctx->openid;

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat binding: no \"user\" or \"openid\", "
                      "or not a name");
        return NGX_HTTP_BAD_REQUEST;
    }

    if (r->method == NGX_HTTP_GET) {
        ngx_str_set(&argv[0], "HGET");

        rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_binding_done,
                                           NGX_HTTP_WECHAT_NO_SCRIPT, 3,
                                           argv);
        return ngx_http_wechat_wait_redis(r, rc);
    }

    ngx_str_set(&argv[0], "3");
    ngx_str_set(&argv[4], "user");
    argv[5] = ctx->user;
    ngx_str_set(&argv[6], "site");
    argv[7] = ngx_http_wechat_now(r);
    argv[8] = ngx_http_wechat_stream_maxlen;

    if (ngx_http_wechat_binding_keys(r, wlcf, &argv[1]) != NGX_OK
        || argv[7].data == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_unbind_done,
                                       NGX_HTTP_WECHAT_SCRIPT_UNBIND, 9,
                                       argv);
    return ngx_http_wechat_wait_redis(r, rc);
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


/*
 * PUT ?user=U&openid=O: the site registered the follower of a login scan
 * as U; the rules and the stream entry of a bind scan.
 */

static ngx_int_t
ngx_http_wechat_bind(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *args)
{
    ngx_str_t                    argv[8];
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (args[0].len == 0 || args[1].len == 0
        || !ngx_http_wechat_is_name(&args[0])
        || !ngx_http_wechat_is_openid(&args[1]))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat binding: no \"user\" and \"openid\", "
                      "or not names");
        return NGX_HTTP_BAD_REQUEST;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ctx->user = args[0];
    ctx->openid = args[1];

    ngx_str_set(&argv[0], "3");
    argv[4] = ctx->user;
    argv[5] = ctx->openid;
    argv[6] = ngx_http_wechat_now(r);
    argv[7] = ngx_http_wechat_stream_maxlen;

    if (ngx_http_wechat_binding_keys(r, wlcf, &argv[1]) != NGX_OK
        || argv[6].len == 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_bind_done,
                                         NGX_HTTP_WECHAT_SCRIPT_BIND, 8,
                                         argv);
}


static void
ngx_http_wechat_bind_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_str_t               status;
    wx_resolution_t         res;
    ngx_http_wechat_ctx_t  *ctx;

    if (response == NULL || wx_redis_resolution(response, &res) != WX_OK
        || res.replay)
    {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);

    status.data = (u_char *) wx_scene_status_name(res.outcome);
    status.len = ngx_strlen(status.data);

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("user", &ctx->user),
        ngx_http_wechat_json_str("openid", &ctx->openid),
        ngx_http_wechat_json_str("status", &status)
    };

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_json(r, res.outcome == WX_SCENE_BOUND
                                     ? NGX_HTTP_OK : NGX_HTTP_CONFLICT,
                                  answer, 3));
}
