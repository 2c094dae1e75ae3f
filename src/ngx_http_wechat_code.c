
/*
 * ngx_http_wechat_module: what a scan sends the user besides its outcome.
 * A verification code for a code scene, kept in Redis only as its hash;
 * the reply texts' {code}, {minutes} and {link}, a link into the site
 * signed for the follower's openid; and the template message that carries
 * the code instead of the reply, sent after the reply.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_NONCE_BYTES  16


static ngx_int_t ngx_http_wechat_code_expand(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t text, wx_span_t link,
    wx_span_t *out);
static ngx_int_t ngx_http_wechat_link_new(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t *link);
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
    wx_span_t                    link;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    link.data = NULL;
    link.len = 0;

    if (wlcf->link_url.len
        && ngx_strlcasestrn(text->data, text->data + text->len,
                            (u_char *) "{link}", sizeof("{link}") - 2)
           != NULL
        && ngx_http_wechat_link_new(r, ctx, &link) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_code_expand(r, ctx, ngx_http_wechat_span(text),
                                       link, out);
}


static ngx_int_t
ngx_http_wechat_code_expand(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t text, wx_span_t link, wx_span_t *out)
{
    ngx_str_t                    minutes;
    wx_span_t                    values[3];
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char *const  names[] = { "code", "minutes", "link" };

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    minutes = ngx_http_wechat_number(r->pool,
                                     (wlcf->qrcode_expire + 59) / 60);
    if (minutes.len == 0) {
        return NGX_ERROR;
    }

    values[0] = ngx_http_wechat_span(&ctx->code);
    values[1] = ngx_http_wechat_span(&minutes);
    values[2] = link;

    ngx_http_wechat_allocator(r->pool, &a);

    return wx_text_expand(text, names, values, 3, &a, out) == WX_OK
           ? NGX_OK : NGX_ERROR;
}


/*
 * wechat_link_url with the follower's openid, an expiry and a nonce,
 * signed with the current wechat_link_secret.
 */

static ngx_int_t
ngx_http_wechat_link_new(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t *link)
{
    u_char                      *p;
    wx_span_t                    query, nonce, *secrets;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;
    u_char                       hex[2 * NGX_HTTP_WECHAT_NONCE_BYTES];

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    secrets = wlcf->link_secrets->elts;

    nonce.data = hex;
    nonce.len = sizeof(hex);

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_random_hex((char *) hex, NGX_HTTP_WECHAT_NONCE_BYTES) != WX_OK
        || wx_link_query(secrets[0], ctx->ev.from_user,
                         ngx_time() + wlcf->link_expire, nonce, &a, &query)
           != WX_OK)
    {
        return NGX_ERROR;
    }

    link->len = wlcf->link_url.len + 1 + query.len;
    p = ngx_pnalloc(r->pool, link->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    link->data = p;

    p = ngx_cpymem(p, wlcf->link_url.data, wlcf->link_url.len);
    *p++ = ngx_strlchr(wlcf->link_url.data,
                       wlcf->link_url.data + wlcf->link_url.len, '?')
           ? '&' : '?';
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

        if (ngx_http_wechat_code_expand(r, ctx, conf[i].value, none,
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
