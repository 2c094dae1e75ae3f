#include "wx_test.h"

/*
 * Expected digests computed with Python:
 *   hashlib.sha1(''.join(sorted(fields)).encode()).hexdigest()
 */

static void
test_get_signature(void **state)
{
    (void) state;
    wx_span_t fields[] = { S("wechatToken123"), S("1700000000"),
                           S("987654321") };
    char out[WX_SIGNATURE_LEN];

    assert_int_equal(wx_signature_compute(fields, 3, out), WX_OK);
    assert_memory_equal(out, "4c19e2d426d8872b6142e3097b98bc169c99c498",
                        WX_SIGNATURE_LEN);
    assert_int_equal(wx_signature_verify(fields, 3,
        S("4c19e2d426d8872b6142e3097b98bc169c99c498")), WX_OK);
}

static void
test_msg_signature_four_fields(void **state)
{
    (void) state;
    wx_span_t fields[] = { S("wechatToken123"), S("1700000000"),
                           S("987654321"), S("ENCRYPTED_BODY") };

    assert_int_equal(wx_signature_verify(fields, 4,
        S("92f22582fa2627d3e334a82952b23bbcfedb3f4b")), WX_OK);
}

static void
test_official_msg_signature(void **state)
{
    (void) state;
    /* WeChat's published decrypt sample: token, timestamp, nonce, Encrypt */
    wx_span_t fields[] = { S("spamtest"), S("1409735669"), S("1320562132"),
        S("hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+"
          "LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn"
          "896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVti"
          "cbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSV"
          "CZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdU"
          "ue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCum"
          "EPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=") };

    assert_int_equal(wx_signature_verify(fields, 4,
        S("5d197aaffba7e9b25a30732f161a50dee96bd5fa")), WX_OK);
}

static void
test_order_does_not_matter(void **state)
{
    (void) state;
    wx_span_t abc[] = { S("b"), S("a"), S("c") };
    wx_span_t cba[] = { S("c"), S("b"), S("a") };
    char x[WX_SIGNATURE_LEN], y[WX_SIGNATURE_LEN];

    assert_int_equal(wx_signature_compute(abc, 3, x), WX_OK);
    assert_int_equal(wx_signature_compute(cba, 3, y), WX_OK);
    /* sha1("abc"), the FIPS 180 example */
    assert_memory_equal(x, "a9993e364706816aba3e25717850c26c9cd0d89d",
                        WX_SIGNATURE_LEN);
    assert_memory_equal(x, y, WX_SIGNATURE_LEN);
}

static void
test_wrong_signatures(void **state)
{
    (void) state;
    wx_span_t fields[] = { S("wechatToken123"), S("1700000000"),
                           S("987654321") };

    /* one digit off, upper case, truncated, empty, too long */
    assert_int_equal(wx_signature_verify(fields, 3,
        S("4c19e2d426d8872b6142e3097b98bc169c99c490")), WX_ERR_SIGNATURE);
    assert_int_equal(wx_signature_verify(fields, 3,
        S("4C19E2D426D8872B6142E3097B98BC169C99C498")), WX_ERR_SIGNATURE);
    assert_int_equal(wx_signature_verify(fields, 3,
        S("4c19e2d426d8872b6142e3097b98bc169c99c49")), WX_ERR_SIGNATURE);
    assert_int_equal(wx_signature_verify(fields, 3, S("")), WX_ERR_SIGNATURE);
    assert_int_equal(wx_signature_verify(fields, 3,
        S("4c19e2d426d8872b6142e3097b98bc169c99c4980")), WX_ERR_SIGNATURE);
}

static void
test_equal_const_time(void **state)
{
    (void) state;

    assert_true(wx_equal_const_time(S("abc"), S("abc")));
    assert_false(wx_equal_const_time(S("abc"), S("abd")));
    assert_false(wx_equal_const_time(S("abc"), S("ab")));
    assert_true(wx_equal_const_time(S(""), S("")));
}

static void
test_sha256_hex(void **state)
{
    (void) state;
    char out[WX_SHA256_HEX_LEN];

    assert_int_equal(wx_sha256_hex(S("abc"), out), WX_OK);
    assert_memory_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a"
                        "9cb410ff61f20015ad", WX_SHA256_HEX_LEN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_signature),
        cmocka_unit_test(test_msg_signature_four_fields),
        cmocka_unit_test(test_official_msg_signature),
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_wrong_signatures),
        cmocka_unit_test(test_equal_const_time),
        cmocka_unit_test(test_sha256_hex),
    };

    return cmocka_run_group_tests_name("signature", tests, NULL, NULL);
}
