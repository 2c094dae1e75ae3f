#include "internal.hpp"

#include <cstring>

#include <nlohmann/json.hpp>

namespace {

struct writer {
    unsigned char  *p;

    wx_span_t
    put(std::string_view v)
    {
        wx_span_t s = {p, v.size()};
        std::memcpy(p, v.data(), v.size());
        p += v.size();
        return s;
    }
};

wx_status_t
refuse(wx_import_line_t *out, wx_status_t status, const char *reason)
{
    out->reason = reason;
    return status;
}

/* user,openid[,unionid]: RFC 4180 fields, on one line */
wx_status_t
csv_line(std::string_view in, writer &w, wx_import_line_t *out)
{
    wx_span_t  *fields[] = {&out->user, &out->openid, &out->unionid};
    size_t      i = 0, n = 0;

    for (;;) {
        if (n == 3) {
            return refuse(out, WX_ERR_ARGS, "more than 3 fields");
        }

        wx_span_t  &field = *fields[n++];
        field = {w.p, 0};

        if (i < in.size() && in[i] == '"') {
            for (i++;; i++) {
                if (i == in.size()) {
                    return refuse(out, WX_ERR_ARGS,
                                  "an unterminated quoted field");
                }

                if (in[i] == '"') {
                    if (i + 1 < in.size() && in[i + 1] == '"') {
                        i++;
                    } else {
                        i++;
                        break;
                    }
                }

                *w.p++ = static_cast<unsigned char>(in[i]);
            }

            if (i < in.size() && in[i] != ',') {
                return refuse(out, WX_ERR_ARGS, "more after a quoted field");
            }

        } else {
            for (; i < in.size() && in[i] != ','; i++) {
                if (in[i] == '"') {
                    return refuse(out, WX_ERR_ARGS,
                                  "a quote inside an unquoted field");
                }

                *w.p++ = static_cast<unsigned char>(in[i]);
            }
        }

        field.len = w.p - field.data;

        if (i == in.size()) {
            break;
        }

        i++;                                    /* ',' */
    }

    if (n < 2) {
        return refuse(out, WX_ERR_ARGS, "not 2 or 3 fields");
    }

    out->header = wx::view(out->user) == "user"
                  && wx::view(out->openid) == "openid"
                  && (n == 2 || wx::view(out->unionid) == "unionid");

    return WX_OK;
}

wx_status_t
json_line(std::string_view in, writer &w, wx_import_line_t *out)
{
    static const std::pair<const char *, wx_span_t wx_import_line_t::*>
        fields[] = {
            {"user", &wx_import_line_t::user},
            {"openid", &wx_import_line_t::openid},
            {"unionid", &wx_import_line_t::unionid},
        };

    nlohmann::json doc = nlohmann::json::parse(in.begin(), in.end(),
                                               nullptr, false);

    if (doc.is_discarded() || !doc.is_object()) {
        return refuse(out, WX_ERR_JSON, "not a JSON object");
    }

    for (const auto &[name, member] : fields) {
        auto it = doc.find(name);

        if (it == doc.end() || it->is_null()) {
            continue;
        }

        if (it->is_string()) {
            out->*member = w.put(it->get_ref<const std::string &>());

        } else if (it->is_number_integer()) {
            /* as many digits as the line had, or fewer */
            out->*member = w.put(it->dump());

        } else {
            return refuse(out, WX_ERR_JSON,
                          "a value that is not a string or an integer");
        }
    }

    return WX_OK;
}

} // namespace

extern "C" wx_status_t
wx_import_line(wx_span_t line, unsigned char *scratch, wx_import_line_t *out)
{
    *out = {};
    out->reason = "the line could not be read";

    if (line.len > WX_IMPORT_LINE_MAX) {
        return refuse(out, WX_ERR_TOO_LARGE, "the line is too long");
    }

    if (scratch == nullptr || (line.data == nullptr && line.len)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view  in = wx::view(line);
        writer            w{scratch};

        if (!in.empty() && in.back() == '\r') {
            in.remove_suffix(1);
        }

        if (!in.empty() && in.front() == '{') {
            return json_line(in, w, out);
        }

        return csv_line(in, w, out);
    });
}
