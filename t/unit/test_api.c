#include <stdio.h>

#include "wx_test.h"

static void
test_error_answer(void **state)
{
    (void) state;
    int64_t code = 7;
    wx_span_t msg;

    assert_int_equal(wx_api_error(S("{\"errcode\":40001,\"errmsg\":"
                                    "\"invalid credential rid: 6\"}"),
                                  &test_allocator, &code, &msg), WX_OK);
    assert_int_equal(code, 40001);
    assert_span_equal(msg, "invalid credential rid: 6");
    assert_int_equal(msg.data[msg.len], '\0');

    assert_int_equal(wx_api_error(S("{\"errcode\":-1,\"errmsg\":\"busy\"}"),
                                  &test_allocator, &code, &msg), WX_OK);
    assert_int_equal(code, -1);
    assert_span_equal(msg, "busy");
}

static void
test_success_answers_have_no_error(void **state)
{
    (void) state;
    int64_t code = 7;
    wx_span_t msg;

    assert_int_equal(wx_api_error(S("{\"access_token\":\"T\","
                                    "\"expires_in\":7200}"),
                                  &test_allocator, &code, &msg), WX_OK);
    assert_int_equal(code, 0);
    assert_span_equal(msg, "");

    code = 7;
    assert_int_equal(wx_api_error(S("{\"errcode\":0,\"errmsg\":\"ok\"}"),
                                  &test_allocator, &code, &msg), WX_OK);
    assert_int_equal(code, 0);
    assert_span_equal(msg, "");
}

static void
test_errmsg_sanitised(void **state)
{
    (void) state;
    int64_t code;
    wx_span_t msg;
    char json[1024], expect[300];

    /* LF, BEL, NUL, DEL and U+0085 (a C1 control) each become '?' */
    assert_int_equal(wx_api_error(S("{\"errcode\":1,\"errmsg\":"
                                    "\"a\\nb\\u0007\\u0000\x7f\\u0085"
                                    "\xc2\xa0\xe9\x94\x99\"}"),
                                  &test_allocator, &code, &msg), WX_OK);
    assert_span_equal(msg, "a?b????\xc2\xa0\xe9\x94\x99");

    /* 300 ASCII bytes are cut to the cap */
    memset(expect, 'x', 300);
    snprintf(json, sizeof(json), "{\"errcode\":1,\"errmsg\":\"%.300s\"}",
             expect);
    assert_int_equal(wx_api_error(S(json), &test_allocator, &code, &msg),
                     WX_OK);
    assert_int_equal(msg.len, WX_API_ERRMSG_MAX);

    /* 100 three-byte characters: cut before a character is split */
    strcpy(json, "{\"errcode\":1,\"errmsg\":\"");
    for (int i = 0; i < 100; i++) {
        strcat(json, "\xe9\x94\x99");
    }
    strcat(json, "\"}");
    assert_int_equal(wx_api_error(S(json), &test_allocator, &code, &msg),
                     WX_OK);
    assert_int_equal(msg.len, 255);
    assert_memory_equal(msg.data + 252, "\xe9\x94\x99", 3);
}

static void
test_malformed_answers(void **state)
{
    (void) state;
    int64_t code;
    wx_span_t msg;
    static char big[WX_API_MAX_SIZE + 2];
    const char *bad[] = {
        "", "{", "[1]", "\"errcode\"", "{\"errcode\":\"40001\"}",
        "{\"errcode\":1.5}", "{\"errcode\":18446744073709551615}",
        "{\"errcode\":1,\"errmsg\":\"\xff\"}",
        "{\"errcode\":1,\"errmsg\":\"\\ud800\"}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(wx_api_error(S(bad[i]), &test_allocator, &code,
                                      &msg), WX_ERR_JSON);
    }

    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    assert_int_equal(wx_api_error(S(big), &test_allocator, &code, &msg),
                     WX_ERR_TOO_LARGE);

    /* a non-string errmsg is no message, not an error */
    assert_int_equal(wx_api_error(S("{\"errcode\":5,\"errmsg\":[1]}"),
                                  &test_allocator, &code, &msg), WX_OK);
    assert_int_equal(code, 5);
    assert_span_equal(msg, "");
}

static void
test_token(void **state)
{
    (void) state;
    wx_span_t token;
    int64_t expires = 0;

    assert_int_equal(wx_api_token(S("{\"access_token\":\"ACCESS_TOKEN-1_x\","
                                    "\"expires_in\":7200}"),
                                  &test_allocator, &token, &expires), WX_OK);
    assert_span_equal(token, "ACCESS_TOKEN-1_x");
    assert_int_equal(token.data[token.len], '\0');
    assert_int_equal(expires, 7200);

    assert_int_equal(wx_api_token(S("{\"errcode\":40013,\"errmsg\":"
                                    "\"invalid appid\"}"),
                                  &test_allocator, &token, &expires),
                     WX_ERR_API);
}

