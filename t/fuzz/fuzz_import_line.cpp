// libFuzzer target: lines of a bulk import of bindings, CSV or NDJSON.
// The decoded values lie inside the scratch buffer, which is no longer
// than the line.

#include <cstdlib>
#include <vector>

#include "wx_core.h"

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    std::vector<unsigned char> scratch(size + 1, 0xee);
    wx_import_line_t           l;

    if (wx_import_line({data, size}, scratch.data(), &l) != WX_OK) {
        if (l.reason == nullptr) {
            std::abort();
        }

        return 0;
    }

    size_t used = 0;

    for (const wx_span_t &f : {l.user, l.openid, l.unionid}) {
        if (f.data == nullptr) {
            continue;
        }

        if (f.data < scratch.data() || f.data + f.len > scratch.data() + size) {
            std::abort();
        }

        used += f.len;
    }

    if (used > size || scratch[size] != 0xee) {
        std::abort();
    }

    return 0;
}
