
/*
 * ngx_http_wechat_module: where the master is, from Redis Sentinel.  Each
 * worker keeps one connection to a sentinel: AUTH -> SENTINEL
 * get-master-addr-by-name -> SUBSCRIBE +switch-master, on which it hears of
 * a failover.  A lost connection, a replica where the master should be, or
 * a READONLY reply make the command connection ask again; the sentinels
 * are tried in turn.  When the address changes, the command and pub/sub
 * connections move to it at once.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_rconn.h"


#define NGX_HTTP_WECHAT_SWITCH    "+switch-master"

/* the command and the pub/sub connection */
#define NGX_HTTP_WECHAT_WATCHERS  2


typedef struct {
    ngx_http_wechat_main_conf_t  *conf;
    ngx_http_wechat_rconn_t       conn;
    ngx_uint_t                    current;    /* the sentinel asked */
    ngx_uint_t                    attempts;
    ngx_event_t                   timer;      /* connect, and the answer */
    ngx_event_t                   reconnect_timer;
    ngx_http_wechat_moved_pt      watchers[NGX_HTTP_WECHAT_WATCHERS];
    ngx_uint_t                    nwatchers;
    unsigned                      watching:1; /* subscribed, answered */
    unsigned                      exiting:1;
} ngx_http_wechat_sentinel_t;


