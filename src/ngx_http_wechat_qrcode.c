
/*
 * ngx_http_wechat_module: wechat_qrcode, which issues a scene: to bind a
 * trusted site user, or anonymous, to log in or to send a verification
 * code.  128 random bits, with a poll token kept only as its hash and set
 * as a cookie too.  With wechat_api_pass, WeChat's qrcode/create makes it
 * a real QR code first, and the scene is stored only once WeChat has
 * issued its ticket.
 *
 * POST only, so that no cross-site image or link issues one.  A browser
 * whose cookie names a scene still pending, or a user with one, gets that
 * scene back with a new poll token; a new scene counts against the
 * account's wechat_qrcode_rate.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_token.h"
#include "ngx_http_wechat_handlers.h"
#include "ngx_http_wechat_oauth.h"


#define NGX_HTTP_WECHAT_TOKEN_BYTES  (WX_TOKEN_LEN / 2)

/* what a confirm page shows of the browser that asked */
#define NGX_HTTP_WECHAT_AGENT_MAX    160


/* What wechat_qrcode learns before it issues a scene. */

struct ngx_http_wechat_issue_s {
    ngx_str_t                    held_hash;     /* of the cookie's token */
    ngx_str_t                    found;         /* a scene it may give back */
    ngx_uint_t                   by_user;       /* found by the user */
    time_t                       expire;        /* the scene's life left */
};


