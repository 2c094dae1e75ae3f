#include <cstdint>
#include <limits>

#include "json.hpp"
#include "wx_oauth.h"

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr std::string_view http_prefix = "http://";
constexpr std::string_view https_prefix = "https://";

/* An answer as a JSON object; the size cap keeps parsing cheap. */
wx_status_t
parse_answer(wx_span_t in, json *doc)
{
    if (in.len > WX_API_MAX_SIZE) {
        return WX_ERR_TOO_LARGE;
    }

    std::string_view text = wx::view(in);
    *doc = json::parse(text.begin(), text.end(), nullptr, false);

    return doc->is_object() ? WX_OK : WX_ERR_JSON;
}

/* A JSON integer that fits int64_t (an unsigned one may not). */
bool
as_int64(const json &v, int64_t *out)
{
    if (v.is_number_unsigned()) {
        auto u = v.get<uint64_t>();

        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            return false;
        }

        *out = static_cast<int64_t>(u);
        return true;
    }

    if (v.is_number_integer()) {
        *out = v.get<int64_t>();
        return true;
    }

    return false;
}

/* 0 when the answer has no errcode: successful answers carry none. */
wx_status_t
errcode_of(const json &doc, int64_t *errcode)
{
    auto it = doc.find("errcode");

    if (it == doc.end()) {
        *errcode = 0;
        return WX_OK;
    }

    return as_int64(*it, errcode) ? WX_OK : WX_ERR_JSON;
}

/* The answer of a call that succeeded, or why it is not one. */
wx_status_t
parse_success(wx_span_t in, json *doc)
{
    int64_t errcode;
    wx_status_t rc = parse_answer(in, doc);

    if (rc == WX_OK) {
        rc = errcode_of(*doc, &errcode);
    }

    if (rc == WX_OK && errcode != 0) {
        rc = WX_ERR_API;
    }

    return rc;
}

/*
 * A string field of 1..max visible ASCII characters: it goes into URLs,
 * Redis and log lines as it is.
 */
bool
printable_field(const json &doc, const char *key, size_t max,
    std::string_view *out)
{
    auto it = doc.find(key);

    if (it == doc.end() || !it->is_string()) {
        return false;
    }

    const std::string &s = it->get_ref<const std::string &>();

    if (s.empty() || s.size() > max) {
        return false;
    }

    for (char c : s) {
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }

    *out = s;
    return true;
}

bool
positive_field(const json &doc, const char *key, int64_t *out)
{
    auto it = doc.find(key);
    return it != doc.end() && as_int64(*it, out) && *out > 0;
}

/*
 * errmsg fit for a log line and a JSON answer: C0, DEL and C1 controls
 * become '?', and it is cut at a character boundary within cap bytes.
 * The JSON parser has checked that s is valid UTF-8.
 */
std::string
sanitized(std::string_view s, size_t cap)
{
    std::string out;

    for (size_t i = 0; i < s.size(); ) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        bool control = c < 0x20 || c == 0x7f
                       || (c == 0xc2
                           && static_cast<unsigned char>(s[i + 1]) < 0xa0);
        std::string_view ch = control ? "?" : s.substr(i, len);

        if (out.size() + ch.size() > cap) {
            break;
        }

        out += ch;
        i += len;
    }

    return out;
}

/* An openid or unionid in WeChat's shape: URL-safe letters, capped. */
bool
id_field(const json &doc, const char *key, std::string_view *out)
{
    if (!printable_field(doc, key, WX_OAUTH_ID_MAX, out)) {
        return false;
    }

    for (char c : *out) {
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return false;
        }
    }

    return true;
}

/* An optional id: absent or empty is none, anything else is checked. */
bool
optional_id(const json &doc, const char *key, std::string_view *out)
{
    auto it = doc.find(key);

    *out = {};

    if (it == doc.end()
        || (it->is_string() && it->get_ref<const std::string &>().empty()))
    {
        return true;
    }

    return id_field(doc, key, out);
}

std::string
text(wx_span_t s)
{
    return std::string(wx::view(s));
}

} // namespace

