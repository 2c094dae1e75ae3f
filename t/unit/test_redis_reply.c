#include <hiredis/hiredis.h>

#include "wx_test.h"

/* Replies are made from RESP bytes by hiredis's reader, as on the wire. */

static redisReply *
reply_of(const char *resp)
{
    redisReader  *reader = redisReaderCreate();
    void         *reply = NULL;

    assert_non_null(reader);
    assert_int_equal(redisReaderFeed(reader, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(reader);

    return reply;
}

static wx_status_t
resolution(const char *resp, wx_resolution_t *res)
{
    redisReply *r = reply_of(resp);
    wx_status_t rc = wx_redis_resolution(r, res);
    freeReplyObject(r);
    return rc;
}

static void
test_resolution(void **state)
{
    (void) state;
    wx_resolution_t res;

    assert_int_equal(resolution("*3\r\n$5\r\nbound\r\n$10\r\n1700000001\r\n"
                                "$3\r\nnew\r\n", &res), WX_OK);
    assert_int_equal(res.outcome, WX_SCENE_BOUND);
    assert_int_equal(res.time, 1700000001);
    assert_false(res.duplicate);

    assert_int_equal(resolution("*3\r\n$8\r\nconflict\r\n$1\r\n5\r\n"
                                "$3\r\ndup\r\n", &res), WX_OK);
    assert_int_equal(res.outcome, WX_SCENE_CONFLICT);
    assert_true(res.duplicate);

    assert_int_equal(resolution("*3\r\n$7\r\nexpired\r\n$1\r\n5\r\n"
                                "$3\r\nnew\r\n", &res), WX_OK);
    assert_int_equal(res.outcome, WX_SCENE_EXPIRED);
    assert_false(res.replay);

    assert_int_equal(resolution("*1\r\n$6\r\nreplay\r\n", &res), WX_OK);
    assert_true(res.replay);
    assert_int_equal(resolution("*1\r\n$5\r\nbound\r\n", &res),
                     WX_ERR_REPLY);
}

static wx_status_t
claim(const char *resp, wx_claim_t *out)
{
    redisReply *r = reply_of(resp);
    wx_status_t rc = wx_redis_claim(r, &test_allocator, out);
    freeReplyObject(r);
    return rc;
}

static void
test_claim(void **state)
{
    (void) state;
    wx_claim_t c;

    assert_int_equal(claim("*1\r\n$3\r\nnew\r\n", &c), WX_OK);
    assert_false(c.replay);
    assert_false(c.retry);
    assert_span_equal(c.user, "");

    assert_int_equal(claim("*2\r\n$5\r\nretry\r\n$4\r\nu-42\r\n", &c),
                     WX_OK);
    assert_true(c.retry);
    assert_span_equal(c.user, "u-42");

    assert_int_equal(claim("*2\r\n$3\r\nnew\r\n$-1\r\n", &c), WX_OK);
    assert_span_equal(c.user, "");

    assert_int_equal(claim("*1\r\n$6\r\nreplay\r\n", &c), WX_OK);
    assert_true(c.replay);

    /* a user with a line break would become a header: no user */
    assert_int_equal(claim("*2\r\n$3\r\nnew\r\n$15\r\neve\r\nX-Admin: 1\r\n",
                           &c), WX_OK);
    assert_span_equal(c.user, "");

    /* shapes the script never answers */
    assert_int_equal(claim("*2\r\n$6\r\nreplay\r\n$1\r\nu\r\n", &c),
                     WX_ERR_REPLY);
    assert_int_equal(claim("*1\r\n$5\r\nbound\r\n", &c), WX_ERR_REPLY);
    assert_int_equal(claim("*0\r\n", &c), WX_ERR_REPLY);
    assert_int_equal(claim("*2\r\n$3\r\nnew\r\n:1\r\n", &c),
                     WX_ERR_REPLY);
    assert_int_equal(claim(":1\r\n", &c), WX_ERR_REPLY);
}

static wx_status_t
token_state(const char *resp, wx_token_state_t *out)
{
    redisReply *r = reply_of(resp);
    wx_status_t rc = wx_redis_token(r, &test_allocator, out);
    freeReplyObject(r);
    return rc;
}

static void
test_token(void **state)
{
    (void) state;
    wx_token_state_t t;

    assert_int_equal(token_state("*5\r\n$6\r\nTOK_en\r\n:7000000\r\n"
                                 "$13\r\n1700000000000\r\n:0\r\n:0\r\n",
                                 &t),
                     WX_OK);
    assert_span_equal(t.token, "TOK_en");
    assert_int_equal(t.ttl_ms, 7000000);
    assert_int_equal(t.issued_ms, 1700000000000LL);
    assert_false(t.locked);
    assert_int_equal(t.backoff_ms, 0);

    /* none stored: this caller holds the lock */
    assert_int_equal(token_state("*5\r\n$-1\r\n:-2\r\n$-1\r\n:1\r\n"
                                 ":0\r\n", &t), WX_OK);
    assert_span_equal(t.token, "");
    assert_int_equal(t.ttl_ms, -2);
    assert_true(t.locked);

    /* the last refresh failed: no lock, the back-off's time left */
    assert_int_equal(token_state("*5\r\n$-1\r\n:-2\r\n$-1\r\n:0\r\n"
                                 ":1500\r\n", &t), WX_OK);
    assert_false(t.locked);
    assert_int_equal(t.backoff_ms, 1500);

    /* a stored value that is no token, and shapes the script never has */
    assert_int_equal(token_state("*5\r\n$3\r\na b\r\n:5\r\n$-1\r\n:0\r\n"
                                 ":0\r\n", &t), WX_ERR_REPLY);
    assert_int_equal(token_state("*4\r\n$1\r\nt\r\n:5\r\n$-1\r\n:0\r\n",
                                 &t), WX_ERR_REPLY);
    assert_int_equal(token_state("*5\r\n$1\r\nt\r\n$1\r\n5\r\n$-1\r\n"
                                 ":0\r\n:0\r\n", &t), WX_ERR_REPLY);
    assert_int_equal(token_state("*5\r\n$1\r\nt\r\n:5\r\n$2\r\nxx\r\n"
                                 ":0\r\n:0\r\n", &t), WX_ERR_REPLY);
    assert_int_equal(token_state("*5\r\n$-1\r\n:-2\r\n$-1\r\n:0\r\n"
                                 ":-1\r\n", &t), WX_ERR_REPLY);
}

static wx_status_t
reuse(const char *resp, wx_reuse_t *out)
{
    redisReply *r = reply_of(resp);
    wx_status_t rc = wx_redis_qrcode_reuse(r, &test_allocator, out);
    freeReplyObject(r);
    return rc;
}

static void
test_qrcode_reuse(void **state)
{
    (void) state;
    wx_reuse_t u;

    assert_int_equal(reuse("*1\r\n$3\r\nnew\r\n", &u), WX_OK);
    assert_int_equal(u.outcome, WX_REUSE_NEW);

    assert_int_equal(reuse("*2\r\n$4\r\nrate\r\n:420\r\n", &u), WX_OK);
    assert_int_equal(u.outcome, WX_REUSE_RATE);

    assert_int_equal(reuse("*4\r\n$6\r\nreused\r\n$6\r\ngQTick\r\n"
                           "$22\r\nhttp://weixin.qq.com/q\r\n:250\r\n", &u),
                     WX_OK);
    assert_int_equal(u.outcome, WX_REUSE_FOUND);
    assert_span_equal(u.ticket, "gQTick");
    assert_span_equal(u.url, "http://weixin.qq.com/q");
    assert_int_equal(u.ttl, 250);

    /* a scene without WeChat's API has no ticket and no url */
    assert_int_equal(reuse("*4\r\n$6\r\nreused\r\n$0\r\n\r\n$0\r\n\r\n"
                           ":9\r\n", &u), WX_OK);
    assert_int_equal(u.outcome, WX_REUSE_FOUND);
    assert_span_equal(u.ticket, "");
    assert_int_equal(u.ttl, 9);

    /* shapes the script never has, and values that are no ticket */
    assert_int_equal(reuse("*4\r\n$6\r\nreused\r\n$3\r\na b\r\n"
                           "$0\r\n\r\n:9\r\n", &u), WX_ERR_REPLY);
    assert_int_equal(reuse("*4\r\n$6\r\nreused\r\n$1\r\nt\r\n$1\r\nu\r\n"
                           ":0\r\n", &u), WX_ERR_REPLY);
    assert_int_equal(reuse("*4\r\n$6\r\nreused\r\n$-1\r\n$1\r\nu\r\n"
                           ":9\r\n", &u), WX_ERR_REPLY);
    assert_int_equal(reuse("*4\r\n$4\r\nkept\r\n$1\r\nt\r\n$1\r\nu\r\n"
                           ":9\r\n", &u), WX_ERR_REPLY);
    assert_int_equal(reuse("*2\r\n$3\r\nnew\r\n:1\r\n", &u), WX_ERR_REPLY);
    assert_int_equal(reuse("*1\r\n$4\r\ngone\r\n", &u), WX_ERR_REPLY);
    assert_int_equal(reuse(":1\r\n", &u), WX_ERR_REPLY);
}

static void
test_resolution_malformed(void **state)
{
    (void) state;
    wx_resolution_t res;

    assert_int_equal(resolution("*2\r\n$5\r\nbound\r\n$1\r\n5\r\n", &res),
                     WX_ERR_REPLY);
    assert_int_equal(resolution("*3\r\n$5\r\nBOUND\r\n$1\r\n5\r\n$3\r\nnew\r\n",
                                &res), WX_ERR_REPLY);
    assert_int_equal(resolution("*3\r\n$5\r\nbound\r\n$2\r\n5x\r\n"
                                "$3\r\nnew\r\n", &res), WX_ERR_REPLY);
    assert_int_equal(resolution("*3\r\n$5\r\nbound\r\n:5\r\n$3\r\nnew\r\n",
                                &res), WX_ERR_REPLY);
    assert_int_equal(resolution("*3\r\n$5\r\nbound\r\n$-1\r\n$3\r\nnew\r\n",
                                &res), WX_ERR_REPLY);
    assert_int_equal(resolution("-ERR oops\r\n", &res), WX_ERR_REPLY);
    assert_int_equal(resolution(":1\r\n", &res), WX_ERR_REPLY);
}

/* sha256("t0ken") as the stored hash, from Python's hashlib */
#define TOKEN_HASH \
    "b46c09677343261f0b439a472422225e3a230c9c094d6ab16762e2036b597053"

#define SCENE  "wxs_abababababababababababababababab"

static void
poll_case(const char *resp, const char *token, const char *json,
    const char *status)
{
    redisReply *r = reply_of(resp);
    wx_span_t out;
    wx_scene_status_t st;

    assert_int_equal(wx_redis_poll_answer(r, S(SCENE), S(token),
                                          &test_allocator, &st, &out), WX_OK);
    freeReplyObject(r);
    assert_span_equal(out, json);
    assert_string_equal(wx_scene_status_name(st), status);
}

static void
test_poll(void **state)
{
    (void) state;
    char resp[512];

    snprintf(resp, sizeof(resp), "*3\r\n$7\r\npending\r\n$-1\r\n$64\r\n%s\r\n",
             TOKEN_HASH);
    poll_case(resp, "t0ken", "{\"status\":\"pending\"}", "pending");
    poll_case(resp, "t0keN", "{\"status\":\"expired\"}", "expired");
    poll_case(resp, "", "{\"status\":\"expired\"}", "expired");

    snprintf(resp, sizeof(resp), "*3\r\n$5\r\nbound\r\n$3\r\noAB\r\n$64\r\n"
             "%s\r\n", TOKEN_HASH);
    poll_case(resp, "t0ken", "{\"status\":\"bound\",\"openid\":\"oAB\"}",
              "bound");

    snprintf(resp, sizeof(resp), "*3\r\n$8\r\nconflict\r\n$3\r\noAB\r\n$64\r\n"
             "%s\r\n", TOKEN_HASH);
    poll_case(resp, "t0ken", "{\"status\":\"conflict\"}", "conflict");

    /* unknown scene, and a status the module never writes */
    poll_case("*3\r\n$-1\r\n$-1\r\n$-1\r\n", "t0ken",
              "{\"status\":\"expired\"}", "expired");
    snprintf(resp, sizeof(resp), "*3\r\n$4\r\nodd!\r\n$-1\r\n$64\r\n%s\r\n",
             TOKEN_HASH);
    poll_case(resp, "t0ken", "{\"status\":\"expired\"}", "expired");
}

/* the login code from Python: sha256 of the length-prefixed fields */
#define LOGIN_CODE  "4c70dc6f5f34e078ee7ead4c9199f611"

static void
test_poll_login(void **state)
{
    (void) state;
    char resp[512];

    snprintf(resp, sizeof(resp), "*3\r\n$9\r\nconfirmed\r\n$3\r\noAB\r\n"
             "$64\r\n%s\r\n", TOKEN_HASH);
    poll_case(resp, "t0ken",
              "{\"status\":\"confirmed\",\"code\":\"" LOGIN_CODE "\"}",
              "confirmed");
    poll_case(resp, "t0keN", "{\"status\":\"expired\"}", "expired");

    snprintf(resp, sizeof(resp), "*3\r\n$7\r\nunbound\r\n$3\r\noAB\r\n"
             "$64\r\n%s\r\n", TOKEN_HASH);
    poll_case(resp, "t0ken",
              "{\"status\":\"unbound\",\"code\":\"" LOGIN_CODE "\"}",
              "unbound");

    /* neither the code once redeemed, nor a verification code ever */
    snprintf(resp, sizeof(resp), "*3\r\n$8\r\nredeemed\r\n$3\r\noAB\r\n"
             "$64\r\n%s\r\n", TOKEN_HASH);
    poll_case(resp, "t0ken", "{\"status\":\"redeemed\"}", "redeemed");
    snprintf(resp, sizeof(resp), "*3\r\n$9\r\ncode_sent\r\n$3\r\noAB\r\n"
             "$64\r\n%s\r\n", TOKEN_HASH);
    poll_case(resp, "t0ken", "{\"status\":\"code_sent\"}", "code_sent");
}

static wx_status_t
redeem(const char *resp, wx_redeem_t *out)
{
    redisReply *r = reply_of(resp);
    wx_status_t rc = wx_redis_redeem(r, &test_allocator, out);
    freeReplyObject(r);
    return rc;
}

static void
test_redeem(void **state)
{
    (void) state;
    wx_redeem_t out;

    assert_int_equal(redeem("*4\r\n$5\r\nlogin\r\n$5\r\nlogin\r\n"
                            "$3\r\noAB\r\n$5\r\nalice\r\n", &out),
                     WX_ERR_REPLY);
    assert_int_equal(redeem("*4\r\n$2\r\nok\r\n$5\r\nlogin\r\n"
                            "$3\r\noAB\r\n$5\r\nalice\r\n", &out), WX_OK);
    assert_span_equal(out.kind, "login");
    assert_span_equal(out.openid, "oAB");
    assert_span_equal(out.user, "alice");

    assert_int_equal(redeem("*4\r\n$2\r\nok\r\n$4\r\ncode\r\n"
                            "$3\r\noAB\r\n$-1\r\n", &out), WX_OK);
    assert_span_equal(out.kind, "code");
    assert_null(out.user.data);

    /* why a code was refused, for the metrics */
    assert_int_equal(redeem("*2\r\n$5\r\nwrong\r\n$5\r\nwrong\r\n",
                            &out), WX_ERR_NOT_FOUND);
    assert_int_equal(out.refusal, WX_REDEEM_WRONG);
    assert_int_equal(redeem("*2\r\n$5\r\nwrong\r\n$5\r\nburnt\r\n",
                            &out), WX_ERR_NOT_FOUND);
    assert_int_equal(out.refusal, WX_REDEEM_BURNT);
    assert_int_equal(redeem("*2\r\n$5\r\nwrong\r\n$9\r\nnot_found\r\n",
                            &out), WX_ERR_NOT_FOUND);
    assert_int_equal(out.refusal, WX_REDEEM_NOT_FOUND);
    assert_int_equal(redeem("*1\r\n$5\r\nwrong\r\n", &out),
                     WX_ERR_REPLY);
    assert_int_equal(redeem("*2\r\n$5\r\nwrong\r\n$4\r\nlost\r\n",
                            &out), WX_ERR_REPLY);

    /* what must not become a variable or a header */
    assert_int_equal(redeem("*4\r\n$2\r\nok\r\n$4\r\ncode\r\n"
                            "$4\r\noA\nB\r\n$-1\r\n", &out), WX_ERR_REPLY);
    assert_int_equal(redeem("*4\r\n$2\r\nok\r\n$4\r\nbind\r\n"
                            "$3\r\noAB\r\n$-1\r\n", &out), WX_ERR_REPLY);
    assert_int_equal(redeem("*4\r\n$2\r\nok\r\n$4\r\ncode\r\n"
                            "$0\r\n\r\n$-1\r\n", &out), WX_ERR_REPLY);
    assert_int_equal(redeem("*3\r\n$2\r\nok\r\n$4\r\ncode\r\n"
                            "$3\r\noAB\r\n", &out), WX_ERR_REPLY);
    assert_int_equal(redeem(":1\r\n", &out), WX_ERR_REPLY);
}

static void
test_qrcode_url(void **state)
{
    (void) state;
    char        resp[512];
    int64_t     ttl;
    wx_span_t   url;
    redisReply *r;

    snprintf(resp, sizeof(resp), "*3\r\n$26\r\nhttp://weixin.qq.com/q/abc\r\n"
             "$64\r\n%s\r\n:280\r\n", TOKEN_HASH);

    r = reply_of(resp);
    assert_int_equal(wx_redis_qrcode_url(r, S("t0ken"), &test_allocator, &url,
                                         &ttl), WX_OK);
    assert_span_equal(url, "http://weixin.qq.com/q/abc");
    assert_int_equal(ttl, 280);

    /* a wrong token is no oracle: the same answer as an unknown scene */
    assert_int_equal(wx_redis_qrcode_url(r, S("t0keN"), &test_allocator, &url,
                                         &ttl), WX_ERR_NOT_FOUND);
    freeReplyObject(r);

    r = reply_of("*3\r\n$-1\r\n$-1\r\n:-2\r\n");
    assert_int_equal(wx_redis_qrcode_url(r, S("t0ken"), &test_allocator, &url,
                                         &ttl), WX_ERR_NOT_FOUND);
    freeReplyObject(r);

    r = reply_of("*2\r\n$-1\r\n$-1\r\n");
    assert_int_equal(wx_redis_qrcode_url(r, S("t0ken"), &test_allocator, &url,
                                         &ttl), WX_ERR_REPLY);
    freeReplyObject(r);
}

static void
test_poll_malformed(void **state)
{
    (void) state;
    redisReply *r = reply_of("*2\r\n$7\r\npending\r\n$-1\r\n");
    wx_span_t out;
    wx_scene_status_t st;

    assert_int_equal(wx_redis_poll_answer(r, S(SCENE), S("t"),
                                          &test_allocator, &st, &out),
                     WX_ERR_REPLY);
    freeReplyObject(r);
}

static void
test_string(void **state)
{
    (void) state;
    redisReply *r;
    wx_span_t out;

    r = reply_of("$5\r\nalice\r\n");
    assert_int_equal(wx_redis_string(r, &test_allocator, &out), WX_OK);
    freeReplyObject(r);
    assert_span_equal(out, "alice");

    r = reply_of("$-1\r\n");
    assert_int_equal(wx_redis_string(r, &test_allocator, &out),
                     WX_ERR_NOT_FOUND);
    freeReplyObject(r);

    r = reply_of(":3\r\n");
    assert_int_equal(wx_redis_string(r, &test_allocator, &out), WX_ERR_REPLY);
    freeReplyObject(r);
}

/* A script's words and ids: nil kept apart, control characters refused. */
static void
test_names(void **state)
{
    (void) state;
    redisReply *r;
    wx_span_t out[3];
    size_t n = 0;

    r = reply_of("*3\r\n$5\r\nbound\r\n$-1\r\n$6\r\noAlice\r\n");
    assert_int_equal(wx_redis_names(r, &test_allocator, out, 3, &n), WX_OK);
    freeReplyObject(r);
    assert_int_equal(n, 3);
    assert_span_equal(out[0], "bound");
    assert_null(out[1].data);
    assert_span_equal(out[2], "oAlice");

    /* more elements than asked for, a control character, an integer */
    r = reply_of("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
    assert_int_equal(wx_redis_names(r, &test_allocator, out, 2, &n),
                     WX_ERR_REPLY);
    freeReplyObject(r);
    r = reply_of("*1\r\n$3\r\na\nb\r\n");
    assert_int_equal(wx_redis_names(r, &test_allocator, out, 3, &n),
                     WX_ERR_REPLY);
    freeReplyObject(r);
    r = reply_of("*1\r\n:1\r\n");
    assert_int_equal(wx_redis_names(r, &test_allocator, out, 3, &n),
                     WX_ERR_REPLY);
    freeReplyObject(r);
    r = reply_of("$5\r\nbound\r\n");
    assert_int_equal(wx_redis_names(r, &test_allocator, out, 3, &n),
                     WX_ERR_REPLY);
    freeReplyObject(r);
    r = reply_of("*0\r\n");
    assert_int_equal(wx_redis_names(r, &test_allocator, out, 3, &n),
                     WX_ERR_REPLY);
    freeReplyObject(r);
}

static void
test_reader_limit(void **state)
{
    (void) state;
    static const char huge[] = "*300000001\r\n$5\r\nbound\r\n";
    redisReader *reader = redisReaderCreate();
    void *reply = NULL;

    wx_redis_limit_reader(reader);
    wx_redis_limit_reader(reader);
    assert_int_equal(redisReaderFeed(reader, huge, sizeof(huge) - 1),
                     REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_ERR);
    assert_null(reply);
    redisReaderFree(reader);

    /* replies of the module's size still read */
    reply = reply_of("*3\r\n$-1\r\n$-1\r\n$-1\r\n");
    freeReplyObject(reply);

    /* a reply may hold a range per slot; what is inside it may not */
    static const char outer[] = "*16384\r\n";
    static const char inner[] = "*1\r\n*65\r\n";

    reader = redisReaderCreate();
    wx_redis_limit_reader(reader);
    assert_int_equal(redisReaderFeed(reader, outer, sizeof(outer) - 1),
                     REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_OK);
    assert_null(reply);     /* incomplete, not refused */
    redisReaderFree(reader);

    reader = redisReaderCreate();
    wx_redis_limit_reader(reader);
    assert_int_equal(redisReaderFeed(reader, inner, sizeof(inner) - 1),
                     REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_ERR);
    redisReaderFree(reader);
}

/* Feeds resp one byte at a time; the replies read, or -1 once refused. */
static int
replies_read(wx_resp_reader_t *r, const char *resp, size_t len)
{
    int          n = 0;
    size_t       i;
    redisReply  *reply;

    for (i = 0; i < len; i++) {
        wx_span_t byte = {(const unsigned char *) resp + i, 1};

        if (wx_resp_reader_feed(r, byte) != WX_OK) {
            return -1;
        }

        for (;;) {
            if (wx_resp_reader_next(r, &reply) != WX_OK) {
                return -1;
            }

            if (reply == NULL) {
                break;
            }

            wx_resp_reply_free(reply);
            n++;
        }
    }

    return n;
}

static int
read_with_cap(size_t cap, const char *resp)
{
    wx_resp_reader_t  *r = wx_resp_reader_create(cap);
    int                n;

    assert_non_null(r);
    n = replies_read(r, resp, strlen(resp));
    wx_resp_reader_free(r);

    return n;
}

static void
test_resp_reader(void **state)
{
    (void) state;
    static const char three[] =
        "*3\r\n$5\r\nbound\r\n:12\r\n*2\r\n$-1\r\n*-1\r\n"
        "+OK\r\n-ERR a b\r\n";
    int n;

    /* split at every byte, replies come whole */
    assert_int_equal(read_with_cap(1024, three), 3);

    /*
     * a CR inside a line: hiredis 0.14 reads it, 1.x refuses the reply;
     * either way the reply is never cut there
     */
    n = read_with_cap(1024, "-ERR a\rb\r\n");
    assert_true(n == 1 || n == -1);
    assert_int_equal(read_with_cap(1024, "*0\r\n:-3\r\n$0\r\n\r\n"), 3);

    /* a bulk string announced past the cap is refused at its header */
    wx_resp_reader_t *r = wx_resp_reader_create(1024);
    static const char big[] = "*3\r\n$7\r\nmessage\r\n$2000000000\r\n";
    wx_span_t s = {(const unsigned char *) big, sizeof(big) - 1};

    assert_int_equal(wx_resp_reader_feed(r, s), WX_ERR_TOO_LARGE);
    assert_int_equal(wx_resp_reader_feed(r, s), WX_ERR_REPLY);
    wx_resp_reader_free(r);

    /* the cap is on a whole reply, its headers included */
    assert_int_equal(read_with_cap(20, "$10\r\n0123456789\r\n"), 1);
    assert_int_equal(read_with_cap(20, "*2\r\n$5\r\n01234\r\n$1\r\n0\r\n"),
                     -1);
    assert_int_equal(read_with_cap(20, "$5\r\n01234\r\n$5\r\n01234\r\n"), 2);
    assert_int_equal(read_with_cap(8, "+0123456789"), -1);

    /* RESP3, junk, bad numbers, too deep */
    assert_int_equal(read_with_cap(1024, "%1\r\n"), -1);
    assert_int_equal(read_with_cap(1024, "hello\r\n"), -1);
    assert_int_equal(read_with_cap(1024, "$1x\r\n"), -1);
    assert_int_equal(read_with_cap(1024, "$\r\n"), -1);
    assert_int_equal(read_with_cap(1024, "$-2\r\n"), -1);
    assert_int_equal(read_with_cap(1024, ":1\r2\r\n"), -1);
    assert_int_equal(read_with_cap(1024, "$1234567890123456789\r\n"), -1);
    assert_int_equal(read_with_cap(1024, "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
                     1);
    assert_int_equal(read_with_cap(1024, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n"),
                     -1);

    /* the array limits hold behind the guard too */
    assert_int_equal(read_with_cap(1 << 20, "*1\r\n*65\r\n"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_resolution, reset_arena),
        cmocka_unit_test_setup(test_resolution_malformed, reset_arena),
        cmocka_unit_test_setup(test_claim, reset_arena),
        cmocka_unit_test_setup(test_token, reset_arena),
        cmocka_unit_test_setup(test_poll, reset_arena),
        cmocka_unit_test_setup(test_poll_malformed, reset_arena),
        cmocka_unit_test_setup(test_poll_login, reset_arena),
        cmocka_unit_test_setup(test_redeem, reset_arena),
        cmocka_unit_test_setup(test_qrcode_url, reset_arena),
        cmocka_unit_test_setup(test_qrcode_reuse, reset_arena),
        cmocka_unit_test_setup(test_string, reset_arena),
        cmocka_unit_test_setup(test_names, reset_arena),
        cmocka_unit_test(test_reader_limit),
        cmocka_unit_test(test_resp_reader),
    };

    return cmocka_run_group_tests_name("redis_reply", tests, NULL, NULL);
}
