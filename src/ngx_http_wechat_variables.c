
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
static void ngx_http_wechat_str_value(ngx_http_variable_value_t *v,
    ngx_str_t *s);


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
        v->not_found = 1;
        return NGX_OK;
    }

    field = (wx_span_t *) ((u_char *) &ctx->ev + data);

    v->data = (u_char *) field->data;
    v->len = field->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
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

        if (octx == NULL || octx->user.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        ngx_http_wechat_str_value(v, &octx->user);
        return NGX_OK;
    }

    if (ctx == NULL || !ctx->parsed) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) ctx + data);

    ngx_http_wechat_str_value(v, s);

    return NGX_OK;
}


/* Only wechat_link_verify sets it, for a link it let through. */

static ngx_int_t
ngx_http_wechat_link_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || ctx->link_openid.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_wechat_str_value(v, &ctx->link_openid);

    return NGX_OK;
}


/*
 * What wechat_oauth's valid session says: openid, unionid, and for the
 * userinfo scope nickname and avatar; for a push, its sender's unionid.  The core checked them for control
 * characters when it sealed and opened the session.
 */

static ngx_int_t
ngx_http_wechat_oauth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                     value;
    wx_span_t                    *field;
    ngx_http_wechat_ctx_t        *ctx;
    ngx_http_wechat_oauth_ctx_t  *octx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx && ctx->parsed && data == offsetof(wx_session_t, unionid)) {
        /* a push's sender: what the claim found */

        if (ctx->unionid.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        ngx_http_wechat_str_value(v, &ctx->unionid);
        return NGX_OK;
    }

    octx = ngx_http_wechat_oauth_session(r);

    if (octx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    field = (wx_span_t *) ((u_char *) &octx->session + data);

    if (field->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    value.data = (u_char *) field->data;
    value.len = field->len;

    ngx_http_wechat_str_value(v, &value);

    return NGX_OK;
}


static void
ngx_http_wechat_str_value(ngx_http_variable_value_t *v, ngx_str_t *s)
{
    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
}


/* "1" when WeChat sends a push again: its query was used before. */

static ngx_int_t
ngx_http_wechat_retry_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || !ctx->parsed || !ctx->retry) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) "1";
    v->len = 1;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
