#include <stdio.h>

#include <libxml/parser.h>

#include "wx_test.h"

/* The subscribe sample of ../shared/wechat-protocol.md, verbatim. */
static const char subscribe_xml[] =
    "<xml>\n"
    "<ToUserName><![CDATA[gh_account]]></ToUserName>\n"
    "<FromUserName><![CDATA[OPENID]]></FromUserName>\n"
    "<CreateTime>1700000000</CreateTime>\n"
    "<MsgType><![CDATA[event]]></MsgType>\n"
    "<Event><![CDATA[subscribe]]></Event>\n"
    "<EventKey><![CDATA[qrscene_SCENE]]></EventKey>\n"
    "<Ticket><![CDATA[TICKET]]></Ticket>\n"
    "</xml>\n";

static wx_status_t
parse(const char *xml, size_t len, wx_event_t *ev)
{
    wx_span_t doc = { (const unsigned char *) xml, len };
    return wx_event_parse(doc, &test_allocator, ev);
}

static wx_status_t
parse_str(const char *xml)
{
    wx_event_t ev;
    return parse(xml, strlen(xml), &ev);
}

static void
test_option_mask(void **state)
{
    (void) state;
    int opts = wx_xml_parser_options();

    assert_int_equal(opts, XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC);
    assert_int_equal(opts & (XML_PARSE_NOENT | XML_PARSE_DTDLOAD
                             | XML_PARSE_DTDATTR | XML_PARSE_DTDVALID
                             | XML_PARSE_XINCLUDE | XML_PARSE_HUGE), 0);
}

static void
test_subscribe_sample(void **state)
{
    (void) state;
    wx_event_t ev;

    assert_int_equal(parse(subscribe_xml, strlen(subscribe_xml), &ev), WX_OK);
    assert_span_equal(ev.to_user, "gh_account");
    assert_span_equal(ev.from_user, "OPENID");
    assert_span_equal(ev.create_time, "1700000000");
    assert_span_equal(ev.msg_type, "event");
    assert_span_equal(ev.event, "subscribe");
    assert_span_equal(ev.event_key, "qrscene_SCENE");
    assert_span_equal(ev.ticket, "TICKET");
    assert_span_equal(ev.msg_id, "");
    assert_span_equal(ev.content, "");
}

static void
test_text_message(void **state)
{
    (void) state;
    wx_event_t ev;
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<xml><ToUserName><![CDATA[gh_a]]></ToUserName>"
        "<FromUserName><![CDATA[o1]]></FromUserName>"
        "<CreateTime>1700000001</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[你好 <b>&amp;</b> ]]]]><![CDATA[>]]> &lt;x&gt;"
        "</Content><MsgId>1234567890123456</MsgId>"
        "<Unknown>ignored</Unknown></xml>";

    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
    assert_span_equal(ev.msg_type, "text");
    assert_span_equal(ev.content, "你好 <b>&amp;</b> ]]> <x>");
    assert_span_equal(ev.msg_id, "1234567890123456");
    assert_span_equal(ev.event, "");
}

static void
test_nested_event_allowed(void **state)
{
    (void) state;
    const char *xml =
        "<xml><MsgType>event</MsgType><Event>pic_sysphoto</Event>"
        "<SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum>abc"
        "</PicMd5Sum></item></PicList></SendPicsInfo></xml>";

    assert_int_equal(parse_str(xml), WX_OK);
}

static void
test_xxe_file(void **state)
{
    (void) state;
    assert_int_equal(parse_str(
        "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY x SYSTEM "
        "\"file:///etc/passwd\">]><xml><Content>&x;</Content></xml>"),
        WX_ERR_XML_HOSTILE);
}

static void
test_xxe_http(void **state)
{
    (void) state;
    assert_int_equal(parse_str(
        "<!DOCTYPE xml [<!ENTITY x SYSTEM \"http://127.0.0.1:1/x\">]>"
        "<xml><Content>&x;</Content></xml>"), WX_ERR_XML_HOSTILE);
    assert_int_equal(parse_str(
        "<!DOCTYPE xml SYSTEM \"http://127.0.0.1:1/x.dtd\">"
        "<xml><Content>a</Content></xml>"), WX_ERR_XML_HOSTILE);
}

