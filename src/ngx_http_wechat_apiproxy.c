
/*
 * ngx_http_wechat_module: wechat_api, WeChat's API for the business app
 * without the token.  The app calls this location with any API path; the
 * module adds the account's shared access_token, refreshes it and calls
 * once more after a token error, and answers with WeChat's answer.  The
 * app never holds the secret, and no server of the site fetches a token
 * of its own that would invalidate the others'.
 */


#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_token.h"
#include "ngx_http_wechat_handlers.h"


#define NGX_HTTP_WECHAT_API_BODY_MAX  (1024 * 1024)


static void ngx_http_wechat_apiproxy_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_apiproxy_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_apiproxy_path(ngx_http_request_t *r,
    ngx_str_t *path);
static ngx_int_t ngx_http_wechat_apiproxy_args(ngx_http_request_t *r,
    ngx_str_t *args);
static void ngx_http_wechat_apiproxy_done(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


ngx_int_t
ngx_http_wechat_apiproxy_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_wechat_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_wechat_wait_redis(r,
                   ngx_http_wechat_apiproxy_start(r, ctx));
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_wechat_apiproxy_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_wechat_apiproxy_body(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    rc = ngx_http_wechat_read_body(r, NGX_HTTP_WECHAT_API_BODY_MAX,
                                   &ctx->wx.body);
    if (rc == NGX_OK) {
        rc = ngx_http_wechat_apiproxy_start(r, ctx);
    }

    if (rc == NGX_DECLINED) {
        rc = ngx_http_wechat_send_unavailable(r);

    } else if (rc == NGX_OK) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_wechat_apiproxy_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_wechat_apiproxy_path(r, &ctx->wx.path);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_wechat_apiproxy_args(r, &ctx->wx.args);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method == NGX_HTTP_GET) {
        ngx_str_null(&ctx->wx.body);
    }

    ctx->wx.endpoint = NGX_HTTP_WECHAT_API_PROXY;
    ctx->wx.done = ngx_http_wechat_apiproxy_done;

    rc = ngx_http_wechat_wx_call(r, ctx);

    return (rc == NGX_ERROR) ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc;
}


/* The API path: what follows the location's prefix, from "/" on. */

static ngx_int_t
ngx_http_wechat_apiproxy_path(ngx_http_request_t *r, ngx_str_t *path)
{
    size_t                     skip;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    skip = clcf->name.len;

    if (skip && clcf->name.data[skip - 1] == '/') {
        skip--;
    }

    if (clcf->regex || r->uri.len <= skip
        || ngx_strncmp(r->uri.data, clcf->name.data, skip) != 0
        || r->uri.data[skip] != '/')
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat api: no API path in \"%V\"", &r->uri);
        return NGX_HTTP_NOT_FOUND;
    }

    path->data = r->uri.data + skip;
    path->len = r->uri.len - skip;

    return NGX_OK;
}


/*
 * The app's arguments; one that any server would read as an access_token
 * (whatever its case or percent-encoding) is refused: the token is ours.
 */

static ngx_int_t
ngx_http_wechat_apiproxy_args(ngx_http_request_t *r, ngx_str_t *args)
{
    u_char     *p, *end, *dst, *src;
    u_char      name[3 * sizeof("access_token")];
    ngx_str_t   arg;

    end = r->args.data + r->args.len;

    for (p = r->args.data; p < end; /* void */) {
        ngx_http_wechat_arg_name(&p, end, &arg);

        /* longer, it cannot decode to the name */

        if (arg.len > sizeof(name)) {
            continue;
        }

        dst = name;
        src = arg.data;
        ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);

        if (dst - name == sizeof("access_token") - 1
            && ngx_strncasecmp(name, (u_char *) "access_token",
                               sizeof("access_token") - 1) == 0)
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "wechat api: the app sent an access_token of "
                          "its own");
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    *args = r->args;

    return NGX_OK;
}


static void
ngx_http_wechat_apiproxy_done(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    wx_span_t  answer;

    if (ctx->wx.result == NGX_HTTP_WECHAT_API_OK
        || ctx->wx.result == NGX_HTTP_WECHAT_API_ERRCODE)
    {
        answer = ngx_http_wechat_span(&ctx->wx.answer);
        ngx_http_finalize_request(r,
            ngx_http_wechat_send_answer(r, NGX_HTTP_OK, answer));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_wechat_wx_failed(r, ctx));
}
