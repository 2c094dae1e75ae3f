
/*
 * ngx_http_wechat_module: the callback URL WeChat calls.  GET verifies the
 * server URL; POST carries a signed push: callback -> verify -> parse ->
 * decrypt -> claim -> resolve a scan of ours, or pass everything else to
 * the business app.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_push.h"
#include "ngx_http_wechat_handlers.h"


static ngx_int_t ngx_http_wechat_verify_url(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_answer_url(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_check_query(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_claim_here(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t content);
static void ngx_http_wechat_callback_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_process(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static ngx_int_t ngx_http_wechat_dispatch(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_greet(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


ngx_int_t
ngx_http_wechat_callback_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat callback: method \"%V\" not allowed",
                      &r->method_name);
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_METHOD]);
        return NGX_HTTP_NOT_ALLOWED;
    }

    ctx = ngx_http_wechat_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->callback = wlcf;

    if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    /* a forged query is refused before its body is read */

    rc = ngx_http_wechat_check_query(r, wlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method == NGX_HTTP_GET) {
        return ngx_http_wechat_verify_url(r, ctx);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_wechat_callback_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* The server URL check: echostr back, once per signed query. */

static ngx_int_t
ngx_http_wechat_verify_url(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_http_wechat_main_conf_t  *wmcf;

    if (ctx->echostr.data == NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: verification without \"echostr\"");
        return NGX_HTTP_FORBIDDEN;
    }

    rc = ngx_http_wechat_claim_here(r, ctx,
                                    ngx_http_wechat_span(&ctx->echostr));
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat callback: server url verified");

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_wechat_module);

    if (wmcf->server.name.data) {
        rc = ngx_http_wechat_claim(r, ctx, ngx_http_wechat_answer_url);

        if (rc == NGX_OK) {
            r->main->count++;
            return NGX_DONE;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_wechat_send(r, NGX_HTTP_OK, "text/plain",
                                ctx->echostr.data, ctx->echostr.len);
}


static void
ngx_http_wechat_answer_url(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_http_finalize_request(r, ngx_http_wechat_send(r, NGX_HTTP_OK,
                                 "text/plain", ctx->echostr.data,
                                 ctx->echostr.len));
}


/*
 * The query's signature covers the token, timestamp and nonce only, so a
 * query is good for one use within the timestamp window, GET and POST
 * alike.  Its arguments are read once, here.
 */

static ngx_int_t
ngx_http_wechat_check_query(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_http_wechat_ctx_t *ctx)
{
    time_t      ts;
    ngx_str_t   args[5], escaped;
    wx_span_t   fields[3];
    ngx_uint_t  i;

    static const char  *names[] = {
        "signature", "timestamp", "nonce", "msg_signature", "echostr"
    };

    if (ngx_http_wechat_args(r, names, 5, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < 3; i++) {
        if (args[i].data == NULL) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "wechat callback: no \"%s\" in the query",
                          names[i]);
            ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_MISSING]);
            return NGX_HTTP_FORBIDDEN;
        }
    }

    fields[0] = ngx_http_wechat_span(&wlcf->token);
    fields[1] = ngx_http_wechat_span(&args[1]);
    fields[2] = ngx_http_wechat_span(&args[2]);

    if (wx_signature_verify(fields, 3, ngx_http_wechat_span(&args[0]))
        != WX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: signature mismatch");
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_SIGNATURE]);
        return NGX_HTTP_FORBIDDEN;
    }

    ts = ngx_atotm(args[1].data, args[1].len);

    if (ts == NGX_ERROR || ngx_abs(ngx_time() - ts) > wlcf->timestamp_skew) {
        escaped = ngx_http_wechat_log_escape(r->pool, &args[1]);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: stale timestamp \"%V\"", &escaped);
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_TIMESTAMP]);
        return NGX_HTTP_FORBIDDEN;
    }

    ctx->signature = args[0];
    ctx->timestamp = args[1];
    ctx->nonce = args[2];
    ctx->msg_signature = args[3];
    ctx->echostr = args[4];

    return NGX_OK;
}


