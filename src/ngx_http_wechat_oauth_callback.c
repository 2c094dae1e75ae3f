
/*
 * ngx_http_wechat_module: wechat_oauth_callback, where WeChat sends the
 * browser back with a code and our state.  The state is taken once and
 * must belong to this browser's state cookie; the code is claimed once in
 * Redis, then exchanged through sns/oauth2/access_token (and, for the
 * userinfo scope, sns/userinfo) by subrequests on nginx's event loop; the
 * session cookie is sealed and the browser goes back where it started.
 * A website login's state (scope "login") comes back the same way, from
 * WeChat's qrconnect page: its code is the Website App's, exchanged with
 * that app's appid and secret.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_api.h"
#include "ngx_http_wechat_oauth.h"


static ngx_int_t ngx_http_wechat_oauth_take(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx);
static ngx_int_t ngx_http_wechat_oauth_claim(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx);
static void ngx_http_wechat_oauth_claimed(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_oauth_scene_claim(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx, ngx_str_t *hash);
static void ngx_http_wechat_oauth_scene_claimed(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_oauth_exchange(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx);
static ngx_int_t ngx_http_wechat_oauth_held(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx, wx_span_t held);
static void ngx_http_wechat_oauth_exchanged(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
static ngx_int_t ngx_http_wechat_oauth_userinfo(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx);
static void ngx_http_wechat_oauth_user_done(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
static ngx_int_t ngx_http_wechat_oauth_api(ngx_http_request_t *r,
    ngx_str_t *path, ngx_str_t *args, ngx_http_wechat_api_handler_pt done);
static ngx_int_t ngx_http_wechat_oauth_api_failed(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call, wx_status_t rc);
static ngx_int_t ngx_http_wechat_oauth_seen(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx);
static void ngx_http_wechat_oauth_stored(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_oauth_login(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx);
static ngx_int_t ngx_http_wechat_oauth_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t level, const char *why,
    const char *page);
static ngx_int_t ngx_http_wechat_oauth_page(ngx_http_request_t *r,
    ngx_uint_t status, const char *page);


ngx_int_t
ngx_http_wechat_oauth_callback_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     args[2];
    ngx_http_wechat_ctx_t        *ctx;
    ngx_http_wechat_oauth_ctx_t  *octx;

    static const char  *names[] = { "code", "state" };
    static ngx_str_t    referrer = ngx_string("Referrer-Policy");
    static ngx_str_t    no_referrer = ngx_string("no-referrer");

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET|NGX_HTTP_HEAD, &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * The code is in the request line: not in log lines, and not in the
     * Referer of a link the answer has (a method-1 page's).
     */

    ngx_http_wechat_api_mask_log(r, &ctx->api);

    if (ngx_http_wechat_add_header(r, &referrer, &no_referrer) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    octx = ngx_http_wechat_oauth_create_ctx(r);

    if (octx == NULL || ngx_http_wechat_args(r, names, 2, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    octx->code = args[0];
    octx->state = args[1];

    rc = ngx_http_wechat_oauth_scene_of(r, &octx->state, &octx->scene);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_str_null(&octx->scene);
    }

    if ((octx->scene.len == 0
         && octx->state.len != NGX_HTTP_WECHAT_OAUTH_STATE_LEN)
        || !ngx_http_wechat_is_openid(&octx->state))
    {
        return ngx_http_wechat_oauth_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_WARN, "no state of ours",
                   "This link is not one of ours.");
    }

    /* WeChat sends no code when the user refused */

    if (octx->code.len == 0) {
        return ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                   NGX_LOG_INFO, "the user refused",
                   "You did not allow the authorization.");
    }

    if (!ngx_http_wechat_is_openid(&octx->code)) {
        return ngx_http_wechat_oauth_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_WARN, "malformed code",
                   "This link is not one of ours.");
    }

    return ngx_http_wechat_oauth_take(r, octx);
}


/*
 * A well-formed code and state: a scene's state is claimed by the code
 * alone, a sign-in's only by the browser whose state cookie it names.
 */

static ngx_int_t
ngx_http_wechat_oauth_take(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx)
{
    /* Redis keeps a hash of the code: a code is a credential for 5 min */

    octx->code_hash.len = WX_SHA256_HEX_LEN;
    octx->code_hash.data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);
    if (octx->code_hash.data == NULL
        || wx_sha256_hex(ngx_http_wechat_span(&octx->code),
                         (char *) octx->code_hash.data)
           != WX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (octx->scene.len) {
        return ngx_http_wechat_wait_redis(r,
                   ngx_http_wechat_oauth_scene_claim(r, octx,
                                                     &octx->code_hash));
    }

    if (ngx_http_wechat_cookie(r, &ngx_http_wechat_oauth_state_cookie,
                               &octx->browser)
        != NGX_OK
        || octx->browser.len != NGX_HTTP_WECHAT_OAUTH_STATE_LEN)
    {
        return ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                   NGX_LOG_WARN, "no state cookie",
                   "Open the page again, in the same browser.");
    }

    return ngx_http_wechat_wait_redis(r,
               ngx_http_wechat_oauth_claim(r, octx));
}