static void
test_billion_laughs(void **state)
{
    (void) state;
    assert_int_equal(parse_str(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz ["
        "<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
        "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
        "]><xml><Content>&lol5;</Content></xml>"), WX_ERR_XML_HOSTILE);
}

static void
test_doctype_without_entities(void **state)
{
    (void) state;
    assert_int_equal(parse_str("<!DOCTYPE xml><xml><Event>SCAN</Event></xml>"),
                     WX_ERR_XML_HOSTILE);
}

static void
test_undeclared_entity(void **state)
{
    (void) state;
    assert_int_not_equal(parse_str("<xml><Content>&x;</Content></xml>"),
                         WX_OK);
}

static void
test_deep_nesting(void **state)
{
    (void) state;
    size_t depth = 10000;
    char *xml = malloc(depth * 3 + 16);
    char *p = xml;

    assert_non_null(xml);
    p += sprintf(p, "<xml>");
    for (size_t i = 0; i < depth; i++) {
        p += sprintf(p, "<a>");
    }
    /* only the openings: 30 kB, under the size cap, so depth must stop it */
    sprintf(p, "</xml>");

    wx_event_t ev;
    wx_status_t rc = parse(xml, strlen(xml), &ev);
    free(xml);

    assert_int_equal(rc, WX_ERR_XML_HOSTILE);

    /* the cap itself: depth 8 passes, 9 does not */
    assert_int_equal(parse_str("<xml><a><b><c><d><e><f><g>x</g></f></e></d>"
                               "</c></b></a></xml>"), WX_OK);
    assert_int_equal(parse_str("<xml><a><b><c><d><e><f><g><h>x</h></g></f>"
                               "</e></d></c></b></a></xml>"),
                     WX_ERR_XML_HOSTILE);
}

static void
test_megabyte_text_node(void **state)
{
    (void) state;
    size_t n = 1024 * 1024;
    char *xml = malloc(n + 64);

    assert_non_null(xml);
    strcpy(xml, "<xml><Content>");
    memset(xml + 14, 'a', n);
    strcpy(xml + 14 + n, "</Content></xml>");

    wx_event_t ev;
    wx_status_t rc = parse(xml, strlen(xml), &ev);
    free(xml);

    assert_int_equal(rc, WX_ERR_TOO_LARGE);
}

static void
test_truncated(void **state)
{
    (void) state;
    wx_event_t ev;

    assert_int_equal(parse(subscribe_xml, strlen(subscribe_xml) / 2, &ev),
                     WX_ERR_XML);
    assert_int_equal(parse_str(""), WX_ERR_XML);
    assert_int_equal(parse_str("<xml><Event>SCAN</Event>"), WX_ERR_XML);
    assert_int_equal(parse_str("not xml at all"), WX_ERR_XML);
}

static void
test_duplicate_event_key(void **state)
{
    (void) state;
    assert_int_equal(parse_str(
        "<xml><Event>SCAN</Event><EventKey>a</EventKey>"
        "<EventKey>b</EventKey></xml>"), WX_ERR_XML_DUPLICATE);
}

static void
test_other_encodings(void **state)
{
    (void) state;
    static const char utf16[] =
        "\xff\xfe<\0x\0m\0l\0>\0<\0/\0x\0m\0l\0>\0";
    wx_event_t ev;

    assert_int_equal(parse_str(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?><xml></xml>"),
        WX_ERR_XML_HOSTILE);
    assert_int_equal(parse_str(
        "<?xml version=\"1.0\" encoding=\"GBK\"?><xml><Content>\xc4\xe3"
        "</Content></xml>"), WX_ERR_XML_HOSTILE);
    assert_int_equal(parse(utf16, sizeof(utf16) - 1, &ev), WX_ERR_XML_HOSTILE);
    assert_int_equal(parse_str(
        "<?xml version='1.0' encoding='utf-8'?><xml></xml>"), WX_OK);
    /* invalid UTF-8 under the UTF-8 declaration */
    assert_int_equal(parse_str("<xml><Content>\xc4\xe3</Content></xml>"),
                     WX_ERR_XML);
}

static void
test_nul_byte(void **state)
{
    (void) state;
    static const char xml[] = "<xml><Content>a\0b</Content></xml>";
    wx_event_t ev;

    assert_int_equal(parse(xml, sizeof(xml) - 1, &ev), WX_ERR_XML_HOSTILE);
}

static void
test_wrong_root(void **state)
{
    (void) state;
    assert_int_equal(parse_str("<root><Event>SCAN</Event></root>"),
                     WX_ERR_XML);
}

/*
 * Near WeChat's flat shape, which is read without libxml2: the answer is
 * libxml2's in every case (t/fuzz/fuzz_event.cpp compares the two).
 */
static void
test_flat_shape_edges(void **state)
{
    (void) state;
    static const struct {
        const char   *xml;
        wx_status_t   status;
        const char   *content;
    } cases[] = {
        { "<xml><Content>a</Content></xml>\r\n \t", WX_OK, "a" },
        { "<xml>\r\n<Content>a\r\nb</Content></xml>", WX_OK, "a\nb" },
        { "<xml><Content><![CDATA[a\rb]]></Content></xml>", WX_OK, "a\nb" },
        { "<xml><Content><![CDATA[a]]>b</Content></xml>", WX_OK, "ab" },
        { "<xml><Content>a<![CDATA[b]]></Content></xml>", WX_OK, "ab" },
        { "<xml><Content>a>b</Content></xml>", WX_OK, "a>b" },
        { "<xml><Content>&#65;&lt;</Content></xml>", WX_OK, "A<" },
        { "<xml><Content/></xml>", WX_OK, "" },
        { "<xml><Content></Content ></xml>", WX_OK, "" },
        { "<xml ><Content>a</Content></xml>", WX_OK, "a" },
        { "<xml><Content>a]]>b</Content></xml>", WX_ERR_XML, NULL },
        { "<xml><Content>a</Contents></xml>", WX_ERR_XML, NULL },
        { "<xml><Content>a</Content></xml>b", WX_ERR_XML, NULL },
        { "<xml><Content>a</Content></xml><xml></xml>", WX_ERR_XML, NULL },
        { "<xml><Content>a</Content>", WX_ERR_XML, NULL },
        { "<xml><Content><![CDATA[a]></Content></xml>", WX_ERR_XML, NULL },
        { "<xml><Content>a</Content><Content>b</Content></xml>",
          WX_ERR_XML_DUPLICATE, NULL },
        { "<xml><Content>a\x01</Content></xml>", WX_ERR_XML, NULL },
        { "<xml><Event>a\tb</Event></xml>", WX_ERR_XML_FIELD, NULL },
    };
    wx_event_t ev;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wx_status_t rc = parse(cases[i].xml, strlen(cases[i].xml), &ev);

        if (rc != cases[i].status) {
            fail_msg("%s: %d, not %d", cases[i].xml, rc, cases[i].status);
        }

        if (cases[i].content) {
            assert_span_equal(ev.content, cases[i].content);
        }
    }
}

/* Each field that becomes a variable, a header or a key refuses controls. */
static void
test_control_characters_refused(void **state)
{
    (void) state;
    wx_event_t   ev;
    char         xml[256];
    size_t       i, j;

    static const char *const  names[] = {
        "ToUserName", "FromUserName", "MsgType", "Event", "EventKey",
        "Ticket", "Encrypt"
    };
    static const char *const  payloads[] = {
        "o1&#13;&#10;X-WeChat-User: admin",     /* references: CR LF */
        "<![CDATA[o1\r\nX-WeChat-User: admin]]>",  /* raw, in CDATA */
        "o1&#10;",
        "a&#9;b",
        "a&#127;b",
        "a&#0;b",
        "a&#27;[31mb"
    };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (j = 0; j < sizeof(payloads) / sizeof(payloads[0]); j++) {
            snprintf(xml, sizeof(xml), "<xml><%s>%s</%s></xml>", names[i],
                     payloads[j], names[i]);

            wx_status_t rc = parse(xml, strlen(xml), &ev);

            /* XML 1.0 has no reference to NUL or ESC: not well-formed */
            if (strstr(payloads[j], "&#0;") || strstr(payloads[j], "&#27;")) {
                assert_int_equal(rc, WX_ERR_XML);
                continue;
            }

            assert_int_equal(rc, WX_ERR_XML_FIELD);
            assert_string_equal(ev.refused, names[i]);
        }
    }
}

