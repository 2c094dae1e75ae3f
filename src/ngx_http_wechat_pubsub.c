
/*
 * ngx_http_wechat_module: the worker's pub/sub connection, and the polls
 * waiting on it.  A poll waits on its scene's channel; channels live in an
 * rbtree by name, counted, so that a message reaches its waiters without a
 * walk, a channel is subscribed while a poll waits on it and unsubscribed
 * when the last one leaves.  connect -> AUTH (or PING) -> ready ->
 * SUBSCRIBE of every channel waited on; replies not seen within
 * wechat_redis_timeout drop the connection, and so does a reply of any
 * other shape, or one nobody asked for; it reconnects with the command
 * connection's backoff.
 * While polls only wait, a probe every few seconds asks for a reply, so a
 * Redis that stops answering is noticed then too.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_rconn.h"
#include "ngx_http_wechat_store.h"


/* 1: Redis 7's sharded pub/sub; resolve.lua then uses SPUBLISH */
#define NGX_HTTP_WECHAT_SHARDED  0

#if (NGX_HTTP_WECHAT_SHARDED)
#define NGX_HTTP_WECHAT_SUB      "ssubscribe"
#define NGX_HTTP_WECHAT_UNSUB    "sunsubscribe"
#define NGX_HTTP_WECHAT_MESSAGE  "smessage"
#else
#define NGX_HTTP_WECHAT_SUB      "subscribe"
#define NGX_HTTP_WECHAT_UNSUB    "unsubscribe"
#define NGX_HTTP_WECHAT_MESSAGE  "message"
#endif

/*
 * The probe: a SUBSCRIBE of a channel nobody publishes on, which Redis
 * answers like any other, sent when polls wait and no other reply is due.
 */
#define NGX_HTTP_WECHAT_PROBE           "wechat:pubsub:probe"
#define NGX_HTTP_WECHAT_PROBE_INTERVAL  5000

/* channels per SUBSCRIBE when a new connection takes over the waiters */
#define NGX_HTTP_WECHAT_BATCH    128


typedef struct {
    ngx_str_node_t                sn;         /* the channel's name */
    ngx_queue_t                   queue;      /* in the store's list */
    ngx_queue_t                   waiters;
    ngx_uint_t                    refs;       /* waiters, and wakes running */
    ngx_uint_t                    subs;       /* SUBSCRIBE replies due */
    ngx_uint_t                    unsubs;     /* UNSUBSCRIBE replies due */
    unsigned                      subscribed:1;
} ngx_http_wechat_channel_t;


typedef struct {
    ngx_http_wechat_main_conf_t  *conf;
    ngx_http_wechat_addr_t       *addr;       /* where it connects */
    ngx_http_wechat_rconn_t       conn;
    ngx_uint_t                    ready;
    ngx_uint_t                    attempts;
    ngx_uint_t                    due;        /* replies due, all channels */
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   channels;
    ngx_event_t                   timer;      /* connect, then replies */
    ngx_event_t                   reconnect_timer;
    ngx_event_t                   probe_timer;
    unsigned                      exiting:1;
} ngx_http_wechat_pubsub_t;


