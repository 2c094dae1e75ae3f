#include "wx_test.h"

static void
test_object(void **state)
{
    (void) state;
    wx_json_field_t f[] = {
        { "scene", WX_JSON_STRING, S("wxs_1"), 0 },
        { "token", WX_JSON_STRING, S("t\"\\\n<"), 0 },
        { "expire_seconds", WX_JSON_INTEGER, S(""), 300 },
    };
    wx_span_t out;

    assert_int_equal(wx_json_object(f, 3, &test_allocator, &out), WX_OK);
    assert_span_equal(out, "{\"scene\":\"wxs_1\",\"token\":\"t\\\"\\\\\\n<\","
                           "\"expire_seconds\":300}");
}

static void
test_utf8_and_invalid_bytes(void **state)
{
    (void) state;
    wx_json_field_t ok[] = { { "user", WX_JSON_STRING, S("张三"), 0 } };
    wx_json_field_t bad[] = { { "user", WX_JSON_STRING, S("a\xff"), 0 } };
    wx_span_t out;

    assert_int_equal(wx_json_object(ok, 1, &test_allocator, &out), WX_OK);
    assert_span_equal(out, "{\"user\":\"张三\"}");
    assert_int_equal(wx_json_object(bad, 1, &test_allocator, &out), WX_OK);
    assert_span_equal(out, "{\"user\":\"a\xef\xbf\xbd\"}");
}

static void
test_null(void **state)
{
    (void) state;
    wx_json_field_t f[] = {
        { "user", WX_JSON_STRING_OR_NULL, { NULL, 0 }, 0 },
        { "openid", WX_JSON_STRING_OR_NULL, S("oAB"), 0 },
    };
    wx_span_t out;

    assert_int_equal(wx_json_object(f, 2, &test_allocator, &out), WX_OK);
    assert_span_equal(out, "{\"user\":null,\"openid\":\"oAB\"}");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_object, reset_arena),
        cmocka_unit_test_setup(test_utf8_and_invalid_bytes, reset_arena),
        cmocka_unit_test_setup(test_null, reset_arena),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
