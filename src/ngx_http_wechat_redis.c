
/*
 * ngx_http_wechat_module: one command connection per worker, on nginx's
 * event loop, or with a Redis Cluster one per node it uses.
 * connect -> AUTH -> SELECT -> (ROLE) -> SCRIPT LOAD -> ready; nginx timers
 * bound the connect and every command; a command that times out drops the
 * whole connection so that a late reply can never reach another request;
 * reconnects back off with jitter.  In a cluster a command goes to the node
 * of its first key's slot and follows MOVED and ASK.
 */


#include "ngx_http_wechat_conf.h"
#include "ngx_http_wechat_metrics.h"
#include "ngx_http_wechat_rconn.h"
#include "ngx_http_wechat_store.h"


typedef enum {
    ngx_http_wechat_redis_disconnected = 0,
    ngx_http_wechat_redis_connecting,
    ngx_http_wechat_redis_ready
} ngx_http_wechat_redis_state_e;


/* redirections one command may follow */
#define NGX_HTTP_WECHAT_REDIRECTS  3

/* ms before a command on keys of a moving slot tries again */
#define NGX_HTTP_WECHAT_TRYAGAIN   50


typedef struct {
    ngx_http_wechat_main_conf_t    *conf;
    ngx_http_wechat_addr_t         *addr;
    ngx_uint_t                      index;      /* among a cluster's nodes */
    ngx_http_wechat_rconn_t         conn;
    ngx_http_wechat_redis_state_e   state;
    ngx_uint_t                      attempts;
    ngx_uint_t                      handshake;  /* replies still expected */
    ngx_event_t                     connect_timer;
    ngx_event_t                     reconnect_timer;
    unsigned                        exiting:1;
    unsigned                        retired:1;  /* a node serving nothing,
                                                   not reconnected */
} ngx_http_wechat_redis_t;


typedef struct {
    ngx_http_request_t                 *request;    /* NULL once it is gone */
    ngx_pool_cleanup_t                 *cleanup;    /* on the request's pool */
    ngx_http_wechat_redis_handler_pt    handler;
    ngx_event_t                         timer;
    ngx_event_t                         again;      /* TRYAGAIN's wait */
    ngx_http_wechat_redis_t            *home;       /* where it was routed */
    ngx_http_wechat_redis_t            *node;       /* where it was sent */
    ngx_int_t                           script;
    ngx_msec_int_t                      sent;       /* usec, monotonic */
    ngx_uint_t                          argc;
    ngx_str_t                           name;       /* for the log */
    u_char                             *tail;       /* args after the head */
    u_char                             *last;
    unsigned                            retried:1;
    unsigned                            redirects:2;
} ngx_http_wechat_cmd_t;


static ngx_http_wechat_redis_t *ngx_http_wechat_redis_node(ngx_uint_t i);
static ngx_http_wechat_redis_t *ngx_http_wechat_redis_route(ngx_str_t *key);
static void ngx_http_wechat_redis_changed(void);
static void ngx_http_wechat_redis_learn(void);
static void ngx_http_wechat_redis_report(void);
static void ngx_http_wechat_redis_connect(ngx_http_wechat_redis_t *rd);
static void ngx_http_wechat_redis_handshake(ngx_http_wechat_redis_t *rd);
static void ngx_http_wechat_redis_handshake_send(ngx_http_wechat_redis_t *rd,
    ngx_uint_t argc, ngx_str_t *argv);
static void ngx_http_wechat_redis_handshake_done(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data);
static ngx_uint_t ngx_http_wechat_redis_is_master(redisReply *role);
static void ngx_http_wechat_redis_lost(ngx_http_wechat_rconn_t *rc);
static void ngx_http_wechat_redis_close(ngx_http_wechat_redis_t *rd);
static void ngx_http_wechat_redis_drop(ngx_http_wechat_redis_t *rd);
static void ngx_http_wechat_redis_schedule(ngx_http_wechat_redis_t *rd);
static void ngx_http_wechat_redis_moved(void);
static void ngx_http_wechat_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_wechat_redis_connect_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_wechat_redis_send(ngx_http_wechat_redis_t *rd,
    ngx_http_wechat_cmd_t *cmd);
