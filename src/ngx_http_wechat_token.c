
/*
 * ngx_http_wechat_module: WeChat API calls that need the account's
 * access_token.  One token per account, shared by every worker and every
 * node through Redis and cached in each worker until shortly before it
 * expires.  One caller refreshes it, under a lock in Redis, while the
 * others use the old one or wait for the new one: the refresh's end is
 * published, and a waiter also looks again at growing intervals.  A
 * refresh that fails starts a back-off, kept in Redis for every node, in
 * which callers without a token are answered 503 at once and WeChat is not
 * asked.  A token WeChat refuses is dropped only if it is still the stored
 * one, and the call is made once more; so is a call WeChat was too busy
 * for.
 *
 * The account's jsapi_ticket, which the JS-SDK's pages need, lives in the
 * same store, under keys of its own kind, with the same lock, back-off and
 * waiting: its refresh is the call to getticket with the access_token, so
 * that a token WeChat refuses there is refreshed first.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_api.h"
#include "ngx_http_wechat_token.h"


#define NGX_HTTP_WECHAT_TOKEN_AHEAD   300000  /* ms before expiry: refresh */
#define NGX_HTTP_WECHAT_TOKEN_LOCK    10000   /* ms a refresh may take */
#define NGX_HTTP_WECHAT_TOKEN_WAIT    100     /* ms to the first look */
#define NGX_HTTP_WECHAT_TOKEN_HEARD   2000    /* ms to the first look, when
                                                 the end is heard of */
#define NGX_HTTP_WECHAT_TOKEN_JITTER  250     /* per mille, at most, off a
                                                 back-off */
#define NGX_HTTP_WECHAT_TOKEN_YOUNG   5000    /* ms a new token is kept even
                                                 if WeChat refuses it */
#define NGX_HTTP_WECHAT_TOKEN_KEPT    60000   /* ms a kept key's token is
                                                 cached */
#define NGX_HTTP_WECHAT_TOKEN_CACHES  16      /* accounts per worker */


/* What the store keeps, by NGX_HTTP_WECHAT_TOKEN_*. */

typedef struct {
    char                        *name;          /* for logs */
    char                        *key;           /* the key after the
                                                   account's prefix; its
                                                   lock, back-off... add
                                                   ":lock", ":backoff" */
} ngx_http_wechat_token_kind_t;


typedef struct {
    ngx_str_t                    account;       /* its key prefix */
    u_char                       token[WX_API_TOKEN_MAX];
    size_t                       len;
    ngx_msec_t                   until;         /* ngx_current_msec */
} ngx_http_wechat_token_cache_t;


