#include "internal.hpp"

namespace {

/* The largest multiple of 10 a byte holds: bytes below it map evenly. */
constexpr unsigned digit_bytes_limit = 250;

} // namespace

extern "C" wx_status_t
wx_random_digits(char *out, size_t n)
{
    if (out == nullptr || n < 1 || n > WX_DIGITS_MAX) {
        return WX_ERR_ARGS;
    }

    unsigned char buf[WX_DIGITS_MAX];
    size_t done = 0;

    /* a byte is kept with p = 250/256: a second round is rare */
    while (done < n) {
        size_t want = n - done;

        if (!wx::random_bytes(buf, want)) {
            return WX_ERR_RANDOM;
        }

        for (size_t i = 0; i < want; i++) {
            if (buf[i] < digit_bytes_limit) {
                out[done++] = static_cast<char>('0' + buf[i] % 10);
            }
        }
    }

    return WX_OK;
}

namespace {

/* Names each hash's purpose, so that no other digest matches it. */
constexpr std::string_view login_code_tag = "wechat-login-code/1";
constexpr std::string_view code_hash_tag = "wechat-code-hash/1";

wx_status_t
sha256_of(const std::string &msg, char *out)
{
    return wx_sha256_hex(wx::span(msg), out);
}

} // namespace

extern "C" wx_status_t
wx_login_code(wx_span_t scene, wx_span_t token, char out[WX_LOGIN_CODE_LEN])
{
    if (out == nullptr || !wx::present(scene) || !wx::present(token)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        char digest[WX_SHA256_HEX_LEN];

        wx_status_t rc = sha256_of(wx::framed({login_code_tag, wx::view(scene),
                                               wx::view(token)}),
                                   digest);
        if (rc != WX_OK) {
            return rc;
        }

        std::memcpy(out, digest, WX_LOGIN_CODE_LEN);
        return WX_OK;
    });
}

extern "C" wx_status_t
wx_code_hash(wx_span_t kind, wx_span_t scene, wx_span_t code,
    char out[WX_SHA256_HEX_LEN])
{
    if (out == nullptr || !wx::present(kind) || !wx::present(scene)
        || !wx::present(code))
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        return sha256_of(wx::framed({code_hash_tag, wx::view(kind),
                                     wx::view(scene), wx::view(code)}),
                         out);
    });
}