extern "C" wx_status_t
wx_api_error(wx_span_t json_text, const wx_allocator_t *a, int64_t *errcode,
    wx_span_t *errmsg)
{
    if (a == nullptr || errcode == nullptr || errmsg == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        json doc;
        int64_t code;
        wx_status_t rc = parse_answer(json_text, &doc);

        if (rc == WX_OK) {
            rc = errcode_of(doc, &code);
        }

        if (rc != WX_OK) {
            return rc;
        }

        std::string msg;
        auto it = doc.find("errmsg");

        if (code != 0 && it != doc.end() && it->is_string()) {
            msg = sanitized(it->get_ref<const std::string &>(),
                            WX_API_ERRMSG_MAX);
        }

        rc = wx::copy_value(a, msg, errmsg);
        if (rc == WX_OK) {
            *errcode = code;
        }

        return rc;
    });
}

namespace {

/* An answer that hands out a credential: its field and a positive life. */
wx_status_t
credential(wx_span_t json_text, const char *field, size_t max,
    const wx_allocator_t *a, wx_span_t *value, int64_t *expires_in)
{
    if (a == nullptr || value == nullptr || expires_in == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        json doc;
        std::string_view v;
        int64_t expires;
        wx_status_t rc = parse_success(json_text, &doc);

        if (rc != WX_OK) {
            return rc;
        }

        if (!printable_field(doc, field, max, &v)
            || !positive_field(doc, "expires_in", &expires))
        {
            return WX_ERR_JSON;
        }

        rc = wx::copy_value(a, v, value);
        if (rc == WX_OK) {
            *expires_in = expires;
        }

        return rc;
    });
}

} // namespace

extern "C" wx_status_t
wx_api_token(wx_span_t json_text, const wx_allocator_t *a, wx_span_t *token,
    int64_t *expires_in)
{
    return credential(json_text, "access_token", WX_API_TOKEN_MAX, a, token,
                      expires_in);
}

extern "C" wx_status_t
wx_api_jsapi_ticket(wx_span_t json_text, const wx_allocator_t *a,
    wx_span_t *ticket, int64_t *expires_in)
{
    return credential(json_text, "ticket", WX_API_TOKEN_MAX, a, ticket,
                      expires_in);
}

extern "C" wx_status_t
wx_api_qrcode(wx_span_t json_text, const wx_allocator_t *a,
    wx_span_t *ticket, wx_span_t *url, int64_t *expire_seconds)
{
    if (a == nullptr || ticket == nullptr || url == nullptr
        || expire_seconds == nullptr)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        json doc;
        std::string_view t, u;
        int64_t expires = 0;
        wx_status_t rc = parse_success(json_text, &doc);

        if (rc != WX_OK) {
            return rc;
        }

        if (!printable_field(doc, "ticket", WX_API_TICKET_MAX, &t)
            || !printable_field(doc, "url", WX_API_URL_MAX, &u)
            || (u.substr(0, http_prefix.size()) != http_prefix
                && u.substr(0, https_prefix.size()) != https_prefix)
            || (doc.contains("expire_seconds")
                && !positive_field(doc, "expire_seconds", &expires)))
        {
            return WX_ERR_JSON;
        }

        rc = wx::copy_value(a, t, ticket);
        if (rc == WX_OK) {
            rc = wx::copy_value(a, u, url);
        }

        if (rc == WX_OK) {
            *expire_seconds = expires;
        }

        return rc;
    });
}

extern "C" wx_status_t
wx_api_qrcode_request(wx_span_t scene, int64_t expire_seconds,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr || !wx::present(scene)
        || scene.len > WX_API_SCENE_MAX || expire_seconds < 1
        || expire_seconds > WX_API_QR_EXPIRE_MAX)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        ordered_json scene_obj = {{"scene_str", text(scene)}};
        ordered_json body = {
            {"expire_seconds", expire_seconds},
            {"action_name", "QR_STR_SCENE"},
            {"action_info", {{"scene", scene_obj}}}
        };

        return wx::json_out(body, a, out);
    });
}

extern "C" wx_status_t
wx_api_stable_token_request(wx_span_t appid, wx_span_t secret,
    int force_refresh, const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr || !wx::present(appid)
        || !wx::present(secret))
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        ordered_json body = {
            {"grant_type", "client_credential"},
            {"appid", text(appid)},
            {"secret", text(secret)},
            {"force_refresh", force_refresh != 0}
        };

        return wx::json_out(body, a, out);
    });
}

