#include <openssl/evp.h>

#include "wx_test.h"

/*
 * Vectors from WeChat's published message-encryption samples:
 * - the Java sample test: EncodingAESKey "abcdefghijklmnopqrstuvwxyz0123456789
 *   ABCDEFG", AppID wxb11529c136998cb6, random "aaaabbbbccccdddd", message
 *   "我是中文abcd123";
 * - the decrypt sample: token spamtest, AppID wx2c2769f8efd9abc2, timestamp
 *   1409735669, nonce 1320562132, msg_signature 5d197aaf...
 * Malformed ciphertexts are made here with OpenSSL's EVP directly, not with
 * the core.
 */

#define SAMPLE_KEY  "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

static const char sample_encrypt[] =
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+"
    "LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn"
    "896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVti"
    "cbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSV"
    "CZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdU"
    "ue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCum"
    "EPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

static unsigned char  key[WX_AES_KEY_LEN];

static int
setup_key(void **state)
{
    reset_arena(state);
    return wx_aes_key_decode(S(SAMPLE_KEY), key) == WX_OK ? 0 : -1;
}

/* AES-256-CBC with IV = key[0..16], no padding added, then base64. */
static wx_span_t
craft(const unsigned char *plain, size_t len)
{
    static unsigned char  cipher[4096];
    static char           b64[8192];
    EVP_CIPHER_CTX       *ctx = EVP_CIPHER_CTX_new();
    int                   n = 0, tail = 0;

    assert_true(len % 16 == 0 && len <= sizeof(cipher));
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key,
                                        key), 1);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    assert_int_equal(EVP_EncryptUpdate(ctx, cipher, &n, plain, (int) len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, cipher + n, &tail), 1);
    EVP_CIPHER_CTX_free(ctx);

    int m = EVP_EncodeBlock((unsigned char *) b64, cipher, n + tail);
    wx_span_t s = { (unsigned char *) b64, (size_t) m };
    return s;
}

/* random(16) || be32(msg_len) || msg || appid || pad bytes of value pad */
static size_t
frame(unsigned char *buf, uint32_t msg_len, const char *msg,
    const char *appid, size_t pad, unsigned char pad_value)
{
    size_t n = 0;

    memset(buf, 'r', 16);
    n = 16;
    buf[n++] = (unsigned char) (msg_len >> 24);
    buf[n++] = (unsigned char) (msg_len >> 16);
    buf[n++] = (unsigned char) (msg_len >> 8);
    buf[n++] = (unsigned char) msg_len;
    memcpy(buf + n, msg, strlen(msg));
    n += strlen(msg);
    memcpy(buf + n, appid, strlen(appid));
    n += strlen(appid);
    memset(buf + n, pad_value, pad);
    return n + pad;
}

static wx_status_t
decrypt(wx_span_t encrypt, const char *appid, wx_span_t *out)
{
    return wx_aes_decrypt(key, encrypt, S(appid), &test_allocator, out);
}

static void
test_key_decode(void **state)
{
    (void) state;
    unsigned char k[WX_AES_KEY_LEN];

    assert_int_equal(wx_aes_key_decode(S(SAMPLE_KEY), k), WX_OK);
    /* base64 "abcd" is 0x69 0xb7 0x1d */
    assert_int_equal(k[0], 0x69);
    assert_int_equal(k[1], 0xb7);
    assert_int_equal(k[2], 0x1d);
    assert_int_equal(wx_aes_key_decode(S("short"), k), WX_ERR_BASE64);
    assert_int_equal(wx_aes_key_decode(
        S("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF!"), k), WX_ERR_BASE64);
}

static void
test_official_java_vector(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(decrypt(S("jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkg"
                               "czbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="),
                             "wxb11529c136998cb6", &out), WX_OK);
    assert_span_equal(out, "我是中文abcd123");
}