static void ngx_http_wechat_pubsub_connect(ngx_http_wechat_pubsub_t *ps);
static void ngx_http_wechat_pubsub_hello_done(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static void ngx_http_wechat_pubsub_gone(ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_pubsub_ready(ngx_http_wechat_pubsub_t *ps);
static void ngx_http_wechat_pubsub_subscribe_all(
    ngx_http_wechat_pubsub_t *ps);
static void ngx_http_wechat_pubsub_send(ngx_http_wechat_pubsub_t *ps,
    const char *command, ngx_http_wechat_channel_t *ch);
static void ngx_http_wechat_pubsub_reply(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_wechat_pubsub_replied(ngx_http_wechat_pubsub_t *ps,
    ngx_http_wechat_channel_t *ch, ngx_str_t *type);
static void ngx_http_wechat_pubsub_wake(ngx_http_wechat_channel_t *ch,
    ngx_uint_t why);
static void ngx_http_wechat_pubsub_wake_all(ngx_http_wechat_pubsub_t *ps,
    ngx_uint_t why);
static void ngx_http_wechat_pubsub_release(ngx_http_wechat_channel_t *ch);
static void ngx_http_wechat_pubsub_free(ngx_http_wechat_pubsub_t *ps,
    ngx_http_wechat_channel_t *ch);
static void ngx_http_wechat_pubsub_drop(ngx_http_wechat_pubsub_t *ps);
static void ngx_http_wechat_pubsub_lost(ngx_http_wechat_pubsub_t *ps);
static void ngx_http_wechat_pubsub_shutdown(ngx_http_wechat_pubsub_t *ps);
static void ngx_http_wechat_pubsub_timeout(ngx_event_t *ev);
static void ngx_http_wechat_pubsub_reconnect_handler(ngx_event_t *ev);
static void ngx_http_wechat_pubsub_moved(void);
static void ngx_http_wechat_pubsub_probe(ngx_event_t *ev);


static ngx_http_wechat_pubsub_t  ngx_http_wechat_pubsub;


ngx_int_t
ngx_http_wechat_pubsub_init_process(ngx_cycle_t *cycle)
{
    ngx_http_wechat_pubsub_t     *ps;
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_wechat_module);
    if (wmcf == NULL || wmcf->server.name.data == NULL || !wmcf->pubsub) {
        return NGX_OK;
    }

    ps = &ngx_http_wechat_pubsub;
    ngx_memzero(ps, sizeof(ngx_http_wechat_pubsub_t));

    ps->conf = wmcf;
    ngx_rbtree_init(&ps->rbtree, &ps->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&ps->channels);

    ngx_http_wechat_redis_timer(&ps->timer, ngx_http_wechat_pubsub_timeout,
                                ps, cycle->log);
    ngx_http_wechat_redis_timer(&ps->reconnect_timer,
                                ngx_http_wechat_pubsub_reconnect_handler, ps,
                                cycle->log);
    ngx_http_wechat_redis_timer(&ps->probe_timer,
                                ngx_http_wechat_pubsub_probe, ps, cycle->log);

    ngx_http_wechat_sentinel_watch(ngx_http_wechat_pubsub_moved);
    ngx_http_wechat_pubsub_connect(ps);

    return NGX_OK;
}


/* Answers the waiters that are left, if shutting down had not yet. */

void
ngx_http_wechat_pubsub_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_wechat_pubsub.conf) {
        ngx_http_wechat_pubsub_shutdown(&ngx_http_wechat_pubsub);
    }
}


static void
ngx_http_wechat_pubsub_connect(ngx_http_wechat_pubsub_t *ps)
{
    ngx_int_t  rc;
    ngx_str_t  argv[1];

    /*
     * In a cluster PUBLISH reaches every node over the cluster's bus: any
     * seed will do, the next one after a failure.
     */

    ps->addr = ps->conf->cluster
               ? ngx_http_wechat_cluster_addr(
                     ps->attempts % ngx_http_wechat_cluster_seeds())
               : &ps->conf->server;

    /*
     * Marked idle, the connection hears at once when the worker starts to
     * shut down: ngx_close_idle_connections() calls its read handler with
     * c->close set, and the waiting polls are answered then.
     */

    ps->conn.what = "wechat pubsub";
    ps->conn.addr = ps->addr;
    ps->conn.tls = ps->conf->tls ? ps->conf : NULL;
    ps->conn.data = ps;
    ps->conn.lost = ngx_http_wechat_pubsub_gone;
    ps->conn.push = NULL;
    ps->conn.idle = 1;

    if (ngx_http_wechat_rconn_open(&ps->conn) != NGX_OK) {
        ngx_http_wechat_pubsub_lost(ps);
        return;
    }

    ngx_add_timer(&ps->timer, ps->conf->connect_timeout);

    /* its answer says the connection is up, before anything waits on it */

    rc = ngx_http_wechat_rconn_auth(&ps->conn, &ps->conf->user,
                                    &ps->conf->password,
                                    ngx_http_wechat_pubsub_hello_done, NULL);

    if (rc == NGX_DECLINED) {
        ngx_str_set(&argv[0], "PING");
        rc = ngx_http_wechat_rconn_command(&ps->conn,
                                           ngx_http_wechat_pubsub_hello_done,
                                           NULL, 1, argv);
    }

    if (rc != NGX_OK) {
        ngx_http_wechat_pubsub_drop(ps);
    }
}


