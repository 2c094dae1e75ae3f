#include <string>

#include "internal.hpp"
#include "wx_oauth.h"

namespace {

/* Names the format, so that no other HMAC of the module matches it. */
constexpr std::string_view session_tag = "wechat-oauth-session/1";
constexpr std::string_view session_prefix = "v1.";

constexpr size_t session_fields = 8;    /* the tag and seven fields */

int
unhex_digit(char c)
{
    return (c >= '0' && c <= '9') ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

bool
unhex(std::string_view in, std::string *out)
{
    if (in.size() % 2) {
        return false;
    }

    out->resize(in.size() / 2);

    for (size_t i = 0; i < out->size(); i++) {
        int hi = unhex_digit(in[2 * i]);
        int lo = unhex_digit(in[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return false;
        }

        (*out)[i] = static_cast<char>(hi << 4 | lo);
    }

    return true;
}

/* The framed fields back, each "<length>:<bytes>", exactly n of them. */
bool
unframe(std::string_view msg, std::string_view *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t colon = msg.find(':');

        if (colon == std::string_view::npos || colon == 0 || colon > 5) {
            return false;
        }

        size_t len = 0;

        for (size_t k = 0; k < colon; k++) {
            if (msg[k] < '0' || msg[k] > '9') {
                return false;
            }

            len = len * 10 + static_cast<size_t>(msg[k] - '0');
        }

        if (msg.size() - colon - 1 < len) {
            return false;
        }

        fields[i] = msg.substr(colon + 1, len);
        msg.remove_prefix(colon + 1 + len);
    }

    return msg.empty();
}

/* Nothing that becomes a variable or a header may hold a control byte. */
bool
clean(std::string_view s)
{
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }

    return true;
}

bool
session_complete(const wx_session_t *s)
{
    return s != nullptr && wx::present(s->appid) && wx::present(s->openid)
           && wx::present(s->scope) && s->expires > 0
           && clean(wx::view(s->openid)) && clean(wx::view(s->unionid))
           && clean(wx::view(s->scope)) && clean(wx::view(s->nickname))
           && clean(wx::view(s->avatar));
}

bool
parse_expires(std::string_view s, int64_t *out)
{
    if (s.empty() || s.size() > 18 || s[0] == '0') {
        return false;
    }

    int64_t v = 0;

    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }

        v = v * 10 + (c - '0');
    }

    *out = v;
    return true;
}

} // namespace

extern "C" wx_status_t
wx_session_seal(wx_span_t secret, const wx_session_t *s,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr || !session_complete(s)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string fields = wx::framed({session_tag, wx::view(s->appid),
                                         wx::view(s->openid),
                                         wx::view(s->unionid),
                                         wx::view(s->scope),
                                         std::to_string(s->expires),
                                         wx::view(s->nickname),
                                         wx::view(s->avatar)});
        std::string value(session_prefix);

        value += wx::hex(reinterpret_cast<const unsigned char *>(
                             fields.data()), fields.size());

        char mac[WX_LINK_SIG_LEN];
        wx_status_t rc = wx::hmac_hex(secret, value, mac);

        if (rc != WX_OK) {
            return rc;
        }

        value += '.';
        value.append(mac, sizeof(mac));

        if (value.size() > WX_OAUTH_SESSION_MAX) {
            return WX_ERR_TOO_LARGE;
        }

        return wx::copy_value(a, value, out);
    });
}

extern "C" wx_status_t
wx_session_open(const wx_span_t *secrets, size_t n, wx_span_t appid,
    wx_span_t value, int64_t now, const wx_allocator_t *a, wx_session_t *out)
{
    if (secrets == nullptr || n == 0 || a == nullptr || out == nullptr
        || !wx::present(appid))
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view text = wx::view(value);
        size_t dot = text.rfind('.');

        if (text.size() > WX_OAUTH_SESSION_MAX
            || text.substr(0, session_prefix.size()) != session_prefix
            || dot == std::string_view::npos
            || text.size() - dot - 1 != WX_LINK_SIG_LEN)
        {
            return WX_ERR_ARGS;
        }

        std::string_view sealed = text.substr(0, dot);
        wx_span_t sig = wx::span(text.substr(dot + 1));
        int match = 0;

        /*
         * The current secret first, the previous one only if it failed:
         * which secret signed a session is no secret, and the hot path
         * then costs one HMAC.
         */

        for (size_t i = 0; i < n && !match; i++) {
            char ours[WX_LINK_SIG_LEN];
            wx_status_t rc = wx::hmac_hex(secrets[i], sealed, ours);

            if (rc != WX_OK) {
                return rc;
            }

            match = wx_equal_const_time(
                {reinterpret_cast<unsigned char *>(ours), sizeof(ours)}, sig);
        }

        if (!match) {
            return WX_ERR_SIGNATURE;
        }

        std::string fields;
        std::string_view f[session_fields];
        int64_t expires;

        if (!unhex(sealed.substr(session_prefix.size()), &fields)
            || !unframe(fields, f, session_fields)
            || f[0] != session_tag || !parse_expires(f[5], &expires))
        {
            return WX_ERR_ARGS;
        }

        /* sealed for another account of the same secret: not ours */

        if (f[1] != wx::view(appid)) {
            return WX_ERR_SIGNATURE;
        }

        if (now >= expires) {
            return WX_ERR_EXPIRED;
        }

        auto *p = static_cast<unsigned char *>(a->alloc(a->pool,
                                                        fields.size() + 1));
        if (p == nullptr) {
            return WX_ERR_NOMEM;
        }

        std::memcpy(p, fields.data(), fields.size());
        p[fields.size()] = '\0';

        auto at = [&](std::string_view s) -> wx_span_t {
            return {p + (s.data() - fields.data()), s.size()};
        };

        *out = {};
        out->appid = at(f[1]);
        out->openid = at(f[2]);
        out->unionid = at(f[3]);
        out->scope = at(f[4]);
        out->expires = expires;
        out->nickname = at(f[6]);
        out->avatar = at(f[7]);

        return session_complete(out) ? WX_OK : WX_ERR_ARGS;
    });
}
