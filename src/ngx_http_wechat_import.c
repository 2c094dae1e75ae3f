
/*
 * ngx_http_wechat_module: wechat_bindings, for the site's own servers: an
 * account's bindings in bulk.  POST imports lines of NDJSON or CSV as the
 * body arrives, never all of it at once: a batch of lines at a time goes to
 * Redis in one script, and the body is read on only once the batch is
 * applied.  resync=1 then removes the bindings the file did not name: each
 * line's user is marked in a set of the run, and HSCAN pages of the
 * bindings drop the unmarked.  GET exports the bindings, HSCAN page by
 * page, each page written before the next is asked for.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_store.h"
#include "ngx_http_wechat_import.h"


/* the EVALSHA arguments ahead of a batch's pairs: numkeys, 4 keys, flags,
   now, stream maxlen, the mark's ttl */
#define NGX_HTTP_WECHAT_IMPORT_HEAD       9

#define NGX_HTTP_WECHAT_IMPORT_ADDED      0
#define NGX_HTTP_WECHAT_IMPORT_UNCHANGED  1
#define NGX_HTTP_WECHAT_IMPORT_REPLACED   2
#define NGX_HTTP_WECHAT_IMPORT_CONFLICT   3
#define NGX_HTTP_WECHAT_IMPORT_INVALID    4
#define NGX_HTTP_WECHAT_IMPORT_REMOVED    5
#define NGX_HTTP_WECHAT_IMPORT_OUTCOMES   6

/* a resync's sweep: the users' hash, then the openids' */
#define NGX_HTTP_WECHAT_SWEEP_USERS       1
#define NGX_HTTP_WECHAT_SWEEP_OPENIDS     2

/* an export's output buffers, and the longest line they hold */
#define NGX_HTTP_WECHAT_EXPORT_BUF        (64 * 1024)
#define NGX_HTTP_WECHAT_EXPORT_LINE                                          \
    (6 * (NGX_HTTP_WECHAT_NAME_MAX + NGX_HTTP_WECHAT_NAME_MAX) + 32)


typedef struct {
    ngx_http_wechat_ctx_t        ctx;       /* the module's, first: the
                                               request's filters read it */
    ngx_str_t                   *argv;      /* a batch's, keys first */
    ngx_uint_t                  *lines;     /* each pair's line number */
    ngx_uint_t                   pairs;
    u_char                      *arena;     /* the pairs' text */
    u_char                      *arena_last;
    ngx_uint_t                   batch_end; /* the last line of a batch
                                               sent */

    ngx_chain_t                 *in;        /* body read, not yet parsed */
    u_char                      *line;      /* a line across buffers */
    size_t                       line_len;
    u_char                      *scratch;   /* a line's fields, decoded */
    ngx_uint_t                   lineno;
    ngx_uint_t                   applied;   /* every line through it is */

    ngx_uint_t                   counts[NGX_HTTP_WECHAT_IMPORT_OUTCOMES];
    u_char                      *details;
    size_t                       details_len;
    ngx_uint_t                   omitted;

    ngx_uint_t                   sweep;
    const char                  *refusal;   /* why a resync swept nothing */
    ngx_str_t                    cursor;
    u_char                       cursor_data[NGX_INT64_LEN];

    ngx_chain_t                 *free;      /* an export's buffers */
    ngx_chain_t                 *busy;

    unsigned                     replace:1;
    unsigned                     dry_run:1;
    unsigned                     stream:1;
    unsigned                     resync:1;
    unsigned                     ndjson:1;  /* an export's format */
    unsigned                     sending:1; /* a batch is in Redis */
    unsigned                     body_done:1;
    unsigned                     long_line:1;
    unsigned                     answered:1;    /* the rest of the body,
                                                   if any, is let be */
} ngx_http_wechat_import_t;


