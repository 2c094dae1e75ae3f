
/*
 * ngx_http_wechat_module: counters in shared memory, summed over workers,
 * that every layer adds to and wechat_status reports.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"


#define NGX_HTTP_WECHAT_METRICS_ZONE_SIZE  (64 * 1024)


static ngx_int_t ngx_http_wechat_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


ngx_http_wechat_metrics_t  *ngx_http_wechat_metrics;


/* upper bounds in microseconds of the Redis latency buckets */
static const ngx_msec_int_t  ngx_http_wechat_bucket_usec[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000
};


ngx_int_t
ngx_http_wechat_metrics_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    static ngx_str_t  name = ngx_string("wechat_status");

    shm_zone = ngx_shared_memory_add(cf, &name,
                                     NGX_HTTP_WECHAT_METRICS_ZONE_SIZE,
                                     &ngx_http_wechat_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_wechat_metrics_init_zone;

    return NGX_OK;
}


/* Counters survive reloads: the old zone's data is taken over. */

static ngx_int_t
ngx_http_wechat_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
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
ngx_http_wechat_metrics_redis_latency(ngx_msec_int_t usec)
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


/*
 * The state of this worker's Redis connection: the slot of this worker's
 * number holds its pid while connected.  A worker of the previous
 * generation, exiting after a reload, clears the slot only if it is still
 * its own.
 */

void
ngx_http_wechat_metrics_redis_connected(ngx_uint_t connected)
{
    ngx_atomic_t  *slot;

    if (ngx_http_wechat_metrics == NULL
        || ngx_worker >= NGX_HTTP_WECHAT_MAX_WORKERS)
    {
        return;
    }

    slot = &ngx_http_wechat_metrics->redis_connected[ngx_worker];

    if (connected) {
        *slot = ngx_pid;

    } else {
        (void) ngx_atomic_cmp_set(slot, ngx_pid, 0);
    }
}
