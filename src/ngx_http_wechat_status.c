
/*
 * ngx_http_wechat_module: the wechat_status location, which reports the
 * counters in the Prometheus text format.
 */


#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_handlers.h"
#include "ngx_http_wechat_version.h"


#define NGX_HTTP_WECHAT_FAMILIES  31

#define NGX_HTTP_WECHAT_BUILD_INFO                                           \
    "# HELP wechat_build_info The module's version.\n"                       \
    "# TYPE wechat_build_info gauge\n"                                       \
    "wechat_build_info{version=\"" NGX_HTTP_WECHAT_VERSION "\"} 1\n"


typedef const char *(*ngx_http_wechat_label_pt)(ngx_uint_t i);

typedef struct {
    const char                 *name;
    const char                 *type;
    const char                 *help;
    const char                 *label;      /* NULL for one value */
    ngx_http_wechat_label_pt    value;      /* the label's value i */
    ngx_uint_t                  n;
    const char *const          *values;     /* or the label's values */
} ngx_http_wechat_family_t;


static const char *ngx_http_wechat_push_label(ngx_uint_t i);
static const char *ngx_http_wechat_poll_label(ngx_uint_t i);
static const char *ngx_http_wechat_refresh_label(ngx_uint_t i);
static const char *ngx_http_wechat_wakeup_label(ngx_uint_t i);
static const char *ngx_http_wechat_kind_label(ngx_uint_t i);
static const char *ngx_http_wechat_family_value(ngx_http_wechat_family_t *f,
    ngx_uint_t i);
static u_char *ngx_http_wechat_status_api(u_char *p, u_char *last,
    ngx_http_wechat_metrics_t *m);
static void ngx_http_wechat_status_snapshot(ngx_http_wechat_metrics_t *m,
    ngx_atomic_uint_t **values, ngx_atomic_uint_t *computed,
    ngx_atomic_uint_t *buckets);
static size_t ngx_http_wechat_status_size(void);
static u_char *ngx_http_wechat_status_family(u_char *p, u_char *last,
    ngx_http_wechat_family_t *f, ngx_atomic_uint_t *values);


static const char *const  ngx_http_wechat_reject_labels[] = {
    "missing", "signature", "timestamp", "msg_signature", "plaintext",
    "xml", "decrypt", "too_large", "method", "replay", "field"
};

static const char *const  ngx_http_wechat_qrcode_labels[] = {
    "new", "reused", "rate_limited"
};

/* the Redis latency buckets' upper bounds, as Prometheus writes them */
static const char *const  ngx_http_wechat_bucket_labels[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "+Inf"
};

static const char *const  ngx_http_wechat_redeem_labels[] = {
    "ok", "wrong", "burnt", "not_found"
};

static const char *const  ngx_http_wechat_link_labels[] = {
    "signature", "expired", "used"
};

static const char *const  ngx_http_wechat_bind_confirm_labels[] = {
    "bound", "conflict", "wrong", "not_found", "not_scanned"
};

static const char *const  ngx_http_wechat_login_confirm_labels[] = {
    "confirmed", "unbound", "cancelled", "used", "gone"
};