static ngx_int_t ngx_http_wechat_wx_start(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_uint_t kind);
static void ngx_http_wechat_token_get(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_have(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_token_read_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_token_await(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_wake(ngx_http_wechat_waiter_t *w,
    ngx_uint_t why);
static void ngx_http_wechat_token_wait(ngx_event_t *ev);
static void ngx_http_wechat_token_look(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_refused(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, int64_t backoff_ms);
static void ngx_http_wechat_token_refresh(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_ticket_refresh(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_ticket_fetched(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_fetched(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
static void ngx_http_wechat_token_fetched_late(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
static wx_status_t ngx_http_wechat_token_parse(
    ngx_http_wechat_api_call_t *call, wx_allocator_t *a, wx_span_t *token,
    int64_t *expires_in);
static ngx_int_t ngx_http_wechat_token_store(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_http_wechat_redis_handler_pt handler,
    int64_t expires_in);
static void ngx_http_wechat_token_ignored(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_token_stored(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_token_failed(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_ticket_failed(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_token_heard(ngx_uint_t kind,
    redisReply *response);
static void ngx_http_wechat_token_backoff(ngx_uint_t kind, time_t seconds);
static ngx_str_t ngx_http_wechat_token_key(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, char *suffix);
static void ngx_http_wechat_token_drop(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_dropped(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_str_t ngx_http_wechat_token_msec(ngx_pool_t *pool);
static void ngx_http_wechat_wx_send(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_wx_answered(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
static void ngx_http_wechat_wx_end(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_uint_t result);
static ngx_http_wechat_token_cache_t *ngx_http_wechat_token_cache(
    ngx_http_wechat_ctx_t *ctx);
static void ngx_http_wechat_token_keep(ngx_http_wechat_ctx_t *ctx,
    wx_span_t token, int64_t keep);
static void ngx_http_wechat_token_use(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t token, int64_t keep);
static void ngx_http_wechat_wx_cleanup(void *data);


static ngx_http_wechat_token_kind_t
    ngx_http_wechat_token_kinds[NGX_HTTP_WECHAT_TOKEN_KINDS] = {
    { "access_token", "token" },
    { "jsapi_ticket", "jsapi_ticket" }
};


static ngx_http_wechat_token_cache_t
    ngx_http_wechat_token_caches[NGX_HTTP_WECHAT_TOKEN_KINDS]
                                [NGX_HTTP_WECHAT_TOKEN_CACHES];


/*
 * Makes ctx->wx's call with the token, then ctx->wx.done: with status 200
 * and errcode 0, or what failed.  NGX_DECLINED if Redis is away, and
 * NGX_ERROR if it could not start: then done is not called.
 */

ngx_int_t
ngx_http_wechat_wx_call(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    return ngx_http_wechat_wx_start(r, ctx, NGX_HTTP_WECHAT_TOKEN_ACCESS);
}


/*
 * Gets the account's jsapi_ticket into ctx->wx.token, then ctx->wx.done,
 * as ngx_http_wechat_wx_call; NGX_DONE when the ticket was at hand at
 * once: then done is not called.
 */

ngx_int_t
ngx_http_wechat_wx_ticket(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    return ngx_http_wechat_wx_start(r, ctx, NGX_HTTP_WECHAT_TOKEN_JSAPI);
}


static ngx_int_t
ngx_http_wechat_wx_start(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_uint_t kind)
{
    ngx_pool_cleanup_t    *cln;
    ngx_http_wechat_wx_t  *wx = &ctx->wx;

    wx->kind = kind;

    wx->lock_id.data = ngx_pnalloc(r->pool, WX_TOKEN_LEN);
    if (wx->lock_id.data == NULL
        || wx_random_hex((char *) wx->lock_id.data, WX_TOKEN_LEN / 2)
           != WX_OK)
    {
        return NGX_ERROR;
    }

    wx->lock_id.len = WX_TOKEN_LEN;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_wechat_wx_cleanup;
    cln->data = wx;

    /* not cancelable: a worker shutting down waits for the request */

    wx->wait.handler = ngx_http_wechat_token_wait;
    wx->wait.data = r;
    wx->wait.log = r->connection->log;

    wx->waiter = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_waiter_t));
    if (wx->waiter == NULL) {
        return NGX_ERROR;
    }

    wx->waiter->wake = ngx_http_wechat_token_wake;
    wx->waiter->data = r;

    ctx->api.conf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* one deadline for all of it: the token, the call, the retries */
    ctx->api.deadline = ngx_current_msec + ctx->api.conf->api_timeout;

    /* what ends at once is the caller's to answer, not done's */

    wx->starting = 1;
    ngx_http_wechat_token_get(r, ctx);
    wx->starting = 0;

    if (!wx->ended) {
        return NGX_OK;
    }

    return wx->result == NGX_HTTP_WECHAT_API_OK ? NGX_DONE
           : wx->result == NGX_HTTP_WECHAT_API_NO_TOKEN ? NGX_DECLINED
           : NGX_ERROR;
}


static void
ngx_http_wechat_token_get(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t                       rc;
    ngx_str_t                       argv[7];
    ngx_http_wechat_loc_conf_t     *wlcf;
    ngx_http_wechat_token_cache_t  *cache;

    wlcf = ctx->api.conf;
    cache = ngx_http_wechat_token_cache(ctx);

    /* a copy: the cache may hold another token by the time this one fails */

    if (cache && cache->len && ngx_current_msec < cache->until) {
        ctx->wx.token.data = ngx_pnalloc(r->pool, cache->len);
        if (ctx->wx.token.data == NULL) {
            ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
            return;
        }

        ngx_memcpy(ctx->wx.token.data, cache->token, cache->len);
        ctx->wx.token.len = cache->len;
        ngx_http_wechat_token_have(r, ctx);
        return;
    }

    if (ctx->wx.kind == NGX_HTTP_WECHAT_TOKEN_ACCESS && wlcf->token_key.len) {
        ngx_str_set(&argv[0], "GET");
        argv[1] = wlcf->token_key;

        rc = ngx_http_wechat_redis_command(r,
                 ngx_http_wechat_token_read_done, NGX_HTTP_WECHAT_NO_SCRIPT,
                 2, argv);

    } else {
        ngx_str_set(&argv[0], "3");
        argv[1] = ngx_http_wechat_token_key(r, ctx, "");
        argv[2] = ngx_http_wechat_token_key(r, ctx, ":lock");
        argv[3] = ngx_http_wechat_token_key(r, ctx, ":backoff");
        argv[4] = ngx_http_wechat_number(r->pool,
                                         NGX_HTTP_WECHAT_TOKEN_AHEAD);
        argv[5] = ctx->wx.lock_id;
        argv[6] = ngx_http_wechat_number(r->pool,
                                         NGX_HTTP_WECHAT_TOKEN_LOCK);

        rc = (argv[1].data && argv[2].data && argv[3].data && argv[4].data
              && argv[6].data)
             ? ngx_http_wechat_redis_command(r, ngx_http_wechat_token_done,
                                             NGX_HTTP_WECHAT_SCRIPT_TOKEN, 7,
                                             argv)
             : NGX_ERROR;

        ctx->wx.reading = (rc == NGX_OK);
    }

    if (rc != NGX_OK) {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_NO_TOKEN);
    }
}


/* What ctx->wx.token is for: the call, or the caller that asked for it. */

static void
ngx_http_wechat_token_have(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    if (ctx->wx.kind == NGX_HTTP_WECHAT_TOKEN_JSAPI) {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_OK);
        return;
    }

    ngx_http_wechat_wx_send(r, ctx);
}


static void
ngx_http_wechat_token_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_allocator_t           a;
    wx_token_state_t         state;
    ngx_http_wechat_ctx_t   *ctx;

    ctx = ngx_http_wechat_get_ctx(r);
    ctx->wx.reading = 0;

    ngx_http_wechat_allocator(r->pool, &a);

    if (response == NULL || wx_redis_token(response, &a, &state) != WX_OK) {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_NO_TOKEN);
        return;
    }

    if (state.issued_ms && ngx_http_wechat_metrics) {
        ngx_http_wechat_metrics->token_issued[ctx->wx.kind] =
                                                     state.issued_ms / 1000;
    }

    if (state.locked) {
        ngx_http_wechat_token_refresh(r, ctx);
        return;
    }

    if (state.token.len && state.ttl_ms > NGX_HTTP_WECHAT_TOKEN_AHEAD) {
        ngx_http_wechat_token_use(r, ctx, state.token,
                                  state.ttl_ms - NGX_HTTP_WECHAT_TOKEN_AHEAD);
        return;
    }

    /* someone else refreshes it: the old one still serves, or we wait */

    if (state.token.len && state.ttl_ms > 0) {
        ngx_http_wechat_token_use(r, ctx, state.token, 0);
        return;
    }

    if (state.backoff_ms) {
        ngx_http_wechat_token_refused(r, ctx, state.backoff_ms);
        return;
    }

    ngx_http_wechat_token_await(r, ctx);
}


/*
 * Another caller refreshes the token: this one waits for the refresh's end
 * on the account's channel, and looks again at growing intervals, for a
 * refresher that died says nothing; without a pub/sub connection the
 * intervals start short.  Subscribed only now, it looks once more at
 * once: the end may have come before.
 */

static void
ngx_http_wechat_token_await(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_msec_t             left;
    ngx_str_t              channel;
    ngx_http_wechat_wx_t  *wx = &ctx->wx;

    left = ctx->api.deadline - ngx_current_msec;

    if ((ngx_msec_int_t) left <= 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat api: no access_token within %Mms",
                      ctx->api.conf->api_timeout);
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_NO_TOKEN);
        return;
    }

    /* woken while it looked: the end may have come after that look */

    if (wx->again) {
        wx->again = 0;
        ngx_http_wechat_token_get(r, ctx);
        return;
    }

    if (wx->waiter->channel == NULL) {
        channel = ngx_http_wechat_token_key(r, ctx, ":refreshed");

        rc = channel.data ? ngx_http_wechat_pubsub_wait(wx->waiter, &channel)
                          : NGX_ERROR;

        if (rc == NGX_OK) {
            wx->subscribed = 1;
            ngx_http_wechat_token_get(r, ctx);
            return;
        }

        /* subscribing: READY follows, and a look then */
        wx->subscribed = (rc == NGX_AGAIN);
    }

    if (wx->interval == 0) {
        wx->interval = wx->subscribed ? NGX_HTTP_WECHAT_TOKEN_HEARD
                                      : NGX_HTTP_WECHAT_TOKEN_WAIT;

    } else {
        wx->interval *= 2;
    }

    ngx_add_timer(&wx->wait, ngx_min(wx->interval, left));
}


/* The pub/sub store's call: a refresh ended, or the channel is ready. */

static void
ngx_http_wechat_token_wake(ngx_http_wechat_waiter_t *w, ngx_uint_t why)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r = w->data;
    ngx_http_wechat_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_wechat_get_ctx(r);

    switch (why) {

    case NGX_HTTP_WECHAT_WAKE_CHANGED:
        ngx_http_wechat_count(token_wakeups[ctx->wx.kind][0]);
        ngx_http_wechat_pubsub_leave(w);
        ctx->wx.subscribed = 0;
        break;

    case NGX_HTTP_WECHAT_WAKE_READY:
        ctx->wx.subscribed = 1;
        break;

    default:
        /* the intervals go on; a reconnect says READY */
        ctx->wx.subscribed = 0;
        return;
    }

    ngx_http_wechat_token_look(r, ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_wechat_token_wait(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r = ev->data;
    ngx_http_wechat_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_wechat_get_ctx(r);

    ngx_http_wechat_count(token_wakeups[ctx->wx.kind][1]);
    ngx_http_wechat_token_look(r, ctx);

    ngx_http_run_posted_requests(c);
}


/*
 * A waiter looks at the token again; while a look is under way, once that
 * one is answered, for one request makes one call.
 */

static void
ngx_http_wechat_token_look(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    if (ctx->wx.wait.timer_set) {
        ngx_del_timer(&ctx->wx.wait);
    }

    if (ctx->wx.reading) {
        ctx->wx.again = 1;
        return;
    }

    ngx_http_wechat_token_get(r, ctx);
}


/* A refresh failed a moment ago: no call to WeChat until it is over. */

static void
ngx_http_wechat_token_refused(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, int64_t backoff_ms)
{
    ctx->wx.retry_after = (time_t) ((backoff_ms + 999) / 1000);

    ngx_http_wechat_count(token_refusals[ctx->wx.kind]);
    ngx_http_wechat_token_backoff(ctx->wx.kind, ctx->wx.retry_after);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "wechat api: %s refresh backs off for %Lms",
                  ngx_http_wechat_token_kinds[ctx->wx.kind].name,
                  backoff_ms);

    ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_BACKOFF);
}


/* The metrics' view of the back-off: when it ends, as last heard. */

static void
ngx_http_wechat_token_backoff(ngx_uint_t kind, time_t seconds)
{
    if (ngx_http_wechat_metrics) {
        ngx_http_wechat_metrics->token_backoff_until[kind] =
                                                       ngx_time() + seconds;
    }
}


/*
 * A key of what ctx->wx gets: suffix "" for the value itself, ":lock",
 * ":backoff", ":failures", and ":refreshed", the channel where the end of
 * a refresh, good or failed, is published.
 */

static ngx_str_t
ngx_http_wechat_token_key(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    char *suffix)
{
    ngx_str_t  tail;

    tail.data = (u_char *) suffix;
    tail.len = ngx_strlen(suffix);

    return ngx_http_wechat_key(r, ctx->api.conf,
                               ngx_http_wechat_token_kinds[ctx->wx.kind].key,
                               &tail);
}


/* A token another service keeps in wechat_access_token_key. */

static void
ngx_http_wechat_token_read_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_span_t               token;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ngx_http_wechat_allocator(r->pool, &a);

    if (response == NULL
        || wx_redis_string(response, &a, &token) != WX_OK
        || token.len == 0 || token.len > WX_API_TOKEN_MAX)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat api: no access_token in \"%V\"",
                      &ctx->api.conf->token_key);
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_NO_TOKEN);
        return;
    }

    ngx_http_wechat_token_use(r, ctx, token, NGX_HTTP_WECHAT_TOKEN_KEPT);
}


/* This caller holds the lock: a new token from WeChat. */

static void
ngx_http_wechat_token_refresh(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    u_char                      *p;
    wx_span_t                    body;
    wx_allocator_t               a;
    ngx_http_wechat_loc_conf_t  *wlcf;
    ngx_http_wechat_api_call_t  *call = &ctx->api;

    if (ctx->wx.kind == NGX_HTTP_WECHAT_TOKEN_JSAPI) {
        ngx_http_wechat_ticket_refresh(r, ctx);
        return;
    }

    wlcf = call->conf;
    call->handler = ngx_http_wechat_token_fetched;
    call->late = ngx_http_wechat_token_fetched_late;

    if (wlcf->token_api == NGX_HTTP_WECHAT_TOKEN_CLASSIC) {
        ngx_str_set(&call->path, "/cgi-bin/token");
        ngx_str_null(&call->body);

        call->args.len = sizeof("grant_type=client_credential&appid=&secret=")
                         - 1 + wlcf->appid.len + wlcf->secret.len;
        call->args.data = ngx_pnalloc(r->pool, call->args.len);
        if (call->args.data == NULL) {
            ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
            return;
        }

        p = ngx_sprintf(call->args.data,
                        "grant_type=client_credential&appid=%V&secret=%V",
                        &wlcf->appid, &wlcf->secret);
        call->args.len = p - call->args.data;

    } else {
        ngx_str_set(&call->path, "/cgi-bin/stable_token");
        ngx_str_null(&call->args);
        ngx_http_wechat_allocator(r->pool, &a);

        if (wx_api_stable_token_request(ngx_http_wechat_span(&wlcf->appid),
                                        ngx_http_wechat_span(&wlcf->secret),
                                        0, &a, &body)
            != WX_OK)
        {
            ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
            return;
        }

        call->body.data = (u_char *) body.data;
        call->body.len = body.len;
    }

    if (ngx_http_wechat_api_call(r, call) != NGX_OK) {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
    }
}


static void
ngx_http_wechat_token_fetched(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    int64_t                  expires_in;
    wx_span_t                token, answer, errmsg;
    ngx_uint_t               result;
    wx_status_t              status;
    wx_allocator_t           a;
    ngx_http_wechat_ctx_t   *ctx;

    ctx = ngx_http_wechat_get_ctx(r);
    call->late = NULL;

    ngx_http_wechat_allocator(r->pool, &a);

    answer = ngx_http_wechat_span(&call->answer);
    status = ngx_http_wechat_token_parse(call, &a, &token, &expires_in);

    result = (status == WX_OK) ? NGX_HTTP_WECHAT_API_OK
             : (status == WX_ERR_API) ? NGX_HTTP_WECHAT_API_ERRCODE
             : NGX_HTTP_WECHAT_API_FAILED;

    ngx_http_wechat_count(api_calls[NGX_HTTP_WECHAT_API_TOKEN][result]);
    ngx_http_wechat_count(token_refreshes[NGX_HTTP_WECHAT_TOKEN_ACCESS]
                                         [status == WX_OK ? 0 : 1]);

    if (status != WX_OK) {
        ctx->wx.status = call->status;

        if (call->too_big) {
            ngx_str_set(&ctx->wx.errmsg, "answer too big");
        }

        if (result == NGX_HTTP_WECHAT_API_ERRCODE
            && wx_api_error(answer, &a, &ctx->wx.errcode, &errmsg) == WX_OK)
        {
            ctx->wx.errmsg.data = (u_char *) errmsg.data;
            ctx->wx.errmsg.len = errmsg.len;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat api: access_token refresh failed: "
                      "HTTP %ui, errcode %L", call->status, ctx->wx.errcode);

        ngx_http_wechat_count(token_failures[NGX_HTTP_WECHAT_TOKEN_ACCESS]);

        /* an answer that is late may still bring the token: it stores it */

        if (call->status == 0) {
            call->late = ngx_http_wechat_token_fetched_late;

        } else {
            (void) ngx_http_wechat_token_store(r, ctx,
                                               ngx_http_wechat_token_failed,
                                               0);
        }

        ngx_http_wechat_wx_end(r, ctx, result);
        return;
    }

    ctx->wx.token.data = (u_char *) token.data;
    ctx->wx.token.len = token.len;

    /* the token works even if no one else gets it from Redis */

    if (ngx_http_wechat_token_store(r, ctx, ngx_http_wechat_token_stored,
                                    expires_in)
        != NGX_OK)
    {
        ngx_http_wechat_wx_send(r, ctx);
    }
}


/*
 * The token refresh answered after the deadline, and the page had its
 * answer: the token is stored all the same, for it may well have made the
 * one before it invalid; or the lock is let go.
 */

static void
ngx_http_wechat_token_fetched_late(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    int64_t                 expires_in;
    wx_span_t               token;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ngx_http_wechat_allocator(r->pool, &a);

    if (ngx_http_wechat_token_parse(call, &a, &token, &expires_in) != WX_OK) {
        (void) ngx_http_wechat_token_store(r, ctx,
                                           ngx_http_wechat_token_failed, 0);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "wechat api: access_token came after the deadline, "
                  "stored");

    ctx->wx.token.data = (u_char *) token.data;
    ctx->wx.token.len = token.len;

    (void) ngx_http_wechat_token_store(r, ctx, NULL, expires_in);
}


static wx_status_t
ngx_http_wechat_token_parse(ngx_http_wechat_api_call_t *call,
    wx_allocator_t *a, wx_span_t *token, int64_t *expires_in)
{
    if (call->status != NGX_HTTP_OK) {
        return WX_ERR_REPLY;
    }

    return wx_api_token(ngx_http_wechat_span(&call->answer), a, token,
                        expires_in);
}


/*
 * This caller holds the jsapi_ticket's lock: a call to getticket with the
 * access_token, whose end comes to ngx_http_wechat_ticket_fetched.  A
 * token WeChat refuses there is refreshed and the call made once more, as
 * for any call.
 */

static void
ngx_http_wechat_ticket_refresh(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    ngx_http_wechat_wx_t  *wx = &ctx->wx;

    ngx_http_wechat_pubsub_leave(wx->waiter);

    wx->subscribed = 0;
    wx->again = 0;
    wx->interval = 0;

    wx->kind = NGX_HTTP_WECHAT_TOKEN_ACCESS;
    wx->fetching = 1;
    wx->endpoint = NGX_HTTP_WECHAT_API_TICKET;
    ngx_str_set(&wx->path, "/cgi-bin/ticket/getticket");
    ngx_str_set(&wx->args, "type=jsapi");
    ngx_str_null(&wx->body);

    ngx_http_wechat_token_get(r, ctx);
}


/*
 * getticket's end: the ticket is stored, and lets go of the lock; or the
 * refresh failed, whether at the token or at the ticket, and the lock is
 * let go with a back-off.  A getticket that answers late is not waited
 * for: the lock is let go at once, and a ticket it brings is lost.
 */

static void
ngx_http_wechat_ticket_fetched(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx)
{
    int64_t                expires_in;
    wx_span_t              ticket;
    wx_allocator_t         a;
    ngx_http_wechat_wx_t  *wx = &ctx->wx;

    wx->fetching = 0;
    wx->kind = NGX_HTTP_WECHAT_TOKEN_JSAPI;

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx->result == NGX_HTTP_WECHAT_API_OK
        && wx_api_jsapi_ticket(ngx_http_wechat_span(&wx->answer), &a,
                               &ticket, &expires_in)
           == WX_OK)
    {
        ngx_http_wechat_count(token_refreshes[NGX_HTTP_WECHAT_TOKEN_JSAPI]
                                             [0]);

        wx->token.data = (u_char *) ticket.data;
        wx->token.len = ticket.len;

        if (ngx_http_wechat_token_store(r, ctx, ngx_http_wechat_token_stored,
                                        expires_in)
            != NGX_OK)
        {
            ngx_http_wechat_token_have(r, ctx);
        }

        return;
    }

    ngx_http_wechat_count(token_refreshes[NGX_HTTP_WECHAT_TOKEN_JSAPI][1]);
    ngx_http_wechat_count(token_failures[NGX_HTTP_WECHAT_TOKEN_JSAPI]);

    if (wx->result == NGX_HTTP_WECHAT_API_OK) {
        wx->result = NGX_HTTP_WECHAT_API_FAILED;
    }

    /* Redis away, or the token's back-off: said where it was seen */

    if (wx->result == NGX_HTTP_WECHAT_API_ERRCODE
        || wx->result == NGX_HTTP_WECHAT_API_FAILED)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat api: jsapi_ticket refresh failed: "
                      "HTTP %ui, errcode %L", wx->status, wx->errcode);
    }

    (void) ngx_http_wechat_token_store(r, ctx, ngx_http_wechat_ticket_failed,
                                       0);

    ngx_http_wechat_wx_end(r, ctx, wx->result);
}


/*
 * Stores the new token ctx->wx.token, which lives expires_in seconds, and
 * lets go of the lock; with no expires_in, the refresh failed: lets go of
 * the lock and starts a back-off.  handler, if any, goes on when Redis has
 * answered.
 */

static ngx_int_t
ngx_http_wechat_token_store(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_http_wechat_redis_handler_pt handler, int64_t expires_in)
{
    ngx_str_t  argv[10];

    if (handler == NULL) {
        handler = ngx_http_wechat_token_ignored;
    }

    if (expires_in == 0) {
        ngx_str_set(&argv[0], "3");
        argv[1] = ngx_http_wechat_token_key(r, ctx, ":lock");
        argv[2] = ngx_http_wechat_token_key(r, ctx, ":backoff");
        argv[3] = ngx_http_wechat_token_key(r, ctx, ":failures");
        argv[4] = ctx->wx.lock_id;
        argv[5] = ngx_http_wechat_number(r->pool,
                      ngx_random() % NGX_HTTP_WECHAT_TOKEN_JITTER);
        argv[6] = ngx_http_wechat_token_key(r, ctx, ":refreshed");

        return (argv[1].data && argv[2].data && argv[3].data && argv[5].data
                && argv[6].data)
               ? ngx_http_wechat_redis_command(r, handler,
                     NGX_HTTP_WECHAT_SCRIPT_TOKEN_FAIL, 7, argv)
               : NGX_ERROR;
    }

    if (ngx_http_wechat_metrics) {
        ngx_http_wechat_metrics->token_issued[ctx->wx.kind] = ngx_time();
    }

    ngx_http_wechat_token_keep(ctx, ngx_http_wechat_span(&ctx->wx.token),
                               expires_in * 1000
                               - NGX_HTTP_WECHAT_TOKEN_AHEAD);

    ngx_str_set(&argv[0], "4");
    argv[1] = ngx_http_wechat_token_key(r, ctx, "");
    argv[2] = ngx_http_wechat_token_key(r, ctx, ":lock");
    argv[3] = ngx_http_wechat_token_key(r, ctx, ":backoff");
    argv[4] = ngx_http_wechat_token_key(r, ctx, ":failures");
    argv[5] = ctx->wx.token;
    argv[6] = ngx_http_wechat_number(r->pool, expires_in * 1000);
    argv[7] = ngx_http_wechat_token_msec(r->pool);
    argv[8] = ctx->wx.lock_id;
    argv[9] = ngx_http_wechat_token_key(r, ctx, ":refreshed");

    if (argv[1].data == NULL || argv[2].data == NULL || argv[3].data == NULL
        || argv[4].data == NULL || argv[6].data == NULL
        || argv[7].data == NULL || argv[9].data == NULL)
    {
        return NGX_ERROR;
    }

    if (ngx_http_wechat_metrics) {
        ngx_http_wechat_metrics->token_backoff_until[ctx->wx.kind] = 0;
        ngx_http_wechat_metrics->token_failures[ctx->wx.kind] = 0;
    }

    return ngx_http_wechat_redis_command(r, handler,
                                         NGX_HTTP_WECHAT_SCRIPT_TOKEN_SET, 10,
                                         argv);
}


static void
ngx_http_wechat_token_ignored(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
}


static void
ngx_http_wechat_token_stored(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_token_have(r, ngx_http_wechat_get_ctx(r));
}


static void
ngx_http_wechat_token_failed(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_token_heard(NGX_HTTP_WECHAT_TOKEN_ACCESS, response);
}


static void
ngx_http_wechat_ticket_failed(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_token_heard(NGX_HTTP_WECHAT_TOKEN_JSAPI, response);
}


/* TOKEN_FAIL's answer: the back-off it started (ms). */

static void
ngx_http_wechat_token_heard(ngx_uint_t kind, redisReply *response)
{
    if (response && response->type == REDIS_REPLY_INTEGER
        && response->integer > 0)
    {
        ngx_http_wechat_token_backoff(kind, (time_t) ((response->integer
                                                       + 999) / 1000));
    }
}


/*
 * WeChat refused the token: drop it from Redis if it is still the one
 * stored, and from this worker, then get a token again.
 */

static void
ngx_http_wechat_token_drop(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                       argv[5];
    ngx_http_wechat_token_cache_t  *cache;

    cache = ngx_http_wechat_token_cache(ctx);

    if (cache && cache->len == ctx->wx.token.len
        && ngx_memcmp(cache->token, ctx->wx.token.data, cache->len) == 0)
    {
        cache->len = 0;
    }

    if (ctx->api.conf->token_key.len) {
        ngx_http_wechat_token_get(r, ctx);
        return;
    }

    ngx_str_set(&argv[0], "1");
    argv[1] = ngx_http_wechat_token_key(r, ctx, "");
    argv[2] = ctx->wx.token;
    argv[3] = ngx_http_wechat_token_msec(r->pool);
    argv[4] = ngx_http_wechat_number(r->pool, NGX_HTTP_WECHAT_TOKEN_YOUNG);

    if (argv[1].data == NULL || argv[3].data == NULL || argv[4].data == NULL
        || ngx_http_wechat_redis_command(r, ngx_http_wechat_token_dropped,
                                         NGX_HTTP_WECHAT_SCRIPT_TOKEN_DROP, 5,
                                         argv)
           != NGX_OK)
    {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_NO_TOKEN);
    }
}


