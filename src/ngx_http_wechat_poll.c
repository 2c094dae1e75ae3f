
/*
 * ngx_http_wechat_module: wechat_poll, the browser's question about its
 * scene, answered from Redis by any node.  A poll on a pending scene waits,
 * up to wechat_poll_timeout, on the scene's pub/sub channel, and reads the
 * state after it is subscribed, so that no resolution slips between the
 * read and the wait.  Accept: text/event-stream gets the answers as
 * server-sent events.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_handlers.h"


#define NGX_HTTP_WECHAT_POLL_RETRY  100     /* ms between failed reads */


struct ngx_http_wechat_poll_s {
    ngx_http_request_t         *request;
    ngx_http_wechat_waiter_t    waiter;
    ngx_event_t                 timer;      /* timeout, retry, heartbeat */
    ngx_msec_t                  deadline;
    ngx_msec_t                  heartbeat;  /* the next one */
    ngx_msec_t                  interval;   /* between heartbeats, or 0 */
    ngx_str_t                   key;        /* the scene's hash */
    ngx_uint_t                  seen;       /* the status the page knows:
                                               pending, or one that waits
                                               for the user's say */

    unsigned                    sse:1;
    unsigned                    started:1;  /* the event stream's header */
    unsigned                    read:1;     /* the state was read once */
    unsigned                    reading:1;  /* a read is in flight */
    unsigned                    again:1;    /* woken while reading */
    unsigned                    retry:1;    /* read when the timer fires */
    unsigned                    waiting:1;  /* counted in polls_waiting */
};


static ngx_int_t ngx_http_wechat_poll_command(ngx_http_request_t *r,
    ngx_str_t *key, ngx_http_wechat_redis_handler_pt handler);
static ngx_int_t ngx_http_wechat_poll_parse(ngx_http_request_t *r,
    redisReply *response, wx_scene_status_t *status, wx_span_t *json);
static ngx_int_t ngx_http_wechat_poll_short(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *key);
static void ngx_http_wechat_poll_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_poll_cleanup(void *data);
static ngx_int_t ngx_http_wechat_poll_long(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_http_wechat_loc_conf_t *wlcf,
    ngx_str_t *key, ngx_uint_t seen);
