#include "wx_test.h"

/* One argument, as wx_query_args finds it among others. */
static wx_status_t
arg(const char *query, const char *name, wx_span_t *out)
{
    const char  *names[] = { "other", name, "signature" };
    wx_span_t    values[3];
    wx_status_t  rc;

    rc = wx_query_args(S(query), names, 3, &test_allocator, values);
    *out = values[1];

    if (rc == WX_OK && values[1].data == NULL) {
        return WX_ERR_NOT_FOUND;
    }

    return rc;
}

static void
test_plain_arguments(void **state)
{
    (void) state;
    wx_span_t v;

    assert_int_equal(arg("signature=abc&timestamp=17&nonce=9", "timestamp",
                         &v), WX_OK);
    assert_span_equal(v, "17");
    assert_int_equal(arg("signature=abc&timestamp=17&nonce=9", "nonce", &v),
                     WX_OK);
    assert_span_equal(v, "9");
    assert_int_equal(arg("a=1&a=2", "a", &v), WX_OK);
    assert_span_equal(v, "1");
}

static void
test_form_decoding(void **state)
{
    (void) state;
    wx_span_t v;

    assert_int_equal(arg("echostr=hello+123%2B%25&x=1", "echostr", &v), WX_OK);
    assert_span_equal(v, "hello 123+%");
    assert_int_equal(arg("u=%E5%BC%A0%e4%b8%89", "u", &v), WX_OK);
    assert_span_equal(v, "张三");
    /* a stray or short escape stays as it is */
    assert_int_equal(arg("u=100%&v=%4", "u", &v), WX_OK);
    assert_span_equal(v, "100%");
    assert_int_equal(arg("u=100%&v=%4", "v", &v), WX_OK);
    assert_span_equal(v, "%4");
    assert_int_equal(arg("u=%zz", "u", &v), WX_OK);
    assert_span_equal(v, "%zz");
}

static void
test_missing_and_empty(void **state)
{
    (void) state;
    wx_span_t v;

    assert_int_equal(arg("timestamp=1", "nonce", &v), WX_ERR_NOT_FOUND);
    assert_int_equal(arg("", "nonce", &v), WX_ERR_NOT_FOUND);
    /* a longer or shorter name is another argument */
    assert_int_equal(arg("nonces=1&nonc=2", "nonce", &v), WX_ERR_NOT_FOUND);
    assert_int_equal(arg("nonce=&x=1", "nonce", &v), WX_OK);
    assert_int_equal(v.len, 0);
    assert_non_null(v.data);
    assert_int_equal(arg("x=1&nonce", "nonce", &v), WX_OK);
    assert_int_equal(v.len, 0);
    assert_int_equal(arg("&&nonce=5&", "nonce", &v), WX_OK);
    assert_span_equal(v, "5");
}

static void
test_one_pass(void **state)
{
    (void) state;
    const char  *names[] = { "signature", "timestamp", "nonce", "echostr" };
    wx_span_t    v[4];

    assert_int_equal(wx_query_args(S("nonce=9&signature=abc&timestamp=17"
                                     "&signature=zzz&nonce=8"),
                                   names, 4, &test_allocator, v), WX_OK);
    assert_span_equal(v[0], "abc");
    assert_span_equal(v[1], "17");
    assert_span_equal(v[2], "9");
    assert_null(v[3].data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plain_arguments, reset_arena),
        cmocka_unit_test_setup(test_form_decoding, reset_arena),
        cmocka_unit_test_setup(test_missing_and_empty, reset_arena),
        cmocka_unit_test_setup(test_one_pass, reset_arena),
    };

    return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