static ngx_int_t ngx_http_wechat_bindings_args(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static ngx_int_t ngx_http_wechat_import_keys(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static ngx_int_t ngx_http_wechat_import_start(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_import_body(ngx_http_request_t *r);
static void ngx_http_wechat_import_read(ngx_http_request_t *r);
static void ngx_http_wechat_import_run(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static ngx_uint_t ngx_http_wechat_import_unread(ngx_http_request_t *r);
static void ngx_http_wechat_import_parse(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_import_line(ngx_http_wechat_import_t *imp,
    u_char *p, size_t len);
static void ngx_http_wechat_import_send(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_import_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_import_end(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_import_unmark(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_import_unmarked(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_import_sweep(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_import_swept(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_import_answer(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp, ngx_uint_t status, const char *error);
static void ngx_http_wechat_import_detail(ngx_http_wechat_import_t *imp,
    ngx_uint_t line, const char *status, const char *reason, ngx_str_t *user,
    ngx_str_t *openid, ngx_str_t *openid_user, ngx_str_t *user_openid);
static ngx_int_t ngx_http_wechat_import_cursor(ngx_http_wechat_import_t *imp,
    redisReply *response);
static ngx_int_t ngx_http_wechat_export_page(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static void ngx_http_wechat_export_done(ngx_http_request_t *r,
    redisReply *response, ngx_uint_t ended);
static void ngx_http_wechat_export_next(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static ngx_int_t ngx_http_wechat_export_lines(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp, redisReply *response, ngx_uint_t last);
static ngx_chain_t *ngx_http_wechat_export_buf(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp);
static u_char *ngx_http_wechat_export_line(u_char *p, ngx_uint_t ndjson,
    ngx_str_t *user, ngx_str_t *openid);
static void ngx_http_wechat_export_write(ngx_http_request_t *r);
static size_t ngx_http_wechat_json_len(ngx_str_t *s);
static u_char *ngx_http_wechat_json_copy(u_char *p, ngx_str_t *s);
static u_char *ngx_http_wechat_csv_copy(u_char *p, ngx_str_t *s,
    ngx_uint_t first);


static ngx_str_t  ngx_http_wechat_import_outcomes[] = {
    ngx_string("added"),
    ngx_string("unchanged"),
    ngx_string("replaced"),
    ngx_string("conflict"),
    ngx_string("invalid"),
    ngx_string("removed")
};


ngx_int_t
ngx_http_wechat_bindings_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_wechat_import_t  *imp;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    imp = ngx_pcalloc(r->pool, sizeof(ngx_http_wechat_import_t));
    if (imp == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* ours extends the module's context, which the filters may read */
    ngx_http_set_ctx(r, &imp->ctx, ngx_http_wechat_module);

    rc = ngx_http_wechat_bindings_args(r, imp);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_wechat_import_keys(r, imp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        ngx_str_set(&imp->cursor, "0");

        return ngx_http_wechat_wait_redis(r,
                                          ngx_http_wechat_export_page(r, imp));
    }

    return ngx_http_wechat_import_start(r, imp);
}


/* ?format=csv|ndjson&replace=&stream=&resync=&dry_run= */

static ngx_int_t
ngx_http_wechat_bindings_args(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_str_t   args[5];
    ngx_uint_t  i;

    static const char  *names[] = {
        "format", "replace", "stream", "resync", "dry_run"
    };

    if (ngx_http_wechat_args(r, names, 5, args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (args[0].len == 6 && ngx_strncmp(args[0].data, "ndjson", 6) == 0) {
        imp->ndjson = 1;

    } else if (args[0].len
               && !(args[0].len == 3
                    && ngx_strncmp(args[0].data, "csv", 3) == 0))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat bindings: \"format\" must be \"csv\" or "
                      "\"ndjson\"");
        return NGX_HTTP_BAD_REQUEST;
    }

    /* a flag is on unless absent, empty or "0" */

    for (i = 1; i < 5; i++) {
        if (args[i].len == 1 && args[i].data[0] == '0') {
            args[i].len = 0;
        }
    }

    imp->replace = args[1].len != 0;
    imp->stream = args[2].len != 0;
    imp->resync = args[3].len != 0;
    imp->dry_run = args[4].len != 0;

    return NGX_OK;
}


/*
 * The script's keys, the head of every batch's argv: the account's users,
 * openids and resolutions, and this run's mark set, the users a resync's
 * file names.
 */

static ngx_int_t
ngx_http_wechat_import_keys(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    u_char                       mark[32];  /* 128 random bits, hex */
    ngx_str_t                    suffix;
    ngx_http_wechat_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wechat_module);

    imp->argv = ngx_palloc(r->pool, (NGX_HTTP_WECHAT_IMPORT_HEAD
                                     + 2 * NGX_HTTP_WECHAT_IMPORT_BATCH)
                                    * sizeof(ngx_str_t));
    if (imp->argv == NULL
        || wx_random_hex((char *) mark, sizeof(mark) / 2) != WX_OK)
    {
        return NGX_ERROR;
    }

    suffix.data = mark;
    suffix.len = sizeof(mark);

    ngx_str_set(&imp->argv[0], "4");
    imp->argv[1] = ngx_http_wechat_key(r, wlcf, "users", NULL);
    imp->argv[2] = ngx_http_wechat_key(r, wlcf, "openids", NULL);
    imp->argv[3] = ngx_http_wechat_key(r, wlcf, "resolutions", NULL);
    imp->argv[4] = ngx_http_wechat_key(r, wlcf, "import:", &suffix);

    if (imp->argv[1].len == 0 || imp->argv[2].len == 0
        || imp->argv[3].len == 0 || imp->argv[4].len == 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the import: POST ?replace=1&stream=1&resync=1&dry_run=1 */

static ngx_int_t
ngx_http_wechat_import_start(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    u_char     *p;
    ngx_int_t   rc;

    /* a resync makes Redis what the file says: no conflict stands */

    if (imp->resync) {
        imp->replace = 1;
    }

    p = ngx_pnalloc(r->pool, 4);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imp->argv[5].data = p;

    if (imp->replace) {
        *p++ = 'r';
    }

    if (imp->dry_run) {
        *p++ = 'd';
    }

    if (imp->stream) {
        *p++ = 's';
    }

    if (imp->resync) {
        *p++ = 'm';
    }

    imp->argv[5].len = p - imp->argv[5].data;
    imp->argv[6] = ngx_http_wechat_now(r);
    imp->argv[7] = ngx_http_wechat_stream_maxlen;
    ngx_str_set(&imp->argv[8], NGX_HTTP_WECHAT_IMPORT_MARK_TTL);

    imp->lines = ngx_palloc(r->pool, NGX_HTTP_WECHAT_IMPORT_BATCH
                                     * sizeof(ngx_uint_t));
    imp->arena = ngx_pnalloc(r->pool, NGX_HTTP_WECHAT_IMPORT_BATCH
                                      * 2 * NGX_HTTP_WECHAT_NAME_MAX);
    imp->line = ngx_pnalloc(r->pool, NGX_HTTP_WECHAT_IMPORT_LINE_MAX);
    imp->scratch = ngx_pnalloc(r->pool, NGX_HTTP_WECHAT_IMPORT_LINE_MAX);
    imp->details = ngx_pnalloc(r->pool, NGX_HTTP_WECHAT_IMPORT_DETAILS);

    if (imp->argv[6].len == 0 || imp->lines == NULL || imp->arena == NULL
        || imp->line == NULL || imp->scratch == NULL || imp->details == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imp->arena_last = imp->arena;

    r->request_body_no_buffering = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_wechat_import_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_wechat_import_body(ngx_http_request_t *r)
{
    ngx_http_wechat_import_t  *imp;

    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);

    r->read_event_handler = ngx_http_wechat_import_read;

    ngx_http_wechat_import_run(r, imp);
}


/* More of the body came: it waits while a batch is in Redis. */

static void
ngx_http_wechat_import_read(ngx_http_request_t *r)
{
    ngx_http_wechat_import_t  *imp;

    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);

    /* past the body, or its answer, Redis's answers lead */

    if (!imp->sending && !imp->body_done && !imp->answered) {
        ngx_http_wechat_import_run(r, imp);
    }
}


/*
 * Parses what was read into batches, sends a full one, and reads on when
 * all was parsed; a batch's answer calls it again.
 */

static void
ngx_http_wechat_import_run(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_int_t  rc;

    for ( ;; ) {

        if (imp->pairs == NGX_HTTP_WECHAT_IMPORT_BATCH) {
            ngx_http_wechat_import_send(r, imp);
            return;
        }

        if (imp->in) {
            ngx_http_wechat_import_parse(r, imp);
            continue;
        }

        if (imp->body_done) {
            ngx_http_wechat_import_end(r, imp);
            return;
        }

        rc = NGX_OK;

        if (r->reading_body) {
            rc = ngx_http_read_unbuffered_request_body(r);

            if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "wechat bindings: the body was cut after "
                              "line %ui, applied through line %ui",
                              imp->lineno + ngx_http_wechat_import_unread(r),
                              imp->applied);
                ngx_http_finalize_request(r, rc);
                return;
            }
        }

        if (r->request_body) {
            imp->in = r->request_body->bufs;
            r->request_body->bufs = NULL;
        }

        if (rc == NGX_OK) {
            imp->body_done = 1;

        } else if (imp->in == NULL) {
            /* NGX_AGAIN: the read event comes back here */
            return;
        }
    }
}


/*
 * The lines nginx read in the call that found the client gone: they come
 * with the error, unparsed (a slow worker, or one waiting for a batch,
 * reads the last of the body and the close at once).
 */

static ngx_uint_t
ngx_http_wechat_import_unread(ngx_http_request_t *r)
{
    u_char       *p;
    ngx_uint_t    n;
    ngx_chain_t  *cl;

    n = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        for (p = cl->buf->pos; p < cl->buf->last; p++) {
            n += (*p == '\n');
        }
    }

    return n;
}


/* Lines out of the buffers read, until they end or a batch is full. */

static void
ngx_http_wechat_import_parse(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    u_char       *nl;
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (imp->in && imp->pairs < NGX_HTTP_WECHAT_IMPORT_BATCH) {
        cl = imp->in;
        b = cl->buf;

        while (b->pos < b->last
               && imp->pairs < NGX_HTTP_WECHAT_IMPORT_BATCH)
        {
            nl = ngx_strlchr(b->pos, b->last, '\n');
            n = (nl ? nl : b->last) - b->pos;

            if (nl && imp->line_len == 0 && !imp->long_line) {
                /* the usual case: a whole line in one buffer */
                ngx_http_wechat_import_line(imp, b->pos, n);
                b->pos = nl + 1;
                continue;
            }

            if (imp->line_len + n > NGX_HTTP_WECHAT_IMPORT_LINE_MAX) {
                imp->long_line = 1;

            } else {
                ngx_memcpy(imp->line + imp->line_len, b->pos, n);
                imp->line_len += n;
            }

            b->pos += n;

            if (nl == NULL) {
                break;
            }

            b->pos++;

            if (imp->long_line) {
                imp->lineno++;
                ngx_http_wechat_import_detail(imp, imp->lineno, "invalid",
                                              "the line is too long",
                                              NULL, NULL, NULL, NULL);
                imp->long_line = 0;

            } else {
                ngx_http_wechat_import_line(imp, imp->line, imp->line_len);
            }

            imp->line_len = 0;
        }

        if (b->pos == b->last) {
            imp->in = cl->next;
            ngx_free_chain(r->pool, cl);
        }
    }
}


/* One line, without its newline: a pair of the batch, or invalid. */

static void
ngx_http_wechat_import_line(ngx_http_wechat_import_t *imp, u_char *p,
    size_t len)
{
    ngx_str_t          fields[3];
    ngx_uint_t         i;
    wx_span_t          line;
    const char        *why;
    wx_import_line_t   parsed;

    imp->lineno++;

    if (len == 0 || (len == 1 && p[0] == '\r')) {
        return;
    }

    if (len > NGX_HTTP_WECHAT_IMPORT_LINE_MAX) {
        why = "the line is too long";
        goto invalid;
    }

    line.data = p;
    line.len = len;

    if (wx_import_line(line, imp->scratch, &parsed) != WX_OK) {
        why = parsed.reason;
        goto invalid;
    }

    if (parsed.header && imp->lineno == 1) {
        return;
    }

    fields[0].data = (u_char *) parsed.user.data;
    fields[0].len = parsed.user.len;
    fields[1].data = (u_char *) parsed.openid.data;
    fields[1].len = parsed.openid.len;
    fields[2].data = (u_char *) parsed.unionid.data;
    fields[2].len = parsed.unionid.len;

    if (fields[0].len == 0 || !ngx_http_wechat_is_name(&fields[0])) {
        why = fields[0].data ? "the user is not a name" : "no user";
        goto invalid;
    }

    if (!ngx_http_wechat_is_openid(&fields[1])) {
        why = fields[1].data ? "the openid is not an openid" : "no openid";
        goto invalid;
    }

    /* the module keeps no unionid: one is checked, and left */

    if (fields[2].len && !ngx_http_wechat_is_openid(&fields[2])) {
        why = "the unionid is not an id";
        goto invalid;
    }

    for (i = 0; i < 2; i++) {
        imp->argv[NGX_HTTP_WECHAT_IMPORT_HEAD + 2 * imp->pairs + i].data =
            imp->arena_last;
        imp->argv[NGX_HTTP_WECHAT_IMPORT_HEAD + 2 * imp->pairs + i].len =
            fields[i].len;
        imp->arena_last = ngx_cpymem(imp->arena_last, fields[i].data,
                                     fields[i].len);
    }

    imp->lines[imp->pairs++] = imp->lineno;

    return;

invalid:

    ngx_http_wechat_import_detail(imp, imp->lineno, "invalid", why,
                                  NULL, NULL, NULL, NULL);
}


static void
ngx_http_wechat_import_send(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_int_t  rc;

    rc = ngx_http_wechat_redis_command(r, ngx_http_wechat_import_done,
                                       NGX_HTTP_WECHAT_SCRIPT_IMPORT,
                                       NGX_HTTP_WECHAT_IMPORT_HEAD
                                       + 2 * imp->pairs,
                                       imp->argv);
    if (rc != NGX_OK) {
        ngx_http_wechat_import_answer(r, imp,
                                      NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "Redis is unavailable");
        return;
    }

    imp->sending = 1;
    imp->batch_end = imp->lineno;

    /* the client waits for Redis here, not the other way round */

    if (r->connection->read->timer_set) {
        ngx_del_timer(r->connection->read);
    }
}


static void
ngx_http_wechat_import_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_str_t                  *pair, owner, old;
    ngx_uint_t                  i, k;
    redisReply                **e;
    ngx_http_wechat_import_t   *imp;

    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);
    imp->sending = 0;

    if (response == NULL) {
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_SERVICE_UNAVAILABLE,
            ended == NGX_HTTP_WECHAT_REDIS_LOST
            ? "Redis was lost during a batch, which may have been applied"
            : "Redis is unavailable");
        return;
    }

    e = response->element;

    if (response->type != REDIS_REPLY_ARRAY
        || response->elements != 3 * imp->pairs)
    {
        goto bad;
    }

    for (i = 0; i < response->elements; i++) {
        if (e[i]->type != REDIS_REPLY_STRING) {
            goto bad;
        }
    }

    for (i = 0; i < imp->pairs; i++) {
        for (k = 0; k < NGX_HTTP_WECHAT_IMPORT_INVALID; k++) {
            if (e[3 * i]->len == ngx_http_wechat_import_outcomes[k].len
                && ngx_strncmp(e[3 * i]->str,
                               ngx_http_wechat_import_outcomes[k].data,
                               e[3 * i]->len) == 0)
            {
                break;
            }
        }

        if (k == NGX_HTTP_WECHAT_IMPORT_INVALID) {
            goto bad;
        }

        imp->counts[k]++;

        if (k == NGX_HTTP_WECHAT_IMPORT_REPLACED
            || k == NGX_HTTP_WECHAT_IMPORT_CONFLICT)
        {
            pair = &imp->argv[NGX_HTTP_WECHAT_IMPORT_HEAD + 2 * i];
            owner.data = (u_char *) e[3 * i + 1]->str;
            owner.len = e[3 * i + 1]->len;
            old.data = (u_char *) e[3 * i + 2]->str;
            old.len = e[3 * i + 2]->len;

            ngx_http_wechat_import_detail(imp, imp->lines[i],
                (char *) ngx_http_wechat_import_outcomes[k].data, NULL,
                &pair[0], &pair[1], &owner, &old);
        }
    }

    imp->applied = imp->batch_end;
    imp->pairs = 0;
    imp->arena_last = imp->arena;

    ngx_http_wechat_import_run(r, imp);
    return;

bad:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "wechat bindings: Redis answered a batch with a reply of "
                  "an unexpected shape");
    ngx_http_wechat_import_answer(r, imp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "Redis answered a batch unexpectedly");
}


/* All of the body is parsed: the last batch, a resync's sweep, the end. */

static void
ngx_http_wechat_import_end(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_uint_t  marked;

    if (imp->line_len || imp->long_line) {

        /* the batch of the lines before the cut goes nowhere either */

        imp->pairs = 0;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat bindings: the body ends inside line %ui, "
                      "applied through line %ui",
                      imp->lineno + 1, imp->applied);
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_BAD_REQUEST,
                                      "the body ends inside a line");
        return;
    }

    if (imp->pairs) {
        ngx_http_wechat_import_send(r, imp);
        return;
    }

    imp->applied = imp->lineno;

    if (!imp->resync) {
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_OK, NULL);
        return;
    }

    /* nothing is removed on the word of a file that is not all good */

    marked = imp->counts[NGX_HTTP_WECHAT_IMPORT_ADDED]
             + imp->counts[NGX_HTTP_WECHAT_IMPORT_UNCHANGED]
             + imp->counts[NGX_HTTP_WECHAT_IMPORT_REPLACED];

    if (imp->counts[NGX_HTTP_WECHAT_IMPORT_INVALID] || marked == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat bindings: a resync with %ui invalid lines "
                      "and %ui bindings removes nothing",
                      imp->counts[NGX_HTTP_WECHAT_IMPORT_INVALID], marked);
        imp->refusal = marked ? "invalid lines: the resync removed nothing"
                              : "no bindings: the resync removed nothing";
        ngx_http_wechat_import_unmark(r, imp);
        return;
    }

    imp->sweep = NGX_HTTP_WECHAT_SWEEP_USERS;
    ngx_str_set(&imp->cursor, "0");

    ngx_http_wechat_import_sweep(r, imp);
}


/* A resync that sweeps nothing drops its mark before it answers. */

static void
ngx_http_wechat_import_unmark(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_str_t  argv[2];

    ngx_str_set(&argv[0], "DEL");
    argv[1] = imp->argv[4];

    if (ngx_http_wechat_redis_command(r, ngx_http_wechat_import_unmarked,
                                      NGX_HTTP_WECHAT_NO_SCRIPT, 2, argv)
        != NGX_OK)
    {
        /* it expires */
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_CONFLICT,
                                      imp->refusal);
    }
}


static void
ngx_http_wechat_import_unmarked(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_http_wechat_import_t  *imp;

    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);

    ngx_http_wechat_import_answer(r, imp, NGX_HTTP_CONFLICT, imp->refusal);
}


static void
ngx_http_wechat_import_sweep(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_str_t  argv[11];

    ngx_memcpy(argv, imp->argv, 8 * sizeof(ngx_str_t));

    if (imp->sweep == NGX_HTTP_WECHAT_SWEEP_USERS) {
        ngx_str_set(&argv[8], "users");

    } else {
        ngx_str_set(&argv[8], "openids");
    }

    argv[9] = imp->cursor;
    argv[10].data = (u_char *) NGX_HTTP_WECHAT_IMPORT_PAGE;
    argv[10].len = sizeof(NGX_HTTP_WECHAT_IMPORT_PAGE) - 1;

    if (ngx_http_wechat_redis_command(r, ngx_http_wechat_import_swept,
                                      NGX_HTTP_WECHAT_SCRIPT_IMPORT_SWEEP,
                                      11, argv)
        != NGX_OK)
    {
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "Redis is unavailable");
    }
}


