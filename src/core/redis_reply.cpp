#include <array>

#include <hiredis/hiredis.h>

#include "internal.hpp"

namespace {

constexpr std::array<std::string_view, WX_SCENE_STATUSES> statuses = {
    "bound", "conflict", "expired", "confirmed", "unbound", "code_sent",
    "scanned", "confirming", "pending", "redeemed", "cancelled"
};

/* The status a script or a hash names; WX_SCENE_STATUSES for none. */
wx_scene_status_t
status_of(std::string_view name)
{
    size_t i = 0;

    while (i < statuses.size() && statuses[i] != name) {
        i++;
    }

    return static_cast<wx_scene_status_t>(i);
}

bool
is_string(const redisReply *r)
{
    return r != nullptr && r->type == REDIS_REPLY_STRING;
}

std::string_view
text(const redisReply *r)
{
    return std::string_view(r->str, r->len);
}

bool
parse_time(std::string_view s, int64_t *out)
{
    int64_t v = 0;

    if (s.empty() || s.size() > 18) {
        return false;
    }

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

extern "C" const char *
wx_scene_status_name(wx_scene_status_t status)
{
    return status < statuses.size() ? statuses[status].data() : "";
}

extern "C" wx_status_t
wx_redis_resolution(const struct redisReply *reply, wx_resolution_t *out)
{
    if (reply == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        *out = wx_resolution_t{};

        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
            && is_string(reply->element[0])
            && text(reply->element[0]) == "replay")
        {
            out->replay = 1;
            return WX_OK;
        }

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
            return WX_ERR_REPLY;
        }

        const redisReply *const *e = reply->element;

        if (!is_string(e[0]) || !is_string(e[1]) || !is_string(e[2])) {
            return WX_ERR_REPLY;
        }

        out->outcome = status_of(text(e[0]));

        if (out->outcome >= WX_SCAN_OUTCOMES
            || !parse_time(text(e[1]), &out->time))
        {
            return WX_ERR_REPLY;
        }

        out->duplicate = text(e[2]) == "dup";

        return WX_OK;
    });
}

namespace {

bool is_name(const redisReply *r);

} // namespace

extern "C" wx_status_t
wx_redis_claim(const struct redisReply *reply, const wx_allocator_t *a,
    wx_claim_t *out)
{
    if (reply == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        *out = wx_claim_t{};

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
            || reply->elements > 3 || !is_string(reply->element[0]))
        {
            return WX_ERR_REPLY;
        }

        std::string_view state = text(reply->element[0]);

        if (state == "replay" && reply->elements == 1) {
            out->replay = 1;
            return WX_OK;
        }

        if (state != "new" && state != "retry") {
            return WX_ERR_REPLY;
        }

        out->retry = state == "retry";

        /* they become $wechat_user and $wechat_unionid: names, or none */

        wx_span_t *fields[] = { &out->user, &out->unionid };

        for (size_t i = 1; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];

            if (e->type == REDIS_REPLY_NIL) {
                continue;
            }

            if (!is_string(e)) {
                return WX_ERR_REPLY;
            }

            if (is_name(e)) {
                wx_status_t rc = wx::copy_out(a, text(e), fields[i - 1]);

                if (rc != WX_OK) {
                    return rc;
                }
            }
        }

        return WX_OK;
    });
}

namespace {

bool
is_integer(const redisReply *r)
{
    return r != nullptr && r->type == REDIS_REPLY_INTEGER;
}

/* Printable, no space, at most max bytes: WeChat's tokens, tickets, urls. */
bool
is_printable(std::string_view t, size_t max)
{
    if (t.size() > max) {
        return false;
    }

    for (char c : t) {
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }

    return true;
}

/* An access_token as WeChat issues it. */
bool
is_token(std::string_view t)
{
    return !t.empty() && is_printable(t, WX_API_TOKEN_MAX);
}

} // namespace

