#include "internal.hpp"

namespace {

/* CDATA cannot hold "]]>": close the section after "]]" and reopen it. */
void
append_cdata(std::string &out, std::string_view text)
{
    out += "<![CDATA[";

    for (size_t at; (at = text.find("]]>")) != std::string_view::npos;) {
        out.append(text.data(), at + 2);
        out += "]]><![CDATA[";
        text.remove_prefix(at + 2);
    }

    out.append(text.data(), text.size());
    out += "]]>";
}

void
append_element(std::string &out, const char *name, std::string_view text)
{
    out += '<';
    out += name;
    out += '>';
    append_cdata(out, text);
    out += "</";
    out += name;
    out += '>';
}

} // namespace

extern "C" wx_status_t
wx_reply_text(wx_span_t to_user, wx_span_t from_user, int64_t create_time,
    wx_span_t content, const wx_allocator_t *a, wx_span_t *out)
{
    return wx::guarded([&] {
        std::string xml;
        xml.reserve(160 + to_user.len + from_user.len + content.len);

        xml += "<xml>";
        append_element(xml, "ToUserName", wx::view(to_user));
        append_element(xml, "FromUserName", wx::view(from_user));
        xml += "<CreateTime>" + std::to_string(create_time) + "</CreateTime>";
        append_element(xml, "MsgType", "text");
        append_element(xml, "Content", wx::view(content));
        xml += "</xml>";

        return wx::copy_out(a, xml, out);
    });
}

extern "C" wx_status_t
wx_encrypted_reply(wx_span_t token, wx_span_t encrypt, int64_t timestamp,
    wx_span_t nonce, const wx_allocator_t *a, wx_span_t *out)
{
    return wx::guarded([&] {
        std::string ts = std::to_string(timestamp);
        wx_span_t parts[] = {token, wx::span(ts), nonce, encrypt};
        char sig[WX_SIGNATURE_LEN];

        wx_status_t rc = wx_signature_compute(parts, 4, sig);
        if (rc != WX_OK) {
            return rc;
        }

        std::string xml;
        xml.reserve(200 + encrypt.len + nonce.len);

        xml += "<xml>";
        append_element(xml, "Encrypt", wx::view(encrypt));
        append_element(xml, "MsgSignature",
                       std::string_view(sig, sizeof(sig)));
        xml += "<TimeStamp>" + ts + "</TimeStamp>";
        append_element(xml, "Nonce", wx::view(nonce));
        xml += "</xml>";

        return wx::copy_out(a, xml, out);
    });
}

extern "C" wx_status_t
wx_text_expand(wx_span_t text, const char *const *names,
    const wx_span_t *values, size_t n, const wx_allocator_t *a,
    wx_span_t *out)
{
    if (a == nullptr || out == nullptr || (n && (!names || !values))) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view in = wx::view(text);
        std::string result;

        while (!in.empty()) {
            size_t i = 0;

            for ( /* void */ ; i < n; i++) {
                std::string_view name = names[i];

                if (in.size() >= name.size() + 2 && in[0] == '{'
                    && in.substr(1, name.size()) == name
                    && in[name.size() + 1] == '}')
                {
                    result += wx::view(values[i]);
                    in.remove_prefix(name.size() + 2);
                    break;
                }
            }

            if (i == n) {
                result += in[0];
                in.remove_prefix(1);
            }
        }

        return wx::copy_value(a, result, out);
    });
}