static void
ngx_http_wechat_import_swept(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_str_t                  user, openid;
    ngx_uint_t                 i;
    ngx_http_wechat_import_t  *imp;

    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);

    if (response == NULL) {
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "Redis is unavailable: the resync "
                                      "removed only some bindings");
        return;
    }

    if (ngx_http_wechat_import_cursor(imp, response) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat bindings: Redis answered a sweep with a "
                      "reply of an unexpected shape");
        ngx_http_wechat_import_answer(r, imp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "Redis answered a sweep unexpectedly");
        return;
    }

    for (i = 1; i < response->elements; i += 2) {
        user.data = (u_char *) response->element[i]->str;
        user.len = response->element[i]->len;
        openid.data = (u_char *) response->element[i + 1]->str;
        openid.len = response->element[i + 1]->len;

        imp->counts[NGX_HTTP_WECHAT_IMPORT_REMOVED]++;
        ngx_http_wechat_import_detail(imp, 0, "removed", NULL, &user,
                                      &openid, NULL, NULL);
    }

    if (imp->cursor.len == 1 && imp->cursor.data[0] == '0') {
        if (imp->sweep == NGX_HTTP_WECHAT_SWEEP_OPENIDS) {
            ngx_http_wechat_import_answer(r, imp, NGX_HTTP_OK, NULL);
            return;
        }

        imp->sweep = NGX_HTTP_WECHAT_SWEEP_OPENIDS;
    }

    ngx_http_wechat_import_sweep(r, imp);
}