/* Free text keeps its line breaks and tabs, but no other control. */
static void
test_text_may_hold_newlines(void **state)
{
    (void) state;
    wx_event_t ev;
    const char *xml = "<xml><Content>line 1&#13;&#10;line\t2\n"
                      "</Content></xml>";

    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
    assert_span_equal(ev.content, "line 1\r\nline\t2\n");

    xml = "<xml><Content><![CDATA[bell\a]]></Content></xml>";
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_ERR_XML);
    xml = "<xml><Content>del&#127;</Content></xml>";
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
}

static void
test_digit_fields(void **state)
{
    (void) state;
    wx_event_t ev;

    assert_int_equal(parse_str("<xml><CreateTime>17000x</CreateTime></xml>"),
                     WX_ERR_XML_FIELD);
    assert_int_equal(parse_str("<xml><CreateTime> 1</CreateTime></xml>"),
                     WX_ERR_XML_FIELD);

    const char *xml = "<xml><MsgId>12-3</MsgId></xml>";
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_ERR_XML_FIELD);
    assert_string_equal(ev.refused, "MsgId");
}

static void
test_field_lengths(void **state)
{
    (void) state;
    wx_event_t ev;
    char xml[4096], value[2050];

    memset(value, 'a', 64);
    value[64] = '\0';
    snprintf(xml, sizeof(xml), "<xml><FromUserName>%s</FromUserName></xml>",
             value);
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);

    strcat(value, "a");
    snprintf(xml, sizeof(xml), "<xml><FromUserName>%s</FromUserName></xml>",
             value);
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_ERR_XML_FIELD);
    assert_string_equal(ev.refused, "FromUserName");

    /* a VIEW menu's key is a URL, and may be long */
    memset(value, 'u', 2049);
    value[2049] = '\0';
    snprintf(xml, sizeof(xml), "<xml><EventKey>%s</EventKey></xml>", value);
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_ERR_XML_FIELD);

    value[2048] = '\0';
    snprintf(xml, sizeof(xml), "<xml><EventKey>%s</EventKey></xml>", value);
    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
}

