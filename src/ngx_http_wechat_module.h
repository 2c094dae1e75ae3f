
/*
 * ngx_http_wechat_module: WeChat Official Account QR-code binding and login
 * at the edge.  The conf and request context shared by the module's files.
 *
 * The files form layers, and calls go one way, down:
 *
 *   module     _module.c                directives, conf, init
 *   handlers   _callback.c _qrcode.c    what a location does
 *              _qrimage.c _apiproxy.c
 *              _poll.c _binding.c _import.c
 *              _redeem.c _link.c
 *              _confirm.c
 *              _status.c _variables.c
 *   flow       _scan.c                  the Redis steps of a push
 *              _code.c                  codes and links a scan sends
 *              _token.c                 WeChat API calls with the token
 *              _reply.c                 answers to WeChat, pass, filters
 *              _crypto.c                safe mode
 *   stores     _api.c                   WeChat's API, through subrequests
 *              _redis.c                 the Redis connection and commands
 *              _pubsub.c                the pub/sub connection, waiters
 *              _sentinel.c              where the master is, and failovers
 *              _cluster.c               which cluster node serves a slot
 *              _redis_adapter.c         a Redis connection on nginx's
 *                                       event loop, its replies read
 *              _queries.c               the node-local query record
 *              _scripts.c               generated from src/lua/
 *   util       _util.c                  context, arguments, answers
 *   metrics    _metrics.c               counters in shared memory
 *   core       core/wx_core.h           pure logic, C++ behind a C ABI
 *
 * A lower layer reaches a higher one only through a pointer it was handed:
 * a content handler, a filter, the body post-handler, a Redis completion
 * handler, a continuation.  Each layer registers its own pool cleanups.
 */


#ifndef _NGX_HTTP_WECHAT_MODULE_H_INCLUDED_
#define _NGX_HTTP_WECHAT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "core/wx_core.h"
#include "ngx_http_wechat_version.h"
#include "ngx_http_wechat_scripts.h"


#define NGX_HTTP_WECHAT_MODE_PLAIN       0
#define NGX_HTTP_WECHAT_MODE_COMPATIBLE  1
#define NGX_HTTP_WECHAT_MODE_SAFE        2

#define NGX_HTTP_WECHAT_NO_SCRIPT        -1

/* what signed links are for: a follower's registration, a login's confirm */
#define NGX_HTTP_WECHAT_PURPOSE_REGISTER  "register"
#define NGX_HTTP_WECHAT_PURPOSE_CONFIRM   "login-confirm"

/* the longest site user name or openid taken from a request */
#define NGX_HTTP_WECHAT_NAME_MAX         WX_NAME_MAX

/* WeChat tries a push three times in all, within about 15 s */
#define NGX_HTTP_WECHAT_QUERY_USES       3
#define NGX_HTTP_WECHAT_STREAM_MAXLEN    "100000"


/* what a label grows by as an address's name: " ([address]:port)" */
#define NGX_HTTP_WECHAT_ADDR_NAME_LEN                                        \
    (sizeof(" ([]:65535)") + NGX_SOCKADDR_STRLEN)


/* the nodes of a Redis Cluster a worker may know */
#define NGX_HTTP_WECHAT_MAX_NODES        64


/* A Redis server, or a sentinel, to connect to. */

typedef struct {
    ngx_str_t                   name;       /* for logs */
    ngx_str_t                   host;       /* address text, or unix path */
    in_port_t                   port;       /* 0 for a unix socket */
} ngx_http_wechat_addr_t;


