
/*
 * ngx_http_wechat_module: the map of a Redis Cluster, per worker: which
 * node serves each slot, from CLUSTER SLOTS, and the nodes' addresses by
 * index, the seeds first.  The command connections (_redis.c) route by
 * it, have it learnt on one of theirs when it is stale, and follow MOVED
 * and ASK through it; it tells them when it changed.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_util.h"
#include "ngx_http_wechat_rconn.h"


/* ms between two CLUSTER SLOTS: a map that cannot be learnt is no flood */
#define NGX_HTTP_WECHAT_LEARN_INTERVAL  100


typedef struct {
    ngx_http_wechat_main_conf_t  *conf;
    ngx_http_wechat_addr_t        nodes[NGX_HTTP_WECHAT_MAX_NODES];
    ngx_uint_t                    nnodes;
    ngx_uint_t                    nseeds;
    u_char                        slots[WX_REDIS_SLOTS];  /* node + 1 */
    u_char                        learnt[WX_REDIS_SLOTS];
    u_char                        serving[NGX_HTTP_WECHAT_MAX_NODES];
    ngx_uint_t                    from;       /* the node asked */
    ngx_msec_t                    asked;      /* when */
    ngx_http_wechat_moved_pt    changed;
    unsigned                      stale:1;
    unsigned                      learning:1;
} ngx_http_wechat_cluster_t;


static void ngx_http_wechat_cluster_slots_done(
    ngx_http_wechat_rconn_t *conn, redisReply *response, void *data);
static int ngx_http_wechat_cluster_range(void *data, unsigned first,
    unsigned last, wx_span_t host, unsigned port);
static ngx_int_t ngx_http_wechat_cluster_node(ngx_http_wechat_cluster_t *cl,
    ngx_uint_t from, ngx_str_t *host, ngx_uint_t port);


static ngx_http_wechat_cluster_t  ngx_http_wechat_cluster;


ngx_int_t
ngx_http_wechat_cluster_init_process(ngx_cycle_t *cycle)
{
    ngx_http_wechat_addr_t       *seed;
    ngx_http_wechat_cluster_t    *cl;
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_wechat_module);
    if (wmcf == NULL || wmcf->cluster == NULL) {
        return NGX_OK;
    }

    cl = &ngx_http_wechat_cluster;
    ngx_memzero(cl, sizeof(ngx_http_wechat_cluster_t));

    cl->conf = wmcf;
    cl->stale = 1;

    seed = wmcf->cluster->elts;

    for (cl->nseeds = 0;
         cl->nseeds < wmcf->cluster->nelts
         && cl->nseeds < NGX_HTTP_WECHAT_MAX_NODES;
         cl->nseeds++)
    {
        cl->nodes[cl->nseeds] = seed[cl->nseeds];
    }

    cl->nnodes = cl->nseeds;

    return NGX_OK;
}


/* The command connections' call when the map changed. */

void
ngx_http_wechat_cluster_watch(ngx_http_wechat_moved_pt changed)
{
    ngx_http_wechat_cluster.changed = changed;
}


ngx_uint_t
ngx_http_wechat_cluster_seeds(void)
{
    return ngx_http_wechat_cluster.nseeds;
}


ngx_uint_t
ngx_http_wechat_cluster_nodes(void)
{
    return ngx_http_wechat_cluster.nnodes;
}


ngx_http_wechat_addr_t *
ngx_http_wechat_cluster_addr(ngx_uint_t node)
{
    return &ngx_http_wechat_cluster.nodes[node];
}


/* The node that serves a key's slot; NGX_DECLINED while it is unknown. */

ngx_int_t
ngx_http_wechat_cluster_route(ngx_str_t *key)
{
    ngx_uint_t  n;

    n = ngx_http_wechat_cluster.slots[wx_redis_slot(
                                          ngx_http_wechat_span(key))];

    return n ? (ngx_int_t) n - 1 : NGX_DECLINED;
}


/* Whether any slot lives on the node. */

ngx_uint_t
ngx_http_wechat_cluster_serves(ngx_uint_t node)
{
    return ngx_http_wechat_cluster.serving[node];
}


/* Whether a configured account's slot lives on the node. */

ngx_uint_t
ngx_http_wechat_cluster_wanted(ngx_uint_t node)
{
    ngx_str_t                  *tag;
    ngx_uint_t                  i;
    ngx_http_wechat_cluster_t  *cl = &ngx_http_wechat_cluster;

    tag = cl->conf->tags->elts;

    for (i = 0; i < cl->conf->tags->nelts; i++) {
        if (ngx_http_wechat_cluster_route(&tag[i]) == (ngx_int_t) node) {
            return 1;
        }
    }

    return 0;
}


/*
 * A MOVED or ASK from node from: the index of the node it names.  MOVED
 * also moves the slot, and has the whole map learnt again.
 */

ngx_int_t
ngx_http_wechat_cluster_redirect(ngx_uint_t from, wx_redirect_t *to)
{
    ngx_int_t                   n;
    ngx_str_t                   host;
    ngx_http_wechat_cluster_t  *cl = &ngx_http_wechat_cluster;

    host.data = (u_char *) to->host.data;
    host.len = to->host.len;

    n = ngx_http_wechat_cluster_node(cl, from, &host, to->port);

    if (n != NGX_ERROR && !to->ask) {
        cl->slots[to->slot] = (u_char) (n + 1);
        cl->serving[n] = 1;
        cl->stale = 1;
    }

    return n;
}


