/* Redis Cluster: key slots, redirections, and the slot map. */

#include <string_view>

#include <hiredis/hiredis.h>

#include "internal.hpp"

namespace {

/* CRC-16/XMODEM, which Redis Cluster hashes keys with: polynomial 0x1021. */
uint16_t
crc16(std::string_view s)
{
    uint16_t crc = 0;

    for (unsigned char c : s) {
        crc ^= static_cast<uint16_t>(c) << 8;

        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                 : static_cast<uint16_t>(crc << 1);
        }
    }

    return crc;
}

/* Digits only, at most max. */
bool
parse_number(std::string_view s, unsigned max, unsigned *out)
{
    unsigned long v = 0;

    if (s.empty() || s.size() > 5) {
        return false;
    }

    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }

        v = v * 10 + static_cast<unsigned>(c - '0');
    }

    if (v > max) {
        return false;
    }

    *out = static_cast<unsigned>(v);
    return true;
}

/*
 * A node's host as Redis names it: printable, no space, no longer than an
 * IPv6 address; empty means the node that answered.
 */
bool
is_host(std::string_view s)
{
    if (s.size() > 45) {
        return false;
    }

    for (unsigned char c : s) {
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }

    return true;
}

wx_span_t
span_of(std::string_view s)
{
    return { reinterpret_cast<const unsigned char *>(s.data()), s.size() };
}

bool
is_integer(const redisReply *r)
{
    return r != nullptr && r->type == REDIS_REPLY_INTEGER;
}

} // namespace

extern "C" unsigned
wx_redis_slot(wx_span_t key)
{
    std::string_view k(reinterpret_cast<const char *>(key.data), key.len);

    /* the first {...} with something in it is all that is hashed */

    size_t open = k.find('{');

    if (open != std::string_view::npos) {
        size_t close = k.find('}', open + 1);

        if (close != std::string_view::npos && close > open + 1) {
            k = k.substr(open + 1, close - open - 1);
        }
    }

    return crc16(k) & (WX_REDIS_SLOTS - 1);
}

extern "C" wx_status_t
wx_redis_redirect(wx_span_t error, wx_redirect_t *out)
{
    if (out == nullptr || (error.data == nullptr && error.len)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        std::string_view e(reinterpret_cast<const char *>(error.data),
                           error.len);

        *out = wx_redirect_t{};

        if (e.substr(0, 6) == "MOVED ") {
            e.remove_prefix(6);

        } else if (e.substr(0, 4) == "ASK ") {
            out->ask = 1;
            e.remove_prefix(4);

        } else {
            return WX_ERR_NOT_FOUND;
        }

        size_t space = e.find(' ');
        size_t colon = e.rfind(':');

        if (space == std::string_view::npos || colon == std::string_view::npos
            || colon < space
            || !parse_number(e.substr(0, space), WX_REDIS_SLOTS - 1,
                             &out->slot)
            || !parse_number(e.substr(colon + 1), 65535, &out->port)
            || out->port == 0)
        {
            return WX_ERR_REPLY;
        }

        std::string_view host = e.substr(space + 1, colon - space - 1);

        if (!is_host(host)) {
            return WX_ERR_REPLY;
        }

        out->host = span_of(host);

        return WX_OK;
    });
}

extern "C" wx_status_t
wx_redis_cluster_slots(const struct redisReply *reply, wx_slot_range_pt range,
    void *data)
{
    if (reply == nullptr || range == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
            return WX_ERR_REPLY;
        }

        /* each: [first, last, [host, port, id, ...], replicas...] */

        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *r = reply->element[i];

            if (r == nullptr || r->type != REDIS_REPLY_ARRAY
                || r->elements < 3 || !is_integer(r->element[0])
                || !is_integer(r->element[1]))
            {
                return WX_ERR_REPLY;
            }

            long long first = r->element[0]->integer;
            long long last = r->element[1]->integer;
            const redisReply *node = r->element[2];

            if (first < 0 || last < first || last >= WX_REDIS_SLOTS
                || node == nullptr || node->type != REDIS_REPLY_ARRAY
                || node->elements < 2
                || node->element[0]->type != REDIS_REPLY_STRING
                || !is_integer(node->element[1])
                || node->element[1]->integer < 1
                || node->element[1]->integer > 65535)
            {
                return WX_ERR_REPLY;
            }

            std::string_view host(node->element[0]->str,
                                  node->element[0]->len);

            if (!is_host(host)) {
                return WX_ERR_REPLY;
            }

            if (range(data, static_cast<unsigned>(first),
                      static_cast<unsigned>(last), span_of(host),
                      static_cast<unsigned>(node->element[1]->integer))
                != 0)
            {
                return WX_ERR_INTERNAL;
            }
        }

        return WX_OK;
    });
}
