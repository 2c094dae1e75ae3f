
/*
 * ngx_http_wechat_module: wechat_oauth, in the access phase.  A request
 * with a valid session cookie goes on, with $wechat_openid and the rest
 * set from the cookie alone (and $wechat_user, when the configuration uses
 * it, from one Redis lookup); any other is sent to WeChat's authorize page
 * with a single-use state bound to the browser by a cookie, or, outside
 * WeChat's browser, answered with a page that says to open it in WeChat.
 * "wechat_oauth login" is website login on a PC through a Website App of
 * the Open Platform: the same state and session, WeChat's qrconnect page
 * instead of the authorize page, and $wechat_user found through the
 * unionid, as the official account knows the person.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_oauth.h"


#define NGX_HTTP_WECHAT_OAUTH_AUTHORIZE_URL                                   \
    "https://open.weixin.qq.com/connect/oauth2/authorize"
#define NGX_HTTP_WECHAT_OAUTH_QRCONNECT_URL                                   \
    "https://open.weixin.qq.com/connect/qrconnect"


static ngx_int_t ngx_http_wechat_oauth_access(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_oauth_check(ngx_http_request_t *r,
    ngx_http_wechat_oauth_loc_conf_t *olcf, ngx_http_wechat_oauth_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_oauth_lookup(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *ctx);
static void ngx_http_wechat_oauth_lookup_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_oauth_wait(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *ctx, ngx_http_wechat_redis_handler_pt handler,
    ngx_int_t script, ngx_uint_t argc, ngx_str_t *argv);
static ngx_int_t ngx_http_wechat_oauth_start(ngx_http_request_t *r,
    ngx_http_wechat_oauth_loc_conf_t *olcf, ngx_http_wechat_oauth_ctx_t *ctx);
static void ngx_http_wechat_oauth_started(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_oauth_location(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_oauth_outside(ngx_http_request_t *r,
    ngx_http_wechat_oauth_loc_conf_t *olcf);
static ngx_uint_t ngx_http_wechat_oauth_in_wechat(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_oauth_init(ngx_conf_t *cf);
static void *ngx_http_wechat_oauth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_wechat_oauth_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_wechat_oauth_check_conf(ngx_conf_t *cf,
    ngx_http_wechat_oauth_loc_conf_t *conf);
static char *ngx_http_wechat_oauth_callback(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_wechat_oauth_redirect_uri(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_wechat_oauth_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_oauth_website(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_wechat_oauth_cookie_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_conf_enum_t  ngx_http_wechat_oauth_scopes[] = {
    { ngx_string("off"), NGX_HTTP_WECHAT_OAUTH_OFF },
    { ngx_string("base"), NGX_HTTP_WECHAT_OAUTH_BASE },
    { ngx_string("userinfo"), NGX_HTTP_WECHAT_OAUTH_USERINFO },
    { ngx_string("login"), NGX_HTTP_WECHAT_OAUTH_LOGIN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_wechat_oauth_outsides[] = {
    { ngx_string("page"), NGX_HTTP_WECHAT_OAUTH_PAGE },
    { ngx_string("authorize"), NGX_HTTP_WECHAT_OAUTH_AUTHORIZE },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_wechat_oauth_commands[] = {

    { ngx_string("wechat_oauth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_oauth_loc_conf_t, scope),
      &ngx_http_wechat_oauth_scopes },

    { ngx_string("wechat_oauth_callback"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_oauth_callback,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_oauth_redirect_uri"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_oauth_redirect_uri,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_oauth_authorize_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_oauth_loc_conf_t, authorize_url),
      NULL },

    { ngx_string("wechat_oauth_qrconnect_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_oauth_loc_conf_t, qrconnect_url),
      NULL },

    { ngx_string("wechat_oauth_website"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_wechat_oauth_website,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_oauth_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_wechat_oauth_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_oauth_session_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_oauth_loc_conf_t, session_expire),
      NULL },

    { ngx_string("wechat_oauth_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_wechat_oauth_cookie_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_qrcode_oauth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_oauth_loc_conf_t, scenes),
      NULL },

    { ngx_string("wechat_oauth_outside"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_oauth_loc_conf_t, outside),
      &ngx_http_wechat_oauth_outsides },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_wechat_oauth_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_wechat_oauth_init,            /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_wechat_oauth_create_loc_conf, /* create location configuration */
    ngx_http_wechat_oauth_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_wechat_oauth_module = {
    NGX_MODULE_V1,
    &ngx_http_wechat_oauth_module_ctx,     /* module context */
    ngx_http_wechat_oauth_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_str_t  ngx_http_wechat_oauth_state_cookie =
    ngx_string("wechat_oauth_state");


/* $wechat_user is used somewhere: a session costs one HGET for it */
static ngx_uint_t  ngx_http_wechat_oauth_lookup_user;


static ngx_int_t
ngx_http_wechat_oauth_access(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_http_wechat_oauth_ctx_t       *ctx;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    /* the callback is where a browser without a session goes: never it */

    if (olcf->scope == NGX_HTTP_WECHAT_OAUTH_OFF || olcf->callback
        || r != r->main)
    {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);

    if (ctx && ctx->access_rc) {
        return ctx->access_rc == NGX_HTTP_OK ? NGX_OK : ctx->access_rc;
    }

    if (ctx == NULL) {
        ctx = ngx_http_wechat_oauth_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_wechat_oauth_check(r, olcf, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        return ngx_http_wechat_oauth_lookup(r, ctx);
    }

    /* website login is for the browsers outside WeChat */

    if (olcf->scope != NGX_HTTP_WECHAT_OAUTH_LOGIN
        && !ngx_http_wechat_oauth_in_wechat(r)
        && olcf->outside == NGX_HTTP_WECHAT_OAUTH_PAGE)
    {
        return ngx_http_wechat_oauth_outside(r, olcf);
    }

    return ngx_http_wechat_oauth_start(r, olcf, ctx);
}


ngx_http_wechat_oauth_ctx_t *
ngx_http_wechat_oauth_create_ctx(ngx_http_request_t *r)
{
    ngx_http_wechat_oauth_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_oauth_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_wechat_oauth_module);

    return ctx;
}


/* The request's valid session, for the variables; NULL if none. */

ngx_http_wechat_oauth_ctx_t *
ngx_http_wechat_oauth_session(ngx_http_request_t *r)
{
    ngx_http_wechat_oauth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_wechat_oauth_module);

    return (ctx && ctx->valid) ? ctx : NULL;
}