/* { cursor, a, b, ... } of the scripts that scan: the cursor kept */

static ngx_int_t
ngx_http_wechat_import_cursor(ngx_http_wechat_import_t *imp,
    redisReply *response)
{
    ngx_uint_t    i;
    redisReply  **e;

    e = response->element;

    if (response->type != REDIS_REPLY_ARRAY || response->elements % 2 != 1)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < response->elements; i++) {
        if (e[i]->type != REDIS_REPLY_STRING) {
            return NGX_ERROR;
        }
    }

    if (e[0]->len == 0 || e[0]->len > NGX_INT64_LEN) {
        return NGX_ERROR;
    }

    for (i = 0; i < e[0]->len; i++) {
        if (e[0]->str[i] < '0' || e[0]->str[i] > '9') {
            return NGX_ERROR;
        }
    }

    imp->cursor.data = imp->cursor_data;
    imp->cursor.len = e[0]->len;
    ngx_memcpy(imp->cursor_data, e[0]->str, e[0]->len);

    return NGX_OK;
}


/*
 * The summary: counts, the lines through which all is applied, and the
 * lines that were not simply added or found as they were.
 */

static void
ngx_http_wechat_import_answer(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp, ngx_uint_t status, const char *error)
{
    u_char      *p, *json;
    size_t       len;
    ngx_uint_t   i;

    imp->answered = 1;

    len = sizeof("{\"lines\":,\"applied_through\":,\"dry_run\":false,"
                 "\"resync\":false,\"error\":\"\",\"details\":[],"
                 "\"details_omitted\":}")
          + 2 * NGX_INT_T_LEN + NGX_INT_T_LEN
          + (error ? ngx_strlen(error) : 0) + imp->details_len;

    for (i = 0; i < NGX_HTTP_WECHAT_IMPORT_OUTCOMES; i++) {
        len += sizeof(",\"\":") + ngx_http_wechat_import_outcomes[i].len
               + NGX_INT_T_LEN;
    }

    json = ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_sprintf(json, "{\"lines\":%ui,\"applied_through\":%ui",
                    imp->lineno, imp->applied);

    for (i = 0; i < NGX_HTTP_WECHAT_IMPORT_OUTCOMES; i++) {
        p = ngx_sprintf(p, ",\"%V\":%ui", &ngx_http_wechat_import_outcomes[i],
                        imp->counts[i]);
    }

    p = ngx_sprintf(p, ",\"dry_run\":%s,\"resync\":%s",
                    imp->dry_run ? "true" : "false",
                    imp->resync ? "true" : "false");

    if (error) {
        p = ngx_sprintf(p, ",\"error\":\"%s\"", error);
    }

    p = ngx_cpymem(p, ",\"details\":[", sizeof(",\"details\":[") - 1);
    p = ngx_cpymem(p, imp->details, imp->details_len);
    *p++ = ']';

    if (imp->omitted) {
        p = ngx_sprintf(p, ",\"details_omitted\":%ui", imp->omitted);
    }

    *p++ = '}';

    if (status == NGX_HTTP_OK && imp->counts[NGX_HTTP_WECHAT_IMPORT_INVALID])
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wechat bindings: %ui invalid lines of %ui",
                      imp->counts[NGX_HTTP_WECHAT_IMPORT_INVALID],
                      imp->lineno);
    }

    if (ngx_http_wechat_no_store(r) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r,
        ngx_http_wechat_send(r, status, "application/json", json, p - json));
}