static void
ngx_http_wechat_pubsub_hello_done(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_wechat_pubsub_t  *ps = rc->data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat pubsub: %s on \"%V\" failed: %*s",
                      ps->conf->password.len ? "AUTH" : "PING",
                      &ps->addr->name, ngx_min(reply->len, 256), reply->str);
        ngx_http_wechat_pubsub_drop(ps);
        return;
    }

    if (reply->type != REDIS_REPLY_STATUS) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat pubsub: \"%V\" sent a reply of an unexpected "
                      "shape, dropping the connection", &ps->addr->name);
        ngx_http_wechat_pubsub_drop(ps);
        return;
    }

    ngx_http_wechat_pubsub_ready(ps);
}


/* The transport ended the connection, and said why. */

static void
ngx_http_wechat_pubsub_gone(ngx_http_wechat_rconn_t *rc)
{
    ngx_http_wechat_pubsub_t  *ps = rc->data;

    if (ngx_exiting) {
        ngx_http_wechat_pubsub_shutdown(ps);
        return;
    }

    ngx_http_wechat_pubsub_drop(ps);
}


/*
 * A new connection takes over every channel waited on; its waiters read
 * the state again when the channel is subscribed, for a message may have
 * been lost while there was no connection.
 */

static void
ngx_http_wechat_pubsub_ready(ngx_http_wechat_pubsub_t *ps)
{
    if (ps->timer.timer_set) {
        ngx_del_timer(&ps->timer);
    }

    ps->ready = 1;
    ps->attempts = 0;

    /* from now on, Redis speaks when it has something to say */

    ps->conn.push = ngx_http_wechat_pubsub_reply;

    /*
     * While polls only wait, nothing is due from Redis and no reply timer
     * runs: TCP keepalive is what ends a connection whose Redis host died
     * or went away without a word.
     */

    ngx_http_wechat_rconn_keepalive(&ps->conn);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "wechat pubsub: connected to \"%V\"", &ps->addr->name);

    ngx_http_wechat_pubsub_subscribe_all(ps);

    ngx_add_timer(&ps->probe_timer, NGX_HTTP_WECHAT_PROBE_INTERVAL);
}


static void
ngx_http_wechat_pubsub_subscribe_all(ngx_http_wechat_pubsub_t *ps)
{
    ngx_str_t                   argv[NGX_HTTP_WECHAT_BATCH + 1];
    ngx_uint_t                  n;
    ngx_queue_t                *q;
    ngx_http_wechat_channel_t  *ch;

    ngx_str_set(&argv[0], NGX_HTTP_WECHAT_SUB);
    n = 1;

    for (q = ngx_queue_head(&ps->channels);
         q != ngx_queue_sentinel(&ps->channels);
         q = ngx_queue_next(q))
    {
        ch = ngx_queue_data(q, ngx_http_wechat_channel_t, queue);

        argv[n++] = ch->sn.str;

        ch->subs++;
        ps->due++;

        if (n == NGX_HTTP_WECHAT_BATCH + 1
            || ngx_queue_next(q) == ngx_queue_sentinel(&ps->channels))
        {
            (void) ngx_http_wechat_rconn_command(&ps->conn, NULL, NULL, n,
                                                 argv);
            n = 1;
        }
    }

    if (ps->due && !ps->timer.timer_set) {
        ngx_add_timer(&ps->timer, ps->conf->timeout);
    }
}


static void
ngx_http_wechat_pubsub_send(ngx_http_wechat_pubsub_t *ps,
    const char *command, ngx_http_wechat_channel_t *ch)
{
    ngx_str_t  argv[2];

    argv[0].data = (u_char *) command;
    argv[0].len = ngx_strlen(command);
    argv[1] = ch->sn.str;

    if (ngx_http_wechat_rconn_command(&ps->conn, NULL, NULL, 2, argv)
        != NGX_OK)
    {
        return;
    }

    if (command[0] == NGX_HTTP_WECHAT_SUB[0]) {
        ch->subs++;

    } else {
        ch->unsubs++;
    }

    ps->due++;

    if (!ps->timer.timer_set) {
        ngx_add_timer(&ps->timer, ps->conf->timeout);
    }
}


/* A poll starts to wait on a channel: NGX_OK if it is subscribed. */

