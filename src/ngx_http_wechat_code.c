
/*
 * ngx_http_wechat_module: what a scan sends the user besides its outcome.
 * A verification code for a code scene, kept in Redis only as its hash;
 * the reply texts' {code}, {minutes}, {link}, a link into the site
 * signed for the follower's openid, and {confirm}, the link to the page
 * where the scanner of a login scene confirms it; and the template message
 * that carries the code instead of the reply, sent after the reply.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_token.h"
#include "ngx_http_wechat_push.h"


#define NGX_HTTP_WECHAT_NONCE_BYTES  16


static ngx_int_t ngx_http_wechat_code_link(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *text, const char *placeholder,
    ngx_str_t *url, const char *purpose, wx_span_t *out);
static ngx_int_t ngx_http_wechat_code_expand(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t text, wx_span_t *links,
    wx_span_t *out);
static void ngx_http_wechat_code_sent(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


/*
 * A fresh code for the scene, drawn for every scan of ours: only the
 * script knows whether the scene wants one, and a scan costs one round
 * trip.  Its hash goes to Redis.
 */

ngx_int_t
ngx_http_wechat_code_new(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *hash)
{
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ctx->code.data = ngx_pnalloc(r->pool, wlcf->code_length);
    hash->data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);

    if (ctx->code.data == NULL || hash->data == NULL) {
        return NGX_ERROR;
    }

    ctx->code.len = wlcf->code_length;
    hash->len = WX_SHA256_HEX_LEN;

    if (wx_random_digits((char *) ctx->code.data, ctx->code.len) != WX_OK
        || wx_code_hash(ngx_http_wechat_span(
                            &ngx_http_wechat_kinds[NGX_HTTP_WECHAT_KIND_CODE]),
                        ngx_http_wechat_span(&ctx->scene),
                        ngx_http_wechat_span(&ctx->code),
                        (char *) hash->data)
           != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: no random code");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The passive reply of text, its placeholders filled in, sent at time. */

ngx_int_t
ngx_http_wechat_code_reply(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *text, int64_t time)
{
    wx_span_t       expanded, xml;
    wx_status_t     status;
    wx_allocator_t  a;

    if (ngx_http_wechat_code_text(r, ctx, text, &expanded) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_reply_text(ctx->ev.from_user, ctx->ev.to_user, time,
                           expanded, &a, &xml);
    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "reply");
    }

    return ngx_http_wechat_send_reply(r, ctx, xml);
}


/* A reply text with its placeholders filled in. */

ngx_int_t
ngx_http_wechat_code_text(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *text, wx_span_t *out)
{
    wx_span_t                    links[2];
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_wechat_code_link(r, ctx, text, "{link}", &wlcf->link_url,
                                  NGX_HTTP_WECHAT_PURPOSE_REGISTER, &links[0])
        != NGX_OK
        || ngx_http_wechat_code_link(r, ctx, text, "{confirm}",
                                     &wlcf->login_confirm_url,
                                     NGX_HTTP_WECHAT_PURPOSE_CONFIRM,
                                     &links[1])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_code_expand(r, ctx, ngx_http_wechat_span(text),
                                       links, out);
}


/*
 * The link a placeholder of the text asks for, signed for the sender, and
 * for the scene when it confirms one; empty when the text has none.
 */

