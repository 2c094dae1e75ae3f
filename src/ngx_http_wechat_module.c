
/*
 * ngx_http_wechat_module: directives, configuration and the module itself,
 * the top of the glue: it registers the handlers below it.
 *
 * The files form layers, and calls go one way, down; so do includes: a
 * file includes the headers of its own layer and of those below, and only
 * those whose names it uses.
 *
 *   module     _module.c                directives, conf, init
 *   handlers   _callback.c _qrcode.c    what a location does
 *              _qrimage.c _apiproxy.c   _handlers.h
 *              _poll.c _binding.c
 *              _import.c _import.h      the bindings in bulk
 *              _redeem.c _link.c
 *              _confirm.c _jssdk.c
 *              _oauth.c _oauth_callback.c   OAuth web authorization,
 *              _oauth_scene.c           _oauth.h
 *              _status.c _variables.c
 *              _errors.c                nginx's own errors, as JSON
 *   flow       _scan.c                  the Redis steps of a push
 *              _code.c                  codes and links a scan sends
 *              _reply.c                 answers to WeChat, pass, filters
 *              _crypto.c                safe mode; the four: _push.h
 *              _token.c                 WeChat API calls with the token,
 *                                       _token.h
 *   stores     _api.c                   WeChat's API, through subrequests,
 *                                       _api.h
 *              _redis.c                 the Redis commands
 *              _pubsub.c                the pub/sub connection, waiters
 *              _queries.c               the node-local query record
 *              _scripts.c _scripts.h    generated from src/lua/; the four:
 *                                       _store.h
 *   transport  _redis_adapter.c         a Redis connection on nginx's
 *                                       event loop, its replies read
 *              _sentinel.c              where the master is, and failovers
 *              _cluster.c               which cluster node serves a slot;
 *                                       the three: _rconn.h
 *   util       _util.c                  arguments, answers, and the
 *                                       request context: _util.h
 *   metrics    _metrics.c               counters in shared memory,
 *                                       _metrics.h
 *   conf       _conf.h                  what the directives set
 *              _version.h               the module's version
 *   core       core/wx_core.h           pure logic, C++ behind a C ABI
 *
 * A lower layer reaches a higher one only through a pointer it was handed:
 * a content handler, a filter, the body post-handler, a Redis completion
 * handler, a continuation.  Each layer registers its own pool cleanups.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_rconn.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_api.h"
#include "ngx_http_wechat_push.h"
#include "ngx_http_wechat_handlers.h"
#include "ngx_http_wechat_import.h"
#include "ngx_http_wechat_version.h"


#define NGX_HTTP_WECHAT_QRCODE_EXPIRE_MAX  2592000     /* WeChat's 30 days */
#define NGX_HTTP_WECHAT_REDIS_TIMEOUT_MAX  4000