/*
 * The session cookie, opened with the location's secrets: NGX_OK for a
 * valid one of the scope asked for (userinfo covers base), NGX_DECLINED
 * for none, a bad or an expired one, with one log line for the last two.
 */

static ngx_int_t
ngx_http_wechat_oauth_check(ngx_http_request_t *r,
    ngx_http_wechat_oauth_loc_conf_t *olcf, ngx_http_wechat_oauth_ctx_t *ctx)
{
    ngx_str_t                    value;
    wx_status_t                  rc;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (ngx_http_wechat_cookie(r, &olcf->cookie, &value) != NGX_OK
        || value.len == 0)
    {
        return NGX_DECLINED;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    ngx_http_wechat_allocator(r->pool, &a);

    rc = wx_session_open(olcf->secrets->elts, olcf->secrets->nelts,
                         ngx_http_wechat_span(&wlcf->appid),
                         ngx_http_wechat_span(&value), ngx_time(), &a,
                         &ctx->session);

    if (rc == WX_ERR_NOMEM || rc == WX_ERR_INTERNAL) {
        return NGX_ERROR;
    }

    if (rc != WX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat oauth: session refused: %s",
                      rc == WX_ERR_EXPIRED ? "expired"
                      : rc == WX_ERR_SIGNATURE ? "signature mismatch"
                      : "malformed");
        return NGX_DECLINED;
    }

    /*
     * userinfo covers base; a login's openid is the Website App's, which
     * pages of the official account cannot use; a login location takes
     * any session, since every one names the person
     */

    if ((olcf->scope == NGX_HTTP_WECHAT_OAUTH_USERINFO
         && !(ctx->session.scope.len == sizeof("userinfo") - 1
              && ngx_strncmp(ctx->session.scope.data, "userinfo",
                             ctx->session.scope.len) == 0))
        || (olcf->scope == NGX_HTTP_WECHAT_OAUTH_BASE
            && ngx_http_wechat_oauth_is_login(ctx->session.scope)))
    {
        return NGX_DECLINED;
    }

    ctx->valid = 1;

    return NGX_OK;
}


