
/*
 * ngx_http_wechat_module: a Redis connection on nginx's own event loop.
 * nginx connects (ngx_event_connect_peer), reads and writes; the replies
 * are read by the core's reader, which can only answer "more", "a reply"
 * or "bad input", and refuses one past NGX_HTTP_WECHAT_REPLY_MAX before
 * buffering it.  A queue of what was asked matches each reply to its
 * handler; a reply nobody asked for goes to the connection's push handler
 * (pub/sub), or ends the connection.  Whatever ends it is logged once, and
 * the owner's lost handler closes it and reconnects with back-off.  With
 * wechat_redis's tls, nginx's SSL runs the handshake, checks the
 * certificate and its name, and keeps the session for the next one.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_rconn.h"

#include <netinet/tcp.h>


#define NGX_HTTP_WECHAT_RECONNECT_MIN  100
#define NGX_HTTP_WECHAT_RECONNECT_MAX  5000

/* expectations a connection's queue starts with, and its output buffer */
#define NGX_HTTP_WECHAT_EXPECT_INIT    64
#define NGX_HTTP_WECHAT_OUT_INIT       4096

/* hiredis's TCP keepalive: 15 s idle, then 3 probes 5 s apart */
#define NGX_HTTP_WECHAT_KEEPIDLE       15
#define NGX_HTTP_WECHAT_KEEPCNT        3


