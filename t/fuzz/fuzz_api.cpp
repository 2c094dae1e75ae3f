// libFuzzer target: WeChat API answers through wx_api_error, wx_api_token
// and wx_api_qrcode, with the promises their callers rely on checked.

#include <cstdlib>
#include <string_view>

#include "fuzz_alloc.h"

namespace {

void
check(bool ok)
{
    if (!ok) {
        std::abort();
    }
}

std::string_view
view(wx_span_t s)
{
    return {reinterpret_cast<const char *>(s.data), s.len};
}

bool
nul_terminated(wx_span_t s)
{
    return s.data != nullptr && s.data[s.len] == '\0';
}

bool
printable(std::string_view s, size_t max)
{
    if (s.empty() || s.size() > max) {
        return false;
    }

    for (char c : s) {
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }

    return true;
}

// Well-formed UTF-8 (shortest forms, no surrogates) without controls.
bool
clean_utf8(std::string_view s)
{
    for (size_t i = 0; i < s.size(); ) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;

        if (len == 0 || i + len > s.size() || c < 0x20 || c == 0x7f) {
            return false;
        }

        unsigned long cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xc0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (b & 0x3f);
        }

        static const unsigned long least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
        {
            return false;
        }

        i += len;
    }

    return true;
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    fuzz_arena arena;
    const wx_allocator_t *a = arena.get();
    wx_span_t in = {data, size};

    int64_t errcode = 0;
    wx_span_t errmsg;
    wx_status_t error_rc = wx_api_error(in, a, &errcode, &errmsg);

    if (error_rc == WX_OK) {
        check(nul_terminated(errmsg) && errmsg.len <= WX_API_ERRMSG_MAX
              && clean_utf8(view(errmsg)));
        check(errcode != 0 || errmsg.len == 0);
    }

    wx_span_t token;
    int64_t expires_in = 0;
    wx_status_t rc = wx_api_token(in, a, &token, &expires_in);

    if (rc == WX_OK) {
        check(nul_terminated(token)
              && printable(view(token), WX_API_TOKEN_MAX) && expires_in > 0);
    }

    // an answer the token parser calls an API error has an errcode
    check(rc != WX_ERR_API || (error_rc == WX_OK && errcode != 0));
    check(rc != WX_OK || (error_rc == WX_OK && errcode == 0));

    wx_span_t ticket, url;
    int64_t expire_seconds = -1;

    if (wx_api_qrcode(in, a, &ticket, &url, &expire_seconds) == WX_OK) {
        std::string_view u = view(url);

        check(nul_terminated(ticket) && nul_terminated(url)
              && printable(view(ticket), WX_API_TICKET_MAX)
              && printable(u, WX_API_URL_MAX) && expire_seconds >= 0
              && (u.substr(0, 7) == "http://"
                  || u.substr(0, 8) == "https://"));
        check(error_rc == WX_OK && errcode == 0);
    }

    return 0;
}
