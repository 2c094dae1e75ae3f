
/*
 * ngx_http_wechat_module: the holder's say before an account changes
 * hands.  A scanned bind scene binds only once its page sends the code the
 * scanner's phone got (a POST to wechat_poll, with the poll token); a
 * login scene becomes confirmed only once its scanner taps Confirm on the
 * page a signed link opens in WeChat (wechat_login_confirm).
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_push.h"
#include "ngx_http_wechat_handlers.h"


/* a form of a scene, a code, a token or a link is far smaller */
#define NGX_HTTP_WECHAT_CONFIRM_BODY_MAX  2048

#define NGX_HTTP_WECHAT_LINK_ARGS         5

#define NGX_HTTP_WECHAT_GONE              410


static void ngx_http_wechat_bind_confirm_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_bind_confirm_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_bind_confirm_form(ngx_http_request_t *r,
    ngx_str_t *args);
static void ngx_http_wechat_bind_confirm_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_confirm_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error);
static ngx_int_t ngx_http_wechat_confirm_user(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_confirm_refused(ngx_http_request_t *r,
    ngx_int_t status);
static ngx_uint_t ngx_http_wechat_cross_site(ngx_http_request_t *r);
static void ngx_http_wechat_login_confirm_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_login_confirm_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *text, ngx_str_t *action);
static void ngx_http_wechat_login_confirm_shown(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_login_confirm_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_confirm_reply(ngx_http_request_t *r,
    redisReply *response, wx_span_t *out, size_t max, size_t *n);
static ngx_int_t ngx_http_wechat_confirm_unbound(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_confirm_gone(ngx_http_request_t *r);
static void ngx_http_wechat_login_confirm_count(ngx_str_t *outcome);
static ngx_int_t ngx_http_wechat_confirm_page(ngx_http_request_t *r,
    ngx_uint_t status, const char *title, const char *format,
    ngx_str_t *values, ngx_uint_t n);
static ngx_str_t ngx_http_wechat_html(ngx_pool_t *pool, ngx_str_t *s);


static ngx_str_t  ngx_http_wechat_login_confirm_purpose =
    ngx_string(NGX_HTTP_WECHAT_PURPOSE_CONFIRM);


/* Bind: POST scene=S&code=C[&token=T] to the poll location. */

ngx_int_t
ngx_http_wechat_bind_confirm_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (ngx_http_wechat_create_ctx(r) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_wechat_bind_confirm_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_wechat_bind_confirm_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_wechat_bind_confirm_start(r, ngx_http_wechat_get_ctx(r));

    if (rc == NGX_OK) {
        return;
    }

    ngx_http_finalize_request(r, rc == NGX_DECLINED
                                 ? ngx_http_wechat_send_unavailable(r)
                                 : ngx_http_wechat_confirm_refused(r, rc));
}


/*
 * One script checks the token, counts the code and binds: NGX_OK while it
 * runs, else the status to answer.  The token comes in the form, where
 * the page put it, never from the cookie alone: another site's form
 * cannot name it.
 */

static ngx_int_t
ngx_http_wechat_bind_confirm_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    args[3], argv[13];
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (ngx_http_wechat_cross_site(r)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat confirm: refused: a cross-site request");
        return NGX_HTTP_FORBIDDEN;
    }

    rc = ngx_http_wechat_bind_confirm_form(r, args);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!wx_scene_is_ours(ngx_http_wechat_span(&args[0]))) {
        return NGX_HTTP_NOT_FOUND;
    }

    ctx->scene = args[0];

    rc = ngx_http_wechat_confirm_user(r, wlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    /* keys: scene, then stream, users, openids */

    ngx_str_set(&argv[0], "4");
    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    argv[5].data = ngx_pnalloc(r->pool, 2 * WX_SHA256_HEX_LEN);
    argv[5].len = WX_SHA256_HEX_LEN;
    argv[6].data = argv[5].data + WX_SHA256_HEX_LEN;
    argv[6].len = WX_SHA256_HEX_LEN;
    argv[7] = ngx_http_wechat_number(r->pool, wlcf->redeem_attempts);
    argv[8] = ctx->user;
    argv[9] = wlcf->key_prefix;
    argv[10] = ctx->scene;
    argv[11] = ngx_http_wechat_now(r);
    argv[12] = ngx_http_wechat_stream_maxlen;

    if (argv[1].data == NULL || argv[5].data == NULL || argv[7].len == 0
        || argv[11].data == NULL
        || ngx_http_wechat_binding_keys(r, wlcf, &argv[2]) != NGX_OK
        || wx_sha256_hex(ngx_http_wechat_span(&args[2]),
                         (char *) argv[5].data) != WX_OK
        || wx_code_hash(ngx_http_wechat_span(
                            &ngx_http_wechat_kinds[NGX_HTTP_WECHAT_KIND_CODE]),
                        ngx_http_wechat_span(&args[0]),
                        ngx_http_wechat_span(&args[1]),
                        (char *) argv[6].data)
           != WX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_bind_confirm_done,
                                         NGX_HTTP_WECHAT_SCRIPT_CONFIRM_BIND,
                                         13, argv);
}


/*
 * The form's scene, code and poll token (args[0..2]): NGX_OK, or the
 * status to answer.
 */

static ngx_int_t
ngx_http_wechat_bind_confirm_form(ngx_http_request_t *r, ngx_str_t *args)
{
    size_t     i;
    ngx_int_t  rc;
    ngx_str_t  body, form[4];

    /* "token" is the poll token's name of one release ago */
    static const char  *names[] = { "scene", "code", "poll_token", "token" };

    rc = ngx_http_wechat_read_body(r, NGX_HTTP_WECHAT_CONFIRM_BODY_MAX,
                                   &body);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_wechat_form(r, &body, names, 4, form) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (form[2].data == NULL) {
        form[2] = form[3];
    }

    for (i = 0; i < form[1].len; i++) {
        if (form[1].data[i] < '0' || form[1].data[i] > '9') {
            break;
        }
    }

    if (form[0].data == NULL || form[2].len == 0
        || i != form[1].len || i < 4 || i > WX_DIGITS_MAX)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat confirm: no \"scene\", \"poll_token\" or "
                      "digits of a \"code\"");
        return NGX_HTTP_BAD_REQUEST;
    }

    args[0] = form[0];
    args[1] = form[1];
    args[2] = form[2];

    return NGX_OK;
}


