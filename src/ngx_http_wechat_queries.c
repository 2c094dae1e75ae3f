
/*
 * ngx_http_wechat_module: the node-local record of signed queries.  Every
 * verified query is single-use: Redis keeps the record that all nodes
 * share, and this one, in shared memory, refuses replays on this node even
 * while Redis is away.  Records live as long as a timestamp is accepted.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_store.h"


#define NGX_HTTP_WECHAT_QUERY_BYTES  (WX_SIGNATURE_LEN / 2)
#define NGX_HTTP_WECHAT_DIGEST_BYTES (WX_SHA1_HEX_LEN / 2)
#define NGX_HTTP_WECHAT_EXPIRE_STEP  4      /* expired records freed per use */
#define NGX_HTTP_WECHAT_FULL_LOG     60     /* seconds between "full" lines */


typedef struct {
    ngx_rbtree_node_t           node;       /* key: crc32 of the query */
    ngx_queue_t                 queue;      /* the oldest last */
    time_t                      expires;
    ngx_uint_t                  uses;
    u_char                      query[NGX_HTTP_WECHAT_QUERY_BYTES];
    u_char                      digest[NGX_HTTP_WECHAT_DIGEST_BYTES];
} ngx_http_wechat_query_node_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;
    time_t                      full_logged;
} ngx_http_wechat_queries_sh_t;


static ngx_int_t ngx_http_wechat_queries_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_wechat_queries_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_wechat_query_node_t *ngx_http_wechat_queries_lookup(
    ngx_http_wechat_queries_sh_t *sh, uint32_t hash, u_char *query);
static ngx_http_wechat_query_node_t *ngx_http_wechat_queries_alloc(
    ngx_log_t *log);
static void ngx_http_wechat_queries_expire(ngx_http_wechat_queries_sh_t *sh,
    ngx_uint_t n, ngx_uint_t force);
static ngx_int_t ngx_http_wechat_unhex(u_char *dst, u_char *src, size_t n);


static ngx_slab_pool_t               *ngx_http_wechat_queries_pool;
static ngx_http_wechat_queries_sh_t  *ngx_http_wechat_queries_sh;


ngx_int_t
ngx_http_wechat_queries_zone(ngx_conf_t *cf, size_t size)
{
    ngx_shm_zone_t  *shm_zone;

    static ngx_str_t  name = ngx_string("wechat_queries");

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_wechat_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_wechat_queries_init_zone;

    return NGX_OK;
}


/* Records survive reloads: a query used before one stays used after it. */

