
/*
 * ngx_http_wechat_module: the util layer, _util.c's helpers (arguments,
 * cookies, keys, answers) and the request context that the layers above
 * share.  The context holds the state of a request's WeChat API call
 * (_api.c's) and of its access_token step (_token.c's) by value, so their
 * types are here; their functions are in ngx_http_wechat_api.h and
 * ngx_http_wechat_token.h.
 */


#ifndef _NGX_HTTP_WECHAT_UTIL_H_INCLUDED_
#define _NGX_HTTP_WECHAT_UTIL_H_INCLUDED_


#include "ngx_http_wechat_conf.h"


/* what Redis keeps of an account's event stream, at most */
#define NGX_HTTP_WECHAT_STREAM_MAXLEN    "100000"


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
    unsigned                        too_big:1;  /* the 502's cause, logged */
};


/*
 * A WeChat API call that needs the account's access_token: _token.c gets
 * the token, makes the call, and after a token error refreshes and calls
 * once more, as after errcode -1 (busy).  Or the account's jsapi_ticket,
 * which the same store keeps: its refresh is the call to getticket.
 */

typedef void (*ngx_http_wechat_wx_done_pt)(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);

typedef struct {
    ngx_uint_t                      endpoint;   /* for the metrics */
    ngx_str_t                       path;
    ngx_str_t                       args;       /* without access_token */
    ngx_str_t                       body;
    ngx_http_wechat_wx_done_pt      done;

    ngx_uint_t                      kind;       /* NGX_HTTP_WECHAT_TOKEN_*:
                                                   what the store gets */
    ngx_str_t                       token;      /* what it got */
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
    unsigned                        fetching:1;     /* the call fetches
                                                       the jsapi_ticket */
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
    ngx_str_t                   unionid;        /* a push sender's, a
                                                   method-1 phone's */
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
ngx_int_t ngx_http_wechat_add_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value);
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


#endif /* _NGX_HTTP_WECHAT_UTIL_H_INCLUDED_ */