static void
check_message(const char *xml, wx_status_t expected, const char *refused)
{
    wx_event_t ev;

    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
    assert_int_equal(wx_event_check_message(&ev), expected);

    if (refused) {
        assert_string_equal(ev.refused, refused);
    }
}

static void
test_message_requires_fields(void **state)
{
    (void) state;

    check_message(subscribe_xml, WX_OK, NULL);

    /* a scan with no sender would bind the empty openid */
    check_message("<xml><ToUserName>gh_a</ToUserName>"
                  "<MsgType>event</MsgType><Event>SCAN</Event>"
                  "<EventKey>S</EventKey></xml>",
                  WX_ERR_XML_FIELD, "FromUserName");
    check_message("<xml><ToUserName>gh_a</ToUserName>"
                  "<FromUserName></FromUserName><MsgType>event</MsgType>"
                  "</xml>", WX_ERR_XML_FIELD, "FromUserName");
    check_message("<xml><FromUserName>o1</FromUserName>"
                  "<MsgType>event</MsgType></xml>",
                  WX_ERR_XML_FIELD, "ToUserName");
    check_message("<xml><ToUserName>gh_a</ToUserName>"
                  "<FromUserName>o1</FromUserName></xml>",
                  WX_ERR_XML_FIELD, "MsgType");

    /* the shape of an openid: URL-safe base64 letters */
    check_message("<xml><ToUserName>gh_a</ToUserName>"
                  "<FromUserName>o1 admin</FromUserName>"
                  "<MsgType>event</MsgType></xml>",
                  WX_ERR_XML_FIELD, "FromUserName");
    check_message("<xml><ToUserName>gh_a</ToUserName>"
                  "<FromUserName>o1:x</FromUserName>"
                  "<MsgType>event</MsgType></xml>",
                  WX_ERR_XML_FIELD, "FromUserName");
    check_message("<xml><ToUserName>gh_a</ToUserName>"
                  "<FromUserName>oDF3iY9P32sK_4Hvlc-R0QnqzwD8</FromUserName>"
                  "<MsgType>device_event</MsgType><Event>bind</Event>"
                  "</xml>", WX_OK, NULL);
}

