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
wx_query_args(wx_span_t query, const char *const *names, size_t n,
    const wx_allocator_t *a, wx_span_t *values)
{
    if (names == nullptr || a == nullptr || values == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view q = wx::view(query);

        for (size_t i = 0; i < n; i++) {
            values[i] = {nullptr, 0};
        }

        while (!q.empty()) {
            size_t amp = q.find('&');
            std::string_view pair = q.substr(0, amp);
            q = amp == std::string_view::npos ? std::string_view()
                                              : q.substr(amp + 1);

            size_t eq = pair.find('=');
            std::string_view key = pair.substr(0, eq);

            for (size_t i = 0; i < n; i++) {
                if (values[i].data != nullptr || key != names[i]) {
                    continue;
                }

                std::string_view raw = eq == std::string_view::npos
                                       ? std::string_view()
                                       : pair.substr(eq + 1);

                wx_status_t rc = wx::copy_value(a, form_decode(raw),
                                                &values[i]);
                if (rc != WX_OK) {
                    return rc;
                }

                break;
            }
        }

        return WX_OK;
    });
}