static void
ngx_http_wechat_token_dropped(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_token_get(r, ngx_http_wechat_get_ctx(r));
}


/*
 * Now, in ms, as a token's "issued" and TOKEN_DROP's "now": in whole
 * seconds both, a token young for 5 s would be kept for up to 6.
 */

static ngx_str_t
ngx_http_wechat_token_msec(ngx_pool_t *pool)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return ngx_http_wechat_number(pool, (int64_t) tp->sec * 1000 + tp->msec);
}


/* The call itself, with the token in front of its arguments. */

static void
ngx_http_wechat_wx_send(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    u_char                      *p;
    wx_span_t                    token;
    wx_allocator_t               a;
    ngx_http_wechat_wx_t        *wx = &ctx->wx;
    ngx_http_wechat_api_call_t  *call = &ctx->api;

    ngx_http_wechat_pubsub_leave(wx->waiter);

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_url_encode(ngx_http_wechat_span(&wx->token), &a, &token)
        != WX_OK)
    {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
        return;
    }

    call->args.len = sizeof("access_token=&") - 1 + token.len + wx->args.len;
    call->args.data = ngx_pnalloc(r->pool, call->args.len);
    if (call->args.data == NULL) {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
        return;
    }

    p = ngx_cpymem(call->args.data, "access_token=", 13);
    p = ngx_cpymem(p, token.data, token.len);

    if (wx->args.len) {
        *p++ = '&';
        p = ngx_cpymem(p, wx->args.data, wx->args.len);
    }

    call->args.len = p - call->args.data;
    call->path = wx->path;
    call->body = wx->body;
    call->handler = ngx_http_wechat_wx_answered;

    if (ngx_http_wechat_api_call(r, call) != NGX_OK) {
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
    }
}