static void
test_token_refused(void **state)
{
    (void) state;
    wx_span_t token;
    int64_t expires;
    char json[1024], value[600];
    const char *bad[] = {
        "{\"expires_in\":7200}",
        "{\"access_token\":\"\",\"expires_in\":7200}",
        "{\"access_token\":\"a b\",\"expires_in\":7200}",
        "{\"access_token\":\"a\\nb\",\"expires_in\":7200}",
        "{\"access_token\":\"\xe9\x94\x99\",\"expires_in\":7200}",
        "{\"access_token\":7,\"expires_in\":7200}",
        "{\"access_token\":\"T\"}",
        "{\"access_token\":\"T\",\"expires_in\":0}",
        "{\"access_token\":\"T\",\"expires_in\":-5}",
        "{\"access_token\":\"T\",\"expires_in\":\"7200\"}",
        "{\"access_token\":\"T\",\"expires_in\":7200.5}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(wx_api_token(S(bad[i]), &test_allocator, &token,
                                      &expires), WX_ERR_JSON);
    }

    memset(value, 'T', sizeof(value));
    snprintf(json, sizeof(json),
             "{\"access_token\":\"%.512s\",\"expires_in\":1}", value);
    assert_int_equal(wx_api_token(S(json), &test_allocator, &token,
                                  &expires), WX_OK);
    assert_int_equal(token.len, WX_API_TOKEN_MAX);
    snprintf(json, sizeof(json),
             "{\"access_token\":\"%.513s\",\"expires_in\":1}", value);
    assert_int_equal(wx_api_token(S(json), &test_allocator, &token,
                                  &expires), WX_ERR_JSON);
}

static void
test_qrcode(void **state)
{
    (void) state;
    wx_span_t ticket, url;
    int64_t expires = -1;

    assert_int_equal(wx_api_qrcode(S("{\"ticket\":\"gQH47joAAAAAAAAAASxodHRw"
                                     "Oi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNz"
                                     "JXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==\","
                                     "\"expire_seconds\":60,\"url\":"
                                     "\"http://weixin.qq.com/q/kZgfwMTm72W"
                                     "WPkovabbI\"}"),
                                   &test_allocator, &ticket, &url, &expires),
                     WX_OK);
    assert_span_equal(ticket, "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNv"
                              "bS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwME"
                              "mm3sUw==");
    assert_span_equal(url, "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI");
    assert_int_equal(expires, 60);

    /* a permanent code has no expire_seconds */
    assert_int_equal(wx_api_qrcode(S("{\"ticket\":\"T\",\"url\":"
                                     "\"https://weixin.qq.com/q/X\"}"),
                                   &test_allocator, &ticket, &url, &expires),
                     WX_OK);
    assert_int_equal(expires, 0);

    assert_int_equal(wx_api_qrcode(S("{\"errcode\":40001,\"errmsg\":\"x\"}"),
                                   &test_allocator, &ticket, &url, &expires),
                     WX_ERR_API);
}

static void
test_qrcode_refused(void **state)
{
    (void) state;
    wx_span_t ticket, url;
    int64_t expires;
    const char *bad[] = {
        "{\"url\":\"http://weixin.qq.com/q/X\"}",
        "{\"ticket\":\"T\"}",
        "{\"ticket\":\"T\",\"url\":\"ftp://weixin.qq.com/q/X\"}",
        "{\"ticket\":\"T\",\"url\":\"javascript:alert(1)\"}",
        "{\"ticket\":\"T\",\"url\":\"HTTP://weixin.qq.com/q/X\"}",
        "{\"ticket\":\"T\",\"url\":\"http://weixin.qq.com/q/ X\"}",
        "{\"ticket\":\"T T\",\"url\":\"http://weixin.qq.com/q/X\"}",
        "{\"ticket\":\"T\",\"url\":\"http://w/X\",\"expire_seconds\":0}",
        "{\"ticket\":\"T\",\"url\":\"http://w/X\",\"expire_seconds\":\"1\"}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(wx_api_qrcode(S(bad[i]), &test_allocator, &ticket,
                                       &url, &expires), WX_ERR_JSON);
    }
}