ngx_int_t
ngx_http_wechat_pubsub_wait(ngx_http_wechat_waiter_t *w, ngx_str_t *channel)
{
    uint32_t                    hash;
    ngx_http_wechat_channel_t  *ch;
    ngx_http_wechat_pubsub_t   *ps = &ngx_http_wechat_pubsub;

    if (ps->conf == NULL || ps->exiting) {
        return NGX_ERROR;
    }

    hash = ngx_crc32_long(channel->data, channel->len);

    ch = (ngx_http_wechat_channel_t *)
             ngx_str_rbtree_lookup(&ps->rbtree, channel, hash);

    if (ch == NULL) {
        ch = ngx_calloc(sizeof(ngx_http_wechat_channel_t) + channel->len,
                        ngx_cycle->log);
        if (ch == NULL) {
            return NGX_ERROR;
        }

        ch->sn.node.key = hash;
        ch->sn.str.len = channel->len;
        ch->sn.str.data = (u_char *) (ch + 1);
        ngx_memcpy(ch->sn.str.data, channel->data, channel->len);
        ngx_queue_init(&ch->waiters);

        ngx_rbtree_insert(&ps->rbtree, &ch->sn.node);
        ngx_queue_insert_tail(&ps->channels, &ch->queue);
    }

    ngx_queue_insert_tail(&ch->waiters, &w->queue);
    w->channel = ch;

    if (ch->refs++ == 0) {
        ngx_http_wechat_count(pubsub_channels);

        if (ps->ready) {
            ngx_http_wechat_pubsub_send(ps, NGX_HTTP_WECHAT_SUB, ch);
        }
    }

    if (ch->subscribed) {
        return NGX_OK;
    }

    /* subscribing: READY follows; no connection: read, READY follows too */

    return (ps->ready && ch->subs) ? NGX_AGAIN : NGX_DECLINED;
}


void
ngx_http_wechat_pubsub_leave(ngx_http_wechat_waiter_t *w)
{
    ngx_http_wechat_channel_t  *ch = w->channel;

    if (ch == NULL) {
        return;
    }

    w->channel = NULL;
    ngx_queue_remove(&w->queue);

    ngx_http_wechat_pubsub_release(ch);
}


static void
ngx_http_wechat_pubsub_release(ngx_http_wechat_channel_t *ch)
{
    ngx_http_wechat_pubsub_t  *ps = &ngx_http_wechat_pubsub;

    if (--ch->refs > 0) {
        return;
    }

    ngx_http_wechat_add(pubsub_channels, -1);

    if (ps->ready && !ps->exiting && (ch->subscribed || ch->subs)) {
        ngx_http_wechat_pubsub_send(ps, NGX_HTTP_WECHAT_UNSUB, ch);
    }

    ch->subscribed = 0;

    /* kept while replies are due, so that they find no other channel */

    if (ch->subs == 0 && ch->unsubs == 0) {
        ngx_http_wechat_pubsub_free(ps, ch);
    }
}


static void
ngx_http_wechat_pubsub_free(ngx_http_wechat_pubsub_t *ps,
    ngx_http_wechat_channel_t *ch)
{
    ngx_rbtree_delete(&ps->rbtree, &ch->sn.node);
    ngx_queue_remove(&ch->queue);
    ngx_free(ch);
}


/*
 * What Redis says on its own once subscribed: a message, or the answer to
 * a SUBSCRIBE or UNSUBSCRIBE.  Anything else ends the connection.
 */

static void
ngx_http_wechat_pubsub_reply(ngx_http_wechat_rconn_t *rc, redisReply *reply,
    void *data)
{
    ngx_str_t                   type, name;
    redisReply                **e;
    ngx_uint_t                  message;
    ngx_http_wechat_channel_t  *ch;
    ngx_http_wechat_pubsub_t   *ps = data;

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || e[0]->type != REDIS_REPLY_STRING
        || e[1]->type != REDIS_REPLY_STRING)
    {
        goto unexpected;
    }

    type.data = (u_char *) e[0]->str;
    type.len = e[0]->len;
    name.data = (u_char *) e[1]->str;
    name.len = e[1]->len;

    message = type.len == sizeof(NGX_HTTP_WECHAT_MESSAGE) - 1
              && ngx_strncmp(type.data, NGX_HTTP_WECHAT_MESSAGE, type.len)
                 == 0;

    if (e[2]->type != (message ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER)) {
        goto unexpected;
    }

    ch = (ngx_http_wechat_channel_t *)
             ngx_str_rbtree_lookup(&ps->rbtree, &name,
                                   ngx_crc32_long(name.data, name.len));

    if (message) {

        /* one may come for a channel left a moment ago */

        if (ch && ch->refs) {
            ngx_http_wechat_pubsub_wake(ch, NGX_HTTP_WECHAT_WAKE_CHANGED);
        }

        return;
    }

    if (ngx_http_wechat_pubsub_replied(ps, ch, &type) == NGX_OK) {
        return;
    }