static void
ngx_http_wechat_wx_answered(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    wx_span_t               errmsg;
    wx_status_t             status;
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;
    ngx_http_wechat_wx_t   *wx;

    ctx = ngx_http_wechat_get_ctx(r);
    wx = &ctx->wx;

    wx->status = call->status;
    wx->answer = call->answer;
    wx->errcode = 0;
    ngx_str_null(&wx->errmsg);

    ngx_http_wechat_allocator(r->pool, &a);

    if (call->status != NGX_HTTP_OK) {
        if (call->too_big) {
            ngx_str_set(&wx->errmsg, "answer too big");
        }

        ngx_http_wechat_count(api_calls[wx->endpoint]
                                       [NGX_HTTP_WECHAT_API_FAILED]);
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
        return;
    }

    /* WeChat answers JSON; one too large for an errcode object is data */

    status = wx_api_error(ngx_http_wechat_span(&call->answer), &a,
                          &wx->errcode, &errmsg);

    if (status == WX_ERR_TOO_LARGE) {
        wx->errcode = 0;
        ngx_str_null(&errmsg);

    } else if (status != WX_OK) {
        ngx_http_wechat_count(api_calls[wx->endpoint]
                                       [NGX_HTTP_WECHAT_API_FAILED]);
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_FAILED);
        return;
    }

    wx->errmsg.data = (u_char *) errmsg.data;
    wx->errmsg.len = errmsg.len;

    if (wx->errcode == 0) {
        ngx_http_wechat_count(api_calls[wx->endpoint]
                                       [NGX_HTTP_WECHAT_API_OK]);
        ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_OK);
        return;
    }

    ngx_http_wechat_count(api_calls[wx->endpoint]
                                   [NGX_HTTP_WECHAT_API_ERRCODE]);

    if ((wx->errcode == 40001 || wx->errcode == 40014
         || wx->errcode == 42001)
        && !wx->token_retried)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat api: %V: access_token refused (%L), "
                      "refreshing", &wx->path, wx->errcode);
        wx->token_retried = 1;
        ngx_http_wechat_token_drop(r, ctx);
        return;
    }

    if (wx->errcode == -1 && !wx->busy_retried) {
        wx->busy_retried = 1;
        ngx_http_wechat_wx_send(r, ctx);
        return;
    }

    ngx_http_wechat_wx_end(r, ctx, NGX_HTTP_WECHAT_API_ERRCODE);
}


