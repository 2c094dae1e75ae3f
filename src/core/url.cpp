#include "internal.hpp"

namespace {

bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}

} // namespace

std::string
wx::url_encode(std::string_view in)
{
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(in.size() * 3);

    for (unsigned char c : in) {
        if (is_unreserved(c)) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 0x0f];
        }
    }

    return out;
}

extern "C" wx_status_t
wx_url_encode(wx_span_t in, const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        return wx::copy_value(a, wx::url_encode(wx::view(in)), out);
    });
}
