
/*
 * ngx_http_wechat_module: request context, arguments and answers.
 */


#include "ngx_http_wechat_module.h"


static void ngx_http_wechat_cleanup_ctx(void *data);
static void *ngx_http_wechat_pool_alloc(void *pool, size_t size);


ngx_http_wechat_ctx_t *
ngx_http_wechat_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /*
     * The cleanup finds the context again after wechat_pass, which clears
     * module contexts, and detaches a Redis command the request outlives.
     */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_wechat_cleanup_ctx;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_wechat_module);

    return ctx;
}


ngx_http_wechat_ctx_t *
ngx_http_wechat_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_wechat_module);
    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_wechat_cleanup_ctx) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_wechat_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_wechat_cleanup_ctx(void *data)
{
    ngx_http_wechat_ctx_t  *ctx = data;

    /* the command's reply, whenever it comes, must not touch this request */

    if (ctx->cmd) {
        ngx_http_wechat_redis_detach(ctx->cmd);
        ctx->cmd = NULL;
    }

    if (ctx->waiting) {
        ngx_http_wechat_add(polls_waiting, -1);
    }
}


static void *
ngx_http_wechat_pool_alloc(void *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


void
ngx_http_wechat_allocator(ngx_pool_t *pool, wx_allocator_t *a)
{
    a->alloc = ngx_http_wechat_pool_alloc;
    a->pool = pool;
}


wx_span_t
ngx_http_wechat_span(ngx_str_t *s)
{
    wx_span_t  span;

    span.data = s->data;
    span.len = s->len;

    return span;
}


ngx_int_t
ngx_http_wechat_arg(ngx_http_request_t *r, const char *name, ngx_str_t *value)
{
    wx_span_t       v;
    wx_status_t     status;
    wx_allocator_t  a;

    ngx_http_wechat_allocator(r->pool, &a);

    status = wx_query_arg(ngx_http_wechat_span(&r->args), name, &a, &v);

    value->data = (u_char *) v.data;
    value->len = v.len;

    if (status == WX_ERR_NOT_FOUND) {
        return NGX_DECLINED;
    }

    return (status == WX_OK) ? NGX_OK : NGX_ERROR;
}


ngx_str_t
ngx_http_wechat_key(ngx_http_request_t *r, ngx_http_wechat_loc_conf_t *wlcf,
    const char *kind, ngx_str_t *id)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   key;

    len = ngx_strlen(kind);

    key.len = wlcf->key_prefix.len + len + (id ? id->len : 0);
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        key.len = 0;
        return key;
    }

    p = ngx_cpymem(key.data, wlcf->key_prefix.data, wlcf->key_prefix.len);
    p = ngx_cpymem(p, kind, len);

    if (id) {
        ngx_memcpy(p, id->data, id->len);
    }

    return key;
}


ngx_int_t
ngx_http_wechat_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type.data = (u_char *) content_type;
    r->headers_out.content_type.len = ngx_strlen(content_type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_wechat_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const wx_json_field_t *fields, size_t n)
{
    wx_span_t       json;
    wx_allocator_t  a;

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_json_object(fields, n, &a, &json) != WX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_send_answer(r, status, json);
}


ngx_int_t
ngx_http_wechat_send_answer(ngx_http_request_t *r, ngx_uint_t status,
    wx_span_t json)
{
    ngx_table_elt_t  *h;

    /* answers about scenes and bindings are per user and change */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    return ngx_http_wechat_send(r, status, "application/json",
                                (u_char *) json.data, json.len);
}


ngx_int_t
ngx_http_wechat_send_unavailable(ngx_http_request_t *r)
{
    static wx_json_field_t  unavailable[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) "unavailable", 11 }, 0 }
    };

    return ngx_http_wechat_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     unavailable, 1);
}


/*
 * Untrusted text for a log line: bytes outside printable ASCII, quotes and
 * backslashes become \xXX, so that nothing can forge a line or a field.
 */

ngx_str_t
ngx_http_wechat_log_escape(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char      c, *p;
    size_t      i;
    ngx_str_t   out;

    static u_char  hex[] = "0123456789abcdef";

    out.data = ngx_pnalloc(pool, s->len * 4);
    if (out.data == NULL) {
        out.len = 0;
        return out;
    }

    p = out.data;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else {
            *p++ = c;
        }
    }

    out.len = p - out.data;

    return out;
}
