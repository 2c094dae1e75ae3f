
/*
 * ngx_http_wechat_module: the request context, query arguments, Redis key
 * names, and the module's HTTP answers and refusals.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"


static void ngx_http_wechat_ctx_mark(void *data);
static void *ngx_http_wechat_pool_alloc(void *pool, size_t size);


ngx_str_t  ngx_http_wechat_stream_maxlen =
    ngx_string(NGX_HTTP_WECHAT_STREAM_MAXLEN);


/* wechat_qrcode's kinds of scene, by NGX_HTTP_WECHAT_KIND_* */

ngx_str_t  ngx_http_wechat_kinds[] = {
    ngx_string("bind"),
    ngx_string("login"),
    ngx_string("code"),
    ngx_null_string
};


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
     * wechat_pass goes to a named location, which clears module contexts:
     * this cleanup, which does nothing, is how the context is found again.
     */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_wechat_ctx_mark;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_wechat_module);

    return ctx;
}


/*
 * What every site endpoint does first: only the methods it takes, no body
 * (it has none), and a context.  NGX_OK, or the status to answer.
 */

ngx_int_t
ngx_http_wechat_begin(ngx_http_request_t *r, ngx_uint_t methods,
    ngx_http_wechat_ctx_t **ctx)
{
    ngx_int_t  rc;

    if (!(r->method & methods)) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    *ctx = ngx_http_wechat_create_ctx(r);

    return *ctx ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


ngx_http_wechat_ctx_t *
ngx_http_wechat_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_wechat_module);

    /* only a redirect to another location loses a context */

    if (ctx || !r->internal) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_wechat_ctx_mark) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_wechat_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_wechat_ctx_mark(void *data)
{
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


/*
 * The decoded values of the query arguments a handler needs, read in one
 * pass; an absent one has NULL data.
 */

ngx_int_t
ngx_http_wechat_args(ngx_http_request_t *r, const char *const *names,
    ngx_uint_t n, ngx_str_t *values)
{
    return ngx_http_wechat_form(r, &r->args, names, n, values);
}


/* The arguments names[0..n) of a query or a form body, decoded. */

ngx_int_t
ngx_http_wechat_form(ngx_http_request_t *r, ngx_str_t *text,
    const char *const *names, ngx_uint_t n, ngx_str_t *values)
{
    wx_span_t       *spans;
    ngx_uint_t       i;
    wx_allocator_t   a;

    spans = ngx_palloc(r->pool, n * sizeof(wx_span_t));
    if (spans == NULL) {
        return NGX_ERROR;
    }

    ngx_http_wechat_allocator(r->pool, &a);

    if (wx_query_args(ngx_http_wechat_span(text), names, n, &a, spans)
        != WX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        values[i].data = (u_char *) spans[i].data;
        values[i].len = spans[i].len;
    }

    return NGX_OK;
}


/*
 * The raw name of the query argument at *p, up to its '=' or '&'; *p moves
 * to the next one.  For the walks that see every argument, repeated ones
 * too.
 */

void
ngx_http_wechat_arg_name(u_char **p, u_char *end, ngx_str_t *name)
{
    u_char  *amp, *eq;

    amp = ngx_strlchr(*p, end, '&');
    if (amp == NULL) {
        amp = end;
    }

    eq = ngx_strlchr(*p, amp, '=');
    if (eq == NULL) {
        eq = amp;
    }

    name->data = *p;
    name->len = eq - *p;

    *p = (amp < end) ? amp + 1 : end;
}


/*
 * The request body read whole into memory, at most max bytes (413 past
 * that, with an info line); an empty body is an empty string.
 */

ngx_int_t
ngx_http_wechat_read_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;
    ngx_str_set(body, "");

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len == 0) {
        return NGX_OK;
    }

    if ((size_t) len > max) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat: a body of %O bytes is over %uz", len, max);
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    cl = r->request_body->bufs;
    b = cl->buf;

    if (cl->next == NULL && !b->in_file) {
        body->data = b->pos;
        body->len = len;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body->data = p;
    body->len = len;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);
        if (n != b->file_last - b->file_pos) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p += n;
    }

    return NGX_OK;
}