static void
ngx_http_wechat_wx_end(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_uint_t result)
{
    ctx->wx.result = result;

    ngx_http_wechat_pubsub_leave(ctx->wx.waiter);

    if (ctx->wx.fetching) {
        ngx_http_wechat_ticket_fetched(r, ctx);
        return;
    }

    if (ctx->wx.starting) {
        ctx->wx.ended = 1;
        return;
    }

    ctx->wx.done(r, ctx);
}


/*
 * The page's answer when a call failed: 503 without Redis, 503 with
 * retry_after in a back-off, 504 without an answer in time, 502 with
 * WeChat's errcode and errmsg otherwise.
 */

ngx_int_t
ngx_http_wechat_wx_failed(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx)
{
    ngx_http_wechat_wx_t  *wx = &ctx->wx;

    static wx_json_field_t  timeout[] = {
        { "error", WX_JSON_STRING, { (const unsigned char *) "timeout", 7 },
          0 }
    };

    if (wx->result == NGX_HTTP_WECHAT_API_NO_TOKEN && wx->errcode == 0) {
        return ngx_http_wechat_send_unavailable(r);
    }

    if (wx->result == NGX_HTTP_WECHAT_API_BACKOFF) {
        return ngx_http_wechat_send_retry(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "wechat", wx->retry_after);
    }

    if (wx->result == NGX_HTTP_WECHAT_API_FAILED && wx->status == 0) {
        return ngx_http_wechat_send_json(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                         timeout, 1);
    }

    if (wx->errcode == 0) {
        wx->errcode = -1;

        if (wx->errmsg.len == 0) {
            ngx_str_set(&wx->errmsg, "unexpected answer");
        }
    }

    wx_json_field_t  answer[] = {
        { "error", WX_JSON_STRING, { (const unsigned char *) "wechat", 6 },
          0 },
        { "errcode", WX_JSON_INTEGER, { NULL, 0 }, wx->errcode },
        ngx_http_wechat_json_str("errmsg", &wx->errmsg)
    };

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "wechat api: %V failed: errcode %L", &wx->path,
                  wx->errcode);

    return ngx_http_wechat_send_json(r, NGX_HTTP_BAD_GATEWAY, answer, 3);
}


