/*
 * Shared bits of the cmocka unit tests: a bump allocator standing in for an
 * nginx pool, and span helpers.  Expected values in the tests come from
 * outside the core (Python's hashlib, the openssl command line, WeChat's
 * published samples), never from the code under test.
 */

#ifndef WX_TEST_H
#define WX_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wx_core.h"

static unsigned char  test_arena[4 * 1024 * 1024];
static size_t         test_arena_used;

static inline void *
test_alloc(void *pool, size_t size)
{
    (void) pool;

    if (size > sizeof(test_arena) - test_arena_used) {
        return NULL;
    }

    void *p = test_arena + test_arena_used;
    test_arena_used += (size + 15) & ~(size_t) 15;
    return p;
}

static const wx_allocator_t  test_allocator = { test_alloc, NULL };

static inline int
reset_arena(void **state)
{
    (void) state;
    test_arena_used = 0;
    return 0;
}

static inline wx_span_t
S(const char *s)
{
    wx_span_t span = { (const unsigned char *) s, strlen(s) };
    return span;
}

#define assert_span_equal(span, str)                                        \
    do {                                                                    \
        wx_span_t s_ = (span);                                              \
        assert_int_equal(s_.len, strlen(str));                              \
        assert_memory_equal(s_.data ? (const void *) s_.data : "", (str),   \
                            s_.len);                                        \
    } while (0)

#endif
