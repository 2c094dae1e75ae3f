
/*
 * ngx_http_wechat_module: calls to WeChat's HTTPS API, the nginx way.  Each
 * call is a subrequest into the internal location wechat_api_pass names,
 * which proxy_passes it with nginx's resolver, TLS verification and
 * keepalive; its answer is kept in memory, up to that location's
 * subrequest_output_buffer_size.  Every call has a deadline: the request
 * gets its answer by then even if the subrequest goes on.
 */


#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_api.h"


/* nginx's post-subrequest handler, and what the filters know of the answer */
typedef struct {
    ngx_http_post_subrequest_t   ps;
    ngx_http_wechat_api_call_t  *call;
    off_t                        size;      /* of the answer so far */
    unsigned                     too_big:1;
} ngx_http_wechat_api_sr_t;


static ngx_int_t ngx_http_wechat_api_subrequest(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call, ngx_http_request_t **psr);
static ngx_int_t ngx_http_wechat_api_body(ngx_http_request_t *sr,
    ngx_str_t *body);
static ngx_int_t ngx_http_wechat_api_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_wechat_api_answered(ngx_http_wechat_api_call_t *call);
static ngx_int_t ngx_http_wechat_api_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_wechat_api_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_http_wechat_api_sr_t *ngx_http_wechat_api_of(
    ngx_http_request_t *r);
static void ngx_http_wechat_api_too_big(ngx_http_request_t *sr,
    ngx_http_wechat_api_sr_t *as);
static void ngx_http_wechat_api_resume(ngx_http_request_t *r);
static void ngx_http_wechat_api_deadline(ngx_event_t *ev);
static void ngx_http_wechat_api_cleanup(void *data);
static u_char *ngx_http_wechat_api_log(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static void ngx_http_wechat_api_mask(u_char *p, u_char *last,
    const char *name);
static void ngx_http_wechat_api_finish(ngx_http_wechat_api_call_t *call);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/*
 * An answer over subrequest_output_buffer_size must not reach nginx's
 * in-memory collection, whose error closes the client's connection: these
 * filters, first in the chain, end the call with a 502 instead.
 */

ngx_int_t
ngx_http_wechat_api_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_wechat_api_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_wechat_api_body_filter;

    return NGX_OK;
}


/*
 * Starts call on behalf of r, whose handler learns the outcome: an HTTP
 * status and the body, or status 0 at call->deadline.  An answer after
 * that goes to call->late, if set.  NGX_ERROR if it could not start.
 */

