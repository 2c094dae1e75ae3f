#include <algorithm>
#include <memory>

#include <hiredis/hiredis.h>

#include "internal.hpp"

namespace {

struct reader_free {
    void operator()(redisReader *r) const { redisReaderFree(r); }
};

/* the digits of a count or an integer: below 2^63 */
constexpr unsigned digits_max = 18;

/*
 * Walks the RESP framing as bytes arrive, without keeping them: where a
 * header ends, how much payload follows, where a reply ends.  It sees a
 * bulk string's size in its header, so a reply too large is refused
 * before hiredis buffers it.
 */
class resp_guard {
public:
    explicit resp_guard(size_t max_size) : max_(max_size) {}

    wx_status_t feed(const unsigned char *p, size_t n);

private:
    wx_status_t byte(unsigned char c);
    wx_status_t header_end();
    void item_end();

    enum class state { type, line, payload };

    size_t      max_;
    state       state_ = state::type;
    char        type_ = 0;
    bool        cr_ = false;        /* the last one was CR */
    bool        negative_ = false;
    unsigned    digits_ = 0;
    long long   value_ = 0;
    size_t      skip_ = 0;          /* payload and CR LF still to come */
    size_t      size_ = 0;          /* of the reply so far */
    long long   left_[WX_RESP_MAX_DEPTH] = {};  /* elements, per level */
    int         depth_ = 0;
};

wx_status_t
resp_guard::feed(const unsigned char *p, size_t n)
{
    const unsigned char *last = p + n;

    while (p < last) {
        if (state_ == state::payload) {
            size_t k = std::min(skip_, static_cast<size_t>(last - p));

            p += k;
            skip_ -= k;

            if (skip_ == 0) {
                state_ = state::type;
                item_end();
            }

            continue;
        }

        wx_status_t rc = byte(*p++);
        if (rc != WX_OK) {
            return rc;
        }
    }

    return WX_OK;
}

wx_status_t
resp_guard::byte(unsigned char c)
{
    if (++size_ > max_) {
        return WX_ERR_TOO_LARGE;
    }

    if (state_ == state::type) {
        if (c != '+' && c != '-' && c != ':' && c != '$' && c != '*') {
            return WX_ERR_REPLY;        /* RESP3, or no RESP at all */
        }

        type_ = static_cast<char>(c);
        state_ = state::line;
        cr_ = false;
        negative_ = false;
        digits_ = 0;
        value_ = 0;
        return WX_OK;
    }

    if (c == '\n' && cr_) {
        return header_end();
    }

    bool text = type_ == '+' || type_ == '-';

    if (cr_ && !text) {
        return WX_ERR_REPLY;    /* a CR inside a number */
    }

    cr_ = c == '\r';

    if (text || cr_) {
        return WX_OK;       /* a status or an error: any text, to the cap */
    }

    if (c == '-' && digits_ == 0 && !negative_) {
        negative_ = true;
        return WX_OK;
    }

    if (c < '0' || c > '9' || digits_ == digits_max) {
        return WX_ERR_REPLY;
    }

    value_ = value_ * 10 + (c - '0');
    digits_++;

    return WX_OK;
}

wx_status_t
resp_guard::header_end()
{
    if (type_ == '+' || type_ == '-') {
        state_ = state::type;
        item_end();
        return WX_OK;
    }

    if (digits_ == 0) {
        return WX_ERR_REPLY;    /* no number, or "-" alone */
    }

    long long value = negative_ ? -value_ : value_;

    state_ = state::type;

    if (type_ == ':' || value == -1) {
        item_end();             /* an integer, a nil */
        return WX_OK;
    }

    if (value < -1) {
        return WX_ERR_REPLY;
    }

    if (type_ == '$') {
        if (static_cast<unsigned long long>(value) + 2 > max_ - size_) {
            return WX_ERR_TOO_LARGE;
        }

        size_ += value + 2;
        skip_ = value + 2;
        state_ = state::payload;
        return WX_OK;
    }

    if (value == 0) {
        item_end();             /* an empty array */
        return WX_OK;
    }

    if (depth_ == WX_RESP_MAX_DEPTH) {
        return WX_ERR_REPLY;
    }

    left_[depth_++] = value;

    return WX_OK;
}

/* An element is complete: so are the arrays it completes, and the reply. */
void
resp_guard::item_end()
{
    while (depth_ > 0) {
        if (--left_[depth_ - 1] > 0) {
            return;
        }

        depth_--;
    }

    size_ = 0;
}

redisReplyObjectFunctions   limited_functions;
redisReplyObjectFunctions  *default_functions;

/* its count's type is int in hiredis 0.14, size_t in 1.x */
template <class Count>
void *
create_limited_array(const redisReadTask *task, Count elements)
{
    if (elements > static_cast<Count>(task->parent ? WX_REDIS_MAX_ELEMENTS
                                                   : WX_REDIS_MAX_RANGES))
    {
        return nullptr;     /* the reader reports out of memory */
    }

    return default_functions->createArray(task, elements);
}

} // namespace

struct wx_resp_reader_s {
    explicit wx_resp_reader_s(size_t max_size) : guard(max_size) {}

    resp_guard                                guard;
    std::unique_ptr<redisReader, reader_free> reader{redisReaderCreate()};
    bool                                      failed = false;
};

extern "C" void
wx_redis_limit_reader(struct redisReader *reader)
{
    if (reader == nullptr || reader->fn == &limited_functions
        || reader->fn == nullptr)
    {
        return;
    }

    if (default_functions == nullptr) {
        default_functions = reader->fn;
        limited_functions = *reader->fn;
        limited_functions.createArray = create_limited_array;
    }

    reader->fn = &limited_functions;
}

extern "C" wx_resp_reader_t *
wx_resp_reader_create(size_t max_size)
{
    try {
        auto r = std::make_unique<wx_resp_reader_t>(max_size);

        if (r->reader == nullptr) {
            return nullptr;
        }

        wx_redis_limit_reader(r->reader.get());

        return r.release();

    } catch (...) {
        return nullptr;
    }
}

extern "C" void
wx_resp_reader_free(wx_resp_reader_t *r)
{
    delete r;
}

extern "C" wx_status_t
wx_resp_reader_feed(wx_resp_reader_t *r, wx_span_t bytes)
{
    if (r == nullptr || (bytes.data == nullptr && bytes.len)) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        if (r->failed) {
            return WX_ERR_REPLY;
        }

        wx_status_t rc = r->guard.feed(bytes.data, bytes.len);

        if (rc == WX_OK
            && redisReaderFeed(r->reader.get(),
                               reinterpret_cast<const char *>(bytes.data),
                               bytes.len)
               != REDIS_OK)
        {
            rc = WX_ERR_NOMEM;
        }

        r->failed = rc != WX_OK;

        return rc;
    });
}

extern "C" wx_status_t
wx_resp_reader_next(wx_resp_reader_t *r, struct redisReply **reply)
{
    if (r == nullptr || reply == nullptr) {
        return WX_ERR_ARGS;
    }

    *reply = nullptr;

    if (r->failed) {
        return WX_ERR_REPLY;
    }

    void *raw = nullptr;

    if (redisReaderGetReply(r->reader.get(), &raw) != REDIS_OK) {
        r->failed = true;
        return WX_ERR_REPLY;
    }

    *reply = static_cast<redisReply *>(raw);

    return WX_OK;
}

extern "C" void
wx_resp_reply_free(struct redisReply *reply)
{
    if (reply != nullptr) {
        freeReplyObject(reply);
    }
}