/*
 * $wechat_user is the site user bound to the session's openid: one HGET,
 * only when the configuration uses the variable.  A website login's
 * openid is the Website App's, never bound: its unionid finds the
 * official account's openid (P unionids, learnt from OAuth), and that
 * openid's binding.
 */

static ngx_int_t
ngx_http_wechat_oauth_lookup(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *ctx)
{
    ngx_str_t                    argv[4];
    ngx_int_t                    script;
    ngx_uint_t                   argc;
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (!ngx_http_wechat_oauth_lookup_user
        || (ngx_http_wechat_oauth_is_login(ctx->session.scope)
            && ctx->session.unionid.len == 0))
    {
        ctx->access_rc = NGX_HTTP_OK;
        return NGX_OK;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_wechat_oauth_is_login(ctx->session.scope)) {
        ngx_str_set(&argv[0], "2");
        argv[1] = ngx_http_wechat_key(r, wlcf, "unionids", NULL);
        argv[2] = ngx_http_wechat_key(r, wlcf, "openids", NULL);
        argv[3].data = (u_char *) ctx->session.unionid.data;
        argv[3].len = ctx->session.unionid.len;

        if (argv[1].data == NULL || argv[2].data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        script = NGX_HTTP_WECHAT_SCRIPT_UNIONID_LOOKUP;
        argc = 4;

    } else {
        ngx_str_set(&argv[0], "HGET");
        argv[1] = ngx_http_wechat_key(r, wlcf, "openids", NULL);
        argv[2].data = (u_char *) ctx->session.openid.data;
        argv[2].len = ctx->session.openid.len;

        if (argv[1].data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        script = NGX_HTTP_WECHAT_NO_SCRIPT;
        argc = 3;
    }

    return ngx_http_wechat_oauth_wait(r, ctx,
                                      ngx_http_wechat_oauth_lookup_done,
                                      script, argc, argv);
}


/*
 * A Redis command the access phase waits for: the phases stop until its
 * handler runs them again (or answers).
 */

static ngx_int_t
ngx_http_wechat_oauth_wait(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *ctx, ngx_http_wechat_redis_handler_pt handler,
    ngx_int_t script, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t  rc;

    rc = ngx_http_wechat_redis_command(r, handler, script, argc, argv);

    if (rc == NGX_OK) {
        ctx->access_rc = NGX_AGAIN;
        r->main->count++;
        return NGX_DONE;
    }

    return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                              : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static void
ngx_http_wechat_oauth_lookup_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended)
{
    size_t                        n;
    wx_span_t                     user, found[2];
    wx_status_t                   rc;
    wx_allocator_t                a;
    ngx_http_wechat_oauth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);
    ngx_http_wechat_allocator(r->pool, &a);

    if (response == NULL) {
        rc = WX_ERR_REPLY;

    } else if (response->type == REDIS_REPLY_ARRAY) {

        /* UNIONID_LOOKUP: { openid, the user or nil }, or { nil } */

        rc = wx_redis_names(response, &a, found, 2, &n);

        if (rc == WX_OK && n == 2 && found[1].data) {
            user = found[1];

        } else if (rc == WX_OK) {
            rc = WX_ERR_NOT_FOUND;
        }

    } else {
        rc = wx_redis_string(response, &a, &user);
    }

    if (rc == WX_OK) {
        ctx->user.data = (u_char *) user.data;
        ctx->user.len = user.len;
    }

    if (rc == WX_OK && !ngx_http_wechat_is_name(&ctx->user)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: the user bound to \"%*s\" is no name",
                      ctx->session.openid.len, ctx->session.openid.data);
        ngx_str_null(&ctx->user);
        rc = WX_ERR_REPLY;
    }

    ctx->access_rc = (rc == WX_OK || rc == WX_ERR_NOT_FOUND)
                     ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE;

    /* on with the phases, where the access phase left them */

    r->main->count--;

    ngx_http_core_run_phases(r);
}