static ngx_int_t ngx_http_wechat_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_wechat_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_wechat_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_wechat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_wechat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_wechat_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_wechat_key_prefix(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static ngx_int_t ngx_http_wechat_check_endpoint(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static ngx_int_t ngx_http_wechat_check_callback(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static ngx_int_t ngx_http_wechat_check_scenes(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static ngx_int_t ngx_http_wechat_check_jssdk(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf, ngx_http_wechat_main_conf_t *wmcf);
static ngx_int_t ngx_http_wechat_check_qrcode(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf, ngx_http_wechat_main_conf_t *wmcf);
static ngx_uint_t ngx_http_wechat_uses_account_keys(ngx_uint_t kind);
static ngx_int_t ngx_http_wechat_check_account(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static ngx_int_t ngx_http_wechat_check_api(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static char *ngx_http_wechat_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_wechat_redis_params(ngx_conf_t *cf,
    ngx_http_wechat_main_conf_t *wmcf, ngx_uint_t first);
static ngx_uint_t ngx_http_wechat_param(ngx_str_t *arg, const char *name,
    ngx_str_t *value);
static ngx_int_t ngx_http_wechat_redis_list(ngx_conf_t *cf, ngx_str_t *list,
    ngx_array_t **addrs);
static ngx_int_t ngx_http_wechat_redis_addr(ngx_conf_t *cf, ngx_str_t *text,
    ngx_http_wechat_addr_t *addr);
static ngx_int_t ngx_http_wechat_cluster_tag(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static char *ngx_http_wechat_pass_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_reply(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_aes_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_qrcode_expire(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_wechat_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_qrcode(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_qrcode_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_poll_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_wechat_cookie_path(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_wechat_loc_conf_t *wlcf);
static ngx_int_t ngx_http_wechat_cookie_samesite(ngx_conf_t *cf,
    ngx_str_t *v, ngx_http_wechat_loc_conf_t *wlcf);
static ngx_int_t ngx_http_wechat_check_cookie(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static char *ngx_http_wechat_template_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_wechat_link_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_link_verify(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_jssdk_hosts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wechat_code_length(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_wechat_deprecated(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_wechat_check_links(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static ngx_int_t ngx_http_wechat_check_confirms(ngx_conf_t *cf,
    ngx_http_wechat_main_conf_t *wmcf);
static ngx_int_t ngx_http_wechat_check_login(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf);
static void ngx_http_wechat_check_return(ngx_conf_t *cf);
static ngx_int_t ngx_http_wechat_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_wechat_init_process(ngx_cycle_t *cycle);
static void ngx_http_wechat_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_wechat_modes[] = {
    { ngx_string("plain"), NGX_HTTP_WECHAT_MODE_PLAIN },
    { ngx_string("compatible"), NGX_HTTP_WECHAT_MODE_COMPATIBLE },
    { ngx_string("safe"), NGX_HTTP_WECHAT_MODE_SAFE },
    { ngx_null_string, 0 }
};


static ngx_conf_post_handler_pt  ngx_http_wechat_qrcode_expire_p =
    ngx_http_wechat_qrcode_expire;

static ngx_conf_post_handler_pt  ngx_http_wechat_code_length_p =
    ngx_http_wechat_code_length;

static ngx_conf_num_bounds_t  ngx_http_wechat_redeem_attempts_bounds = {
    ngx_conf_check_num_bounds, 1, 100
};


/* the names that replaced those of one release ago, which still work */

static ngx_str_t  ngx_http_wechat_callback_token_name =
    ngx_string("wechat_callback_token");
static ngx_str_t  ngx_http_wechat_scene_user_name =
    ngx_string("wechat_scene_user");
static ngx_str_t  ngx_http_wechat_access_token_api_name =
    ngx_string("wechat_access_token_api");
static ngx_str_t  ngx_http_wechat_redeem_poll_token_name =
    ngx_string("wechat_redeem_poll_token");


/* wechat_reply's names of the scan outcomes, and their defaults */

static char  *ngx_http_wechat_reply_names[WX_SCAN_OUTCOMES] = {
    "bound", "conflict", "expired", "login", "register", "code",
    "bind_code", "login_confirm"
};


static ngx_http_wechat_endpoint_t  ngx_http_wechat_callback_endpoint = {
    NGX_HTTP_WECHAT_CALLBACK, ngx_http_wechat_callback_handler, 0
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_qrcode_endpoint = {
    NGX_HTTP_WECHAT_QRCODE, ngx_http_wechat_qrcode_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_poll_endpoint = {
    NGX_HTTP_WECHAT_POLL, ngx_http_wechat_poll_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_binding_endpoint = {
    NGX_HTTP_WECHAT_BINDING, ngx_http_wechat_binding_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_bindings_endpoint = {
    NGX_HTTP_WECHAT_BINDINGS, ngx_http_wechat_bindings_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_status_endpoint = {
    NGX_HTTP_WECHAT_STATUS, ngx_http_wechat_status_handler, 0
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_qrimage_endpoint = {
    NGX_HTTP_WECHAT_QRCODE_IMAGE, ngx_http_wechat_qrimage_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_api_endpoint = {
    NGX_HTTP_WECHAT_API, ngx_http_wechat_apiproxy_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_login_confirm_endpoint = {
    NGX_HTTP_WECHAT_LOGIN_CONFIRM, ngx_http_wechat_login_confirm_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_redeem_endpoint = {
    NGX_HTTP_WECHAT_REDEEM, ngx_http_wechat_redeem_handler, 1
};

static ngx_http_wechat_endpoint_t  ngx_http_wechat_jssdk_endpoint = {
    NGX_HTTP_WECHAT_JSSDK, ngx_http_wechat_jssdk_handler, 1
};


static ngx_conf_enum_t  ngx_http_wechat_token_apis[] = {
    { ngx_string("stable"), NGX_HTTP_WECHAT_TOKEN_STABLE },
    { ngx_string("classic"), NGX_HTTP_WECHAT_TOKEN_CLASSIC },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_wechat_commands[] = {

    { ngx_string("wechat_appid"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, appid),
      NULL },

    { ngx_string("wechat_callback_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, token),
      NULL },

    { ngx_string("wechat_timestamp_skew"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, timestamp_skew),
      NULL },

    { ngx_string("wechat_callback"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_callback_endpoint },

    { ngx_string("wechat_pass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_pass_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, pass),
      NULL },

    { ngx_string("wechat_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_wechat_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, connect_timeout),
      NULL },

    { ngx_string("wechat_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, timeout),
      NULL },

    { ngx_string("wechat_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, ssl_trusted_certificate),
      NULL },

    { ngx_string("wechat_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, ssl_verify),
      NULL },

    { ngx_string("wechat_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, ssl_name),
      NULL },

    { ngx_string("wechat_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, ssl_certificate),
      NULL },

    { ngx_string("wechat_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, ssl_certificate_key),
      NULL },

    { ngx_string("wechat_replay_cache_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wechat_main_conf_t, replay_cache_size),
      NULL },

    { ngx_string("wechat_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, redis_prefix),
      NULL },

    { ngx_string("wechat_qrcode"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_qrcode,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_qrcode_endpoint },

    { ngx_string("wechat_qrcode_confirm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, qrcode_confirm),
      NULL },

    { ngx_string("wechat_scene_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, user),
      NULL },

    { ngx_string("wechat_qrcode_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, qrcode_expire),
      &ngx_http_wechat_qrcode_expire_p },

    { ngx_string("wechat_qrcode_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_qrcode_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, qrcode_rate),
      NULL },

    { ngx_string("wechat_reply"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_wechat_reply,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_poll"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_poll_endpoint },

    { ngx_string("wechat_poll_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, poll_timeout),
      NULL },

    { ngx_string("wechat_poll_heartbeat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, poll_heartbeat),
      NULL },

    { ngx_string("wechat_binding"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_binding_endpoint },

    { ngx_string("wechat_bindings"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_bindings_endpoint },

    { ngx_string("wechat_unbind_on_unsubscribe"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, unbind_on_unsubscribe),
      NULL },

    { ngx_string("wechat_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, mode),
      &ngx_http_wechat_modes },

    { ngx_string("wechat_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_status_endpoint },

    { ngx_string("wechat_aes_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_wechat_aes_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_qrcode_image"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_qrimage_endpoint },

    { ngx_string("wechat_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_api_endpoint },

    { ngx_string("wechat_api_pass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, api_pass),
      NULL },

    { ngx_string("wechat_api_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, api_timeout),
      NULL },

    { ngx_string("wechat_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, secret),
      NULL },

    { ngx_string("wechat_access_token_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, token_api),
      &ngx_http_wechat_token_apis },

    { ngx_string("wechat_access_token_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, token_key),
      NULL },

    { ngx_string("wechat_poll_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_wechat_poll_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_redeem"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_redeem_endpoint },

    { ngx_string("wechat_redeem_poll_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, redeem_token),
      NULL },

    { ngx_string("wechat_redeem_attempts"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, redeem_attempts),
      &ngx_http_wechat_redeem_attempts_bounds },

    { ngx_string("wechat_code_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, code_length),
      &ngx_http_wechat_code_length_p },

    { ngx_string("wechat_code_template"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_wechat_template_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_link_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_wechat_link_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_link_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, link_expire),
      NULL },

    { ngx_string("wechat_link_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, link_url),
      NULL },

    { ngx_string("wechat_login_confirm_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wechat_loc_conf_t, login_confirm_url),
      NULL },

    { ngx_string("wechat_login_confirm"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_login_confirm_endpoint },

    { ngx_string("wechat_link_verify"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_wechat_link_verify,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wechat_jssdk"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wechat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_jssdk_endpoint },

    { ngx_string("wechat_jssdk_hosts"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_wechat_jssdk_hosts,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * The old names, for one release: three things were a "token" (the
     * callback's Token, the poll token, the access_token), and
     * "wechat_user" also named the variable of the sender's site user.
     */

    { ngx_string("wechat_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_deprecated,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_callback_token_name },

    { ngx_string("wechat_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_deprecated,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_scene_user_name },

    { ngx_string("wechat_token_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wechat_deprecated,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_access_token_api_name },

    { ngx_string("wechat_redeem_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_wechat_deprecated,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_wechat_redeem_poll_token_name },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_wechat_module_ctx = {
    ngx_http_wechat_preconfiguration,      /* preconfiguration */
    ngx_http_wechat_postconfiguration,     /* postconfiguration */

    ngx_http_wechat_create_main_conf,      /* create main configuration */
    ngx_http_wechat_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_wechat_create_loc_conf,       /* create location configuration */
    ngx_http_wechat_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_wechat_module = {
    NGX_MODULE_V1,
    &ngx_http_wechat_module_ctx,           /* module context */
    ngx_http_wechat_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_wechat_init_module,           /* init module */
    ngx_http_wechat_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_wechat_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_wechat_default_replies[WX_SCAN_OUTCOMES] = {
    ngx_string("绑定成功"),
    ngx_string("该微信已绑定其他账号"),
    ngx_string("二维码已过期，请刷新页面后重试"),
    ngx_string("登录成功"),
    ngx_string("该微信尚未绑定账号，请在网页上完成注册"),
    ngx_string("验证码 {code}，{minutes} 分钟内有效"),
    ngx_string("绑定验证码 {code}，请在网页上输入以完成绑定，{minutes} 分钟内"
               "有效。不是你本人操作请勿告诉他人。"),
    ngx_string("请确认是否登录：{confirm} 不是你本人操作请忽略。")
};


static ngx_int_t
ngx_http_wechat_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_wechat_add_variables(cf);
}


static ngx_int_t
ngx_http_wechat_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                    i;
    ngx_http_handler_pt          *h;
    ngx_http_variable_t          *v;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_wechat_main_conf_t  *wmcf;

    static ngx_str_t  user = ngx_string("wechat_user");
    static ngx_str_t  unionid = ngx_string("wechat_unionid");

    /*
     * the user and unionid behind an openid cost a Redis round trip: only
     * if used
     */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if ((v[i].name.len == user.len
             && ngx_strncmp(v[i].name.data, user.data, user.len) == 0)
            || (v[i].name.len == unionid.len
                && ngx_strncmp(v[i].name.data, unionid.data, unionid.len)
                   == 0))
        {
            wmcf->lookup_user = 1;
        }
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_wechat_link_handler;

    if (ngx_http_wechat_check_confirms(cf, wmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (wmcf->endpoints
        && (ngx_http_wechat_metrics_zone(cf) != NGX_OK
            || ngx_http_wechat_queries_zone(cf, wmcf->replay_cache_size)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (ngx_http_wechat_api_init(cf) != NGX_OK
        || ngx_http_wechat_errors_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_reply_init(cf);
}


static void *
ngx_http_wechat_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_wechat_main_conf_t));
    if (wmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wmcf->server = { { 0, NULL }, { 0, NULL }, 0 };
     *     wmcf->cluster = NULL;
     *     wmcf->tags = NULL;
     *     wmcf->sentinels = NULL;
     *     wmcf->master = { 0, NULL };
     *     wmcf->sentinel_password = { 0, NULL };
     *     wmcf->db = 0;
     *     wmcf->user = { 0, NULL };
     *     wmcf->password = { 0, NULL };
     *     wmcf->sentinel_user = { 0, NULL };
     *     wmcf->tls = 0;
     *     wmcf->ssl_name = { 0, NULL };
     *     wmcf->ssl_trusted_certificate = { 0, NULL };
     *     wmcf->ssl_certificate = { 0, NULL };
     *     wmcf->ssl_certificate_key = { 0, NULL };
     *     wmcf->lookup_user = 0;
     *     wmcf->endpoints = 0;
     */

    if (ngx_array_init(&wmcf->accounts, cf->pool, 4,
                       sizeof(ngx_http_wechat_loc_conf_t *))
        != NGX_OK
        || ngx_array_init(&wmcf->login_confirms, cf->pool, 2,
                          sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NULL;
    }

    wmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    wmcf->timeout = NGX_CONF_UNSET_MSEC;
    wmcf->replay_cache_size = NGX_CONF_UNSET_SIZE;
    wmcf->ssl_verify = NGX_CONF_UNSET;

    return wmcf;
}


static char *
ngx_http_wechat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_wechat_main_conf_t *wmcf = conf;

    ngx_conf_init_msec_value(wmcf->connect_timeout, 1000);
    ngx_conf_init_msec_value(wmcf->timeout, 1000);
    ngx_conf_init_size_value(wmcf->replay_cache_size, 4 * 1024 * 1024);
    ngx_conf_init_value(wmcf->ssl_verify, 1);

    if (wmcf->tls) {
        if (ngx_http_wechat_rconn_ssl(cf, wmcf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (wmcf->ssl_trusted_certificate.len
               || wmcf->ssl_certificate.len || wmcf->ssl_name.len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_redis_ssl_*\" needs the \"tls\" "
                           "parameter of \"wechat_redis\"");
        return NGX_CONF_ERROR;
    }

    if (wmcf->replay_cache_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_replay_cache_size\" must be at least "
                           "%uzk", 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    /* a push waits for one command at most, and WeChat waits 5 s */

    if (wmcf->timeout > NGX_HTTP_WECHAT_REDIS_TIMEOUT_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_redis_timeout\" must not exceed 4s: "
                           "WeChat waits 5s for the answer to a push");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_wechat_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_wechat_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_wechat_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->appid = { 0, NULL };
     *     conf->token = { 0, NULL };
     *     conf->pass = { 0, NULL };
     *     conf->redis_prefix = { 0, NULL };
     *     conf->key_prefix = { 0, NULL };
     *     conf->reply[] = { 0, NULL };
     *     conf->qrcode_kind = NGX_HTTP_WECHAT_KIND_BIND;
     *     conf->code_template = { 0, NULL };
     *     conf->link_purpose = { 0, NULL };
     *     conf->login_confirm_url = { 0, NULL };
     */

    conf->timestamp_skew = NGX_CONF_UNSET;
    conf->user = NGX_CONF_UNSET_PTR;
    conf->qrcode_expire = NGX_CONF_UNSET;
    conf->qrcode_confirm = NGX_CONF_UNSET;
    conf->redeem_token = NGX_CONF_UNSET;
    conf->qrcode_rate = NGX_CONF_UNSET_UINT;
    conf->cookie_secure = NGX_CONF_UNSET;
    conf->unbind_on_unsubscribe = NGX_CONF_UNSET;
    conf->mode = NGX_CONF_UNSET_UINT;
    conf->aes_keys = NGX_CONF_UNSET_PTR;
    conf->api_timeout = NGX_CONF_UNSET_MSEC;
    conf->token_api = NGX_CONF_UNSET_UINT;
    conf->redeem_attempts = NGX_CONF_UNSET_UINT;
    conf->code_length = NGX_CONF_UNSET_UINT;
    conf->code_data = NGX_CONF_UNSET_PTR;
    conf->link_secrets = NGX_CONF_UNSET_PTR;
    conf->link_expire = NGX_CONF_UNSET;
    conf->jssdk_hosts = NGX_CONF_UNSET_PTR;
    conf->poll_timeout = NGX_CONF_UNSET_MSEC;
    conf->poll_heartbeat = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_wechat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_wechat_loc_conf_t *prev = parent;
    ngx_http_wechat_loc_conf_t *conf = child;

    ngx_uint_t  i;

    ngx_conf_merge_str_value(conf->appid, prev->appid, "");
    ngx_conf_merge_str_value(conf->token, prev->token, "");
    ngx_conf_merge_sec_value(conf->timestamp_skew, prev->timestamp_skew, 300);
    ngx_conf_merge_str_value(conf->pass, prev->pass, "");
    ngx_conf_merge_str_value(conf->redis_prefix, prev->redis_prefix, "wx:");
    ngx_conf_merge_ptr_value(conf->user, prev->user, NULL);
    ngx_conf_merge_sec_value(conf->qrcode_expire, prev->qrcode_expire, 300);
    ngx_conf_merge_value(conf->qrcode_confirm, prev->qrcode_confirm, 1);
    ngx_conf_merge_value(conf->redeem_token, prev->redeem_token, 0);
    ngx_conf_merge_uint_value(conf->qrcode_rate, prev->qrcode_rate, 20);
    ngx_conf_merge_value(conf->unbind_on_unsubscribe,
                         prev->unbind_on_unsubscribe, 0);
    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_WECHAT_MODE_PLAIN);
    ngx_conf_merge_ptr_value(conf->aes_keys, prev->aes_keys, NULL);
    ngx_conf_merge_str_value(conf->api_pass, prev->api_pass, "");
    ngx_conf_merge_msec_value(conf->api_timeout, prev->api_timeout, 3000);
    ngx_conf_merge_str_value(conf->secret, prev->secret, "");
    ngx_conf_merge_uint_value(conf->token_api, prev->token_api,
                              NGX_HTTP_WECHAT_TOKEN_STABLE);
    ngx_conf_merge_str_value(conf->token_key, prev->token_key, "");
    ngx_conf_merge_str_value(conf->poll_cookie, prev->poll_cookie,
                             "wechat_poll");
    ngx_conf_merge_str_value(conf->cookie_path, prev->cookie_path, "");
    ngx_conf_merge_str_value(conf->cookie_samesite, prev->cookie_samesite,
                             "Lax");
    ngx_conf_merge_value(conf->cookie_secure, prev->cookie_secure, 0);
    ngx_conf_merge_uint_value(conf->redeem_attempts, prev->redeem_attempts,
                              5);
    ngx_conf_merge_uint_value(conf->code_length, prev->code_length, 6);
    ngx_conf_merge_str_value(conf->code_template, prev->code_template, "");
    ngx_conf_merge_ptr_value(conf->code_data, prev->code_data, NULL);
    ngx_conf_merge_ptr_value(conf->link_secrets, prev->link_secrets, NULL);
    ngx_conf_merge_ptr_value(conf->jssdk_hosts, prev->jssdk_hosts, NULL);
    ngx_conf_merge_sec_value(conf->link_expire, prev->link_expire, 600);
    ngx_conf_merge_str_value(conf->link_url, prev->link_url, "");
    ngx_conf_merge_str_value(conf->login_confirm_url,
                             prev->login_confirm_url, "");
    ngx_conf_merge_msec_value(conf->poll_timeout, prev->poll_timeout, 25000);
    ngx_conf_merge_msec_value(conf->poll_heartbeat, prev->poll_heartbeat,
                              10000);

    ngx_conf_merge_str_value(conf->reply_subscribe, prev->reply_subscribe,
                             "");

    for (i = 0; i < WX_SCAN_OUTCOMES; i++) {
        if (conf->reply[i].data == NULL) {
            conf->reply[i] = prev->reply[i].data
                             ? prev->reply[i]
                             : ngx_http_wechat_default_replies[i];
        }
    }

    if (ngx_http_wechat_check_endpoint(cf, conf) != NGX_OK
        || ngx_http_wechat_check_login(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->link_purpose.len) {
        ngx_http_wechat_check_return(cf);
    }

    if (ngx_http_wechat_key_prefix(cf, conf) != NGX_OK
        || ngx_http_wechat_cluster_tag(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * One hash tag per account: every key a script touches hashes to the
 * same Redis Cluster slot.
 */

static ngx_int_t
ngx_http_wechat_key_prefix(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    u_char  *p;

    conf->key_prefix.len = conf->redis_prefix.len + conf->appid.len
                           + sizeof("{}:") - 1;
    conf->key_prefix.data = ngx_pnalloc(cf->pool, conf->key_prefix.len);
    if (conf->key_prefix.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(conf->key_prefix.data, conf->redis_prefix.data,
                   conf->redis_prefix.len);
    *p++ = '{';
    p = ngx_cpymem(p, conf->appid.data, conf->appid.len);
    *p++ = '}';
    *p = ':';

    return NGX_OK;
}


/* What each endpoint needs, checked where it is, not where inherited. */

static ngx_int_t
ngx_http_wechat_check_endpoint(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf)
{
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);

    if (conf->mode != NGX_HTTP_WECHAT_MODE_PLAIN
        && (conf->aes_keys == NULL || conf->appid.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_mode\" compatible and safe need "
                           "\"wechat_aes_key\" and \"wechat_appid\"");
        return NGX_ERROR;
    }

    if (conf->endpoint == NULL) {
        return NGX_OK;
    }

    if (conf->endpoint->redis && wmcf->server.name.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_qrcode\", \"wechat_poll\" and "
                           "\"wechat_binding\" need \"wechat_redis\"");
        return NGX_ERROR;
    }

    if (conf->endpoint->kind == NGX_HTTP_WECHAT_CALLBACK) {
        return ngx_http_wechat_check_callback(cf, conf);
    }

    if (conf->endpoint->kind == NGX_HTTP_WECHAT_POLL && conf->poll_timeout) {
        wmcf->pubsub = 1;
    }

    if ((conf->endpoint->kind == NGX_HTTP_WECHAT_API
         || conf->endpoint->kind == NGX_HTTP_WECHAT_JSSDK
         || (conf->endpoint->kind == NGX_HTTP_WECHAT_QRCODE
             && conf->api_pass.len))
        && ngx_http_wechat_check_api(cf, conf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (conf->endpoint->kind == NGX_HTTP_WECHAT_JSSDK
        && ngx_http_wechat_check_jssdk(cf, conf, wmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (conf->endpoint->kind == NGX_HTTP_WECHAT_QRCODE
        && ngx_http_wechat_check_qrcode(cf, conf, wmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_check_scenes(cf, conf);
}


/* a push's template message and links are checked with its account */

static ngx_int_t
ngx_http_wechat_check_callback(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf)
{
    if ((conf->code_template.len
         && ngx_http_wechat_check_api(cf, conf) != NGX_OK)
        || ngx_http_wechat_check_links(cf, conf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_check_account(cf, conf);
}


/* waiters hear of the end of a ticket refresh, whatever the token */

static ngx_int_t
ngx_http_wechat_check_jssdk(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf,
    ngx_http_wechat_main_conf_t *wmcf)
{
    wmcf->pubsub = 1;

    if (conf->jssdk_hosts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_jssdk\" needs "
                           "\"wechat_jssdk_hosts\": the hosts whose "
                           "pages it signs");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A login QR code that waits for a confirmation has its account's
 * confirmations listened for; a bind QR code needs the site user.
 */

static ngx_int_t
ngx_http_wechat_check_qrcode(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf,
    ngx_http_wechat_main_conf_t *wmcf)
{
    ngx_str_t  *appid;

    if (conf->qrcode_kind == NGX_HTTP_WECHAT_KIND_LOGIN
        && conf->qrcode_confirm)
    {
        appid = ngx_array_push(&wmcf->login_confirms);
        if (appid == NULL) {
            return NGX_ERROR;
        }

        *appid = conf->appid;
    }

    if (conf->qrcode_kind == NGX_HTTP_WECHAT_KIND_BIND && conf->user == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_qrcode bind\" needs "
                           "\"wechat_scene_user\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* What an endpoint of scenes or bindings needs, last. */

static ngx_int_t
ngx_http_wechat_check_scenes(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    if (conf->appid.len == 0
        && ngx_http_wechat_uses_account_keys(conf->endpoint->kind))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_qrcode\", \"wechat_qrcode_image\", "
                           "\"wechat_poll\", \"wechat_binding\" and "
                           "\"wechat_redeem\" need \"wechat_appid\": the "
                           "account whose scenes and bindings they use");
        return NGX_ERROR;
    }

    /* a QR image draws the url WeChat's qrcode/create gave the scene */

    if (conf->endpoint->kind == NGX_HTTP_WECHAT_QRCODE_IMAGE
        && conf->api_pass.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_qrcode_image\" needs "
                           "\"wechat_api_pass\": only scenes that WeChat "
                           "issued a QR code for have an image");
        return NGX_ERROR;
    }

    if (conf->endpoint->kind == NGX_HTTP_WECHAT_QRCODE) {
        return ngx_http_wechat_check_cookie(cf, conf);
    }

    return NGX_OK;
}


/* scenes and bindings live under their account's key prefix */

static ngx_uint_t
ngx_http_wechat_uses_account_keys(ngx_uint_t kind)
{
    return kind == NGX_HTTP_WECHAT_QRCODE
           || kind == NGX_HTTP_WECHAT_POLL
           || kind == NGX_HTTP_WECHAT_BINDING
           || kind == NGX_HTTP_WECHAT_BINDINGS
           || kind == NGX_HTTP_WECHAT_REDEEM
           || kind == NGX_HTTP_WECHAT_QRCODE_IMAGE;
}


/*
 * The poll cookie's path, unless path= gave it: the directory of the
 * wechat_qrcode location, "/login/" for "/login/qrcode".  The cookie then
 * reaches the qrcode location itself, which gives a pending scene back to
 * the browser holding it, and a poll location beside it, and no other
 * part of the site.
 */

static ngx_int_t
ngx_http_wechat_check_cookie(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    size_t                     len;
    ngx_http_core_loc_conf_t  *clcf = conf->qrcode_location;

    if (conf->cookie_path.len) {
        return NGX_OK;
    }

    len = 0;

    if (clcf && clcf->name.len && clcf->name.data[0] == '/'
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && !clcf->named)
    {
        len = clcf->name.len;

        while (clcf->name.data[len - 1] != '/') {
            len--;
        }
    }

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_qrcode\" in a regex or named location "
                           "needs \"wechat_poll_cookie\" with \"path=\"");
        return NGX_ERROR;
    }

    conf->cookie_path.data = clcf->name.data;
    conf->cookie_path.len = len;

    return NGX_OK;
}


/*
 * wechat_redis's parameters from the first'th: db=, user=, password=, tls,
 * for Sentinel sentinel=, master=, sentinel_user= and sentinel_password=,
 * for a cluster cluster=.
 */

static ngx_int_t
ngx_http_wechat_redis_params(ngx_conf_t *cf,
    ngx_http_wechat_main_conf_t *wmcf, ngx_uint_t first)
{
    ngx_int_t    db;
    ngx_str_t   *value, v;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = first; i < cf->args->nelts; i++) {

        if (value[i].len == 3 && ngx_strncmp(value[i].data, "tls", 3) == 0) {
            wmcf->tls = 1;

        } else if (ngx_http_wechat_param(&value[i], "db=", &v)) {
            db = ngx_atoi(v.data, v.len);
            if (db == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid database \"%V\"", &value[i]);
                return NGX_ERROR;
            }

            wmcf->db = db;

        } else if (ngx_http_wechat_param(&value[i], "master=", &v)) {

            /* it goes into commands, log lines, and space-separated
               messages from the sentinels */

            if (v.len == 0 || !ngx_http_wechat_is_name(&v)
                || ngx_strlchr(v.data, v.data + v.len, ' '))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid master name \"%V\"", &v);
                return NGX_ERROR;
            }

            wmcf->master = v;

        } else if (ngx_http_wechat_param(&value[i], "sentinel=", &v)) {
            if (ngx_http_wechat_redis_list(cf, &v, &wmcf->sentinels)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else if (ngx_http_wechat_param(&value[i], "cluster=", &v)) {
            if (ngx_http_wechat_redis_list(cf, &v, &wmcf->cluster) != NGX_OK) {
                return NGX_ERROR;
            }

        } else if (!ngx_http_wechat_param(&value[i], "password=",
                                          &wmcf->password)
                   && !ngx_http_wechat_param(&value[i], "user=", &wmcf->user)
                   && !ngx_http_wechat_param(&value[i], "sentinel_password=",
                                             &wmcf->sentinel_password)
                   && !ngx_http_wechat_param(&value[i], "sentinel_user=",
                                             &wmcf->sentinel_user))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* A "name=value" argument: its value, when it is the parameter name. */

static ngx_uint_t
ngx_http_wechat_param(ngx_str_t *arg, const char *name, ngx_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len < len || ngx_strncmp(arg->data, name, len) != 0) {
        return 0;
    }

    value->data = arg->data + len;
    value->len = arg->len - len;

    return 1;
}


/* sentinel= and cluster=: host:port[,host:port...] */

static ngx_int_t
ngx_http_wechat_redis_list(ngx_conf_t *cf, ngx_str_t *list,
    ngx_array_t **addrs)
{
    u_char                  *p, *last, *comma;
    ngx_str_t                text;
    ngx_http_wechat_addr_t  *addr;

    if (*addrs) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate list of addresses \"%V\"", list);
        return NGX_ERROR;
    }

    *addrs = ngx_array_create(cf->pool, 3, sizeof(ngx_http_wechat_addr_t));
    if (*addrs == NULL) {
        return NGX_ERROR;
    }

    p = list->data;
    last = list->data + list->len;

    do {
        comma = ngx_strlchr(p, last, ',');

        text.data = p;
        text.len = (comma ? comma : last) - p;

        addr = ngx_array_push(*addrs);
        if (addr == NULL
            || ngx_http_wechat_redis_addr(cf, &text, addr) != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = comma + 1;

    } while (comma);

    return NGX_OK;
}


/*
 * An address, resolved here, once: a worker must not block on DNS.  A
 * unix: path is taken as it is.
 */

static ngx_int_t
ngx_http_wechat_redis_addr(ngx_conf_t *cf, ngx_str_t *text,
    ngx_http_wechat_addr_t *addr)
{
    u_char     *p;
    size_t      len;
    ngx_url_t   u;

    addr->name = *text;

    if (ngx_strncmp(text->data, "unix:", 5) == 0) {
        len = text->len - 5;
        p = ngx_pnalloc(cf->pool, len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(p, text->data + 5, len + 1);
        addr->host.data = p;
        addr->host.len = len;
        addr->port = 0;
        return NGX_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *text;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\"",
                           u.err ? u.err : "no address", text);
        return NGX_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                        NGX_SOCKADDR_STRLEN, 0);
    p[len] = '\0';

    addr->host.data = p;
    addr->host.len = len;
    addr->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_OK;
}


/* What a call to WeChat's API needs: where to send it, and a token. */

static ngx_int_t
ngx_http_wechat_check_api(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    ngx_http_wechat_main_conf_t  *wmcf;

    if (conf->api_pass.len == 0 || conf->api_pass.data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "WeChat's API needs \"wechat_api_pass\" with "
                           "the URI of an internal location");
        return NGX_ERROR;
    }

    if (conf->appid.len == 0
        || (conf->secret.len == 0 && conf->token_key.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "WeChat's API needs \"wechat_appid\" and "
                           "\"wechat_secret\" or "
                           "\"wechat_access_token_key\"");
        return NGX_ERROR;
    }

    /* the end of a token refresh is published to those who wait for it */

    if (conf->token_key.len == 0) {
        wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);
        wmcf->pubsub = 1;
    }

    return NGX_OK;
}


/*
 * With a Redis Cluster an account's keys share its hash tag, the AppID, so
 * that its scripts find them on one node; the workers connect to the nodes
 * of the key prefixes they collect here.
 */

static ngx_int_t
ngx_http_wechat_cluster_tag(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    ngx_str_t                    *tag;
    ngx_uint_t                    i;
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);

    if (wmcf->cluster == NULL || conf->endpoint == NULL) {
        return NGX_OK;
    }

    if (ngx_strlchr(conf->redis_prefix.data,
                    conf->redis_prefix.data + conf->redis_prefix.len, '{'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "with a Redis Cluster, \"wechat_redis_prefix\" "
                           "may have no \"{\": the AppID is the hash tag");
        return NGX_ERROR;
    }

    if (conf->appid.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a Redis Cluster needs \"wechat_appid\": it is "
                           "the hash tag that keeps an account's keys on "
                           "one node");
        return NGX_ERROR;
    }

    tag = wmcf->tags->elts;

    for (i = 0; i < wmcf->tags->nelts; i++) {
        if (tag[i].len == conf->key_prefix.len
            && ngx_strncmp(tag[i].data, conf->key_prefix.data, tag[i].len)
               == 0)
        {
            return NGX_OK;
        }
    }

    tag = ngx_array_push(wmcf->tags);
    if (tag == NULL) {
        return NGX_ERROR;
    }

    *tag = conf->key_prefix;

    return NGX_OK;
}


/*
 * A reply with a {link} needs a link to put there, and one with a
 * {confirm} a confirm page; the default login_confirm text is checked
 * against the login scenes that need it, once every location is known.
 */

static ngx_int_t
ngx_http_wechat_check_links(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    ngx_uint_t   i;
    ngx_str_t   *text;

    for (i = 0; i <= WX_SCAN_OUTCOMES; i++) {
        text = (i < WX_SCAN_OUTCOMES) ? &conf->reply[i]
                                      : &conf->reply_subscribe;

        if (conf->link_url.len == 0
            && ngx_strnstr(text->data, "{link}", text->len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"{link}\" in \"wechat_reply\" needs "
                               "\"wechat_link_url\"");
            return NGX_ERROR;
        }

        if (conf->login_confirm_url.len == 0
            && (i >= WX_SCAN_OUTCOMES
                || text->data != ngx_http_wechat_default_replies[i].data)
            && ngx_strnstr(text->data, "{confirm}", text->len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"{confirm}\" in \"wechat_reply\" needs "
                               "\"wechat_login_confirm_url\"");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A login scene that waits for its scanner's confirm is answered with a
 * link to the confirm page: its account's callback must know the page.
 */

static ngx_int_t
ngx_http_wechat_check_confirms(ngx_conf_t *cf,
    ngx_http_wechat_main_conf_t *wmcf)
{
    ngx_uint_t                   i, j;
    ngx_str_t                   *appid;
    ngx_http_wechat_loc_conf_t **account;

    appid = wmcf->login_confirms.elts;
    account = wmcf->accounts.elts;

    for (i = 0; i < wmcf->login_confirms.nelts; i++) {
        for (j = 0; j < wmcf->accounts.nelts; j++) {
            if (account[j]->login_confirm_url.len == 0
                && account[j]->appid.len == appid[i].len
                && ngx_strncmp(account[j]->appid.data, appid[i].data,
                               appid[i].len) == 0)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "\"wechat_qrcode login\" of account \"%V\" "
                              "waits for the scanner's confirm: its "
                              "callback needs \"wechat_login_confirm_url\", "
                              "or the location \"wechat_qrcode_confirm "
                              "off\"", &appid[i]);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * A callback needs a token, and a token belongs to one account: WeChat's
 * query signature does not cover the AppID, so a query signed for one
 * account would verify at the other's callback.
 */

static ngx_int_t
ngx_http_wechat_check_account(ngx_conf_t *cf,
    ngx_http_wechat_loc_conf_t *conf)
{
    ngx_uint_t                     i;
    ngx_http_wechat_loc_conf_t   **other, **slot;
    ngx_http_wechat_main_conf_t   *wmcf;

    if (conf->token.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_callback\" needs \"wechat_callback_token\"");
        return NGX_ERROR;
    }

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);
    other = wmcf->accounts.elts;

    for (i = 0; i < wmcf->accounts.nelts; i++) {
        if (other[i]->token.len == conf->token.len
            && ngx_strncmp(other[i]->token.data, conf->token.data,
                           conf->token.len) == 0
            && other[i]->appid.len && conf->appid.len
            && (other[i]->appid.len != conf->appid.len
                || ngx_strncmp(other[i]->appid.data, conf->appid.data,
                               conf->appid.len) != 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the same \"wechat_callback_token\" for the accounts "
                               "\"%V\" and \"%V\": a token belongs to one "
                               "account", &other[i]->appid, &conf->appid);
            return NGX_ERROR;
        }
    }

    slot = ngx_array_push(&wmcf->accounts);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    *slot = conf;

    return NGX_OK;
}


static char *
ngx_http_wechat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_main_conf_t *wmcf = conf;

    ngx_str_t   *value, v;
    ngx_uint_t   sentinel, cluster;

    if (wmcf->server.name.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    sentinel = ngx_http_wechat_param(&value[1], "sentinel=", &v);
    cluster = ngx_http_wechat_param(&value[1], "cluster=", &v);

    if (ngx_http_wechat_redis_params(cf, wmcf, (sentinel || cluster) ? 1 : 2)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cluster) {
        if (wmcf->sentinels || wmcf->master.len
            || wmcf->sentinel_password.len || wmcf->sentinel_user.len
            || wmcf->db)
        {
            return "with \"cluster=\" takes no \"sentinel=\", "
                   "\"master=\", \"sentinel_password=\" or \"db=\": "
                   "a Redis Cluster has database 0 only";
        }

        wmcf->server.name = value[1];

        wmcf->tags = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (wmcf->tags == NULL) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (!sentinel) {
        if (wmcf->sentinels || wmcf->master.len
            || wmcf->sentinel_password.len || wmcf->sentinel_user.len
            || wmcf->cluster)
        {
            return "takes \"sentinel=\", \"master=\", "
                   "\"sentinel_password=\" and \"cluster=\" in place of "
                   "an address";
        }

        if (ngx_http_wechat_redis_addr(cf, &value[1], &wmcf->server)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (wmcf->master.len == 0 || wmcf->cluster) {
        return "with \"sentinel=\" needs \"master=\", and no "
               "\"cluster=\"";
    }

    /* filled in by each worker, once a sentinel names the master */

    wmcf->server.host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    wmcf->server.name.data = ngx_pnalloc(cf->pool, wmcf->master.len
                                         + NGX_HTTP_WECHAT_ADDR_NAME_LEN);

    if (wmcf->server.host.data == NULL || wmcf->server.name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    wmcf->server.name.len = ngx_sprintf(wmcf->server.name.data, "%V",
                                        &wmcf->master)
                            - wmcf->server.name.data;

    return NGX_CONF_OK;
}


static char *
ngx_http_wechat_pass_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[1].len < 2 || value[1].data[0] != '@') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_pass\" takes a named location, "
                           "not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


static char *
ngx_http_wechat_reply(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "subscribe") == 0) {
        if (wlcf->reply_subscribe.data) {
            return "is duplicate";
        }

        wlcf->reply_subscribe = value[2];
        return NGX_CONF_OK;
    }

    for (i = 0; i < WX_SCAN_OUTCOMES; i++) {
        if (ngx_strcmp(value[1].data, ngx_http_wechat_reply_names[i]) == 0) {
            if (wlcf->reply[i].data) {
                return "is duplicate";
            }

            wlcf->reply[i] = value[2];
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid outcome \"%V\", it must be \"bound\", "
                       "\"conflict\", \"expired\", \"login\", \"register\", "
                       "\"code\" or \"subscribe\"", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_wechat_aes_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    u_char      *key;
    ngx_str_t   *value;
    ngx_uint_t   i;
    wx_status_t  rc;

    if (wlcf->aes_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    wlcf->aes_keys = ngx_array_create(cf->pool, 2, WX_AES_KEY_LEN);
    if (wlcf->aes_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    /* the current key first, then the one it replaces */

    for (i = 1; i < cf->args->nelts; i++) {
        key = ngx_array_push(wlcf->aes_keys);
        if (key == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = wx_aes_key_decode(ngx_http_wechat_span(&value[i]), key);
        if (rc != WX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid EncodingAESKey \"%V\": it must be "
                               "43 characters of base64", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* wechat_qrcode_rate N/s: the new scenes an account may have a second. */

static char *
ngx_http_wechat_qrcode_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (wlcf->qrcode_rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = NGX_ERROR;

    if (value[1].len > 2
        && ngx_strncmp(value[1].data + value[1].len - 2, "/s", 2) == 0)
    {
        n = ngx_atoi(value[1].data, value[1].len - 2);
    }

    if (n < 1 || n > 100000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\": it must be N/s, N from 1 "
                           "to 100000", &value[1]);
        return NGX_CONF_ERROR;
    }

    wlcf->qrcode_rate = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_wechat_qrcode_expire(ngx_conf_t *cf, void *post, void *data)
{
    time_t  *sp = data;

    if (*sp < 1 || *sp > NGX_HTTP_WECHAT_QRCODE_EXPIRE_MAX) {
        return "must be between 1s and 30d";
    }

    return NGX_CONF_OK;
}


/* Makes the location an endpoint: which one is the directive's post. */

static char *
ngx_http_wechat_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_wechat_endpoint_t   *endpoint = cmd->post;
    ngx_http_wechat_main_conf_t  *wmcf;

    if (wlcf->endpoint) {
        return "is duplicate";
    }

    wlcf->endpoint = endpoint;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);
    wmcf->endpoints = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = endpoint->handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_wechat_qrcode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 0; ngx_http_wechat_kinds[i].len; i++) {
        if (ngx_strcmp(value[1].data, ngx_http_wechat_kinds[i].data) == 0) {
            wlcf->qrcode_kind = i;
            wlcf->qrcode_location = ngx_http_conf_get_module_loc_conf(cf,
                                        ngx_http_core_module);
            return ngx_http_wechat_endpoint(cf, cmd, conf);
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid QR code kind \"%V\", it must be "
                       "\"bind\", \"login\" or \"code\"", &value[1]);
    return NGX_CONF_ERROR;
}


/*
 * wechat_poll_cookie NAME [path=PATH] [samesite=strict|lax|none] [secure]
 */

static char *
ngx_http_wechat_poll_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    u_char      *p;
    ngx_str_t   *value, v;
    ngx_uint_t   i;

    if (wlcf->poll_cookie.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* a cookie name is a token: no separators, no controls */

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (*p <= ' ' || *p >= 0x7f
            || ngx_strchr("()<>@,;:\\\"/[]?={}", *p))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid cookie name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    wlcf->poll_cookie = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "secure") == 0) {
            wlcf->cookie_secure = 1;
            continue;
        }

        if (ngx_http_wechat_param(&value[i], "path=", &v)) {
            if (ngx_http_wechat_cookie_path(cf, &v, wlcf) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_wechat_param(&value[i], "samesite=", &v)) {
            if (ngx_http_wechat_cookie_samesite(cf, &v, wlcf) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /* browsers drop a SameSite=None cookie that is not Secure */

    if (wlcf->cookie_samesite.len == 4 && wlcf->cookie_secure != 1) {
        return "with \"samesite=none\" needs \"secure\"";
    }

    return NGX_CONF_OK;
}


/* path=: a path of the site, nothing that would end the attribute */

static ngx_int_t
ngx_http_wechat_cookie_path(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_wechat_loc_conf_t *wlcf)
{
    u_char  *p;

    for (p = v->data; p < v->data + v->len; p++) {
        if (*p < ' ' || *p >= 0x7f || *p == ';') {
            break;
        }
    }

    if (v->len == 0 || v->data[0] != '/' || p < v->data + v->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid cookie path \"%V\": it starts "
                           "with \"/\" and has no \";\" or "
                           "control character", v);
        return NGX_ERROR;
    }

    wlcf->cookie_path = *v;

    return NGX_OK;
}


/* samesite=: any case in the directive, the attribute's own spelling out */

static ngx_int_t
ngx_http_wechat_cookie_samesite(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_wechat_loc_conf_t *wlcf)
{
    ngx_uint_t  j;

    static ngx_str_t  samesite[] = {
        ngx_string("Strict"), ngx_string("Lax"), ngx_string("None")
    };

    for (j = 0; j < 3; j++) {
        if (samesite[j].len == v->len
            && ngx_strncasecmp(samesite[j].data, v->data, v->len) == 0)
        {
            wlcf->cookie_samesite = samesite[j];
            return NGX_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"samesite=%V\", it must be "
                       "\"strict\", \"lax\" or \"none\"", v);
    return NGX_ERROR;
}


/* wechat_code_template ID [NAME=VALUE ...]: the template message's data */

static char *
ngx_http_wechat_template_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    u_char               *eq;
    ngx_str_t            *value;
    ngx_uint_t            i;
    wx_template_field_t  *f;

    if (wlcf->code_template.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    wlcf->code_template = value[1];

    wlcf->code_data = ngx_array_create(cf->pool, cf->args->nelts,
                                       sizeof(wx_template_field_t));
    if (wlcf->code_data == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
        if (eq == NULL || eq == value[i].data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid template field \"%V\", it must be "
                               "NAME=VALUE", &value[i]);
            return NGX_CONF_ERROR;
        }

        f = ngx_array_push(wlcf->code_data);
        if (f == NULL) {
            return NGX_CONF_ERROR;
        }

        f->name.data = value[i].data;
        f->name.len = eq - value[i].data;
        f->value.data = eq + 1;
        f->value.len = value[i].data + value[i].len - eq - 1;
    }

    return NGX_CONF_OK;
}


/*
 * The hosts whose pages wechat_jssdk signs: "host" for any port, or
 * "host:port"; names and addresses only, without scheme, path or userinfo.
 */

static char *
ngx_http_wechat_jssdk_hosts(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    u_char      c;
    size_t      j;
    ngx_str_t  *value;
    wx_span_t  *host;
    ngx_uint_t  i;

    if (wlcf->jssdk_hosts != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    wlcf->jssdk_hosts = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                         sizeof(wx_span_t));
    if (wlcf->jssdk_hosts == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        for (j = 0; j < value[i].len; j++) {
            c = value[i].data[j];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '.' || c == '-'
                  || c == ':' || c == '[' || c == ']'))
            {
                break;
            }
        }

        if (value[i].len == 0 || j < value[i].len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid host \"%V\" in \"%V\": a name or "
                               "an address, with an optional port",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        host = ngx_array_push(wlcf->jssdk_hosts);
        if (host == NULL) {
            return NGX_CONF_ERROR;
        }

        *host = ngx_http_wechat_span(&value[i]);
    }

    return NGX_CONF_OK;
}


/* the current secret first, then the one it replaces */

static char *
ngx_http_wechat_link_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    ngx_str_t   *value;
    wx_span_t   *secret;
    ngx_uint_t   i;

    if (wlcf->link_secrets != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    wlcf->link_secrets = ngx_array_create(cf->pool, 2, sizeof(wx_span_t));
    if (wlcf->link_secrets == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len < WX_LINK_MIN_SECRET_LEN) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"wechat_link_secret\" must have at least "
                               "%d bytes", WX_LINK_MIN_SECRET_LEN);
            return NGX_CONF_ERROR;
        }

        secret = ngx_array_push(wlcf->link_secrets);
        if (secret == NULL) {
            return NGX_CONF_ERROR;
        }

        *secret = ngx_http_wechat_span(&value[i]);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_wechat_link_verify(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wechat_loc_conf_t *wlcf = conf;

    ngx_str_t                    *value;
    ngx_http_wechat_main_conf_t  *wmcf;

    if (wlcf->link_purpose.data) {
        return "is duplicate";
    }

    /* a link verifies only where it is taken for what it was signed for */

    value = cf->args->elts;

    if (cf->args->nelts == 1) {
        ngx_str_set(&wlcf->link_purpose, NGX_HTTP_WECHAT_PURPOSE_REGISTER);

    } else {
        wlcf->link_purpose = value[1];

        if (ngx_strcmp(value[1].data, NGX_HTTP_WECHAT_PURPOSE_CONFIRM) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the purpose \"%V\" is the confirm page's: "
                               "see \"wechat_login_confirm\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        if (!ngx_http_wechat_is_purpose(&wlcf->link_purpose)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid purpose \"%V\": letters, digits "
                               "and \"-\", at most 32", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);
    wmcf->endpoints = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_wechat_code_length(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np < 4 || *np > WX_DIGITS_MAX) {
        return "must be between 4 and 12";
    }

    return NGX_CONF_OK;
}


/* A directive's old name: nginx -t warns, and the new name's slot runs. */

static char *
ngx_http_wechat_deprecated(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t      *name = cmd->post;
    ngx_command_t  *c;

    for (c = ngx_http_wechat_commands; c->name.len; c++) {
        if (c->name.len == name->len
            && ngx_strncmp(c->name.data, name->data, name->len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "the \"%V\" directive is deprecated, "
                               "use the \"%V\" directive instead",
                               &cmd->name, name);

            return c->set(cf, c, conf);
        }
    }

    return NGX_CONF_ERROR;
}


/*
 * wechat_link_verify checks a link in the access phase; a "return" in its
 * location answers in the rewrite phase, before it, and the link goes
 * unchecked.  The rewrite module's location conf begins with its codes
 * (ngx_http_rewrite_module.c keeps the type to itself), where a "return",
 * also one inside "if", is a word that is ngx_http_script_return_code.
 * While locations merge, cf->ctx holds the confs of the one merged.
 */

typedef struct {
    ngx_array_t                *codes;
} ngx_http_wechat_rewrite_conf_t;


static void
ngx_http_wechat_check_return(ngx_conf_t *cf)
{
    uintptr_t                       *code, *last;
    ngx_uint_t                       i;
    ngx_module_t                    *m;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_wechat_rewrite_conf_t  *rlcf;

    for (i = 0; cf->cycle->modules[i]; i++) {
        m = cf->cycle->modules[i];

        if (m->type == NGX_HTTP_MODULE
            && ngx_strcmp(m->name, "ngx_http_rewrite_module") == 0)
        {
            break;
        }
    }

    if (cf->cycle->modules[i] == NULL) {
        return;
    }

    rlcf = ((ngx_http_conf_ctx_t *) cf->ctx)->loc_conf[m->ctx_index];

    if (rlcf == NULL || rlcf->codes == NULL) {
        return;
    }

    code = rlcf->codes->elts;
    last = (uintptr_t *) ((u_char *) rlcf->codes->elts
                          + rlcf->codes->nelts * rlcf->codes->size);

    for ( /* void */ ; code < last; code++) {
        if (*code == (uintptr_t) ngx_http_script_return_code) {
            clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "\"wechat_link_verify\" in location \"%V\" is "
                          "never reached where its \"return\" answers: "
                          "\"return\" runs in the rewrite phase, before "
                          "the access phase that checks the link",
                          &clcf->name);
            return;
        }
    }
}


/* What signed links need, where they are made or checked. */

static ngx_int_t
ngx_http_wechat_check_login(ngx_conf_t *cf, ngx_http_wechat_loc_conf_t *conf)
{
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wechat_module);

    if ((conf->link_purpose.len
         || (conf->endpoint
             && conf->endpoint->kind == NGX_HTTP_WECHAT_LOGIN_CONFIRM))
        && (conf->link_secrets == NULL || wmcf->server.name.data == NULL
            || conf->appid.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_link_verify\" and "
                           "\"wechat_login_confirm\" need "
                           "\"wechat_link_secret\", \"wechat_appid\" "
                           "and \"wechat_redis\"");
        return NGX_ERROR;
    }

    if (conf->login_confirm_url.len && conf->link_secrets == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_login_confirm_url\" needs "
                           "\"wechat_link_secret\"");
        return NGX_ERROR;
    }

    if (conf->link_url.len && conf->link_secrets == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wechat_link_url\" needs "
                           "\"wechat_link_secret\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The version once, at start: a reload keeps the module that was loaded. */

static ngx_int_t
ngx_http_wechat_init_module(ngx_cycle_t *cycle)
{
    if (cycle->old_cycle == NULL || cycle->old_cycle->conf_ctx == NULL) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "ngx_http_wechat_module/" NGX_HTTP_WECHAT_VERSION
                      " (built for nginx/" NGINX_VERSION ", hiredis %d.%d)",
                      HIREDIS_MAJOR, HIREDIS_MINOR);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wechat_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_wechat_cluster_init_process(cycle) != NGX_OK
        || ngx_http_wechat_sentinel_init_process(cycle) != NGX_OK
        || ngx_http_wechat_redis_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_wechat_pubsub_init_process(cycle);
}


static void
ngx_http_wechat_exit_process(ngx_cycle_t *cycle)
{
    /* waiting polls are answered first, while Redis is still there */

    ngx_http_wechat_pubsub_exit_process(cycle);
    ngx_http_wechat_redis_exit_process(cycle);
    ngx_http_wechat_sentinel_exit_process(cycle);
}
