
/*
 * ngx_http_wechat_module: the stores' layer, what a request asks of them:
 * Redis commands and scripts (_redis.c, the scripts generated from
 * src/lua/), waiting on a Redis channel (_pubsub.c), the node-local
 * record of used queries (_queries.c).
 */


#ifndef _NGX_HTTP_WECHAT_STORE_H_INCLUDED_
#define _NGX_HTTP_WECHAT_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_wechat_scripts.h"


#define NGX_HTTP_WECHAT_NO_SCRIPT        -1


/* WeChat tries a push three times in all, within about 15 s */
#define NGX_HTTP_WECHAT_QUERY_USES       3


/* How a Redis command ended, for its handler. */
#define NGX_HTTP_WECHAT_REDIS_OK         0
#define NGX_HTTP_WECHAT_REDIS_REFUSED    1  /* never run: no connection, or
                                               an error reply */
#define NGX_HTTP_WECHAT_REDIS_LOST       2  /* sent, and no answer: it may
                                               have run */

/* response is NULL unless ended is NGX_HTTP_WECHAT_REDIS_OK */
typedef void (*ngx_http_wechat_redis_handler_pt)(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);


typedef struct {
    ngx_str_t                   text;
    u_char                     *sha;            /* WX_SHA1_HEX_LEN */
} ngx_http_wechat_script_t;


/*
 * A poll waiting on a pub/sub channel.  The store wakes it through its
 * wake pointer: READY when the channel is subscribed (read the state now:
 * whatever changes later is published), CHANGED for a message, DOWN when
 * the connection is lost (READY follows the reconnect), EXIT when the
 * worker shuts down.
 */

#define NGX_HTTP_WECHAT_WAKE_READY       0
#define NGX_HTTP_WECHAT_WAKE_CHANGED     1
#define NGX_HTTP_WECHAT_WAKE_DOWN        2
#define NGX_HTTP_WECHAT_WAKE_EXIT        3

typedef struct ngx_http_wechat_waiter_s  ngx_http_wechat_waiter_t;

typedef void (*ngx_http_wechat_wake_pt)(ngx_http_wechat_waiter_t *w,
    ngx_uint_t why);

struct ngx_http_wechat_waiter_s {
    ngx_queue_t                 queue;          /* in its channel's */
    void                       *channel;        /* the store's, or NULL */
    ngx_http_wechat_wake_pt     wake;
    void                       *data;
};


/* _redis.c */
ngx_int_t ngx_http_wechat_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_wechat_redis_command(ngx_http_request_t *r,
    ngx_http_wechat_redis_handler_pt handler, ngx_int_t script,
    ngx_uint_t argc, ngx_str_t *argv);
extern ngx_http_wechat_script_t  ngx_http_wechat_scripts[];

/* _pubsub.c */
ngx_int_t ngx_http_wechat_pubsub_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_pubsub_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_wechat_pubsub_wait(ngx_http_wechat_waiter_t *w,
    ngx_str_t *channel);
void ngx_http_wechat_pubsub_leave(ngx_http_wechat_waiter_t *w);

/* _queries.c */
ngx_int_t ngx_http_wechat_queries_zone(ngx_conf_t *cf, size_t size);
ngx_int_t ngx_http_wechat_queries_claim(ngx_http_request_t *r,
    ngx_str_t *signature, u_char *digest, time_t ttl);


#endif /* _NGX_HTTP_WECHAT_STORE_H_INCLUDED_ */
