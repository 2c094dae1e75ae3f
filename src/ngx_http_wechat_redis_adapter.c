
/*
 * ngx_http_wechat_module: hiredis's asynchronous context driven by nginx's
 * event loop.  hiredis asks for read and write events through the hooks
 * below, and nginx's handlers call back into hiredis when they fire.
 */


#include "ngx_http_wechat_module.h"


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


static void
ngx_http_wechat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
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
    ngx_connection_t  *c = data;

    ngx_http_wechat_redis_add_event(c, c->write, NGX_WRITE_EVENT);
}


static void
ngx_http_wechat_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_wechat_redis_del_event(c->write, NGX_WRITE_EVENT);
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
