
/*
 * ngx_http_wechat_module: a WeChat API call with the account's
 * access_token, or its jsapi_ticket (_token.c), in the flow layer; its state,
 * ngx_http_wechat_wx_t, is in ngx_http_wechat_util.h, since the request
 * context holds it.
 */


#ifndef _NGX_HTTP_WECHAT_TOKEN_H_INCLUDED_
#define _NGX_HTTP_WECHAT_TOKEN_H_INCLUDED_


#include "ngx_http_wechat_util.h"


ngx_int_t ngx_http_wechat_wx_call(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_wx_ticket(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);
ngx_int_t ngx_http_wechat_wx_failed(ngx_http_request_t *r,
    ngx_http_wechat_ctx_t *ctx);


#endif /* _NGX_HTTP_WECHAT_TOKEN_H_INCLUDED_ */