static ngx_int_t ngx_http_wechat_redis_retry(ngx_http_wechat_redis_t *rd,
    ngx_http_wechat_cmd_t *cmd);
static ngx_int_t ngx_http_wechat_redis_redirect(ngx_http_wechat_redis_t *rd,
    ngx_http_wechat_cmd_t *cmd, redisReply *response);
static void ngx_http_wechat_redis_again(ngx_event_t *ev);
static void ngx_http_wechat_redis_command_timeout(ngx_event_t *ev);
static void ngx_http_wechat_redis_finish(ngx_http_wechat_cmd_t *cmd,
    redisReply *response, ngx_uint_t ended);
static ngx_http_wechat_cmd_t *ngx_http_wechat_redis_format(ngx_log_t *log,
    ngx_str_t *head, ngx_uint_t nhead, ngx_uint_t argc, ngx_str_t *argv);
static void ngx_http_wechat_redis_detach(void *data);
static void ngx_http_wechat_redis_done(ngx_http_wechat_rconn_t *rc,
    redisReply *response, void *data);
static ngx_msec_int_t ngx_http_wechat_redis_usec(void);


/* node 0 alone, or a cluster's nodes by the map's index */
static ngx_http_wechat_redis_t  *ngx_http_wechat_redis_nodes[
                                     NGX_HTTP_WECHAT_MAX_NODES];
static ngx_http_wechat_main_conf_t  *ngx_http_wechat_redis_conf;