/* Comments and processing instructions are no part of a push's fields. */
static void
test_comments_and_instructions(void **state)
{
    (void) state;
    wx_event_t ev;
    const char *xml = "<?xml version=\"1.0\"?><?pi data?><!-- c -->"
                      "<xml><?inner x?><FromUserName>o<!-- split -->1"
                      "</FromUserName></xml><!-- after -->";

    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
    assert_span_equal(ev.from_user, "o1");
}

/* An encrypted envelope carries only the account and Encrypt. */
static void
test_envelope_parses(void **state)
{
    (void) state;
    wx_event_t ev;
    const char *xml = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName>"
                      "<Encrypt><![CDATA[aGVsbG8=]]></Encrypt></xml>";

    assert_int_equal(parse(xml, strlen(xml), &ev), WX_OK);
    assert_span_equal(ev.encrypt, "aGVsbG8=");
    assert_int_equal(wx_event_check_message(&ev), WX_ERR_XML_FIELD);
}

/*
 * The parser context is reused: a document's result must not depend on
 * what came before.  Valid documents, each naming a new 32 KB element,
 * would fill libxml2's 10 MB dictionary of names in about 340 parses, and
 * every later document that needs a new name would then be refused.
 */
static void
test_no_state_between_documents(void **state)
{
    (void) state;
    static char doc[40000];
    static char name[32001];
    static const char push[] =
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType>"
        "<Content>\xe4\xbd\xa0\xe5\xa5\xbd</Content><MsgId>1</MsgId></xml>";
    wx_event_t ev;

    memset(name, 'a', sizeof(name) - 1);
    name[0] = 'N';

    for (int i = 0; i < 400; i++) {
        char digits[8];
        int  n;

        snprintf(digits, sizeof(digits), "%06d", i);
        memcpy(name + 1, digits, 6);

        n = snprintf(doc, sizeof(doc), "<xml><ToUserName>gh</ToUserName>"
                     "<MsgType>t</MsgType><%s/><x/></xml>", name);
        test_arena_used = 0;
        assert_int_equal(parse(doc, (size_t) n, &ev), WX_OK);
    }

    test_arena_used = 0;
    assert_int_equal(parse(push, sizeof(push) - 1, &ev), WX_OK);
    assert_span_equal(ev.content, "\xe4\xbd\xa0\xe5\xa5\xbd");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_option_mask, reset_arena),
        cmocka_unit_test_setup(test_subscribe_sample, reset_arena),
        cmocka_unit_test_setup(test_text_message, reset_arena),
        cmocka_unit_test_setup(test_nested_event_allowed, reset_arena),
        cmocka_unit_test_setup(test_xxe_file, reset_arena),
        cmocka_unit_test_setup(test_xxe_http, reset_arena),
        cmocka_unit_test_setup(test_billion_laughs, reset_arena),
        cmocka_unit_test_setup(test_doctype_without_entities, reset_arena),
        cmocka_unit_test_setup(test_undeclared_entity, reset_arena),
        cmocka_unit_test_setup(test_deep_nesting, reset_arena),
        cmocka_unit_test_setup(test_megabyte_text_node, reset_arena),
        cmocka_unit_test_setup(test_truncated, reset_arena),
        cmocka_unit_test_setup(test_duplicate_event_key, reset_arena),
        cmocka_unit_test_setup(test_other_encodings, reset_arena),
        cmocka_unit_test_setup(test_nul_byte, reset_arena),
        cmocka_unit_test_setup(test_wrong_root, reset_arena),
        cmocka_unit_test_setup(test_flat_shape_edges, reset_arena),
        cmocka_unit_test_setup(test_control_characters_refused, reset_arena),
        cmocka_unit_test_setup(test_text_may_hold_newlines, reset_arena),
        cmocka_unit_test_setup(test_digit_fields, reset_arena),
        cmocka_unit_test_setup(test_field_lengths, reset_arena),
        cmocka_unit_test_setup(test_message_requires_fields, reset_arena),
        cmocka_unit_test_setup(test_envelope_parses, reset_arena),
        cmocka_unit_test_setup(test_comments_and_instructions, reset_arena),
        cmocka_unit_test_setup(test_no_state_between_documents, reset_arena),
    };

    return cmocka_run_group_tests_name("xml", tests, NULL, NULL);
}