static ngx_int_t
ngx_http_wechat_oauth_claim(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx)
{
    ngx_str_t                    argv[5];
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* the script leaves a state alone unless this browser's cookie fits */

    argv[4].len = WX_SHA256_HEX_LEN;
    argv[4].data = ngx_pnalloc(r->pool, WX_SHA256_HEX_LEN);
    if (argv[4].data == NULL
        || wx_sha256_hex(ngx_http_wechat_span(&octx->browser),
                         (char *) argv[4].data)
           != WX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&argv[0], "2");
    argv[1] = ngx_http_wechat_key(r, wlcf, "oauth:", &octx->state);
    argv[2] = ngx_http_wechat_key(r, wlcf, "oauth_code:", &octx->code_hash);
    argv[3] = ngx_http_wechat_number(r->pool,
                                     NGX_HTTP_WECHAT_OAUTH_STATE_TTL);

    if (argv[1].data == NULL || argv[2].data == NULL || argv[3].len == 0) {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_oauth_claimed,
                                         NGX_HTTP_WECHAT_SCRIPT_OAUTH_CLAIM,
                                         5, argv);
}


static void
ngx_http_wechat_oauth_claimed(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_int_t                     rc;
    wx_span_t                     held;
    wx_allocator_t                a;
    redisReply                   *word;
    ngx_http_wechat_oauth_ctx_t  *octx;

    octx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);
    ngx_http_wechat_allocator(r->pool, &a);

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    /* { "ok", held }, { "foreign" }, { "used" } or { "unknown" } */

    word = (response->type == REDIS_REPLY_ARRAY && response->elements
            && response->elements <= 2)
           ? response->element[0] : NULL;

    if (word == NULL || word->type != REDIS_REPLY_STRING) {
        rc = NGX_ERROR;

    } else if (word->len == 2 && ngx_strncmp(word->str, "ok", 2) == 0) {
        rc = (response->elements == 2
              && wx_redis_string(response->element[1], &a, &held) == WX_OK)
             ? ngx_http_wechat_oauth_held(r, octx, held) : NGX_ERROR;

    } else if (word->len == 7 && ngx_strncmp(word->str, "foreign", 7) == 0) {
        rc = ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                 NGX_LOG_WARN, "the state belongs to another browser",
                 "Open the page again, in the same browser.");

    } else if (word->len == 4 && ngx_strncmp(word->str, "used", 4) == 0) {
        rc = ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                 NGX_LOG_WARN, "code used before",
                 "This authorization is used: open the page again.");

    } else {
        rc = ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                 NGX_LOG_WARN, "state unknown, used or expired",
                 "This authorization is used or expired: open the page "
                 "again.");
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: the state claim answered a reply of "
                      "an unexpected shape");
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* A method-1 state's code: claimed once, as a plain callback's is. */

static ngx_int_t
ngx_http_wechat_oauth_scene_claim(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx, ngx_str_t *hash)
{
    ngx_str_t                    argv[6];
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "SET");
    argv[1] = ngx_http_wechat_key(r, wlcf, "oauth_code:", hash);
    ngx_str_set(&argv[2], "1");
    ngx_str_set(&argv[3], "NX");
    ngx_str_set(&argv[4], "EX");
    argv[5] = ngx_http_wechat_number(r->pool,
                                     NGX_HTTP_WECHAT_OAUTH_STATE_TTL);

    if (argv[1].data == NULL || argv[5].len == 0) {
        return NGX_ERROR;
    }

    return ngx_http_wechat_redis_command(r,
                                         ngx_http_wechat_oauth_scene_claimed,
                                         NGX_HTTP_WECHAT_NO_SCRIPT, 6, argv);
}