/*
 * Whether a site's name for a user or an openid may become a Redis key, a
 * variable and a JSON value: no control character, and a sane length.
 */

ngx_uint_t
ngx_http_wechat_is_name(ngx_str_t *s)
{
    size_t  i;

    if (s->len > NGX_HTTP_WECHAT_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* A signed link's purpose: letters, digits and '-', at most 32. */

ngx_uint_t
ngx_http_wechat_is_purpose(ngx_str_t *s)
{
    size_t  i;
    u_char  c;

    if (s->len == 0 || s->len > 32) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (!(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
              || (c >= 'A' && c <= 'Z')))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * An address as far as its network: IPv4 to its /24 ("192.0.2.*"), IPv6
 * to its /48 ("2001:db8:1::/48"); anything else as it is.
 */

ngx_int_t
ngx_http_wechat_network(ngx_pool_t *pool, ngx_str_t *addr, ngx_str_t *out)
{
    u_char      *p, *end, *cut;
    ngx_uint_t   colons;

    end = addr->data + addr->len;
    cut = NULL;
    colons = 0;

    for (p = addr->data; p < end; p++) {
        if (*p == ':' && ++colons == 3) {
            cut = p;
            break;
        }
    }

    if (cut == NULL && colons == 0) {
        cut = ngx_strlchr(addr->data, end, '.') ? end : NULL;

        while (cut && cut > addr->data && cut[-1] != '.') {
            cut--;
        }
    }

    if (cut == NULL) {
        *out = *addr;
        return NGX_OK;
    }

    out->data = ngx_pnalloc(pool, (cut - addr->data) + sizeof("::/48"));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_sprintf(out->data, colons ? "%*s::/48" : "%*s*",
                           (size_t) (cut - addr->data), addr->data)
               - out->data;

    return NGX_OK;
}


/* The first request header of that name, or NULL. */

ngx_table_elt_t *
ngx_http_wechat_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


/* The value of the cookie name, or NGX_DECLINED without one. */

ngx_int_t
ngx_http_wechat_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
#if (nginx_version >= 1023000)
    return ngx_http_parse_multi_header_lines(r, r->headers_in.cookie, name,
                                             value)
           ? NGX_OK : NGX_DECLINED;
#else
    return ngx_http_parse_multi_header_lines(&r->headers_in.cookies, name,
                                             value)
           == NGX_DECLINED ? NGX_DECLINED : NGX_OK;
#endif
}


/* An openid in WeChat's shape: URL-safe base64 letters, at most 64. */

ngx_uint_t
ngx_http_wechat_is_openid(ngx_str_t *s)
{
    u_char  c;
    size_t  i;

    if (s->len == 0 || s->len > 64) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return 0;
        }
    }

    return 1;
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


/*
 * The keys every script that binds or unbinds declares: the stream, and
 * the account's two hashes of bindings (user -> openid, openid -> user).
 */

ngx_int_t
ngx_http_wechat_binding_keys(ngx_http_request_t *r,
    ngx_http_wechat_loc_conf_t *wlcf, ngx_str_t *keys)
{
    keys[0] = ngx_http_wechat_key(r, wlcf, "resolutions", NULL);
    keys[1] = ngx_http_wechat_key(r, wlcf, "users", NULL);
    keys[2] = ngx_http_wechat_key(r, wlcf, "openids", NULL);

    return (keys[0].data && keys[1].data && keys[2].data) ? NGX_OK
                                                           : NGX_ERROR;
}


ngx_str_t
ngx_http_wechat_now(ngx_http_request_t *r)
{
    return ngx_http_wechat_number(r->pool, ngx_time());
}


/* A number as a Redis argument: an empty string when out of memory. */

ngx_str_t
ngx_http_wechat_number(ngx_pool_t *pool, int64_t n)
{
    ngx_str_t  s;

    s.data = ngx_pnalloc(pool, NGX_INT64_LEN);
    if (s.data == NULL) {
        s.len = 0;
        return s;
    }

    s.len = ngx_sprintf(s.data, "%L", n) - s.data;

    return s;
}


/* One buffer over len bytes of memory, the last of its chain. */

ngx_chain_t *
ngx_http_wechat_chain(ngx_pool_t *pool, u_char *data, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(pool);
    cl = ngx_alloc_chain_link(pool);

    if (b == NULL || cl == NULL) {
        return NULL;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/*
 * Waits for what was just started (NGX_OK), or answers: 503 when Redis is
 * away (NGX_DECLINED), an HTTP status as it is.
 */

ngx_int_t
ngx_http_wechat_wait_redis(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_OK) {
        r->main->count++;
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_wechat_send_unavailable(r);
    }

    return rc >= NGX_HTTP_SPECIAL_RESPONSE ? rc
                                           : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


ngx_int_t
ngx_http_wechat_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_chain_t  *out;

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

    out = ngx_http_wechat_chain(r->pool, data, len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    out->buf->last_buf = (r == r->main) ? 1 : 0;

    return ngx_http_output_filter(r, out);
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


/* Answers about scenes and bindings are per user and change. */

ngx_int_t
ngx_http_wechat_no_store(ngx_http_request_t *r)
{
    static ngx_str_t  name = ngx_string("Cache-Control");
    static ngx_str_t  value = ngx_string("no-store");

    return ngx_http_wechat_add_header(r, &name, &value);
}


ngx_int_t
ngx_http_wechat_add_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *name;
    h->value = *value;

    return NGX_OK;
}


ngx_int_t
ngx_http_wechat_send_answer(ngx_http_request_t *r, ngx_uint_t status,
    wx_span_t json)
{
    if (ngx_http_wechat_no_store(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
 * A refusal for now: {"error":what,"retry_after":seconds}, and the same
 * in Retry-After.
 */

ngx_int_t
ngx_http_wechat_send_retry(ngx_http_request_t *r, ngx_uint_t status,
    const char *what, time_t seconds)
{
    ngx_table_elt_t  *h;

    wx_json_field_t  answer[] = {
        { "error", WX_JSON_STRING,
          { (const unsigned char *) what, ngx_strlen(what) }, 0 },
        { "retry_after", WX_JSON_INTEGER, { NULL, 0 }, seconds }
    };

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value = ngx_http_wechat_number(r->pool, seconds);

    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_wechat_send_json(r, status, answer, 2);
}


/* Maps a core status to the answer, with one line naming the reason. */

ngx_int_t
ngx_http_wechat_reject(ngx_http_request_t *r, wx_status_t status,
    const char *what)
{
    ngx_int_t               rc;
    ngx_uint_t              reason;
    ngx_http_wechat_ctx_t  *ctx;

    reason = NGX_HTTP_WECHAT_REJECT_DECRYPT;

    switch (status) {

    case WX_ERR_TOO_LARGE:
        rc = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        reason = NGX_HTTP_WECHAT_REJECT_TOO_LARGE;
        break;

    case WX_ERR_XML:
    case WX_ERR_XML_HOSTILE:
    case WX_ERR_XML_DUPLICATE:
        rc = NGX_HTTP_BAD_REQUEST;
        reason = NGX_HTTP_WECHAT_REJECT_XML;
        break;

    case WX_ERR_XML_FIELD:
        ctx = ngx_http_wechat_get_ctx(r);
        ngx_http_wechat_count(rejected[NGX_HTTP_WECHAT_REJECT_FIELD]);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "wechat callback: %s rejected: field \"%s\" is "
                      "missing or not allowed", what, ctx->ev.refused);
        return NGX_HTTP_BAD_REQUEST;

    case WX_ERR_NOMEM:
    case WX_ERR_RANDOM:
    case WX_ERR_INTERNAL:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat callback: %s: %s", what,
                      wx_status_text(status));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    default:
        rc = NGX_HTTP_BAD_REQUEST;
    }

    ngx_http_wechat_count(rejected[reason]);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "wechat callback: %s rejected: %s", what,
                  wx_status_text(status));

    return rc;
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