static void
ngx_http_wechat_bind_confirm_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended)
{
    size_t                  n;
    ngx_str_t               word;
    wx_span_t               out[2];
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ngx_http_wechat_confirm_reply(r, response, out, 2, &n) != NGX_OK) {
        return;
    }

    if (out[0].data == NULL) {
        ngx_http_wechat_count(
            bind_confirms[NGX_HTTP_WECHAT_BIND_CONFIRM_NOT_FOUND]);
        ngx_http_finalize_request(r,
            ngx_http_wechat_confirm_error(r, NGX_HTTP_NOT_FOUND,
                                          "not found"));
        return;
    }

    word.data = (u_char *) out[0].data;
    word.len = out[0].len;

    if (n == 2 && out[1].data
        && ((word.len == 5 && ngx_strncmp(word.data, "bound", 5) == 0)
            || (word.len == 8 && ngx_strncmp(word.data, "conflict", 8) == 0)))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat confirm: scene \"%V\" %V", &ctx->scene, &word);

        ngx_http_wechat_count(bind_confirms[word.len == 5
                                  ? NGX_HTTP_WECHAT_BIND_CONFIRM_BOUND
                                  : NGX_HTTP_WECHAT_BIND_CONFIRM_CONFLICT]);

        wx_json_field_t  answer[] = {
            { "status", WX_JSON_STRING, out[0], 0 },
            { "openid", WX_JSON_STRING, out[1], 0 }
        };

        ngx_http_finalize_request(r,
            ngx_http_wechat_send_json(r, NGX_HTTP_OK, answer,
                                      word.len == 5 ? 2 : 1));
        return;
    }

    if (word.len == 5 && ngx_strncmp(word.data, "wrong", 5) == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat confirm: wrong code for scene \"%V\"",
                      &ctx->scene);
        ngx_http_wechat_count(
            bind_confirms[NGX_HTTP_WECHAT_BIND_CONFIRM_WRONG]);
        ngx_http_finalize_request(r,
            ngx_http_wechat_confirm_error(r, NGX_HTTP_FORBIDDEN,
                                          "wrong code"));
        return;
    }

    if (word.len == 7 && ngx_strncmp(word.data, "unknown", 7) == 0) {
        ngx_http_wechat_count(
            bind_confirms[NGX_HTTP_WECHAT_BIND_CONFIRM_NOT_FOUND]);
        ngx_http_finalize_request(r,
            ngx_http_wechat_confirm_error(r, NGX_HTTP_NOT_FOUND,
                                          "not found"));
        return;
    }

    /* nothing to confirm: the page learns the status as it is */

    ngx_http_wechat_count(
        bind_confirms[NGX_HTTP_WECHAT_BIND_CONFIRM_NOT_SCANNED]);

    wx_json_field_t  status[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) "not scanned", 11 }, 0 },
        { "status", WX_JSON_STRING, out[0], 0 }
    };

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_json(r, NGX_HTTP_CONFLICT, status, 2));
}