extern "C" wx_status_t
wx_api_template_request(wx_span_t openid, wx_span_t template_id,
    wx_span_t url, const wx_template_field_t *data, size_t n,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr || !wx::present(openid)
        || !wx::present(template_id) || (data == nullptr && n > 0))
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        ordered_json fields = ordered_json::object();

        for (size_t i = 0; i < n; i++) {
            if (!wx::present(data[i].name)) {
                return WX_ERR_ARGS;
            }

            fields[text(data[i].name)] = {{"value", text(data[i].value)}};
        }

        ordered_json body = {
            {"touser", text(openid)},
            {"template_id", text(template_id)}
        };

        if (wx::present(url)) {
            body["url"] = text(url);
        }

        body["data"] = std::move(fields);

        return wx::json_out(body, a, out);
    });
}

extern "C" wx_status_t
wx_api_custom_text_request(wx_span_t openid, wx_span_t content,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr || !wx::present(openid)
        || !wx::present(content))
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        ordered_json message = {{"content", text(content)}};
        ordered_json body = {
            {"touser", text(openid)},
            {"msgtype", "text"},
            {"text", message}
        };

        return wx::json_out(body, a, out);
    });
}

extern "C" wx_status_t
wx_api_oauth_token(wx_span_t json_text, const wx_allocator_t *a,
    wx_oauth_token_t *out)
{
    if (a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        json doc;
        std::string_view token, openid, unionid, scope;
        wx_status_t rc = parse_success(json_text, &doc);

        if (rc != WX_OK) {
            return rc;
        }

        if (!printable_field(doc, "access_token", WX_API_TOKEN_MAX, &token)
            || !id_field(doc, "openid", &openid)
            || !optional_id(doc, "unionid", &unionid)
            || (doc.contains("scope")
                && !printable_field(doc, "scope", 64, &scope)))
        {
            return WX_ERR_JSON;
        }

        *out = {};

        rc = wx::copy_value(a, token, &out->access_token);
        if (rc == WX_OK) {
            rc = wx::copy_value(a, openid, &out->openid);
        }
        if (rc == WX_OK) {
            rc = wx::copy_out(a, unionid, &out->unionid);
        }
        if (rc == WX_OK) {
            rc = wx::copy_out(a, scope, &out->scope);
        }

        return rc;
    });
}

extern "C" wx_status_t
wx_api_oauth_userinfo(wx_span_t json_text, const wx_allocator_t *a,
    wx_oauth_user_t *out)
{
    if (a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        json doc;
        std::string_view openid, unionid, avatar;
        std::string nickname;
        wx_status_t rc = parse_success(json_text, &doc);

        if (rc != WX_OK) {
            return rc;
        }

        if (!id_field(doc, "openid", &openid)
            || !optional_id(doc, "unionid", &unionid))
        {
            return WX_ERR_JSON;
        }

        auto nick = doc.find("nickname");

        if (nick != doc.end()) {
            if (!nick->is_string()) {
                return WX_ERR_JSON;
            }

            nickname = sanitized(nick->get_ref<const std::string &>(),
                                 WX_OAUTH_NICKNAME_MAX);
        }

        auto img = doc.find("headimgurl");

        if (img != doc.end()
            && !(img->is_string()
                 && img->get_ref<const std::string &>().empty()))
        {
            if (!printable_field(doc, "headimgurl", WX_API_URL_MAX, &avatar)
                || (avatar.substr(0, http_prefix.size()) != http_prefix
                    && avatar.substr(0, https_prefix.size())
                       != https_prefix))
            {
                return WX_ERR_JSON;
            }
        }

        *out = {};

        rc = wx::copy_value(a, openid, &out->openid);
        if (rc == WX_OK) {
            rc = wx::copy_out(a, unionid, &out->unionid);
        }
        if (rc == WX_OK) {
            rc = wx::copy_out(a, nickname, &out->nickname);
        }
        if (rc == WX_OK) {
            rc = wx::copy_out(a, avatar, &out->avatar);
        }

        return rc;
    });
}
