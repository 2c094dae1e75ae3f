#include "wx_test.h"

#define SECRET    "0123456789abcdef0123456789abcdef"
#define SECRET2   "fedcba9876543210fedcba9876543210"
#define APPID     "wxlinkapp"
#define OPENID    "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
#define SCENE     "wxs_0123456789abcdef0123456789abcdef"
#define EXPIRES   1700000000
#define NONCE     "a1b2c3d4"

/*
 * From Python: f = lambda *xs: b"".join(b"%d:%s" % (len(x), x) for x in xs);
 * hmac.new(SECRET, f(b"wechat-link/2", APPID, b"register", OPENID, b"",
 * b"1700000000", NONCE), hashlib.sha256).hexdigest()
 */
#define SIG  "2e107b9fb797d84daf950144a49e563561f3d42580523694dd14b4148a5d0aac"

/* the same with b"login-confirm" and SCENE */
#define SCENE_SIG                                                            \
    "4914a8c0d24a7b822fdd1066fae641d1b6ac53650118b7c9c52b1ddbf8ee4bbc"

static const wx_span_t  current[] = { { (const unsigned char *) SECRET, 32 } };

static wx_link_t
link_of(const char *openid, int64_t expires, const char *nonce)
{
    wx_link_t  link = { S(APPID), S("register"), S(""), S(""), 0, S("") };

    link.openid = S(openid);
    link.expires = expires;
    link.nonce = S(nonce);

    return link;
}

static wx_status_t
verify(const char *openid, int64_t expires, const char *nonce,
    const char *sig, int64_t now)
{
    wx_link_t  link = link_of(openid, expires, nonce);

    return wx_link_verify(current, 1, &link, S(sig), now);
}

static void
test_sign_matches_reference(void **state)
{
    (void) state;
    char sig[WX_LINK_SIG_LEN];
    wx_link_t link = link_of(OPENID, EXPIRES, NONCE);

    assert_int_equal(wx_link_sign(S(SECRET), &link, sig), WX_OK);
    assert_memory_equal(sig, SIG, WX_LINK_SIG_LEN);

    link.purpose = S("login-confirm");
    link.scene = S(SCENE);
    assert_int_equal(wx_link_sign(S(SECRET), &link, sig), WX_OK);
    assert_memory_equal(sig, SCENE_SIG, WX_LINK_SIG_LEN);
}

static void
test_good_link(void **state)
{
    (void) state;
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, SIG, EXPIRES - 600),
                     WX_OK);
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, SIG, EXPIRES), WX_OK);
}

static void
test_forged(void **state)
{
    (void) state;
    char sig[] = SIG;

    /* another openid, a later expiry, another nonce, a flipped digit */
    assert_int_equal(verify("oUpF8uMuAJO_M2pxb1Q9zNjWeS6p", EXPIRES, NONCE,
                            SIG, 0), WX_ERR_SIGNATURE);
    assert_int_equal(verify(OPENID, EXPIRES + 1, NONCE, SIG, 0),
                     WX_ERR_SIGNATURE);
    assert_int_equal(verify(OPENID, EXPIRES, "a1b2c3d5", SIG, 0),
                     WX_ERR_SIGNATURE);
    sig[10] ^= 1;
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, sig, 0),
                     WX_ERR_SIGNATURE);

    /* a truncated, an upper-case and an empty signature */
    sig[10] ^= 1;
    sig[63] = '\0';
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, sig, 0),
                     WX_ERR_SIGNATURE);
    assert_int_equal(verify(OPENID, EXPIRES, NONCE,
                            "2E107B9FB797D84DAF950144A49E5635"
                            "61F3D42580523694DD14B4148A5D0AAC", 0),
                     WX_ERR_SIGNATURE);
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, "", 0),
                     WX_ERR_SIGNATURE);
}

/* A link signed for one account or purpose verifies at no other. */
static void
test_account_and_purpose(void **state)
{
    (void) state;
    wx_link_t link = link_of(OPENID, EXPIRES, NONCE);

    link.appid = S("wxotherapp");
    assert_int_equal(wx_link_verify(current, 1, &link, S(SIG), 0),
                     WX_ERR_SIGNATURE);

    link = link_of(OPENID, EXPIRES, NONCE);
    link.purpose = S("login-confirm");
    assert_int_equal(wx_link_verify(current, 1, &link, S(SIG), 0),
                     WX_ERR_SIGNATURE);

    /* a scene's link is not a link of no scene, nor of another scene */
    link.scene = S(SCENE);
    assert_int_equal(wx_link_verify(current, 1, &link, S(SCENE_SIG), 0),
                     WX_OK);
    link.purpose = S("register");
    assert_int_equal(wx_link_verify(current, 1, &link, S(SCENE_SIG), 0),
                     WX_ERR_SIGNATURE);
    link.purpose = S("login-confirm");
    link.scene = S("wxs_0123456789abcdef0123456789abcdee");
    assert_int_equal(wx_link_verify(current, 1, &link, S(SCENE_SIG), 0),
                     WX_ERR_SIGNATURE);
    link.scene = S("");
    assert_int_equal(wx_link_verify(current, 1, &link, S(SCENE_SIG), 0),
                     WX_ERR_SIGNATURE);
}