/*
 * Where the location names its user, only that user confirms: NGX_OK, or
 * the status to answer.
 */

static ngx_int_t
ngx_http_wechat_confirm_user(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_set(&ctx->user, "");

    if (wlcf->user == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, wlcf->user, &ctx->user) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->user.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat confirm: no user");
        return NGX_HTTP_UNAUTHORIZED;
    }

    return ngx_http_wechat_is_name(&ctx->user) ? NGX_OK
                                               : NGX_HTTP_BAD_REQUEST;
}


/* A refusal before Redis was asked, as JSON. */

static ngx_int_t
ngx_http_wechat_confirm_refused(ngx_http_request_t *r, ngx_int_t status)
{
    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        return ngx_http_wechat_confirm_error(r, status, "bad request");

    case NGX_HTTP_UNAUTHORIZED:
        return ngx_http_wechat_confirm_error(r, status, "no user");

    case NGX_HTTP_FORBIDDEN:
        return ngx_http_wechat_confirm_error(r, status, "cross-site");

    case NGX_HTTP_NOT_FOUND:
        return ngx_http_wechat_confirm_error(r, status, "not found");

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return ngx_http_wechat_confirm_error(r, status, "too large");

    default:
        return status;
    }
}


/*
 * A browser's word that another site sent the request: no page of ours
 * posts a confirm from elsewhere.
 */

static ngx_uint_t
ngx_http_wechat_cross_site(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("Sec-Fetch-Site");

    h = ngx_http_wechat_header(r, &name);

    return h && h->value.len == sizeof("cross-site") - 1
           && ngx_strncasecmp(h->value.data, (u_char *) "cross-site",
                              h->value.len) == 0;
}


static ngx_int_t
ngx_http_wechat_confirm_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error)
{
    wx_json_field_t  answer[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) error, ngx_strlen(error) }, 0 }
    };

    return ngx_http_wechat_send_json(r, status, answer, 1);
}


/*
 * Login: GET with the signed link shows who asked and offers Confirm and
 * Cancel; the POST of that form (the link's fields and action=) decides.
 */

ngx_int_t
ngx_http_wechat_login_confirm_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_str_t               action;
    ngx_http_wechat_ctx_t  *ctx;

    if (r->method == NGX_HTTP_POST) {
        if (ngx_http_wechat_create_ctx(r) == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_read_client_request_body(r,
                                        ngx_http_wechat_login_confirm_body);

        return rc >= NGX_HTTP_SPECIAL_RESPONSE ? rc : NGX_DONE;
    }

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET, &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_str_null(&action);

    rc = ngx_http_wechat_login_confirm_start(r, ctx, &r->args, &action);

    return ngx_http_wechat_wait_redis(r, rc);
}


static void
ngx_http_wechat_login_confirm_body(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                body, action;
    ngx_http_wechat_ctx_t   *ctx;

    static const char  *names[] = { "action" };

    ctx = ngx_http_wechat_get_ctx(r);

    rc = ngx_http_wechat_read_body(r, NGX_HTTP_WECHAT_CONFIRM_BODY_MAX,
                                   &body);

    if (rc == NGX_OK) {
        if (ngx_http_wechat_form(r, &body, names, 1, &action) != NGX_OK) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else if (action.data == NULL
                   || ((action.len != 7
                        || ngx_strncmp(action.data, "confirm", 7) != 0)
                       && (action.len != 6
                           || ngx_strncmp(action.data, "cancel", 6) != 0)))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "wechat login confirm: no \"action\"");
            rc = NGX_HTTP_BAD_REQUEST;

        } else {
            rc = ngx_http_wechat_login_confirm_start(r, ctx, &body, &action);
        }
    }

    if (rc == NGX_OK || rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc == NGX_DECLINED
                                 ? ngx_http_wechat_send_unavailable(r) : rc);
}


/*
 * The link's fields from text, checked; then the scene read for the page
 * (no action) or the scanner's answer given in one script.
 */

