// libFuzzer target: Redis replies as they come off the wire (hiredis's
// reader), through the core's reading of each command's reply, and of a
// cluster's: CLUSTER SLOTS, and an error as MOVED or ASK.

#include <cstdlib>
#include <memory>
#include <vector>

#include <hiredis/hiredis.h>

#include "fuzz_alloc.h"

namespace {

struct reader_free {
    void operator()(redisReader *r) const { redisReaderFree(r); }
};

struct reply_free {
    void operator()(redisReply *r) const { freeReplyObject(r); }
};

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

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    std::unique_ptr<redisReader, reader_free> reader(redisReaderCreate());
    wx_redis_limit_reader(reader.get());
    fuzz_arena arena;
    const wx_allocator_t *a = arena.get();

    redisReaderFeed(reader.get(), reinterpret_cast<const char *>(data), size);

    for (;;) {
        void *raw = nullptr;

        if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK
            || raw == nullptr)
        {
            break;
        }

        std::unique_ptr<redisReply, reply_free> reply(
            static_cast<redisReply *>(raw));
        wx_resolution_t res;
        wx_claim_t claim;
        wx_token_state_t token_state;
        wx_scene_status_t status;
        wx_span_t json, s;
        static const unsigned char token[] = "t0ken";

        wx_redis_resolution(reply.get(), &res);
        wx_redis_claim(reply.get(), a, &claim);
        wx_redis_token(reply.get(), a, &token_state);
        int64_t ttl;
        wx_redis_qrcode_url(reply.get(), {token, 5}, a, &json, &ttl);
        wx_redis_poll_answer(reply.get(), {token, 5}, {token, 5}, a, &status,
                             &json);
        wx_redeem_t redeem;
        wx_redis_redeem(reply.get(), a, &redeem);
        wx_redis_string(reply.get(), a, &s);
        wx_span_t names[5];
        size_t n;
        wx_redis_names(reply.get(), a, names, 5, &n);
        wx_reuse_t reuse;
        wx_redis_qrcode_reuse(reply.get(), a, &reuse);
        wx_redis_cluster_slots(reply.get(), check_range, nullptr);

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

    return 0;
}