static void
test_qrcode_request(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(wx_api_qrcode_request(S("wxs_1\"x"), 300,
                                           &test_allocator, &out), WX_OK);
    assert_span_equal(out, "{\"expire_seconds\":300,\"action_name\":"
                           "\"QR_STR_SCENE\",\"action_info\":{\"scene\":"
                           "{\"scene_str\":\"wxs_1\\\"x\"}}}");

    assert_int_equal(wx_api_qrcode_request(S(""), 300, &test_allocator,
                                           &out), WX_ERR_ARGS);
    assert_int_equal(wx_api_qrcode_request(
                         S("0123456789012345678901234567890123456789"
                           "01234567890123456789012345"), 300,
                         &test_allocator, &out), WX_ERR_ARGS);
    assert_int_equal(wx_api_qrcode_request(S("s"), 0, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_api_qrcode_request(S("s"), 2592001, &test_allocator,
                                           &out), WX_ERR_ARGS);
    assert_int_equal(wx_api_qrcode_request(S("s"), 2592000, &test_allocator,
                                           &out), WX_OK);
}

static void
test_stable_token_request(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(wx_api_stable_token_request(S("wx1234"), S("SECRET"), 0,
                                                 &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, "{\"grant_type\":\"client_credential\","
                           "\"appid\":\"wx1234\",\"secret\":\"SECRET\","
                           "\"force_refresh\":false}");
    assert_int_equal(wx_api_stable_token_request(S("wx1234"), S("SECRET"), 2,
                                                 &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, "{\"grant_type\":\"client_credential\","
                           "\"appid\":\"wx1234\",\"secret\":\"SECRET\","
                           "\"force_refresh\":true}");
    assert_int_equal(wx_api_stable_token_request(S(""), S("SECRET"), 0,
                                                 &test_allocator, &out),
                     WX_ERR_ARGS);
}

static void
test_template_request(void **state)
{
    (void) state;
    wx_span_t out;
    wx_template_field_t data[] = {
        { S("code"), S("123456") },
        { S("note"), S("10 分钟内有效") },
    };

    assert_int_equal(wx_api_template_request(S("OPENID"), S("TPL"),
                                             S("https://example.com/a?b=1"),
                                             data, 2, &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, "{\"touser\":\"OPENID\",\"template_id\":\"TPL\","
                           "\"url\":\"https://example.com/a?b=1\",\"data\":"
                           "{\"code\":{\"value\":\"123456\"},\"note\":"
                           "{\"value\":\"10 分钟内有效\"}}}");

    /* no url, and invalid UTF-8 replaced */
    data[0].value = S("1\xff");
    assert_int_equal(wx_api_template_request(S("OPENID"), S("TPL"), S(""),
                                             data, 1, &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, "{\"touser\":\"OPENID\",\"template_id\":\"TPL\","
                           "\"data\":{\"code\":{\"value\":"
                           "\"1\xef\xbf\xbd\"}}}");

    data[0].name = S("");
    assert_int_equal(wx_api_template_request(S("OPENID"), S("TPL"), S(""),
                                             data, 1, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_api_template_request(S(""), S("TPL"), S(""), NULL, 0,
                                             &test_allocator, &out),
                     WX_ERR_ARGS);
}

static void
test_custom_text_request(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(wx_api_custom_text_request(S("OPENID"),
                                                S("验证码 123456\n</x>"),
                                                &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, "{\"touser\":\"OPENID\",\"msgtype\":\"text\","
                           "\"text\":{\"content\":\"验证码 123456\\n</x>\"}}");
    assert_int_equal(wx_api_custom_text_request(S("OPENID"), S(""),
                                                &test_allocator, &out),
                     WX_ERR_ARGS);
}

static void
test_url_encode(void **state)
{
    (void) state;
    wx_span_t out;

    /* expected values from Python's urllib.parse.quote(s, safe='~') */
    assert_int_equal(wx_url_encode(S("a b+c/~_.-\xc3\xa9&=%"),
                                   &test_allocator, &out), WX_OK);
    assert_span_equal(out, "a%20b%2Bc%2F~_.-%C3%A9%26%3D%25");
    assert_int_equal(wx_url_encode(S("gQH47joAAAAAAAAAASxo==\n"),
                                   &test_allocator, &out), WX_OK);
    assert_span_equal(out, "gQH47joAAAAAAAAAASxo%3D%3D%0A");
    assert_int_equal(wx_url_encode(S(""), &test_allocator, &out), WX_OK);
    assert_span_equal(out, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_error_answer, reset_arena),
        cmocka_unit_test_setup(test_success_answers_have_no_error,
                               reset_arena),
        cmocka_unit_test_setup(test_errmsg_sanitised, reset_arena),
        cmocka_unit_test_setup(test_malformed_answers, reset_arena),
        cmocka_unit_test_setup(test_token, reset_arena),
        cmocka_unit_test_setup(test_token_refused, reset_arena),
        cmocka_unit_test_setup(test_qrcode, reset_arena),
        cmocka_unit_test_setup(test_qrcode_refused, reset_arena),
        cmocka_unit_test_setup(test_qrcode_request, reset_arena),
        cmocka_unit_test_setup(test_stable_token_request, reset_arena),
        cmocka_unit_test_setup(test_template_request, reset_arena),
        cmocka_unit_test_setup(test_custom_text_request, reset_arena),
        cmocka_unit_test_setup(test_url_encode, reset_arena),
    };

    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
