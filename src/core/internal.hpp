/* Helpers shared by the core's translation units; never exported. */

#ifndef WX_INTERNAL_HPP
#define WX_INTERNAL_HPP

#include <cstring>
#include <initializer_list>
#include <new>
#include <string>
#include <string_view>

#include "wx_core.h"

namespace wx {

inline std::string_view
view(wx_span_t s)
{
    return s.data ? std::string_view(reinterpret_cast<const char *>(s.data),
                                     s.len)
                  : std::string_view();
}

inline wx_span_t
span(std::string_view s)
{
    return {reinterpret_cast<const unsigned char *>(s.data()), s.size()};
}

/* A span with at least one byte: required fields must not be empty. */
inline bool
present(wx_span_t s)
{
    return s.data != nullptr && s.len > 0;
}

/* Copies s into the caller's memory; an empty s gives an empty span. */
inline wx_status_t
copy_out(const wx_allocator_t *a, std::string_view s, wx_span_t *out)
{
    if (s.empty()) {
        *out = {nullptr, 0};
        return WX_OK;
    }

    auto *p = static_cast<unsigned char *>(a->alloc(a->pool, s.size()));
    if (p == nullptr) {
        return WX_ERR_NOMEM;
    }

    std::memcpy(p, s.data(), s.size());
    *out = {p, s.size()};
    return WX_OK;
}

/* Copies s, NUL-terminated, even when empty: an empty value is a value. */
inline wx_status_t
copy_value(const wx_allocator_t *a, std::string_view s, wx_span_t *out)
{
    auto *p = static_cast<unsigned char *>(a->alloc(a->pool, s.size() + 1));
    if (p == nullptr) {
        return WX_ERR_NOMEM;
    }

    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    *out = {p, s.size()};
    return WX_OK;
}

/* Runs f, turning any exception into a status: none crosses the C ABI. */
template <class F>
wx_status_t
guarded(F &&f) noexcept
{
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return WX_ERR_NOMEM;
    } catch (...) {
        return WX_ERR_INTERNAL;
    }
}

/* Writes 2n lower-case hex digits. */
void hex_into(const unsigned char *p, size_t n, char *out);

/* n bytes from RAND_bytes, drawn in blocks; false when RAND_bytes fails. */
bool random_bytes(unsigned char *out, size_t n);

inline std::string
hex(const unsigned char *p, size_t n)
{
    std::string s(n * 2, '\0');
    hex_into(p, n, s.data());
    return s;
}

/*
 * HMAC-SHA256 of msg under secret (at least WX_LINK_MIN_SECRET_LEN bytes),
 * as 64 lower-case hex digits into out: signed links and OAuth sessions.
 */
wx_status_t hmac_hex(wx_span_t secret, std::string_view msg, char *out);

/* The event parser with libxml2 alone: the fuzzer compares the two. */
wx_status_t event_parse_with_libxml2(wx_span_t xml, const wx_allocator_t *a,
                                     wx_event_t *ev);

/* Percent-encodes all but RFC 3986's unreserved characters. */
std::string url_encode(std::string_view in);

/*
 * The fields as one message, each as "<length>:<bytes>", so that no two
 * lists of fields make the same message; one allocation.
 */
inline std::string
framed(std::initializer_list<std::string_view> fields)
{
    size_t size = 0;

    for (std::string_view f : fields) {
        size += 21 + f.size();      /* a length's digits, ':' and the bytes */
    }

    std::string msg;
    msg.reserve(size);

    for (std::string_view f : fields) {
        msg += std::to_string(f.size());
        msg += ':';
        msg += f;
    }

    return msg;
}

} // namespace wx

#endif
