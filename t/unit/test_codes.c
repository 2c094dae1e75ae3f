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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_and_digits),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_uniform),
    };

    return cmocka_run_group_tests_name("codes", tests, NULL, NULL);
}