unexpected:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "wechat pubsub: \"%V\" sent a reply of an unexpected "
                  "shape, dropping the connection", &ps->addr->name);

    ngx_http_wechat_pubsub_drop(ps);
}


/*
 * A SUBSCRIBE or UNSUBSCRIBE reply: the channel is subscribed when the
 * last one due is in and someone waits.  NGX_ERROR: none was due.
 */

static ngx_int_t
ngx_http_wechat_pubsub_replied(ngx_http_wechat_pubsub_t *ps,
    ngx_http_wechat_channel_t *ch, ngx_str_t *type)
{
    ngx_uint_t  sub;

    sub = (type->len == sizeof(NGX_HTTP_WECHAT_SUB) - 1
           && ngx_strncmp(type->data, NGX_HTTP_WECHAT_SUB, type->len) == 0);

    if (ps->due == 0
        || (!sub
            && (type->len != sizeof(NGX_HTTP_WECHAT_UNSUB) - 1
                || ngx_strncmp(type->data, NGX_HTTP_WECHAT_UNSUB, type->len)
                   != 0)))
    {
        return NGX_ERROR;
    }

    ps->due--;

    if (ps->timer.timer_set) {
        ngx_del_timer(&ps->timer);
    }

    if (ps->due) {
        ngx_add_timer(&ps->timer, ps->conf->timeout);
    }

    if (ch == NULL) {
        return NGX_OK;
    }

    if (sub && ch->subs) {
        ch->subs--;

    } else if (!sub && ch->unsubs) {
        ch->unsubs--;
    }

    if (ch->subs || ch->unsubs) {
        return NGX_OK;
    }

    if (ch->refs == 0) {
        ngx_http_wechat_pubsub_free(ps, ch);
        return NGX_OK;
    }

    if (sub && !ch->subscribed) {
        ch->subscribed = 1;
        ngx_http_wechat_pubsub_wake(ch, NGX_HTTP_WECHAT_WAKE_READY);
    }

    return NGX_OK;
}


/*
 * Wakes the channel's waiters.  A woken waiter may leave, and may be
 * answered and freed: each is moved back before its wake, and the channel
 * is held until all are done.
 */

static void
ngx_http_wechat_pubsub_wake(ngx_http_wechat_channel_t *ch, ngx_uint_t why)
{
    ngx_queue_t                woken, *q;
    ngx_http_wechat_waiter_t  *w;

    if (ngx_queue_empty(&ch->waiters)) {
        return;
    }

    ngx_queue_init(&woken);
    ngx_queue_add(&woken, &ch->waiters);
    ngx_queue_init(&ch->waiters);

    ch->refs++;

    while (!ngx_queue_empty(&woken)) {
        q = ngx_queue_head(&woken);
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ch->waiters, q);

        w = ngx_queue_data(q, ngx_http_wechat_waiter_t, queue);
        w->wake(w, why);
    }

    ngx_http_wechat_pubsub_release(ch);
}


static void
ngx_http_wechat_pubsub_wake_all(ngx_http_wechat_pubsub_t *ps, ngx_uint_t why)
{
    ngx_queue_t                *q, *next;
    ngx_http_wechat_channel_t  *ch;

    for (q = ngx_queue_head(&ps->channels);
         q != ngx_queue_sentinel(&ps->channels);
         q = next)
    {
        ch = ngx_queue_data(q, ngx_http_wechat_channel_t, queue);

        ch->refs++;
        ngx_http_wechat_pubsub_wake(ch, why);
        next = ngx_queue_next(q);
        ngx_http_wechat_pubsub_release(ch);
    }
}


/* Frees the connection; its subscriptions go with it. */

static void
ngx_http_wechat_pubsub_drop(ngx_http_wechat_pubsub_t *ps)
{
    if (ps->conn.peer.connection == NULL) {
        return;
    }

    ngx_http_wechat_rconn_close(&ps->conn);

    ngx_http_wechat_pubsub_lost(ps);
}


