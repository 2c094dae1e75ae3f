#include <array>
#include <cstring>

#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "internal.hpp"

namespace {

/*
 * RAND_bytes costs about half a microsecond a call whatever the length, and
 * a push asks for random bytes up to three times (a code, a nonce, the AES
 * prefix).  Each thread draws a block at once and hands it out in order;
 * a byte handed out is wiped, so that the block never holds what a code or
 * a scene already used.
 */
struct random_block {
    std::array<unsigned char, 512>  bytes;
    size_t                          next = bytes.size();    /* empty */
};

thread_local random_block block;

/*
 * A forked child starts with its parent's block: both would hand out the
 * same bytes.  The child, one thread, forgets it.
 */
void
forget_block_in_child()
{
    OPENSSL_cleanse(block.bytes.data(), block.bytes.size());
    block.next = block.bytes.size();
}

bool
fork_safe()
{
    static const bool registered =
        pthread_atfork(nullptr, nullptr, forget_block_in_child) == 0;
    return registered;
}

} // namespace

namespace wx {

bool
random_bytes(unsigned char *out, size_t n)
{
    if (!fork_safe() || n > block.bytes.size() / 4) {
        return RAND_bytes(out, static_cast<int>(n)) == 1;
    }

    if (block.bytes.size() - block.next < n) {
        if (RAND_bytes(block.bytes.data(),
                       static_cast<int>(block.bytes.size())) != 1)
        {
            return false;
        }

        block.next = 0;
    }

    unsigned char *p = block.bytes.data() + block.next;
    std::memcpy(out, p, n);
    OPENSSL_cleanse(p, n);
    block.next += n;
    return true;
}

} // namespace wx
