#include "internal.hpp"

namespace {

constexpr std::string_view scene_prefix = "wxs_";
constexpr std::string_view subscribe_prefix = "qrscene_";

bool
is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

} // namespace

extern "C" wx_span_t
wx_scene_from_event(const wx_event_t *event)
{
    if (event == nullptr || wx::view(event->msg_type) != "event") {
        return {nullptr, 0};
    }

    std::string_view ev = wx::view(event->event);
    std::string_view key = wx::view(event->event_key);

    if (ev == "subscribe") {
        if (key.substr(0, subscribe_prefix.size()) != subscribe_prefix) {
            return {nullptr, 0};
        }

        key.remove_prefix(subscribe_prefix.size());
        return wx::span(key);
    }

    if (ev == "SCAN") {
        return wx::span(key);
    }

    return {nullptr, 0};
}

extern "C" wx_status_t
wx_random_hex(char *out, size_t n)
{
    unsigned char buf[64];

    while (n > 0) {
        size_t chunk = n < sizeof(buf) ? n : sizeof(buf);

        if (!wx::random_bytes(buf, chunk)) {
            return WX_ERR_RANDOM;
        }

        wx::hex_into(buf, chunk, out);
        out += 2 * chunk;
        n -= chunk;
    }

    return WX_OK;
}

extern "C" wx_status_t
wx_scene_new(char out[WX_SCENE_LEN])
{
    std::memcpy(out, scene_prefix.data(), scene_prefix.size());
    return wx_random_hex(out + scene_prefix.size(),
                         (WX_SCENE_LEN - scene_prefix.size()) / 2);
}

extern "C" int
wx_scene_is_ours(wx_span_t scene)
{
    std::string_view s = wx::view(scene);

    if (s.size() != WX_SCENE_LEN
        || s.substr(0, scene_prefix.size()) != scene_prefix)
    {
        return 0;
    }

    for (char c : s.substr(scene_prefix.size())) {
        if (!is_lower_hex(c)) {
            return 0;
        }
    }

    return 1;
}