void
ngx_http_wechat_cluster_stale(void)
{
    ngx_http_wechat_cluster.stale = 1;
}


/*
 * Asks node's ready connection rc for the map, if it is stale.  A question
 * unanswered for wechat_redis_timeout is taken as lost: a node gone silent
 * must not keep the map from being learnt.
 */

void
ngx_http_wechat_cluster_learn(ngx_http_wechat_rconn_t *rc, ngx_uint_t node)
{
    ngx_str_t                   argv[2];
    ngx_msec_t                  since;
    ngx_http_wechat_cluster_t  *cl = &ngx_http_wechat_cluster;

    since = ngx_current_msec - cl->asked;

    if (!cl->stale || since < NGX_HTTP_WECHAT_LEARN_INTERVAL
        || (cl->learning && since < cl->conf->timeout))
    {
        return;
    }

    ngx_str_set(&argv[0], "CLUSTER");
    ngx_str_set(&argv[1], "SLOTS");

    if (ngx_http_wechat_rconn_command(rc, ngx_http_wechat_cluster_slots_done,
                                      NULL, 2, argv)
        == NGX_OK)
    {
        cl->learning = 1;
        cl->from = node;
        cl->asked = ngx_current_msec;
    }
}


static void
ngx_http_wechat_cluster_slots_done(ngx_http_wechat_rconn_t *conn,
    redisReply *response, void *data)
{
    wx_status_t                 rc;
    ngx_uint_t                  changed, i;
    ngx_http_wechat_cluster_t  *cl = &ngx_http_wechat_cluster;

    cl->learning = 0;

    if (response == NULL) {
        /* the connection went: another one learns */
        return;
    }

    ngx_memzero(cl->learnt, sizeof(cl->learnt));

    rc = wx_redis_cluster_slots(response, ngx_http_wechat_cluster_range, cl);

    if (rc != WX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat cluster: CLUSTER SLOTS from \"%V\" failed: %s",
                      &cl->nodes[cl->from].name,
                      response->type == REDIS_REPLY_ERROR
                      ? response->str : wx_status_text(rc));
        return;
    }

    changed = ngx_memcmp(cl->slots, cl->learnt, sizeof(cl->slots)) != 0;

    ngx_memcpy(cl->slots, cl->learnt, sizeof(cl->slots));
    cl->stale = 0;

    ngx_memzero(cl->serving, sizeof(cl->serving));

    for (i = 0; i < WX_REDIS_SLOTS; i++) {
        if (cl->slots[i]) {
            cl->serving[cl->slots[i] - 1] = 1;
        }
    }

    if (!changed) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "wechat cluster: the slot map from \"%V\", %ui nodes "
                  "known", &cl->nodes[cl->from].name, cl->nnodes);

    if (cl->changed) {
        cl->changed();
    }
}


/* One range of CLUSTER SLOTS: non-zero for a node it cannot take. */

static int
ngx_http_wechat_cluster_range(void *data, unsigned first, unsigned last,
    wx_span_t host, unsigned port)
{
    ngx_int_t                   n;
    ngx_str_t                   text;
    ngx_http_wechat_cluster_t  *cl = data;

    text.data = (u_char *) host.data;
    text.len = host.len;

    n = ngx_http_wechat_cluster_node(cl, cl->from, &text, port);
    if (n == NGX_ERROR) {
        return 1;
    }

    ngx_memset(&cl->learnt[first], (int) n + 1, last - first + 1);

    return 0;
}


/*
 * The index of the node at host:port, added when new; an empty host is
 * the node from, which answered.
 */

static ngx_int_t
ngx_http_wechat_cluster_node(ngx_http_wechat_cluster_t *cl, ngx_uint_t from,
    ngx_str_t *host, ngx_uint_t port)
{
    u_char                  *p;
    ngx_str_t                none = ngx_null_string;
    ngx_uint_t               i;
    ngx_http_wechat_addr_t  *addr;

    if (host->len == 0) {
        host = &cl->nodes[from].host;
    }

    for (i = 0; i < cl->nnodes; i++) {
        addr = &cl->nodes[i];

        if (addr->port == port && addr->host.len == host->len
            && ngx_strncmp(addr->host.data, host->data, host->len) == 0)
        {
            return i;
        }
    }

    if (cl->nnodes == NGX_HTTP_WECHAT_MAX_NODES) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat cluster: more than %d nodes",
                      NGX_HTTP_WECHAT_MAX_NODES);
        return NGX_ERROR;
    }

    p = ngx_alloc(NGX_SOCKADDR_STRLEN + 1 + NGX_HTTP_WECHAT_ADDR_NAME_LEN,
                  ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    addr = &cl->nodes[cl->nnodes];
    ngx_memzero(addr, sizeof(ngx_http_wechat_addr_t));
    addr->host.data = p;
    addr->name.data = p + NGX_SOCKADDR_STRLEN + 1;

    if (ngx_http_wechat_redis_addr_set(addr, &none, host, port) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat cluster: \"%V\" named a node that is not an "
                      "IP address and port", &cl->nodes[from].name);
        ngx_free(p);
        return NGX_ERROR;
    }

    return cl->nnodes++;
}
