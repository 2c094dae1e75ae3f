
/*
 * ngx_http_wechat_module: the store that is WeChat's API (_api.c), through
 * subrequests; the call's type is in ngx_http_wechat_util.h, since the
 * request context holds it.
 */


#ifndef _NGX_HTTP_WECHAT_API_H_INCLUDED_
#define _NGX_HTTP_WECHAT_API_H_INCLUDED_


#include "ngx_http_wechat_util.h"


ngx_int_t ngx_http_wechat_api_init(ngx_conf_t *cf);
void ngx_http_wechat_api_mask_log(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);
ngx_int_t ngx_http_wechat_api_call(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call);


#endif /* _NGX_HTTP_WECHAT_API_H_INCLUDED_ */