typedef struct {
    ngx_http_wechat_addr_t      server;     /* with sentinels: the master
                                               they name, per worker */
    ngx_uint_t                  db;
    ngx_str_t                   user;       /* an ACL user, or none */
    ngx_str_t                   password;

    ngx_array_t                *cluster;    /* its seed nodes, of
                                               ngx_http_wechat_addr_t */
    ngx_array_t                *tags;       /* with a cluster: the hash
                                               tags of the accounts, of
                                               ngx_str_t */
    ngx_array_t                *sentinels;  /* of ngx_http_wechat_addr_t */
    ngx_str_t                   master;     /* its name at the sentinels */
    ngx_str_t                   sentinel_user;
    ngx_str_t                   sentinel_password;

    ngx_flag_t                  tls;        /* to Redis and sentinels */
    ngx_flag_t                  ssl_verify;
    ngx_str_t                   ssl_name;
    ngx_str_t                   ssl_trusted_certificate;
    ngx_str_t                   ssl_certificate;
    ngx_str_t                   ssl_certificate_key;
#if (NGX_SSL)
    ngx_ssl_t                  *ssl;
#endif

    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  timeout;

    size_t                      replay_cache_size;
    ngx_array_t                 accounts;       /* of callbacks' loc confs */
    ngx_array_t                 login_confirms; /* appids whose login
                                                   scenes wait for a
                                                   confirm, of ngx_str_t */

    ngx_flag_t                  lookup_user;    /* $wechat_user is used */
    ngx_flag_t                  endpoints;      /* any location uses us */
    ngx_flag_t                  pubsub;         /* a poll location waits */
} ngx_http_wechat_main_conf_t;


/* What a location is: the directive's cmd->post. */

#define NGX_HTTP_WECHAT_CALLBACK         1
#define NGX_HTTP_WECHAT_QRCODE           2
#define NGX_HTTP_WECHAT_POLL             3
#define NGX_HTTP_WECHAT_BINDING          4
#define NGX_HTTP_WECHAT_STATUS           5
#define NGX_HTTP_WECHAT_QRCODE_IMAGE     6
#define NGX_HTTP_WECHAT_API              7
#define NGX_HTTP_WECHAT_REDEEM           8
#define NGX_HTTP_WECHAT_LOGIN_CONFIRM    9

/* wechat_qrcode's kinds of scene */
#define NGX_HTTP_WECHAT_KIND_BIND        0
#define NGX_HTTP_WECHAT_KIND_LOGIN       1
#define NGX_HTTP_WECHAT_KIND_CODE        2

#define NGX_HTTP_WECHAT_TOKEN_STABLE     0
#define NGX_HTTP_WECHAT_TOKEN_CLASSIC    1

typedef struct {
    ngx_uint_t                  kind;
    ngx_http_handler_pt         handler;
    ngx_uint_t                  redis;      /* needs wechat_redis */
} ngx_http_wechat_endpoint_t;


typedef struct {
    ngx_http_wechat_endpoint_t *endpoint;       /* what it is, or NULL */

    ngx_str_t                   appid;
    ngx_str_t                   token;
    time_t                      timestamp_skew;
    ngx_str_t                   pass;

    ngx_str_t                   redis_prefix;
    ngx_str_t                   key_prefix;     /* prefix "{" appid "}:" */

    ngx_http_complex_value_t   *user;
    ngx_uint_t                  qrcode_kind;
    time_t                      qrcode_expire;
    ngx_flag_t                  qrcode_confirm; /* a scan waits for the
                                                   holder's say */
    ngx_uint_t                  qrcode_rate;    /* new scenes a second */
    ngx_str_t                   reply[WX_SCAN_OUTCOMES];
    ngx_str_t                   reply_subscribe;    /* to a new follower
                                                       who is no user */
    ngx_flag_t                  unbind_on_unsubscribe;
    ngx_str_t                   poll_cookie;
    ngx_str_t                   cookie_path;    /* "" until merged: the
                                                   qrcode location's
                                                   directory */
    ngx_str_t                   cookie_samesite;
    ngx_flag_t                  cookie_secure;  /* also without TLS here */
    ngx_http_core_loc_conf_t   *qrcode_location;

    ngx_uint_t                  redeem_attempts;
    ngx_flag_t                  redeem_token;   /* the browser's poll token
                                                   too */
    ngx_uint_t                  code_length;
    ngx_str_t                   code_template;
    ngx_array_t                *code_data;      /* of wx_template_field_t */

    ngx_array_t                *link_secrets;   /* of wx_span_t, current
                                                   first */
    time_t                      link_expire;
    ngx_str_t                   link_url;
    ngx_str_t                   link_purpose;   /* wechat_link_verify's, or
                                                   empty */
    ngx_str_t                   login_confirm_url;

    ngx_uint_t                  mode;
    ngx_array_t                *aes_keys;       /* of u_char[32] */

    ngx_str_t                   api_pass;       /* internal location */
    ngx_msec_t                  api_timeout;
    ngx_str_t                   secret;
    ngx_uint_t                  token_api;
    ngx_str_t                   token_key;      /* kept by another service */
    ngx_msec_t                  poll_timeout;
    ngx_msec_t                  poll_heartbeat;
} ngx_http_wechat_loc_conf_t;