ngx_int_t
ngx_http_wechat_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, n;
    ngx_http_wechat_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_wechat_module);
    if (wmcf == NULL || wmcf->server.name.data == NULL) {
        return NGX_OK;
    }

    ngx_http_wechat_redis_conf = wmcf;

    if (wmcf->cluster == NULL) {
        ngx_http_wechat_sentinel_watch(ngx_http_wechat_redis_moved);
        return ngx_http_wechat_redis_node(0) ? NGX_OK : NGX_ERROR;
    }

    /* the seeds first: any of them tells where the slots are */

    ngx_http_wechat_cluster_watch(ngx_http_wechat_redis_changed);

    n = ngx_http_wechat_cluster_seeds();

    for (i = 0; i < n; i++) {
        if (ngx_http_wechat_redis_node(i) == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_http_wechat_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_http_wechat_redis_t  *rd;

    for (i = 0; i < NGX_HTTP_WECHAT_MAX_NODES; i++) {
        rd = ngx_http_wechat_redis_nodes[i];

        if (rd == NULL) {
            continue;
        }

        rd->exiting = 1;

        if (rd->reconnect_timer.timer_set) {
            ngx_del_timer(&rd->reconnect_timer);
        }

        ngx_http_wechat_redis_close(rd);
    }
}


/* The connection to node i, opened when first wanted. */

static ngx_http_wechat_redis_t *
ngx_http_wechat_redis_node(ngx_uint_t i)
{
    ngx_http_wechat_redis_t      *rd;
    ngx_http_wechat_main_conf_t  *wmcf = ngx_http_wechat_redis_conf;

    rd = ngx_http_wechat_redis_nodes[i];

    /* a worker on its way out opens nothing */

    if (rd == NULL && ngx_exiting) {
        return NULL;
    }

    if (rd) {
        if (rd->retired && !rd->exiting) {
            rd->retired = 0;
            rd->attempts = 0;
            ngx_http_wechat_redis_connect(rd);
        }

        return rd;
    }

    rd = ngx_calloc(sizeof(ngx_http_wechat_redis_t), ngx_cycle->log);
    if (rd == NULL) {
        return NULL;
    }

    rd->conf = wmcf;
    rd->index = i;
    rd->addr = wmcf->cluster ? ngx_http_wechat_cluster_addr(i)
                             : &wmcf->server;

    rd->conn.what = "wechat redis";
    rd->conn.addr = rd->addr;
    rd->conn.tls = wmcf->tls ? wmcf : NULL;
    rd->conn.data = rd;
    rd->conn.lost = ngx_http_wechat_redis_lost;

    ngx_http_wechat_redis_timer(&rd->connect_timer,
                                ngx_http_wechat_redis_connect_timeout, rd,
                                ngx_cycle->log);
    ngx_http_wechat_redis_timer(&rd->reconnect_timer,
                                ngx_http_wechat_redis_reconnect_handler, rd,
                                ngx_cycle->log);

    ngx_http_wechat_redis_nodes[i] = rd;
    ngx_http_wechat_redis_connect(rd);

    return rd;
}


/* Where a command for key goes; NULL while a cluster's map is unknown. */

static ngx_http_wechat_redis_t *
ngx_http_wechat_redis_route(ngx_str_t *key)
{
    ngx_int_t                 n;
    ngx_http_wechat_redis_t  *rd;

    if (ngx_http_wechat_redis_conf->cluster == NULL) {
        return ngx_http_wechat_redis_nodes[0];
    }

    n = ngx_http_wechat_cluster_route(key);
    rd = (n == NGX_DECLINED) ? NULL : ngx_http_wechat_redis_node(n);

    /* no node, or one that is down: a replica may have taken over */

    if (rd == NULL || rd->conn.peer.connection == NULL) {
        ngx_http_wechat_cluster_stale();
        ngx_http_wechat_redis_learn();
    }

    return rd;
}


/*
 * The cluster's map changed: connect to the nodes the accounts live on, and
 * stop reconnecting to those that serve nothing (a master that failed, and
 * whose replica took over), until a redirection names one again.
 */

static void
ngx_http_wechat_redis_changed(void)
{
    ngx_uint_t                i, n;
    ngx_http_wechat_redis_t  *rd;

    n = ngx_http_wechat_cluster_nodes();

    for (i = 0; i < n; i++) {
        rd = ngx_http_wechat_redis_nodes[i];

        if (ngx_http_wechat_cluster_wanted(i)) {
            (void) ngx_http_wechat_redis_node(i);

        } else if (rd && !rd->retired && !ngx_http_wechat_cluster_serves(i)) {
            rd->retired = 1;

            if (rd->reconnect_timer.timer_set) {
                ngx_del_timer(&rd->reconnect_timer);
            }

            ngx_http_wechat_redis_close(rd);
        }
    }

    ngx_http_wechat_redis_report();
}


/*
 * Has a stale map learnt on a ready connection, if there is one: the nodes
 * in turn, so that one gone silent is not asked every time.
 */

static void
ngx_http_wechat_redis_learn(void)
{
    ngx_uint_t                i, k;
    ngx_http_wechat_redis_t  *rd;

    static ngx_uint_t         next;

    for (k = 0; k < NGX_HTTP_WECHAT_MAX_NODES; k++) {
        i = (next + k) % NGX_HTTP_WECHAT_MAX_NODES;
        rd = ngx_http_wechat_redis_nodes[i];

        if (rd && rd->state == ngx_http_wechat_redis_ready) {
            ngx_http_wechat_cluster_learn(&rd->conn, i);
            next = i + 1;
            return;
        }
    }
}


/*
 * The worker counts as connected while the connection to each account's
 * node, or the one connection, is ready.
 */

static void
ngx_http_wechat_redis_report(void)
{
    ngx_str_t                    *tag;
    ngx_int_t                     n;
    ngx_uint_t                    i;
    ngx_http_wechat_redis_t      *rd;
    ngx_http_wechat_main_conf_t  *wmcf = ngx_http_wechat_redis_conf;

    if (wmcf->cluster == NULL) {
        rd = ngx_http_wechat_redis_nodes[0];
        ngx_http_wechat_metrics_redis_connected(
            rd->state == ngx_http_wechat_redis_ready);
        return;
    }

    tag = wmcf->tags->elts;

    for (i = 0; i < wmcf->tags->nelts; i++) {
        n = ngx_http_wechat_cluster_route(&tag[i]);
        rd = (n == NGX_DECLINED) ? NULL : ngx_http_wechat_redis_nodes[n];

        if (rd == NULL || rd->state != ngx_http_wechat_redis_ready) {
            ngx_http_wechat_metrics_redis_connected(0);
            return;
        }
    }

    ngx_http_wechat_metrics_redis_connected(1);
}


static void
ngx_http_wechat_redis_connect(ngx_http_wechat_redis_t *rd)
{
    if (ngx_http_wechat_rconn_open(&rd->conn) != NGX_OK) {
        ngx_http_wechat_redis_schedule(rd);
        return;
    }

    rd->state = ngx_http_wechat_redis_connecting;

    ngx_add_timer(&rd->connect_timer, rd->conf->connect_timeout);

    /*
     * The handshake is queued at once; it leaves when connect(2)
     * completes, and commands queued behind it run once it has.
     */

    ngx_http_wechat_redis_handshake(rd);
}


static void
ngx_http_wechat_redis_handshake(ngx_http_wechat_redis_t *rd)
{
    u_char                       *p;
    ngx_str_t                     argv[3];
    ngx_uint_t                    i;
    ngx_http_wechat_main_conf_t  *wmcf = rd->conf;
    u_char                        db[NGX_INT_T_LEN];

    rd->handshake = 0;

    if (ngx_http_wechat_rconn_auth(&rd->conn, &wmcf->user, &wmcf->password,
                                   ngx_http_wechat_redis_handshake_done,
                                   "AUTH")
        == NGX_OK)
    {
        rd->handshake++;
    }

    if (wmcf->db) {
        p = ngx_sprintf(db, "%ui", wmcf->db);
        ngx_str_set(&argv[0], "SELECT");
        argv[1].data = db;
        argv[1].len = p - db;
        ngx_http_wechat_redis_handshake_send(rd, 2, argv);
    }

    /* the master a sentinel named may have become a replica since */

    if (wmcf->sentinels) {
        ngx_str_set(&argv[0], "ROLE");
        ngx_http_wechat_redis_handshake_send(rd, 1, argv);
    }

    ngx_str_set(&argv[0], "SCRIPT");
    ngx_str_set(&argv[1], "LOAD");

    for (i = 0; i < NGX_HTTP_WECHAT_SCRIPTS; i++) {
        argv[2] = ngx_http_wechat_scripts[i].text;
        ngx_http_wechat_redis_handshake_send(rd, 3, argv);
    }
}


/* A step of the handshake; its name is what its reply handler logs. */

static void
ngx_http_wechat_redis_handshake_send(ngx_http_wechat_redis_t *rd,
    ngx_uint_t argc, ngx_str_t *argv)
{
    if (ngx_http_wechat_rconn_command(&rd->conn,
                                      ngx_http_wechat_redis_handshake_done,
                                      argv[0].data, argc, argv)
        == NGX_OK)
    {
        rd->handshake++;
    }
}


static void
ngx_http_wechat_redis_handshake_done(ngx_http_wechat_rconn_t *rc,
    redisReply *reply, void *data)
{
    u_char                   *step = data;
    ngx_http_wechat_redis_t  *rd = rc->data;

    if (reply == NULL) {
        /* the connection went away; its owner reconnects */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat redis: %s on \"%V\" failed: %*s",
                      step, &rd->addr->name,
                      ngx_min(reply->len, 256), reply->str);
        ngx_http_wechat_redis_drop(rd);
        return;
    }

    if (ngx_strcmp(step, "ROLE") == 0
        && !ngx_http_wechat_redis_is_master(reply))
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat redis: \"%V\" is not the master, "
                      "asking the sentinels again", &rd->addr->name);
        ngx_http_wechat_redis_drop(rd);
        ngx_http_wechat_sentinel_ask();
        return;
    }

    if (--rd->handshake > 0) {
        return;
    }

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    rd->state = ngx_http_wechat_redis_ready;
    rd->attempts = 0;

    ngx_http_wechat_redis_report();

    if (rd->conf->cluster) {
        ngx_http_wechat_cluster_learn(&rd->conn, rd->index);
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "wechat redis: connected to \"%V\"", &rd->addr->name);
}


