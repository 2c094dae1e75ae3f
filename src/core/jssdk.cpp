#include <string>

#include "internal.hpp"

namespace {

constexpr std::string_view http_scheme = "http://";
constexpr std::string_view https_scheme = "https://";

bool
same_text(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) {
        return false;
    }

    for (size_t i = 0; i < a.size(); i++) {
        unsigned char x = static_cast<unsigned char>(a[i]);
        unsigned char y = static_cast<unsigned char>(b[i]);

        if (x >= 'A' && x <= 'Z') {
            x += 'a' - 'A';
        }

        if (y >= 'A' && y <= 'Z') {
            y += 'a' - 'A';
        }

        if (x != y) {
            return false;
        }
    }

    return true;
}

std::string_view
without_fragment(std::string_view url)
{
    return url.substr(0, url.find('#'));
}

/*
 * The host of an authority "host[:port]" or "[v6][:port]", or an empty
 * view when the authority is malformed: an empty host, or a port that is
 * not 1 to 5 digits.
 */
std::string_view
host_of(std::string_view authority)
{
    size_t colon;

    if (!authority.empty() && authority[0] == '[') {
        size_t close = authority.find(']');

        if (close == std::string_view::npos) {
            return {};
        }

        colon = close + 1;

        if (colon < authority.size() && authority[colon] != ':') {
            return {};
        }

    } else {
        colon = authority.find(':');
    }

    if (colon >= authority.size()) {
        return authority;
    }

    std::string_view port = authority.substr(colon + 1);

    if (port.empty() || port.size() > 5) {
        return {};
    }

    for (char c : port) {
        if (c < '0' || c > '9') {
            return {};
        }
    }

    return authority.substr(0, colon);
}

wx_status_t
check_page(std::string_view url, const wx_span_t *hosts, size_t n,
    std::string_view *page)
{
    std::string_view rest;

    if (url.empty() || url.size() > WX_JSSDK_URL_MAX) {
        return WX_ERR_ARGS;
    }

    for (char c : url) {
        if (c < 0x21 || c > 0x7e || c == '\\') {
            return WX_ERR_ARGS;
        }
    }

    if (url.substr(0, http_scheme.size()) == http_scheme) {
        rest = url.substr(http_scheme.size());

    } else if (url.substr(0, https_scheme.size()) == https_scheme) {
        rest = url.substr(https_scheme.size());

    } else {
        return WX_ERR_ARGS;
    }

    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));

    if (authority.find('@') != std::string_view::npos) {
        return WX_ERR_ARGS;
    }

    std::string_view host = host_of(authority);

    if (host.empty()) {
        return WX_ERR_ARGS;
    }

    for (size_t i = 0; i < n; i++) {
        std::string_view listed = wx::view(hosts[i]);
        bool with_port = listed.find(':') != std::string_view::npos
                         && listed.back() != ']';

        if (same_text(with_port ? authority : host, listed)) {
            *page = without_fragment(url);
            return WX_OK;
        }
    }

    return WX_ERR_NOT_FOUND;
}

} // namespace

extern "C" wx_status_t
wx_jssdk_page(wx_span_t url, const wx_span_t *hosts, size_t n,
    wx_span_t *page)
{
    if ((hosts == nullptr && n) || page == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view p;
        wx_status_t rc = check_page(wx::view(url), hosts, n, &p);

        if (rc == WX_OK) {
            *page = wx::span(p);
        }

        return rc;
    });
}

extern "C" wx_status_t
wx_jssdk_sign(wx_span_t ticket, wx_span_t noncestr, int64_t timestamp,
    wx_span_t url, char out[WX_SIGNATURE_LEN])
{
    if (!wx::present(ticket) || !wx::present(noncestr) || !wx::present(url)
        || out == nullptr)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string text;

        text.reserve(ticket.len + noncestr.len + url.len + 64);
        text += "jsapi_ticket=";
        text += wx::view(ticket);
        text += "&noncestr=";
        text += wx::view(noncestr);
        text += "&timestamp=";
        text += std::to_string(timestamp);
        text += "&url=";
        text += without_fragment(wx::view(url));

        return wx_sha1_hex(wx::span(text), out);
    });
}
