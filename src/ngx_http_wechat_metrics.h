
/*
 * ngx_http_wechat_module: the metrics layer, counters in shared memory
 * that every layer above counts in and wechat_status shows.  Fixed sets
 * of labels: each array is indexed by one of the lists below.
 */


#ifndef _NGX_HTTP_WECHAT_METRICS_H_INCLUDED_
#define _NGX_HTTP_WECHAT_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "core/wx_core.h"


/* metrics: API calls, by endpoint and by result */
#define NGX_HTTP_WECHAT_API_TOKEN        0
#define NGX_HTTP_WECHAT_API_QRCODE       1
#define NGX_HTTP_WECHAT_API_PROXY        2
#define NGX_HTTP_WECHAT_API_TEMPLATE     3
#define NGX_HTTP_WECHAT_API_TICKET       4  /* ticket/getticket */
#define NGX_HTTP_WECHAT_API_ENDPOINTS    5

#define NGX_HTTP_WECHAT_API_OK           0
#define NGX_HTTP_WECHAT_API_ERRCODE      1  /* WeChat answered an errcode */
#define NGX_HTTP_WECHAT_API_FAILED       2  /* no answer, or not HTTP 200 */
#define NGX_HTTP_WECHAT_API_RESULTS      3
#define NGX_HTTP_WECHAT_API_NO_TOKEN     3  /* not counted: Redis failed */
#define NGX_HTTP_WECHAT_API_BACKOFF      4  /* not counted: a refresh failed
                                               a moment ago, none is tried */

/* metrics: what the token store keeps for an account, by kind */
#define NGX_HTTP_WECHAT_TOKEN_ACCESS     0  /* the access_token */
#define NGX_HTTP_WECHAT_TOKEN_JSAPI      1  /* the JS-SDK's jsapi_ticket */
#define NGX_HTTP_WECHAT_TOKEN_KINDS      2


/* metrics: pushes by outcome (the first ones are the scan outcomes) */
#define NGX_HTTP_WECHAT_PUSH_UNAVAILABLE  WX_SCAN_OUTCOMES
#define NGX_HTTP_WECHAT_PUSH_UNKNOWN      (WX_SCAN_OUTCOMES + 1)
#define NGX_HTTP_WECHAT_PUSH_PASSED       (WX_SCAN_OUTCOMES + 2)
#define NGX_HTTP_WECHAT_PUSH_ANSWERED     (WX_SCAN_OUTCOMES + 3)
#define NGX_HTTP_WECHAT_PUSH_OUTCOMES     (WX_SCAN_OUTCOMES + 4)

/* metrics: why pushes were refused */
#define NGX_HTTP_WECHAT_REJECT_MISSING        0
#define NGX_HTTP_WECHAT_REJECT_SIGNATURE      1
#define NGX_HTTP_WECHAT_REJECT_TIMESTAMP      2
#define NGX_HTTP_WECHAT_REJECT_MSG_SIGNATURE  3
#define NGX_HTTP_WECHAT_REJECT_PLAINTEXT      4
#define NGX_HTTP_WECHAT_REJECT_XML            5
#define NGX_HTTP_WECHAT_REJECT_DECRYPT        6
#define NGX_HTTP_WECHAT_REJECT_TOO_LARGE      7
#define NGX_HTTP_WECHAT_REJECT_METHOD         8
#define NGX_HTTP_WECHAT_REJECT_REPLAY         9
#define NGX_HTTP_WECHAT_REJECT_FIELD          10
#define NGX_HTTP_WECHAT_REJECT_REASONS        11

/* metrics: poll answers, by scene status, then unavailable */
#define NGX_HTTP_WECHAT_POLL_UNAVAILABLE  WX_SCENE_STATUSES
#define NGX_HTTP_WECHAT_POLL_STATUSES     (WX_SCENE_STATUSES + 1)

#define NGX_HTTP_WECHAT_BUCKETS           12
#define NGX_HTTP_WECHAT_MAX_WORKERS       64


typedef struct {
    ngx_atomic_t                pushes[NGX_HTTP_WECHAT_PUSH_OUTCOMES];
    ngx_atomic_t                rejected[NGX_HTTP_WECHAT_REJECT_REASONS];
    ngx_atomic_t                dedup_hits;
    ngx_atomic_t                polls[NGX_HTTP_WECHAT_POLL_STATUSES];
    ngx_atomic_t                polls_waiting;
    ngx_atomic_t                poll_wakeups;
    ngx_atomic_t                poll_timeouts;
    ngx_atomic_t                pubsub_channels;
    ngx_atomic_t                pubsub_reconnects;
    ngx_atomic_t                redis_connected[NGX_HTTP_WECHAT_MAX_WORKERS];
                                                /* pids, by worker number */
    ngx_atomic_t                redis_reconnects;
    ngx_atomic_t                redis_timeouts;
    ngx_atomic_t                redis_latency[NGX_HTTP_WECHAT_BUCKETS];
    ngx_atomic_t                redis_latency_usec;
    ngx_atomic_t                api_calls[NGX_HTTP_WECHAT_API_ENDPOINTS]
                                         [NGX_HTTP_WECHAT_API_RESULTS];
    /* by NGX_HTTP_WECHAT_TOKEN_* */
    ngx_atomic_t                token_refreshes[NGX_HTTP_WECHAT_TOKEN_KINDS]
                                               [2];     /* ok, failed */
    ngx_atomic_t                token_issued[NGX_HTTP_WECHAT_TOKEN_KINDS];
                                                /* unix time, latest seen */
    ngx_atomic_t                token_backoff_until
                                    [NGX_HTTP_WECHAT_TOKEN_KINDS];
                                                /* unix time, latest seen */
    ngx_atomic_t                token_refusals[NGX_HTTP_WECHAT_TOKEN_KINDS];
                                                /* answered in a back-off */
    ngx_atomic_t                token_wakeups[NGX_HTTP_WECHAT_TOKEN_KINDS]
                                             [2];   /* message, timer */
    ngx_atomic_t                qrcodes[3];     /* new, reused, refused */
} ngx_http_wechat_metrics_t;

extern ngx_http_wechat_metrics_t  *ngx_http_wechat_metrics;

#define ngx_http_wechat_add(field, n)                                         \
    do {                                                                      \
        if (ngx_http_wechat_metrics) {                                        \
            (void) ngx_atomic_fetch_add(&ngx_http_wechat_metrics->field,      \
                                        (ngx_atomic_int_t) (n));              \
        }                                                                     \
    } while (0)

#define ngx_http_wechat_count(field)  ngx_http_wechat_add(field, 1)


/* metrics: _metrics.c */
ngx_int_t ngx_http_wechat_metrics_zone(ngx_conf_t *cf);
void ngx_http_wechat_metrics_redis_latency(ngx_msec_int_t usec);
void ngx_http_wechat_metrics_redis_connected(ngx_uint_t connected);


#endif /* _NGX_HTTP_WECHAT_METRICS_H_INCLUDED_ */
