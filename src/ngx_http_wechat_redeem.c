
/*
 * ngx_http_wechat_module: wechat_redeem, for the site's backend: the code
 * of a scanned login or code scene, taken once, in one script, for the
 * openid that scanned it and the site user bound to that openid.  With
 * wechat_redeem_poll_token, only with the poll token of the browser the scene
 * was issued to, which the backend forwards: a code alone then logs in no
 * other browser.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_handlers.h"


/* a form of a scene and a code is far smaller */
#define NGX_HTTP_WECHAT_REDEEM_BODY_MAX  1024


static void ngx_http_wechat_redeem_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_redeem_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_code_kind(ngx_str_t *code);
static void ngx_http_wechat_redeem_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_redeem_wrong(ngx_http_request_t *r,
    wx_redeem_refusal_t refusal);


ngx_int_t
ngx_http_wechat_redeem_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_wechat_create_ctx(r) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_wechat_redeem_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_wechat_redeem_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_wechat_redeem_start(r, ngx_http_wechat_get_ctx(r));

    if (rc == NGX_OK || rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc == NGX_DECLINED
                                 ? ngx_http_wechat_send_unavailable(r) : rc);
}


/*
 * POST scene=S&code=C: one script checks, counts and takes the code.
 * NGX_OK while it runs, NGX_DONE when answered already.
 */

static ngx_int_t
ngx_http_wechat_redeem_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    rc, kind;
    ngx_str_t                    body, args[3], argv[7];
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "scene", "code" };

    rc = ngx_http_wechat_read_body(r, NGX_HTTP_WECHAT_REDEEM_BODY_MAX, &body);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_wechat_form(r, &body, names, 2, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /*
     * The browser's token only from the cookie it sent, which the backend
     * forwards: the body that names the scene and the code may be what a
     * form of another site made the browser post.
     */

    ngx_str_null(&args[2]);

    if (wlcf->redeem_token) {
        (void) ngx_http_wechat_cookie(r, &wlcf->poll_cookie, &args[2]);
    }

    kind = ngx_http_wechat_code_kind(&args[1]);

    if (!wx_scene_is_ours(ngx_http_wechat_span(&args[0]))) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_redeem_wrong(r, WX_REDEEM_NOT_FOUND));
        return NGX_DONE;
    }

    if (kind == NGX_DECLINED || (wlcf->redeem_token && args[2].len == 0)) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_redeem_wrong(r, WX_REDEEM_WRONG));
        return NGX_DONE;
    }

    ctx->scene = args[0];

    ngx_str_set(&argv[6], "");

    if (wlcf->redeem_token) {
        argv[6].data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);
        argv[6].len = WX_SHA256_HEX_LEN;

        if (argv[6].data == NULL
            || wx_sha256_hex(ngx_http_wechat_span(&args[2]),
                             (char *) argv[6].data)
               != WX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_str_set(&argv[0], "2");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    argv[2] = ngx_http_wechat_key(r, wlcf, "openids", NULL);
    argv[3] = ngx_http_wechat_kinds[kind];
    argv[4].data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);
    argv[4].len = WX_SHA256_HEX_LEN;
    argv[5] = ngx_http_wechat_number(r->pool, wlcf->redeem_attempts);

    if (argv[1].data == NULL || argv[2].data == NULL || argv[4].data == NULL
        || argv[5].len == 0
        || wx_code_hash(ngx_http_wechat_span(&argv[3]),
                        ngx_http_wechat_span(&args[0]),
                        ngx_http_wechat_span(&args[1]),
                        (char *) argv[4].data)
           != WX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_redeem_done,
                                         NGX_HTTP_WECHAT_SCRIPT_REDEEM, 7,
                                         argv);
}


/*
 * The kind of scene a code's shape names: a login code is 32 hex digits,
 * a verification code 4 to 12 decimal ones; NGX_DECLINED for neither.
 */

static ngx_int_t
ngx_http_wechat_code_kind(ngx_str_t *code)
{
    size_t      i;
    ngx_uint_t  digits;

    digits = 1;

    for (i = 0; i < code->len; i++) {
        if (code->data[i] >= '0' && code->data[i] <= '9') {
            continue;
        }

        if (code->data[i] < 'a' || code->data[i] > 'f') {
            return NGX_DECLINED;
        }

        digits = 0;
    }

    if (code->len == WX_LOGIN_CODE_LEN) {
        return NGX_HTTP_WECHAT_KIND_LOGIN;
    }

    if (digits && code->len >= 4 && code->len <= WX_DIGITS_MAX) {
        return NGX_HTTP_WECHAT_KIND_CODE;
    }

    return NGX_DECLINED;
}


static void
ngx_http_wechat_redeem_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_status_t     status;
    wx_redeem_t     redeemed;
    wx_allocator_t  a;

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_redis_redeem(response, &a, &redeemed);

    if (status == WX_ERR_NOT_FOUND) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_redeem_wrong(r, redeemed.refusal));
        return;
    }

    if (status != WX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat redeem: %s", wx_status_text(status));
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ngx_http_wechat_count(redeems[NGX_HTTP_WECHAT_REDEEM_OK]);

    wx_json_field_t  answer[] = {
        { "openid", WX_JSON_STRING, redeemed.openid, 0 },
        { "user", WX_JSON_STRING_OR_NULL, redeemed.user, 0 },
        { "kind", WX_JSON_STRING, redeemed.kind, 0 }
    };

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, 3));
}


/*
 * An unknown scene, a wrong code and a used one look the same; only the
 * metrics tell them apart.
 */

static ngx_int_t
ngx_http_wechat_redeem_wrong(ngx_http_request_t *r,
    wx_redeem_refusal_t refusal)
{
    static wx_json_field_t  not_found[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) "not found", 9 }, 0 }
    };

    ngx_http_wechat_count(redeems[refusal + 1]);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat redeem: wrong, used or unknown code");

    return ngx_http_wechat_send_json(r, NGX_HTTP_NOT_FOUND, not_found, 1);
}