static void ngx_http_wechat_sentinel_connect(ngx_http_wechat_sentinel_t *st);
static void ngx_http_wechat_sentinel_gone(ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_sentinel_auth_done(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static void ngx_http_wechat_sentinel_answer(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static void ngx_http_wechat_sentinel_message(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_wechat_sentinel_subscribed(
    ngx_http_wechat_sentinel_t *st, redisReply *reply);
static ngx_int_t ngx_http_wechat_sentinel_switch(
    ngx_http_wechat_sentinel_t *st, ngx_str_t *text);
static ngx_int_t ngx_http_wechat_sentinel_master(
    ngx_http_wechat_sentinel_t *st, ngx_str_t *host, ngx_str_t *port);
static void ngx_http_wechat_sentinel_failed(ngx_http_wechat_sentinel_t *st,
    const char *what, const char *detail);
static void ngx_http_wechat_sentinel_drop(ngx_http_wechat_sentinel_t *st);
static void ngx_http_wechat_sentinel_timeout(ngx_event_t *ev);
static void ngx_http_wechat_sentinel_reconnect_handler(ngx_event_t *ev);


static ngx_http_wechat_sentinel_t  ngx_http_wechat_sentinel;


ngx_int_t
ngx_http_wechat_sentinel_init_process(ngx_cycle_t *cycle)
{
    ngx_http_wechat_sentinel_t   *st;
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_wechat_module);
    if (wmcf == NULL || wmcf->sentinels == NULL) {
        return NGX_OK;
    }

    st = &ngx_http_wechat_sentinel;
    ngx_memzero(st, sizeof(ngx_http_wechat_sentinel_t));

    st->conf = wmcf;

    /* workers start at different sentinels, to share the load */

    st->current = ngx_worker % wmcf->sentinels->nelts;

    ngx_http_wechat_redis_timer(&st->timer, ngx_http_wechat_sentinel_timeout,
                                st, cycle->log);
    ngx_http_wechat_redis_timer(&st->reconnect_timer,
                                ngx_http_wechat_sentinel_reconnect_handler,
                                st, cycle->log);

    ngx_http_wechat_sentinel_connect(st);

    return NGX_OK;
}


void
ngx_http_wechat_sentinel_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_wechat_sentinel_t  *st = &ngx_http_wechat_sentinel;

    if (st->conf == NULL) {
        return;
    }

    st->exiting = 1;

    if (st->reconnect_timer.timer_set) {
        ngx_del_timer(&st->reconnect_timer);
    }

    ngx_http_wechat_sentinel_drop(st);
}


/* A connection asks to be told when the master moves. */

void
ngx_http_wechat_sentinel_watch(ngx_http_wechat_moved_pt moved)
{
    ngx_http_wechat_sentinel_t  *st = &ngx_http_wechat_sentinel;

    if (st->conf && st->nwatchers < NGX_HTTP_WECHAT_WATCHERS) {
        st->watchers[st->nwatchers++] = moved;
    }
}


/*
 * The command connection's call when the master it reached failed it.  A
 * question in flight will answer; a watching connection is replaced by a
 * new one, which asks.
 */

void
ngx_http_wechat_sentinel_ask(void)
{
    ngx_http_wechat_sentinel_t  *st = &ngx_http_wechat_sentinel;

    if (st->conf == NULL || st->exiting || ngx_exiting) {
        return;
    }

    if (st->conn.peer.connection && !st->watching) {
        return;
    }

    ngx_http_wechat_sentinel_drop(st);

    if (st->reconnect_timer.timer_set) {
        ngx_del_timer(&st->reconnect_timer);
    }

    ngx_http_wechat_sentinel_connect(st);
}


static void
ngx_http_wechat_sentinel_connect(ngx_http_wechat_sentinel_t *st)
{
    ngx_str_t                     argv[3];
    ngx_http_wechat_addr_t       *addr;
    ngx_http_wechat_main_conf_t  *wmcf = st->conf;

    addr = wmcf->sentinels->elts;

    st->conn.what = "wechat sentinel";
    st->conn.addr = &addr[st->current];
    st->conn.tls = wmcf->tls ? wmcf : NULL;
    st->conn.data = st;
    st->conn.lost = ngx_http_wechat_sentinel_gone;
    st->conn.push = NULL;

    if (ngx_http_wechat_rconn_open(&st->conn) != NGX_OK) {
        ngx_http_wechat_sentinel_failed(st, NULL, NULL);
        return;
    }

    st->watching = 0;

    ngx_add_timer(&st->timer, wmcf->connect_timeout + wmcf->timeout);

    (void) ngx_http_wechat_rconn_auth(&st->conn, &wmcf->sentinel_user,
                                      &wmcf->sentinel_password,
                                      ngx_http_wechat_sentinel_auth_done,
                                      NULL);

    ngx_str_set(&argv[0], "SENTINEL");
    ngx_str_set(&argv[1], "get-master-addr-by-name");
    argv[2] = wmcf->master;

    (void) ngx_http_wechat_rconn_command(&st->conn,
                                         ngx_http_wechat_sentinel_answer,
                                         NULL, 3, argv);
}


/* The transport ended the connection, and said why. */

static void
ngx_http_wechat_sentinel_gone(ngx_http_wechat_rconn_t *rc)
{
    ngx_http_wechat_sentinel_failed(rc->data, NULL, NULL);
}


static void
ngx_http_wechat_sentinel_auth_done(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_http_wechat_sentinel_failed(rc->data, "AUTH failed", reply->str);
}


/* The answer to get-master-addr-by-name: [host, port], or nil. */

static void
ngx_http_wechat_sentinel_answer(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data)
{
    ngx_str_t                    host, port, argv[2];
    ngx_http_wechat_sentinel_t  *st = rc->data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_wechat_sentinel_failed(st, "SENTINEL failed", reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_wechat_sentinel_failed(st, "does not know the master", NULL);
        return;
    }

    host.data = (u_char *) reply->element[0]->str;
    host.len = reply->element[0]->len;
    port.data = (u_char *) reply->element[1]->str;
    port.len = reply->element[1]->len;

    if (ngx_http_wechat_sentinel_master(st, &host, &port) != NGX_OK) {
        ngx_http_wechat_sentinel_failed(st, "named no usable address",
                                        NULL);
        return;
    }

    /* the timer still runs: the SUBSCRIBE's reply is due, then messages */

    ngx_str_set(&argv[0], "SUBSCRIBE");
    ngx_str_set(&argv[1], NGX_HTTP_WECHAT_SWITCH);

    st->conn.push = ngx_http_wechat_sentinel_message;

    (void) ngx_http_wechat_rconn_command(&st->conn, NULL, NULL, 2, argv);
}


/*
 * SUBSCRIBE's reply, then each message on +switch-master:
 * "name old-host old-port new-host new-port".
 */

static void
ngx_http_wechat_sentinel_message(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data)
{
    ngx_str_t                    text;
    redisReply                 **e;
    ngx_http_wechat_sentinel_t  *st = data;

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || e[0]->type != REDIS_REPLY_STRING
        || e[1]->type != REDIS_REPLY_STRING)
    {
        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_http_wechat_sentinel_failed(st, "SUBSCRIBE failed",
                                            reply->str);
            return;
        }

        ngx_http_wechat_sentinel_failed(st, "sent a reply of an unexpected "
                                        "shape", NULL);
        return;
    }

    if (e[0]->len == sizeof("subscribe") - 1
        && ngx_strncmp(e[0]->str, "subscribe", e[0]->len) == 0)
    {
        if (ngx_http_wechat_sentinel_subscribed(st, reply) != NGX_OK) {
            ngx_http_wechat_sentinel_failed(st, "sent a reply nobody asked "
                                            "for", NULL);
        }

        return;
    }

    if (!st->watching
        || e[0]->len != sizeof("message") - 1
        || ngx_strncmp(e[0]->str, "message", e[0]->len) != 0
        || e[2]->type != REDIS_REPLY_STRING)
    {
        ngx_http_wechat_sentinel_failed(st, "sent a reply of an unexpected "
                                        "shape", NULL);
        return;
    }

    text.data = (u_char *) e[2]->str;
    text.len = e[2]->len;

    if (ngx_http_wechat_sentinel_switch(st, &text) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "wechat sentinel: a " NGX_HTTP_WECHAT_SWITCH
                      " message that is not understood, asking again");
        ngx_http_wechat_sentinel_ask();
    }
}


