#include "internal.hpp"

namespace {

int
hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded; a stray '%' stays as it is */
std::string
form_decode(std::string_view in)
{
    std::string out;
    out.reserve(in.size());

    for (size_t i = 0; i < in.size(); i++) {
        char c = in[i];

        if (c == '+') {
            out += ' ';
            continue;
        }

        if (c == '%' && i + 2 < in.size()) {
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);

            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }

        out += c;
    }

    return out;
}

} // namespace

extern "C" wx_status_t
wx_query_arg(wx_span_t query, const char *name, const wx_allocator_t *a,
    wx_span_t *out)
{
    if (name == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view q = wx::view(query);
        std::string_view key(name);

        while (!q.empty()) {
            size_t amp = q.find('&');
            std::string_view pair = q.substr(0, amp);
            q = amp == std::string_view::npos ? std::string_view()
                                              : q.substr(amp + 1);

            size_t eq = pair.find('=');
            if (pair.substr(0, eq) != key) {
                continue;
            }

            std::string_view raw = eq == std::string_view::npos
                                   ? std::string_view() : pair.substr(eq + 1);

            return wx::copy_value(a, form_decode(raw), out);
        }

        *out = {nullptr, 0};
        return WX_ERR_NOT_FOUND;
    });
}