static ngx_int_t
ngx_http_wechat_code_link(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *text, const char *placeholder, ngx_str_t *url,
    const char *purpose, wx_span_t *out)
{
    wx_link_t                    link;
    ngx_http_wechat_loc_conf_t  *wlcf;

    out->data = NULL;
    out->len = 0;

    if (url->len == 0
        || ngx_strlcasestrn(text->data, text->data + text->len,
                            (u_char *) placeholder,
                            ngx_strlen(placeholder) - 1)
           == NULL)
    {
        return NGX_OK;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_memzero(&link, sizeof(wx_link_t));

    link.appid = ngx_http_wechat_span(&wlcf->appid);
    link.purpose.data = (const unsigned char *) purpose;
    link.purpose.len = ngx_strlen(purpose);
    link.openid = ctx->ev.from_user;

    if (url == &wlcf->login_confirm_url) {
        link.scene = ngx_http_wechat_span(&ctx->scene);
    }

    return ngx_http_wechat_link_new(r, wlcf, url, &link, out);
}


static ngx_int_t
ngx_http_wechat_code_expand(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t text, wx_span_t *links, wx_span_t *out)
{
    ngx_str_t                    minutes;
    wx_span_t                    values[4];
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char *const  names[] = { "code", "minutes", "link",
                                          "confirm" };

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    minutes = ngx_http_wechat_number(r->pool,
                                     (wlcf->qrcode_expire + 59) / 60);
    if (minutes.len == 0) {
        return NGX_ERROR;
    }

    values[0] = ngx_http_wechat_span(&ctx->code);
    values[1] = ngx_http_wechat_span(&minutes);
    values[2] = links ? links[0] : (wx_span_t) { NULL, 0 };
    values[3] = links ? links[1] : (wx_span_t) { NULL, 0 };

    ngx_http_wechat_allocator(r->pool, &a);

    return wx_text_expand(text, names, values, 4, &a, out) == WX_OK
           ? NGX_OK : NGX_ERROR;
}


/*
 * url with the link's fields, an expiry and a nonce, signed with the
 * current wechat_link_secret.
 */

ngx_int_t
ngx_http_wechat_link_new(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_str_t *url, wx_link_t *link,
    wx_span_t *out)
{
    u_char          *p;
    wx_span_t        query, *secrets;
    wx_allocator_t   a;
    u_char           hex[2 * NGX_HTTP_WECHAT_NONCE_BYTES];

    secrets = wlcf->link_secrets->elts;

    link->nonce.data = hex;
    link->nonce.len = sizeof(hex);
    link->expires = ngx_time() + wlcf->link_expire;

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_random_hex((char *) hex, NGX_HTTP_WECHAT_NONCE_BYTES) != WX_OK
        || wx_link_query(secrets[0], link, &a, &query) != WX_OK)
    {
        return NGX_ERROR;
    }

    out->len = url->len + 1 + query.len;
    p = ngx_pnalloc(r->pool, out->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_cpymem(p, url->data, url->len);
    *p++ = ngx_strlchr(url->data, url->data + url->len, '?') ? '&' : '?';
    ngx_memcpy(p, query.data, query.len);

    return NGX_OK;
}


/*
 * The code by template message, once the reply has gone: the call holds
 * the request, not WeChat's push, which gets its answer at once.
 */

void
ngx_http_wechat_code_template(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_uint_t                   i;
    wx_span_t                    body, none;
    wx_allocator_t               a;
    wx_template_field_t         *data, *conf;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    conf = wlcf->code_data->elts;

    data = ngx_palloc(r->pool,
                      (wlcf->code_data->nelts + 1)
                      * sizeof(wx_template_field_t));
    if (data == NULL) {
        goto failed;
    }

    none.data = NULL;
    none.len = 0;

    for (i = 0; i < wlcf->code_data->nelts; i++) {
        data[i].name = conf[i].name;

        if (ngx_http_wechat_code_expand(r, ctx, conf[i].value, NULL,
                                        &data[i].value)
            != NGX_OK)
        {
            goto failed;
        }
    }

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_api_template_request(ctx->ev.from_user,
                                ngx_http_wechat_span(&wlcf->code_template),
                                none, data, i, &a, &body)
        != WX_OK)
    {
        goto failed;
    }

    ctx->wx.endpoint = NGX_HTTP_WECHAT_API_TEMPLATE;
    ngx_str_set(&ctx->wx.path, "/cgi-bin/message/template/send");
    ctx->wx.body.data = (u_char *) body.data;
    ctx->wx.body.len = body.len;
    ctx->wx.done = ngx_http_wechat_code_sent;

    if (ngx_http_wechat_wx_call(r, ctx) == NGX_OK) {
        r->main->count++;
        return;
    }

failed:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "wechat callback: template message with the code of "
                  "scene \"%V\" not sent", &ctx->scene);
}


static void
ngx_http_wechat_code_sent(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    if (ctx->wx.result != NGX_HTTP_WECHAT_API_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: template message with the code of "
                      "scene \"%V\" failed: HTTP %ui, errcode %L",
                      &ctx->scene, ctx->wx.status, ctx->wx.errcode);
    }

    ngx_http_finalize_request(r, NGX_DONE);
}
