
/*
 * ngx_http_wechat_module: the handlers' layer, what a location does; the
 * module (_module.c) registers them.
 */


#ifndef _NGX_HTTP_WECHAT_HANDLERS_H_INCLUDED_
#define _NGX_HTTP_WECHAT_HANDLERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


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
ngx_int_t ngx_http_wechat_jssdk_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_wechat_add_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_WECHAT_HANDLERS_H_INCLUDED_ */
