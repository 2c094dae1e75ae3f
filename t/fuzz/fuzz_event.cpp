// libFuzzer target: the hardened event XML parser, and the reply builder on
// whatever it parsed.  The parser's direct reader of WeChat's flat shape
// must agree with libxml2 on every input: same status, same fields.

#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_alloc.h"
#include "internal.hpp"

namespace {

bool
same(wx_span_t a, wx_span_t b)
{
    return a.len == b.len && (a.len == 0 || std::memcmp(a.data, b.data,
                                                        a.len) == 0);
}

bool
same_event(const wx_event_t &a, const wx_event_t &b)
{
    return same(a.to_user, b.to_user) && same(a.from_user, b.from_user)
           && same(a.create_time, b.create_time)
           && same(a.msg_type, b.msg_type) && same(a.event, b.event)
           && same(a.event_key, b.event_key) && same(a.ticket, b.ticket)
           && same(a.msg_id, b.msg_id) && same(a.content, b.content)
           && same(a.encrypt, b.encrypt)
           && (a.refused == nullptr) == (b.refused == nullptr)
           && (a.refused == nullptr || std::strcmp(a.refused, b.refused) == 0);
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    fuzz_arena arena;
    const wx_allocator_t *a = arena.get();
    wx_event_t ev, reference;
    wx_span_t reply;

    wx_status_t rc = wx_event_parse({data, size}, a, &ev);

    if (wx::event_parse_with_libxml2({data, size}, a, &reference) != rc
        || !same_event(ev, reference))
    {
        std::abort();
    }

    if (rc == WX_OK) {
        wx_event_check_message(&ev);
        wx_scene_is_ours(wx_scene_from_event(&ev));
        wx_reply_text(ev.from_user, ev.to_user, 1700000000, ev.content, a,
                      &reply);
    }

    return 0;
}