static ngx_uint_t
ngx_http_wechat_redis_is_master(redisReply *role)
{
    return role->type == REDIS_REPLY_ARRAY && role->elements > 0
           && role->element[0]->type == REDIS_REPLY_STRING
           && role->element[0]->len == sizeof("master") - 1
           && ngx_strncmp(role->element[0]->str, "master",
                          sizeof("master") - 1) == 0;
}


/* The transport ended the connection: it was logged. */

static void
ngx_http_wechat_redis_lost(ngx_http_wechat_rconn_t *rc)
{
    ngx_http_wechat_redis_drop(rc->data);
}


/* Frees the connection: every command in flight is answered with NULL. */

static void
ngx_http_wechat_redis_close(ngx_http_wechat_redis_t *rd)
{
    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (rd->conn.peer.connection == NULL) {
        return;
    }

    rd->state = ngx_http_wechat_redis_disconnected;
    ngx_http_wechat_redis_report();

    ngx_http_wechat_rconn_close(&rd->conn);
}


static void
ngx_http_wechat_redis_drop(ngx_http_wechat_redis_t *rd)
{
    ngx_http_wechat_redis_close(rd);
    ngx_http_wechat_redis_schedule(rd);
}


/* A reconnect after a backoff; with sentinels, to where they say. */