static void
ngx_http_wechat_oauth_scene_claimed(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended)
{
    ngx_int_t                     rc;
    ngx_http_wechat_oauth_ctx_t  *octx;

    octx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);

    if (response == NULL) {
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    /* SET NX answers nil when the code was claimed before */

    if (response->type != REDIS_REPLY_STATUS) {
        rc = ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                 NGX_LOG_WARN, "code used before",
                 "This authorization is used: scan the code again.");

    } else {
        octx->scope.data = (u_char *) "base";
        octx->scope.len = sizeof("base") - 1;

        rc = ngx_http_wechat_oauth_exchange(r, octx);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * What the state held: "<sha256 of the state cookie> <scope> <path>".
 * The cookie's hash is compared in constant time: a state is only good
 * in the browser that was sent to WeChat with it (no login CSRF).
 */

static ngx_int_t
ngx_http_wechat_oauth_held(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx, wx_span_t held)
{
    u_char     *p, *end, *space;
    wx_span_t   hash;
    u_char      ours[WX_SHA256_HEX_LEN];

    p = (u_char *) held.data;
    end = p + held.len;

    if (held.len < WX_SHA256_HEX_LEN + 4
        || p[WX_SHA256_HEX_LEN] != ' '
        || wx_sha256_hex(ngx_http_wechat_span(&octx->browser), (char *) ours)
           != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: a state of an unknown shape");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    hash.data = ours;
    hash.len = WX_SHA256_HEX_LEN;

    if (!wx_equal_const_time(hash, (wx_span_t) { p, WX_SHA256_HEX_LEN })) {
        return ngx_http_wechat_oauth_refuse(r, NGX_HTTP_FORBIDDEN,
                   NGX_LOG_WARN, "the state belongs to another browser",
                   "Open the page again, in the same browser.");
    }

    p += WX_SHA256_HEX_LEN + 1;
    space = ngx_strlchr(p, end, ' ');

    if (space == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    octx->scope.data = p;
    octx->scope.len = space - p;
    octx->back.data = space + 1;
    octx->back.len = end - space - 1;

    if (!ngx_http_wechat_oauth_is_path(&octx->back)) {
        ngx_str_set(&octx->back, "/");
    }

    return ngx_http_wechat_oauth_exchange(r, octx);
}


/* The code for the user's token: the AppSecret never leaves the edge. */

static ngx_int_t
ngx_http_wechat_oauth_exchange(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx)
{
    ngx_str_t                         *appid, *secret, path, args;
    ngx_http_wechat_loc_conf_t        *wlcf;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    appid = &wlcf->appid;
    secret = &wlcf->secret;

    if (ngx_http_wechat_oauth_is_login(ngx_http_wechat_span(&octx->scope))) {
        if (olcf->website_appid.len == 0) {
            return ngx_http_wechat_oauth_refuse(r,
                       NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ERR,
                       "a website login's code, and no "
                       "\"wechat_oauth_website\" where the callback is",
                       "The site cannot log you in: try again later.");
        }

        appid = &olcf->website_appid;
        secret = &olcf->website_secret;
    }

    ngx_str_set(&path, "/sns/oauth2/access_token");

    args.len = sizeof("appid=&secret=&code=&grant_type=authorization_code")
               - 1 + appid->len + secret->len + octx->code.len;
    args.data = ngx_pnalloc(r->pool, args.len);
    if (args.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the code has URL-safe letters only: it was checked */

    args.len = ngx_sprintf(args.data, "appid=%V&secret=%V&code=%V"
                           "&grant_type=authorization_code",
                           appid, secret, &octx->code)
               - args.data;

    return ngx_http_wechat_oauth_api(r, &path, &args,
                                     ngx_http_wechat_oauth_exchanged);
}


static void
ngx_http_wechat_oauth_exchanged(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    ngx_int_t                     rc;
    wx_status_t                   status;
    wx_allocator_t                a;
    ngx_http_wechat_oauth_ctx_t  *octx;

    octx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);
    ngx_http_wechat_allocator(r->pool, &a);

    status = (call->status == NGX_HTTP_OK)
             ? wx_api_oauth_token(ngx_http_wechat_span(&call->answer), &a,
                                  &octx->token)
             : WX_ERR_INTERNAL;

    if (status != WX_OK) {
        rc = ngx_http_wechat_oauth_api_failed(r, call, status);

    } else if (octx->scene.len) {
        rc = ngx_http_wechat_oauth_scene_resolve(r, octx, &octx->code_hash);

    } else if (octx->scope.len == sizeof("userinfo") - 1
               && ngx_strncmp(octx->scope.data, "userinfo", 8) == 0)
    {
        rc = ngx_http_wechat_oauth_userinfo(r, octx);

    } else {
        rc = ngx_http_wechat_oauth_seen(r, octx);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
ngx_http_wechat_oauth_userinfo(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx)
{
    ngx_str_t  path, args;

    ngx_str_set(&path, "/sns/userinfo");

    args.len = sizeof("access_token=&openid=&lang=zh_CN") - 1
               + octx->token.access_token.len + octx->token.openid.len;
    args.data = ngx_pnalloc(r->pool, args.len);
    if (args.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the token is printable without spaces, and goes as WeChat gave it */

    args.len = ngx_sprintf(args.data, "access_token=%*s&openid=%*s"
                           "&lang=zh_CN",
                           octx->token.access_token.len,
                           octx->token.access_token.data,
                           octx->token.openid.len, octx->token.openid.data)
               - args.data;

    return ngx_http_wechat_oauth_api(r, &path, &args,
                                     ngx_http_wechat_oauth_user_done);
}


static void
ngx_http_wechat_oauth_user_done(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    ngx_int_t                     rc;
    wx_status_t                   status;
    wx_allocator_t                a;
    wx_oauth_user_t               user;
    ngx_http_wechat_oauth_ctx_t  *octx;

    octx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);
    ngx_http_wechat_allocator(r->pool, &a);

    status = (call->status == NGX_HTTP_OK)
             ? wx_api_oauth_userinfo(ngx_http_wechat_span(&call->answer), &a,
                                     &user)
             : WX_ERR_INTERNAL;

    if (status != WX_OK) {
        rc = ngx_http_wechat_oauth_api_failed(r, call, status);

    } else if (!wx_equal_const_time(user.openid, octx->token.openid)) {
        rc = ngx_http_wechat_oauth_refuse(r, NGX_HTTP_BAD_GATEWAY,
                 NGX_LOG_ERR, "sns/userinfo answered another openid",
                 "WeChat's answer was not usable: try again later.");

    } else {
        if (user.unionid.len) {
            octx->token.unionid = user.unionid;
        }

        octx->session.nickname = user.nickname;
        octx->session.avatar = user.avatar;

        rc = ngx_http_wechat_oauth_seen(r, octx);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
ngx_http_wechat_oauth_api(ngx_http_request_t *r, ngx_str_t *path,
    ngx_str_t *args, ngx_http_wechat_api_handler_pt done)
{
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ctx->api.conf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    ctx->api.path = *path;
    ctx->api.args = *args;
    ngx_str_null(&ctx->api.body);
    ctx->api.handler = done;
    ctx->api.late = NULL;
    ctx->api.deadline = ngx_current_msec + ctx->api.conf->api_timeout;

    if (ngx_http_wechat_api_call(r, &ctx->api) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DONE;
}


/*
 * WeChat's refusals, each with its own answer: a code that is invalid or
 * used sends the user back to start again; a refused secret is the
 * site's to fix; -1 is WeChat's "busy".  One log line each, with what
 * WeChat said.
 */

static ngx_int_t
ngx_http_wechat_oauth_api_failed(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call, wx_status_t rc)
{
    int64_t          errcode;
    ngx_uint_t       status, level;
    wx_span_t        errmsg;
    const char      *why, *page;
    wx_allocator_t   a;

    if (call->status == 0) {
        return ngx_http_wechat_oauth_refuse(r, NGX_HTTP_GATEWAY_TIME_OUT,
                   NGX_LOG_ERR, "WeChat did not answer in time",
                   "WeChat did not answer: try again in a moment.");
    }

    if (call->too_big) {
        /* the API layer's line says so */
        return ngx_http_wechat_oauth_page(r, NGX_HTTP_BAD_GATEWAY,
                   "WeChat's answer was not usable: try again later.");
    }

    ngx_http_wechat_allocator(r->pool, &a);

    if (rc != WX_ERR_API
        || wx_api_error(ngx_http_wechat_span(&call->answer), &a, &errcode,
                        &errmsg)
           != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: refused: no usable answer: %V "
                      "answered HTTP %ui, %s",
                      &call->path, call->status, wx_status_text(rc));
        return ngx_http_wechat_oauth_page(r, NGX_HTTP_BAD_GATEWAY,
                   "WeChat's answer was not usable: try again later.");
    }

    switch (errcode) {

    case 40029:
        status = NGX_HTTP_FORBIDDEN;
        level = NGX_LOG_INFO;
        why = "invalid code";
        page = "This authorization is invalid or expired: open the page "
               "again.";
        break;

    case 40163:
        status = NGX_HTTP_FORBIDDEN;
        level = NGX_LOG_INFO;
        why = "code used";
        page = "This authorization is used: open the page again.";
        break;

    case -1:
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        level = NGX_LOG_WARN;
        why = "WeChat is busy";
        page = "WeChat is busy: open the page again in a moment.";
        break;

    case 40001:
    case 40013:
    case 40125:
    case 41004:
        status = NGX_HTTP_BAD_GATEWAY;
        level = NGX_LOG_ERR;
        why = "WeChat refused the account's credentials: check "
              "wechat_appid and wechat_secret";
        page = "The site cannot reach WeChat: try again later.";
        break;

    default:
        status = NGX_HTTP_BAD_GATEWAY;
        level = NGX_LOG_WARN;
        why = "refused by WeChat";
        page = "WeChat refused the authorization: try again later.";
    }

    ngx_log_error(level, r->connection->log, 0,
                  "wechat oauth: refused: %s: %V errcode %L: %*s", why,
                  &call->path, errcode, errmsg.len, errmsg.data);

    return ngx_http_wechat_oauth_page(r, status, page);
}


/*
 * A unionid WeChat named is kept beside the openid (the unionids hash, a
 * stream entry the first time), for wechat_binding and the pushes; the
 * login does not wait on it if Redis fails.  A Website App's openid is
 * not kept: the hash is the official account's, and its openid for the
 * unionid is what finds a website login's user.
 */

static ngx_int_t
ngx_http_wechat_oauth_seen(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx)
{
    ngx_int_t                    rc;
    ngx_str_t                    argv[7];
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (octx->token.unionid.len == 0
        || ngx_http_wechat_oauth_is_login(ngx_http_wechat_span(&octx->scope)))
    {
        return ngx_http_wechat_oauth_login(r, octx);
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_str_set(&argv[0], "2");
    argv[1] = ngx_http_wechat_key(r, wlcf, "unionids", NULL);
    argv[2] = ngx_http_wechat_key(r, wlcf, "resolutions", NULL);
    argv[3].data = (u_char *) octx->token.openid.data;
    argv[3].len = octx->token.openid.len;
    argv[4].data = (u_char *) octx->token.unionid.data;
    argv[4].len = octx->token.unionid.len;
    argv[5] = ngx_http_wechat_now(r);
    argv[6] = ngx_http_wechat_stream_maxlen;

    if (argv[1].data == NULL || argv[2].data == NULL || argv[5].len == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_oauth_stored,
                                       NGX_HTTP_WECHAT_SCRIPT_UNIONID, 7,
                                       argv);

    return rc == NGX_OK ? NGX_DONE : ngx_http_wechat_oauth_login(r, octx);
}


static void
ngx_http_wechat_oauth_stored(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_oauth_ctx_t  *octx;

    octx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);

    if (response == NULL || response->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat oauth: the unionid of \"%*s\" was not stored",
                      octx->token.openid.len, octx->token.openid.data);
    }

    ngx_http_finalize_request(r, ngx_http_wechat_oauth_login(r, octx));
}


/* The session sealed into its cookie, and back where the user started. */

static ngx_int_t
ngx_http_wechat_oauth_login(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx)
{
    ngx_str_t                          value;
    wx_span_t                          sealed;
    wx_allocator_t                     a;
    ngx_table_elt_t                   *h;
    ngx_http_wechat_loc_conf_t        *wlcf;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    octx->session.appid = ngx_http_wechat_span(&wlcf->appid);
    octx->session.openid = octx->token.openid;
    octx->session.unionid = octx->token.unionid;
    octx->session.scope = ngx_http_wechat_span(&octx->scope);
    octx->session.expires = ngx_time() + olcf->session_expire;

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_session_seal(((wx_span_t *) olcf->secrets->elts)[0],
                        &octx->session, &a, &sealed)
        != WX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: the session could not be sealed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = (u_char *) sealed.data;
    value.len = sealed.len;

    h = ngx_list_push(&r->headers_out.headers);

    if (h == NULL
        || ngx_http_wechat_oauth_cookie(r, &olcf->cookie, &value,
                                        olcf->session_expire)
           != NGX_OK
        || ngx_http_wechat_no_store(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value = octx->back;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    r->headers_out.location = h;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat oauth: signed in \"%*s\"",
                  octx->session.openid.len, octx->session.openid.data);

    return NGX_HTTP_MOVED_TEMPORARILY;
}


/* One log line at level, and a short page that says what to do. */

static ngx_int_t
ngx_http_wechat_oauth_refuse(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t level, const char *why, const char *page)
{
    ngx_log_error(level, r->connection->log, 0, "wechat oauth: refused: %s",
                  why);

    return ngx_http_wechat_oauth_page(r, status, page);
}


static ngx_int_t
ngx_http_wechat_oauth_page(ngx_http_request_t *r, ngx_uint_t status,
    const char *page)
{
    if (ngx_http_wechat_no_store(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_send(r, status, "text/plain; charset=utf-8",
                                (u_char *) page, ngx_strlen(page));
}