typedef struct ngx_http_wechat_poll_s  ngx_http_wechat_poll_t;


typedef struct ngx_http_wechat_ctx_s  ngx_http_wechat_ctx_t;


/* What wechat_qrcode learns before it issues a scene: _qrcode.c's. */
typedef struct ngx_http_wechat_issue_s  ngx_http_wechat_issue_t;


/* A call to WeChat's API: _api.c makes it, its handler learns the end. */

typedef struct ngx_http_wechat_api_call_s  ngx_http_wechat_api_call_t;

typedef void (*ngx_http_wechat_api_handler_pt)(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);

struct ngx_http_wechat_api_call_s {
    ngx_http_wechat_loc_conf_t     *conf;       /* the account */
    ngx_str_t                       path;       /* "/cgi-bin/..." */
    ngx_str_t                       args;
    ngx_str_t                       body;       /* NULL data: a GET */
    ngx_http_wechat_api_handler_pt  handler;
    ngx_http_wechat_api_handler_pt  late;       /* an answer past deadline */
    ngx_msec_t                      deadline;   /* ngx_current_msec */
    ngx_http_log_handler_pt         log_handler;    /* the request's own */

    ngx_http_request_t             *request;
    ngx_pool_cleanup_t             *cleanup;
    ngx_event_t                     timer;      /* the deadline */
    ngx_uint_t                      status;     /* HTTP, 0 past the deadline */
    ngx_str_t                       answer;

    unsigned                        done:1;
    unsigned                        resume:1;
};


/* metrics: API calls, by endpoint and by result */
#define NGX_HTTP_WECHAT_API_TOKEN        0
#define NGX_HTTP_WECHAT_API_QRCODE       1
#define NGX_HTTP_WECHAT_API_PROXY        2
#define NGX_HTTP_WECHAT_API_TEMPLATE     3
#define NGX_HTTP_WECHAT_API_ENDPOINTS    4

#define NGX_HTTP_WECHAT_API_OK           0
#define NGX_HTTP_WECHAT_API_ERRCODE      1  /* WeChat answered an errcode */
#define NGX_HTTP_WECHAT_API_FAILED       2  /* no answer, or not HTTP 200 */
#define NGX_HTTP_WECHAT_API_RESULTS      3
#define NGX_HTTP_WECHAT_API_NO_TOKEN     3  /* not counted: Redis failed */
#define NGX_HTTP_WECHAT_API_BACKOFF      4  /* not counted: a refresh failed
                                               a moment ago, none is tried */


/*
 * A WeChat API call that needs the account's access_token: _token.c gets
 * the token, makes the call, and after a token error refreshes and calls
 * once more, as after errcode -1 (busy).
 */

typedef void (*ngx_http_wechat_wx_done_pt)(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);

typedef struct {
    ngx_uint_t                      endpoint;   /* for the metrics */
    ngx_str_t                       path;
    ngx_str_t                       args;       /* without access_token */
    ngx_str_t                       body;
    ngx_http_wechat_wx_done_pt      done;

    ngx_str_t                       token;
    ngx_str_t                       lock_id;
    ngx_event_t                     wait;
    struct ngx_http_wechat_waiter_s *waiter;    /* for another's refresh */
    ngx_msec_t                      interval;   /* between looks, growing */
    time_t                          retry_after;    /* with BACKOFF */

    ngx_uint_t                      result;     /* NGX_HTTP_WECHAT_API_* */
    ngx_uint_t                      status;     /* of the last answer */
    int64_t                         errcode;
    ngx_str_t                       errmsg;
    ngx_str_t                       answer;

    unsigned                        token_retried:1;
    unsigned                        busy_retried:1;
    unsigned                        starting:1;
    unsigned                        ended:1;
    unsigned                        subscribed:1;   /* the waiter's */
    unsigned                        reading:1;      /* a TOKEN in flight */
    unsigned                        again:1;        /* woken meanwhile */
} ngx_http_wechat_wx_t;