static ngx_int_t ngx_http_wechat_qrcode_method(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_new_scene(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_held(ngx_http_request_t *r,
    ngx_http_wechat_issue_t *issue);
static ngx_int_t ngx_http_wechat_qrcode_find(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_qrcode_found(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_qrcode_reuse(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_qrcode_reused(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_qrcode_reply(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, redisReply *response);
static ngx_int_t ngx_http_wechat_qrcode_issue(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_send(ngx_http_request_t *r,
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
    ngx_str_t *scene, ngx_str_t *token, ngx_str_t *hash);
static ngx_int_t ngx_http_wechat_qrcode_cookie(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_qrcode_answer(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


ngx_int_t
ngx_http_wechat_qrcode_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_issue_t     *issue;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_wechat_qrcode_method(r);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ctx = ngx_http_wechat_create_ctx(r);
    issue = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_issue_t));

    if (ctx == NULL || issue == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->issue = issue;
    issue->expire = wlcf->qrcode_expire;

    if (wlcf->qrcode_kind == NGX_HTTP_WECHAT_KIND_BIND) {
        rc = ngx_http_wechat_qrcode_user(r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ngx_http_wechat_new_scene(r, ctx) != NGX_OK
        || ngx_http_wechat_qrcode_held(r, issue) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = (issue->held_hash.len || ctx->user.len)
         ? ngx_http_wechat_qrcode_find(r, ctx)
         : ngx_http_wechat_qrcode_reuse(r, ctx);

    return ngx_http_wechat_wait_redis(r, rc);
}


/* 405: a GET issues nothing, whatever a cross-site page makes it ask. */

static ngx_int_t
ngx_http_wechat_qrcode_method(ngx_http_request_t *r)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    static wx_json_field_t  method[] = {
        { "error", WX_JSON_STRING, { (const unsigned char *) "method", 6 },
          0 }
    };

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    ngx_str_set(&h->value, "POST");

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat qrcode: method %V not allowed", &r->method_name);

    return ngx_http_wechat_send_json(r, NGX_HTTP_NOT_ALLOWED, method, 1);
}


/* The browser's poll token from its cookie, if it has one of our shape. */

static ngx_int_t
ngx_http_wechat_qrcode_held(ngx_http_request_t *r,
    ngx_http_wechat_issue_t *issue)
{
    size_t                       i;
    ngx_str_t                    held;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_wechat_cookie(r, &wlcf->poll_cookie, &held) != NGX_OK
        || held.len != WX_TOKEN_LEN)
    {
        return NGX_OK;
    }

    for (i = 0; i < held.len; i++) {
        if (!((held.data[i] >= '0' && held.data[i] <= '9')
              || (held.data[i] >= 'a' && held.data[i] <= 'f')))
        {
            return NGX_OK;
        }
    }

    issue->held_hash.data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);
    if (issue->held_hash.data == NULL
        || wx_sha256_hex(ngx_http_wechat_span(&held),
                         (char *) issue->held_hash.data)
           != WX_OK)
    {
        return NGX_ERROR;
    }

    issue->held_hash.len = WX_SHA256_HEX_LEN;

    return NGX_OK;
}


/* The scenes the browser's token and the user name, if any. */

static ngx_int_t
ngx_http_wechat_qrcode_find(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                    argv[3];
    ngx_http_wechat_issue_t     *issue = ctx->issue;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "MGET");
    argv[1] = ngx_http_wechat_key(r, wlcf, "pending:token:",
                                  issue->held_hash.len ? &issue->held_hash
                                                       : &ctx->poll_hash);
    argv[2] = ngx_http_wechat_key(r, wlcf, "pending:user:", &ctx->user);

    if (argv[1].data == NULL || argv[2].data == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_qrcode_found,
                                         NGX_HTTP_WECHAT_NO_SCRIPT, 3, argv);
}


static void
ngx_http_wechat_qrcode_found(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_int_t                 rc;
    wx_span_t                 scene;
    ngx_uint_t                i;
    wx_allocator_t            a;
    ngx_http_wechat_ctx_t    *ctx;
    ngx_http_wechat_issue_t  *issue;

    ctx = ngx_http_wechat_get_ctx(r);
    issue = ctx->issue;

    if (response == NULL || response->type != REDIS_REPLY_ARRAY
        || response->elements != 2)
    {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    /* the browser's scene first; the user's only for a bind scene */

    for (i = 0; i < (ngx_uint_t) (ctx->user.len ? 2 : 1); i++) {
        if (wx_redis_string(response->element[i], &a, &scene) == WX_OK
            && wx_scene_is_ours(scene))
        {
            issue->found.data = (u_char *) scene.data;
            issue->found.len = scene.len;
            issue->by_user = i;
            break;
        }
    }

    rc = ngx_http_wechat_qrcode_reuse(r, ctx);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc == NGX_DECLINED
                                     ? ngx_http_wechat_send_unavailable(r)
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


/*
 * The scene found, if it is still pending, or else a new one counted
 * against the ceiling.
 */

static ngx_int_t
ngx_http_wechat_qrcode_reuse(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                    argv[14], *scene, user_index, life, rate,
                                 code;
    ngx_uint_t                   n;
    ngx_http_wechat_issue_t     *issue = ctx->issue;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    scene = issue->found.len ? &issue->found : &ctx->scene;

    /* only a bind scene has a user, and so the user's index */

    user_index = ngx_http_wechat_key(r, wlcf, "pending:user:", &ctx->user);
    life = ngx_http_wechat_number(r->pool, wlcf->qrcode_expire);
    rate = ngx_http_wechat_number(r->pool, wlcf->qrcode_rate);

    /* a login scene given back: its code is made of the new token */

    ngx_str_null(&code);

    if (issue->found.len && wlcf->qrcode_kind == NGX_HTTP_WECHAT_KIND_LOGIN
        && ngx_http_wechat_login_hash(r, &issue->found, &ctx->poll_token,
                                      &code)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&argv[0], "3");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", scene);
    argv[2] = ngx_http_wechat_key(r, wlcf, "issued", NULL);
    argv[3] = ngx_http_wechat_key(r, wlcf, "pending:token:",
                                  &ctx->poll_hash);
    n = 4;

    if (ctx->user.len) {
        ngx_str_set(&argv[0], "4");
        argv[n++] = user_index;
    }

    argv[n++] = ngx_http_wechat_kinds[wlcf->qrcode_kind];
    argv[n++] = ctx->user;
    argv[n++] = issue->by_user ? (ngx_str_t) ngx_null_string
                               : issue->held_hash;
    argv[n++] = ctx->poll_hash;
    argv[n++] = ctx->scene;
    argv[n++] = life;
    argv[n++] = rate;
    argv[n++] = *scene;
    argv[n++] = code;

    if (argv[1].data == NULL || argv[2].data == NULL || argv[3].data == NULL
        || user_index.data == NULL || life.data == NULL || rate.data == NULL)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_qrcode_reused,
               NGX_HTTP_WECHAT_SCRIPT_QRCODE_REUSE, n, argv);
}


static void
ngx_http_wechat_qrcode_reused(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_int_t               rc;
    ngx_http_wechat_ctx_t  *ctx;

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);

    rc = ngx_http_wechat_qrcode_reply(r, ctx, response);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * QRCODE_REUSE's answer: the scene back, 429, or on to a new one (then
 * NGX_DONE: the request goes on).
 */

static ngx_int_t
ngx_http_wechat_qrcode_reply(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    redisReply *response)
{
    ngx_int_t                 rc;
    wx_reuse_t                reuse;
    wx_allocator_t            a;
    ngx_http_wechat_issue_t  *issue = ctx->issue;

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_redis_qrcode_reuse(response, &a, &reuse) != WX_OK
        || (reuse.outcome != WX_REUSE_NEW && reuse.outcome != WX_REUSE_RATE
            && issue->found.len == 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat qrcode: unexpected answer from Redis");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (reuse.outcome) {

    case WX_REUSE_NEW:
        ngx_http_wechat_count(qrcodes[0]);

        rc = ngx_http_wechat_qrcode_issue(r, ctx);
        if (rc == NGX_OK) {
            return NGX_DONE;
        }

        return rc == NGX_DECLINED ? ngx_http_wechat_send_unavailable(r)
                                  : NGX_HTTP_INTERNAL_SERVER_ERROR;

    case WX_REUSE_RATE:
        ngx_http_wechat_count(qrcodes[2]);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat qrcode: over wechat_qrcode_rate, refused");
        return ngx_http_wechat_send_retry(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                          "rate", 1);
    }

    /* the scene found, with its ticket and url, and now the new token */

    ngx_http_wechat_count(qrcodes[1]);

    ctx->scene = issue->found;
    ctx->ticket.data = (u_char *) reuse.ticket.data;
    ctx->ticket.len = reuse.ticket.len;
    ctx->url.data = (u_char *) reuse.url.data;
    ctx->url.len = reuse.url.len;
    issue->expire = (time_t) reuse.ttl;

    return ngx_http_wechat_qrcode_send(r, ctx);
}


/* A new scene: a QR code from WeChat first, with wechat_api_pass. */

static ngx_int_t
ngx_http_wechat_qrcode_issue(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* with wechat_qrcode_oauth, a link to WeChat's authorize page */

    rc = ngx_http_wechat_oauth_scene_url(r, &ctx->scene, &ctx->url);

    if (rc != NGX_DECLINED) {
        return rc == NGX_OK ? ngx_http_wechat_qrcode_store(r, ctx) : rc;
    }

    return wlcf->api_pass.len ? ngx_http_wechat_qrcode_create(r, ctx)
                              : ngx_http_wechat_qrcode_store(r, ctx);
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
            && (ngx_http_wechat_login_hash(r, &ctx->scene, &ctx->poll_token,
                                           &argv[6])
                != NGX_OK
                || (wlcf->qrcode_confirm
                    && ngx_http_wechat_qrcode_asker(r, &argv[8], &argv[9])
                       != NGX_OK))))
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_qrcode_done,
                                         NGX_HTTP_WECHAT_SCRIPT_ISSUE,
                                         ctx->url.len ? 12 : 10, argv);
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
ngx_http_wechat_login_hash(ngx_http_request_t *r, ngx_str_t *scene,
    ngx_str_t *token, ngx_str_t *hash)
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

    if (wx_login_code(ngx_http_wechat_span(scene),
                      ngx_http_wechat_span(token), (char *) login)
        != WX_OK
        || wx_code_hash(kind, ngx_http_wechat_span(scene), code,
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
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ctx = ngx_http_wechat_get_ctx(r);
    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_http_wechat_count(scenes[wlcf->qrcode_kind]);

    ngx_http_finalize_request(r, ngx_http_wechat_qrcode_send(r, ctx));
}


static ngx_int_t
ngx_http_wechat_qrcode_send(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    if (ngx_http_wechat_qrcode_cookie(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_qrcode_answer(r, ctx);
}


/*
 * The poll token as a cookie as well, out of the page's script's reach,
 * for as long as the scene lives, sent only below wechat_poll_cookie's
 * path.
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
          + wlcf->cookie_path.len + wlcf->cookie_samesite.len
          + sizeof("=; Path=; Max-Age=; HttpOnly; SameSite=; Secure") - 1
          + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    h = ngx_list_push(&r->headers_out.headers);

    if (p == NULL || h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;

    p = ngx_sprintf(p, "%V=%V; Path=%V; Max-Age=%T; HttpOnly; SameSite=%V",
                    &wlcf->poll_cookie, &ctx->poll_token, &wlcf->cookie_path,
                    ctx->issue->expire, &wlcf->cookie_samesite);

    /* secure: TLS ends before nginx, at a load balancer */

    if (wlcf->cookie_secure
#if (NGX_HTTP_SSL)
        || r->connection->ssl
#endif
       )
    {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

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
    u_char          *p;
    size_t           n;
    ngx_str_t        image;
    wx_span_t        ticket;
    wx_allocator_t   a;

    static ngx_str_t  showqrcode =
        ngx_string("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=");

    ngx_str_null(&image);

    /* "token" is the poll token's name of one release ago */

    wx_json_field_t  answer[] = {
        ngx_http_wechat_json_str("scene", &ctx->scene),
        ngx_http_wechat_json_str("poll_token", &ctx->poll_token),
        ngx_http_wechat_json_str("token", &ctx->poll_token),
        { "expire_seconds", WX_JSON_INTEGER, { NULL, 0 },
          ctx->issue->expire },
        ngx_http_wechat_json_str("ticket", &ctx->ticket),
        ngx_http_wechat_json_str("url", &ctx->url),
        ngx_http_wechat_json_str("qrcode_url", &image)
    };

    n = 4;

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

        answer[6].string = ngx_http_wechat_span(&image);
        n = 7;

    } else if (ctx->url.len) {
        /* an OAuth link: the page draws it, or wechat_qrcode_image does */
        n = 6;
    }

    return ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer, n);
}
