#include "wx_test.h"

/*
 * wx.config's signature against WeChat's published example (the JS-SDK
 * document's appendix 1), and the pages the site agrees to sign.
 */

#define EXAMPLE_TICKET                                                       \
    "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-"      \
    "HhTdfl2fzFy1AOcHKP7qg"
#define EXAMPLE_SIGNATURE  "0f9de62fce790f9a083d5c99e95740ceb90c27ed"

static void
test_wechat_example(void **state)
{
    (void) state;
    char out[WX_SIGNATURE_LEN];

    assert_int_equal(wx_jssdk_sign(S(EXAMPLE_TICKET), S("Wm3WZYTPz0wzccnW"),
                                   1414587457,
                                   S("http://mp.weixin.qq.com?params=value"),
                                   out),
                     WX_OK);
    assert_memory_equal(out, EXAMPLE_SIGNATURE, WX_SIGNATURE_LEN);
}

static void
test_fragment_is_not_signed(void **state)
{
    (void) state;
    char out[WX_SIGNATURE_LEN];

    assert_int_equal(wx_jssdk_sign(S(EXAMPLE_TICKET), S("Wm3WZYTPz0wzccnW"),
                                   1414587457,
                                   S("http://mp.weixin.qq.com?params=value"
                                     "#wechat_redirect"),
                                   out),
                     WX_OK);
    assert_memory_equal(out, EXAMPLE_SIGNATURE, WX_SIGNATURE_LEN);
}

