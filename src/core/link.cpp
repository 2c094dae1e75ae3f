#include <memory>
#include <string>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "internal.hpp"

namespace {

/* Names the message's purpose and format, so no other HMAC matches it. */
constexpr std::string_view link_tag = "wechat-link/1";

struct mac_ctx_free {
    void operator()(EVP_MAC_CTX *c) const { EVP_MAC_CTX_free(c); }
};

using mac_ctx_ptr = std::unique_ptr<EVP_MAC_CTX, mac_ctx_free>;

/* Fetched once: OpenSSL 3 looks the algorithm up on every plain init. */
EVP_MAC *
hmac()
{
    static EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

std::string
link_message(wx_span_t openid, int64_t expires, wx_span_t nonce)
{
    return wx::framed({link_tag, wx::view(openid), std::to_string(expires),
                       wx::view(nonce)});
}

/* HMAC-SHA256 of msg under secret, as lower-case hex into out. */
wx_status_t
hmac_hex(wx_span_t secret, std::string_view msg, char *out)
{
    if (secret.data == nullptr || secret.len < WX_LINK_MIN_SECRET_LEN) {
        return WX_ERR_ARGS;
    }

    if (hmac() == nullptr) {
        return WX_ERR_INTERNAL;
    }

    mac_ctx_ptr ctx(EVP_MAC_CTX_new(hmac()));
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name,
                                         0),
        OSSL_PARAM_construct_end()
    };
    unsigned char mac[32];
    size_t len = 0;

    if (!ctx
        || EVP_MAC_init(ctx.get(), secret.data, secret.len, params) != 1
        || EVP_MAC_update(ctx.get(),
                          reinterpret_cast<const unsigned char *>(msg.data()),
                          msg.size()) != 1
        || EVP_MAC_final(ctx.get(), mac, &len, sizeof(mac)) != 1
        || len != sizeof(mac))
    {
        return WX_ERR_INTERNAL;
    }

    wx::hex_into(mac, len, out);
    return WX_OK;
}

} // namespace

extern "C" wx_status_t
wx_link_sign(wx_span_t secret, wx_span_t openid, int64_t expires,
    wx_span_t nonce, char out[WX_LINK_SIG_LEN])
{
    if (out == nullptr || !wx::present(openid) || !wx::present(nonce)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        return hmac_hex(secret, link_message(openid, expires, nonce), out);
    });
}

extern "C" wx_status_t
wx_link_verify(const wx_span_t *secrets, size_t n, wx_span_t openid,
    int64_t expires, wx_span_t nonce, wx_span_t sig, int64_t now)
{
    if (secrets == nullptr || n == 0 || !wx::present(openid)
        || !wx::present(nonce))
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string msg = link_message(openid, expires, nonce);
        int match = 0;

        /* every secret is tried: which one matched takes no less time */
        for (size_t i = 0; i < n; i++) {
            char ours[WX_LINK_SIG_LEN];
            wx_status_t rc = hmac_hex(secrets[i], msg, ours);

            if (rc != WX_OK) {
                return rc;
            }

            match |= wx_equal_const_time(
                {reinterpret_cast<unsigned char *>(ours), sizeof(ours)}, sig);
        }

        if (!match) {
            return WX_ERR_SIGNATURE;
        }

        return now > expires ? WX_ERR_EXPIRED : WX_OK;
    });
}

extern "C" wx_status_t
wx_link_query(wx_span_t secret, wx_span_t openid, int64_t expires,
    wx_span_t nonce, const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        char sig[WX_LINK_SIG_LEN];
        wx_status_t rc = wx_link_sign(secret, openid, expires, nonce, sig);

        if (rc != WX_OK) {
            return rc;
        }

        std::string query = "openid=" + wx::url_encode(wx::view(openid))
                            + "&expires=" + std::to_string(expires)
                            + "&nonce=" + wx::url_encode(wx::view(nonce))
                            + "&sig=" + std::string(sig, sizeof(sig));

        return wx::copy_value(a, query, out);
    });
}
