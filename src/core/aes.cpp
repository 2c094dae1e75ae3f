#include <memory>
#include <vector>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.hpp"

namespace {

constexpr size_t pad_block = 32;       /* WeChat pads to 32, not to 16 */
constexpr size_t random_len = 16;
constexpr size_t header_len = random_len + 4;

struct cipher_ctx_free {
    void operator()(EVP_CIPHER_CTX *c) const { EVP_CIPHER_CTX_free(c); }
};

using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

int
base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/*
 * Strict standard base64: only the alphabet, '=' only as the final one or
 * two characters.  With padded set the length must be a multiple of 4.
 */
bool
base64_decode(std::string_view in, bool padded, std::vector<unsigned char> &out)
{
    if (padded) {
        if (in.size() % 4 != 0) {
            return false;
        }

        for (int i = 0; i < 2 && !in.empty() && in.back() == '='; i++) {
            in.remove_suffix(1);
        }
    }

    if (in.size() % 4 == 1) {
        return false;
    }

    out.clear();
    out.reserve(in.size() * 3 / 4);

    unsigned int acc = 0;
    int bits = 0;

    for (unsigned char c : in) {
        int v = base64_value(c);
        if (v < 0) {
            return false;
        }

        acc = (acc << 6) | static_cast<unsigned int>(v);
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<unsigned char>((acc >> bits) & 0xff));
        }
    }

    return true;
}

std::string
base64_encode(const std::vector<unsigned char> &in)
{
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            in.data(), static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

/* fetched once: OpenSSL 3 would look the cipher up on every init */
const EVP_CIPHER *
aes_256_cbc()
{
    static const EVP_CIPHER *cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC",
                                                       nullptr);
    return cipher;
}

bool
aes_cbc(bool encrypt, const unsigned char *key,
    const std::vector<unsigned char> &in, std::vector<unsigned char> &out)
{
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0, tail = 0;

    out.resize(in.size() + 16);

    /* the IV is the first 16 bytes of the key, as WeChat specifies */
    if (!ctx || aes_256_cbc() == nullptr
        || EVP_CipherInit_ex(ctx.get(), aes_256_cbc(), nullptr, key, key,
                             encrypt ? 1 : 0) != 1
        || EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1
        || EVP_CipherUpdate(ctx.get(), out.data(), &len, in.data(),
                            static_cast<int>(in.size())) != 1
        || EVP_CipherFinal_ex(ctx.get(), out.data() + len, &tail) != 1)
    {
        return false;
    }

    out.resize(static_cast<size_t>(len + tail));
    return true;
}

uint32_t
read_be32(const unsigned char *p)
{
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16)
           | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

wx_status_t
decrypt(const unsigned char *key, std::string_view encrypt,
    wx_span_t appid, const wx_allocator_t *a, wx_span_t *out)
{
    std::vector<unsigned char> cipher, plain;

    if (!base64_decode(encrypt, true, cipher)) {
        return WX_ERR_BASE64;
    }

    if (cipher.empty() || cipher.size() % 16 != 0) {
        return WX_ERR_CRYPTO;
    }

    if (!aes_cbc(false, key, cipher, plain)) {
        return WX_ERR_CRYPTO;
    }

    size_t pad = plain.back();
    if (pad < 1 || pad > pad_block || pad > plain.size()) {
        return WX_ERR_PADDING;
    }

    unsigned char diff = 0;
    for (size_t i = plain.size() - pad; i < plain.size(); i++) {
        diff |= static_cast<unsigned char>(plain[i] ^ pad);
    }

    if (diff != 0) {
        return WX_ERR_PADDING;
    }

    size_t body = plain.size() - pad;
    if (body < header_len) {
        return WX_ERR_LENGTH;
    }

    size_t msg_len = read_be32(plain.data() + random_len);
    if (msg_len > body - header_len) {
        return WX_ERR_LENGTH;
    }

    const unsigned char *msg = plain.data() + header_len;
    wx_span_t trailer = {msg + msg_len, body - header_len - msg_len};

    if (!wx_equal_const_time(trailer, appid)) {
        return WX_ERR_APPID;
    }

    return wx::copy_out(a, std::string_view(
        reinterpret_cast<const char *>(msg), msg_len), out);
}

wx_status_t
encrypt(const unsigned char *key, std::string_view msg, std::string_view appid,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (msg.size() > UINT32_MAX) {
        return WX_ERR_TOO_LARGE;
    }

    std::vector<unsigned char> plain(random_len);

    if (RAND_bytes(plain.data(), random_len) != 1) {
        return WX_ERR_RANDOM;
    }

    uint32_t n = static_cast<uint32_t>(msg.size());
    plain.push_back(static_cast<unsigned char>(n >> 24));
    plain.push_back(static_cast<unsigned char>(n >> 16));
    plain.push_back(static_cast<unsigned char>(n >> 8));
    plain.push_back(static_cast<unsigned char>(n));
    plain.insert(plain.end(), msg.begin(), msg.end());
    plain.insert(plain.end(), appid.begin(), appid.end());

    size_t pad = pad_block - plain.size() % pad_block;
    plain.insert(plain.end(), pad, static_cast<unsigned char>(pad));

    std::vector<unsigned char> cipher;
    if (!aes_cbc(true, key, plain, cipher)) {
        return WX_ERR_CRYPTO;
    }

    return wx::copy_out(a, base64_encode(cipher), out);
}

} // namespace

extern "C" wx_status_t
wx_aes_key_decode(wx_span_t encoding_key, unsigned char key[WX_AES_KEY_LEN])
{
    return wx::guarded([&] {
        std::vector<unsigned char> raw;

        if (encoding_key.len != WX_ENCODING_KEY_LEN
            || !base64_decode(wx::view(encoding_key), false, raw))
        {
            return WX_ERR_BASE64;
        }

        if (raw.size() != WX_AES_KEY_LEN) {
            return WX_ERR_LENGTH;
        }

        std::memcpy(key, raw.data(), WX_AES_KEY_LEN);
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