static void
test_expired(void **state)
{
    (void) state;
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, SIG, EXPIRES + 1),
                     WX_ERR_EXPIRED);

    /* a forged link is reported as forged, whatever its expiry */
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, "00", EXPIRES + 1),
                     WX_ERR_SIGNATURE);
}

static void
sign(const char *openid, int64_t expires, const char *nonce, char *out)
{
    wx_link_t  link = link_of(openid, expires, nonce);

    assert_int_equal(wx_link_sign(S(SECRET), &link, out), WX_OK);
}

static void
test_field_shifting(void **state)
{
    (void) state;
    char a[WX_LINK_SIG_LEN], b[WX_LINK_SIG_LEN];

    /* "ts=12&n=345" against "ts=123&n=45" */
    sign(OPENID, 12, "345", a);
    sign(OPENID, 123, "45", b);
    assert_memory_not_equal(a, b, WX_LINK_SIG_LEN);

    /* bytes moved between openid and nonce across the expiry */
    sign("oab", 1, "n", a);
    sign("oa", 1, "bn", b);
    assert_memory_not_equal(a, b, WX_LINK_SIG_LEN);

    /* a field that looks like a length prefix */
    sign("o", 1, "1:x", a);
    sign("o1:", 1, "x", b);
    assert_memory_not_equal(a, b, WX_LINK_SIG_LEN);
}

static void
test_rotated_secret(void **state)
{
    (void) state;
    char old_sig[WX_LINK_SIG_LEN + 1] = { 0 };
    wx_span_t both[] = { S(SECRET2), S(SECRET) };
    wx_link_t link = link_of(OPENID, EXPIRES, NONCE);

    /* signed with SECRET, then SECRET2 becomes current */
    assert_int_equal(wx_link_verify(both, 2, &link, S(SIG), 0), WX_OK);
    assert_int_equal(wx_link_verify(both, 1, &link, S(SIG), 0),
                     WX_ERR_SIGNATURE);

    assert_int_equal(wx_link_sign(S(SECRET2), &link, old_sig), WX_OK);
    assert_int_equal(wx_link_verify(both, 2, &link, S(old_sig), 0), WX_OK);
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, old_sig, 0),
                     WX_ERR_SIGNATURE);
}

static void
test_bad_arguments(void **state)
{
    (void) state;
    char sig[WX_LINK_SIG_LEN];
    wx_span_t short_secret = { (const unsigned char *) SECRET, 31 };
    wx_span_t mixed[] = { S(SECRET), short_secret };
    wx_link_t link = link_of(OPENID, EXPIRES, NONCE);

    assert_int_equal(wx_link_sign(short_secret, &link, sig), WX_ERR_ARGS);
    assert_int_equal(wx_link_verify(mixed, 2, &link, S(SIG), 0), WX_ERR_ARGS);
    assert_int_equal(wx_link_verify(mixed, 0, &link, S(SIG), 0), WX_ERR_ARGS);
    assert_int_equal(wx_link_sign(S(SECRET), NULL, sig), WX_ERR_ARGS);

    link.openid = S("");
    assert_int_equal(wx_link_sign(S(SECRET), &link, sig), WX_ERR_ARGS);
    link = link_of(OPENID, EXPIRES, "");
    assert_int_equal(wx_link_sign(S(SECRET), &link, sig), WX_ERR_ARGS);
    link = link_of(OPENID, EXPIRES, NONCE);
    link.appid = S("");
    assert_int_equal(wx_link_sign(S(SECRET), &link, sig), WX_ERR_ARGS);
    link = link_of(OPENID, EXPIRES, NONCE);
    link.purpose = S("");
    assert_int_equal(wx_link_sign(S(SECRET), &link, sig), WX_ERR_ARGS);
}

static void
test_query(void **state)
{
    (void) state;
    wx_span_t q;
    wx_link_t link = link_of(OPENID, EXPIRES, NONCE);

    assert_int_equal(wx_link_query(S(SECRET), &link, &test_allocator, &q),
                     WX_OK);
    assert_span_equal(q, "openid=" OPENID "&expires=1700000000&nonce=" NONCE
                         "&sig=" SIG);

    link.purpose = S("login-confirm");
    link.scene = S(SCENE);
    assert_int_equal(wx_link_query(S(SECRET), &link, &test_allocator, &q),
                     WX_OK);
    assert_span_equal(q, "openid=" OPENID "&scene=" SCENE
                         "&expires=1700000000&nonce=" NONCE
                         "&sig=" SCENE_SIG);

    /* values encoded: a signature from Python over the raw fields */
    link = link_of("o+/=&x", EXPIRES, "n 1");
    assert_int_equal(wx_link_query(S(SECRET), &link, &test_allocator, &q),
                     WX_OK);
    assert_span_equal(q, "openid=o%2B%2F%3D%26x&expires=1700000000"
                         "&nonce=n%201&sig=f9a6119d161402eacd0075aff1005443"
                         "f7e22e3c122135758243a0eed20da00d");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_matches_reference),
        cmocka_unit_test(test_good_link),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_account_and_purpose),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_field_shifting),
        cmocka_unit_test(test_rotated_secret),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_setup(test_query, reset_arena),
    };

    return cmocka_run_group_tests_name("link", tests, NULL, NULL);
}