ngx_int_t
ngx_http_wechat_api_call(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_request_t          *sr;

    call->request = r;
    call->status = 0;
    call->done = 0;
    call->too_big = 0;
    ngx_str_null(&call->answer);

    if (call->cleanup == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_wechat_api_cleanup;
        cln->data = call;
        call->cleanup = cln;

        call->timer.handler = ngx_http_wechat_api_deadline;
        call->timer.data = call;
        call->timer.log = r->connection->log;
    }

    /* the subrequest's upstream, in log lines, carries the token */

    ngx_http_wechat_api_mask_log(r, call);

    if (ngx_http_wechat_api_subrequest(r, call, &sr) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_add_timer(&call->timer, call->deadline > ngx_current_msec
                                ? call->deadline - ngx_current_msec : 1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wechat api: %V %V", &sr->method_name, &call->path);

    return NGX_OK;
}


/*
 * A background subrequest, so that the request can answer at its deadline
 * while the subrequest finishes; it sends only what the call says, none of
 * the client's headers.
 */

static ngx_int_t
ngx_http_wechat_api_subrequest(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call, ngx_http_request_t **psr)
{
    u_char                    *p;
    ngx_str_t                  uri;
    ngx_http_request_t        *sr;
    ngx_http_wechat_api_sr_t  *as;

    uri.len = call->conf->api_pass.len + call->path.len;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    as = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_api_sr_t));

    if (uri.data == NULL || as == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(uri.data, call->conf->api_pass.data,
                   call->conf->api_pass.len);
    ngx_memcpy(p, call->path.data, call->path.len);

    as->ps.handler = ngx_http_wechat_api_done;
    as->ps.data = as;
    as->call = call;

    if (ngx_http_subrequest(r, &uri, &call->args, &sr, &as->ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.content_length = NULL;
    sr->headers_in.content_length_n = -1;
    sr->headers_in.chunked = 0;
    sr->request_body = NULL;

    if (call->body.data == NULL) {
        sr->method = NGX_HTTP_GET;
        ngx_str_set(&sr->method_name, "GET");

    } else if (ngx_http_wechat_api_body(sr, &call->body) != NGX_OK) {
        return NGX_ERROR;
    }

    *psr = sr;

    return NGX_OK;
}


static ngx_int_t
ngx_http_wechat_api_body(ngx_http_request_t *sr, ngx_str_t *body)
{
    ngx_table_elt_t  *h;

    sr->method = NGX_HTTP_POST;
    ngx_str_set(&sr->method_name, "POST");

    sr->request_body = ngx_pcalloc(sr->pool,
                                   sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    sr->request_body->bufs = ngx_http_wechat_chain(sr->pool, body->data,
                                                   body->len);
    if (sr->request_body->bufs == NULL) {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = body->len;

    h = ngx_list_push(&sr->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Type");
    ngx_str_set(&h->value, "application/json");
    h->lowcase_key = (u_char *) "content-type";

    return NGX_OK;
}


/*
 * The answer, as the in-memory subrequest collected it in sr->out (chunks
 * decoded); one the filters found too big is a 502 for the call.
 */

static ngx_int_t
ngx_http_wechat_api_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_buf_t                   *b;
    ngx_http_wechat_api_sr_t    *as = data;
    ngx_http_wechat_api_call_t  *call = as->call;

    if (as->too_big) {
        /* the call has its answer already */
        return NGX_OK;
    }

    if (rc == NGX_OK && sr->out && sr->out->buf) {
        b = sr->out->buf;
        call->status = sr->headers_out.status;
        call->answer.data = b->pos;
        call->answer.len = b->last - b->pos;

    } else {
        call->status = NGX_HTTP_BAD_GATEWAY;
        ngx_str_null(&call->answer);
    }

    if (call->done) {
        /* the deadline, or the request, went first: a late answer */

        if (call->late && call->status == NGX_HTTP_OK && call->request) {
            call->late(call->request, call);
        }

        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "wechat api: %V answered %ui", &call->path, call->status);

    ngx_http_wechat_api_answered(call);

    return NGX_OK;
}


static void
ngx_http_wechat_api_answered(ngx_http_wechat_api_call_t *call)
{
    call->done = 1;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    /* the request goes on in its own turn, not inside the subrequest's */

    call->request->write_event_handler = ngx_http_wechat_api_resume;
    call->resume = 1;

    (void) ngx_http_post_request(call->request, NULL);
}


/*
 * A Content-Length over the limit: the body is not read at all (the
 * upstream ends the subrequest when it has only a header to send).
 */

static ngx_int_t
ngx_http_wechat_api_header_filter(ngx_http_request_t *r)
{
    ngx_http_wechat_api_sr_t   *as;
    ngx_http_core_loc_conf_t   *clcf;

    as = ngx_http_wechat_api_of(r);

    if (as != NULL && r->headers_out.content_length_n != -1) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (r->headers_out.content_length_n
            > (off_t) clcf->subrequest_output_buffer_size)
        {
            ngx_http_wechat_api_too_big(r, as);
            r->header_only = 1;
        }
    }

    return ngx_http_next_header_filter(r);
}


/* A chunked answer is counted; what passes the limit is read and dropped. */

static ngx_int_t
ngx_http_wechat_api_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    off_t                       size;
    ngx_chain_t                *cl;
    ngx_http_wechat_api_sr_t   *as;
    ngx_http_core_loc_conf_t   *clcf;

    as = ngx_http_wechat_api_of(r);

    if (as == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (!as->too_big) {
        size = 0;

        for (cl = in; cl; cl = cl->next) {
            size += ngx_buf_size(cl->buf);
        }

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (as->size + size <= (off_t) clcf->subrequest_output_buffer_size) {
            as->size += size;
            return ngx_http_next_body_filter(r, in);
        }

        ngx_http_wechat_api_too_big(r, as);
    }

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    return NGX_OK;
}


static ngx_http_wechat_api_sr_t *
ngx_http_wechat_api_of(ngx_http_request_t *r)
{
    if (r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_wechat_api_done)
    {
        return NULL;
    }

    return r->post_subrequest->data;
}


/* One line names the call and the limit; the caller answers a 502. */

static void
ngx_http_wechat_api_too_big(ngx_http_request_t *sr,
    ngx_http_wechat_api_sr_t *as)
{
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_wechat_api_call_t  *call = as->call;

    clcf = ngx_http_get_module_loc_conf(sr, ngx_http_core_module);

    ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                  "wechat api: %V answered more than "
                  "subrequest_output_buffer_size %uz of \"%V\": raise it "
                  "there", &call->path, clcf->subrequest_output_buffer_size,
                  &clcf->name);

    as->too_big = 1;

    if (call->done) {
        return;
    }

    call->status = NGX_HTTP_BAD_GATEWAY;
    call->too_big = 1;
    ngx_str_null(&call->answer);

    ngx_http_wechat_api_answered(call);
}


static void
ngx_http_wechat_api_resume(ngx_http_request_t *r)
{
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || !ctx->api.resume) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_wechat_api_finish(&ctx->api);
}


static void
ngx_http_wechat_api_deadline(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_wechat_api_call_t  *call = ev->data;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "wechat api: %V did not answer within "
                  "wechat_api_timeout %Mms", &call->path,
                  call->conf->api_timeout);

    c = call->request->connection;

    call->done = 1;
    call->status = 0;

    ngx_http_wechat_api_finish(call);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_wechat_api_finish(ngx_http_wechat_api_call_t *call)
{
    call->resume = 0;

    call->handler(call->request, call);
}


static void
ngx_http_wechat_api_cleanup(void *data)
{
    ngx_http_wechat_api_call_t  *call = data;

    call->done = 1;
    call->resume = 0;
    call->request = NULL;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }
}


/*
 * From now on, r's log lines mask what the API's arguments carry: the
 * access_token, a classic token fetch's secret, an OAuth code (which the
 * callback's own request line carries too).
 */

void
ngx_http_wechat_api_mask_log(ngx_http_request_t *r,
    ngx_http_wechat_api_call_t *call)
{
    if (r->log_handler != ngx_http_wechat_api_log) {
        call->log_handler = r->log_handler;
        r->log_handler = ngx_http_wechat_api_log;
    }
}


/*
 * nginx's context of a log line names the request and the upstream with
 * their arguments.
 */

static u_char *
ngx_http_wechat_api_log(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char                 *p;
    ngx_http_wechat_ctx_t  *ctx;

    ctx = ngx_http_wechat_get_ctx(r);

    if (ctx == NULL || ctx->api.log_handler == NULL) {
        return buf;
    }

    p = ctx->api.log_handler(r, sr, buf, len);

    ngx_http_wechat_api_mask(buf, p, "access_token=");
    ngx_http_wechat_api_mask(buf, p, "secret=");
    ngx_http_wechat_api_mask(buf, p, "code=");

    return p;
}


static void
ngx_http_wechat_api_mask(u_char *p, u_char *last, const char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    while ((p = ngx_strlcasestrn(p, last, (u_char *) name, len - 1))
           != NULL)
    {
        for (p += len; p < last && *p != '&' && *p != '"' && *p != ' '; p++)
        {
            *p = '*';
        }
    }
}
