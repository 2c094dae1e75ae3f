
/*
 * ngx_http_wechat_module: the flow layer of a push: its Redis steps
 * (_scan.c), the codes and links a scan sends (_code.c), the answers to
 * WeChat and the pass upstream (_reply.c), safe mode (_crypto.c).
 */


#ifndef _NGX_HTTP_WECHAT_PUSH_H_INCLUDED_
#define _NGX_HTTP_WECHAT_PUSH_H_INCLUDED_


#include "ngx_http_wechat_util.h"


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


#endif /* _NGX_HTTP_WECHAT_PUSH_H_INCLUDED_ */
