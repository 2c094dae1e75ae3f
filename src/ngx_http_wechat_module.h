
/*
 * ngx_http_wechat_module: WeChat Official Account QR-code binding and login
 * at the edge.  The conf and request context shared by the module's files.
 */


#ifndef _NGX_HTTP_WECHAT_MODULE_H_INCLUDED_
#define _NGX_HTTP_WECHAT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "core/wx_core.h"


#define NGX_HTTP_WECHAT_MODE_PLAIN       0
#define NGX_HTTP_WECHAT_MODE_COMPATIBLE  1
#define NGX_HTTP_WECHAT_MODE_SAFE        2

#define NGX_HTTP_WECHAT_BOUND            0
#define NGX_HTTP_WECHAT_CONFLICT         1
#define NGX_HTTP_WECHAT_EXPIRED          2
#define NGX_HTTP_WECHAT_OUTCOMES         3

/* the scripts loaded on every Redis connection, see _scripts.c */
#define NGX_HTTP_WECHAT_SCRIPT_ISSUE     0
#define NGX_HTTP_WECHAT_SCRIPT_RESOLVE   1
#define NGX_HTTP_WECHAT_SCRIPT_UNBIND    2
#define NGX_HTTP_WECHAT_SCRIPT_CLAIM     3
#define NGX_HTTP_WECHAT_SCRIPTS          4
#define NGX_HTTP_WECHAT_NO_SCRIPT        -1

/* metrics: pushes by outcome (the first three are the scan outcomes) */
#define NGX_HTTP_WECHAT_PUSH_UNAVAILABLE 3
#define NGX_HTTP_WECHAT_PUSH_UNKNOWN     4
#define NGX_HTTP_WECHAT_PUSH_PASSED      5
#define NGX_HTTP_WECHAT_PUSH_ANSWERED    6
#define NGX_HTTP_WECHAT_PUSH_OUTCOMES    7

/* metrics: why pushes were refused */
#define NGX_HTTP_WECHAT_REJECT_MISSING        0
#define NGX_HTTP_WECHAT_REJECT_SIGNATURE      1
#define NGX_HTTP_WECHAT_REJECT_TIMESTAMP      2
#define NGX_HTTP_WECHAT_REJECT_MSG_SIGNATURE  3
#define NGX_HTTP_WECHAT_REJECT_PLAINTEXT      4
#define NGX_HTTP_WECHAT_REJECT_XML            5
#define NGX_HTTP_WECHAT_REJECT_DECRYPT        6
#define NGX_HTTP_WECHAT_REJECT_TOO_LARGE      7
#define NGX_HTTP_WECHAT_REJECT_METHOD         8
#define NGX_HTTP_WECHAT_REJECT_REPLAY         9
#define NGX_HTTP_WECHAT_REJECT_FIELD          10
#define NGX_HTTP_WECHAT_REJECT_REASONS        11

/* metrics: poll answers (bound, conflict, expired, pending, unavailable) */
#define NGX_HTTP_WECHAT_POLL_EXPIRED     2
#define NGX_HTTP_WECHAT_POLL_UNAVAILABLE 4
#define NGX_HTTP_WECHAT_POLL_STATUSES    5

#define NGX_HTTP_WECHAT_BUCKETS          12
#define NGX_HTTP_WECHAT_MAX_WORKERS      64

/* WeChat retries within about 15 s; keep the first answer longer */
#define NGX_HTTP_WECHAT_DEDUP_TTL        "60"
#define NGX_HTTP_WECHAT_STREAM_MAXLEN    "100000"


typedef struct {
    ngx_str_t                   name;       /* as configured, for logs */
    ngx_str_t                   host;       /* address text, or unix path */
    in_port_t                   port;       /* 0 for a unix socket */
    ngx_uint_t                  db;
    ngx_str_t                   password;

    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  timeout;

    size_t                      replay_cache_size;

    ngx_flag_t                  lookup_user;    /* $wechat_user is used */
    ngx_flag_t                  endpoints;      /* any location uses us */
} ngx_http_wechat_main_conf_t;


/* Counters in shared memory, see _status.c. */

typedef struct {
    ngx_atomic_t                pushes[NGX_HTTP_WECHAT_PUSH_OUTCOMES];
    ngx_atomic_t                rejected[NGX_HTTP_WECHAT_REJECT_REASONS];
    ngx_atomic_t                dedup_hits;
    ngx_atomic_t                polls[NGX_HTTP_WECHAT_POLL_STATUSES];
    ngx_atomic_t                polls_waiting;
    ngx_atomic_t                redis_connected[NGX_HTTP_WECHAT_MAX_WORKERS];
                                                /* pids, by worker number */
    ngx_atomic_t                redis_reconnects;
    ngx_atomic_t                redis_timeouts;
    ngx_atomic_t                redis_latency[NGX_HTTP_WECHAT_BUCKETS];
    ngx_atomic_t                redis_latency_usec;
} ngx_http_wechat_metrics_t;

extern ngx_http_wechat_metrics_t  *ngx_http_wechat_metrics;

#define ngx_http_wechat_add(field, n)                                         \
    do {                                                                      \
        if (ngx_http_wechat_metrics) {                                        \
            (void) ngx_atomic_fetch_add(&ngx_http_wechat_metrics->field,      \
                                        (ngx_atomic_int_t) (n));              \
        }                                                                     \
    } while (0)

#define ngx_http_wechat_count(field)  ngx_http_wechat_add(field, 1)


#define NGX_HTTP_WECHAT_CALLBACK         1
#define NGX_HTTP_WECHAT_QRCODE           2
#define NGX_HTTP_WECHAT_POLL             3
#define NGX_HTTP_WECHAT_BINDING          4
#define NGX_HTTP_WECHAT_STATUS           5