static ngx_http_wechat_family_t  ngx_http_wechat_families[] = {

    { "wechat_pushes_total", "counter", "Pushes answered, by outcome.",
      "outcome", ngx_http_wechat_push_label,
      NGX_HTTP_WECHAT_PUSH_OUTCOMES, NULL },

    { "wechat_pushes_rejected_total", "counter",
      "Pushes refused, by reason (signature and msg_signature are "
      "signature failures).", "reason", NULL,
      NGX_HTTP_WECHAT_REJECT_REASONS, ngx_http_wechat_reject_labels },

    { "wechat_dedup_hits_total", "counter",
      "Retried pushes answered with the first answer.", NULL, NULL, 1,
      NULL },

    { "wechat_polls_total", "counter", "Status polls answered, by status.",
      "status", ngx_http_wechat_poll_label, NGX_HTTP_WECHAT_POLL_STATUSES,
      NULL },

    { "wechat_polls_waiting", "gauge",
      "Status polls in progress: waiting for Redis or for a change.",
      NULL, NULL, 1, NULL },

    { "wechat_poll_wakeups_total", "counter",
      "Waiting polls woken by a message on their scene's channel.",
      NULL, NULL, 1, NULL },

    { "wechat_poll_timeouts_total", "counter",
      "Waiting polls answered pending at wechat_poll_timeout.",
      NULL, NULL, 1, NULL },

    { "wechat_pubsub_channels", "gauge",
      "Scene channels that polls wait on, over all workers.", NULL, NULL, 1,
      NULL },

    { "wechat_pubsub_reconnects_total", "counter",
      "Pub/sub connection attempts after the first.", NULL, NULL, 1, NULL },

    { "wechat_redis_connected_workers", "gauge",
      "Workers whose Redis connection is ready.", NULL, NULL, 1, NULL },

    { "wechat_redis_reconnects_total", "counter",
      "Redis connection attempts after the first.", NULL, NULL, 1, NULL },

    { "wechat_redis_timeouts_total", "counter",
      "Redis commands that timed out.", NULL, NULL, 1, NULL },

    { "wechat_token_refreshes_total", "counter",
      "access_token refreshes, by outcome.", "outcome",
      ngx_http_wechat_refresh_label, 2, NULL },

    { "wechat_token_age_seconds", "gauge",
      "Age of the newest access_token this node has seen.", NULL, NULL, 1,
      NULL },

    { "wechat_token_backoff_seconds", "gauge",
      "Time left in the back-off after a failed refresh, as this node last "
      "heard.", NULL, NULL, 1, NULL },

    { "wechat_token_backoff_refusals_total", "counter",
      "Calls answered 503 at once in a back-off, WeChat not asked.",
      NULL, NULL, 1, NULL },

    { "wechat_token_waiter_wakeups_total", "counter",
      "Looks again of callers waiting for another's refresh, by what woke "
      "them.", "by", ngx_http_wechat_wakeup_label, 2, NULL },

    { "wechat_token_refresh_failures", "gauge",
      "access_token refreshes this node made that failed since its last "
      "good one (0: none, or the last one worked).", NULL, NULL, 1, NULL },

    { "wechat_jsapi_ticket_refreshes_total", "counter",
      "jsapi_ticket refreshes (getticket), by outcome.", "outcome",
      ngx_http_wechat_refresh_label, 2, NULL },

    { "wechat_jsapi_ticket_age_seconds", "gauge",
      "Age of the newest jsapi_ticket this node has seen.", NULL, NULL, 1,
      NULL },

    { "wechat_jsapi_ticket_backoff_seconds", "gauge",
      "Time left in the jsapi_ticket's back-off after a failed refresh, as "
      "this node last heard.", NULL, NULL, 1, NULL },

    { "wechat_jsapi_ticket_backoff_refusals_total", "counter",
      "JS-SDK pages answered 503 at once in the jsapi_ticket's back-off.",
      NULL, NULL, 1, NULL },

    { "wechat_jsapi_ticket_waiter_wakeups_total", "counter",
      "Looks again of callers waiting for another's jsapi_ticket refresh, "
      "by what woke them.", "by", ngx_http_wechat_wakeup_label, 2, NULL },

    { "wechat_jsapi_ticket_refresh_failures", "gauge",
      "jsapi_ticket refreshes this node made that failed since its last "
      "good one.", NULL, NULL, 1, NULL },

    { "wechat_qrcodes_total", "counter",
      "wechat_qrcode answers, by outcome: a new scene, a pending one given "
      "back, refused over wechat_qrcode_rate.", "outcome", NULL, 3,
      ngx_http_wechat_qrcode_labels },

    { "wechat_scenes_issued_total", "counter",
      "Scenes issued (stored in Redis), by kind.", "kind",
      ngx_http_wechat_kind_label, NGX_HTTP_WECHAT_SCENE_KINDS, NULL },

    { "wechat_redeems_total", "counter",
      "wechat_redeem answers, by outcome: redeemed, a wrong code or token, "
      "the wrong one that burnt the scene, no such scene (or redeemed).",
      "outcome", NULL, NGX_HTTP_WECHAT_REDEEM_OUTCOMES,
      ngx_http_wechat_redeem_labels },

    { "wechat_link_refusals_total", "counter",
      "Signed links refused, by reason: not signed by a link secret "
      "(or malformed), expired, used before.", "reason", NULL,
      NGX_HTTP_WECHAT_LINK_REASONS, ngx_http_wechat_link_labels },

    { "wechat_bind_confirms_total", "counter",
      "Bind confirms (the scanner's code sent from the page), by outcome.",
      "outcome", NULL, NGX_HTTP_WECHAT_BIND_CONFIRM_OUTCOMES,
      ngx_http_wechat_bind_confirm_labels },

    { "wechat_login_confirms_total", "counter",
      "Login confirms (the scanner's answer in WeChat), by outcome.",
      "outcome", NULL, NGX_HTTP_WECHAT_LOGIN_CONFIRM_OUTCOMES,
      ngx_http_wechat_login_confirm_labels },

    { "wechat_redis_command_duration_seconds_bucket", "histogram",
      "Redis command round trips.", "le", NULL,
      NGX_HTTP_WECHAT_BUCKETS, ngx_http_wechat_bucket_labels }
};