static ngx_int_t
ngx_http_wechat_login_confirm_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *text, ngx_str_t *action)
{
    time_t                       expires;
    ngx_int_t                    rc;
    ngx_str_t                    argv[10], *args;
    ngx_http_wechat_loc_conf_t  *wlcf;

    static const char  *names[] = { "openid", "scene", "expires", "nonce",
                                    "sig" };

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    args = ngx_palloc(r->pool, NGX_HTTP_WECHAT_LINK_ARGS * sizeof(ngx_str_t));
    if (args == NULL
        || ngx_http_wechat_form(r, text, names, NGX_HTTP_WECHAT_LINK_ARGS,
                                args)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (args[1].len == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat login confirm: refused: no scene");
        return NGX_HTTP_FORBIDDEN;
    }

    rc = ngx_http_wechat_link_check(r, &ngx_http_wechat_login_confirm_purpose,
                                    text, args, &expires);
    if (rc != NGX_OK) {
        return rc;
    }

    /* the checked fields, for the page's form */

    ctx->openid = args[0];
    ctx->scene = args[1];
    ctx->link_fields = args;

    argv[1] = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);

    if (argv[1].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (action->data == NULL) {
        ngx_str_set(&argv[0], "HMGET");
        ngx_str_set(&argv[2], "kind");
        ngx_str_set(&argv[3], "status");
        ngx_str_set(&argv[4], "openid");
        ngx_str_set(&argv[5], "agent");
        ngx_str_set(&argv[6], "address");

        return ngx_http_wechat_redis_command(r,
                                         ngx_http_wechat_login_confirm_shown,
                                         NGX_HTTP_WECHAT_NO_SCRIPT, 7, argv);
    }

    /* keys: scene, the link's nonce (apart from other links'), openids */

    ngx_str_set(&argv[0], "3");
    argv[2] = ngx_http_wechat_key(r, wlcf, "confirm:", &args[3]);
    argv[3] = ngx_http_wechat_key(r, wlcf, "openids", NULL);
    argv[4] = ctx->openid;
    argv[5] = *action;
    argv[6] = ngx_http_wechat_number(r->pool, expires - ngx_time() + 1);
    argv[7] = wlcf->key_prefix;
    argv[8] = ctx->scene;

    if (argv[2].data == NULL || argv[3].data == NULL || argv[6].len == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_redis_command(r,
                                         ngx_http_wechat_login_confirm_done,
                                         NGX_HTTP_WECHAT_SCRIPT_CONFIRM_LOGIN,
                                         9, argv);
}


/* A link answered before, or a scene that waits for it no longer. */

static ngx_int_t
ngx_http_wechat_confirm_gone(ngx_http_request_t *r)
{
    return ngx_http_wechat_confirm_page(r, NGX_HTTP_WECHAT_GONE,
        "已失效 Expired",
        "<p>这个登录请求已经处理过或已失效。</p>"
        "<p>This login request was answered already, or has expired.</p>",
        NULL, 0);
}


/* The page: the site, the browser and address that asked, two buttons. */

static void
ngx_http_wechat_login_confirm_shown(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended)
{
    size_t                  n;
    ngx_str_t               values[10], *link;
    wx_span_t               s[5];
    ngx_uint_t              i;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    /* HMGET kind status openid agent address: five, each maybe nil */

    if (ngx_http_wechat_confirm_reply(r, response, s, 5, &n) != NGX_OK) {
        return;
    }

    if (n != 5 || s[0].len != 5 || ngx_strncmp(s[0].data, "login", 5) != 0
        || s[1].len != 10 || ngx_strncmp(s[1].data, "confirming", 10) != 0
        || s[2].len != ctx->openid.len
        || ngx_strncmp(s[2].data, ctx->openid.data, ctx->openid.len) != 0)
    {
        ngx_http_finalize_request(r, ngx_http_wechat_confirm_gone(r));
        return;
    }

    link = ctx->link_fields;

    values[0] = r->headers_in.server;
    values[1].data = (u_char *) s[3].data;
    values[1].len = s[3].len;
    values[2].data = (u_char *) s[4].data;
    values[2].len = s[4].len;

    for (i = 0; i < NGX_HTTP_WECHAT_LINK_ARGS; i++) {
        values[3 + i] = link[i];
    }

    values[8] = r->headers_in.server;

    /* the phone's own network, beside the one the login goes to */

    if (ngx_http_wechat_network(r->pool, &r->connection->addr_text,
                                &values[9])
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r,
        ngx_http_wechat_confirm_page(r, NGX_HTTP_OK, "确认登录 Confirm login",
            "<h1>登录 %V？</h1>"
            "<p>一个浏览器正请求以你的微信登录 / A browser asks to log in "
            "with your WeChat.</p>"
            "<p class=\"who\">它自称 It calls itself: %V<br>"
            "它的网络 Its network: %V</p>"
            "<p>只有在这是你本人刚刚在电脑上打开的页面时才确认；浏览器的名称"
            "由对方自报，可以伪造。<br>Confirm only if you opened that page "
            "yourself just now: a browser's name is what it says of itself."
            "</p>"
            "<form method=\"post\">"
            "<input type=\"hidden\" name=\"openid\" value=\"%V\">"
            "<input type=\"hidden\" name=\"scene\" value=\"%V\">"
            "<input type=\"hidden\" name=\"expires\" value=\"%V\">"
            "<input type=\"hidden\" name=\"nonce\" value=\"%V\">"
            "<input type=\"hidden\" name=\"sig\" value=\"%V\">"
            "<button name=\"action\" value=\"confirm\">确认登录 %V</button>"
            "<button name=\"action\" value=\"cancel\">取消 Cancel</button>"
            "</form><p class=\"who\">这部手机的网络 This phone's network: "
            "%V</p>", values, 10));
}


static void
ngx_http_wechat_login_confirm_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended)
{
    size_t                  n;
    ngx_str_t               outcome, host;
    wx_span_t               word;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ngx_http_wechat_confirm_reply(r, response, &word, 1, &n) != NGX_OK) {
        return;
    }

    if (word.data == NULL) {
        ngx_http_wechat_count(
            login_confirms[NGX_HTTP_WECHAT_LOGIN_CONFIRM_GONE]);
        ngx_http_finalize_request(r, ngx_http_wechat_confirm_gone(r));
        return;
    }

    outcome.data = (u_char *) word.data;
    outcome.len = word.len;

    ngx_http_wechat_login_confirm_count(&outcome);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat login confirm: scene \"%V\" openid \"%V\": %V",
                  &ctx->scene, &ctx->openid, &outcome);

    if (outcome.len == 9 && ngx_strncmp(outcome.data, "confirmed", 9) == 0) {
        host = r->headers_in.server;
        ngx_http_finalize_request(r,
            ngx_http_wechat_confirm_page(r, NGX_HTTP_OK, "已确认 Confirmed",
                "<h1>已确认登录 %V</h1>"
                "<p>请回到电脑上继续。 / Go back to your computer.</p>",
                &host, 1));
        return;
    }

    if (outcome.len == 9 && ngx_strncmp(outcome.data, "cancelled", 9) == 0) {
        ngx_http_finalize_request(r,
            ngx_http_wechat_confirm_page(r, NGX_HTTP_OK, "已取消 Cancelled",
                "<h1>已取消</h1><p>没有人因此登录。 / Nobody was logged "
                "in.</p>", NULL, 0));
        return;
    }

    if (outcome.len != 7 || ngx_strncmp(outcome.data, "unbound", 7) != 0) {
        ngx_http_finalize_request(r, ngx_http_wechat_confirm_gone(r));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_wechat_confirm_unbound(r, ctx));
}