/* A line of the answer's details, while they fit. */

static void
ngx_http_wechat_import_detail(ngx_http_wechat_import_t *imp,
    ngx_uint_t line, const char *status, const char *reason, ngx_str_t *user,
    ngx_str_t *openid, ngx_str_t *openid_user, ngx_str_t *user_openid)
{
    u_char     *p;
    size_t      len;
    ngx_uint_t  i;
    ngx_str_t  *values[4];

    static const char  *names[] = {
        "user", "openid", "openid_user", "user_openid"
    };

    if (ngx_strcmp(status, "invalid") == 0) {
        imp->counts[NGX_HTTP_WECHAT_IMPORT_INVALID]++;
    }

    values[0] = user;
    values[1] = openid;
    values[2] = openid_user;
    values[3] = user_openid;

    len = sizeof(",{\"line\":,\"status\":\"\",\"reason\":\"\"}") + NGX_INT_T_LEN
          + ngx_strlen(status) + (reason ? ngx_strlen(reason) : 0);

    for (i = 0; i < 4; i++) {
        if (values[i] && values[i]->len) {
            len += sizeof(",\"\":\"\"") + ngx_strlen(names[i])
                   + ngx_http_wechat_json_len(values[i]);
        }
    }

    if (imp->details_len + len > NGX_HTTP_WECHAT_IMPORT_DETAILS) {
        imp->omitted++;
        return;
    }

    p = imp->details + imp->details_len;

    if (imp->details_len) {
        *p++ = ',';
    }

    *p++ = '{';

    if (line) {
        p = ngx_sprintf(p, "\"line\":%ui,", line);
    }

    p = ngx_sprintf(p, "\"status\":\"%s\"", status);

    if (reason) {
        p = ngx_sprintf(p, ",\"reason\":\"%s\"", reason);
    }

    for (i = 0; i < 4; i++) {
        if (values[i] && values[i]->len) {
            p = ngx_sprintf(p, ",\"%s\":\"", names[i]);
            p = ngx_http_wechat_json_copy(p, values[i]);
            *p++ = '"';
        }
    }

    *p++ = '}';

    imp->details_len = p - imp->details;
}


