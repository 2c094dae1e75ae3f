// libFuzzer target: Redis replies as they come off the wire, in pieces of
// the size the first byte picks, through the module's reader (the size
// guard, then hiredis's reader), then the core's reading of each command's
// reply, and of a cluster's: CLUSTER SLOTS, and an error as MOVED or ASK.

#include <algorithm>
#include <cstdlib>
#include <memory>

#include <hiredis/hiredis.h>

#include "fuzz_alloc.h"

namespace {

/* small, so that the cap is reached often */
constexpr size_t max_reply = 4096;

struct reader_free {
    void operator()(wx_resp_reader_t *r) const { wx_resp_reader_free(r); }
};

struct reply_free {
    void operator()(redisReply *r) const { wx_resp_reply_free(r); }
};

/* the fewest bytes of RESP that make the reply */
size_t
resp_size(const redisReply *r)
{
    size_t size = 4;

    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS
        || r->type == REDIS_REPLY_ERROR)
    {
        size = r->len + 3;
    }

    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            size += resp_size(r->element[i]);
        }
    }

    return size;
}

/* each range must lie in the slots, with a host the core checked */
int
check_range(void *, unsigned first, unsigned last, wx_span_t host,
    unsigned port)
{
    if (first > last || last >= WX_REDIS_SLOTS || host.len > 45
        || port == 0 || port > 65535)
    {
        abort();
    }

    return 0;
}

void
dispatch(const redisReply *reply, const wx_allocator_t *a)
{
    wx_resolution_t res;
    wx_claim_t claim;
    wx_token_state_t token_state;
    wx_scene_status_t status;
    wx_span_t json, s;
    wx_redeem_t redeem;
    int64_t ttl;
    static const unsigned char token[] = "t0ken";

    if (resp_size(reply) > max_reply) {
        abort();
    }

    wx_redis_resolution(reply, &res);
    wx_redis_claim(reply, a, &claim);
    wx_redis_token(reply, a, &token_state);
    wx_redis_qrcode_url(reply, {token, 5}, a, &json, &ttl);
    wx_redis_poll_answer(reply, {token, 5}, {token, 5}, a, &status, &json);
    wx_redis_redeem(reply, a, &redeem);
    wx_redis_string(reply, a, &s);
    wx_span_t names[5];
    size_t n;
    wx_redis_names(reply, a, names, 5, &n);
    wx_reuse_t reuse;
    wx_redis_qrcode_reuse(reply, a, &reuse);
    wx_redis_cluster_slots(reply, check_range, nullptr);

    if (reply->type == REDIS_REPLY_ERROR) {
        wx_redirect_t to;
        wx_span_t error = {
            reinterpret_cast<const unsigned char *>(reply->str),
            reply->len };

        if (wx_redis_redirect(error, &to) == WX_OK
            && (to.slot >= WX_REDIS_SLOTS || to.port == 0
                || to.port > 65535 || to.host.len > 45))
        {
            abort();
        }

        wx_redis_slot(error);
    }
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    std::unique_ptr<wx_resp_reader_t, reader_free> reader(
        wx_resp_reader_create(max_reply));
    fuzz_arena arena;
    size_t piece = data[0] % 16 + 1;
    const unsigned char *p = data + 1, *last = data + size;

    while (p < last) {
        size_t n = std::min(piece, static_cast<size_t>(last - p));

        if (wx_resp_reader_feed(reader.get(), {p, n}) != WX_OK) {
            break;
        }

        p += n;

        for (;;) {
            redisReply *raw = nullptr;

            if (wx_resp_reader_next(reader.get(), &raw) != WX_OK
                || raw == nullptr)
            {
                break;
            }

            std::unique_ptr<redisReply, reply_free> reply(raw);
            dispatch(reply.get(), arena.get());
        }
    }

    return 0;
}
