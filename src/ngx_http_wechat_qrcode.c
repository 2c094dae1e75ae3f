
/*
 * ngx_http_wechat_module: wechat_qrcode, which issues a scene: to bind a
 * trusted site user, or anonymous, to log in or to send a verification
 * code.  128 random bits, with a poll token kept only as its hash and set
 * as a cookie too.  With wechat_api_pass, WeChat's qrcode/create makes it
 * a real QR code first, and the scene is stored only once WeChat has
 * issued its ticket.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_TOKEN_BYTES  (WX_TOKEN_LEN / 2)

/* what a confirm page shows of the browser that asked */
#define NGX_HTTP_WECHAT_AGENT_MAX    160


static ngx_int_t ngx_http_wechat_new_scene(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_create(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_qrcode_created(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_store(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_qrcode_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_qrcode_user(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_asker(ngx_http_request_t *r,
    ngx_str_t *agent, ngx_str_t *address);
static ngx_int_t ngx_http_wechat_login_hash(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *hash);
static ngx_int_t ngx_http_wechat_qrcode_cookie(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


ngx_int_t
ngx_http_wechat_qrcode_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (wlcf->qrcode_kind == NGX_HTTP_WECHAT_KIND_BIND) {
        rc = ngx_http_wechat_qrcode_user(r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ngx_http_wechat_new_scene(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = wlcf->api_pass.len ? ngx_http_wechat_qrcode_create(r, ctx)
                            : ngx_http_wechat_qrcode_store(r, ctx);

    return ngx_http_wechat_wait_redis(r, rc);
}


/* A bind scene's user, who becomes $wechat_user and a header upstream. */

static ngx_int_t
ngx_http_wechat_qrcode_user(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_complex_value(r, wlcf->user, &ctx->user) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->user.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat qrcode: no user");
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (!ngx_http_wechat_is_name(&ctx->user)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat qrcode: user has a control character or is "
                      "over %d bytes", NGX_HTTP_WECHAT_NAME_MAX);
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wechat_qrcode_create(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    wx_span_t                    body;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_api_qrcode_request(ngx_http_wechat_span(&ctx->scene),
                              wlcf->qrcode_expire, &a, &body)
        != WX_OK)
    {
        return NGX_ERROR;
    }

    ctx->wx.endpoint = NGX_HTTP_WECHAT_API_QRCODE;
    ngx_str_set(&ctx->wx.path, "/cgi-bin/qrcode/create");
    ctx->wx.body.data = (u_char *) body.data;
    ctx->wx.body.len = body.len;
    ctx->wx.done = ngx_http_wechat_qrcode_created;

    return ngx_http_wechat_wx_call(r, ctx);
}


static void
ngx_http_wechat_qrcode_created(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    int64_t         expire;
    wx_span_t       ticket, url;
    wx_allocator_t  a;

    if (ctx->wx.result != NGX_HTTP_WECHAT_API_OK) {
        ngx_http_finalize_request(r, ngx_http_wechat_wx_failed(r, ctx));
        return;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_api_qrcode(ngx_http_wechat_span(&ctx->wx.answer), &a, &ticket,
                      &url, &expire)
        != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat qrcode: qrcode/create answered no ticket");
        ctx->wx.result = NGX_HTTP_WECHAT_API_FAILED;
        ngx_http_finalize_request(r, ngx_http_wechat_wx_failed(r, ctx));
        return;
    }

    ctx->ticket.data = (u_char *) ticket.data;
    ctx->ticket.len = ticket.len;
    ctx->url.data = (u_char *) url.data;
    ctx->url.len = url.len;

    switch (ngx_http_wechat_qrcode_store(r, ctx)) {

    case NGX_OK:
        return;

    case NGX_DECLINED:
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;

    default:
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


static ngx_int_t
ngx_http_wechat_qrcode_store(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                    argv[12];
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "1");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    argv[2] = ngx_http_wechat_kinds[wlcf->qrcode_kind];
    argv[3] = ctx->user;
    argv[4] = ctx->poll_hash;
    argv[5] = ngx_http_wechat_number(r->pool, wlcf->qrcode_expire);
    ngx_str_set(&argv[6], "");
    ngx_str_set(&argv[7], "");
    ngx_str_set(&argv[8], "");
    ngx_str_set(&argv[9], "");
    argv[10] = ctx->ticket;
    argv[11] = ctx->url;

    if (wlcf->qrcode_confirm
        && wlcf->qrcode_kind != NGX_HTTP_WECHAT_KIND_CODE)
    {
        ngx_str_set(&argv[7], "1");
    }

    if (argv[1].data == NULL || argv[5].len == 0
        || (wlcf->qrcode_kind == NGX_HTTP_WECHAT_KIND_LOGIN
            && (ngx_http_wechat_login_hash(r, ctx, &argv[6]) != NGX_OK
                || (wlcf->qrcode_confirm
                    && ngx_http_wechat_qrcode_asker(r, &argv[8], &argv[9])
                       != NGX_OK))))
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_qrcode_done,
                                         NGX_HTTP_WECHAT_SCRIPT_ISSUE,
                                         ctx->ticket.len ? 12 : 10, argv);
}


/*
 * Who asked for a login scene, as nginx saw them: the confirm page shows
 * the scanner the browser and the network their login goes to.  The
 * address is kept only to its network (whoever scans learns no more), the
 * user agent is cut short at a character's start and loses its control
 * characters: a name in Redis.
 */

static ngx_int_t
ngx_http_wechat_qrcode_asker(ngx_http_request_t *r, ngx_str_t *agent,
    ngx_str_t *address)
{
    size_t            i;
    ngx_table_elt_t  *ua;

    if (ngx_http_wechat_network(r->pool, &r->connection->addr_text, address)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ua = r->headers_in.user_agent;

    if (ua == NULL || ua->value.len == 0) {
        ngx_str_set(agent, "-");
        return NGX_OK;
    }

    agent->len = ngx_min(ua->value.len, NGX_HTTP_WECHAT_AGENT_MAX);

    while (agent->len < ua->value.len && agent->len
           && (ua->value.data[agent->len] & 0xc0) == 0x80)
    {
        agent->len--;
    }

    agent->data = ngx_pnalloc(r->pool, agent->len);
    if (agent->data == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < agent->len; i++) {
        agent->data[i] = (ua->value.data[i] < 0x20
                          || ua->value.data[i] == 0x7f)
                         ? '?' : ua->value.data[i];
    }

    return NGX_OK;
}


/*
 * The hash of the login code the poll will show once the scene is
 * scanned: the code is made of the scene and the token, which Redis never
 * sees, so Redis can keep its hash from the start.
 */

static ngx_int_t
ngx_http_wechat_login_hash(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *hash)
{
    wx_span_t  code, kind;
    u_char     login[WX_LOGIN_CODE_LEN];

    hash->data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);
    if (hash->data == NULL) {
        return NGX_ERROR;
    }

    hash->len = WX_SHA256_HEX_LEN;
    code.data = login;
    code.len = sizeof(login);
    kind = ngx_http_wechat_span(
               &ngx_http_wechat_kinds[NGX_HTTP_WECHAT_KIND_LOGIN]);

    if (wx_login_code(ngx_http_wechat_span(&ctx->scene),
                      ngx_http_wechat_span(&ctx->poll_token),
                      (char *) login)
        != WX_OK
        || wx_code_hash(kind, ngx_http_wechat_span(&ctx->scene), code,
                        (char *) hash->data)
           != WX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A scene of 128 random bits and its poll token, which is answered once
 * and kept only as its hash.
 */

static ngx_int_t
ngx_http_wechat_new_scene(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    u_char     *p;
    wx_span_t   token;

    p = ngx_pnalloc(r->pool, WX_SCENE_LEN + WX_TOKEN_LEN + WX_SHA256_HEX_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->scene.data = p;
    ctx->scene.len = WX_SCENE_LEN;
    ctx->poll_token.data = p + WX_SCENE_LEN;
    ctx->poll_token.len = WX_TOKEN_LEN;
    ctx->poll_hash.data = ctx->poll_token.data + WX_TOKEN_LEN;
    ctx->poll_hash.len = WX_SHA256_HEX_LEN;

    token = ngx_http_wechat_span(&ctx->poll_token);

    if (wx_scene_new((char *) ctx->scene.data) != WX_OK
        || wx_random_hex((char *) ctx->poll_token.data,
                         NGX_HTTP_WECHAT_TOKEN_BYTES) != WX_OK
        || wx_sha256_hex(token, (char *) ctx->poll_hash.data) != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat qrcode: no random scene");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_wechat_qrcode_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_ctx_t  *ctx;

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);

    if (ngx_http_wechat_qrcode_cookie(r, ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_wechat_qrcode_answer(r, ctx));
}


/*
 * The poll token as a cookie as well, out of the page's script's reach,
 * for as long as the scene lives.
 */

static ngx_int_t
ngx_http_wechat_qrcode_cookie(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    u_char                      *p;
    size_t                       len;
    ngx_table_elt_t             *h;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    len = wlcf->poll_cookie.len + ctx->poll_token.len
          + sizeof("=; Path=/; Max-Age=; HttpOnly; SameSite=Lax; Secure") - 1
          + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    h = ngx_list_push(&r->headers_out.headers);

    if (p == NULL || h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;

    p = ngx_sprintf(p, "%V=%V; Path=/; Max-Age=%T; HttpOnly; SameSite=Lax",
                    &wlcf->poll_cookie, &ctx->poll_token,
                    wlcf->qrcode_expire);

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }
#endif

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/*
 * The scene and its poll token, and with WeChat's API the ticket, the url
 * the QR code encodes, and showqrcode's address of its image.
 */

static ngx_int_t
ngx_http_wechat_qrcode_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    u_char                      *p;
    size_t                       n;
    ngx_str_t                    image;
    wx_span_t                    ticket;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static ngx_str_t  showqrcode =
        ngx_string("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=");

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_null(&image);

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("scene", &ctx->scene),
        ngx_http_wechat_json_str("token", &ctx->poll_token),
        { "expire_seconds", WX_JSON_INTEGER, { NULL, 0 },
          wlcf->qrcode_expire },
        ngx_http_wechat_json_str("ticket", &ctx->ticket),
        ngx_http_wechat_json_str("url", &ctx->url),
        ngx_http_wechat_json_str("qrcode_url", &image)
    };

    n = 3;

    if (ctx->ticket.len) {
        ngx_http_wechat_allocator(r->pool, &a);

        if (wx_url_encode(ngx_http_wechat_span(&ctx->ticket), &a, &ticket)
            != WX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        image.len = showqrcode.len + ticket.len;
        image.data = ngx_pnalloc(r->pool, image.len);
        if (image.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(image.data, showqrcode.data, showqrcode.len);
        ngx_memcpy(p, ticket.data, ticket.len);

        answer[5].string = ngx_http_wechat_span(&image);
        n = 6;
    }

    return ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, n);
}
