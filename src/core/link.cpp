#include <memory>
#include <string>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "internal.hpp"

namespace {

/* Names the message's format, so no other HMAC matches it. */
constexpr std::string_view link_tag = "wechat-link/2";

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

bool
link_complete(const wx_link_t *link)
{
    return link != nullptr && wx::present(link->appid)
           && wx::present(link->purpose) && wx::present(link->openid)
           && wx::present(link->nonce);
}

std::string
link_message(const wx_link_t *link)
{
    return wx::framed({link_tag, wx::view(link->appid),
                       wx::view(link->purpose), wx::view(link->openid),
                       wx::view(link->scene), std::to_string(link->expires),
                       wx::view(link->nonce)});
}

} // namespace

namespace wx {

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

    hex_into(mac, len, out);
    return WX_OK;
}

} // namespace wx

extern "C" wx_status_t
wx_link_sign(wx_span_t secret, const wx_link_t *link,
    char out[WX_LINK_SIG_LEN])
{
    if (out == nullptr || !link_complete(link)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        return wx::hmac_hex(secret, link_message(link), out);
    });
}

extern "C" wx_status_t
wx_link_verify(const wx_span_t *secrets, size_t n, const wx_link_t *link,
    wx_span_t sig, int64_t now)
{
    if (secrets == nullptr || n == 0 || !link_complete(link)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string msg = link_message(link);
        int match = 0;

        /* every secret is tried: which one matched takes no less time */
        for (size_t i = 0; i < n; i++) {
            char ours[WX_LINK_SIG_LEN];
            wx_status_t rc = wx::hmac_hex(secrets[i], msg, ours);

            if (rc != WX_OK) {
                return rc;
            }

            match |= wx_equal_const_time(
                {reinterpret_cast<unsigned char *>(ours), sizeof(ours)}, sig);
        }

        if (!match) {
            return WX_ERR_SIGNATURE;
        }

        return now > link->expires ? WX_ERR_EXPIRED : WX_OK;
    });
}

extern "C" wx_status_t
wx_link_query(wx_span_t secret, const wx_link_t *link,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        char sig[WX_LINK_SIG_LEN];
        wx_status_t rc = wx_link_sign(secret, link, sig);

        if (rc != WX_OK) {
            return rc;
        }

        std::string query = "openid=" + wx::url_encode(wx::view(link->openid));

        if (wx::present(link->scene)) {
            query += "&scene=" + wx::url_encode(wx::view(link->scene));
        }

        query += "&expires=" + std::to_string(link->expires)
                 + "&nonce=" + wx::url_encode(wx::view(link->nonce))
                 + "&sig=" + std::string(sig, sizeof(sig));

        return wx::copy_value(a, query, out);
    });
}