/* the export: GET ?format=csv|ndjson */

static ngx_int_t
ngx_http_wechat_export_page(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_str_t  argv[4];

    ngx_str_set(&argv[0], "1");
    argv[1] = imp->argv[1];
    argv[2] = imp->cursor;
    argv[3].data = (u_char *) NGX_HTTP_WECHAT_IMPORT_PAGE;
    argv[3].len = sizeof(NGX_HTTP_WECHAT_IMPORT_PAGE) - 1;

    return ngx_http_wechat_redis_command(r, ngx_http_wechat_export_done,
                                         NGX_HTTP_WECHAT_SCRIPT_EXPORT,
                                         4, argv);
}


static void
ngx_http_wechat_export_done(ngx_http_request_t *r, redisReply *response,
    ngx_uint_t ended)
{
    ngx_int_t                  rc;
    ngx_uint_t                 last;
    ngx_http_wechat_import_t  *imp;

    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);

    if (response && ngx_http_wechat_import_cursor(imp, response) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat bindings: Redis answered an export with a "
                      "reply of an unexpected shape");
        response = NULL;
    }

    if (response == NULL) {
        if (!r->header_sent) {
            ngx_http_finalize_request(r,
                                      ngx_http_wechat_send_unavailable(r));
            return;
        }

        /* the answer stops short: its chunked end never comes */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat bindings: the export stopped, Redis failed");
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (!r->header_sent) {
        r->headers_out.status = NGX_HTTP_OK;
        r->headers_out.content_length_n = -1;

        if (imp->ndjson) {
            ngx_str_set(&r->headers_out.content_type,
                        "application/x-ndjson");

        } else {
            ngx_str_set(&r->headers_out.content_type, "text/csv");
        }

        r->headers_out.content_type_len = r->headers_out.content_type.len;

        if (ngx_http_wechat_no_store(r) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        rc = ngx_http_send_header(r);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_finalize_request(r, rc);
            return;
        }
    }

    last = imp->cursor.len == 1 && imp->cursor.data[0] == '0';

    rc = ngx_http_wechat_export_lines(r, imp, response, last);

    if (rc == NGX_ERROR || last) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* the next page once this one is on its way */

    if (r->connection->buffered) {
        r->write_event_handler = ngx_http_wechat_export_write;
        ngx_http_wechat_export_write(r);
        return;
    }

    ngx_http_wechat_export_next(r, imp);
}


