
/*
 * ngx_http_wechat_module: the module's version, the one place it is kept
 * (the Makefile, the Debian package and wechat_status read it from here).
 */


#ifndef _NGX_HTTP_WECHAT_VERSION_H_INCLUDED_
#define _NGX_HTTP_WECHAT_VERSION_H_INCLUDED_


#define NGX_HTTP_WECHAT_VERSION  "1.0.0"


#endif /* _NGX_HTTP_WECHAT_VERSION_H_INCLUDED_ */
