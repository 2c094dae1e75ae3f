
/*
 * ngx_http_wechat_module: scenes by OAuth link, the seeds' "method 1".  A
 * wechat_qrcode location with wechat_qrcode_oauth issues its scene as an
 * authorize URL whose state names the scene; the phone opens it in WeChat,
 * and the callback resolves the scene with the openid the code gives, as a
 * scan would (bind, login, code, with the confirm steps): the PC's poll
 * sees it, and the phone's page shows the outcome's reply text.  The scene
 * is the secret, as a QR code's is: the state needs no browser cookie (the
 * callback still claims the code once).
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_push.h"
#include "ngx_http_wechat_oauth.h"


/* "s" and the scene's 32 hex digits: WeChat's state is letters and digits */
#define NGX_HTTP_WECHAT_OAUTH_SCENE_STATE_LEN                                 \
    (1 + WX_SCENE_LEN - (sizeof("wxs_") - 1))


static void ngx_http_wechat_oauth_scene_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_oauth_scene_page(ngx_http_request_t *r,
    wx_span_t text);


/* The authorize URL of a new scene, or NGX_DECLINED when scenes are QRs. */

ngx_int_t
ngx_http_wechat_oauth_scene_url(ngx_http_request_t *r, ngx_str_t *scene,
    ngx_str_t *url)
{
    ngx_str_t                          state;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    if (!olcf->scenes) {
        return NGX_DECLINED;
    }

    state.len = NGX_HTTP_WECHAT_OAUTH_SCENE_STATE_LEN;
    state.data = ngx_pnalloc(r->pool, state.len);
    if (state.data == NULL) {
        return NGX_ERROR;
    }

    state.data[0] = 's';
    ngx_memcpy(state.data + 1, scene->data + sizeof("wxs_") - 1,
               state.len - 1);

    return ngx_http_wechat_oauth_authorize(r, NGX_HTTP_WECHAT_OAUTH_BASE,
                                           &state, url);
}


/* The scene a callback's state names, or NGX_DECLINED for a plain state. */

ngx_int_t
ngx_http_wechat_oauth_scene_of(ngx_http_request_t *r, ngx_str_t *state,
    ngx_str_t *scene)
{
    u_char  *p;

    if (state->len != NGX_HTTP_WECHAT_OAUTH_SCENE_STATE_LEN
        || state->data[0] != 's')
    {
        return NGX_DECLINED;
    }

    scene->len = WX_SCENE_LEN;
    scene->data = ngx_pnalloc(r->pool, scene->len);
    if (scene->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(scene->data, "wxs_", sizeof("wxs_") - 1);
    ngx_memcpy(p, state->data + 1, state->len - 1);

    return wx_scene_is_ours(ngx_http_wechat_span(scene)) ? NGX_OK
                                                         : NGX_DECLINED;
}


/*
 * The scene resolved with the openid, as a scan: the scan's query record
 * is the code's (its hash names it, its first 40 digits are the digest).
 * A unionid the code exchange named is kept in the same script, as the
 * protected location's callback keeps it.
 */

ngx_int_t
ngx_http_wechat_oauth_scene_resolve(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx, ngx_str_t *hash)
{
    ngx_int_t               rc;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ctx->scene = octx->scene;
    ctx->ev.from_user = octx->token.openid;
    ctx->unionid.data = (u_char *) octx->token.unionid.data;
    ctx->unionid.len = octx->token.unionid.len;
    ctx->signature = *hash;
    ngx_memcpy(ctx->digest, hash->data, WX_SHA1_HEX_LEN);

    rc = ngx_http_wechat_resolve_scene(r, ctx,
                                       ngx_http_wechat_oauth_scene_done, 1);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    return rc == NGX_DECLINED ? ngx_http_wechat_send_unavailable(r)
                              : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static void
ngx_http_wechat_oauth_scene_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended)
{
    wx_span_t                    text;
    wx_status_t                  status;
    wx_resolution_t              res;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    ctx = ngx_http_wechat_get_ctx(r);
    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    status = wx_redis_resolution(response, &res);

    if (status != WX_OK || res.replay) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: resolution of scene \"%V\": %s",
                      &ctx->scene, res.replay ? "replayed"
                                              : wx_status_text(status));
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat oauth: scene \"%V\" %s by \"%*s\"", &ctx->scene,
                  wx_scene_status_name(res.outcome),
                  ctx->ev.from_user.len, ctx->ev.from_user.data);

    if (ngx_http_wechat_code_text(r, ctx, &wlcf->reply[res.outcome], &text)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_wechat_oauth_scene_page(r, text));
}


/*
 * The outcome as a page for WeChat's browser: the reply text escaped, its
 * links (a registration's, a login's confirm) made links.
 */

static ngx_int_t
ngx_http_wechat_oauth_scene_page(ngx_http_request_t *r, wx_span_t text)
{
    u_char        *p, *page, *link;
    size_t         len;
    const u_char  *s, *end, *stop;

    static const char  head[] =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width\">"
        "<title>WeChat</title></head>\n<body><p id=\"outcome\">";
    static const char  tail[] = "</p></body></html>\n";

    /* at worst each byte becomes "&quot;", and a link's text is doubled */

    len = sizeof(head) - 1 + 13 * text.len + sizeof(tail) - 1;

    page = ngx_pnalloc(r->pool, len);
    if (page == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(page, head, sizeof(head) - 1);
    end = text.data + text.len;

    for (s = text.data; s < end; /* void */) {

        if ((end - s > 8 && ngx_strncmp(s, "https://", 8) == 0)
            || (end - s > 7 && ngx_strncmp(s, "http://", 7) == 0))
        {
            for (stop = s; stop < end && *stop > ' ' && *stop != '"'
                           && *stop != '<' && *stop != '>'; stop++)
            {
                /* void */
            }

            p = ngx_cpymem(p, "<a href=\"", sizeof("<a href=\"") - 1);
            link = p;
            p = (u_char *) ngx_escape_html(p, (u_char *) s, stop - s);
            p = ngx_cpymem(p, "\">", 2);
            p = ngx_cpymem(p, link, p - 2 - link);
            p = ngx_cpymem(p, "</a>", sizeof("</a>") - 1);
            s = stop;
            continue;
        }

        if (*s == '\n') {
            p = ngx_cpymem(p, "<br>", sizeof("<br>") - 1);
            s++;
            continue;
        }

        p = (u_char *) ngx_escape_html(p, (u_char *) s, 1);
        s++;
    }

    p = ngx_cpymem(p, tail, sizeof(tail) - 1);

    if (ngx_http_wechat_no_store(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_send(r, NGX_HTTP_OK, "text/html; charset=utf-8",
                                page, p - page);
}