static void
ngx_http_wechat_export_next(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    if (ngx_http_wechat_export_page(r, imp) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wechat bindings: the export stopped, Redis is "
                      "unavailable");
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


/* A page's bindings as lines, into buffers that come back once sent. */

static ngx_int_t
ngx_http_wechat_export_lines(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp, redisReply *response, ngx_uint_t last)
{
    ngx_int_t      rc;
    ngx_str_t      user, openid;
    ngx_buf_t     *b;
    ngx_uint_t     i;
    ngx_chain_t   *out, *cl, **ll;

    out = NULL;
    ll = &out;
    b = NULL;

    for (i = 1; i <= response->elements; i += 2) {

        if (b == NULL || b->end - b->last < NGX_HTTP_WECHAT_EXPORT_LINE) {
            cl = ngx_http_wechat_export_buf(r, imp);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = cl->buf;
            *ll = cl;
            ll = &cl->next;
        }

        if (i == response->elements) {
            break;
        }

        user.data = (u_char *) response->element[i]->str;
        user.len = response->element[i]->len;
        openid.data = (u_char *) response->element[i + 1]->str;
        openid.len = response->element[i + 1]->len;

        if (user.len > NGX_HTTP_WECHAT_NAME_MAX
            || openid.len > NGX_HTTP_WECHAT_NAME_MAX)
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "wechat bindings: a binding too long to export "
                          "left out");
            continue;
        }

        b->last = ngx_http_wechat_export_line(b->last, imp->ndjson, &user,
                                              &openid);
    }

    if (last) {
        b->last_buf = 1;
    }

    rc = ngx_http_output_filter(r, out);

    ngx_chain_update_chains(r->pool, &imp->free, &imp->busy, &out,
                            (ngx_buf_tag_t) &ngx_http_wechat_export_lines);

    return rc;
}


