
/*
 * ngx_http_wechat_module: wechat_link_verify, in the access phase: a link
 * the module signed for a follower's openid (wechat_reply's {link}), for
 * this account and the location's purpose, lets its request through once,
 * before it expires, with $wechat_link_openid set; anything else gets 403
 * and one log line.  The check of a link's fields serves the login confirm
 * page too.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_handlers.h"


/* the module's nonces have 32 hex digits */
#define NGX_HTTP_WECHAT_LINK_NONCE_MAX  64


static ngx_uint_t ngx_http_wechat_link_repeated(ngx_str_t *text);
static ngx_int_t ngx_http_wechat_link_claim(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *nonce, time_t expires);
static void ngx_http_wechat_link_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);


ngx_int_t
ngx_http_wechat_link_handler(ngx_http_request_t *r)
{
    time_t                       expires;
    ngx_int_t                    rc;
    ngx_str_t                    args[5];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "openid", "scene", "expires", "nonce",
                                    "sig" };

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (wlcf->link_purpose.len == 0 || r != r->main) {
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

    if (ngx_http_wechat_args(r, names, 5, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_link_check(r, &wlcf->link_purpose, &r->args, args,
                                    &expires);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->openid = args[0];

    rc = ngx_http_wechat_link_claim(r, ctx, &args[3], expires);

    /* the phases may run again before the answer: they wait for it */

    if (rc == NGX_OK) {
        ctx->link_rc = NGX_AGAIN;
        r->main->count++;
        return NGX_DONE;
    }

    return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                              : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * The signature over the fields as they are (openid, scene, expires, nonce,
 * sig; a link of no scene has none), for this account and purpose, in
 * constant time; text is where they came from.
 */

ngx_int_t
ngx_http_wechat_link_check(ngx_http_request_t *r, ngx_str_t *purpose,
    ngx_str_t *text, ngx_str_t *args, time_t *expires)
{
    const char                  *why;
    wx_link_t                    link;
    ngx_uint_t                   i;
    wx_status_t                  rc;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    for (i = 0; i < 5; i++) {
        if (args[i].len == 0 && i != 1) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "wechat link: refused: an argument is missing");
            ngx_http_wechat_count(
                link_refusals[NGX_HTTP_WECHAT_LINK_SIGNATURE]);
            return NGX_HTTP_FORBIDDEN;
        }
    }

    /*
     * What the link signs is read once: a repeated argument, or a number
     * in another spelling, would let an app read what was not signed.
     */

    if (ngx_http_wechat_link_repeated(text)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat link: refused: a repeated argument");
        ngx_http_wechat_count(link_refusals[NGX_HTTP_WECHAT_LINK_SIGNATURE]);
        return NGX_HTTP_FORBIDDEN;
    }

    *expires = (args[2].data[0] == '0') ? NGX_ERROR
                                        : ngx_atotm(args[2].data,
                                                    args[2].len);

    if (*expires == NGX_ERROR || !ngx_http_wechat_is_openid(&args[0])
        || args[3].len > NGX_HTTP_WECHAT_LINK_NONCE_MAX
        || !ngx_http_wechat_is_name(&args[3])
        || (args[1].len
            && !wx_scene_is_ours(ngx_http_wechat_span(&args[1]))))
    {
        rc = WX_ERR_ARGS;

    } else {
        link.appid = ngx_http_wechat_span(&wlcf->appid);
        link.purpose = ngx_http_wechat_span(purpose);
        link.openid = ngx_http_wechat_span(&args[0]);
        link.scene = ngx_http_wechat_span(&args[1]);
        link.expires = *expires;
        link.nonce = ngx_http_wechat_span(&args[3]);

        rc = wx_link_verify(wlcf->link_secrets->elts,
                            wlcf->link_secrets->nelts, &link,
                            ngx_http_wechat_span(&args[4]), ngx_time());
    }

    if (rc == WX_OK) {
        return NGX_OK;
    }

    why = (rc == WX_ERR_EXPIRED) ? "expired"
          : (rc == WX_ERR_SIGNATURE) ? "signature mismatch"
          : "malformed";

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "wechat link: refused: %s", why);

    ngx_http_wechat_count(link_refusals[rc == WX_ERR_EXPIRED
                                        ? NGX_HTTP_WECHAT_LINK_EXPIRED
                                        : NGX_HTTP_WECHAT_LINK_SIGNATURE]);

    return NGX_HTTP_FORBIDDEN;
}


/* Whether openid, scene, expires, nonce or sig comes more than once. */

static ngx_uint_t
ngx_http_wechat_link_repeated(ngx_str_t *text)
{
    u_char      *p, *end;
    ngx_str_t    arg;
    ngx_uint_t   i, seen[5];

    static ngx_str_t  names[] = {
        ngx_string("openid"), ngx_string("scene"), ngx_string("expires"),
        ngx_string("nonce"), ngx_string("sig")
    };

    ngx_memzero(seen, sizeof(seen));
    end = text->data + text->len;

    for (p = text->data; p < end; /* void */) {
        ngx_http_wechat_arg_name(&p, end, &arg);

        for (i = 0; i < 5; i++) {
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
        ngx_http_wechat_count(link_refusals[NGX_HTTP_WECHAT_LINK_USED]);
        ctx->link_rc = NGX_HTTP_FORBIDDEN;

    } else {
        ctx->link_openid = ctx->openid;
        ctx->link_rc = NGX_HTTP_OK;
    }

    /* on with the phases, where the access phase left them */

    r->main->count--;

    ngx_http_core_run_phases(r);
}
