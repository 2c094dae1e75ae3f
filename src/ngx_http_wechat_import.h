/*
 * ngx_http_wechat_module: wechat_bindings, an account's bindings in bulk:
 * a streamed import (NDJSON or CSV lines), its resync mode, and export.
 */


#ifndef _NGX_HTTP_WECHAT_IMPORT_H_INCLUDED_
#define _NGX_HTTP_WECHAT_IMPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the longest line of an import, its newline aside */
#define NGX_HTTP_WECHAT_IMPORT_LINE_MAX   1024

/* bindings a script applies at once */
#define NGX_HTTP_WECHAT_IMPORT_BATCH      1000

/* what HSCAN is asked for per page, of an export or a resync's sweep */
#define NGX_HTTP_WECHAT_IMPORT_PAGE       "500"

/* the bytes of lines listed in an import's answer, beyond them counted */
#define NGX_HTTP_WECHAT_IMPORT_DETAILS    (256 * 1024)

/* seconds a resync's mark outlives a run that never finished */
#define NGX_HTTP_WECHAT_IMPORT_MARK_TTL   "3600"


ngx_int_t ngx_http_wechat_bindings_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_WECHAT_IMPORT_H_INCLUDED_ */