static void
ngx_http_wechat_redis_schedule(ngx_http_wechat_redis_t *rd)
{
    if (rd->exiting || rd->retired || rd->reconnect_timer.timer_set) {
        return;
    }

    ngx_add_timer(&rd->reconnect_timer,
                  ngx_http_wechat_redis_backoff(rd->attempts++));

    /* a node lost may be a failover: the map is learnt until it shows */

    if (rd->conf->cluster) {
        ngx_http_wechat_cluster_stale();
        ngx_http_wechat_redis_learn();
        return;
    }

    ngx_http_wechat_sentinel_ask();
}


/* The sentinels named another master: go there now. */

static void
ngx_http_wechat_redis_moved(void)
{
    ngx_http_wechat_redis_t  *rd = ngx_http_wechat_redis_nodes[0];

    if (rd == NULL || rd->exiting) {
        return;
    }

    ngx_http_wechat_redis_close(rd);

    if (rd->reconnect_timer.timer_set) {
        ngx_del_timer(&rd->reconnect_timer);
    }

    rd->attempts = 0;
    ngx_http_wechat_redis_connect(rd);
}


static void
ngx_http_wechat_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_wechat_redis_t  *rd = ev->data;

    if (rd->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_wechat_count(redis_reconnects);

    ngx_http_wechat_redis_connect(rd);
}


static void
ngx_http_wechat_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_wechat_redis_t  *rd = ev->data;

    if (!ev->timedout) {
        /* cancelled at worker exit */
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "wechat redis: %s \"%V\" timed out",
                  ngx_http_wechat_rconn_step(&rd->conn), &rd->addr->name);

    ngx_http_wechat_redis_drop(rd);
}


