// libFuzzer target: query strings.  The first line is the argument name,
// the rest the query.

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
    wx_span_t value;

    if (wx_query_arg({reinterpret_cast<const unsigned char *>(query.data()),
                      query.size()}, name.c_str(), a, &value) == WX_OK
        && value.data[value.len] != '\0')
    {
        std::abort();
    }

    return 0;
}
