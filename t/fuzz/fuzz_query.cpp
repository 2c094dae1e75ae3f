// libFuzzer target: query strings.  The first line is an argument name,
// looked for beside the callback's own, the rest the query.  Its value is
// also a page for wechat_jssdk to sign, as the url argument would be.

#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_alloc.h"

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    std::string in(reinterpret_cast<const char *>(data), size);
    size_t nl = in.find('\n');
    std::string name = in.substr(0, nl);
    std::string query = nl == std::string::npos ? "" : in.substr(nl + 1);

    fuzz_arena arena;
    const wx_allocator_t *a = arena.get();
    const char *names[] = {"signature", name.c_str(), "nonce"};
    wx_span_t values[3];

    if (wx_query_args({reinterpret_cast<const unsigned char *>(query.data()),
                       query.size()}, names, 3, a, values) != WX_OK)
    {
        return 0;
    }

    for (const wx_span_t &v : values) {
        if (v.data != nullptr && v.data[v.len] != '\0') {
            std::abort();
        }
    }

    // a page signed is the url up to its fragment, printable, on a host
    const wx_span_t hosts[] = {
        {reinterpret_cast<const unsigned char *>("www.example.com"), 15},
        {reinterpret_cast<const unsigned char *>("m.example.com:8443"), 18}};
    wx_span_t page;

    if (wx_jssdk_page(values[1], hosts, 2, &page) == WX_OK) {
        if (page.data != values[1].data || page.len > values[1].len) {
            std::abort();
        }

        for (size_t i = 0; i < page.len; i++) {
            if (page.data[i] < 0x21 || page.data[i] > 0x7e
                || page.data[i] == '#')
            {
                std::abort();
            }
        }
    }

    return 0;
}
