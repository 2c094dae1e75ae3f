
/*
 * ngx_http_wechat_module: what goes back to WeChat.  The module's own
 * passive reply; pushes passed to the business app's named location; and
 * the filters that hold the app's answer to an encrypted push and encrypt
 * it on the way out.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_push.h"


static ngx_int_t ngx_http_wechat_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_wechat_hold_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_wechat_release_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_str_t  ngx_http_wechat_success = ngx_string("success");


ngx_int_t
ngx_http_wechat_reply_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_wechat_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_wechat_body_filter;

    return NGX_OK;
}


/* Sends the module's own passive reply, in the form the push came in. */

ngx_int_t
ngx_http_wechat_send_reply(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t xml)
{
    ngx_int_t  rc;
    wx_span_t  out;

    if (ctx->encrypted) {
        rc = ngx_http_wechat_encrypt(r, ctx, xml, &out);
        if (rc != NGX_OK) {
            return rc;
        }

        xml = out;
    }

    return ngx_http_wechat_send(r, NGX_HTTP_OK, "text/xml",
                                (u_char *) xml.data, xml.len);
}


/*
 * Hands the push to the named location, or answers "success" without one.
 * Upstreams see the decrypted XML, so business apps need no crypto.
 */

void
ngx_http_wechat_pass(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    u_char                      *len;
    ngx_chain_t                 *cl;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* an unresolved scan was counted as unavailable already */

    if (ctx->resolution.len == 0) {
        ngx_http_wechat_count(pushes[wlcf->pass.len
                                     ? NGX_HTTP_WECHAT_PUSH_PASSED
                                     : NGX_HTTP_WECHAT_PUSH_ANSWERED]);
    }

    if (wlcf->pass.len == 0) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_send(r, NGX_HTTP_OK, "text/plain",
                                 ngx_http_wechat_success.data,
                                 ngx_http_wechat_success.len));
        return;
    }

    if (ctx->encrypted) {
        cl = ngx_http_wechat_chain(r->pool, ctx->plain.data, ctx->plain.len);
        if (cl == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        r->request_body->bufs = cl;
        r->headers_in.content_length_n = ctx->plain.len;

        /* $content_length, as fastcgi and uwsgi pass it, reads the header */

        if (r->headers_in.content_length) {
            len = ngx_pnalloc(r->pool, NGX_SIZE_T_LEN);
            if (len == NULL) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            r->headers_in.content_length->value.data = len;
            r->headers_in.content_length->value.len =
                ngx_sprintf(len, "%uz", ctx->plain.len) - len;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat callback: pass to \"%V\"", &wlcf->pass);

    ctx->passed = 1;

    ngx_http_finalize_request(r, ngx_http_named_location(r, &wlcf->pass));
}


/*
 * The upstream's answer to an encrypted push is held whole, then encrypted:
 * its length changes, so the header waits for the body.
 */

static ngx_int_t
ngx_http_wechat_header_filter(ngx_http_request_t *r)
{
    ngx_http_wechat_ctx_t  *ctx;

    if (r != r->main || r->headers_out.status != NGX_HTTP_OK) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || !ctx->passed || !ctx->encrypted) {
        return ngx_http_next_header_filter(r);
    }

    ctx->holding = 1;
    ctx->held_last = &ctx->held;

    return NGX_OK;
}


static ngx_int_t
ngx_http_wechat_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t               rc;
    ngx_http_wechat_ctx_t  *ctx;

    if (r != r->main || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || !ctx->holding) {
        return ngx_http_next_body_filter(r, in);
    }

    rc = ngx_http_wechat_hold_answer(r, ctx, in);

    if (rc == NGX_AGAIN) {
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    return ngx_http_wechat_release_answer(r, ctx);
}


/* Copies the buffers in: the upstream reuses its own. */

static ngx_int_t
ngx_http_wechat_hold_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_chain_t *in)
{
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b, *copy;
    ngx_uint_t    last;
    ngx_chain_t  *cl;

    last = 0;

    for ( /* void */ ; in; in = in->next) {
        b = in->buf;
        size = ngx_buf_size(b);

        if (b->last_buf || b->last_in_chain) {
            last = 1;
        }

        if (size == 0) {
            continue;
        }

        ctx->held_size += size;

        if (ctx->held_size > WX_XML_MAX_SIZE) {
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        copy = ngx_create_temp_buf(r->pool, size);
        cl = ngx_alloc_chain_link(r->pool);
        if (copy == NULL || cl == NULL) {
            return NGX_ERROR;
        }

        if (b->in_file && !ngx_buf_in_memory(b)) {
            n = ngx_read_file(b->file, copy->pos, size, b->file_pos);
            if (n != size) {
                return NGX_ERROR;
            }

            b->file_pos = b->file_last;

        } else {
            ngx_memcpy(copy->pos, b->pos, size);
            b->pos = b->last;
        }

        copy->last = copy->pos + size;

        cl->buf = copy;
        cl->next = NULL;
        *ctx->held_last = cl;
        ctx->held_last = &cl->next;
    }

    return last ? NGX_OK : NGX_AGAIN;
}


static ngx_int_t
ngx_http_wechat_release_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    u_char       *p;
    ngx_int_t     rc;
    wx_span_t     xml, out;
    ngx_chain_t  *cl, *last;

    ctx->holding = 0;

    if (ctx->held_size > WX_XML_MAX_SIZE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: upstream reply of %uz bytes is "
                      "too large to encrypt, answering empty",
                      ctx->held_size);
        ctx->held_size = 0;
    }

    p = ngx_pnalloc(r->pool, ctx->held_size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    xml.data = p;

    for (cl = ctx->held; cl && ctx->held_size; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    xml.len = p - xml.data;

    /* "success" and empty answers are not replies: they stay as they are */

    if (xml.len != 0
        && !(xml.len == 7 && ngx_strncmp(xml.data, "success", 7) == 0))
    {
        rc = ngx_http_wechat_encrypt(r, ctx, xml, &out);
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        xml = out;
    }

    last = ngx_http_wechat_chain(r->pool, (u_char *) xml.data, xml.len);
    if (last == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.content_length_n = xml.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_next_body_filter(r, last);
}