/* A buffer for lines: one sent earlier, or a new one. */

static ngx_chain_t *
ngx_http_wechat_export_buf(ngx_http_request_t *r,
    ngx_http_wechat_import_t *imp)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(r->pool, &imp->free);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;

    if (b->start == NULL) {
        b->start = ngx_palloc(r->pool, NGX_HTTP_WECHAT_EXPORT_BUF);
        if (b->start == NULL) {
            return NULL;
        }

        b->end = b->start + NGX_HTTP_WECHAT_EXPORT_BUF;
        b->temporary = 1;
        b->tag = (ngx_buf_tag_t) &ngx_http_wechat_export_lines;
    }

    b->pos = b->start;
    b->last = b->start;
    b->flush = 1;
    b->last_buf = 0;

    return cl;
}


/* One binding's line, CSV or NDJSON, at p: where it ends. */

static u_char *
ngx_http_wechat_export_line(u_char *p, ngx_uint_t ndjson, ngx_str_t *user,
    ngx_str_t *openid)
{
    if (ndjson) {
        p = ngx_cpymem(p, "{\"user\":\"", sizeof("{\"user\":\"") - 1);
        p = ngx_http_wechat_json_copy(p, user);
        p = ngx_cpymem(p, "\",\"openid\":\"", sizeof("\",\"openid\":\"") - 1);
        p = ngx_http_wechat_json_copy(p, openid);
        return ngx_cpymem(p, "\"}\n", 3);
    }

    p = ngx_http_wechat_csv_copy(p, user, 1);
    *p++ = ',';
    p = ngx_http_wechat_csv_copy(p, openid, 0);
    *p++ = '\n';

    return p;
}


static void
ngx_http_wechat_export_write(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_wechat_import_t  *imp;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;
    imp = (ngx_http_wechat_import_t *) ngx_http_wechat_get_ctx(r);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "wechat bindings: the client took too long to read "
                      "the export");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_chain_update_chains(r->pool, &imp->free, &imp->busy, NULL,
                            (ngx_buf_tag_t) &ngx_http_wechat_export_lines);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (c->buffered) {
        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_wechat_export_next(r, imp);
}


/* JSON string contents: '"', '\' and control characters escaped. */

static size_t
ngx_http_wechat_json_len(ngx_str_t *s)
{
    size_t  i, len;

    len = s->len;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '"' || s->data[i] == '\\') {
            len++;

        } else if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            len += 5;
        }
    }

    return len;
}


static u_char *
ngx_http_wechat_json_copy(u_char *p, ngx_str_t *s)
{
    u_char  c;
    size_t  i;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;

        } else if (c < 0x20 || c == 0x7f) {
            p = ngx_sprintf(p, "\\u%04xd", (int) c);

        } else {
            *p++ = c;
        }
    }

    return p;
}


/*
 * A CSV field, quoted when it holds ',' or '"', or when it would read as
 * something else: a first field starting with '{' (an NDJSON line), or
 * "user" (the header).
 */

static u_char *
ngx_http_wechat_csv_copy(u_char *p, ngx_str_t *s, ngx_uint_t first)
{
    size_t  i;

    if (ngx_strlchr(s->data, s->data + s->len, ',') == NULL
        && ngx_strlchr(s->data, s->data + s->len, '"') == NULL
        && !(first && s->len && s->data[0] == '{')
        && !(first && s->len == 4 && ngx_strncmp(s->data, "user", 4) == 0))
    {
        return ngx_cpymem(p, s->data, s->len);
    }

    *p++ = '"';

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '"') {
            *p++ = '"';
        }

        *p++ = s->data[i];
    }

    *p++ = '"';

    return p;
}