static ngx_int_t
ngx_http_wechat_queries_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_wechat_queries_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    ngx_http_wechat_queries_pool = shpool;

    if (data) {
        shm_zone->data = data;
        ngx_http_wechat_queries_sh = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_wechat_queries_sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_wechat_queries_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_http_wechat_queries_insert);
    ngx_queue_init(&sh->queue);
    sh->full_logged = 0;

    shpool->data = sh;
    shm_zone->data = sh;
    ngx_http_wechat_queries_sh = sh;

    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * Claims a verified query (its signature) for the content it signs (a
 * digest): NGX_OK the first time, NGX_DONE for the same content again (one
 * of WeChat's retries), NGX_DECLINED for other content, or for more uses
 * than WeChat makes (a replay).
 */

ngx_int_t
ngx_http_wechat_queries_claim(ngx_http_request_t *r, ngx_str_t *signature,
    u_char *digest, time_t ttl)
{
    uint32_t                       hash;
    ngx_int_t                      rc;
    ngx_http_wechat_query_node_t  *qn;
    ngx_http_wechat_queries_sh_t  *sh = ngx_http_wechat_queries_sh;
    u_char                         query[NGX_HTTP_WECHAT_QUERY_BYTES];
    u_char                         content[NGX_HTTP_WECHAT_DIGEST_BYTES];

    if (sh == NULL || signature->len != WX_SIGNATURE_LEN) {
        return NGX_OK;
    }

    if (ngx_http_wechat_unhex(query, signature->data, sizeof(query))
        != NGX_OK
        || ngx_http_wechat_unhex(content, digest, sizeof(content)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    hash = ngx_crc32_short(query, sizeof(query));

    ngx_shmtx_lock(&ngx_http_wechat_queries_pool->mutex);

    ngx_http_wechat_queries_expire(sh, NGX_HTTP_WECHAT_EXPIRE_STEP, 0);

    qn = ngx_http_wechat_queries_lookup(sh, hash, query);

    if (qn) {
        rc = (ngx_memcmp(qn->digest, content, sizeof(content)) == 0
              && qn->uses++ < NGX_HTTP_WECHAT_QUERY_USES)
             ? NGX_DONE : NGX_DECLINED;
        goto done;
    }

    qn = ngx_http_wechat_queries_alloc(r->connection->log);
    if (qn == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    qn->node.key = hash;
    qn->expires = ngx_time() + ttl;
    qn->uses = 1;
    ngx_memcpy(qn->query, query, sizeof(query));
    ngx_memcpy(qn->digest, content, sizeof(content));

    ngx_rbtree_insert(&sh->rbtree, &qn->node);
    ngx_queue_insert_head(&sh->queue, &qn->queue);

    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&ngx_http_wechat_queries_pool->mutex);

    return rc;
}


/*
 * A full zone gives up its oldest record early, and says so now and then:
 * that query could then be replayed on this node while Redis is away.
 */

static ngx_http_wechat_query_node_t *
ngx_http_wechat_queries_alloc(ngx_log_t *log)
{
    ngx_http_wechat_query_node_t  *qn;
    ngx_http_wechat_queries_sh_t  *sh = ngx_http_wechat_queries_sh;

    qn = ngx_slab_alloc_locked(ngx_http_wechat_queries_pool,
                               sizeof(ngx_http_wechat_query_node_t));
    if (qn) {
        return qn;
    }

    if (ngx_time() - sh->full_logged >= NGX_HTTP_WECHAT_FULL_LOG) {
        sh->full_logged = ngx_time();
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "wechat callback: the query record is full, "
                      "forgetting queries early; raise "
                      "\"wechat_replay_cache_size\"");
    }

    ngx_http_wechat_queries_expire(sh, 1, 1);

    return ngx_slab_alloc_locked(ngx_http_wechat_queries_pool,
                                 sizeof(ngx_http_wechat_query_node_t));
}


static void
ngx_http_wechat_queries_expire(ngx_http_wechat_queries_sh_t *sh,
    ngx_uint_t n, ngx_uint_t force)
{
    time_t                         now;
    ngx_queue_t                   *q;
    ngx_http_wechat_query_node_t  *qn;

    now = ngx_time();

    while (n-- && !ngx_queue_empty(&sh->queue)) {
        q = ngx_queue_last(&sh->queue);
        qn = ngx_queue_data(q, ngx_http_wechat_query_node_t, queue);

        if (!force && qn->expires > now) {
            return;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&sh->rbtree, &qn->node);
        ngx_slab_free_locked(ngx_http_wechat_queries_pool, qn);
    }
}


static ngx_http_wechat_query_node_t *
ngx_http_wechat_queries_lookup(ngx_http_wechat_queries_sh_t *sh,
    uint32_t hash, u_char *query)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_wechat_query_node_t  *qn;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        qn = (ngx_http_wechat_query_node_t *) node;

        rc = ngx_memcmp(query, qn->query, NGX_HTTP_WECHAT_QUERY_BYTES);

        if (rc == 0) {
            return qn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_wechat_queries_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_wechat_query_node_t   *qn, *qt;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            qn = (ngx_http_wechat_query_node_t *) node;
            qt = (ngx_http_wechat_query_node_t *) temp;

            p = (ngx_memcmp(qn->query, qt->query,
                            NGX_HTTP_WECHAT_QUERY_BYTES) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_http_wechat_unhex(u_char *dst, u_char *src, size_t n)
{
    ngx_int_t  byte;

    while (n--) {
        byte = ngx_hextoi(src, 2);
        if (byte == NGX_ERROR) {
            return NGX_ERROR;
        }

        *dst++ = (u_char) byte;
        src += 2;
    }

    return NGX_OK;
}
