
/*
 * ngx_http_wechat_module: wechat_jssdk, what a page of this site inside
 * WeChat passes to wx.config: the account's appId, a timestamp, a nonce
 * and the signature over the account's jsapi_ticket, which the token store
 * keeps for the fleet.  The ticket never leaves the server, and only pages
 * on the hosts of wechat_jssdk_hosts are signed, so that no other site
 * uses this account's JS-SDK.
 */


#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_token.h"
#include "ngx_http_wechat_handlers.h"


static void ngx_http_wechat_jssdk_done(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_jssdk_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_jssdk_refuse(ngx_http_request_t *r,
    ngx_str_t *url, const char *why);


ngx_int_t
ngx_http_wechat_jssdk_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    url;
    wx_span_t                    page;
    wx_status_t                  status;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "url" };

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET|NGX_HTTP_HEAD, &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_wechat_args(r, names, 1, &url) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = wx_jssdk_page(ngx_http_wechat_span(&url),
                           wlcf->jssdk_hosts->elts,
                           wlcf->jssdk_hosts->nelts, &page);

    if (status == WX_ERR_NOT_FOUND) {
        return ngx_http_wechat_jssdk_refuse(r, &url, "foreign url");
    }

    if (status != WX_OK) {
        return ngx_http_wechat_jssdk_refuse(r, &url, "bad url");
    }

    ctx->url.data = (u_char *) page.data;
    ctx->url.len = page.len;
    ctx->wx.done = ngx_http_wechat_jssdk_done;

    rc = ngx_http_wechat_wx_ticket(r, ctx);

    if (rc == NGX_DONE) {
        return ngx_http_wechat_jssdk_answer(r, ctx);
    }

    return ngx_http_wechat_wait_redis(r, rc);
}


static void
ngx_http_wechat_jssdk_done(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_http_finalize_request(r, ngx_http_wechat_jssdk_answer(r, ctx));
}


/*
 * The signed parameters; without a ticket, 503 whatever failed: the page
 * cannot do better than try again later.
 */

static ngx_int_t
ngx_http_wechat_jssdk_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    u_char                       nonce[WX_JSSDK_NONCE_LEN];
    time_t                       now;
    ngx_http_wechat_wx_t        *wx = &ctx->wx;
    ngx_http_wechat_loc_conf_t  *wlcf;
    u_char                       signature[WX_SIGNATURE_LEN];

    if (wx->result == NGX_HTTP_WECHAT_API_BACKOFF) {
        return ngx_http_wechat_send_retry(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "wechat", wx->retry_after);
    }

    if (wx->result != NGX_HTTP_WECHAT_API_OK) {
        wx_json_field_t  failed[] = {
            { "error", WX_JSON_STRING,
              { (const unsigned char *) "wechat", 6 }, 0 },
            { "errcode", WX_JSON_INTEGER, { NULL, 0 },
              wx->errcode ? wx->errcode : -1 }
        };

        if (wx->result == NGX_HTTP_WECHAT_API_NO_TOKEN && wx->errcode == 0) {
            return ngx_http_wechat_send_unavailable(r);
        }

        return ngx_http_wechat_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         failed, 2);
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    now = ngx_time();

    if (wx_random_hex((char *) nonce, WX_JSSDK_NONCE_LEN / 2) != WX_OK
        || wx_jssdk_sign(ngx_http_wechat_span(&wx->token),
                         (wx_span_t) { nonce, WX_JSSDK_NONCE_LEN }, now,
                         ngx_http_wechat_span(&ctx->url),
                         (char *) signature)
           != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat jssdk: no signature");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("appId", &wlcf->appid),
        { "timestamp", WX_JSON_INTEGER, { NULL, 0 }, now },
        { "nonceStr", WX_JSON_STRING, { nonce, WX_JSSDK_NONCE_LEN }, 0 },
        { "signature", WX_JSON_STRING, { signature, WX_SIGNATURE_LEN }, 0 }
    };

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat jssdk: signed \"%V\"", &ctx->url);

    return ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, 4);
}


static ngx_int_t
ngx_http_wechat_jssdk_refuse(ngx_http_request_t *r, ngx_str_t *url,
    const char *why)
{
    ngx_str_t  shown;

    wx_json_field_t  refused[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) why, ngx_strlen(why) }, 0 }
    };

    /* the url is the client's: escaped for the log, and cut */

    url->len = ngx_min(url->len, 256);
    shown = ngx_http_wechat_log_escape(r->pool, url);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat jssdk: %s refused: \"%V\"", why, &shown);

    return ngx_http_wechat_send_json(r, NGX_HTTP_BAD_REQUEST, refused, 1);
}