/* What follows a push's claim in Redis: answer the URL check, or pass. */
typedef void (*ngx_http_wechat_next_pt)(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);

struct ngx_http_wechat_ctx_s {
    ngx_http_wechat_loc_conf_t *callback;       /* the account of a push */
    ngx_str_t                   signature;
    ngx_str_t                   timestamp;
    ngx_str_t                   nonce;
    ngx_str_t                   msg_signature;
    ngx_str_t                   echostr;        /* of a URL verification */
    u_char                      digest[WX_SHA1_HEX_LEN];
                                                /* of what the query signed */
    wx_event_t                  ev;
    ngx_str_t                   scene;
    ngx_str_t                   user;
    ngx_str_t                   openid;         /* wechat_binding's */
    ngx_str_t                   link_openid;    /* a verified link's */
    ngx_str_t                  *link_fields;    /* a confirm link's, checked */
    ngx_str_t                   code;           /* a verification code */
    ngx_str_t                   poll_token;
    ngx_str_t                   poll_hash;      /* what Redis keeps of it */
    ngx_str_t                   resolution;
    ngx_http_wechat_next_pt     claimed;
    ngx_http_wechat_poll_t     *poll;           /* a waiting poll's state */

    ngx_http_wechat_api_call_t  api;
    ngx_http_wechat_wx_t        wx;
    ngx_str_t                   ticket;         /* of a QR code issued */
    ngx_str_t                   url;
    ngx_http_wechat_issue_t    *issue;

    ngx_str_t                   plain;          /* decrypted push XML */
    u_char                     *aes_key;        /* the key that decrypted */
    ngx_chain_t                *held;           /* the upstream's answer */
    ngx_chain_t               **held_last;
    size_t                      held_size;

    unsigned                    parsed:1;
    unsigned                    retry:1;        /* its query was used before */
    unsigned                    want_user:1;    /* look the sender's up */
    unsigned                    looked_up:1;    /* Redis answered it */
    unsigned                    encrypted:1;
    unsigned                    passed:1;
    unsigned                    holding:1;
    unsigned                    waiting:1;      /* counted in polls_waiting */
    unsigned                    svg:1;          /* a QR image's format */

    ngx_int_t                   image_size;
    ngx_int_t                   link_rc;        /* wechat_link_verify's:
                                                   0 until asked, NGX_AGAIN
                                                   while Redis answers, then
                                                   NGX_HTTP_OK or a refusal */
};


/* How a Redis command ended, for its handler. */
#define NGX_HTTP_WECHAT_REDIS_OK         0
#define NGX_HTTP_WECHAT_REDIS_REFUSED    1  /* never run: no connection, or
                                               an error reply */
#define NGX_HTTP_WECHAT_REDIS_LOST       2  /* sent, and no answer: it may
                                               have run */

/* response is NULL unless ended is NGX_HTTP_WECHAT_REDIS_OK */
/*
 * a connection's call when where it should be moved: the sentinels named
 * another master, or a cluster's slot map changed
 */
typedef void (*ngx_http_wechat_moved_pt)(void);

typedef void (*ngx_http_wechat_redis_handler_pt)(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);


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


/* metrics: pushes by outcome (the first ones are the scan outcomes) */
#define NGX_HTTP_WECHAT_PUSH_UNAVAILABLE  WX_SCAN_OUTCOMES
#define NGX_HTTP_WECHAT_PUSH_UNKNOWN      (WX_SCAN_OUTCOMES + 1)
#define NGX_HTTP_WECHAT_PUSH_PASSED       (WX_SCAN_OUTCOMES + 2)
#define NGX_HTTP_WECHAT_PUSH_ANSWERED     (WX_SCAN_OUTCOMES + 3)
#define NGX_HTTP_WECHAT_PUSH_OUTCOMES     (WX_SCAN_OUTCOMES + 4)

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

/* metrics: poll answers, by scene status, then unavailable */
#define NGX_HTTP_WECHAT_POLL_UNAVAILABLE  WX_SCENE_STATUSES
#define NGX_HTTP_WECHAT_POLL_STATUSES     (WX_SCENE_STATUSES + 1)

#define NGX_HTTP_WECHAT_BUCKETS           12
#define NGX_HTTP_WECHAT_MAX_WORKERS       64


