#include <hiredis/hiredis.h>

#include "wx_test.h"

/* Redis Cluster: slots of keys, MOVED and ASK, CLUSTER SLOTS. */

static unsigned
slot(const char *key)
{
    return wx_redis_slot(S(key));
}

static void
test_slot(void **state)
{
    (void) state;

    /* CRC-16/XMODEM's check value, and what CLUSTER KEYSLOT answers */
    assert_int_equal(slot("123456789"), 0x31c3);
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("somekey"), 11058);

    /* the first non-empty {...} is hashed, and only it */
    assert_int_equal(slot("wx:{foo}:scene:wxs_1"), slot("foo"));
    assert_int_equal(slot("other:{foo}:users"), slot("foo"));
    assert_int_equal(slot("{foo}{bar}"), slot("foo"));
    assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_not_equal(slot("wx:{}:users"), slot("wx:{}:openids"));
    assert_true(slot("") < WX_REDIS_SLOTS);
}

static void
test_redirect(void **state)
{
    (void) state;
    wx_redirect_t r;

    assert_int_equal(wx_redis_redirect(S("MOVED 3999 127.0.0.1:6381"), &r),
                     WX_OK);
    assert_false(r.ask);
    assert_int_equal(r.slot, 3999);
    assert_memory_equal(r.host.data, "127.0.0.1", r.host.len);
    assert_int_equal(r.host.len, 9);
    assert_int_equal(r.port, 6381);

    assert_int_equal(wx_redis_redirect(S("ASK 16383 ::1:7000"), &r), WX_OK);
    assert_true(r.ask);
    assert_int_equal(r.slot, 16383);
    assert_int_equal(r.host.len, 3);
    assert_int_equal(r.port, 7000);

    /* Redis 7 may leave the host out: the node that answered */
    assert_int_equal(wx_redis_redirect(S("MOVED 1 :7001"), &r), WX_OK);
    assert_int_equal(r.host.len, 0);

    assert_int_equal(wx_redis_redirect(S("ERR unknown command"), &r),
                     WX_ERR_NOT_FOUND);
    assert_int_equal(wx_redis_redirect(S("READONLY You can't"), &r),
                     WX_ERR_NOT_FOUND);

    static const char *const bad[] = {
        "MOVED 16384 127.0.0.1:7000", "MOVED x 127.0.0.1:7000",
        "MOVED 1 127.0.0.1:0", "MOVED 1 127.0.0.1:65536",
        "MOVED 1 127.0.0.1", "MOVED 1", "ASK 1 a\x01:7000",
        "MOVED 1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:7000",
        "MOVED 1 127.0.0.1:70000000",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(wx_redis_redirect(S(bad[i]), &r), WX_ERR_REPLY);
    }
}

typedef struct {
    unsigned  n;
    unsigned  first[4], last[4], port[4];
    char      host[4][64];
} ranges_t;

static int
collect(void *data, unsigned first, unsigned last, wx_span_t host,
    unsigned port)
{
    ranges_t *r = data;

    if (r->n == 4) {
        return 1;
    }

    r->first[r->n] = first;
    r->last[r->n] = last;
    r->port[r->n] = port;
    memcpy(r->host[r->n], host.data, host.len);
    r->host[r->n][host.len] = '\0';
    r->n++;

    return 0;
}

static wx_status_t
slots(const char *resp, ranges_t *out)
{
    redisReader  *reader = redisReaderCreate();
    void         *reply = NULL;
    wx_status_t   rc;

    memset(out, 0, sizeof(*out));
    assert_int_equal(redisReaderFeed(reader, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(reader);

    rc = wx_redis_cluster_slots(reply, collect, out);
    freeReplyObject(reply);

    return rc;
}

static void
test_cluster_slots(void **state)
{
    (void) state;
    ranges_t r;

    assert_int_equal(slots(
        "*2\r\n"
        "*4\r\n:0\r\n:5460\r\n"
        "*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nabc\r\n"
        "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\ndef\r\n"
        "*3\r\n:5461\r\n:16383\r\n"
        "*2\r\n$0\r\n\r\n:7001\r\n", &r), WX_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.first[0], 0);
    assert_int_equal(r.last[0], 5460);
    assert_string_equal(r.host[0], "127.0.0.1");
    assert_int_equal(r.port[0], 7000);
    assert_int_equal(r.first[1], 5461);
    assert_int_equal(r.last[1], 16383);
    assert_string_equal(r.host[1], "");
    assert_int_equal(r.port[1], 7001);

    static const char *const bad[] = {
        "*0\r\n",
        ":1\r\n",
        "*1\r\n*2\r\n:0\r\n:5\r\n",
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\na\r\n:7000\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:7000\r\n",
        "*1\r\n*3\r\n:-1\r\n:4\r\n*2\r\n$1\r\na\r\n:7000\r\n",
        "*1\r\n*3\r\n:0\r\n:4\r\n*2\r\n$1\r\na\r\n:0\r\n",
        "*1\r\n*3\r\n:0\r\n:4\r\n*2\r\n$1\r\na\r\n$4\r\n7000\r\n",
        "*1\r\n*3\r\n:0\r\n:4\r\n*2\r\n$3\r\na b\r\n:7000\r\n",
        "*1\r\n*3\r\n:0\r\n:4\r\n*1\r\n$1\r\na\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:4\r\n*2\r\n$1\r\na\r\n:7000\r\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(slots(bad[i], &r), WX_ERR_REPLY);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_cluster_slots),
    };

    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
