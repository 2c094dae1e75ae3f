
/*
 * ngx_http_wechat_module: counters in shared memory, summed over workers,
 * and the wechat_status location that reports them in the Prometheus text
 * format.
 */


#include "ngx_http_wechat_module.h"


#define NGX_HTTP_WECHAT_STATUS_ZONE_SIZE  (64 * 1024)


static ngx_int_t ngx_http_wechat_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_wechat_status_handler(ngx_http_request_t *r);
static u_char *ngx_http_wechat_status_family(u_char *p, const char *name,
    const char *type, const char *help, const char *label,
    const char *const *values, ngx_atomic_t *counters, ngx_uint_t n);


ngx_http_wechat_metrics_t  *ngx_http_wechat_metrics;


static const char *const  ngx_http_wechat_push_names[] = {
    "bound", "conflict", "expired", "unavailable", "unknown", "passed",
    "answered"
};

static const char *const  ngx_http_wechat_reject_names[] = {
    "missing", "signature", "timestamp", "msg_signature", "plaintext",
    "xml", "decrypt", "too_large", "method", "replay", "field"
};

static const char *const  ngx_http_wechat_poll_names[] = {
    "bound", "conflict", "expired", "pending", "unavailable"
};

/* upper bounds in microseconds, and as Prometheus writes them */
static const ngx_msec_int_t  ngx_http_wechat_bucket_usec[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000
};

static const char *const  ngx_http_wechat_bucket_names[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "+Inf"
};


ngx_int_t
ngx_http_wechat_status_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    static ngx_str_t  name = ngx_string("wechat_status");

    shm_zone = ngx_shared_memory_add(cf, &name,
                                     NGX_HTTP_WECHAT_STATUS_ZONE_SIZE,
                                     &ngx_http_wechat_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_wechat_status_init_zone;

    return NGX_OK;
}


/* Counters survive reloads: the old zone's data is taken over. */

static ngx_int_t
ngx_http_wechat_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        shm_zone->data = data;
        ngx_http_wechat_metrics = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_wechat_metrics = shpool->data;
        return NGX_OK;
    }

    ngx_http_wechat_metrics = ngx_slab_calloc(shpool,
                                      sizeof(ngx_http_wechat_metrics_t));
    if (ngx_http_wechat_metrics == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ngx_http_wechat_metrics;
    shm_zone->data = ngx_http_wechat_metrics;

    return NGX_OK;
}


void
ngx_http_wechat_observe_redis(ngx_msec_int_t usec)
{
    ngx_uint_t                  i;
    ngx_http_wechat_metrics_t  *m = ngx_http_wechat_metrics;

    if (m == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_WECHAT_BUCKETS - 1; i++) {
        if (usec <= ngx_http_wechat_bucket_usec[i]) {
            break;
        }
    }

    ngx_atomic_fetch_add(&m->redis_latency[i], 1);
    ngx_atomic_fetch_add(&m->redis_latency_usec, usec);
}


char *
ngx_http_wechat_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_wechat_endpoint(cf, conf, NGX_HTTP_WECHAT_STATUS,
                                    ngx_http_wechat_status_handler);
}


static ngx_int_t
ngx_http_wechat_status_handler(ngx_http_request_t *r)
{
    u_char                     *p, *start;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_atomic_uint_t           connected, cumulative;
    ngx_atomic_t                buckets[NGX_HTTP_WECHAT_BUCKETS];
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

    start = ngx_pnalloc(r->pool, 8192);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_wechat_status_family(start, "wechat_pushes_total",
            "counter", "Pushes answered, by outcome.", "outcome",
            ngx_http_wechat_push_names, m->pushes,
            NGX_HTTP_WECHAT_PUSH_OUTCOMES);

    p = ngx_http_wechat_status_family(p, "wechat_pushes_rejected_total",
            "counter", "Pushes refused, by reason (signature and "
            "msg_signature are signature failures).", "reason",
            ngx_http_wechat_reject_names, m->rejected,
            NGX_HTTP_WECHAT_REJECT_REASONS);

    p = ngx_http_wechat_status_family(p, "wechat_dedup_hits_total",
            "counter", "Retried pushes answered with the first answer.",
            NULL, NULL, &m->dedup_hits, 1);

    p = ngx_http_wechat_status_family(p, "wechat_polls_total", "counter",
            "Status polls answered, by status.", "status",
            ngx_http_wechat_poll_names, m->polls,
            NGX_HTTP_WECHAT_POLL_STATUSES);

    p = ngx_http_wechat_status_family(p, "wechat_polls_waiting", "gauge",
            "Status polls waiting for Redis.", NULL, NULL,
            &m->polls_waiting, 1);

    connected = 0;
    for (i = 0; i < NGX_HTTP_WECHAT_MAX_WORKERS; i++) {
        connected += (m->redis_connected[i] != 0);
    }

    p = ngx_http_wechat_status_family(p, "wechat_redis_connected_workers",
            "gauge", "Workers whose Redis connection is ready.", NULL, NULL,
            (ngx_atomic_t *) &connected, 1);

    p = ngx_http_wechat_status_family(p, "wechat_redis_reconnects_total",
            "counter", "Redis connection attempts after the first.", NULL,
            NULL, &m->redis_reconnects, 1);

    p = ngx_http_wechat_status_family(p, "wechat_redis_timeouts_total",
            "counter", "Redis commands that timed out.", NULL, NULL,
            &m->redis_timeouts, 1);

    /* histogram buckets are cumulative */

    cumulative = 0;
    for (i = 0; i < NGX_HTTP_WECHAT_BUCKETS; i++) {
        cumulative += m->redis_latency[i];
        buckets[i] = cumulative;
    }

    p = ngx_http_wechat_status_family(p,
            "wechat_redis_command_duration_seconds_bucket", "histogram",
            "Redis command round trips.", "le",
            ngx_http_wechat_bucket_names, buckets, NGX_HTTP_WECHAT_BUCKETS);

    p = ngx_sprintf(p, "wechat_redis_command_duration_seconds_sum %uA.%06uA\n"
                       "wechat_redis_command_duration_seconds_count %uA\n",
                    m->redis_latency_usec / 1000000,
                    m->redis_latency_usec % 1000000, cumulative);

    return ngx_http_wechat_send(r, NGX_HTTP_OK,
                                "text/plain; version=0.0.4", start,
                                p - start);
}


static u_char *
ngx_http_wechat_status_family(u_char *p, const char *name, const char *type,
    const char *help, const char *label, const char *const *values,
    ngx_atomic_t *counters, ngx_uint_t n)
{
    size_t      len;
    ngx_uint_t  i;

    len = ngx_strlen(name);

    /* a histogram's HELP and TYPE name the family, without "_bucket" */

    if (ngx_strcmp(type, "histogram") == 0) {
        len -= sizeof("_bucket") - 1;
    }

    p = ngx_sprintf(p, "# HELP %*s %s\n# TYPE %*s %s\n",
                    len, name, help, len, name, type);

    for (i = 0; i < n; i++) {
        if (label) {
            p = ngx_sprintf(p, "%s{%s=\"%s\"} %uA\n", name, label, values[i],
                            counters[i]);

        } else {
            p = ngx_sprintf(p, "%s %uA\n", name, counters[i]);
        }
    }

    return p;
}