typedef struct {
    ngx_atomic_t                pushes[NGX_HTTP_WECHAT_PUSH_OUTCOMES];
    ngx_atomic_t                rejected[NGX_HTTP_WECHAT_REJECT_REASONS];
    ngx_atomic_t                dedup_hits;
    ngx_atomic_t                polls[NGX_HTTP_WECHAT_POLL_STATUSES];
    ngx_atomic_t                polls_waiting;
    ngx_atomic_t                poll_wakeups;
    ngx_atomic_t                poll_timeouts;
    ngx_atomic_t                pubsub_channels;
    ngx_atomic_t                pubsub_reconnects;
    ngx_atomic_t                redis_connected[NGX_HTTP_WECHAT_MAX_WORKERS];
                                                /* pids, by worker number */
    ngx_atomic_t                redis_reconnects;
    ngx_atomic_t                redis_timeouts;
    ngx_atomic_t                redis_latency[NGX_HTTP_WECHAT_BUCKETS];
    ngx_atomic_t                redis_latency_usec;
    ngx_atomic_t                api_calls[NGX_HTTP_WECHAT_API_ENDPOINTS]
                                         [NGX_HTTP_WECHAT_API_RESULTS];
    ngx_atomic_t                token_refreshes[2];     /* ok, failed */
    ngx_atomic_t                token_issued;   /* unix time, latest seen */
    ngx_atomic_t                token_backoff_until;    /* unix time, latest
                                                           seen */
    ngx_atomic_t                token_refusals; /* answered in a back-off */
    ngx_atomic_t                token_wakeups[2];   /* message, timer */
    ngx_atomic_t                qrcodes[3];     /* new, reused, refused */
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


extern ngx_module_t  ngx_http_wechat_module;


/* handlers: _callback.c, _qrcode.c, _poll.c, _binding.c, _redeem.c,
   _link.c, _confirm.c, _status.c, _variables.c */
ngx_int_t ngx_http_wechat_callback_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_qrcode_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_poll_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_binding_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_qrimage_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_apiproxy_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_redeem_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_link_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_link_check(ngx_http_request_t *r,
    ngx_str_t *purpose, ngx_str_t *text, ngx_str_t *args, time_t *expires);
ngx_int_t ngx_http_wechat_bind_confirm_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_login_confirm_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_add_variables(ngx_conf_t *cf);

/* flow: _scan.c */
void ngx_http_wechat_resolve(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_claim(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_http_wechat_next_pt next);

/* flow: _code.c */
ngx_int_t ngx_http_wechat_code_new(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *hash);
ngx_int_t ngx_http_wechat_code_reply(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *text, int64_t time);
ngx_int_t ngx_http_wechat_code_text(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, ngx_str_t *text, wx_span_t *out);
void ngx_http_wechat_code_template(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_link_new(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_str_t *url, wx_link_t *link,
    wx_span_t *out);

/* flow: _token.c */
ngx_int_t ngx_http_wechat_wx_call(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_wx_failed(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);

/* flow: _reply.c */
ngx_int_t ngx_http_wechat_reply_init(ngx_conf_t *cf);
ngx_int_t ngx_http_wechat_send_reply(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t xml);
void ngx_http_wechat_pass(ngx_http_request_t *r, ngx_http_wechat_ctx_t *ctx);

/* flow: _crypto.c */
ngx_int_t ngx_http_wechat_decrypt(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_encrypt(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx, wx_span_t xml, wx_span_t *out);

/*
 * stores: _api.c, _redis.c, _redis_adapter.c, _pubsub.c, _sentinel.c,
 * _cluster.c, _queries.c, _scripts.c
 */
ngx_int_t ngx_http_wechat_api_call(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
ngx_int_t ngx_http_wechat_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_wechat_redis_command(ngx_http_request_t *r,
    ngx_http_wechat_redis_handler_pt handler, ngx_int_t script,
    ngx_uint_t argc, ngx_str_t *argv);
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
ngx_int_t ngx_http_wechat_pubsub_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_pubsub_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_wechat_pubsub_wait(ngx_http_wechat_waiter_t *w,
    ngx_str_t *channel);
void ngx_http_wechat_pubsub_leave(ngx_http_wechat_waiter_t *w);
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
ngx_int_t ngx_http_wechat_sentinel_init_process(ngx_cycle_t *cycle);
void ngx_http_wechat_sentinel_exit_process(ngx_cycle_t *cycle);
void ngx_http_wechat_sentinel_watch(ngx_http_wechat_moved_pt moved);
void ngx_http_wechat_sentinel_ask(void);
ngx_int_t ngx_http_wechat_queries_zone(ngx_conf_t *cf, size_t size);
ngx_int_t ngx_http_wechat_queries_claim(ngx_http_request_t *r,
    ngx_str_t *signature, u_char *digest, time_t ttl);
extern ngx_http_wechat_script_t  ngx_http_wechat_scripts[];

/* util: _util.c */
ngx_http_wechat_ctx_t *ngx_http_wechat_get_ctx(ngx_http_request_t *r);
ngx_http_wechat_ctx_t *ngx_http_wechat_create_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_begin(ngx_http_request_t *r, ngx_uint_t methods,
    ngx_http_wechat_ctx_t **ctx);
void ngx_http_wechat_allocator(ngx_pool_t *pool, wx_allocator_t *a);
wx_span_t ngx_http_wechat_span(ngx_str_t *s);
ngx_int_t ngx_http_wechat_args(ngx_http_request_t *r,
    const char *const *names, ngx_uint_t n, ngx_str_t *values);
ngx_int_t ngx_http_wechat_form(ngx_http_request_t *r, ngx_str_t *text,
    const char *const *names, ngx_uint_t n, ngx_str_t *values);
void ngx_http_wechat_arg_name(u_char **p, u_char *end, ngx_str_t *name);
ngx_int_t ngx_http_wechat_read_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);
ngx_uint_t ngx_http_wechat_is_name(ngx_str_t *s);
ngx_uint_t ngx_http_wechat_is_openid(ngx_str_t *s);
ngx_uint_t ngx_http_wechat_is_purpose(ngx_str_t *s);
ngx_table_elt_t *ngx_http_wechat_header(ngx_http_request_t *r,
    ngx_str_t *name);
ngx_int_t ngx_http_wechat_network(ngx_pool_t *pool, ngx_str_t *addr,
    ngx_str_t *out);
ngx_int_t ngx_http_wechat_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value);
ngx_str_t ngx_http_wechat_number(ngx_pool_t *pool, int64_t n);
extern ngx_str_t  ngx_http_wechat_kinds[];
ngx_str_t ngx_http_wechat_key(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, const char *kind, ngx_str_t *id);
ngx_int_t ngx_http_wechat_binding_keys(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_str_t *keys);
ngx_str_t ngx_http_wechat_now(ngx_http_request_t *r);
ngx_chain_t *ngx_http_wechat_chain(ngx_pool_t *pool, u_char *data,
    size_t len);
ngx_int_t ngx_http_wechat_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, u_char *data, size_t len);
ngx_int_t ngx_http_wechat_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const wx_json_field_t *fields, size_t n);
ngx_int_t ngx_http_wechat_no_store(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_send_answer(ngx_http_request_t *r,
    ngx_uint_t status, wx_span_t json);
ngx_int_t ngx_http_wechat_send_unavailable(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_send_retry(ngx_http_request_t *r,
    ngx_uint_t status, const char *what, time_t seconds);
ngx_int_t ngx_http_wechat_wait_redis(ngx_http_request_t *r, ngx_int_t rc);
extern ngx_str_t  ngx_http_wechat_stream_maxlen;

#define ngx_http_wechat_json_str(k, v)                                       \
    { k, WX_JSON_STRING, { (const unsigned char *) (v)->data, (v)->len }, 0 }
ngx_int_t ngx_http_wechat_reject(ngx_http_request_t *r, wx_status_t status,
    const char *what);
ngx_str_t ngx_http_wechat_log_escape(ngx_pool_t *pool, ngx_str_t *s);

/* metrics: _metrics.c */
ngx_int_t ngx_http_wechat_metrics_zone(ngx_conf_t *cf);
void ngx_http_wechat_metrics_redis_latency(ngx_msec_int_t usec);
void ngx_http_wechat_metrics_redis_connected(ngx_uint_t connected);


#endif /* _NGX_HTTP_WECHAT_MODULE_H_INCLUDED_ */
