
/*
 * ngx_http_wechat_module: safe and compatible mode.  Encrypted pushes are
 * verified (msg_signature over Encrypt) and decrypted with the current or
 * the previous EncodingAESKey; answers to them are encrypted with the key
 * that worked.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_push.h"


#define NGX_HTTP_WECHAT_NONCE_BYTES  8


static wx_status_t ngx_http_wechat_open(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_http_wechat_ctx_t *ctx,
    wx_span_t *plain);


ngx_int_t
ngx_http_wechat_decrypt(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    wx_span_t                    fields[4], plain;
    wx_status_t                  status;
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

    if (ctx->msg_signature.data == NULL) {
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

    if (wx_signature_verify(fields, 4,
                            ngx_http_wechat_span(&ctx->msg_signature))
        != WX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: msg_signature mismatch");
        ngx_http_wechat_count(
            rejected[NGX_HTTP_WECHAT_REJECT_MSG_SIGNATURE]);
        return NGX_HTTP_FORBIDDEN;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    status = ngx_http_wechat_open(r, wlcf, ctx, &plain);
    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "encrypted push");
    }

    status = wx_event_parse(plain, &a, &ctx->ev);
    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "decrypted push");
    }

    ctx->plain.data = (u_char *) plain.data;
    ctx->plain.len = plain.len;
    ctx->encrypted = 1;

    return NGX_OK;
}


/*
 * Decrypts Encrypt with the current key, or during a key rotation with the
 * previous one, which still opens older pushes.  The first key's error
 * names a failure.
 */

static wx_status_t
ngx_http_wechat_open(ngx_http_request_t *r, ngx_http_wechat_loc_conf_t *wlcf,
    ngx_http_wechat_ctx_t *ctx, wx_span_t *plain)
{
    u_char          *key;
    ngx_uint_t       i;
    wx_status_t      status, first;
    wx_allocator_t   a;

    ngx_http_wechat_allocator(r->pool, &a);

    key = wlcf->aes_keys->elts;
    first = WX_ERR_ARGS;

    for (i = 0; i < wlcf->aes_keys->nelts; i++) {
        status = wx_aes_decrypt(key + i * WX_AES_KEY_LEN, ctx->ev.encrypt,
                                ngx_http_wechat_span(&wlcf->appid), &a,
                                plain);
        if (status == WX_OK) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "wechat callback: decrypted with key %ui", i);
            ctx->aes_key = key + i * WX_AES_KEY_LEN;
            return WX_OK;
        }

        if (i == 0) {
            first = status;
        }
    }

    return first;
}


/* A reply to an encrypted push, encrypted with the key that opened it. */

ngx_int_t
ngx_http_wechat_encrypt(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t xml, wx_span_t *out)
{
    wx_span_t                    encrypt, nonce;
    wx_status_t                  status;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;
    u_char                       nonce_hex[2 * NGX_HTTP_WECHAT_NONCE_BYTES];

    /* the app's answer is encrypted in its named location: not our conf */
    wlcf = ctx->callback;

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


