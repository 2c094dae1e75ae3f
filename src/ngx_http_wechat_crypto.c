
/*
 * ngx_http_wechat_module: safe and compatible mode.  Encrypted pushes are
 * verified (msg_signature over Encrypt) and decrypted with the current or
 * the previous EncodingAESKey; answers to them, the module's own and the
 * business upstream's, go back encrypted with the key that worked.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_NONCE_BYTES  8


static ngx_int_t ngx_http_wechat_encrypt(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t xml, wx_span_t *out);
static ngx_int_t ngx_http_wechat_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_wechat_hold(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_wechat_release(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_wechat_crypto_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_wechat_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_wechat_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_wechat_decrypt(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    u_char                      *key;
    ngx_str_t                    msg_signature;
    wx_span_t                    fields[4], plain;
    ngx_uint_t                   i;
    wx_status_t                  status, first;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ctx->ev.encrypt.len == 0) {
        if (wlcf->mode == NGX_HTTP_WECHAT_MODE_SAFE) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "wechat callback: plaintext push refused in "
                          "safe mode");
            ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_PLAINTEXT]);
            return NGX_HTTP_FORBIDDEN;
        }

        return NGX_OK;
    }

    if (wlcf->mode == NGX_HTTP_WECHAT_MODE_PLAIN) {
        return NGX_OK;
    }

    switch (ngx_http_wechat_arg(r, "msg_signature", &msg_signature)) {

    case NGX_ERROR:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: encrypted push without "
                      "\"msg_signature\"");
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_MISSING]);
        return NGX_HTTP_FORBIDDEN;
    }

    fields[0] = ngx_http_wechat_span(&wlcf->token);
    fields[1] = ngx_http_wechat_span(&ctx->timestamp);
    fields[2] = ngx_http_wechat_span(&ctx->nonce);
    fields[3] = ctx->ev.encrypt;

    if (wx_signature_verify(fields, 4, ngx_http_wechat_span(&msg_signature))
        != WX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: msg_signature mismatch");
        ngx_http_wechat_count(
            rejected[NGX_HTTP_WECHAT_REJECT_MSG_SIGNATURE]);
        return NGX_HTTP_FORBIDDEN;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    /* during a key rotation the previous key still opens older pushes */

    key = wlcf->aes_keys->elts;
    first = WX_ERR_ARGS;

    for (i = 0; i < wlcf->aes_keys->nelts; i++) {
        status = wx_aes_decrypt(key + i * WX_AES_KEY_LEN, ctx->ev.encrypt,
                                ngx_http_wechat_span(&wlcf->appid), &a,
                                &plain);
        if (status == WX_OK) {
            ctx->aes_key = key + i * WX_AES_KEY_LEN;
            break;
        }

        if (i == 0) {
            first = status;
        }
    }

    if (ctx->aes_key == NULL) {
        return ngx_http_wechat_reject(r, first, "encrypted push");
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat callback: decrypted with key %ui", i);

    status = wx_event_parse(plain, &a, &ctx->ev);
    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "decrypted push");
    }

    ctx->plain.data = (u_char *) plain.data;
    ctx->plain.len = plain.len;
    ctx->encrypted = 1;

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


static ngx_int_t
ngx_http_wechat_encrypt(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t xml, wx_span_t *out)
{
    wx_span_t                    encrypt, nonce;
    wx_status_t                  status;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;
    u_char                       nonce_hex[2 * NGX_HTTP_WECHAT_NONCE_BYTES];

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_random_hex((char *) nonce_hex, NGX_HTTP_WECHAT_NONCE_BYTES);

    if (status == WX_OK) {
        status = wx_aes_encrypt(ctx->aes_key, xml,
                                ngx_http_wechat_span(&wlcf->appid), &a,
                                &encrypt);
    }

    if (status == WX_OK) {
        nonce.data = nonce_hex;
        nonce.len = sizeof(nonce_hex);

        status = wx_encrypted_reply(ngx_http_wechat_span(&wlcf->token),
                                    encrypt, ngx_time(), nonce, &a, out);
    }

    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "reply encryption");
    }

    return NGX_OK;
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

    ctx->hold_reply = 1;
    ctx->reply_last = &ctx->reply;

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

    if (ctx == NULL || !ctx->hold_reply) {
        return ngx_http_next_body_filter(r, in);
    }

    rc = ngx_http_wechat_hold(r, ctx, in);

    if (rc == NGX_AGAIN) {
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    return ngx_http_wechat_release(r, ctx);
}


/* Copies the buffers in: the upstream reuses its own. */

static ngx_int_t
ngx_http_wechat_hold(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_chain_t *in)
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

        ctx->reply_size += size;

        if (ctx->reply_size > WX_XML_MAX_SIZE) {
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
        *ctx->reply_last = cl;
        ctx->reply_last = &cl->next;
    }

    return last ? NGX_OK : NGX_AGAIN;
}


static ngx_int_t
ngx_http_wechat_release(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    u_char       *p;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    wx_span_t     xml, out;
    ngx_chain_t  *cl, last;

    ctx->hold_reply = 0;

    if (ctx->reply_size > WX_XML_MAX_SIZE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: upstream reply of %uz bytes is "
                      "too large to encrypt, answering empty",
                      ctx->reply_size);
        ctx->reply_size = 0;
    }

    p = ngx_pnalloc(r->pool, ctx->reply_size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    xml.data = p;

    for (cl = ctx->reply; cl && ctx->reply_size; cl = cl->next) {
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

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = (u_char *) xml.data;
    b->last = b->pos + xml.len;
    b->memory = 1;
    b->last_buf = 1;

    last.buf = b;
    last.next = NULL;

    r->headers_out.content_length_n = xml.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_next_body_filter(r, &last);
}