ngx_int_t
ngx_http_wechat_redis_command(ngx_http_request_t *r,
    ngx_http_wechat_redis_handler_pt handler, ngx_int_t script,
    ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_str_t                 head[2];
    ngx_uint_t                nhead;
    ngx_http_wechat_cmd_t    *cmd;
    ngx_http_wechat_redis_t  *rd;

    if (ngx_http_wechat_redis_conf == NULL) {
        return NGX_DECLINED;
    }

    /* every command's first argument after its name is its first key */

    rd = ngx_http_wechat_redis_route(&argv[1]);

    if (rd == NULL || rd->conn.peer.connection == NULL) {
        return NGX_DECLINED;
    }

    nhead = 0;

    if (script != NGX_HTTP_WECHAT_NO_SCRIPT) {
        ngx_str_set(&head[0], "EVALSHA");
        head[1].data = ngx_http_wechat_scripts[script].sha;
        head[1].len = WX_SHA1_HEX_LEN;
        nhead = 2;
    }

    cmd = ngx_http_wechat_redis_format(r->connection->log, head, nhead,
                                       argc, argv);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->script = script;
    cmd->handler = handler;
    cmd->request = r;
    cmd->home = rd;
    cmd->node = rd;

    /* the answer, whenever it comes, must not touch a request that ended */

    cmd->cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (cmd->cleanup == NULL) {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    if (ngx_http_wechat_redis_send(rd, cmd) != NGX_OK) {
        ngx_free(cmd);
        return NGX_DECLINED;
    }

    cmd->cleanup->handler = ngx_http_wechat_redis_detach;
    cmd->cleanup->data = cmd;

    /*
     * Not cancelable: a worker shutting down for a reload waits for the
     * requests whose commands are in flight, at most this long.
     */

    cmd->timer.handler = ngx_http_wechat_redis_command_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = ngx_cycle->log;

    cmd->again.handler = ngx_http_wechat_redis_again;
    cmd->again.data = cmd;
    cmd->again.log = ngx_cycle->log;

    ngx_add_timer(&cmd->timer, rd->conf->timeout);

    cmd->sent = ngx_http_wechat_redis_usec();

    return NGX_OK;
}


/*
 * The command outlives the request if the client goes away, so it is
 * allocated from the heap.  It is kept formatted: hiredis's own formatting
 * was a tenth of the callback's cost, and a NOSCRIPT retry only swaps the
 * head.
 */

static ngx_http_wechat_cmd_t *
ngx_http_wechat_redis_format(ngx_log_t *log, ngx_str_t *head,
    ngx_uint_t nhead, ngx_uint_t argc, ngx_str_t *argv)
{
    u_char                 *p, *first;
    size_t                  size;
    ngx_http_wechat_cmd_t  *cmd;

    size = sizeof(ngx_http_wechat_cmd_t)
           + ngx_http_wechat_resp_size(head, nhead)
           + ngx_http_wechat_resp_size(argv, argc) + NGX_INT_T_LEN + 3;

    cmd = ngx_alloc(size, log);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_http_wechat_cmd_t));

    first = ngx_http_wechat_resp_count((u_char *) (cmd + 1), '*',
                                       nhead + argc);

    p = ngx_http_wechat_resp_args(first, head, nhead);
    cmd->tail = p;
    cmd->last = ngx_http_wechat_resp_args(p, argv, argc);

    /* the command's name, for the log, is the data of the first argument */
    cmd->name.data = (u_char *) ngx_strchr(first, '\n') + 1;
    cmd->name.len = nhead ? head[0].len : argv[0].len;
    cmd->argc = nhead + argc;

    return cmd;
}


static void
ngx_http_wechat_redis_detach(void *data)
{
    ngx_http_wechat_cmd_t  *cmd = data;

    cmd->request = NULL;
}


/* The command, formatted as it was, on rd's connection. */

static ngx_int_t
ngx_http_wechat_redis_send(ngx_http_wechat_redis_t *rd,
    ngx_http_wechat_cmd_t *cmd)
{
    return ngx_http_wechat_rconn_send(&rd->conn, (u_char *) (cmd + 1),
                                      cmd->last - (u_char *) (cmd + 1),
                                      ngx_http_wechat_redis_done, cmd);
}