/*
 * CONFIRM_LOGIN's outcome in the metrics, in the order of
 * NGX_HTTP_WECHAT_LOGIN_CONFIRM_*; a link used before is a link refusal
 * too.
 */

static void
ngx_http_wechat_login_confirm_count(ngx_str_t *outcome)
{
    ngx_uint_t  i;

    static ngx_str_t  outcomes[] = {
        ngx_string("confirmed"), ngx_string("unbound"),
        ngx_string("cancelled"), ngx_string("used")
    };

    for (i = 0; i < sizeof(outcomes) / sizeof(ngx_str_t); i++) {
        if (outcome->len == outcomes[i].len
            && ngx_strncmp(outcome->data, outcomes[i].data, outcome->len)
               == 0)
        {
            break;
        }
    }

    ngx_http_wechat_count(login_confirms[i]);

    if (i == NGX_HTTP_WECHAT_LOGIN_CONFIRM_USED) {
        ngx_http_wechat_count(link_refusals[NGX_HTTP_WECHAT_LINK_USED]);
    }
}


/* A follower with no account yet: the signed way to register, if any. */

static ngx_int_t
ngx_http_wechat_confirm_unbound(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                    register_url;
    wx_link_t                    link;
    wx_span_t                    url;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (wlcf->link_url.len == 0) {
        return ngx_http_wechat_confirm_page(r, NGX_HTTP_OK,
            "已确认 Confirmed",
            "<h1>已确认</h1><p>这个微信还没有绑定账号，请在电脑上完成注册。"
            " / This WeChat has no account yet: register on your "
            "computer.</p>", NULL, 0);
    }

    ngx_memzero(&link, sizeof(wx_link_t));
    link.appid = ngx_http_wechat_span(&wlcf->appid);
    link.purpose.data = (const unsigned char *)
                        NGX_HTTP_WECHAT_PURPOSE_REGISTER;
    link.purpose.len = sizeof(NGX_HTTP_WECHAT_PURPOSE_REGISTER) - 1;
    link.openid = ngx_http_wechat_span(&ctx->openid);

    if (ngx_http_wechat_link_new(r, wlcf, &wlcf->link_url, &link, &url)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    register_url.data = (u_char *) url.data;
    register_url.len = url.len;

    return ngx_http_wechat_confirm_page(r, NGX_HTTP_OK, "已确认 Confirmed",
        "<h1>已确认</h1><p>这个微信还没有绑定账号。 / This WeChat has "
        "no account yet.</p><p><a href=\"%V\">注册 Register</a></p>",
        &register_url, 1);
}


/*
 * A script's or a command's words, or the request answered 503: Redis
 * did not answer, or answered what no script of ours says.
 */

static ngx_int_t
ngx_http_wechat_confirm_reply(ngx_http_request_t *r, redisReply *response,
    wx_span_t *out, size_t max, size_t *n)
{
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ngx_http_wechat_allocator(r->pool, &a);

    if (response != NULL
        && wx_redis_names(response, &a, out, max, n) == WX_OK)
    {
        return NGX_OK;
    }

    if (response != NULL) {
        ctx = ngx_http_wechat_get_ctx(r);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat confirm: unexpected reply for scene \"%V\"",
                      &ctx->scene);
    }

    ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));

    return NGX_ERROR;
}


