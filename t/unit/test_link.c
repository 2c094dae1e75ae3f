#include "wx_test.h"

#define SECRET    "0123456789abcdef0123456789abcdef"
#define SECRET2   "fedcba9876543210fedcba9876543210"
#define OPENID    "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
#define EXPIRES   1700000000
#define NONCE     "a1b2c3d4"

/*
 * From Python: hmac.new(SECRET, b"13:wechat-link/1" b"28:" OPENID
 * b"10:1700000000" b"8:" NONCE, hashlib.sha256).hexdigest()
 */
#define SIG  "6ffb7c1fdac96dac41393e32a3830a8995420150138643a2d7c87e3286399eaa"

static const wx_span_t  current[] = { { (const unsigned char *) SECRET, 32 } };

static wx_status_t
verify(const char *openid, int64_t expires, const char *nonce,
    const char *sig, int64_t now)
{
    return wx_link_verify(current, 1, S(openid), expires, S(nonce), S(sig),
                          now);
}

static void
test_sign_matches_reference(void **state)
{
    (void) state;
    char sig[WX_LINK_SIG_LEN];

    assert_int_equal(wx_link_sign(S(SECRET), S(OPENID), EXPIRES, S(NONCE),
                                  sig), WX_OK);
    assert_memory_equal(sig, SIG, WX_LINK_SIG_LEN);
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
                            "6FFB7C1FDAC96DAC41393E32A3830A89"
                            "95420150138643A2D7C87E3286399EAA", 0),
                     WX_ERR_SIGNATURE);
    assert_int_equal(verify(OPENID, EXPIRES, NONCE, "", 0),
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
test_field_shifting(void **state)
{
    (void) state;
    char a[WX_LINK_SIG_LEN], b[WX_LINK_SIG_LEN];

    /* "ts=12&n=345" against "ts=123&n=45" */
    assert_int_equal(wx_link_sign(S(SECRET), S(OPENID), 12, S("345"), a),
                     WX_OK);
    assert_int_equal(wx_link_sign(S(SECRET), S(OPENID), 123, S("45"), b),
                     WX_OK);
    assert_memory_not_equal(a, b, WX_LINK_SIG_LEN);

    /* bytes moved between openid and nonce across the expiry */
    assert_int_equal(wx_link_sign(S(SECRET), S("oab"), 1, S("n"), a), WX_OK);
    assert_int_equal(wx_link_sign(S(SECRET), S("oa"), 1, S("bn"), b), WX_OK);
    assert_memory_not_equal(a, b, WX_LINK_SIG_LEN);

    /* a field that looks like a length prefix */
    assert_int_equal(wx_link_sign(S(SECRET), S("o"), 1, S("1:x"), a), WX_OK);
    assert_int_equal(wx_link_sign(S(SECRET), S("o1:"), 1, S("x"), b), WX_OK);
    assert_memory_not_equal(a, b, WX_LINK_SIG_LEN);
}

static void
test_rotated_secret(void **state)
{
    (void) state;
    char old_sig[WX_LINK_SIG_LEN + 1] = { 0 };
    wx_span_t both[] = { S(SECRET2), S(SECRET) };

    /* signed with SECRET, then SECRET2 becomes current */
    assert_int_equal(wx_link_verify(both, 2, S(OPENID), EXPIRES, S(NONCE),
                                    S(SIG), 0), WX_OK);
    assert_int_equal(wx_link_verify(both, 1, S(OPENID), EXPIRES, S(NONCE),
                                    S(SIG), 0), WX_ERR_SIGNATURE);

    assert_int_equal(wx_link_sign(S(SECRET2), S(OPENID), EXPIRES, S(NONCE),
                                  old_sig), WX_OK);
    assert_int_equal(wx_link_verify(both, 2, S(OPENID), EXPIRES, S(NONCE),
                                    S(old_sig), 0), WX_OK);
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

    assert_int_equal(wx_link_sign(short_secret, S(OPENID), EXPIRES, S(NONCE),
                                  sig), WX_ERR_ARGS);
    assert_int_equal(wx_link_verify(mixed, 2, S(OPENID), EXPIRES, S(NONCE),
                                    S(SIG), 0), WX_ERR_ARGS);
    assert_int_equal(wx_link_verify(mixed, 0, S(OPENID), EXPIRES, S(NONCE),
                                    S(SIG), 0), WX_ERR_ARGS);
    assert_int_equal(wx_link_sign(S(SECRET), S(""), EXPIRES, S(NONCE), sig),
                     WX_ERR_ARGS);
    assert_int_equal(wx_link_sign(S(SECRET), S(OPENID), EXPIRES, S(""), sig),
                     WX_ERR_ARGS);
}

static void
test_query(void **state)
{
    (void) state;
    wx_span_t q;

    assert_int_equal(wx_link_query(S(SECRET), S(OPENID), EXPIRES, S(NONCE),
                                   &test_allocator, &q), WX_OK);
    assert_span_equal(q, "openid=" OPENID "&expires=1700000000&nonce=" NONCE
                         "&sig=" SIG);

    /* values encoded: a signature from Python over the raw fields */
    assert_int_equal(wx_link_query(S(SECRET), S("o+/=&x"), EXPIRES, S("n 1"),
                                   &test_allocator, &q), WX_OK);
    assert_span_equal(q, "openid=o%2B%2F%3D%26x&expires=1700000000"
                         "&nonce=n%201&sig=848d77f28a3dc080d46462259acc6b64"
                         "1d14f07a794b7c1b5af5bea9927c69f1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_matches_reference),
        cmocka_unit_test(test_good_link),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_field_shifting),
        cmocka_unit_test(test_rotated_secret),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_setup(test_query, reset_arena),
    };

    return cmocka_run_group_tests_name("link", tests, NULL, NULL);
}