extern "C" wx_status_t
wx_redis_token(const struct redisReply *reply, const wx_allocator_t *a,
    wx_token_state_t *out)
{
    if (reply == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        *out = wx_token_state_t{};

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
            return WX_ERR_REPLY;
        }

        const redisReply *const *e = reply->element;

        if (!is_integer(e[1]) || !is_integer(e[3]) || !is_integer(e[4])
            || e[4]->integer < 0
            || (e[0]->type != REDIS_REPLY_NIL && !is_string(e[0]))
            || (e[2]->type != REDIS_REPLY_NIL && !is_string(e[2])))
        {
            return WX_ERR_REPLY;
        }

        out->ttl_ms = e[1]->integer;
        out->locked = e[3]->integer == 1;
        out->backoff_ms = e[4]->integer;

        if (is_string(e[2]) && !parse_time(text(e[2]), &out->issued_ms)) {
            return WX_ERR_REPLY;
        }

        if (!is_string(e[0])) {
            return WX_OK;
        }

        if (!is_token(text(e[0]))) {
            return WX_ERR_REPLY;
        }

        return wx::copy_value(a, text(e[0]), &out->token);
    });
}

namespace {

/* Whether token hashes to the stored hash, compared in constant time. */
bool
token_matches(wx_span_t token, const redisReply *stored)
{
    char hash[WX_SHA256_HEX_LEN];

    if (!is_string(stored) || wx_sha256_hex(token, hash) != WX_OK) {
        return false;
    }

    wx_span_t ours = {reinterpret_cast<unsigned char *>(hash), sizeof(hash)};

    return wx_equal_const_time(ours, wx::span(text(stored)));
}

} // namespace

extern "C" wx_status_t
wx_redis_qrcode_url(const struct redisReply *reply, wx_span_t token,
    const wx_allocator_t *a, wx_span_t *url, int64_t *ttl)
{
    if (reply == nullptr || a == nullptr || url == nullptr || ttl == nullptr)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
            || !is_integer(reply->element[2]))
        {
            return WX_ERR_REPLY;
        }

        const redisReply *const *e = reply->element;

        if (!is_string(e[0]) || e[0]->len == 0 || e[0]->len > WX_API_URL_MAX
            || !token_matches(token, e[1]) || e[2]->integer <= 0)
        {
            return WX_ERR_NOT_FOUND;
        }

        *ttl = e[2]->integer;

        return wx::copy_value(a, text(e[0]), url);
    });
}

extern "C" wx_status_t
wx_redis_qrcode_reuse(const struct redisReply *reply, const wx_allocator_t *a,
    wx_reuse_t *out)
{
    if (reply == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        *out = wx_reuse_t{};

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
            || !is_string(reply->element[0]))
        {
            return WX_ERR_REPLY;
        }

        const redisReply *const *e = reply->element;
        std::string_view outcome = text(e[0]);

        if (outcome == "new" && reply->elements == 1) {
            out->outcome = WX_REUSE_NEW;
            return WX_OK;
        }

        if (outcome == "rate" && reply->elements == 2 && is_integer(e[1])) {
            out->outcome = WX_REUSE_RATE;
            return WX_OK;
        }

        if (outcome != "reused" || reply->elements != 4 || !is_string(e[1]) || !is_string(e[2])
            || !is_integer(e[3]) || e[3]->integer < 1
            || !is_printable(text(e[1]), WX_API_TICKET_MAX)
            || !is_printable(text(e[2]), WX_API_URL_MAX))
        {
            return WX_ERR_REPLY;
        }

        out->outcome = WX_REUSE_FOUND;
        out->ttl = e[3]->integer;

        wx_status_t rc = wx::copy_value(a, text(e[1]), &out->ticket);

        return rc == WX_OK ? wx::copy_value(a, text(e[2]), &out->url) : rc;
    });
}

