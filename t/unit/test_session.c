#include "wx_test.h"
#include "wx_oauth.h"

#define KEY      "0123456789abcdef0123456789abcdef"
#define OLD_KEY  "fedcba9876543210fedcba9876543210"
#define APPID    "wxoauthapp"

/*
 * From Python: f = lambda *xs: b"".join(b"%d:%s" % (len(x), x) for x in xs);
 * sealed = b"v1." + f(b"wechat-oauth-session/1", APPID, b"oUser_1",
 * b"oUnion-1", b"base", b"1700000000", b"", b"").hex().encode();
 * sealed + b"." + hmac.new(KEY, sealed, hashlib.sha256).hexdigest()
 */
#define SEALED \
    "v1.32323a7765636861742d6f617574682d73657373696f6e2f3131303a77786f617" \
    "57468617070373a6f557365725f31383a6f556e696f6e2d31343a6261736531303a3" \
    "1373030303030303030303a303a"
#define TAMPERED \
    "v1.32323a7765636861742d6f617574682d73657373696f6e2f3131303a77786f617" \
    "57468617070373a6f557365725f32383a6f556e696f6e2d31343a6261736531303a3" \
    "1373030303030303030303a303a"
#define MAC \
    "0a5be387dca922b9878f3ff94eaded182056642198095501f55a0b0333912b07"

static const wx_span_t  keys[] = {
    { (const unsigned char *) KEY, 32 },
    { (const unsigned char *) OLD_KEY, 32 }
};

static wx_session_t
session_of(const char *openid, int64_t expires)
{
    wx_session_t  s = { S(APPID), S(openid), S("oUnion-1"), S("base"), 0,
                        S(""), S("") };

    s.expires = expires;
    return s;
}

static void
test_seal_matches_reference(void **state)
{
    wx_span_t     out;
    wx_session_t  s = session_of("oUser_1", 1700000000);

    (void) state;

    assert_int_equal(wx_session_seal(S(KEY), &s, &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, SEALED "." MAC);
}

static void
test_open(void **state)
{
    wx_session_t  s;

    (void) state;

    assert_int_equal(wx_session_open(keys, 2, S(APPID), S(SEALED "." MAC),
                                     1699999999, &test_allocator, &s),
                     WX_OK);
    assert_span_equal(s.openid, "oUser_1");
    assert_span_equal(s.unionid, "oUnion-1");
    assert_span_equal(s.scope, "base");
    assert_int_equal(s.expires, 1700000000);
    assert_int_equal(s.nickname.len, 0);

    /* expired at its second, another account, a MAC one digit off */
    assert_int_equal(wx_session_open(keys, 2, S(APPID), S(SEALED "." MAC),
                                     1700000000, &test_allocator, &s),
                     WX_ERR_EXPIRED);
    assert_int_equal(wx_session_open(keys, 2, S("wxother"),
                                     S(SEALED "." MAC), 1, &test_allocator,
                                     &s),
                     WX_ERR_SIGNATURE);
    assert_int_equal(wx_session_open(keys, 2, S(APPID),
                                     S(SEALED ".1a5be387dca922b9878f3ff94ead"
                                       "ed182056642198095501f55a0b0333912b07"),
                                     1, &test_allocator, &s),
                     WX_ERR_SIGNATURE);

    /* a field changed under the same MAC: oUser_2 for oUser_1 */
    assert_int_equal(wx_session_open(keys, 2, S(APPID),
                                     S(TAMPERED "." MAC), 1,
                                     &test_allocator, &s),
                     WX_ERR_SIGNATURE);

    /* malformed: no version, no MAC, odd hex */
    assert_int_equal(wx_session_open(keys, 2, S(APPID), S("v2.00." MAC), 1,
                                     &test_allocator, &s),
                     WX_ERR_ARGS);
    assert_int_equal(wx_session_open(keys, 2, S(APPID), S(SEALED), 1,
                                     &test_allocator, &s),
                     WX_ERR_ARGS);
}

static void
test_rotation(void **state)
{
    wx_span_t     out;
    wx_session_t  s = session_of("oUser_1", 1700000000), opened;

    (void) state;

    /* sealed under the old key: the old key, second, opens it */
    assert_int_equal(wx_session_seal(S(OLD_KEY), &s, &test_allocator, &out),
                     WX_OK);
    assert_int_equal(wx_session_open(keys, 2, S(APPID), out, 1,
                                     &test_allocator, &opened),
                     WX_OK);

    /* once the old key is dropped, it does not */
    assert_int_equal(wx_session_open(keys, 1, S(APPID), out, 1,
                                     &test_allocator, &opened),
                     WX_ERR_SIGNATURE);
}

static void
test_refused_fields(void **state)
{
    wx_span_t     out;
    wx_session_t  s = session_of("oUser\x01", 1700000000);

    (void) state;

    /* a control character never goes into a session, nor a short key */
    assert_int_equal(wx_session_seal(S(KEY), &s, &test_allocator, &out),
                     WX_ERR_ARGS);
    s = session_of("oUser_1", 1700000000);
    assert_int_equal(wx_session_seal(S("short"), &s, &test_allocator, &out),
                     WX_ERR_ARGS);
}

static void
test_sns_answers(void **state)
{
    wx_oauth_token_t  t;
    wx_oauth_user_t   u;

    (void) state;

    assert_int_equal(wx_api_oauth_token(S("{\"access_token\":\"AT\","
                                          "\"expires_in\":7200,"
                                          "\"refresh_token\":\"RT\","
                                          "\"openid\":\"oA_1\","
                                          "\"scope\":\"snsapi_base\"}"),
                                        &test_allocator, &t),
                     WX_OK);
    assert_span_equal(t.openid, "oA_1");
    assert_int_equal(t.unionid.len, 0);

    assert_int_equal(wx_api_oauth_token(S("{\"errcode\":40029,"
                                          "\"errmsg\":\"invalid code\"}"),
                                        &test_allocator, &t),
                     WX_ERR_API);

    /* an openid of another shape is no openid */
    assert_int_equal(wx_api_oauth_token(S("{\"access_token\":\"AT\","
                                          "\"openid\":\"o A\"}"),
                                        &test_allocator, &t),
                     WX_ERR_JSON);

    /* a nickname's control characters become '?'; the avatar is http(s) */
    assert_int_equal(wx_api_oauth_userinfo(S("{\"openid\":\"oA_1\","
                                             "\"nickname\":\"A\\u0007\\n"
                                             "\xe5\xbe\xae\","
                                             "\"headimgurl\":\"https://x/1\","
                                             "\"unionid\":\"oU_2\"}"),
                                           &test_allocator, &u),
                     WX_OK);
    assert_span_equal(u.nickname, "A??\xe5\xbe\xae");
    assert_span_equal(u.avatar, "https://x/1");
    assert_span_equal(u.unionid, "oU_2");

    assert_int_equal(wx_api_oauth_userinfo(S("{\"openid\":\"oA_1\","
                                             "\"headimgurl\":\"javascript:x\"}"),
                                           &test_allocator, &u),
                     WX_ERR_JSON);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_seal_matches_reference, reset_arena),
        cmocka_unit_test_setup(test_open, reset_arena),
        cmocka_unit_test_setup(test_rotation, reset_arena),
        cmocka_unit_test_setup(test_refused_fields, reset_arena),
        cmocka_unit_test_setup(test_sns_answers, reset_arena),
    };

    return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
