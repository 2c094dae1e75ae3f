#define _GNU_SOURCE
#include "wx_test.h"

static void
test_plain_reply(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(wx_reply_text(S("OPENID"), S("gh_account"), 1700000001,
                                   S("绑定成功"), &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out,
        "<xml><ToUserName><![CDATA[OPENID]]></ToUserName>"
        "<FromUserName><![CDATA[gh_account]]></FromUserName>"
        "<CreateTime>1700000001</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[绑定成功]]></Content></xml>");
}

static void
test_cdata_terminator_is_split(void **state)
{
    (void) state;
    wx_span_t out;
    wx_event_t ev;

    assert_int_equal(wx_reply_text(S("o"), S("g"), 1, S("a]]>b]]>"),
                                   &test_allocator, &out), WX_OK);
    assert_non_null(memmem(out.data, out.len,
        "<Content><![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]></Content>",
        62));

    /* and it reads back as the original text */
    assert_int_equal(wx_event_parse(out, &test_allocator, &ev), WX_OK);
    assert_span_equal(ev.content, "a]]>b]]>");
    assert_span_equal(ev.to_user, "o");
}

static void
test_create_time_in_seconds(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(wx_reply_text(S("o"), S("g"), 1700000000, S("x"),
                                   &test_allocator, &out), WX_OK);
    assert_non_null(memmem(out.data, out.len,
                           "<CreateTime>1700000000</CreateTime>", 35));
}

static void
test_encrypted_reply(void **state)
{
    (void) state;
    wx_span_t out;

    /*
     * MsgSignature from Python:
     * sha1(''.join(sorted(['tok','1700000002','nonce1','QUJD']))).hexdigest()
     */
    assert_int_equal(wx_encrypted_reply(S("tok"), S("QUJD"), 1700000002,
                                        S("nonce1"), &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out,
        "<xml><Encrypt><![CDATA[QUJD]]></Encrypt>"
        "<MsgSignature><![CDATA[78a4533c2fc831b6cbc0112beefa83c09194ec94]]>"
        "</MsgSignature><TimeStamp>1700000002</TimeStamp>"
        "<Nonce><![CDATA[nonce1]]></Nonce></xml>");
}

static void
test_expand(void **state)
{
    (void) state;
    wx_span_t out;
    static const char *const names[] = { "code", "minutes" };
    wx_span_t values[] = { S("123456"), S("5") };

    assert_int_equal(wx_text_expand(S("验证码 {code}，{minutes} 分钟内有效 "
                                      "{codes} {link} {code"),
                                    names, values, 2, &test_allocator, &out),
                     WX_OK);
    assert_span_equal(out, "验证码 123456，5 分钟内有效 {codes} {link} {code");

    assert_int_equal(wx_text_expand(S(""), names, values, 2, &test_allocator,
                                    &out), WX_OK);
    assert_int_equal(out.len, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plain_reply, reset_arena),
        cmocka_unit_test_setup(test_cdata_terminator_is_split, reset_arena),
        cmocka_unit_test_setup(test_create_time_in_seconds, reset_arena),
        cmocka_unit_test_setup(test_encrypted_reply, reset_arena),
        cmocka_unit_test_setup(test_expand, reset_arena),
    };

    return cmocka_run_group_tests_name("reply", tests, NULL, NULL);
}
