// libFuzzer target: the hardened event XML parser, and the reply builder on
// whatever it parsed.

#include <cstdlib>
#include <vector>

#include "fuzz_alloc.h"

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    fuzz_arena arena;
    const wx_allocator_t *a = arena.get();
    wx_event_t ev;
    wx_span_t reply;

    if (wx_event_parse({data, size}, a, &ev) == WX_OK) {
        wx_event_check_message(&ev);
        wx_scene_is_ours(wx_scene_from_event(&ev));
        wx_reply_text(ev.from_user, ev.to_user, 1700000000, ev.content, a,
                      &reply);
    }

    return 0;
}
