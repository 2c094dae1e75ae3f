#include "wx_test.h"

/* A line as wx_import_line reads it, into a scratch buffer of its size. */
static unsigned char  scratch[256];

static wx_status_t
line(const char *text, wx_import_line_t *out)
{
    memset(scratch, 0xee, sizeof(scratch));
    return wx_import_line(S(text), scratch, out);
}

static void
test_csv(void **state)
{
    (void) state;
    wx_import_line_t l;

    assert_int_equal(line("alice,oAlice1", &l), WX_OK);
    assert_span_equal(l.user, "alice");
    assert_span_equal(l.openid, "oAlice1");
    assert_null(l.unionid.data);
    assert_int_equal(l.header, 0);

    assert_int_equal(line("bob,oBob,uBob\r", &l), WX_OK);
    assert_span_equal(l.user, "bob");
    assert_span_equal(l.openid, "oBob");
    assert_span_equal(l.unionid, "uBob");

    /* quoted fields: ',' and "" inside, empty */
    assert_int_equal(line("\"a,\"\"b\"\"\",o1,\"\"", &l), WX_OK);
    assert_span_equal(l.user, "a,\"b\"");
    assert_span_equal(l.openid, "o1");
    assert_non_null(l.unionid.data);
    assert_int_equal(l.unionid.len, 0);

    /* bytes are bytes: UTF-8 names, spaces kept */
    assert_int_equal(line("张三 ,o2", &l), WX_OK);
    assert_span_equal(l.user, "张三 ");

    assert_int_equal(line("user,openid", &l), WX_OK);
    assert_int_equal(l.header, 1);
    assert_int_equal(line("user,openid,unionid", &l), WX_OK);
    assert_int_equal(l.header, 1);
    assert_int_equal(line("user,openid,x", &l), WX_OK);
    assert_int_equal(l.header, 0);
}

static void
test_csv_refused(void **state)
{
    (void) state;
    wx_import_line_t l;

    assert_int_equal(line("alone", &l), WX_ERR_ARGS);
    assert_string_equal(l.reason, "not 2 or 3 fields");
    assert_int_equal(line("", &l), WX_ERR_ARGS);
    assert_int_equal(line("a,b,c,d", &l), WX_ERR_ARGS);
    assert_string_equal(l.reason, "more than 3 fields");
    assert_int_equal(line("\"a,b", &l), WX_ERR_ARGS);
    assert_string_equal(l.reason, "an unterminated quoted field");
    assert_int_equal(line("\"a\"x,b", &l), WX_ERR_ARGS);
    assert_string_equal(l.reason, "more after a quoted field");
    assert_int_equal(line("a\"b,c", &l), WX_ERR_ARGS);
    assert_string_equal(l.reason, "a quote inside an unquoted field");
}

static void
test_json(void **state)
{
    (void) state;
    wx_import_line_t l;

    assert_int_equal(line("{\"user\":\"alice\",\"openid\":\"oA\"}", &l),
                     WX_OK);
    assert_span_equal(l.user, "alice");
    assert_span_equal(l.openid, "oA");
    assert_null(l.unionid.data);

    /* escapes decoded to UTF-8 (a surrogate pair too), other keys let be */
    assert_int_equal(line("{ \"openid\" : \"o\\/1\", \"user\": "
                          "\"\\u5f20\\ud83d\\ude00\", \"x\": [1, {\"y\": 2}],"
                          " \"unionid\": null }\r", &l), WX_OK);
    assert_span_equal(l.user, "张😀");
    assert_span_equal(l.openid, "o/1");
    assert_null(l.unionid.data);

    /* a numeric user id */
    assert_int_equal(line("{\"user\":-42,\"openid\":\"o3\"}", &l), WX_OK);
    assert_span_equal(l.user, "-42");

    /* absent: the caller says what is missing */
    assert_int_equal(line("{\"user\":\"u\"}", &l), WX_OK);
    assert_null(l.openid.data);
    assert_int_equal(line("{}", &l), WX_OK);
    assert_null(l.user.data);

    /* a control character, escaped, is the caller's to refuse */
    assert_int_equal(line("{\"user\":\"a\\u0001\",\"openid\":\"o\"}", &l),
                     WX_OK);
    assert_int_equal(l.user.len, 2);
    assert_int_equal(l.user.data[1], 1);
}

static void
test_json_refused(void **state)
{
    (void) state;
    wx_import_line_t l;

    assert_int_equal(line("{\"user\":\"u\",\"openid\":\"o\"", &l),
                     WX_ERR_JSON);
    assert_string_equal(l.reason, "not a JSON object");
    assert_int_equal(line("{\"user\":\"u\"} x", &l), WX_ERR_JSON);
    assert_int_equal(line("{\"user\":\"\xff\",\"openid\":\"o\"}", &l),
                     WX_ERR_JSON);
    assert_int_equal(line("{\"user\":1.5,\"openid\":\"o\"}", &l),
                     WX_ERR_JSON);
    assert_string_equal(l.reason,
                        "a value that is not a string or an integer");
    assert_int_equal(line("{\"user\":true,\"openid\":\"o\"}", &l),
                     WX_ERR_JSON);
    assert_int_equal(line("{\"user\":[\"u\"],\"openid\":\"o\"}", &l),
                     WX_ERR_JSON);
    assert_int_equal(line("{\"user\":\"\\ud83d\",\"openid\":\"o\"}", &l),
                     WX_ERR_JSON);
}

static void
test_limits(void **state)
{
    (void) state;
    wx_import_line_t  l;
    static char       big[WX_IMPORT_LINE_MAX + 2];

    memset(big, 'a', sizeof(big) - 1);
    big[1] = ',';
    assert_int_equal(wx_import_line(S(big), scratch, &l), WX_ERR_TOO_LARGE);
    assert_string_equal(l.reason, "the line is too long");

    /* never more than the line's own length written */
    assert_int_equal(line("{\"user\":\"\\u00e9\\u00e9\",\"openid\":\"o\"}",
                          &l), WX_OK);
    assert_int_equal(scratch[l.user.len + l.openid.len], 0xee);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_csv, reset_arena),
        cmocka_unit_test_setup(test_csv_refused, reset_arena),
        cmocka_unit_test_setup(test_json, reset_arena),
        cmocka_unit_test_setup(test_json_refused, reset_arena),
        cmocka_unit_test_setup(test_limits, reset_arena),
    };

    return cmocka_run_group_tests_name("import_line", tests, NULL, NULL);
}
