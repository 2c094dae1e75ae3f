#include "wx_test.h"

static void
test_length_and_digits(void **state)
{
    (void) state;
    char out[WX_DIGITS_MAX + 1];

    for (size_t n = 1; n <= WX_DIGITS_MAX; n++) {
        memset(out, 'z', sizeof(out));
        assert_int_equal(wx_random_digits(out, n), WX_OK);
        for (size_t i = 0; i < n; i++) {
            assert_in_range(out[i], '0', '9');
        }
        assert_int_equal(out[n], 'z');
    }
}

static void
test_bad_lengths(void **state)
{
    (void) state;
    char out[WX_DIGITS_MAX + 1];

    assert_int_equal(wx_random_digits(out, 0), WX_ERR_ARGS);
    assert_int_equal(wx_random_digits(out, WX_DIGITS_MAX + 1), WX_ERR_ARGS);
    assert_int_equal(wx_random_digits(NULL, 6), WX_ERR_ARGS);
}

/*
 * 120,000 digits: chi-square over the ten values with 9 degrees of
 * freedom.  A modulo bias of 256 % 10 would put 0..5 at 26/256 against
 * 25/256 for 6..9, a statistic near 180; fair digits stay under 40 with
 * probability 1 - 5e-6.  Every position of a code is checked the same way.
 */
static void
test_uniform(void **state)
{
    (void) state;
    enum { rounds = 10000, len = 12 };
    unsigned counts[len][10];
    unsigned total[10] = { 0 };
    char out[len];

    memset(counts, 0, sizeof(counts));
    for (int r = 0; r < rounds; r++) {
        assert_int_equal(wx_random_digits(out, len), WX_OK);
        for (int i = 0; i < len; i++) {
            counts[i][out[i] - '0']++;
            total[out[i] - '0']++;
        }
    }

    double expect = rounds * len / 10.0, chi2 = 0;
    for (int d = 0; d < 10; d++) {
        chi2 += (total[d] - expect) * (total[d] - expect) / expect;
    }
    assert_true(chi2 < 40.0);

    /* each position alone: 1000 expected per digit */
    for (int i = 0; i < len; i++) {
        for (int d = 0; d < 10; d++) {
            assert_in_range(counts[i][d], 800, 1200);
        }
    }
}

/* expected values from Python's hashlib over the length-prefixed fields */
static void
test_login_code_and_hash(void **state)
{
    (void) state;
    char code[WX_LOGIN_CODE_LEN], hash[WX_SHA256_HEX_LEN];

    assert_int_equal(wx_login_code(S("wxs_abababababababababababababababab"),
                                   S("t0ken"), code), WX_OK);
    assert_memory_equal(code, "4c70dc6f5f34e078ee7ead4c9199f611",
                        WX_LOGIN_CODE_LEN);
    assert_int_equal(wx_login_code(S(""), S("t0ken"), code), WX_ERR_ARGS);

    assert_int_equal(wx_code_hash(S("code"),
                                  S("wxs_abababababababababababababababab"),
                                  S("123456"), hash), WX_OK);
    assert_memory_equal(hash, "ffbb3f9de6d5760084372cca69f78119564ee249"
                        "36bbba39f251dce24461b1f8", WX_SHA256_HEX_LEN);
    assert_int_equal(wx_code_hash(S("code"), S("s"), S(""), hash),
                     WX_ERR_ARGS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_and_digits),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_login_code_and_hash),
    };

    return cmocka_run_group_tests_name("codes", tests, NULL, NULL);
}