static void ngx_http_wechat_rconn_read_handler(ngx_event_t *ev);
static void ngx_http_wechat_rconn_write_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_wechat_rconn_test_connect(
    ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_rconn_ready(ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_rconn_post(ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_rconn_flush(ngx_http_wechat_rconn_t *rc);
static ngx_int_t ngx_http_wechat_rconn_dispatch(ngx_http_wechat_rconn_t *rc,
    redisReply *reply);
static ngx_int_t ngx_http_wechat_rconn_expect(ngx_http_wechat_rconn_t *rc,
    ngx_http_wechat_reply_pt handler, void *data);
static u_char *ngx_http_wechat_rconn_reserve(ngx_http_wechat_rconn_t *rc,
    size_t size);
static void ngx_http_wechat_rconn_fail(ngx_http_wechat_rconn_t *rc,
    const char *fmt, ngx_err_t err);
static void ngx_http_wechat_rconn_ignore(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static socklen_t ngx_http_wechat_rconn_sockaddr(ngx_http_wechat_addr_t *addr,
    ngx_sockaddr_t *sa);
#if (NGX_SSL)
static void ngx_http_wechat_rconn_ssl_start(ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_rconn_ssl_done(ngx_connection_t *c);
static ngx_int_t ngx_http_wechat_rconn_ssl_verify(ngx_http_wechat_rconn_t *rc,
    ngx_connection_t *c, ngx_str_t *name);
static void ngx_http_wechat_rconn_ssl_save(ngx_connection_t *c);
#endif


/* one read buffer for all: the reader copies what it keeps */
static u_char  ngx_http_wechat_rconn_buffer[16384];


/*
 * Opens rc to rc->addr; NGX_ERROR when it cannot even start (logged), or
 * when the address is not known yet: a sentinel has not named the master.
 * What is sent before the connection is up leaves once it is.
 */

ngx_int_t
ngx_http_wechat_rconn_open(ngx_http_wechat_rconn_t *rc)
{
    ngx_int_t               rv;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc = &rc->peer;

    if (rc->addr->host.len == 0) {
        return NGX_ERROR;
    }

    ngx_memzero(pc, sizeof(ngx_peer_connection_t));

    pc->socklen = ngx_http_wechat_rconn_sockaddr(rc->addr, &rc->sockaddr);
    if (pc->socklen == 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "%s: \"%V\" is no address", rc->what, &rc->addr->name);
        return NGX_ERROR;
    }

    pc->sockaddr = &rc->sockaddr.sockaddr;
    pc->name = &rc->addr->name;
    pc->get = ngx_event_get_peer;
    pc->log = ngx_cycle->log;
    pc->log_error = NGX_ERROR_ERR;

    rc->reader = wx_resp_reader_create(NGX_HTTP_WECHAT_REPLY_MAX);
    if (rc->reader == NULL) {
        return NGX_ERROR;
    }

    rc->connected = 0;
    rc->out_len = 0;
    rc->out_sent = 0;

    rv = ngx_event_connect_peer(pc);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED) {
        /* nginx logged why */
        if (pc->connection) {
            ngx_close_connection(pc->connection);
            pc->connection = NULL;
        }

        wx_resp_reader_free(rc->reader);
        rc->reader = NULL;
        return NGX_ERROR;
    }

    c = pc->connection;
    c->data = rc;
    c->idle = rc->idle;
    c->read->handler = ngx_http_wechat_rconn_read_handler;
    c->write->handler = ngx_http_wechat_rconn_write_handler;

    if (rc->tls) {
        /* nginx's SSL keeps its state in the connection's pool */
        c->pool = ngx_create_pool(1024, ngx_cycle->log);
        if (c->pool == NULL) {
            ngx_close_connection(c);
            pc->connection = NULL;
            wx_resp_reader_free(rc->reader);
            rc->reader = NULL;
            return NGX_ERROR;
        }
    }

    /* connected at once (a unix socket): TLS starts from the event loop */

    if (rv == NGX_OK) {
        if (rc->tls) {
            ngx_post_event(c->write, &ngx_posted_events);

        } else {
            ngx_http_wechat_rconn_ready(rc);
        }
    }

    return NGX_OK;
}


/*
 * Closes rc, if open: each reply still expected is answered with NULL, in
 * order.  A handler may open the connection again.
 */

void
ngx_http_wechat_rconn_close(ngx_http_wechat_rconn_t *rc)
{
    ngx_uint_t                 i, head, count, size;
    ngx_http_wechat_expect_t  *expect;
    ngx_pool_t        *pool;
    ngx_connection_t  *c = rc->peer.connection;

    if (c == NULL) {
        return;
    }

#if (NGX_SSL)
    if (c->ssl) {
        /* the connection is dropped: nothing more is said on it */
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    pool = c->pool;
    ngx_close_connection(c);
    rc->peer.connection = NULL;
    rc->generation++;

    if (pool) {
        ngx_destroy_pool(pool);
    }

    wx_resp_reader_free(rc->reader);
    rc->reader = NULL;

    rc->out_len = 0;
    rc->out_sent = 0;

    expect = rc->expect;
    head = rc->head;
    count = rc->count;
    size = rc->size;

    rc->expect = NULL;
    rc->head = 0;
    rc->count = 0;
    rc->size = 0;

    for (i = 0; i < count; i++) {
        expect[(head + i) % size].handler(rc, NULL,
                                          expect[(head + i) % size].data);
    }

    if (rc->expect == NULL) {
        rc->expect = expect;
        rc->size = size;

    } else {
        ngx_free(expect);
    }
}


/* What a connection not yet up is doing, for a log line: "connect to". */

const char *
ngx_http_wechat_rconn_step(ngx_http_wechat_rconn_t *rc)
{
#if (NGX_SSL)
    ngx_connection_t  *c = rc->peer.connection;

    if (c && c->ssl && !c->ssl->handshaked) {
        return "TLS handshake with";
    }
#endif

    return "connect to";
}


/*
 * Queues len bytes of RESP; handler gets the reply, or NULL if the
 * connection goes first.  With no handler no reply is expected: a push
 * handler takes what comes.  They leave in one write per turn of the event
 * loop: the write is a posted event, run after every request this turn
 * woke has queued its commands.
 */

ngx_int_t
ngx_http_wechat_rconn_send(ngx_http_wechat_rconn_t *rc, u_char *data,
    size_t len, ngx_http_wechat_reply_pt handler, void *hdata)
{
    u_char  *p;

    if (rc->peer.connection == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_wechat_rconn_reserve(rc, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (handler
        && ngx_http_wechat_rconn_expect(rc, handler, hdata) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(p, data, len);
    rc->out_len += len;

    ngx_http_wechat_rconn_post(rc);

    return NGX_OK;
}


/* A command of argc arguments, as RESP; see ngx_http_wechat_rconn_send. */

ngx_int_t
ngx_http_wechat_rconn_command(ngx_http_wechat_rconn_t *rc,
    ngx_http_wechat_reply_pt handler, void *hdata, ngx_uint_t argc,
    ngx_str_t *argv)
{
    u_char  *p;

    if (rc->peer.connection == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_wechat_rconn_reserve(rc,
                                      NGX_INT_T_LEN + 3
                                      + ngx_http_wechat_resp_size(argv, argc));
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (handler
        && ngx_http_wechat_rconn_expect(rc, handler, hdata) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_http_wechat_resp_count(p, '*', argc);
    p = ngx_http_wechat_resp_args(p, argv, argc);

    rc->out_len = p - rc->out;

    ngx_http_wechat_rconn_post(rc);

    return NGX_OK;
}


/* A cluster's ASKING, whose +OK nobody reads. */

ngx_int_t
ngx_http_wechat_rconn_asking(ngx_http_wechat_rconn_t *rc)
{
    static u_char  asking[] = "*1\r\n$6\r\nASKING\r\n";

    return ngx_http_wechat_rconn_send(rc, asking, sizeof(asking) - 1,
                                      ngx_http_wechat_rconn_ignore, NULL);
}


/*
 * Where nothing is due for long, as on a pub/sub connection, TCP keepalive
 * is what ends one whose Redis host died without a word.
 */

void
ngx_http_wechat_rconn_keepalive(ngx_http_wechat_rconn_t *rc)
{
    int                on;
    ngx_connection_t  *c = rc->peer.connection;

    if (c == NULL || rc->addr->port == 0) {
        return;
    }

    on = 1;

    if (setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(int)) == -1) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, ngx_socket_errno,
                      "%s: TCP keepalive not enabled", rc->what);
        return;
    }

#ifdef TCP_KEEPIDLE
    on = NGX_HTTP_WECHAT_KEEPIDLE;
    (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &on, sizeof(int));
    on = NGX_HTTP_WECHAT_KEEPIDLE / NGX_HTTP_WECHAT_KEEPCNT;
    (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &on, sizeof(int));
    on = NGX_HTTP_WECHAT_KEEPCNT;
    (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &on, sizeof(int));
#endif
}


/* The write, once per turn of the event loop, when the socket takes it. */

static void
ngx_http_wechat_rconn_post(ngx_http_wechat_rconn_t *rc)
{
    ngx_event_t  *wev = rc->peer.connection->write;

    if (rc->connected && wev->ready && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static void
ngx_http_wechat_rconn_read_handler(ngx_event_t *ev)
{
    ssize_t                   n;
    wx_span_t                 bytes;
    ngx_uint_t                generation;
    wx_status_t               rv;
    redisReply               *reply;
    ngx_connection_t         *c = ev->data;
    ngx_http_wechat_rconn_t  *rc = c->data;

    if (c->close) {
        /* the worker is shutting down */
        rc->lost(rc);
        return;
    }

    if (!rc->connected) {
        if (ngx_http_wechat_rconn_test_connect(rc) != NGX_OK) {
            return;
        }

        ngx_http_wechat_rconn_ready(rc);

        if (!rc->connected) {
            return;     /* the TLS handshake runs */
        }
    }

    generation = rc->generation;

    for ( ;; ) {
        n = c->recv(c, ngx_http_wechat_rconn_buffer,
                    sizeof(ngx_http_wechat_rconn_buffer));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_wechat_rconn_fail(rc, "connection to \"%V\" lost: "
                                       "closed by the server", 0);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_wechat_rconn_fail(rc, "connection to \"%V\" lost",
                                       ngx_socket_errno);
            return;
        }

        bytes.data = ngx_http_wechat_rconn_buffer;
        bytes.len = n;

        rv = wx_resp_reader_feed(rc->reader, bytes);

        if (rv == WX_ERR_TOO_LARGE) {
            ngx_http_wechat_rconn_fail(rc, "\"%V\" sent a reply larger than "
                                       "1 MB, dropping the connection", 0);
            return;
        }

        for ( ;; ) {
            if (rv != WX_OK
                || wx_resp_reader_next(rc->reader, &reply) != WX_OK)
            {
                ngx_http_wechat_rconn_fail(rc, "\"%V\" broke the protocol, "
                                           "dropping the connection", 0);
                return;
            }

            if (reply == NULL) {
                break;
            }

            if (ngx_http_wechat_rconn_dispatch(rc, reply) != NGX_OK) {
                return;
            }

            /* a handler closed it, or closed and opened it again */

            if (rc->generation != generation) {
                return;
            }
        }
    }

    if (ngx_handle_read_event(ev, 0) != NGX_OK) {
        ngx_http_wechat_rconn_fail(rc, "reading from \"%V\" failed", 0);
    }
}


/* To the handler that asked, or the push handler; NGX_ERROR: it is lost. */

static ngx_int_t
ngx_http_wechat_rconn_dispatch(ngx_http_wechat_rconn_t *rc,
    redisReply *reply)
{
    void                      *data;
    ngx_http_wechat_reply_pt   handler;

    if (rc->count) {
        handler = rc->expect[rc->head].handler;
        data = rc->expect[rc->head].data;
        rc->head = (rc->head + 1) % rc->size;
        rc->count--;

    } else if (rc->push) {
        handler = rc->push;
        data = rc->data;

    } else {
        wx_resp_reply_free(reply);
        ngx_http_wechat_rconn_fail(rc, "\"%V\" sent a reply nobody asked "
                                   "for, dropping the connection", 0);
        return NGX_ERROR;
    }

    handler(rc, reply, data);

    wx_resp_reply_free(reply);

    return NGX_OK;
}


static void
ngx_http_wechat_rconn_write_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c = ev->data;
    ngx_http_wechat_rconn_t  *rc = c->data;

    if (!rc->connected) {
        if (ngx_http_wechat_rconn_test_connect(rc) != NGX_OK) {
            return;
        }

        ngx_http_wechat_rconn_ready(rc);
        return;
    }

    ngx_http_wechat_rconn_flush(rc);
}


/* Whether a connect(2) in progress succeeded; if not, it is lost. */

static ngx_int_t
ngx_http_wechat_rconn_test_connect(ngx_http_wechat_rconn_t *rc)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c = rc->peer.connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_http_wechat_rconn_fail(rc, "connect to \"%V\" failed", err);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Connected, and with TLS shaken hands: what was queued leaves now. */

static void
ngx_http_wechat_rconn_ready(ngx_http_wechat_rconn_t *rc)
{
    ngx_connection_t  *c = rc->peer.connection;

#if (NGX_SSL)
    if (rc->tls && c->ssl == NULL) {
        ngx_http_wechat_rconn_ssl_start(rc);
        return;
    }
#endif

    rc->connected = 1;
    c->write->ready = 1;

    if (rc->out_len) {
        ngx_http_wechat_rconn_post(rc);
    }
}


static void
ngx_http_wechat_rconn_flush(ngx_http_wechat_rconn_t *rc)
{
    ssize_t            n;
    ngx_connection_t  *c = rc->peer.connection;

    while (rc->out_sent < rc->out_len) {
        n = c->send(c, rc->out + rc->out_sent, rc->out_len - rc->out_sent);

        if (n == NGX_AGAIN) {
            /* the socket is full: epoll calls when it takes more */
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_wechat_rconn_fail(rc, "writing to \"%V\" failed",
                                           0);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_wechat_rconn_fail(rc, "connection to \"%V\" lost",
                                       ngx_socket_errno);
            return;
        }

        rc->out_sent += n;
    }

    rc->out_len = 0;
    rc->out_sent = 0;
}


static ngx_int_t
ngx_http_wechat_rconn_expect(ngx_http_wechat_rconn_t *rc,
    ngx_http_wechat_reply_pt handler, void *data)
{
    ngx_uint_t                 i, size;
    ngx_http_wechat_expect_t  *expect;

    if (rc->count == rc->size) {
        size = rc->size ? rc->size * 2 : NGX_HTTP_WECHAT_EXPECT_INIT;

        expect = ngx_alloc(size * sizeof(ngx_http_wechat_expect_t),
                           ngx_cycle->log);
        if (expect == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < rc->count; i++) {
            expect[i] = rc->expect[(rc->head + i) % rc->size];
        }

        if (rc->expect) {
            ngx_free(rc->expect);
        }

        rc->expect = expect;
        rc->size = size;
        rc->head = 0;
    }

    i = (rc->head + rc->count) % rc->size;
    rc->expect[i].handler = handler;
    rc->expect[i].data = data;
    rc->count++;

    return NGX_OK;
}


/* Room for size more bytes of output; what was sent is dropped. */

static u_char *
ngx_http_wechat_rconn_reserve(ngx_http_wechat_rconn_t *rc, size_t size)
{
    u_char  *out;
    size_t   want;

    if (rc->out_sent) {
        ngx_memmove(rc->out, rc->out + rc->out_sent,
                    rc->out_len - rc->out_sent);
        rc->out_len -= rc->out_sent;
        rc->out_sent = 0;
    }

    if (rc->out_size - rc->out_len >= size) {
        return rc->out + rc->out_len;
    }

    want = ngx_max(rc->out_size * 2, NGX_HTTP_WECHAT_OUT_INIT);

    while (want - rc->out_len < size) {
        want *= 2;
    }

    out = ngx_alloc(want, ngx_cycle->log);
    if (out == NULL) {
        return NULL;
    }

    if (rc->out) {
        ngx_memcpy(out, rc->out, rc->out_len);
        ngx_free(rc->out);
    }

    rc->out = out;
    rc->out_size = want;

    return out + rc->out_len;
}


/* Logs why the connection ends, once; the owner closes and reconnects. */

static void
ngx_http_wechat_rconn_fail(ngx_http_wechat_rconn_t *rc, const char *fmt,
    ngx_err_t err)
{
    u_char  *p, text[NGX_MAX_ERROR_STR];

    p = ngx_snprintf(text, sizeof(text), "%s: ", rc->what);
    p = ngx_snprintf(p, text + sizeof(text) - p, fmt, &rc->addr->name);

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err, "%*s", p - text, text);

    rc->lost(rc);
}


static void
ngx_http_wechat_rconn_ignore(ngx_http_wechat_rconn_t *rc, redisReply *reply,
    void *data)
{
}


/*
 * AUTH, with an ACL user or the password alone, when a password is set:
 * NGX_DECLINED when none is.
 */

ngx_int_t
ngx_http_wechat_rconn_auth(ngx_http_wechat_rconn_t *rc, ngx_str_t *user,
    ngx_str_t *password, ngx_http_wechat_reply_pt handler, void *data)
{
    ngx_str_t   argv[3];
    ngx_uint_t  argc;

    if (password->len == 0) {
        return NGX_DECLINED;
    }

    ngx_str_set(&argv[0], "AUTH");
    argc = 1;

    if (user->len) {
        argv[argc++] = *user;
    }

    argv[argc++] = *password;

    return ngx_http_wechat_rconn_command(rc, handler, data, argc, argv);
}


/*
 * The SSL context of the connections to Redis and to sentinels, made at
 * nginx -t: the files are read, and a bad one is an error then.
 */

ngx_int_t
ngx_http_wechat_rconn_ssl(ngx_conf_t *cf, ngx_http_wechat_main_conf_t *wmcf)
{
#if (NGX_SSL)
    ngx_pool_cleanup_t  *cln;

    if (wmcf->ssl_verify && wmcf->ssl_trusted_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_redis\" with \"tls\" needs "
                           "\"wechat_redis_ssl_trusted_certificate\", or "
                           "\"wechat_redis_ssl_verify off\"");
        return NGX_ERROR;
    }

    if ((wmcf->ssl_certificate.len == 0)
        != (wmcf->ssl_certificate_key.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_redis_ssl_certificate\" and "
                           "\"wechat_redis_ssl_certificate_key\" go "
                           "together");
        return NGX_ERROR;
    }

    wmcf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (wmcf->ssl == NULL) {
        return NGX_ERROR;
    }

    wmcf->ssl->log = cf->log;

    if (ngx_ssl_create(wmcf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(wmcf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = wmcf->ssl;

    if (wmcf->ssl_certificate.len
        && ngx_ssl_certificate(cf, wmcf->ssl, &wmcf->ssl_certificate,
                               &wmcf->ssl_certificate_key, NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (wmcf->ssl_trusted_certificate.len
        && ngx_ssl_trusted_certificate(cf, wmcf->ssl,
                                       &wmcf->ssl_trusted_certificate, 4)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a reconnect resumes the session, a TLS 1.3 ticket included */

    if (ngx_ssl_client_session_cache(cf, wmcf->ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tls\" needs nginx built with SSL");
    return NGX_ERROR;

#endif
}


#if (NGX_SSL)

static void
ngx_http_wechat_rconn_ssl_start(ngx_http_wechat_rconn_t *rc)
{
    u_char            *name;
    ngx_int_t          rv;
    ngx_connection_t  *c = rc->peer.connection;

    if (ngx_ssl_create_connection(rc->tls->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_wechat_rconn_fail(rc, "no TLS for \"%V\"", 0);
        return;
    }

    c->ssl->save_session = ngx_http_wechat_rconn_ssl_save;

    /* a name, not an address, is sent as SNI */

    if (rc->tls->ssl_name.len) {
        name = ngx_pnalloc(c->pool, rc->tls->ssl_name.len + 1);
        if (name == NULL) {
            ngx_http_wechat_rconn_fail(rc, "no TLS for \"%V\"", 0);
            return;
        }

        (void) ngx_cpystrn(name, rc->tls->ssl_name.data,
                           rc->tls->ssl_name.len + 1);
        (void) SSL_set_tlsext_host_name(c->ssl->connection, (char *) name);
    }

    if (rc->session && ngx_ssl_set_session(c, rc->session) != NGX_OK) {
        ngx_http_wechat_rconn_fail(rc, "no TLS for \"%V\"", 0);
        return;
    }

    rv = ngx_ssl_handshake(c);

    if (rv == NGX_AGAIN) {
        c->ssl->handler = ngx_http_wechat_rconn_ssl_done;
        return;
    }

    ngx_http_wechat_rconn_ssl_done(c);
}


static void
ngx_http_wechat_rconn_ssl_done(ngx_connection_t *c)
{
    ngx_str_t                 name;
    ngx_http_wechat_rconn_t  *rc = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_wechat_rconn_fail(rc, "TLS handshake with \"%V\" failed",
                                   0);
        return;
    }

    name = rc->tls->ssl_name.len ? rc->tls->ssl_name : rc->addr->host;

    if (rc->tls->ssl_verify
        && ngx_http_wechat_rconn_ssl_verify(rc, c, &name) != NGX_OK)
    {
        return;
    }

    c->read->handler = ngx_http_wechat_rconn_read_handler;
    c->write->handler = ngx_http_wechat_rconn_write_handler;

    ngx_http_wechat_rconn_ready(rc);

    /* what came with the end of the handshake, if anything */

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* The peer's certificate chains to the trusted ones, and names it. */

static ngx_int_t
ngx_http_wechat_rconn_ssl_verify(ngx_http_wechat_rconn_t *rc,
    ngx_connection_t *c, ngx_str_t *name)
{
    int     ok;
    long    rv;
    X509   *cert;
    u_char  text[NGX_SOCKADDR_STRLEN + 1];

    rv = SSL_get_verify_result(c->ssl->connection);

    if (rv != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "%s: the certificate of \"%V\" is not trusted: %s",
                      rc->what, &rc->addr->name,
                      X509_verify_cert_error_string(rv));
        rc->lost(rc);
        return NGX_ERROR;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "%s: \"%V\" sent no certificate", rc->what,
                      &rc->addr->name);
        rc->lost(rc);
        return NGX_ERROR;
    }

    /* an address is checked against the certificate's IP addresses */

    if (name->len < sizeof(text)
        && ngx_inet_addr(name->data, name->len) == INADDR_NONE
        && ngx_strlchr(name->data, name->data + name->len, ':') == NULL)
    {
        ok = X509_check_host(cert, (char *) name->data, name->len, 0, NULL);

    } else {
        ngx_cpystrn(text, name->data, ngx_min(name->len + 1, sizeof(text)));
        ok = X509_check_ip_asc(cert, (char *) text, 0);
    }

    X509_free(cert);

    if (ok != 1) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "%s: the certificate of \"%V\" is not for \"%V\"",
                      rc->what, &rc->addr->name, name);
        rc->lost(rc);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* A session to resume, kept across reconnects. */

static void
ngx_http_wechat_rconn_ssl_save(ngx_connection_t *c)
{
    ngx_ssl_session_t        *session;
    ngx_http_wechat_rconn_t  *rc = c->data;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (rc->session) {
        ngx_ssl_free_session(rc->session);
    }

    rc->session = session;
}

#endif


/* The socket address of an IP address and port, or of a unix path. */

static socklen_t
ngx_http_wechat_rconn_sockaddr(ngx_http_wechat_addr_t *addr,
    ngx_sockaddr_t *sa)
{
    in_addr_t  inaddr;

    ngx_memzero(sa, sizeof(ngx_sockaddr_t));

#if (NGX_HAVE_UNIX_DOMAIN)
    if (addr->port == 0) {
        if (addr->host.len >= sizeof(sa->sockaddr_un.sun_path)) {
            return 0;
        }

        sa->sockaddr_un.sun_family = AF_UNIX;
        ngx_memcpy(sa->sockaddr_un.sun_path, addr->host.data,
                   addr->host.len);
        return sizeof(struct sockaddr_un);
    }
#endif

    inaddr = ngx_inet_addr(addr->host.data, addr->host.len);

    if (inaddr != INADDR_NONE) {
        sa->sockaddr_in.sin_family = AF_INET;
        sa->sockaddr_in.sin_addr.s_addr = inaddr;
        sa->sockaddr_in.sin_port = htons(addr->port);
        return sizeof(struct sockaddr_in);
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(addr->host.data, addr->host.len,
                       sa->sockaddr_in6.sin6_addr.s6_addr)
        == NGX_OK)
    {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        sa->sockaddr_in6.sin6_port = htons(addr->port);
        return sizeof(struct sockaddr_in6);
    }
#endif

    return 0;
}


/*
 * Sets an address Redis named (a master, a cluster node) whose host and
 * name have room for any: an IP address, for resolving a name would block
 * the worker.  Its name is "label (host:port)", or "host:port".
 * NGX_DECLINED when it is the address already.
 */

ngx_int_t
ngx_http_wechat_redis_addr_set(ngx_http_wechat_addr_t *addr,
    ngx_str_t *label, ngx_str_t *host, ngx_uint_t port)
{
    u_char           *p;
    ngx_uint_t        ip, v6;
#if (NGX_HAVE_INET6)
    struct in6_addr   inaddr6;
#endif

    v6 = 0;

#if (NGX_HAVE_INET6)
    v6 = ngx_inet6_addr(host->data, host->len, inaddr6.s6_addr) == NGX_OK;
#endif

    ip = host->len > 0 && host->len < NGX_SOCKADDR_STRLEN
         && (v6 || ngx_inet_addr(host->data, host->len) != INADDR_NONE);

    if (!ip || port < 1 || port > 65535) {
        return NGX_ERROR;
    }

    if (addr->port == port && addr->host.len == host->len
        && ngx_strncmp(addr->host.data, host->data, host->len) == 0)
    {
        return NGX_DECLINED;
    }

    ngx_memcpy(addr->host.data, host->data, host->len);
    addr->host.data[host->len] = '\0';
    addr->host.len = host->len;
    addr->port = (in_port_t) port;

    p = addr->name.data;

    if (label->len) {
        p = ngx_sprintf(p, "%V (", label);
    }

    p = ngx_sprintf(p, v6 ? "[%V]:%ui" : "%V:%ui", host, port);

    if (label->len) {
        *p++ = ')';
    }

    addr->name.len = p - addr->name.data;

    return NGX_OK;
}


/* A connection's timer: cancelable, it never keeps a worker that exits. */

void
ngx_http_wechat_redis_timer(ngx_event_t *ev, ngx_event_handler_pt handler,
    void *data, ngx_log_t *log)
{
    ev->handler = handler;
    ev->data = data;
    ev->log = log;
    ev->cancelable = 1;
}


/*
 * The delay before reconnect attempt n (from 0): 100 ms doubling to 5 s,
 * plus up to half as much jitter, which keeps the workers of many nodes
 * from reconnecting in step.
 */

ngx_msec_t
ngx_http_wechat_redis_backoff(ngx_uint_t attempts)
{
    ngx_msec_t  delay;

    delay = NGX_HTTP_WECHAT_RECONNECT_MIN << ngx_min(attempts, 6);
    delay = ngx_min(delay, NGX_HTTP_WECHAT_RECONNECT_MAX);

    return delay + (ngx_msec_t) ngx_random() % (delay / 2 + 1);
}


/* The size of the RESP bulk strings of n arguments. */

size_t
ngx_http_wechat_resp_size(ngx_str_t *args, ngx_uint_t n)
{
    size_t      size;
    ngx_uint_t  i;

    size = 0;

    for (i = 0; i < n; i++) {
        size += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + args[i].len;
    }

    return size;
}


/*
 * "*<n>\r\n" or "$<n>\r\n".  A command has a dozen of them, and
 * ngx_sprintf's reading of its format cost more than the rest of the
 * formatting together.
 */

u_char *
ngx_http_wechat_resp_count(u_char *p, u_char type, size_t n)
{
    u_char  digits[NGX_SIZE_T_LEN], *d;

    d = digits + NGX_SIZE_T_LEN;

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    *p++ = type;
    p = ngx_cpymem(p, d, digits + NGX_SIZE_T_LEN - d);
    *p++ = '\r';
    *p++ = '\n';

    return p;
}


u_char *
ngx_http_wechat_resp_args(u_char *p, ngx_str_t *args, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        p = ngx_http_wechat_resp_count(p, '$', args[i].len);
        p = ngx_cpymem(p, args[i].data, args[i].len);
        *p++ = '\r';
        *p++ = '\n';
    }

    return p;
}
