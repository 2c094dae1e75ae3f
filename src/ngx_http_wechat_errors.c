
/*
 * ngx_http_wechat_module: the errors nginx answers itself in a location
 * that answers JSON (wechat_qrcode, _poll, _binding, _bindings, _redeem,
 * _api, _jssdk): 400, 405 and 413, whether a handler returned them or
 * nginx's core did (a body over client_max_body_size is refused before the
 * handler runs), go out as {"error":"..."} with Cache-Control: no-store
 * instead of nginx's HTML page.
 * An error_page the site sets still wins: it moves the request elsewhere.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_handlers.h"


static ngx_str_t *ngx_http_wechat_error_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_errors_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_errors_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_str_t  ngx_http_wechat_bad_request =
    ngx_string("{\"error\":\"bad request\"}");
static ngx_str_t  ngx_http_wechat_method =
    ngx_string("{\"error\":\"method\"}");
static ngx_str_t  ngx_http_wechat_too_large =
    ngx_string("{\"error\":\"too large\"}");


ngx_int_t
ngx_http_wechat_errors_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_wechat_errors_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_wechat_errors_body_filter;

    return NGX_OK;
}


/*
 * The JSON for nginx's own error page in a JSON location, or NULL: nginx
 * sets err_status only for the pages it writes itself.
 */

static ngx_str_t *
ngx_http_wechat_error_json(ngx_http_request_t *r)
{
    ngx_http_wechat_loc_conf_t  *wlcf;

    if (r != r->main || r->err_status == 0
        || r->headers_out.status != r->err_status)
    {
        return NULL;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    if (wlcf == NULL || wlcf->endpoint == NULL) {
        return NULL;
    }

    switch (wlcf->endpoint->kind) {

    case NGX_HTTP_WECHAT_QRCODE:
    case NGX_HTTP_WECHAT_POLL:
    case NGX_HTTP_WECHAT_BINDING:
    case NGX_HTTP_WECHAT_REDEEM:
    case NGX_HTTP_WECHAT_API:
    case NGX_HTTP_WECHAT_JSSDK:
    case NGX_HTTP_WECHAT_BINDINGS:
        break;

    default:
        return NULL;
    }

    switch (r->err_status) {

    case NGX_HTTP_BAD_REQUEST:
        return &ngx_http_wechat_bad_request;

    case NGX_HTTP_NOT_ALLOWED:
        return &ngx_http_wechat_method;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return &ngx_http_wechat_too_large;

    default:
        return NULL;
    }
}


static ngx_int_t
ngx_http_wechat_errors_header_filter(ngx_http_request_t *r)
{
    ngx_str_t  *json;

    json = ngx_http_wechat_error_json(r);

    if (json == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = json->len;

    if (ngx_http_wechat_no_store(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* nginx's page goes; the JSON goes out with its last buffer. */

static ngx_int_t
ngx_http_wechat_errors_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_str_t    *json;
    ngx_chain_t  *cl, *out;

    json = ngx_http_wechat_error_json(r);

    if (json == NULL || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            out = ngx_http_wechat_chain(r->pool, json->data, json->len);
            if (out == NULL) {
                return NGX_ERROR;
            }

            return ngx_http_next_body_filter(r, out);
        }
    }

    return NGX_OK;
}
