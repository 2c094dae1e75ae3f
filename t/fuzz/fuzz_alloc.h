// The fuzz targets' allocator: malloc, all freed after each input.

#ifndef WX_FUZZ_ALLOC_H
#define WX_FUZZ_ALLOC_H

#include <cstdlib>
#include <vector>

#include "wx_core.h"

class fuzz_arena {
public:
    fuzz_arena() : allocator_{alloc, this} {}

    fuzz_arena(const fuzz_arena &) = delete;
    fuzz_arena &operator=(const fuzz_arena &) = delete;

    ~fuzz_arena()
    {
        for (void *p : blocks_) {
            std::free(p);
        }
    }

    const wx_allocator_t *get() const { return &allocator_; }

private:
    static void *alloc(void *pool, size_t size)
    {
        void *p = std::malloc(size ? size : 1);
        static_cast<fuzz_arena *>(pool)->blocks_.push_back(p);
        return p;
    }

    wx_allocator_t       allocator_;
    std::vector<void *>  blocks_;
};

#endif
