
/*
 * ngx_http_wechat_module: variables describing the verified push, for
 * proxy_set_header, log_format and the rest of the configuration.
 */


#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_handlers.h"
#include "ngx_http_wechat_oauth.h"


static ngx_int_t ngx_http_wechat_event_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_wechat_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_wechat_retry_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_wechat_link_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_wechat_oauth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_wechat_found_value(ngx_http_variable_value_t *v,
    u_char *data, size_t len);
static ngx_int_t ngx_http_wechat_str_value(ngx_http_variable_value_t *v,
    u_char *data, size_t len);
static ngx_int_t ngx_http_wechat_not_found(ngx_http_variable_value_t *v);


static ngx_http_variable_t  ngx_http_wechat_vars[] = {

    { ngx_string("wechat_openid"), NULL, ngx_http_wechat_event_variable,
      offsetof(wx_event_t, from_user), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_unionid"), NULL, ngx_http_wechat_oauth_variable,
      offsetof(wx_session_t, unionid), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_nickname"), NULL, ngx_http_wechat_oauth_variable,
      offsetof(wx_session_t, nickname), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_avatar"), NULL, ngx_http_wechat_oauth_variable,
      offsetof(wx_session_t, avatar), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_msg_type"), NULL, ngx_http_wechat_event_variable,
      offsetof(wx_event_t, msg_type), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_event"), NULL, ngx_http_wechat_event_variable,
      offsetof(wx_event_t, event), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_event_key"), NULL, ngx_http_wechat_event_variable,
      offsetof(wx_event_t, event_key), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_ticket"), NULL, ngx_http_wechat_event_variable,
      offsetof(wx_event_t, ticket), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_scene"), NULL, ngx_http_wechat_ctx_variable,
      offsetof(ngx_http_wechat_ctx_t, scene), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_user"), NULL, ngx_http_wechat_ctx_variable,
      offsetof(ngx_http_wechat_ctx_t, user), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_resolution"), NULL, ngx_http_wechat_ctx_variable,
      offsetof(ngx_http_wechat_ctx_t, resolution), NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("wechat_retry"), NULL, ngx_http_wechat_retry_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wechat_link_openid"), NULL, ngx_http_wechat_link_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_wechat_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_wechat_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wechat_event_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    wx_span_t              *field;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if ((ctx == NULL || !ctx->parsed)
        && data == offsetof(wx_event_t, from_user))
    {
        /* a page wechat_oauth let through: the session's openid */
        return ngx_http_wechat_oauth_variable(r, v,
                                              offsetof(wx_session_t, openid));
    }

    if (ctx == NULL || !ctx->parsed) {
        return ngx_http_wechat_not_found(v);
    }

    field = (wx_span_t *) ((u_char *) &ctx->ev + data);

    return ngx_http_wechat_str_value(v, (u_char *) field->data, field->len);
}


/* Only a verified push sets these: never a poll's or a binding's input. */

static ngx_int_t
ngx_http_wechat_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                    *s;
    ngx_http_wechat_ctx_t        *ctx;
    ngx_http_wechat_oauth_ctx_t  *octx;

    ctx = ngx_http_wechat_get_ctx(r);

    if ((ctx == NULL || !ctx->parsed)
        && data == offsetof(ngx_http_wechat_ctx_t, user))
    {
        /* a page wechat_oauth let through: the user its lookup found */

        octx = ngx_http_wechat_oauth_session(r);

        if (octx == NULL) {
            return ngx_http_wechat_not_found(v);
        }

        return ngx_http_wechat_found_value(v, octx->user.data, octx->user.len);
    }

    if (ctx == NULL || !ctx->parsed) {
        return ngx_http_wechat_not_found(v);
    }

    s = (ngx_str_t *) ((u_char *) ctx + data);

    return ngx_http_wechat_str_value(v, s->data, s->len);
}


/* Only wechat_link_verify sets it, for a link it let through. */

static ngx_int_t
ngx_http_wechat_link_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL) {
        return ngx_http_wechat_not_found(v);
    }

    return ngx_http_wechat_found_value(v, ctx->link_openid.data,
                                       ctx->link_openid.len);
}


/*
 * What wechat_oauth's valid session says: openid, unionid, and for the
 * userinfo scope nickname and avatar; for a push, its sender's unionid.
 * The core checked them for control characters when it sealed and opened
 * the session.
 */

static ngx_int_t
ngx_http_wechat_oauth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    wx_span_t                    *field;
    ngx_http_wechat_ctx_t        *ctx;
    ngx_http_wechat_oauth_ctx_t  *octx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx && ctx->parsed && data == offsetof(wx_session_t, unionid)) {
        /* a push's sender: what the claim found */

        return ngx_http_wechat_found_value(v, ctx->unionid.data,
                                           ctx->unionid.len);
    }

    octx = ngx_http_wechat_oauth_session(r);

    if (octx == NULL) {
        return ngx_http_wechat_not_found(v);
    }

    field = (wx_span_t *) ((u_char *) &octx->session + data);

    return ngx_http_wechat_found_value(v, (u_char *) field->data, field->len);
}


/* A value that may be empty but is there: a field of a parsed push. */

static ngx_int_t
ngx_http_wechat_str_value(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* An empty one is not found: what a session or a claim did not give. */

static ngx_int_t
ngx_http_wechat_found_value(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    if (len == 0) {
        return ngx_http_wechat_not_found(v);
    }

    return ngx_http_wechat_str_value(v, data, len);
}


static ngx_int_t
ngx_http_wechat_not_found(ngx_http_variable_value_t *v)
{
    v->not_found = 1;

    return NGX_OK;
}


/* "1" when WeChat sends a push again: its query was used before. */

static ngx_int_t
ngx_http_wechat_retry_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || !ctx->parsed || !ctx->retry) {
        return ngx_http_wechat_not_found(v);
    }

    return ngx_http_wechat_str_value(v, (u_char *) "1", 1);
}