typedef struct {
    ngx_uint_t                  endpoint;       /* what this location is */

    ngx_str_t                   appid;
    ngx_str_t                   token;
    time_t                      timestamp_skew;
    ngx_str_t                   pass;

    ngx_str_t                   redis_prefix;
    ngx_str_t                   key_prefix;     /* prefix "{" appid "}:" */

    ngx_http_complex_value_t   *user;
    time_t                      qrcode_expire;
    ngx_str_t                   reply[NGX_HTTP_WECHAT_OUTCOMES];
    ngx_flag_t                  unbind_on_unsubscribe;

    ngx_uint_t                  mode;
    ngx_array_t                *aes_keys;       /* of u_char[32] */
} ngx_http_wechat_loc_conf_t;


typedef struct ngx_http_wechat_cmd_s  ngx_http_wechat_cmd_t;

typedef struct {
    ngx_str_t                   signature;
    ngx_str_t                   timestamp;
    ngx_str_t                   nonce;
    ngx_str_t                   body;           /* the push as received */
    ngx_str_t                   echostr;        /* of a URL verification */
    u_char                      digest[WX_SHA1_HEX_LEN];
                                                /* of what the query signed */

    wx_event_t                  ev;
    ngx_str_t                   scene;
    ngx_str_t                   user;
    ngx_str_t                   openid;         /* asked for by wechat_binding */
    ngx_str_t                   poll_token;
    ngx_str_t                   resolution;

    ngx_http_wechat_cmd_t      *cmd;            /* Redis command in flight */

    ngx_str_t                   plain;          /* decrypted push XML */
    u_char                     *aes_key;        /* the key that decrypted */
    ngx_chain_t                *reply;          /* upstream reply, held */
    ngx_chain_t               **reply_last;
    size_t                      reply_size;

    unsigned                    parsed:1;
    unsigned                    encrypted:1;
    unsigned                    passed:1;
    unsigned                    hold_reply:1;
    unsigned                    waiting:1;      /* counted in polls_waiting */
} ngx_http_wechat_ctx_t;


/* how a Redis command ended, for its handler */
#define NGX_HTTP_WECHAT_REDIS_OK         0
#define NGX_HTTP_WECHAT_REDIS_REFUSED    1  /* an error reply: it did not run */
#define NGX_HTTP_WECHAT_REDIS_LOST       2  /* sent, and no reply: it may have
                                               run */

/* reply is NULL unless result is NGX_HTTP_WECHAT_REDIS_OK */
typedef void (*ngx_http_wechat_redis_handler_pt)(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t result);


/* _module.c */
extern ngx_module_t  ngx_http_wechat_module;
char *ngx_http_wechat_endpoint(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_uint_t endpoint,
    ngx_http_handler_pt handler);

/* _util.c */
ngx_http_wechat_ctx_t *ngx_http_wechat_get_ctx(ngx_http_request_t *r);
ngx_http_wechat_ctx_t *ngx_http_wechat_create_ctx(ngx_http_request_t *r);
void ngx_http_wechat_allocator(ngx_pool_t *pool, wx_allocator_t *a);
ngx_int_t ngx_http_wechat_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_wechat_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, u_char *data, size_t len);
ngx_int_t ngx_http_wechat_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const wx_json_field_t *fields, size_t n);
ngx_int_t ngx_http_wechat_send_answer(ngx_http_request_t *r,
    ngx_uint_t status, wx_span_t json);
ngx_int_t ngx_http_wechat_send_unavailable(ngx_http_request_t *r);
wx_span_t ngx_http_wechat_span(ngx_str_t *s);
ngx_str_t ngx_http_wechat_key(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, const char *kind, ngx_str_t *id);

ngx_str_t ngx_http_wechat_log_escape(ngx_pool_t *pool, ngx_str_t *s);

/* _queries.c */
ngx_int_t ngx_http_wechat_queries_zone(ngx_conf_t *cf, size_t size);
ngx_int_t ngx_http_wechat_queries_claim(ngx_http_request_t *r,
    ngx_str_t *signature, u_char *digest, time_t ttl);

/* _variables.c */
ngx_int_t ngx_http_wechat_add_variables(ngx_conf_t *cf);

/* _callback.c */
char *ngx_http_wechat_callback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_wechat_pass(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_reject(ngx_http_request_t *r, wx_status_t status,
    const char *what);

/* _crypto.c */
ngx_int_t ngx_http_wechat_decrypt(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_send_reply(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t xml);
ngx_int_t ngx_http_wechat_crypto_init(ngx_conf_t *cf);

/* _bind.c */
char *ngx_http_wechat_qrcode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_wechat_poll(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_wechat_binding(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_wechat_resolve(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_claim(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);

/* _redis.c */
ngx_int_t ngx_http_wechat_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_wechat_redis_command(ngx_http_request_t *r,
    ngx_http_wechat_redis_handler_pt handler, ngx_int_t script,
    ngx_uint_t argc, ngx_str_t *argv);
void ngx_http_wechat_redis_detach(ngx_http_wechat_cmd_t *cmd);

/* _status.c */
ngx_int_t ngx_http_wechat_status_zone(ngx_conf_t *cf);
char *ngx_http_wechat_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_wechat_observe_redis(ngx_msec_int_t usec);

/* _scripts.c */
extern ngx_str_t  ngx_http_wechat_scripts[NGX_HTTP_WECHAT_SCRIPTS];


#endif /* _NGX_HTTP_WECHAT_MODULE_H_INCLUDED_ */