/*
 * Claims the query on this node for the content it signs: the body in
 * plaintext mode, Encrypt in safe mode (msg_signature covers it, and not
 * the rest of the envelope), echostr for the URL check.
 */

static ngx_int_t
ngx_http_wechat_claim_here(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t content)
{
    ngx_int_t                    rc;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (wx_sha1_hex(content, (char *) ctx->digest) != WX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_queries_claim(r, &ctx->signature, ctx->digest,
                                       2 * wlcf->timestamp_skew + 1);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: replayed query with other content, "
                      "or used more often than WeChat retries");
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_REPLAY]);
        return NGX_HTTP_FORBIDDEN;
    }

    ctx->retry = (rc == NGX_DONE);

    return NGX_OK;
}


static void
ngx_http_wechat_callback_body(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    rc = ngx_http_wechat_process(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
ngx_http_wechat_process(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    body;
    wx_span_t                    signed_content;
    wx_status_t                  status;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;

    rc = ngx_http_wechat_read_body(r, WX_XML_MAX_SIZE, &body);
    if (rc != NGX_OK) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_TOO_LARGE]);
        }

        return rc;
    }

    if (body.len == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: empty push body");
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_XML]);
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_event_parse(ngx_http_wechat_span(&body), &a, &ctx->ev);
    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "push");
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    signed_content = (ctx->ev.encrypt.len
                      && wlcf->mode != NGX_HTTP_WECHAT_MODE_PLAIN)
                     ? ctx->ev.encrypt : ngx_http_wechat_span(&body);

    rc = ngx_http_wechat_decrypt(r, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    status = wx_event_check_message(&ctx->ev);
    if (status != WX_OK) {
        return ngx_http_wechat_reject(r, status, "push");
    }

    rc = ngx_http_wechat_claim_here(r, ctx, signed_content);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->parsed = 1;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat callback: %*s from %*s",
                   ctx->ev.msg_type.len, ctx->ev.msg_type.data,
                   ctx->ev.from_user.len, ctx->ev.from_user.data);

    return ngx_http_wechat_dispatch(r, ctx);
}


static ngx_int_t
ngx_http_wechat_dispatch(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                     rc;
    wx_span_t                     scene;
    ngx_http_wechat_loc_conf_t   *wlcf;
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_wechat_module);

    scene = wx_scene_from_event(&ctx->ev);
    ctx->scene.data = (u_char *) scene.data;
    ctx->scene.len = scene.len;

    if (wmcf->server.name.data == NULL) {
        ngx_http_wechat_pass(r, ctx);
        return NGX_DONE;
    }

    if (wx_scene_is_ours(scene)) {
        ngx_http_wechat_resolve(r, ctx);
        return NGX_DONE;
    }

    /* a new follower who is no user yet gets wechat_reply subscribe */

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (wlcf->reply_subscribe.len && scene.len == 0
        && ctx->ev.msg_type.len == sizeof("event") - 1
        && ngx_strncmp(ctx->ev.msg_type.data, "event", 5) == 0
        && ctx->ev.event.len == sizeof("subscribe") - 1
        && ngx_strncmp(ctx->ev.event.data, "subscribe", 9) == 0)
    {
        ctx->want_user = 1;
    }

    rc = ngx_http_wechat_claim(r, ctx, ctx->want_user ? ngx_http_wechat_greet
                                                      : ngx_http_wechat_pass);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_wechat_pass(r, ctx);
    }

    return NGX_DONE;
}


/*
 * A plain subscribe, its sender looked up: a site user is passed on as any
 * push; a follower who is no user yet gets the subscribe reply, with a
 * signed {link} into the site's registration.  Without Redis's answer the
 * push is passed on: a site user is not sent to register again.
 */

static void
ngx_http_wechat_greet(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (ctx->user.len || !ctx->looked_up) {
        ngx_http_wechat_pass(r, ctx);
        return;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    ngx_http_wechat_count(pushes[NGX_HTTP_WECHAT_PUSH_ANSWERED]);

    ngx_http_finalize_request(r,
        ngx_http_wechat_code_reply(r, ctx, &wlcf->reply_subscribe,
                                   ngx_time()));
}
