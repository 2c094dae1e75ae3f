
/*
 * ngx_http_wechat_module: hiredis's asynchronous context driven by nginx's
 * event loop.  hiredis asks for read and write events through the hooks
 * below, and nginx's handlers call back into hiredis when they fire.  The
 * command and pub/sub connections open and back off the same way, here.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_RECONNECT_MIN  100
#define NGX_HTTP_WECHAT_RECONNECT_MAX  5000


static void ngx_http_wechat_redis_read_handler(ngx_event_t *ev);
static void ngx_http_wechat_redis_write_handler(ngx_event_t *ev);
static void ngx_http_wechat_redis_add_event(ngx_connection_t *c,
    ngx_event_t *ev, ngx_int_t event);
static void ngx_http_wechat_redis_del_event(ngx_event_t *ev, ngx_int_t event);
static void ngx_http_wechat_redis_add_read(void *data);
static void ngx_http_wechat_redis_del_read(void *data);
static void ngx_http_wechat_redis_add_write(void *data);
static void ngx_http_wechat_redis_del_write(void *data);
static void ngx_http_wechat_redis_cleanup(void *data);


/*
 * Opens a connection to addr on nginx's event loop; ac->data is data.
 * NULL when it cannot even start (logged), or when the address is not
 * known yet: a sentinel has not named the master.
 */

redisAsyncContext *
ngx_http_wechat_redis_open(ngx_http_wechat_addr_t *addr, void *data)
{
    redisAsyncContext  *ac;

    if (addr->host.len == 0) {
        return NULL;
    }

    if (addr->port) {
        ac = redisAsyncConnect((char *) addr->host.data, addr->port);

    } else {
        ac = redisAsyncConnectUnix((char *) addr->host.data);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat redis: no memory for a connection");
        return NULL;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat redis: connect to \"%V\" failed: %s",
                      &addr->name, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }

    wx_redis_limit_reader(ac->c.reader);

    if (ngx_http_wechat_redis_attach(ac) != NGX_OK) {
        redisAsyncFree(ac);
        return NULL;
    }

    ac->data = data;

    return ac;
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


/* Wraps the hiredis socket in an nginx connection, for its events. */

ngx_int_t
ngx_http_wechat_redis_attach(redisAsyncContext *ac)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, ngx_cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_wechat_redis_read_handler;
    c->write->handler = ngx_http_wechat_redis_write_handler;
    c->read->log = c->log;
    c->write->log = c->log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_wechat_redis_add_read;
    ac->ev.delRead = ngx_http_wechat_redis_del_read;
    ac->ev.addWrite = ngx_http_wechat_redis_add_write;
    ac->ev.delWrite = ngx_http_wechat_redis_del_write;
    ac->ev.cleanup = ngx_http_wechat_redis_cleanup;

    return NGX_OK;
}


static void
ngx_http_wechat_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


/*
 * Commands are written once per turn of the event loop: the write is a
 * posted event, run after every request that this turn woke has queued
 * its commands, so they leave in one write(2) and Redis reads them in one
 * read.  Only a connection still opening, or a socket that took less than
 * all last time (ev->ready unset), waits for epoll to call it writable.
 */

static void
ngx_http_wechat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ev->ready = 0;

    redisAsyncHandleWrite(c->data);

    /* hiredis asks for the write event again when the socket was full */
    if (!ev->active) {
        ev->ready = 1;
    }
}


/*
 * Level-triggered events: hiredis reads at most one buffer per call and
 * expects to be called again while data is left.
 */

static void
ngx_http_wechat_redis_add_event(ngx_connection_t *c, ngx_event_t *ev,
    ngx_int_t event)
{
    if (!ev->active && ngx_add_event(ev, event, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "wechat redis: adding an event failed");
    }
}


static void
ngx_http_wechat_redis_del_event(ngx_event_t *ev, ngx_int_t event)
{
    if (ev->active) {
        ngx_del_event(ev, event, 0);
    }
}


static void
ngx_http_wechat_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_wechat_redis_add_event(c, c->read, NGX_READ_EVENT);
}


static void
ngx_http_wechat_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_wechat_redis_del_event(c->read, NGX_READ_EVENT);
}


static void
ngx_http_wechat_redis_add_write(void *data)
{
    ngx_connection_t   *c = data;
    redisAsyncContext  *ac = c->data;

    if ((ac->c.flags & REDIS_CONNECTED) && c->write->ready) {
        ngx_post_event(c->write, &ngx_posted_events);
        return;
    }

    ngx_http_wechat_redis_add_event(c, c->write, NGX_WRITE_EVENT);
}


static void
ngx_http_wechat_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_wechat_redis_del_event(c->write, NGX_WRITE_EVENT);

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
}


/* hiredis owns and closes the descriptor; nginx only lets go of it */

static void
ngx_http_wechat_redis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_wechat_redis_del_read(c);
    ngx_http_wechat_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}