/*
 * A small page of its own: every value HTML-escaped, no script, framed by
 * nobody, kept by no cache, and its signed URL sent to no other site.
 */

static ngx_int_t
ngx_http_wechat_confirm_page(ngx_http_request_t *r, ngx_uint_t status,
    const char *title, const char *format, ngx_str_t *values, ngx_uint_t n)
{
    size_t            len;
    u_char           *p, *last;
    ngx_str_t         escaped[10];
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    static const char  head[] =
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,"
        "initial-scale=1\"><title>%s</title><style>body{font-family:"
        "sans-serif;margin:2em auto;max-width:30em;padding:0 1em;"
        "text-align:center}.who{color:#555;word-break:break-all}"
        "button{font-size:1.1em;margin:.4em;padding:.6em 1.6em}</style>"
        "</head><body>";

    static ngx_str_t  headers[][2] = {
        { ngx_string("X-Frame-Options"), ngx_string("DENY") },
        { ngx_string("Content-Security-Policy"),
          ngx_string("default-src 'none'; style-src 'unsafe-inline'; "
                     "form-action 'self'; frame-ancestors 'none'") },
        { ngx_string("Referrer-Policy"), ngx_string("no-referrer") }
    };

    len = sizeof(head) + ngx_strlen(title) + ngx_strlen(format)
          + sizeof("</body></html>");

    for (i = 0; i < n; i++) {
        escaped[i] = ngx_http_wechat_html(r->pool, &values[i]);
        if (escaped[i].data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len += escaped[i].len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_slprintf(p, p + len, head, title);

    /* format holds %V only, as many as values */

    for (i = 0; *format; format++) {
        if (format[0] == '%' && format[1] == 'V' && i < n) {
            last = ngx_cpymem(last, escaped[i].data, escaped[i].len);
            i++;
            format++;
            continue;
        }

        *last++ = *format;
    }

    last = ngx_cpymem(last, "</body></html>", sizeof("</body></html>") - 1);

    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        h->key = headers[i][0];
        h->value = headers[i][1];
    }

    if (ngx_http_wechat_no_store(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_send(r, status, "text/html; charset=utf-8", p,
                                last - p);
}


static ngx_str_t
ngx_http_wechat_html(ngx_pool_t *pool, ngx_str_t *s)
{
    ngx_str_t  out;

    out.len = s->len + ngx_escape_html(NULL, s->data, s->len);
    out.data = ngx_pnalloc(pool, out.len + 1);

    if (out.data) {
        (void) ngx_escape_html(out.data, s->data, s->len);
    }

    return out;
}