static void
test_sign_refuses_empty(void **state)
{
    (void) state;
    char out[WX_SIGNATURE_LEN];

    assert_int_equal(wx_jssdk_sign(S(""), S("n"), 1, S("http://a/"), out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_jssdk_sign(S("t"), S(""), 1, S("http://a/"), out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_jssdk_sign(S("t"), S("n"), 1, S(""), out),
                     WX_ERR_ARGS);
}

#define HOST(s)  { (const unsigned char *) (s), sizeof(s) - 1 }

static const wx_span_t  hosts[] = { HOST("www.example.com"),
                                    HOST("m.example.com:8443") };

static void
test_own_pages(void **state)
{
    (void) state;
    wx_span_t page;

    assert_int_equal(wx_jssdk_page(S("https://www.example.com/share?id=1"
                                     "#top"), hosts, 2, &page), WX_OK);
    assert_int_equal(page.len, sizeof("https://www.example.com/share?id=1")
                               - 1);
    assert_memory_equal(page.data, "https://www.example.com/share?id=1",
                        page.len);

    /* hosts without case, any port for an entry without one */
    assert_int_equal(wx_jssdk_page(S("http://WWW.Example.COM:8080"), hosts,
                                   2, &page), WX_OK);
    assert_int_equal(wx_jssdk_page(S("https://m.example.com:8443/a"), hosts,
                                   2, &page), WX_OK);
    assert_int_equal(wx_jssdk_page(S("https://www.example.com?x#y"), hosts,
                                   2, &page), WX_OK);
    assert_int_equal(page.len, sizeof("https://www.example.com?x") - 1);
}

static void
test_foreign_pages(void **state)
{
    (void) state;
    size_t     i;
    wx_span_t  page;

    static const char *const  foreign[] = {
        "https://evil.example.net/",
        "https://www.example.com.evil.net/",
        "https://example.com/",
        "https://m.example.com/",               /* another port than 8443 */
        "https://m.example.com:443/",
    };

    for (i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        assert_int_equal(wx_jssdk_page(S(foreign[i]), hosts, 2, &page),
                         WX_ERR_NOT_FOUND);
    }
}

static void
test_malformed_pages(void **state)
{
    (void) state;
    size_t     i;
    wx_span_t  page;

    static const char *const  malformed[] = {
        "",
        "www.example.com/share",
        "//www.example.com/share",
        "javascript:alert(1)//www.example.com",
        "ftp://www.example.com/",
        "HTTPS://www.example.com/",
        "https://user@www.example.com/",
        "https://www.example.com@evil.net/",
        "https://evil.net\\@www.example.com/",
        "https://www.example.com\\.evil.net/",
        "https://www.example.com:/",
        "https://www.example.com:123456/",
        "https://www.example.com:80x/",
        "https:///share",
        "https://www.example.com/a b",
        "https://www.example.com/\r\nSet-Cookie:x",
        "https://www.example.com/\x7f",
        "https://www.example.com/\xc3\xa9",
    };

    for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        assert_int_equal(wx_jssdk_page(S(malformed[i]), hosts, 2, &page),
                         WX_ERR_ARGS);
    }

    /* a NUL inside */
    assert_int_equal(wx_jssdk_page((wx_span_t) {
                         (const unsigned char *) "https://www.example.com/\0",
                         sizeof("https://www.example.com/\0") - 1 },
                         hosts, 2, &page),
                     WX_ERR_ARGS);
}

static void
test_long_pages(void **state)
{
    (void) state;
    wx_span_t  page;
    static char  url[WX_JSSDK_URL_MAX + 2];
    size_t       prefix = sizeof("https://www.example.com/") - 1;

    memcpy(url, "https://www.example.com/", prefix);
    memset(url + prefix, 'a', WX_JSSDK_URL_MAX - prefix);

    assert_int_equal(wx_jssdk_page((wx_span_t) { (unsigned char *) url,
                                                 WX_JSSDK_URL_MAX },
                                   hosts, 2, &page), WX_OK);
    url[WX_JSSDK_URL_MAX] = 'a';
    assert_int_equal(wx_jssdk_page((wx_span_t) { (unsigned char *) url,
                                                 WX_JSSDK_URL_MAX + 1 },
                                   hosts, 2, &page), WX_ERR_ARGS);
}

static void
test_getticket_answer(void **state)
{
    (void) state;
    int64_t    expires_in;
    wx_span_t  ticket;

    assert_int_equal(wx_api_jsapi_ticket(S("{\"errcode\":0,\"errmsg\":\"ok\","
        "\"ticket\":\"" EXAMPLE_TICKET "\",\"expires_in\":7200}"),
        &test_allocator, &ticket, &expires_in), WX_OK);
    assert_int_equal(ticket.len, sizeof(EXAMPLE_TICKET) - 1);
    assert_memory_equal(ticket.data, EXAMPLE_TICKET, ticket.len);
    assert_int_equal(expires_in, 7200);

    assert_int_equal(wx_api_jsapi_ticket(S("{\"errcode\":40001,\"errmsg\":"
        "\"invalid credential\"}"), &test_allocator, &ticket, &expires_in),
        WX_ERR_API);
    assert_int_equal(wx_api_jsapi_ticket(S("{\"errcode\":0,\"ticket\":"
        "\"a b\",\"expires_in\":7200}"), &test_allocator, &ticket,
        &expires_in), WX_ERR_JSON);
    assert_int_equal(wx_api_jsapi_ticket(S("{\"errcode\":0,\"ticket\":"
        "\"abc\"}"), &test_allocator, &ticket, &expires_in), WX_ERR_JSON);
    assert_int_equal(wx_api_jsapi_ticket(S("{\"access_token\":\"abc\","
        "\"expires_in\":7200}"), &test_allocator, &ticket, &expires_in),
        WX_ERR_JSON);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wechat_example),
        cmocka_unit_test(test_fragment_is_not_signed),
        cmocka_unit_test(test_sign_refuses_empty),
        cmocka_unit_test(test_own_pages),
        cmocka_unit_test(test_foreign_pages),
        cmocka_unit_test(test_malformed_pages),
        cmocka_unit_test(test_long_pages),
        cmocka_unit_test(test_getticket_answer),
    };

    return cmocka_run_group_tests_name("jssdk", tests, NULL, NULL);
}
