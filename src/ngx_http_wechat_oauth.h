
/*
 * ngx_http_wechat_module: OAuth web authorization (网页授权) at the edge.
 * wechat_oauth protects a location in the access phase (_oauth.c), the
 * callback location exchanges WeChat's code (_oauth_callback.c), scenes
 * can be OAuth links, the seeds' method 1 (_oauth_scene.c); all are
 * the ngx_http_wechat_oauth_module, with a conf of its own beside the
 * account's (wechat_appid, wechat_secret, wechat_api_pass, wechat_redis).
 */


#ifndef _NGX_HTTP_WECHAT_OAUTH_H_INCLUDED_
#define _NGX_HTTP_WECHAT_OAUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/wx_oauth.h"


#define NGX_HTTP_WECHAT_OAUTH_OFF        0
#define NGX_HTTP_WECHAT_OAUTH_BASE       1
#define NGX_HTTP_WECHAT_OAUTH_USERINFO   2
#define NGX_HTTP_WECHAT_OAUTH_LOGIN      3   /* a Website App, qrconnect */

#define NGX_HTTP_WECHAT_OAUTH_PAGE       0   /* outside WeChat: a page */
#define NGX_HTTP_WECHAT_OAUTH_AUTHORIZE  1   /* outside WeChat too */

/* WeChat's codes live 5 minutes: so do states and claimed codes */
#define NGX_HTTP_WECHAT_OAUTH_STATE_TTL  300

#define NGX_HTTP_WECHAT_OAUTH_STATE_LEN  WX_TOKEN_LEN
#define NGX_HTTP_WECHAT_OAUTH_RETURN_MAX 2048


typedef struct {
    ngx_uint_t                  scope;          /* wechat_oauth */
    ngx_uint_t                  outside;
    ngx_str_t                   redirect_uri;   /* the callback, absolute */
    ngx_str_t                   origin;         /* its scheme://host */
    ngx_str_t                   authorize_url;
    ngx_str_t                   qrconnect_url;
    ngx_str_t                   website_appid;  /* wechat_oauth_website */
    ngx_str_t                   website_secret;
    ngx_array_t                *secrets;        /* of wx_span_t, current
                                                   first */
    time_t                      session_expire;
    ngx_str_t                   cookie;
    ngx_flag_t                  cookie_secure;
    ngx_flag_t                  callback;       /* wechat_oauth_callback */
    ngx_flag_t                  scenes;         /* wechat_qrcode_oauth */
} ngx_http_wechat_oauth_loc_conf_t;


typedef struct {
    wx_session_t                session;        /* a valid one's */
    ngx_str_t                   user;           /* $wechat_user, bound */
    ngx_int_t                   access_rc;      /* 0 until decided,
                                                   NGX_AGAIN while Redis
                                                   answers, then
                                                   NGX_HTTP_OK or a
                                                   refusal */
    ngx_str_t                   state;          /* a new state's, or the
                                                   callback's */
    ngx_str_t                   browser;        /* the state cookie */
    ngx_str_t                   code;
    ngx_str_t                   code_hash;      /* what Redis keeps of it */
    ngx_str_t                   scene;          /* a method-1 state's */
    ngx_str_t                   back;           /* the path to return to */
    ngx_str_t                   scope;          /* "base", "userinfo" or
                                                   "login" */
    wx_oauth_token_t            token;

    unsigned                    valid:1;
} ngx_http_wechat_oauth_ctx_t;


extern ngx_module_t  ngx_http_wechat_oauth_module;


/* _oauth.c */
ngx_http_wechat_oauth_ctx_t *ngx_http_wechat_oauth_session(
    ngx_http_request_t *r);
ngx_http_wechat_oauth_ctx_t *ngx_http_wechat_oauth_create_ctx(
    ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_oauth_cookie(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value, time_t max_age);
ngx_uint_t ngx_http_wechat_oauth_is_path(ngx_str_t *path);
ngx_uint_t ngx_http_wechat_oauth_is_login(wx_span_t scope);
ngx_int_t ngx_http_wechat_oauth_authorize(ngx_http_request_t *r,
    ngx_uint_t scope, ngx_str_t *state, ngx_str_t *url);
extern ngx_str_t  ngx_http_wechat_oauth_state_cookie;

/* _oauth_callback.c */
ngx_int_t ngx_http_wechat_oauth_callback_handler(ngx_http_request_t *r);

/* _oauth_scene.c */
ngx_int_t ngx_http_wechat_oauth_scene_url(ngx_http_request_t *r,
    ngx_str_t *scene, ngx_str_t *url);
ngx_int_t ngx_http_wechat_oauth_scene_of(ngx_http_request_t *r,
    ngx_str_t *state, ngx_str_t *scene);
ngx_int_t ngx_http_wechat_oauth_scene_resolve(ngx_http_request_t *r,
    ngx_http_wechat_oauth_ctx_t *octx, ngx_str_t *hash);


#endif /* _NGX_HTTP_WECHAT_OAUTH_H_INCLUDED_ */