extern "C" wx_status_t
wx_redis_poll_answer(const struct redisReply *reply, wx_span_t scene,
    wx_span_t token, const wx_allocator_t *a, wx_scene_status_t *status,
    wx_span_t *json)
{
    if (reply == nullptr || a == nullptr || status == nullptr
        || json == nullptr)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
            return WX_ERR_REPLY;
        }

        const redisReply *const *e = reply->element;
        wx_scene_status_t state = WX_SCENE_EXPIRED;
        char code[WX_LOGIN_CODE_LEN];

        if (is_string(e[0]) && token_matches(token, e[2])) {
            state = status_of(text(e[0]));
        }

        if (state == WX_SCENE_STATUSES) {
            state = WX_SCENE_EXPIRED;
        }

        wx_json_field_t fields[2] = {
            {"status", WX_JSON_STRING, wx::span(statuses[state]), 0},
            {"openid", WX_JSON_STRING, {nullptr, 0}, 0}
        };
        size_t n = 1;

        if (state == WX_SCENE_BOUND && is_string(e[1])) {
            fields[1].string = wx::span(text(e[1]));
            n = 2;
        }

        /* only the token's holder can make it, and only it is answered */

        if (state == WX_SCENE_CONFIRMED || state == WX_SCENE_UNBOUND) {
            wx_status_t rc = wx_login_code(scene, token, code);
            if (rc != WX_OK) {
                return rc;
            }

            fields[1] = {"code", WX_JSON_STRING,
                         wx::span(std::string_view(code, sizeof(code))), 0};
            n = 2;
        }

        *status = state;

        return wx_json_object(fields, n, a, json);
    });
}

namespace {

/* An openid or a user name that may become a variable or a header. */
bool
is_name(const redisReply *r)
{
    if (!is_string(r) || r->len == 0 || r->len > WX_NAME_MAX) {
        return false;
    }

    for (char c : text(r)) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return false;
        }
    }

    return true;
}

} // namespace

extern "C" wx_status_t
wx_redis_redeem(const struct redisReply *reply, const wx_allocator_t *a,
    wx_redeem_t *out)
{
    if (reply == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        *out = wx_redeem_t{};

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
            || !is_string(reply->element[0]))
        {
            return WX_ERR_REPLY;
        }

        const redisReply *const *e = reply->element;

        if (text(e[0]) == "wrong") {
            if (reply->elements != 2 || !is_string(e[1])) {
                return WX_ERR_REPLY;
            }

            if (text(e[1]) == "wrong") {
                out->refusal = WX_REDEEM_WRONG;

            } else if (text(e[1]) == "burnt") {
                out->refusal = WX_REDEEM_BURNT;

            } else if (text(e[1]) == "not_found") {
                out->refusal = WX_REDEEM_NOT_FOUND;

            } else {
                return WX_ERR_REPLY;
            }

            return WX_ERR_NOT_FOUND;
        }

        if (text(e[0]) != "ok" || reply->elements != 4 || !is_string(e[1])
            || (text(e[1]) != "login" && text(e[1]) != "code")
            || !is_name(e[2])
            || (e[3]->type != REDIS_REPLY_NIL && !is_name(e[3])))
        {
            return WX_ERR_REPLY;
        }

        wx_status_t rc = wx::copy_value(a, text(e[1]), &out->kind);

        if (rc == WX_OK) {
            rc = wx::copy_value(a, text(e[2]), &out->openid);
        }

        if (rc == WX_OK && is_string(e[3])) {
            rc = wx::copy_value(a, text(e[3]), &out->user);
        }

        return rc;
    });
}

extern "C" wx_status_t
wx_redis_names(const struct redisReply *reply, const wx_allocator_t *a,
    wx_span_t *out, size_t max, size_t *n)
{
    if (reply == nullptr || a == nullptr || out == nullptr || n == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
            || reply->elements > max)
        {
            return WX_ERR_REPLY;
        }

        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];

            out[i] = wx_span_t{nullptr, 0};

            if (e->type == REDIS_REPLY_NIL) {
                continue;
            }

            if (!is_name(e)) {
                return WX_ERR_REPLY;
            }

            wx_status_t rc = wx::copy_value(a, text(e), &out[i]);
            if (rc != WX_OK) {
                return rc;
            }
        }

        *n = reply->elements;

        return WX_OK;
    });
}

extern "C" wx_status_t
wx_redis_string(const struct redisReply *reply, const wx_allocator_t *a,
    wx_span_t *out)
{
    if (reply == nullptr || a == nullptr || out == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        if (reply->type == REDIS_REPLY_NIL) {
            return WX_ERR_NOT_FOUND;
        }

        if (reply->type != REDIS_REPLY_STRING) {
            return WX_ERR_REPLY;
        }

        return wx::copy_value(a, text(reply), out);
    });
}
