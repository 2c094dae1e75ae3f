#include <array>
#include <climits>
#include <cstring>
#include <memory>

#include <openssl/evp.h>

#include "internal.hpp"

namespace {

constexpr size_t pad_block = 32;       /* WeChat pads to 32, not to 16 */
constexpr size_t random_len = 16;
constexpr size_t header_len = random_len + 4;

struct cipher_ctx_free {
    void operator()(EVP_CIPHER_CTX *c) const { EVP_CIPHER_CTX_free(c); }
};

using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

/* each byte's 6-bit value in standard base64, or -1 outside the alphabet */
constexpr std::array<signed char, 256>
base64_table()
{
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::array<signed char, 256> t{};

    for (auto &v : t) {
        v = -1;
    }

    for (size_t i = 0; i < alphabet.size(); i++) {
        t[static_cast<unsigned char>(alphabet[i])] =
            static_cast<signed char>(i);
    }

    return t;
}

constexpr std::array<signed char, 256> base64_values = base64_table();

/* The largest decoded size of n base64 characters. */
constexpr size_t
base64_decoded_max(size_t n)
{
    return n / 4 * 3 + 2;
}

/* Up to 4 characters as 24 bits, the missing ones as zeros. */
bool
base64_group(const unsigned char *p, size_t n, uint32_t *bits)
{
    int v[4] = {0, 0, 0, 0};

    for (size_t k = 0; k < n; k++) {
        v[k] = base64_values[p[k]];
    }

    if ((v[0] | v[1] | v[2] | v[3]) < 0) {
        return false;
    }

    *bits = static_cast<uint32_t>(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
    return true;
}

/*
 * Strict standard base64: only the alphabet, '=' only as the final one or
 * two characters.  With padded set the length must be a multiple of 4.
 * out holds base64_decoded_max(in.size()) bytes; *n is what was written.
 */
bool
base64_decode(std::string_view in, bool padded, unsigned char *out,
    size_t *n)
{
    if (padded) {
        if (in.size() % 4 != 0) {
            return false;
        }

        for (int i = 0; i < 2 && !in.empty() && in.back() == '='; i++) {
            in.remove_suffix(1);
        }
    }

    size_t tail = in.size() % 4;
    if (tail == 1) {
        return false;
    }

    const auto *p = reinterpret_cast<const unsigned char *>(in.data());
    const unsigned char *end = p + in.size() - tail;
    unsigned char *o = out;
    uint32_t bits;

    for (; p < end; p += 4, o += 3) {
        if (!base64_group(p, 4, &bits)) {
            return false;
        }

        o[0] = static_cast<unsigned char>(bits >> 16);
        o[1] = static_cast<unsigned char>(bits >> 8);
        o[2] = static_cast<unsigned char>(bits);
    }

    /* a final 2 or 3 characters are 1 or 2 bytes */
    if (tail != 0) {
        if (!base64_group(p, tail, &bits)) {
            return false;
        }

        *o++ = static_cast<unsigned char>(bits >> 16);
        if (tail == 3) {
            *o++ = static_cast<unsigned char>(bits >> 8);
        }
    }

    *n = static_cast<size_t>(o - out);
    return true;
}

/* fetched once: OpenSSL 3 would look the cipher up on every init */
const EVP_CIPHER *
aes_256_cbc()
{
    static const EVP_CIPHER *cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC",
                                                       nullptr);
    return cipher;
}

/*
 * AES-256-CBC without padding over n bytes (a multiple of 16), in place.
 * One context per thread is keyed anew for each message: a new one would
 * cost an allocation and a provider context per push.
 */
bool
aes_cbc(bool encrypt, const unsigned char *key, unsigned char *data, size_t n)
{
    static thread_local cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0, tail = 0;

    /* the IV is the first 16 bytes of the key, as WeChat specifies */
    return ctx && aes_256_cbc() != nullptr
           && EVP_CipherInit_ex(ctx.get(), aes_256_cbc(), nullptr, key, key,
                                encrypt ? 1 : 0) == 1
           && EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1
           && EVP_CipherUpdate(ctx.get(), data, &len, data,
                               static_cast<int>(n)) == 1
           && EVP_CipherFinal_ex(ctx.get(), data + len, &tail) == 1
           && static_cast<size_t>(len + tail) == n;
}

uint32_t
read_be32(const unsigned char *p)
{
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16)
           | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

/*
 * The plaintext is decoded and decrypted in one buffer from the caller's
 * pool, and out points into it: no copy, no heap allocation per push.
 */
wx_status_t
decrypt(const unsigned char *key, std::string_view encrypt,
    wx_span_t appid, const wx_allocator_t *a, wx_span_t *out)
{
    if (encrypt.empty()) {
        return WX_ERR_CRYPTO;
    }

    auto *plain = static_cast<unsigned char *>(
        a->alloc(a->pool, base64_decoded_max(encrypt.size())));
    size_t n = 0;

    if (plain == nullptr) {
        return WX_ERR_NOMEM;
    }

    if (!base64_decode(encrypt, true, plain, &n)) {
        return WX_ERR_BASE64;
    }

    if (n == 0 || n % 16 != 0 || !aes_cbc(false, key, plain, n)) {
        return WX_ERR_CRYPTO;
    }

    size_t pad = plain[n - 1];
    if (pad < 1 || pad > pad_block || pad > n) {
        return WX_ERR_PADDING;
    }

    unsigned char diff = 0;
    for (size_t i = n - pad; i < n; i++) {
        diff |= static_cast<unsigned char>(plain[i] ^ pad);
    }

    if (diff != 0) {
        return WX_ERR_PADDING;
    }

    size_t body = n - pad;
    if (body < header_len) {
        return WX_ERR_LENGTH;
    }

    size_t msg_len = read_be32(plain + random_len);
    if (msg_len > body - header_len) {
        return WX_ERR_LENGTH;
    }

    const unsigned char *msg = plain + header_len;
    wx_span_t trailer = {msg + msg_len, body - header_len - msg_len};

    if (!wx_equal_const_time(trailer, appid)) {
        return WX_ERR_APPID;
    }

    *out = {msg, msg_len};
    return WX_OK;
}

/*
 * 16 random bytes | length (4, big-endian) | msg | appid | padding to 32,
 * built and encrypted in one pool buffer, then base64 into another.
 */
wx_status_t
encrypt(const unsigned char *key, std::string_view msg, std::string_view appid,
    const wx_allocator_t *a, wx_span_t *out)
{
    /* the length field is 32 bits; OpenSSL and base64 count in int */
    if (msg.size() > INT_MAX / 2) {
        return WX_ERR_TOO_LARGE;
    }

    size_t body = header_len + msg.size() + appid.size();
    size_t pad = pad_block - body % pad_block;
    size_t n = body + pad;
    auto *plain = static_cast<unsigned char *>(a->alloc(a->pool, n));
    auto *b64 = static_cast<unsigned char *>(
        a->alloc(a->pool, 4 * ((n + 2) / 3) + 1));

    if (plain == nullptr || b64 == nullptr) {
        return WX_ERR_NOMEM;
    }

    if (!wx::random_bytes(plain, random_len)) {
        return WX_ERR_RANDOM;
    }

    uint32_t len = static_cast<uint32_t>(msg.size());
    for (size_t i = 0; i < 4; i++) {
        plain[random_len + i] = static_cast<unsigned char>(len >> (24 - 8 * i));
    }

    std::memcpy(plain + header_len, msg.data(), msg.size());
    std::memcpy(plain + header_len + msg.size(), appid.data(), appid.size());
    std::memset(plain + body, static_cast<int>(pad), pad);

    if (!aes_cbc(true, key, plain, n)) {
        return WX_ERR_CRYPTO;
    }

    int b64_len = EVP_EncodeBlock(b64, plain, static_cast<int>(n));
    *out = {b64, static_cast<size_t>(b64_len)};
    return WX_OK;
}

} // namespace