static void
test_official_decrypt_sample(void **state)
{
    (void) state;
    wx_span_t out;
    wx_event_t ev;

    assert_int_equal(decrypt(S(sample_encrypt), "wx2c2769f8efd9abc2", &out),
                     WX_OK);
    assert_int_equal(wx_event_parse(out, &test_allocator, &ev), WX_OK);
    assert_span_equal(ev.from_user, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
    assert_span_equal(ev.content, "abcdteT");
    assert_span_equal(ev.msg_id, "6054768590064713728");
}

static void
test_round_trip(void **state)
{
    (void) state;
    wx_span_t enc, dec;
    const char *msg = "<xml><Content><![CDATA[往返]]></Content></xml>";

    for (size_t len = 0; len <= strlen(msg); len += 7) {
        wx_span_t m = { (const unsigned char *) msg, len };

        assert_int_equal(wx_aes_encrypt(key, m, S("wxappid"),
                                        &test_allocator, &enc), WX_OK);
        assert_int_equal(decrypt(enc, "wxappid", &dec), WX_OK);
        assert_int_equal(dec.len, len);
        if (len) {
            assert_memory_equal(dec.data, msg, len);
        }
    }
}

static void
test_wrong_appid(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(decrypt(S(sample_encrypt), "wx2c2769f8efd9abc3", &out),
                     WX_ERR_APPID);
    assert_int_equal(decrypt(S(sample_encrypt), "wx2c2769f8efd9abc", &out),
                     WX_ERR_APPID);
}

static void
test_padding(void **state)
{
    (void) state;
    unsigned char buf[256];
    wx_span_t out;
    size_t n;

    /* 16 + 4 + 5 + 7 = 32 bytes, then a whole block of pad 32: valid */
    n = frame(buf, 5, "hello", "wxappid", 32, 32);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_OK);
    assert_span_equal(out, "hello");

    /* a last byte of 0 */
    n = frame(buf, 5, "hello", "wxappid", 32, 0);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_PADDING);

    /* 33: more than WeChat's 32-byte block */
    n = frame(buf, 5, "hello", "wxappid", 48, 33);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_PADDING);

    /* inconsistent pad bytes */
    n = frame(buf, 5, "hello", "wxappid", 32, 32);
    buf[n - 5] = 31;
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_PADDING);
}

static void
test_msg_len(void **state)
{
    (void) state;
    unsigned char buf[256];
    wx_span_t out;
    size_t n;

    /* negative as int32 */
    n = frame(buf, 0xfffffffbu, "hello", "wxappid", 32, 32);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_LENGTH);

    /* huge */
    n = frame(buf, 0x7fffffffu, "hello", "wxappid", 32, 32);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_LENGTH);

    /* just beyond the buffer: 5 + 7 bytes remain after the header */
    n = frame(buf, 13, "hello", "wxappid", 32, 32);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_LENGTH);

    /* within the buffer but eating into the AppID */
    n = frame(buf, 6, "hello", "wxappid", 32, 32);
    assert_int_equal(decrypt(craft(buf, n), "wxappid", &out), WX_ERR_APPID);

    /* shorter than the header: one block of padding only */
    memset(buf, 16, 16);
    memset(buf + 16, 16, 16);
    assert_int_equal(decrypt(craft(buf, 32), "wxappid", &out), WX_ERR_LENGTH);
}

static void
test_ciphertext_length(void **state)
{
    (void) state;
    wx_span_t out;

    /* 15 bytes, base64 of 'A' * 15 */
    assert_int_equal(decrypt(S("QUFBQUFBQUFBQUFBQUFB"), "wxappid", &out),
                     WX_ERR_CRYPTO);
    assert_int_equal(decrypt(S(""), "wxappid", &out), WX_ERR_CRYPTO);
}

static void
test_invalid_base64(void **state)
{
    (void) state;
    wx_span_t out;

    assert_int_equal(decrypt(S("not base64!"), "wxappid", &out),
                     WX_ERR_BASE64);
    assert_int_equal(decrypt(S("QUFB=QUF"), "wxappid", &out), WX_ERR_BASE64);
    assert_int_equal(decrypt(S("QUFBQ"), "wxappid", &out), WX_ERR_BASE64);
    assert_int_equal(decrypt(S("QUFB QUFB"), "wxappid", &out),
                     WX_ERR_BASE64);
    /* a bad character in the final, padded group */
    assert_int_equal(decrypt(S("QUFBQ!=="), "wxappid", &out), WX_ERR_BASE64);
    assert_int_equal(decrypt(S("QUFBQU.="), "wxappid", &out), WX_ERR_BASE64);
    assert_int_equal(decrypt(S("QU=BQUFB"), "wxappid", &out), WX_ERR_BASE64);
    assert_int_equal(decrypt(S("QUFB===="), "wxappid", &out), WX_ERR_BASE64);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_decode, setup_key),
        cmocka_unit_test_setup(test_official_java_vector, setup_key),
        cmocka_unit_test_setup(test_official_decrypt_sample, setup_key),
        cmocka_unit_test_setup(test_round_trip, setup_key),
        cmocka_unit_test_setup(test_wrong_appid, setup_key),
        cmocka_unit_test_setup(test_padding, setup_key),
        cmocka_unit_test_setup(test_msg_len, setup_key),
        cmocka_unit_test_setup(test_ciphertext_length, setup_key),
        cmocka_unit_test_setup(test_invalid_base64, setup_key),
    };

    return cmocka_run_group_tests_name("aes", tests, NULL, NULL);
}