/* The SUBSCRIBE's reply, once: it watches. */

static ngx_int_t
ngx_http_wechat_sentinel_subscribed(ngx_http_wechat_sentinel_t *st,
    redisReply *reply)
{
    if (st->watching || reply->element[2]->type != REDIS_REPLY_INTEGER) {
        return NGX_ERROR;
    }

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    st->watching = 1;
    st->attempts = 0;

    /* nothing is due while it watches: keepalive notices a dead host */

    ngx_http_wechat_rconn_keepalive(&st->conn);

    return NGX_OK;
}


/* NGX_DECLINED: another master's switch. */

static ngx_int_t
ngx_http_wechat_sentinel_switch(ngx_http_wechat_sentinel_t *st,
    ngx_str_t *text)
{
    u_char     *p, *last, *space;
    ngx_str_t   field[5];
    ngx_uint_t  i;

    p = text->data;
    last = text->data + text->len;

    for (i = 0; i < 5; i++) {
        space = ngx_strlchr(p, last, ' ');

        if ((space == NULL) != (i == 4)) {
            return NGX_ERROR;
        }

        field[i].data = p;
        field[i].len = (space ? space : last) - p;

        p = space + 1;
    }

    if (field[0].len != st->conf->master.len
        || ngx_strncmp(field[0].data, st->conf->master.data,
                       field[0].len) != 0)
    {
        return NGX_DECLINED;
    }

    return ngx_http_wechat_sentinel_master(st, &field[3], &field[4]);
}


/* Takes the master's address; the connections move when it changed. */

static ngx_int_t
ngx_http_wechat_sentinel_master(ngx_http_wechat_sentinel_t *st,
    ngx_str_t *host, ngx_str_t *port)
{
    ngx_int_t                     n, rc;
    ngx_uint_t                    i;
    ngx_http_wechat_main_conf_t  *wmcf = st->conf;

    n = ngx_atoi(port->data, port->len);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    rc = ngx_http_wechat_redis_addr_set(&wmcf->server, &wmcf->master, host,
                                        n);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "wechat sentinel: the master is \"%V\"",
                  &wmcf->server.name);

    for (i = 0; i < st->nwatchers; i++) {
        st->watchers[i]();
    }

    return NGX_OK;
}


/* what: logged, when there is something to say; the next sentinel. */

static void
ngx_http_wechat_sentinel_failed(ngx_http_wechat_sentinel_t *st,
    const char *what, const char *detail)
{
    ngx_http_wechat_addr_t  *addr;

    addr = st->conf->sentinels->elts;

    if (what) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat sentinel: \"%V\" %s%s%s, for \"%V\"",
                      &addr[st->current].name, what, detail ? ": " : "",
                      detail ? detail : "", &st->conf->master);
    }

    ngx_http_wechat_sentinel_drop(st);

    st->current = (st->current + 1) % st->conf->sentinels->nelts;

    if (st->exiting || st->reconnect_timer.timer_set) {
        return;
    }

    ngx_add_timer(&st->reconnect_timer,
                  ngx_http_wechat_redis_backoff(st->attempts++));
}


static void
ngx_http_wechat_sentinel_drop(ngx_http_wechat_sentinel_t *st)
{
    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    st->watching = 0;

    ngx_http_wechat_rconn_close(&st->conn);
}


static void
ngx_http_wechat_sentinel_timeout(ngx_event_t *ev)
{
    ngx_http_wechat_sentinel_t  *st = ev->data;

    if (!ev->timedout) {
        /* cancelled at worker exit */
        return;
    }

    ngx_http_wechat_sentinel_failed(st, "did not answer in time", NULL);
}


static void
ngx_http_wechat_sentinel_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_wechat_sentinel_t  *st = ev->data;

    if (st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_wechat_sentinel_connect(st);
}