/* No connection: nothing is subscribed, nothing due; reconnect. */

static void
ngx_http_wechat_pubsub_lost(ngx_http_wechat_pubsub_t *ps)
{
    ngx_queue_t                *q, *next;
    ngx_http_wechat_channel_t  *ch;

    if (ps->timer.timer_set) {
        ngx_del_timer(&ps->timer);
    }

    if (ps->probe_timer.timer_set) {
        ngx_del_timer(&ps->probe_timer);
    }

    ps->ready = 0;
    ps->due = 0;

    for (q = ngx_queue_head(&ps->channels);
         q != ngx_queue_sentinel(&ps->channels);
         q = next)
    {
        next = ngx_queue_next(q);
        ch = ngx_queue_data(q, ngx_http_wechat_channel_t, queue);

        ch->subs = 0;
        ch->unsubs = 0;
        ch->subscribed = 0;

        if (ch->refs == 0) {
            ngx_http_wechat_pubsub_free(ps, ch);
        }
    }

    if (ps->exiting) {
        return;
    }

    ngx_http_wechat_pubsub_wake_all(ps, NGX_HTTP_WECHAT_WAKE_DOWN);

    if (!ps->reconnect_timer.timer_set) {
        ngx_add_timer(&ps->reconnect_timer,
                      ngx_http_wechat_redis_backoff(ps->attempts++));
    }
}


static void
ngx_http_wechat_pubsub_shutdown(ngx_http_wechat_pubsub_t *ps)
{
    if (ps->exiting) {
        return;
    }

    ps->exiting = 1;

    if (ps->reconnect_timer.timer_set) {
        ngx_del_timer(&ps->reconnect_timer);
    }

    ngx_http_wechat_pubsub_wake_all(ps, NGX_HTTP_WECHAT_WAKE_EXIT);
    ngx_http_wechat_pubsub_drop(ps);
}


static void
ngx_http_wechat_pubsub_timeout(ngx_event_t *ev)
{
    ngx_http_wechat_pubsub_t  *ps = ev->data;

    if (!ev->timedout) {
        /* cancelled at worker exit */
        return;
    }

    if (ps->ready) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "wechat pubsub: no reply in time, dropping the "
                      "connection");

    } else {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "wechat pubsub: %s \"%V\" timed out",
                      ngx_http_wechat_rconn_step(&ps->conn),
                      &ps->addr->name);
    }

    ngx_http_wechat_pubsub_drop(ps);
}


static void
ngx_http_wechat_pubsub_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_wechat_pubsub_t  *ps = ev->data;

    if (ps->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_wechat_count(pubsub_reconnects);

    ngx_http_wechat_pubsub_connect(ps);
}


/* The sentinels named another master: the waiters move with it. */

static void
ngx_http_wechat_pubsub_moved(void)
{
    ngx_http_wechat_pubsub_t  *ps = &ngx_http_wechat_pubsub;

    if (ps->conf == NULL || ps->exiting) {
        return;
    }

    ngx_http_wechat_pubsub_drop(ps);

    if (ps->reconnect_timer.timer_set) {
        ngx_del_timer(&ps->reconnect_timer);
    }

    ps->attempts = 0;
    ngx_http_wechat_pubsub_connect(ps);
}


static void
ngx_http_wechat_pubsub_probe(ngx_event_t *ev)
{
    ngx_str_t                  argv[2];
    ngx_http_wechat_pubsub_t  *ps = ev->data;

    if (!ev->timedout || ngx_exiting || ps->exiting
        || ps->conn.peer.connection == NULL)
    {
        /* cancelled at worker exit, or the connection is gone */
        return;
    }

    ngx_str_set(&argv[0], NGX_HTTP_WECHAT_SUB);
    ngx_str_set(&argv[1], NGX_HTTP_WECHAT_PROBE);

    if (ps->due == 0 && !ngx_queue_empty(&ps->channels)
        && ngx_http_wechat_rconn_command(&ps->conn, NULL, NULL, 2, argv)
           == NGX_OK)
    {
        ps->due++;
        ngx_add_timer(&ps->timer, ps->conf->timeout);
    }

    ngx_add_timer(ev, NGX_HTTP_WECHAT_PROBE_INTERVAL);
}