static const char *const  ngx_http_wechat_push_labels[] = {
    "unavailable", "unknown", "passed", "answered"
};

static const char *const  ngx_http_wechat_api_endpoint_labels[] = {
    "token", "qrcode_create", "proxy", "template", "ticket"
};

static const char *const  ngx_http_wechat_api_result_labels[] = {
    "ok", "errcode", "failed"
};



ngx_int_t
ngx_http_wechat_status_handler(ngx_http_request_t *r)
{
    u_char                     *p, *start, *last;
    size_t                      size;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_atomic_uint_t           computed[5];  /* connected workers, then
                                                 age and back-off by
                                                 token kind */
    ngx_atomic_uint_t          *values[NGX_HTTP_WECHAT_FAMILIES];
    ngx_atomic_uint_t           buckets[NGX_HTTP_WECHAT_BUCKETS];
    ngx_http_wechat_metrics_t  *m = ngx_http_wechat_metrics;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (m == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_http_wechat_status_snapshot(m, values, computed, buckets);

    size = ngx_http_wechat_status_size()
           + sizeof("wechat_redis_command_duration_seconds_sum .\n"
                    "wechat_redis_command_duration_seconds_count \n")
           + 3 * NGX_ATOMIC_T_LEN
           + sizeof(NGX_HTTP_WECHAT_BUILD_INFO)
           + 256 + NGX_HTTP_WECHAT_API_ENDPOINTS * NGX_HTTP_WECHAT_API_RESULTS
                   * (sizeof("wechat_api_calls_total{endpoint=\"\","
                             "result=\"\"} \n") + 32 + NGX_ATOMIC_T_LEN);

    start = ngx_pnalloc(r->pool, size);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = start;
    last = start + size;

    for (i = 0; i < NGX_HTTP_WECHAT_FAMILIES; i++) {
        p = ngx_http_wechat_status_family(p, last,
                                          &ngx_http_wechat_families[i],
                                          values[i]);
    }

    p = ngx_slprintf(p, last,
                     "wechat_redis_command_duration_seconds_sum %uA.%06uA\n"
                     "wechat_redis_command_duration_seconds_count %uA\n",
                     m->redis_latency_usec / 1000000,
                     m->redis_latency_usec % 1000000,
                     buckets[NGX_HTTP_WECHAT_BUCKETS - 1]);

    p = ngx_http_wechat_status_api(p, last, m);

    p = ngx_slprintf(p, last, "%s", NGX_HTTP_WECHAT_BUILD_INFO);

    return ngx_http_wechat_send(r, NGX_HTTP_OK,
                                "text/plain; version=0.0.4", start,
                                p - start);
}


/* The values of each family, in the order of the families table. */

static void
ngx_http_wechat_status_snapshot(ngx_http_wechat_metrics_t *m,
    ngx_atomic_uint_t **values, ngx_atomic_uint_t *computed,
    ngx_atomic_uint_t *buckets)
{
    time_t             now;
    ngx_uint_t         i;
    ngx_atomic_uint_t  cumulative;

    computed[0] = 0;
    for (i = 0; i < NGX_HTTP_WECHAT_MAX_WORKERS; i++) {
        computed[0] += (m->redis_connected[i] != 0);
    }

    now = ngx_time();

    for (i = 0; i < NGX_HTTP_WECHAT_TOKEN_KINDS; i++) {
        computed[1 + 2 * i] = (m->token_issued[i]
                               && (ngx_atomic_uint_t) now > m->token_issued[i])
                              ? now - m->token_issued[i] : 0;

        computed[2 + 2 * i] = ((ngx_atomic_uint_t) now
                               < m->token_backoff_until[i])
                              ? m->token_backoff_until[i] - now : 0;
    }

    /* histogram buckets are cumulative */

    cumulative = 0;
    for (i = 0; i < NGX_HTTP_WECHAT_BUCKETS; i++) {
        cumulative += m->redis_latency[i];
        buckets[i] = cumulative;
    }

    values[0] = (ngx_atomic_uint_t *) m->pushes;
    values[1] = (ngx_atomic_uint_t *) m->rejected;
    values[2] = (ngx_atomic_uint_t *) &m->dedup_hits;
    values[3] = (ngx_atomic_uint_t *) m->polls;
    values[4] = (ngx_atomic_uint_t *) &m->polls_waiting;
    values[5] = (ngx_atomic_uint_t *) &m->poll_wakeups;
    values[6] = (ngx_atomic_uint_t *) &m->poll_timeouts;
    values[7] = (ngx_atomic_uint_t *) &m->pubsub_channels;
    values[8] = (ngx_atomic_uint_t *) &m->pubsub_reconnects;
    values[9] = &computed[0];
    values[10] = (ngx_atomic_uint_t *) &m->redis_reconnects;
    values[11] = (ngx_atomic_uint_t *) &m->redis_timeouts;

    /* the token's families, then the same for the jsapi_ticket */

    for (i = 0; i < NGX_HTTP_WECHAT_TOKEN_KINDS; i++) {
        values[12 + 6 * i] = (ngx_atomic_uint_t *) m->token_refreshes[i];
        values[13 + 6 * i] = &computed[1 + 2 * i];
        values[14 + 6 * i] = &computed[2 + 2 * i];
        values[15 + 6 * i] = (ngx_atomic_uint_t *) &m->token_refusals[i];
        values[16 + 6 * i] = (ngx_atomic_uint_t *) m->token_wakeups[i];
        values[17 + 6 * i] = (ngx_atomic_uint_t *) &m->token_failures[i];
    }

    values[24] = (ngx_atomic_uint_t *) m->qrcodes;
    values[25] = (ngx_atomic_uint_t *) m->scenes;
    values[26] = (ngx_atomic_uint_t *) m->redeems;
    values[27] = (ngx_atomic_uint_t *) m->link_refusals;
    values[28] = (ngx_atomic_uint_t *) m->bind_confirms;
    values[29] = (ngx_atomic_uint_t *) m->login_confirms;
    values[30] = buckets;
}


/* The most the families can take, with every value at its longest. */

static size_t
ngx_http_wechat_status_size(void)
{
    size_t                     size, line;
    ngx_uint_t                 i, j;
    ngx_http_wechat_family_t  *f;

    size = 0;

    for (i = 0; i < NGX_HTTP_WECHAT_FAMILIES; i++) {
        f = &ngx_http_wechat_families[i];

        size += sizeof("# HELP  \n# TYPE  \n") + 2 * ngx_strlen(f->name)
                + ngx_strlen(f->help) + ngx_strlen(f->type);

        for (j = 0; j < f->n; j++) {
            line = ngx_strlen(f->name) + sizeof(" \n") + NGX_ATOMIC_T_LEN;

            if (f->label) {
                line += sizeof("{=\"\"}") + ngx_strlen(f->label)
                        + ngx_strlen(ngx_http_wechat_family_value(f, j));
            }

            size += line;
        }
    }

    return size;
}


static u_char *
ngx_http_wechat_status_family(u_char *p, u_char *last,
    ngx_http_wechat_family_t *f, ngx_atomic_uint_t *values)
{
    size_t      len;
    ngx_uint_t  i;

    len = ngx_strlen(f->name);

    /* a histogram's HELP and TYPE name the family, without "_bucket" */

    if (ngx_strcmp(f->type, "histogram") == 0) {
        len -= sizeof("_bucket") - 1;
    }

    p = ngx_slprintf(p, last, "# HELP %*s %s\n# TYPE %*s %s\n",
                     len, f->name, f->help, len, f->name, f->type);

    for (i = 0; i < f->n; i++) {
        if (f->label) {
            p = ngx_slprintf(p, last, "%s{%s=\"%s\"} %uA\n", f->name,
                             f->label, ngx_http_wechat_family_value(f, i),
                             values[i]);

        } else {
            p = ngx_slprintf(p, last, "%s %uA\n", f->name, values[i]);
        }
    }

    return p;
}


/* WeChat API calls, by endpoint and by result: a family of two labels. */

static u_char *
ngx_http_wechat_status_api(u_char *p, u_char *last,
    ngx_http_wechat_metrics_t *m)
{
    ngx_uint_t  i, j;

    p = ngx_slprintf(p, last, "# HELP wechat_api_calls_total WeChat API "
                     "calls, by endpoint and result.\n"
                     "# TYPE wechat_api_calls_total counter\n");

    for (i = 0; i < NGX_HTTP_WECHAT_API_ENDPOINTS; i++) {
        for (j = 0; j < NGX_HTTP_WECHAT_API_RESULTS; j++) {
            p = ngx_slprintf(p, last, "wechat_api_calls_total{endpoint=\"%s\","
                             "result=\"%s\"} %uA\n",
                             ngx_http_wechat_api_endpoint_labels[i],
                             ngx_http_wechat_api_result_labels[j],
                             m->api_calls[i][j]);
        }
    }

    return p;
}


static const char *
ngx_http_wechat_refresh_label(ngx_uint_t i)
{
    return i == 0 ? "ok" : "failed";
}


static const char *
ngx_http_wechat_wakeup_label(ngx_uint_t i)
{
    return i == 0 ? "message" : "timer";
}


/* the kinds' names are the conf's, nul-terminated as ngx_string()s are */

static const char *
ngx_http_wechat_kind_label(ngx_uint_t i)
{
    return (const char *) ngx_http_wechat_kinds[i].data;
}


/* A label's value i: from the family's list, or its function. */

static const char *
ngx_http_wechat_family_value(ngx_http_wechat_family_t *f, ngx_uint_t i)
{
    return f->values ? f->values[i] : f->value(i);
}


/* Scan outcomes and poll statuses come from the core's table of them. */

static const char *
ngx_http_wechat_push_label(ngx_uint_t i)
{
    return i < WX_SCAN_OUTCOMES
           ? wx_scene_status_name(i)
           : ngx_http_wechat_push_labels[i - WX_SCAN_OUTCOMES];
}


static const char *
ngx_http_wechat_poll_label(ngx_uint_t i)
{
    return i < WX_SCENE_STATUSES ? wx_scene_status_name(i) : "unavailable";
}
