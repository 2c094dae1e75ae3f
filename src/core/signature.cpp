#include <algorithm>
#include <memory>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.hpp"

namespace wx {

void
hex_into(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
}

} // namespace wx

namespace {

struct md_ctx_free {
    void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};

using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;

/* Digest of the parts in order, as hex into out; false on failure. */
/*
 * OpenSSL 3 looks an algorithm up on every EVP_sha1() init unless it was
 * fetched once; the profile showed that lookup as the digests' main cost.
 */
const EVP_MD *
fetched(const char *name)
{
    return EVP_MD_fetch(nullptr, name, nullptr);
}

const EVP_MD *
sha1_md()
{
    static const EVP_MD *md = fetched("SHA1");
    return md;
}

const EVP_MD *
sha256_md()
{
    static const EVP_MD *md = fetched("SHA256");
    return md;
}

bool
digest_hex(const EVP_MD *md, const std::string_view *parts, size_t n,
    char *out)
{
    if (md == nullptr) {
        return false;
    }

    /* one context per thread, not an allocation per digest */
    static thread_local md_ctx_ptr ctx(EVP_MD_CTX_new());
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
        return false;
    }

    for (size_t i = 0; i < n; i++) {
        if (EVP_DigestUpdate(ctx.get(), parts[i].data(), parts[i].size())
            != 1)
        {
            return false;
        }
    }

    if (EVP_DigestFinal_ex(ctx.get(), buf, &len) != 1) {
        return false;
    }

    wx::hex_into(buf, len, out);
    return true;
}

wx_status_t
sorted_sha1_hex(const wx_span_t *fields, size_t n, char *out)
{
    std::vector<std::string_view> parts;
    parts.reserve(n);

    for (size_t i = 0; i < n; i++) {
        parts.push_back(wx::view(fields[i]));
    }

    std::sort(parts.begin(), parts.end());

    return digest_hex(sha1_md(), parts.data(), parts.size(), out)
           ? WX_OK : WX_ERR_INTERNAL;
}

} // namespace

extern "C" wx_status_t
wx_signature_compute(const wx_span_t *fields, size_t n,
    char out[WX_SIGNATURE_LEN])
{
    return wx::guarded([&] { return sorted_sha1_hex(fields, n, out); });
}

extern "C" wx_status_t
wx_signature_verify(const wx_span_t *fields, size_t n, wx_span_t signature)
{
    return wx::guarded([&] {
        char sig[WX_SIGNATURE_LEN];
        wx_status_t rc = sorted_sha1_hex(fields, n, sig);

        if (rc != WX_OK) {
            return rc;
        }

        wx_span_t ours = {reinterpret_cast<unsigned char *>(sig),
                          sizeof(sig)};

        return wx_equal_const_time(ours, signature) ? WX_OK
                                                    : WX_ERR_SIGNATURE;
    });
}

extern "C" int
wx_equal_const_time(wx_span_t a, wx_span_t b)
{
    if (a.len != b.len) {
        return 0;
    }

    return a.len == 0 || CRYPTO_memcmp(a.data, b.data, a.len) == 0;
}

extern "C" wx_status_t
wx_sha1_hex(wx_span_t data, char out[WX_SHA1_HEX_LEN])
{
    std::string_view part = wx::view(data);
    return digest_hex(sha1_md(), &part, 1, out) ? WX_OK : WX_ERR_INTERNAL;
}

extern "C" wx_status_t
wx_sha256_hex(wx_span_t data, char out[WX_SHA256_HEX_LEN])
{
    std::string_view part = wx::view(data);
    return digest_hex(sha256_md(), &part, 1, out) ? WX_OK
                                                    : WX_ERR_INTERNAL;
}