/* A flushed script cache or a failover: send the script itself. */

static ngx_int_t
ngx_http_wechat_redis_retry(ngx_http_wechat_redis_t *rd,
    ngx_http_wechat_cmd_t *cmd)
{
    u_char     *buf, *p;
    size_t      size;
    ngx_int_t   rc;
    ngx_str_t   head[2];

    ngx_str_set(&head[0], "EVAL");
    head[1] = ngx_http_wechat_scripts[cmd->script].text;

    size = NGX_INT_T_LEN + 3 + ngx_http_wechat_resp_size(head, 2)
           + (cmd->last - cmd->tail);

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_wechat_resp_count(buf, '*', cmd->argc);
    p = ngx_http_wechat_resp_args(p, head, 2);
    p = ngx_cpymem(p, cmd->tail, cmd->last - cmd->tail);

    cmd->retried = 1;

    /* copied into the connection's output */

    rc = ngx_http_wechat_rconn_send(&rd->conn, buf, p - buf,
                                    ngx_http_wechat_redis_done, cmd);

    ngx_free(buf);

    return rc;
}


/*
 * A cluster's MOVED or ASK: the command, formatted as it was, goes to the
 * node named, after an ASKING for an ASK; a MOVED has the map learnt.
 */

static ngx_int_t
ngx_http_wechat_redis_redirect(ngx_http_wechat_redis_t *rd,
    ngx_http_wechat_cmd_t *cmd, redisReply *response)
{
    ngx_int_t                 n;
    wx_span_t                 error;
    wx_redirect_t             to;
    ngx_http_wechat_redis_t  *target;

    if (rd->conf->cluster == NULL
        || cmd->redirects == NGX_HTTP_WECHAT_REDIRECTS)
    {
        return NGX_DECLINED;
    }

    error.data = (u_char *) response->str;
    error.len = response->len;

    if (wx_redis_redirect(error, &to) != WX_OK) {
        return NGX_DECLINED;
    }

    n = ngx_http_wechat_cluster_redirect(rd->index, &to);
    target = (n == NGX_ERROR) ? NULL : ngx_http_wechat_redis_node(n);

    if (target == NULL
        || (to.ask && ngx_http_wechat_rconn_asking(&target->conn) != NGX_OK)
        || ngx_http_wechat_redis_send(target, cmd) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    cmd->node = target;
    cmd->redirects++;
    cmd->retried = 0;

    if (!to.ask) {
        ngx_http_wechat_redis_learn();
    }

    return NGX_OK;
}


/*
 * The wait after a TRYAGAIN: the command goes to the node it was routed
 * to, which by now serves its keys, or redirects it.
 */

static void
ngx_http_wechat_redis_again(ngx_event_t *ev)
{
    ngx_http_wechat_cmd_t    *cmd = ev->data;
    ngx_http_wechat_redis_t  *rd = cmd->home;

    if (cmd->request && ngx_http_wechat_redis_send(rd, cmd) == NGX_OK) {
        cmd->node = rd;
        cmd->redirects = 0;
        return;
    }

    ngx_http_wechat_redis_finish(cmd, NULL, NGX_HTTP_WECHAT_REDIS_REFUSED);
}


static void
ngx_http_wechat_redis_command_timeout(ngx_event_t *ev)
{
    ngx_http_wechat_cmd_t    *cmd = ev->data;
    ngx_http_wechat_redis_t  *rd = cmd->node;

    /* waiting to try again, it is on no connection */

    if (cmd->again.timer_set) {
        ngx_del_timer(&cmd->again);
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "wechat redis: %V failed: TRYAGAIN until it timed "
                      "out after %Mms", &cmd->name, rd->conf->timeout);
        ngx_http_wechat_redis_finish(cmd, NULL,
                                     NGX_HTTP_WECHAT_REDIS_REFUSED);
        return;
    }

    if (ev->timedout) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "wechat redis: command timed out after %Mms, "
                      "dropping the connection", rd->conf->timeout);
        ngx_http_wechat_count(redis_timeouts);
    }

    /* the late reply must never reach the next command's request */
    ngx_http_wechat_redis_drop(rd);
}