/*
 * This worker's copy of an account's token: the account is its key prefix,
 * or the key another service keeps the token in.
 */

static ngx_http_wechat_token_cache_t *
ngx_http_wechat_token_cache(ngx_http_wechat_ctx_t *ctx)
{
    ngx_str_t                      *account;
    ngx_uint_t                      i;
    ngx_http_wechat_loc_conf_t     *wlcf;
    ngx_http_wechat_token_cache_t  *c;

    wlcf = ctx->api.conf;
    account = (ctx->wx.kind == NGX_HTTP_WECHAT_TOKEN_ACCESS
               && wlcf->token_key.len)
              ? &wlcf->token_key : &wlcf->key_prefix;

    for (i = 0; i < NGX_HTTP_WECHAT_TOKEN_CACHES; i++) {
        c = &ngx_http_wechat_token_caches[ctx->wx.kind][i];

        if (c->account.data == NULL) {
            c->account = *account;
            return c;
        }

        if (c->account.len == account->len
            && ngx_strncmp(c->account.data, account->data, account->len) == 0)
        {
            return c;
        }
    }

    return NULL;
}


static void
ngx_http_wechat_token_keep(ngx_http_wechat_ctx_t *ctx, wx_span_t token,
    int64_t keep)
{
    ngx_http_wechat_token_cache_t  *cache;

    cache = ngx_http_wechat_token_cache(ctx);

    if (cache && keep > 0 && token.len <= WX_API_TOKEN_MAX) {
        ngx_memcpy(cache->token, token.data, token.len);
        cache->len = token.len;
        cache->until = ngx_current_msec + (ngx_msec_t) keep;
    }
}


static void
ngx_http_wechat_token_use(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    wx_span_t token, int64_t keep)
{
    ctx->wx.token.data = (u_char *) token.data;
    ctx->wx.token.len = token.len;

    ngx_http_wechat_token_keep(ctx, token, keep);

    ngx_http_wechat_token_have(r, ctx);
}


static void
ngx_http_wechat_wx_cleanup(void *data)
{
    ngx_http_wechat_wx_t  *wx = data;

    if (wx->wait.timer_set) {
        ngx_del_timer(&wx->wait);
    }

    if (wx->waiter) {
        ngx_http_wechat_pubsub_leave(wx->waiter);
    }
}
