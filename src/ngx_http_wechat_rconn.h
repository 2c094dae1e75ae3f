
/*
 * ngx_http_wechat_module: the transport layer under the stores: a Redis
 * connection on nginx's event loop (_redis_adapter.c), and where it should
 * go: the master the sentinels name (_sentinel.c), the cluster node that
 * serves a slot (_cluster.c).
 */


#ifndef _NGX_HTTP_WECHAT_RCONN_H_INCLUDED_
#define _NGX_HTTP_WECHAT_RCONN_H_INCLUDED_


#include <hiredis/hiredis.h>

#include "ngx_http_wechat_conf.h"


/* the nodes of a Redis Cluster a worker may know */
#define NGX_HTTP_WECHAT_MAX_NODES        64


/*
 * a connection's call when where it should be moved: the sentinels named
 * another master, or a cluster's slot map changed
 */
typedef void (*ngx_http_wechat_moved_pt)(void);

/* the largest reply read: one past it ends the connection */
#define NGX_HTTP_WECHAT_REPLY_MAX        (1024 * 1024)

typedef struct ngx_http_wechat_rconn_s  ngx_http_wechat_rconn_t;

/* reply is NULL when the connection went before it came */
typedef void (*ngx_http_wechat_reply_pt)(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);

typedef struct {
    ngx_http_wechat_reply_pt    handler;
    void                       *data;
} ngx_http_wechat_expect_t;

/*
 * A connection to Redis, or to a sentinel, kept by its owner, which sets
 * what, addr, lost, push and data; _redis_adapter.c does the rest.
 */

struct ngx_http_wechat_rconn_s {
    const char                 *what;       /* "wechat redis", for logs */
    ngx_http_wechat_addr_t     *addr;
    ngx_http_wechat_main_conf_t *tls;       /* its TLS settings, or NULL */
    void                       *data;       /* the owner's */
    void                      (*lost)(ngx_http_wechat_rconn_t *rc);
                                            /* must close it */
    ngx_http_wechat_reply_pt    push;       /* replies nobody waits for,
                                               or NULL: they end it */

    ngx_peer_connection_t       peer;       /* connection: NULL if closed */
    ngx_sockaddr_t              sockaddr;
    wx_resp_reader_t           *reader;
    u_char                     *out;        /* RESP to write */
    size_t                      out_len;
    size_t                      out_sent;
    size_t                      out_size;
    ngx_http_wechat_expect_t   *expect;     /* a ring of replies due */
    ngx_uint_t                  head;
    ngx_uint_t                  count;
    ngx_uint_t                  size;
    ngx_uint_t                  generation; /* closes so far */
#if (NGX_SSL)
    ngx_ssl_session_t          *session;    /* for the next handshake */
#endif

    unsigned                    idle:1;     /* hears of a shutdown */
    unsigned                    connected:1;    /* connect(2) completed, on
                                                   this or the connection
                                                   last closed */
};


/* _redis_adapter.c */
ngx_int_t ngx_http_wechat_rconn_ssl(ngx_conf_t *cf,
    ngx_http_wechat_main_conf_t *wmcf);
ngx_int_t ngx_http_wechat_rconn_auth(ngx_http_wechat_rconn_t *rc,
    ngx_str_t *user, ngx_str_t *password, ngx_http_wechat_reply_pt handler,
    void *data);
ngx_int_t ngx_http_wechat_rconn_open(ngx_http_wechat_rconn_t *rc);
void ngx_http_wechat_rconn_close(ngx_http_wechat_rconn_t *rc);
const char *ngx_http_wechat_rconn_step(ngx_http_wechat_rconn_t *rc);
ngx_int_t ngx_http_wechat_rconn_send(ngx_http_wechat_rconn_t *rc,
    u_char *data, size_t len, ngx_http_wechat_reply_pt handler,
    void *hdata);
ngx_int_t ngx_http_wechat_rconn_command(ngx_http_wechat_rconn_t *rc,
    ngx_http_wechat_reply_pt handler, void *hdata, ngx_uint_t argc,
    ngx_str_t *argv);
ngx_int_t ngx_http_wechat_rconn_asking(ngx_http_wechat_rconn_t *rc);
void ngx_http_wechat_rconn_keepalive(ngx_http_wechat_rconn_t *rc);
size_t ngx_http_wechat_resp_size(ngx_str_t *args, ngx_uint_t n);
u_char *ngx_http_wechat_resp_count(u_char *p, u_char type, size_t n);
u_char *ngx_http_wechat_resp_args(u_char *p, ngx_str_t *args, ngx_uint_t n);
ngx_int_t ngx_http_wechat_redis_addr_set(ngx_http_wechat_addr_t *addr,
    ngx_str_t *label, ngx_str_t *host, ngx_uint_t port);
ngx_msec_t ngx_http_wechat_redis_backoff(ngx_uint_t attempts);
void ngx_http_wechat_redis_timer(ngx_event_t *ev,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log);

/* _cluster.c */
ngx_int_t ngx_http_wechat_cluster_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_cluster_watch(ngx_http_wechat_moved_pt changed);
ngx_uint_t ngx_http_wechat_cluster_seeds(void);
ngx_uint_t ngx_http_wechat_cluster_nodes(void);
ngx_http_wechat_addr_t *ngx_http_wechat_cluster_addr(ngx_uint_t node);
ngx_int_t ngx_http_wechat_cluster_route(ngx_str_t *key);
ngx_uint_t ngx_http_wechat_cluster_serves(ngx_uint_t node);
ngx_uint_t ngx_http_wechat_cluster_wanted(ngx_uint_t node);
ngx_int_t ngx_http_wechat_cluster_redirect(ngx_uint_t from,
    wx_redirect_t *to);
void ngx_http_wechat_cluster_stale(void);
void ngx_http_wechat_cluster_learn(ngx_http_wechat_rconn_t *rc,
    ngx_uint_t node);

/* _sentinel.c */
ngx_int_t ngx_http_wechat_sentinel_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_sentinel_exit_process(ngx_cycle_t *cycle);
void ngx_http_wechat_sentinel_watch(ngx_http_wechat_moved_pt moved);
void ngx_http_wechat_sentinel_ask(void);


#endif /* _NGX_HTTP_WECHAT_RCONN_H_INCLUDED_ */
