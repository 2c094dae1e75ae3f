
/*
 * ngx_http_wechat_module: wechat_link_verify, in the access phase: a link
 * the module signed for a follower's openid (wechat_reply's {link}) lets
 * its request through once, before it expires, with $wechat_link_openid
 * set; anything else gets 403 and one log line.
 */


#include "ngx_http_wechat_module.h"


/* the module's nonces have 32 hex digits */
#define NGX_HTTP_WECHAT_LINK_NONCE_MAX  64


static ngx_int_t ngx_http_wechat_link_check(ngx_http_request_t *r,
    ngx_str_t *args, time_t *expires);
static ngx_uint_t ngx_http_wechat_link_repeated(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_link_claim(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *nonce, time_t expires);
static void ngx_http_wechat_link_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);


ngx_int_t
ngx_http_wechat_link_handler(ngx_http_request_t *r)
{
    time_t                       expires;
    ngx_int_t                    rc;
    ngx_str_t                    args[4];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "openid", "expires", "nonce", "sig" };

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (!wlcf->link_verify || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx && ctx->link_rc) {
        return ctx->link_rc == NGX_HTTP_OK ? NGX_OK : ctx->link_rc;
    }

    if (ctx == NULL) {
        ctx = ngx_http_wechat_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_wechat_args(r, names, 4, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_link_check(r, args, &expires);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->openid = args[0];

    rc = ngx_http_wechat_link_claim(r, ctx, &args[2], expires);

    /* the phases may run again before the answer: they wait for it */

    if (rc == NGX_OK) {
        ctx->link_rc = NGX_AGAIN;
        r->main->count++;
        return NGX_DONE;
    }

    return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                              : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* The signature over the fields as they are, in constant time. */

static ngx_int_t
ngx_http_wechat_link_check(ngx_http_request_t *r, ngx_str_t *args,
    time_t *expires)
{
    const char                  *why;
    ngx_uint_t                   i;
    wx_status_t                  rc;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    for (i = 0; i < 4; i++) {
        if (args[i].len == 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "wechat link: refused: an argument is missing");
            return NGX_HTTP_FORBIDDEN;
        }
    }

    /*
     * What the link signs is read once: a repeated argument, or a number
     * in another spelling, would let an app read what was not signed.
     */

    if (ngx_http_wechat_link_repeated(r)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat link: refused: a repeated argument");
        return NGX_HTTP_FORBIDDEN;
    }

    *expires = (args[1].data[0] == '0') ? NGX_ERROR
                                        : ngx_atotm(args[1].data,
                                                    args[1].len);

    if (*expires == NGX_ERROR || !ngx_http_wechat_is_openid(&args[0])
        || args[2].len > NGX_HTTP_WECHAT_LINK_NONCE_MAX
        || !ngx_http_wechat_is_name(&args[2]))
    {
        rc = WX_ERR_ARGS;

    } else {
        rc = wx_link_verify(wlcf->link_secrets->elts,
                            wlcf->link_secrets->nelts,
                            ngx_http_wechat_span(&args[0]), *expires,
                            ngx_http_wechat_span(&args[2]),
                            ngx_http_wechat_span(&args[3]), ngx_time());
    }

    if (rc == WX_OK) {
        return NGX_OK;
    }

    why = (rc == WX_ERR_EXPIRED) ? "expired"
          : (rc == WX_ERR_SIGNATURE) ? "signature mismatch"
          : "malformed";

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "wechat link: refused: %s", why);

    return NGX_HTTP_FORBIDDEN;
}


/* Whether openid, expires, nonce or sig comes more than once. */

static ngx_uint_t
ngx_http_wechat_link_repeated(ngx_http_request_t *r)
{
    u_char      *p, *end;
    ngx_str_t    arg;
    ngx_uint_t   i, seen[4];

    static ngx_str_t  names[] = {
        ngx_string("openid"), ngx_string("expires"), ngx_string("nonce"),
        ngx_string("sig")
    };

    ngx_memzero(seen, sizeof(seen));
    end = r->args.data + r->args.len;

    for (p = r->args.data; p < end; /* void */) {
        ngx_http_wechat_arg_name(&p, end, &arg);

        for (i = 0; i < 4; i++) {
            if (arg.len == names[i].len
                && ngx_strncmp(arg.data, names[i].data, names[i].len) == 0
                && seen[i]++)
            {
                return 1;
            }
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_wechat_link_claim(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *nonce, time_t expires)
{
    ngx_str_t                    argv[6];
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "SET");
    argv[1] = ngx_http_wechat_key(r, wlcf, "link:", nonce);
    ngx_str_set(&argv[2], "1");
    ngx_str_set(&argv[3], "NX");
    ngx_str_set(&argv[4], "EX");
    argv[5] = ngx_http_wechat_number(r->pool, expires - ngx_time() + 1);

    if (argv[1].data == NULL || argv[5].len == 0) {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_link_done,
                                         NGX_HTTP_WECHAT_NO_SCRIPT, 6, argv);
}


static void
ngx_http_wechat_link_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_span_t               set;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    /* SET NX answers nil when the nonce is there already */

    if (response == NULL) {
        ctx->link_rc = NGX_HTTP_SERVICE_UNAVAILABLE;

    } else if (wx_redis_string(response, &a, &set) == WX_ERR_NOT_FOUND) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat link: refused: used before");
        ctx->link_rc = NGX_HTTP_FORBIDDEN;

    } else {
        ctx->link_openid = ctx->openid;
        ctx->link_rc = NGX_HTTP_OK;
    }

    /* on with the phases, where the access phase left them */

    r->main->count--;

    ngx_http_core_run_phases(r);
}