static void
ngx_http_wechat_redis_done(ngx_http_wechat_rconn_t *rc, redisReply *response,
    void *data)
{
    ngx_uint_t                ended;
    ngx_http_wechat_cmd_t    *cmd = data;
    ngx_http_wechat_redis_t  *rd = rc->data;

    /*
     * No reply on a connection that never connected: the command never
     * reached Redis.  On one that did, it may have run.
     */

    ended = response ? NGX_HTTP_WECHAT_REDIS_OK
            : rc->connected ? NGX_HTTP_WECHAT_REDIS_LOST
            : NGX_HTTP_WECHAT_REDIS_REFUSED;

    /* every script answers an array or an integer, or fails */

    if (response && cmd->script != NGX_HTTP_WECHAT_NO_SCRIPT
        && response->type != REDIS_REPLY_ARRAY
        && response->type != REDIS_REPLY_INTEGER
        && response->type != REDIS_REPLY_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat redis: \"%V\" answered %V with a reply of an "
                      "unexpected shape, dropping the connection",
                      &rd->addr->name, &cmd->name);
        ngx_http_wechat_redis_drop(rd);
        ngx_http_wechat_redis_finish(cmd, NULL, NGX_HTTP_WECHAT_REDIS_LOST);
        return;
    }

    if (response && response->type == REDIS_REPLY_ERROR) {

        /* a flushed script cache or a failover: send the script itself */

        if (cmd->script != NGX_HTTP_WECHAT_NO_SCRIPT && !cmd->retried
            && ngx_strncmp(response->str, "NOSCRIPT", 8) == 0
            && ngx_http_wechat_redis_retry(rd, cmd) == NGX_OK)
        {
            return;
        }

        if (ngx_http_wechat_redis_redirect(rd, cmd, response) == NGX_OK) {
            return;
        }

        /* keys of a slot that is moving: wait, within the command's time */

        if (rd->conf->cluster
            && ngx_strncmp(response->str, "TRYAGAIN", 8) == 0)
        {
            ngx_add_timer(&cmd->again, NGX_HTTP_WECHAT_TRYAGAIN);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wechat redis: %V failed: %s", &cmd->name,
                      response->str);

        /*
         * With sentinels, a replica is no place to stay: ask them again,
         * before the handler sends anything more to it.
         */

        if (rd->conf->sentinels
            && ngx_strncmp(response->str, "READONLY", 8) == 0)
        {
            ngx_http_wechat_redis_drop(rd);
        }

        response = NULL;
        ended = NGX_HTTP_WECHAT_REDIS_REFUSED;
    }

    ngx_http_wechat_redis_finish(cmd, response, ended);
}


static void
ngx_http_wechat_redis_finish(ngx_http_wechat_cmd_t *cmd, redisReply *response,
    ngx_uint_t ended)
{
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_wechat_redis_handler_pt   handler;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (response) {
        ngx_http_wechat_metrics_redis_latency(ngx_http_wechat_redis_usec()
                                              - cmd->sent);
    }

    r = cmd->request;
    handler = cmd->handler;

    if (r) {
        cmd->cleanup->handler = NULL;
    }

    ngx_free(cmd);

    if (r == NULL) {
        return;
    }

    c = r->connection;

    handler(r, response, ended);

    ngx_http_run_posted_requests(c);
}


/* nginx caches time per event loop turn; a round trip needs a real clock */

static ngx_msec_int_t
ngx_http_wechat_redis_usec(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_int_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