/*
 * A new state: 128 random bits, single-use, for 5 minutes, kept in Redis
 * with what the callback needs (the hash of the browser's state cookie,
 * the scope, the path to return to).  The state cookie is kept if the
 * browser has one, so that two tabs can authorize at once.
 */

static ngx_int_t
ngx_http_wechat_oauth_start(ngx_http_request_t *r,
    ngx_http_wechat_oauth_loc_conf_t *olcf, ngx_http_wechat_oauth_ctx_t *ctx)
{
    u_char                      *p;
    ngx_str_t                    argv[6], back, value;
    ngx_http_wechat_loc_conf_t  *wlcf;
    u_char                       hash[WX_SHA256_HEX_LEN];

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ctx->state.len = NGX_HTTP_WECHAT_OAUTH_STATE_LEN;
    ctx->state.data = ngx_pnalloc(r->pool, ctx->state.len);
    if (ctx->state.data == NULL
        || wx_random_hex((char *) ctx->state.data, ctx->state.len / 2)
           != WX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_wechat_cookie(r, &ngx_http_wechat_oauth_state_cookie,
                               &ctx->browser)
        != NGX_OK
        || ctx->browser.len != NGX_HTTP_WECHAT_OAUTH_STATE_LEN
        || !ngx_http_wechat_is_name(&ctx->browser))
    {
        ctx->browser.len = NGX_HTTP_WECHAT_OAUTH_STATE_LEN;
        ctx->browser.data = ngx_pnalloc(r->pool, ctx->browser.len);
        if (ctx->browser.data == NULL
            || wx_random_hex((char *) ctx->browser.data,
                             ctx->browser.len / 2)
               != WX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (wx_sha256_hex(ngx_http_wechat_span(&ctx->browser), (char *) hash)
        != WX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the path asked for, or the site's root when it is no local path */

    back = r->unparsed_uri;

    if (!ngx_http_wechat_oauth_is_path(&back)) {
        ngx_str_set(&back, "/");
    }

    value.len = WX_SHA256_HEX_LEN + sizeof(" userinfo ") - 1 + back.len;
    value.data = ngx_pnalloc(r->pool, value.len);
    if (value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(value.data, hash, WX_SHA256_HEX_LEN);
    p = ngx_sprintf(p, " %s ",
                    olcf->scope == NGX_HTTP_WECHAT_OAUTH_USERINFO
                    ? "userinfo"
                    : olcf->scope == NGX_HTTP_WECHAT_OAUTH_LOGIN
                    ? "login" : "base");
    p = ngx_cpymem(p, back.data, back.len);
    value.len = p - value.data;

    ngx_str_set(&argv[0], "SET");
    argv[1] = ngx_http_wechat_key(r, wlcf, "oauth:", &ctx->state);
    argv[2] = value;
    ngx_str_set(&argv[3], "NX");
    ngx_str_set(&argv[4], "EX");
    argv[5] = ngx_http_wechat_number(r->pool,
                                     NGX_HTTP_WECHAT_OAUTH_STATE_TTL);

    if (argv[1].data == NULL || argv[5].len == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_oauth_wait(r, ctx, ngx_http_wechat_oauth_started,
                                      NGX_HTTP_WECHAT_NO_SCRIPT, 6, argv);
}


static void
ngx_http_wechat_oauth_started(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_int_t                     rc;
    ngx_http_wechat_oauth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_wechat_oauth_module);

    r->main->count--;

    if (response == NULL || response->type != REDIS_REPLY_STATUS) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat oauth: the state was not stored");
        ctx->access_rc = NGX_HTTP_SERVICE_UNAVAILABLE;
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    rc = ngx_http_wechat_oauth_location(r, ctx);

    ctx->access_rc = (rc == NGX_OK) ? NGX_HTTP_MOVED_TEMPORARILY
                                    : NGX_HTTP_INTERNAL_SERVER_ERROR;

    ngx_http_finalize_request(r, ctx->access_rc);
}


/* Location: WeChat's authorize URL, and the state cookie beside it. */

static ngx_int_t
ngx_http_wechat_oauth_location(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *ctx)
{
    ngx_table_elt_t                   *h;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL
        || ngx_http_wechat_oauth_authorize(r, olcf->scope, &ctx->state,
                                           &h->value)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    r->headers_out.location = h;

    if (ngx_http_wechat_oauth_cookie(r, &ngx_http_wechat_oauth_state_cookie,
                                     &ctx->browser,
                                     NGX_HTTP_WECHAT_OAUTH_STATE_TTL)
        != NGX_OK
        || ngx_http_wechat_no_store(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * WeChat's authorize URL for scope and state: appid, redirect_uri,
 * response_type, scope, state, then #wechat_redirect; for a website
 * login, the qrconnect page with the Website App's appid.
 */

ngx_int_t
ngx_http_wechat_oauth_authorize(ngx_http_request_t *r, ngx_uint_t scope,
    ngx_str_t *state, ngx_str_t *url)
{
    u_char                            *p;
    size_t                             len;
    ngx_str_t                         *page, *appid;
    wx_span_t                          redirect;
    wx_allocator_t                     a;
    const char                        *name;
    ngx_http_wechat_loc_conf_t        *wlcf;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    if (scope == NGX_HTTP_WECHAT_OAUTH_LOGIN) {
        page = &olcf->qrconnect_url;
        appid = &olcf->website_appid;
        name = "snsapi_login";

    } else {
        page = &olcf->authorize_url;
        appid = &wlcf->appid;
        name = (scope == NGX_HTTP_WECHAT_OAUTH_USERINFO)
               ? "snsapi_userinfo" : "snsapi_base";
    }

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_url_encode(ngx_http_wechat_span(&olcf->redirect_uri), &a,
                      &redirect)
        != WX_OK)
    {
        return NGX_ERROR;
    }

    len = page->len + sizeof("?appid=") - 1 + appid->len
          + sizeof("&redirect_uri=") - 1 + redirect.len
          + sizeof("&response_type=code&scope=snsapi_userinfo&state=") - 1
          + state->len + sizeof("#wechat_redirect") - 1;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    url->data = p;

    p = ngx_sprintf(p, "%V?appid=%V&redirect_uri=%*s"
                    "&response_type=code&scope=%s&state=%V#wechat_redirect",
                    page, appid, redirect.len, redirect.data, name,
                    state);

    url->len = p - url->data;

    return NGX_OK;
}


/*
 * Outside WeChat's browser the authorize page cannot log anybody in: a
 * page that says so, with a QR code of this page's address (the callback's
 * origin and the path: never the client's Host) to open it in WeChat.
 */

static ngx_int_t
ngx_http_wechat_oauth_outside(ngx_http_request_t *r,
    ngx_http_wechat_oauth_loc_conf_t *olcf)
{
    u_char          *p;
    ngx_str_t        url, page;
    wx_span_t        svg;
    wx_allocator_t   a;

    static const char  head[] =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width\">"
        "<title>Open in WeChat</title></head>\n<body>"
        "<p>Open this page in WeChat: scan the code with WeChat.</p>"
        "<p>请在微信中打开此页面：用微信扫描二维码。</p>\n";
    static const char  tail[] = "\n</body></html>\n";

    url = r->unparsed_uri;

    if (!ngx_http_wechat_oauth_is_path(&url)) {
        ngx_str_set(&url, "/");
    }

    url.len += olcf->origin.len;
    url.data = ngx_pnalloc(r->pool, url.len);
    if (url.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(url.data, olcf->origin.data, olcf->origin.len);
    ngx_memcpy(p, r->unparsed_uri.data, url.len - olcf->origin.len);

    if (!ngx_http_wechat_oauth_is_path(&r->unparsed_uri)) {
        p[0] = '/';
        url.len = olcf->origin.len + 1;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    if (url.len > WX_QR_MAX_TEXT
        || wx_qr_svg(ngx_http_wechat_span(&url), 240, &a, &svg) != WX_OK)
    {
        svg.data = NULL;
        svg.len = 0;
    }

    page.len = sizeof(head) - 1 + svg.len + sizeof(tail) - 1;
    page.data = ngx_pnalloc(r->pool, page.len);
    if (page.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(page.data, head, sizeof(head) - 1);
    p = ngx_cpymem(p, svg.data, svg.len);
    ngx_memcpy(p, tail, sizeof(tail) - 1);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat oauth: outside WeChat's browser");

    if (ngx_http_wechat_no_store(r) != NGX_OK
        || ngx_http_discard_request_body(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_finalize_request(r,
        ngx_http_wechat_send(r, NGX_HTTP_FORBIDDEN,
                             "text/html; charset=utf-8", page.data,
                             page.len));

    return NGX_DONE;
}


/* WeChat's browser names itself "MicroMessenger" in its User-Agent. */

static ngx_uint_t
ngx_http_wechat_oauth_in_wechat(ngx_http_request_t *r)
{
    ngx_table_elt_t  *ua;

    ua = r->headers_in.user_agent;

    return ua && ngx_strlcasestrn(ua->value.data,
                                  ua->value.data + ua->value.len,
                                  (u_char *) "MicroMessenger",
                                  sizeof("MicroMessenger") - 2)
                 != NULL;
}


/*
 * A path of this site to send a browser back to: "/" and visible ASCII,
 * no "//" or "/\" in front (another host to browsers) and no backslash
 * at all (some browsers read it as a slash).
 */

ngx_uint_t
ngx_http_wechat_oauth_is_path(ngx_str_t *path)
{
    size_t  i;

    if (path->len == 0 || path->len > NGX_HTTP_WECHAT_OAUTH_RETURN_MAX
        || path->data[0] != '/'
        || (path->len > 1 && path->data[1] == '/'))
    {
        return 0;
    }

    for (i = 0; i < path->len; i++) {
        if (path->data[i] <= 0x20 || path->data[i] >= 0x7f
            || path->data[i] == '\\')
        {
            return 0;
        }
    }

    return 1;
}


/* A session or state of a website login. */

ngx_uint_t
ngx_http_wechat_oauth_is_login(wx_span_t scope)
{
    return scope.len == sizeof("login") - 1
           && ngx_strncmp(scope.data, "login", scope.len) == 0;
}


/* Set-Cookie: HttpOnly, SameSite=Lax, for the whole site; 0 clears it. */

ngx_int_t
ngx_http_wechat_oauth_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value, time_t max_age)
{
    u_char                            *p;
    size_t                             len;
    ngx_table_elt_t                   *h;
    ngx_http_wechat_oauth_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_oauth_module);

    len = name->len + 1 + value->len + sizeof("; Path=/; Max-Age=") - 1
          + NGX_TIME_T_LEN + sizeof("; HttpOnly; SameSite=Lax; Secure") - 1;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, len);

    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;

    p = ngx_sprintf(p, "%V=%V; Path=/; Max-Age=%T; HttpOnly; SameSite=Lax",
                    name, value, max_age);

    if (olcf->cookie_secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    h->value.len = p - h->value.data;

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_wechat_oauth_init(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_http_handler_pt        *h;
    ngx_http_variable_t        *v;
    ngx_http_core_main_conf_t  *cmcf;

    static ngx_str_t  user = ngx_string("wechat_user");

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    v = cmcf->variables.elts;
    ngx_http_wechat_oauth_lookup_user = 0;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].name.len == user.len
            && ngx_strncmp(v[i].name.data, user.data, user.len) == 0)
        {
            ngx_http_wechat_oauth_lookup_user = 1;
        }
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_wechat_oauth_access;

    return NGX_OK;
}


static void *
ngx_http_wechat_oauth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_wechat_oauth_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_wechat_oauth_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->redirect_uri = { 0, NULL };
     *     conf->origin = { 0, NULL };
     *     conf->authorize_url = { 0, NULL };
     *     conf->qrconnect_url = { 0, NULL };
     *     conf->website_appid = { 0, NULL };
     *     conf->website_secret = { 0, NULL };
     *     conf->cookie = { 0, NULL };
     *     conf->callback = 0;
     */

    conf->scope = NGX_CONF_UNSET_UINT;
    conf->outside = NGX_CONF_UNSET_UINT;
    conf->secrets = NGX_CONF_UNSET_PTR;
    conf->session_expire = NGX_CONF_UNSET;
    conf->cookie_secure = NGX_CONF_UNSET;
    conf->scenes = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_wechat_oauth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_wechat_oauth_loc_conf_t *prev = parent;
    ngx_http_wechat_oauth_loc_conf_t *conf = child;

    ngx_conf_merge_uint_value(conf->scope, prev->scope,
                              NGX_HTTP_WECHAT_OAUTH_OFF);
    ngx_conf_merge_uint_value(conf->outside, prev->outside,
                              NGX_HTTP_WECHAT_OAUTH_PAGE);
    ngx_conf_merge_str_value(conf->redirect_uri, prev->redirect_uri, "");
    ngx_conf_merge_str_value(conf->origin, prev->origin, "");
    ngx_conf_merge_str_value(conf->authorize_url, prev->authorize_url,
                             NGX_HTTP_WECHAT_OAUTH_AUTHORIZE_URL);
    ngx_conf_merge_str_value(conf->qrconnect_url, prev->qrconnect_url,
                             NGX_HTTP_WECHAT_OAUTH_QRCONNECT_URL);
    ngx_conf_merge_str_value(conf->website_appid, prev->website_appid, "");
    ngx_conf_merge_str_value(conf->website_secret, prev->website_secret, "");
    ngx_conf_merge_ptr_value(conf->secrets, prev->secrets, NULL);
    ngx_conf_merge_sec_value(conf->session_expire, prev->session_expire,
                             7200);
    ngx_conf_merge_str_value(conf->cookie, prev->cookie, "wechat_session");
    ngx_conf_merge_value(conf->cookie_secure, prev->cookie_secure, 0);
    ngx_conf_merge_value(conf->scenes, prev->scenes, 0);

    if (conf->scenes && conf->redirect_uri.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_qrcode_oauth\" needs "
                           "\"wechat_oauth_redirect_uri\": its scenes are "
                           "links to WeChat's authorize page");
        return NGX_CONF_ERROR;
    }

    if (conf->scope == NGX_HTTP_WECHAT_OAUTH_OFF && !conf->callback) {
        return NGX_CONF_OK;
    }

    return ngx_http_wechat_oauth_check_conf(cf, conf);
}


/* What a protected location or a callback needs, where it is. */

static char *
ngx_http_wechat_oauth_check_conf(ngx_conf_t *cf,
    ngx_http_wechat_oauth_loc_conf_t *conf)
{
    ngx_http_wechat_loc_conf_t   *wlcf;
    ngx_http_wechat_main_conf_t  *wmcf;

    /* the account's conf is merged: its module comes first */

    wlcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_wechat_module);
    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);

    if (conf->secrets == NULL || wlcf->appid.len == 0
        || wmcf->server.name.data == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_oauth\" and \"wechat_oauth_callback\" "
                           "need \"wechat_oauth_secret\", \"wechat_appid\" "
                           "and \"wechat_redis\"");
        return NGX_CONF_ERROR;
    }

    if (conf->scope != NGX_HTTP_WECHAT_OAUTH_OFF
        && conf->redirect_uri.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_oauth\" needs "
                           "\"wechat_oauth_redirect_uri\": the callback's "
                           "address in the console's authorization domain");
        return NGX_CONF_ERROR;
    }

    if (conf->scope == NGX_HTTP_WECHAT_OAUTH_LOGIN
        && conf->website_appid.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_oauth login\" needs "
                           "\"wechat_oauth_website\": the Website App's "
                           "appid and secret");
        return NGX_CONF_ERROR;
    }

    if (conf->callback
        && (wlcf->secret.len == 0 || wlcf->api_pass.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_oauth_callback\" needs "
                           "\"wechat_secret\" and \"wechat_api_pass\": it "
                           "exchanges WeChat's code");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_wechat_oauth_callback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_wechat_oauth_loc_conf_t *olcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (olcf->callback) {
        return "is duplicate";
    }

    olcf->callback = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_wechat_oauth_callback_handler;

    return NGX_CONF_OK;
}


/* An absolute http(s) URL: its origin is where the site's pages are. */

static char *
ngx_http_wechat_oauth_redirect_uri(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_wechat_oauth_loc_conf_t *olcf = conf;

    u_char     *host, *end, *slash;
    ngx_str_t  *value;

    if (olcf->redirect_uri.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    end = value[1].data + value[1].len;

    if (value[1].len > 7
        && ngx_strncmp(value[1].data, "http://", 7) == 0)
    {
        host = value[1].data + 7;

    } else if (value[1].len > 8
               && ngx_strncmp(value[1].data, "https://", 8) == 0)
    {
        host = value[1].data + 8;

    } else {
        host = NULL;
    }

    slash = host ? ngx_strlchr(host, end, '/') : NULL;

    if (slash == NULL || slash == host) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_oauth_redirect_uri\" takes an absolute "
                           "http:// or https:// URL with a path, not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    olcf->redirect_uri = value[1];
    olcf->origin.data = value[1].data;
    olcf->origin.len = slash - value[1].data;

    return NGX_CONF_OK;
}


/* The current secret, then the previous one while its sessions live. */

static char *
ngx_http_wechat_oauth_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_oauth_loc_conf_t *olcf = conf;

    wx_span_t   *secret;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (olcf->secrets != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    olcf->secrets = ngx_array_create(cf->pool, 2, sizeof(wx_span_t));
    if (olcf->secrets == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len < WX_LINK_MIN_SECRET_LEN) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"wechat_oauth_secret\" needs at least %d "
                               "bytes: \"%V\" is too short",
                               WX_LINK_MIN_SECRET_LEN, &value[i]);
            return NGX_CONF_ERROR;
        }

        secret = ngx_array_push(olcf->secrets);
        if (secret == NULL) {
            return NGX_CONF_ERROR;
        }

        *secret = ngx_http_wechat_span(&value[i]);
    }

    return NGX_CONF_OK;
}


/*
 * wechat_oauth_website appid secret: the Website App (网站应用) of the
 * Open Platform account the official account belongs to.  Both go into
 * WeChat's URLs as they are: letters and digits only.
 */

static char *
ngx_http_wechat_oauth_website(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_wechat_oauth_loc_conf_t *olcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (olcf->website_appid.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < 3; i++) {
        if (!ngx_http_wechat_is_openid(&value[i])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"wechat_oauth_website\" takes an appid "
                               "and a secret of letters, digits, \"-\" "
                               "and \"_\", not \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    olcf->website_appid = value[1];
    olcf->website_secret = value[2];

    return NGX_CONF_OK;
}


/* wechat_oauth_cookie name [secure] */

static char *
ngx_http_wechat_oauth_cookie_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_wechat_oauth_loc_conf_t *olcf = conf;

    ngx_str_t  *value;

    if (olcf->cookie.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (!ngx_http_wechat_is_openid(&value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_oauth_cookie\" takes a name of letters, "
                           "digits, \"-\" and \"_\", not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    olcf->cookie = value[1];
    olcf->cookie_secure = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "secure") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        olcf->cookie_secure = 1;
    }

    return NGX_CONF_OK;
}