static ngx_uint_t ngx_http_wechat_poll_seen(ngx_str_t *name);
static ngx_uint_t ngx_http_wechat_poll_waits(ngx_uint_t status);
static void ngx_http_wechat_poll_unchanged(ngx_http_wechat_poll_t *p);
static ngx_uint_t ngx_http_wechat_poll_accepts_sse(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_poll_read(ngx_http_wechat_poll_t *p);
static void ngx_http_wechat_poll_answered(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static ngx_int_t ngx_http_wechat_poll_failed(ngx_http_wechat_poll_t *p);
static void ngx_http_wechat_poll_wake(ngx_http_wechat_waiter_t *w,
    ngx_uint_t why);
static void ngx_http_wechat_poll_timer(ngx_event_t *ev);
static void ngx_http_wechat_poll_arm(ngx_http_wechat_poll_t *p);
static void ngx_http_wechat_poll_finish(ngx_http_wechat_poll_t *p,
    ngx_uint_t status, wx_span_t *json);
static void ngx_http_wechat_poll_stop(void *data);
static ngx_int_t ngx_http_wechat_poll_event(ngx_http_wechat_poll_t *p,
    wx_span_t *json, ngx_uint_t last);
static ngx_int_t ngx_http_wechat_poll_stream(ngx_http_wechat_poll_t *p,
    u_char *data, size_t len, ngx_uint_t last);


static u_char  ngx_http_wechat_pending[] = "{\"status\":\"pending\"}";


ngx_int_t
ngx_http_wechat_poll_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    key, args[4];
    ngx_http_wechat_ctx_t       *ctx;
    ngx_http_wechat_loc_conf_t  *wlcf;

    /* "token" is the poll token's name of one release ago */
    static const char  *names[] = { "scene", "poll_token", "seen", "token" };

    static wx_json_field_t  expired[] = {
        { "status", WX_JSON_STRING,
          { (const unsigned char *) "expired", 7 }, 0 }
    };

    /* the page of a scanned bind scene sends the scanner's code */

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_wechat_bind_confirm_handler(r);
    }

    rc = ngx_http_wechat_begin(r, NGX_HTTP_GET|NGX_HTTP_HEAD, &ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_wechat_args(r, names, 4, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (args[1].data == NULL) {
        args[1] = args[3];
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    /* the token from the query, else from wechat_qrcode's cookie */

    if (args[1].data == NULL) {
        (void) ngx_http_wechat_cookie(r, &wlcf->poll_cookie, &args[1]);
    }

    if (args[0].data == NULL || args[1].data == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat poll: no \"scene\" or \"token\"");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->scene = args[0];
    ctx->poll_token = args[1];

    if (!wx_scene_is_ours(ngx_http_wechat_span(&ctx->scene))) {
        ngx_http_wechat_count(polls[WX_SCENE_EXPIRED]);
        return ngx_http_wechat_send_json(r, NGX_HTTP_OK, expired, 1);
    }

    key = ngx_http_wechat_key(r, wlcf, "scene:", &ctx->scene);
    if (key.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a worker that shuts down answers at once */

    if (wlcf->poll_timeout == 0 || r->method != NGX_HTTP_GET || ngx_exiting)
    {
        return ngx_http_wechat_poll_short(r, ctx, &key);
    }

    return ngx_http_wechat_poll_long(r, ctx, wlcf, &key,
                                     ngx_http_wechat_poll_seen(&args[2]));
}


/*
 * seen=: a status that waits for the user's say (scanned, confirming),
 * which the page shows already: a long poll waits while it lasts, as
 * while the scene is pending.  Anything else counts as pending.
 */

static ngx_uint_t
ngx_http_wechat_poll_seen(ngx_str_t *name)
{
    ngx_uint_t  i;
    const char *status;

    for (i = 0; i < WX_SCENE_STATUSES; i++) {
        status = wx_scene_status_name(i);

        if (ngx_http_wechat_poll_waits(i)
            && name->len == ngx_strlen(status)
            && ngx_strncmp(name->data, status, name->len) == 0)
        {
            return i;
        }
    }

    return WX_SCENE_PENDING;
}


static ngx_uint_t
ngx_http_wechat_poll_waits(ngx_uint_t status)
{
    return status == WX_SCENE_SCANNED || status == WX_SCENE_CONFIRMING;
}


static ngx_int_t
ngx_http_wechat_poll_command(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_wechat_redis_handler_pt handler)
{
    ngx_str_t  argv[5];

    ngx_str_set(&argv[0], "HMGET");
    argv[1] = *key;
    ngx_str_set(&argv[2], "status");
    ngx_str_set(&argv[3], "openid");
    ngx_str_set(&argv[4], "token");

    return ngx_http_wechat_redis_command(r, handler,
                                         NGX_HTTP_WECHAT_NO_SCRIPT, 5, argv);
}


/* The scene's status and the JSON answer, from the HMGET's reply. */

static ngx_int_t
ngx_http_wechat_poll_parse(ngx_http_request_t *r, redisReply *response,
    wx_scene_status_t *status, wx_span_t *json)
{
    wx_allocator_t          a;
    ngx_http_wechat_ctx_t  *ctx;

    if (response == NULL) {
        return NGX_ERROR;
    }

    ctx = ngx_http_wechat_get_ctx(r);
    ngx_http_wechat_allocator(r->pool, &a);

    return wx_redis_poll_answer(response, ngx_http_wechat_span(&ctx->scene),
                                ngx_http_wechat_span(&ctx->poll_token),
                                &a, status, json)
           == WX_OK ? NGX_OK : NGX_ERROR;
}


/* wechat_poll_timeout 0: the state as it is now */

static ngx_int_t
ngx_http_wechat_poll_short(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_str_t *key)
{
    ngx_int_t            rc;
    ngx_pool_cleanup_t  *cln;

    /* the gauge of waiting polls must not keep a client that went away */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_wechat_poll_command(r, key, ngx_http_wechat_poll_done);

    if (rc == NGX_OK) {
        ctx->waiting = 1;
        ngx_http_wechat_count(polls_waiting);
        cln->handler = ngx_http_wechat_poll_cleanup;
        cln->data = ctx;

    } else if (rc == NGX_DECLINED) {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_UNAVAILABLE]);
    }

    return ngx_http_wechat_wait_redis(r, rc);
}


static void
ngx_http_wechat_poll_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_span_t               json;
    wx_scene_status_t       status;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    ctx->waiting = 0;
    ngx_http_wechat_add(polls_waiting, -1);

    if (ngx_http_wechat_poll_parse(r, response, &status, &json) != NGX_OK) {
        ngx_http_wechat_count(polls[NGX_HTTP_WECHAT_POLL_UNAVAILABLE]);
        ngx_http_finalize_request(r, ngx_http_wechat_send_unavailable(r));
        return;
    }

    ngx_http_wechat_count(polls[status]);

    ngx_http_finalize_request(r,
        ngx_http_wechat_send_answer(r, NGX_HTTP_OK, json));
}


static void
ngx_http_wechat_poll_cleanup(void *data)
{
    ngx_http_wechat_ctx_t  *ctx = data;

    if (ctx->waiting) {
        ngx_http_wechat_add(polls_waiting, -1);
    }
}


/*
 * A waiting poll: it joins the scene's channel first and reads the state
 * once the channel is subscribed (at once if it already is, or if there
 * is no pub/sub connection: it reads again when there is).
 */

static ngx_int_t
ngx_http_wechat_poll_long(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_str_t *key, ngx_uint_t seen)
{
    ngx_int_t                rc;
    ngx_str_t                channel;
    ngx_pool_cleanup_t      *cln;
    ngx_http_wechat_poll_t  *p;

    p = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_poll_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    channel = ngx_http_wechat_key(r, wlcf, "resolved:", &ctx->scene);

    if (p == NULL || cln == NULL || channel.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p->request = r;
    p->key = *key;
    p->seen = seen;
    p->sse = ngx_http_wechat_poll_accepts_sse(r);
    p->deadline = ngx_current_msec + wlcf->poll_timeout;
    p->interval = p->sse ? wlcf->poll_heartbeat : 0;
    p->heartbeat = ngx_current_msec + p->interval;

    p->waiter.wake = ngx_http_wechat_poll_wake;
    p->waiter.data = p;

    /* cancelable: a worker that shuts down answers them on its way out */

    p->timer.handler = ngx_http_wechat_poll_timer;
    p->timer.data = p;
    p->timer.log = r->connection->log;
    p->timer.cancelable = 1;

    rc = ngx_http_wechat_pubsub_wait(&p->waiter, &channel);

    if (rc == NGX_ERROR) {
        return ngx_http_wechat_poll_short(r, ctx, key);
    }

    ctx->poll = p;
    cln->handler = ngx_http_wechat_poll_stop;
    cln->data = p;

    p->waiting = 1;
    ngx_http_wechat_count(polls_waiting);

    /* a client that goes away frees its wait at once */

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    ngx_http_wechat_poll_arm(p);

    if (rc != NGX_AGAIN) {
        (void) ngx_http_wechat_poll_read(p);
    }

    return NGX_DONE;
}


static ngx_uint_t
ngx_http_wechat_poll_accepts_sse(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  accept = ngx_string("Accept");

    h = ngx_http_wechat_header(r, &accept);

    return h && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                                 (u_char *) "text/event-stream",
                                 sizeof("text/event-stream") - 2)
                != NULL;
}


/* NGX_DONE when the poll was answered, and may be gone. */

static ngx_int_t
ngx_http_wechat_poll_read(ngx_http_wechat_poll_t *p)
{
    if (p->reading) {
        p->again = 1;
        return NGX_OK;
    }

    if (ngx_http_wechat_poll_command(p->request, &p->key,
                                     ngx_http_wechat_poll_answered)
        == NGX_OK)
    {
        p->reading = 1;
        return NGX_OK;
    }

    return ngx_http_wechat_poll_failed(p);
}


/* The first read answers 503 as a short poll does; later ones retry. */

static ngx_int_t
ngx_http_wechat_poll_failed(ngx_http_wechat_poll_t *p)
{
    if (!p->read) {
        ngx_http_wechat_poll_finish(p, NGX_HTTP_WECHAT_POLL_UNAVAILABLE,
                                    NULL);
        return NGX_DONE;
    }

    p->retry = 1;
    ngx_http_wechat_poll_arm(p);

    return NGX_OK;
}


static void
ngx_http_wechat_poll_answered(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    wx_span_t                json;
    wx_scene_status_t        status;
    ngx_http_wechat_poll_t  *p;

    p = ngx_http_wechat_get_ctx(r)->poll;
    p->reading = 0;

    if (ngx_http_wechat_poll_parse(r, response, &status, &json) != NGX_OK) {
        (void) ngx_http_wechat_poll_failed(p);
        return;
    }

    p->read = 1;

    /* an event stream goes on through the statuses that wait */

    if (status != WX_SCENE_PENDING && status != p->seen
        && !(p->sse && ngx_http_wechat_poll_waits(status)))
    {
        ngx_http_wechat_poll_finish(p, status, &json);
        return;
    }

    if (p->sse && (!p->started || status != p->seen)) {
        if (ngx_http_wechat_poll_event(p, &json, 0) != NGX_OK) {
            ngx_http_wechat_poll_finish(p, NGX_HTTP_WECHAT_POLL_UNAVAILABLE,
                                        NULL);
            return;
        }

        p->seen = status;
    }

    if (p->again) {
        p->again = 0;
        (void) ngx_http_wechat_poll_read(p);
    }
}


/* The pub/sub store's call: READY and CHANGED read the state again. */

static void
ngx_http_wechat_poll_wake(ngx_http_wechat_waiter_t *w, ngx_uint_t why)
{
    ngx_connection_t        *c;
    ngx_http_wechat_poll_t  *p = w->data;

    c = p->request->connection;

    switch (why) {

    case NGX_HTTP_WECHAT_WAKE_EXIT:
        ngx_http_wechat_poll_unchanged(p);
        break;

    case NGX_HTTP_WECHAT_WAKE_DOWN:
        if (!p->read && !p->reading) {
            (void) ngx_http_wechat_poll_read(p);
        }
        break;

    case NGX_HTTP_WECHAT_WAKE_CHANGED:
        ngx_http_wechat_count(poll_wakeups);
        /* fall through */

    default:
        (void) ngx_http_wechat_poll_read(p);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_wechat_poll_timer(ngx_event_t *ev)
{
    ngx_connection_t        *c;
    ngx_http_wechat_poll_t  *p = ev->data;

    if (!ev->timedout) {
        /* cancelled: the worker exits, and answers on its way out */
        return;
    }

    c = p->request->connection;

    if ((ngx_msec_int_t) (ngx_current_msec - p->deadline) >= 0) {
        ngx_http_wechat_count(poll_timeouts);
        ngx_http_wechat_poll_unchanged(p);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (p->retry) {
        p->retry = 0;

        if (ngx_http_wechat_poll_read(p) == NGX_DONE) {
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    if (p->interval
        && (ngx_msec_int_t) (ngx_current_msec - p->heartbeat) >= 0)
    {
        p->heartbeat = ngx_current_msec + p->interval;

        if (p->started
            && ngx_http_wechat_poll_stream(p, (u_char *) ":\n\n", 3, 0)
               == NGX_ERROR)
        {
            ngx_http_wechat_poll_finish(p, NGX_HTTP_WECHAT_POLL_UNAVAILABLE,
                                        NULL);
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    ngx_http_wechat_poll_arm(p);
}


/* At the timeout, or on the way out: the status as the page knows it. */

static void
ngx_http_wechat_poll_unchanged(ngx_http_wechat_poll_t *p)
{
    u_char     *last;
    wx_span_t   json;

    json.data = ngx_http_wechat_pending;
    json.len = sizeof(ngx_http_wechat_pending) - 1;

    if (p->seen != WX_SCENE_PENDING) {
        json.data = ngx_pnalloc(p->request->pool,
                                sizeof("{\"status\":\"confirming\"}"));
        if (json.data == NULL) {
            ngx_http_wechat_poll_finish(p, NGX_HTTP_WECHAT_POLL_UNAVAILABLE,
                                        NULL);
            return;
        }

        last = ngx_sprintf((u_char *) json.data, "{\"status\":\"%s\"}",
                           wx_scene_status_name(p->seen));
        json.len = last - json.data;
    }

    ngx_http_wechat_poll_finish(p, p->seen, &json);
}


/* The timer fires at the first of: the deadline, a retry, a heartbeat. */

static void
ngx_http_wechat_poll_arm(ngx_http_wechat_poll_t *p)
{
    ngx_msec_int_t  next;

    next = p->deadline - ngx_current_msec;

    if (p->interval) {
        next = ngx_min(next, (ngx_msec_int_t) (p->heartbeat
                                               - ngx_current_msec));
    }

    if (p->retry) {
        next = ngx_min(next, NGX_HTTP_WECHAT_POLL_RETRY);
    }

    ngx_add_timer(&p->timer, (ngx_msec_t) ngx_max(next, 1));
}


/* status: a scene status, or NGX_HTTP_WECHAT_POLL_UNAVAILABLE */

static void
ngx_http_wechat_poll_finish(ngx_http_wechat_poll_t *p, ngx_uint_t status,
    wx_span_t *json)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r = p->request;

    ngx_http_wechat_poll_stop(p);
    ngx_http_wechat_count(polls[status]);

    r->read_event_handler = ngx_http_block_reading;

    if (status == NGX_HTTP_WECHAT_POLL_UNAVAILABLE) {
        rc = p->started ? ngx_http_wechat_poll_stream(p, NULL, 0, 1)
                        : ngx_http_wechat_send_unavailable(r);

    } else if (p->sse) {
        /* one event per change: a pending stream just ends */
        rc = ngx_http_wechat_poll_event(p,
                 (p->started && status == p->seen) ? NULL : json, 1);

    } else {
        rc = ngx_http_wechat_send_answer(r, NGX_HTTP_OK, *json);
    }

    ngx_http_finalize_request(r, rc);
}


/* The request's cleanup too: it leaves its channel and the gauge. */

static void
ngx_http_wechat_poll_stop(void *data)
{
    ngx_http_wechat_poll_t  *p = data;

    ngx_http_wechat_pubsub_leave(&p->waiter);

    if (p->timer.timer_set) {
        ngx_del_timer(&p->timer);
    }

    p->retry = 0;

    if (p->waiting) {
        p->waiting = 0;
        ngx_http_wechat_add(polls_waiting, -1);
    }
}


static ngx_int_t
ngx_http_wechat_poll_event(ngx_http_wechat_poll_t *p, wx_span_t *json,
    ngx_uint_t last)
{
    u_char  *data, *q;
    size_t   len;

    if (json == NULL) {
        return ngx_http_wechat_poll_stream(p, NULL, 0, last);
    }

    len = sizeof("data: \n\n") - 1 + json->len;

    data = ngx_pnalloc(p->request->pool, len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(data, "data: ", sizeof("data: ") - 1);
    q = ngx_cpymem(q, json->data, json->len);
    *q++ = '\n';
    *q = '\n';

    return ngx_http_wechat_poll_stream(p, data, len, last);
}


/* Sends the event stream's header the first time, then data, flushed. */

static ngx_int_t
ngx_http_wechat_poll_stream(ngx_http_wechat_poll_t *p, u_char *data,
    size_t len, ngx_uint_t last)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t          out;
    ngx_http_request_t  *r = p->request;

    if (!p->started) {
        p->started = 1;

        r->headers_out.status = NGX_HTTP_OK;
        r->headers_out.content_length_n = -1;
        ngx_str_set(&r->headers_out.content_type, "text/event-stream");
        r->headers_out.content_type_len = r->headers_out.content_type.len;

        if (ngx_http_wechat_no_store(r) != NGX_OK) {
            return NGX_ERROR;
        }

        rc = ngx_http_send_header(r);
        if (rc == NGX_ERROR || rc > NGX_OK) {
            return NGX_ERROR;
        }
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = (len > 0);
    b->flush = 1;
    b->last_buf = last;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    return (rc == NGX_ERROR) ? NGX_ERROR : (last ? rc : NGX_OK);
}
