
/*
 * ngx_http_wechat_module: the module's conf, which every layer reads: what
 * the directives set (the main and location confs), the kinds of location
 * and of scene they name, and the module itself.  The lowest of the glue's
 * headers: it includes only nginx's and the core's.  The layers and their
 * headers are listed at the top of ngx_http_wechat_module.c.
 */


#ifndef _NGX_HTTP_WECHAT_CONF_H_INCLUDED_
#define _NGX_HTTP_WECHAT_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/wx_core.h"


#define NGX_HTTP_WECHAT_MODE_PLAIN       0
#define NGX_HTTP_WECHAT_MODE_COMPATIBLE  1
#define NGX_HTTP_WECHAT_MODE_SAFE        2

/* what signed links are for: a follower's registration, a login's confirm */
#define NGX_HTTP_WECHAT_PURPOSE_REGISTER  "register"
#define NGX_HTTP_WECHAT_PURPOSE_CONFIRM   "login-confirm"

/* the longest site user name or openid taken from a request */
#define NGX_HTTP_WECHAT_NAME_MAX         WX_NAME_MAX


/* what a label grows by as an address's name: " ([address]:port)" */
#define NGX_HTTP_WECHAT_ADDR_NAME_LEN                                        \
    (sizeof(" ([]:65535)") + NGX_SOCKADDR_STRLEN)


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

    ngx_flag_t                  lookup_user;    /* $wechat_user or
                                                   $wechat_unionid is
                                                   used */
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
#define NGX_HTTP_WECHAT_JSSDK            10

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
    ngx_array_t                *jssdk_hosts;    /* of wx_span_t */

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


extern ngx_module_t  ngx_http_wechat_module;


#endif /* _NGX_HTTP_WECHAT_CONF_H_INCLUDED_ */
