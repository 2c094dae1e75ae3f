#include <openssl/rand.h>

#include "internal.hpp"

namespace {

/* The largest multiple of 10 a byte holds: bytes below it map evenly. */
constexpr unsigned digit_bytes_limit = 250;

} // namespace

extern "C" wx_status_t
wx_random_digits(char *out, size_t n)
{
    if (out == nullptr || n < 1 || n > WX_DIGITS_MAX) {
        return WX_ERR_ARGS;
    }

    unsigned char buf[WX_DIGITS_MAX * 2];
    size_t done = 0;

    /* each byte is kept with p = 250/256, so a round rarely falls short */
    while (done < n) {
        if (RAND_bytes(buf, sizeof(buf)) != 1) {
            return WX_ERR_RANDOM;
        }

        for (size_t i = 0; i < sizeof(buf) && done < n; i++) {
            if (buf[i] < digit_bytes_limit) {
                out[done++] = static_cast<char>('0' + buf[i] % 10);
            }
        }
    }

    return WX_OK;
}
