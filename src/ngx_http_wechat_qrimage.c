
/*
 * ngx_http_wechat_module: wechat_qrcode_image, the QR code of a scene drawn
 * at the edge from the url WeChat issued for it, so that pages need not
 * hotlink showqrcode.  Only the holder of the scene's poll token gets it.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_handlers.h"


#define NGX_HTTP_WECHAT_QR_MARGIN    4      /* modules of quiet zone */
#define NGX_HTTP_WECHAT_QR_PX        8      /* a PNG's module, by default */
#define NGX_HTTP_WECHAT_QR_SVG_SIZE  256    /* an SVG's width, by default */


static ngx_int_t ngx_http_wechat_qrimage_args(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_qrimage_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_qrimage_send(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t url, int64_t ttl);


ngx_int_t
ngx_http_wechat_qrimage_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[3];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET|NGX_HTTP_HEAD, &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_wechat_qrimage_args(r, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!wx_scene_is_ours(ngx_http_wechat_span(&ctx->scene))) {
        return NGX_HTTP_NOT_FOUND;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "1");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);

    if (argv[1].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_qrimage_done,
                                       NGX_HTTP_WECHAT_SCRIPT_QRCODE_URL, 2,
                                       argv);

    return ngx_http_wechat_wait_redis(r, rc);
}


/* scene and token, format png (default) or svg, and a size. */

static ngx_int_t
ngx_http_wechat_qrimage_args(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    size;
    ngx_str_t                    args[5];
    ngx_http_wechat_loc_conf_t  *wlcf;

    /* "token" is the poll token's name of one release ago */
    static const char  *names[] = { "scene", "poll_token", "format", "size",
                                    "token" };

    if (ngx_http_wechat_args(r, names, 5, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (args[1].data == NULL) {
        args[1] = args[4];
    }

    /* the token from the query, else from wechat_qrcode's cookie */

    if (args[1].data == NULL) {
        wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
        (void) ngx_http_wechat_cookie(r, &wlcf->poll_cookie, &args[1]);
    }

    ctx->scene = args[0];
    ctx->poll_token = args[1];

    ctx->svg = (args[2].len == 3 && ngx_strncmp(args[2].data, "svg", 3) == 0);

    size = args[3].data ? ngx_atoi(args[3].data, args[3].len)
                        : (ctx->svg ? NGX_HTTP_WECHAT_QR_SVG_SIZE
                                    : NGX_HTTP_WECHAT_QR_PX);

    if (args[0].data == NULL || args[1].data == NULL
        || (args[2].data && !ctx->svg
            && !(args[2].len == 3 && ngx_strncmp(args[2].data, "png", 3) == 0))
        || size < 1
        || size > (ctx->svg ? WX_QR_MAX_SVG_SIZE : WX_QR_MAX_MODULE_PX))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat qrcode image: bad or missing arguments");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->image_size = size;

    return NGX_OK;
}


static void
ngx_http_wechat_qrimage_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    int64_t                 ttl;
    wx_span_t               url;
    wx_status_t             status;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_redis_qrcode_url(response,
                                 ngx_http_wechat_span(&ctx->poll_token), &a,
                                 &url, &ttl);

    if (status == WX_ERR_NOT_FOUND) {
        ngx_http_finalize_request(r, NGX_HTTP_NOT_FOUND);
        return;
    }

    if (status != WX_OK) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ngx_http_finalize_request(r,
        ngx_http_wechat_qrimage_send(r, ctx, url, ttl));
}


/* Cacheable, by the browser only, for as long as the scene lives. */

static ngx_int_t
ngx_http_wechat_qrimage_send(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t url, int64_t ttl)
{
    wx_span_t         image;
    wx_status_t       status;
    wx_allocator_t    a;
    ngx_table_elt_t  *h;

    ngx_http_wechat_allocator(r->pool, &a);

    status = ctx->svg
             ? wx_qr_svg(url, (unsigned) ctx->image_size, &a, &image)
             : wx_qr_png(url, (unsigned) ctx->image_size,
                         NGX_HTTP_WECHAT_QR_MARGIN, &a, &image);

    if (status != WX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat qrcode image: %s", wx_status_text(status));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    h->value.data = ngx_pnalloc(r->pool, sizeof("private, max-age=")
                                         + NGX_INT64_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "private, max-age=%L", ttl)
                   - h->value.data;

    return ngx_http_wechat_send(r, NGX_HTTP_OK,
                                ctx->svg ? "image/svg+xml" : "image/png",
                                (u_char *) image.data, image.len);
}