extern "C" wx_status_t
wx_aes_key_decode(wx_span_t encoding_key, unsigned char key[WX_AES_KEY_LEN])
{
    return wx::guarded([&] {
        unsigned char raw[base64_decoded_max(WX_ENCODING_KEY_LEN)];
        size_t n = 0;

        if (encoding_key.len != WX_ENCODING_KEY_LEN
            || !base64_decode(wx::view(encoding_key), false, raw, &n))
        {
            return WX_ERR_BASE64;
        }

        if (n != WX_AES_KEY_LEN) {
            return WX_ERR_LENGTH;
        }

        std::memcpy(key, raw, WX_AES_KEY_LEN);
        return WX_OK;
    });
}

extern "C" wx_status_t
wx_aes_decrypt(const unsigned char key[WX_AES_KEY_LEN], wx_span_t encrypt,
    wx_span_t appid, const wx_allocator_t *a, wx_span_t *out)
{
    if (key == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        return decrypt(key, wx::view(encrypt), appid, a, out);
    });
}

extern "C" wx_status_t
wx_aes_encrypt(const unsigned char key[WX_AES_KEY_LEN], wx_span_t msg,
    wx_span_t appid, const wx_allocator_t *a, wx_span_t *out)
{
    if (key == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        return encrypt(key, wx::view(msg), wx::view(appid), a, out);
    });
}
