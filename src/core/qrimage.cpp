#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

#include <qrencode.h>
#include <zlib.h>

#include "internal.hpp"

namespace {

/* The quiet zone the QR standard asks for, in modules. */
constexpr unsigned svg_margin = 4;

constexpr std::string_view png_signature = "\x89PNG\r\n\x1a\n";

struct qrcode_free {
    void operator()(QRcode *q) const { QRcode_free(q); }
};

using qrcode_ptr = std::unique_ptr<QRcode, qrcode_free>;

/* The symbol of text at level M, with the most compact modes for it. */
wx_status_t
encode(wx_span_t text, qrcode_ptr *out)
{
    std::string_view s = wx::view(text);

    /* libqrencode takes a C string: a NUL inside would cut the text */
    if (s.empty() || s.size() > WX_QR_MAX_TEXT
        || s.find('\0') != std::string_view::npos)
    {
        return WX_ERR_ARGS;
    }

    std::string z(s);

    errno = 0;
    out->reset(QRcode_encodeString(z.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1));

    if (*out) {
        return WX_OK;
    }

    return errno == ENOMEM ? WX_ERR_NOMEM
           : errno == ERANGE ? WX_ERR_TOO_LARGE : WX_ERR_INTERNAL;
}

/* Whether the module at (x, y) is dark; outside the symbol is light. */
bool
dark(const QRcode &q, long x, long y)
{
    return x >= 0 && y >= 0 && x < q.width && y < q.width
           && (q.data[y * q.width + x] & 1);
}

void
put_u32(std::string *s, uint32_t v)
{
    for (int shift = 24; shift >= 0; shift -= 8) {
        *s += static_cast<char>((v >> shift) & 0xff);
    }
}

/* length, type, data, and the CRC over type and data */
void
put_chunk(std::string *png, std::string_view type, std::string_view data)
{
    put_u32(png, static_cast<uint32_t>(data.size()));
    size_t start = png->size();
    *png += type;
    *png += data;
    put_u32(png, static_cast<uint32_t>(crc32(
        0, reinterpret_cast<const Bytef *>(png->data() + start),
        static_cast<uInt>(png->size() - start))));
}

/*
 * The scanlines of a 1-bit image (0 is black), each after filter byte 0:
 * a module row is built once and repeated px times.
 */
std::string
scanlines(const QRcode &q, unsigned px, unsigned margin, uint32_t side)
{
    size_t row_bytes = (side + 7) / 8;
    std::string raw;
    raw.reserve(side * (row_bytes + 1));

    for (long my = -static_cast<long>(margin);
         my < q.width + static_cast<long>(margin); my++)
    {
        std::string row(row_bytes + 1, '\xff');
        row[0] = '\0';

        for (uint32_t x = 0; x < side; x++) {
            long mx = static_cast<long>(x / px) - static_cast<long>(margin);

            if (dark(q, mx, my)) {
                row[1 + x / 8] &= static_cast<char>(~(0x80 >> (x % 8)));
            }
        }

        for (unsigned i = 0; i < px; i++) {
            raw += row;
        }
    }

    return raw;
}

wx_status_t
png_of(const QRcode &q, unsigned px, unsigned margin, std::string *png)
{
    auto side = static_cast<uint32_t>((q.width + 2 * margin) * px);
    std::string raw = scanlines(q, px, margin, side);

    uLongf zlen = compressBound(raw.size());
    std::string idat(zlen, '\0');

    if (compress2(reinterpret_cast<Bytef *>(idat.data()), &zlen,
                  reinterpret_cast<const Bytef *>(raw.data()), raw.size(),
                  Z_BEST_COMPRESSION) != Z_OK)
    {
        return WX_ERR_INTERNAL;
    }

    idat.resize(zlen);

    std::string ihdr;
    put_u32(&ihdr, side);
    put_u32(&ihdr, side);
    /* bit depth 1, grayscale, deflate, adaptive filtering, no interlace */
    ihdr.append("\x01\x00\x00\x00\x00", 5);

    *png = png_signature;
    put_chunk(png, "IHDR", ihdr);
    put_chunk(png, "IDAT", idat);
    put_chunk(png, "IEND", "");

    return WX_OK;
}

/* Each run of dark modules in a row as one rectangle of the path. */
std::string
svg_path(const QRcode &q)
{
    std::string d;

    for (long y = 0; y < q.width; y++) {
        for (long x = 0; x < q.width; ) {
            if (!dark(q, x, y)) {
                x++;
                continue;
            }

            long run = 0;
            while (dark(q, x + run, y)) {
                run++;
            }

            std::string n = std::to_string(run);
            d += "M" + std::to_string(x + svg_margin) + " "
                 + std::to_string(y + svg_margin) + "h" + n + "v1h-" + n
                 + "z";
            x += run;
        }
    }

    return d;
}

} // namespace

extern "C" wx_status_t
wx_qr_png(wx_span_t text, unsigned module_px, unsigned margin,
    const wx_allocator_t *a, wx_span_t *out)
{
    if (a == nullptr || out == nullptr || module_px < 1
        || module_px > WX_QR_MAX_MODULE_PX || margin > WX_QR_MAX_MARGIN)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        qrcode_ptr q;
        std::string png;
        wx_status_t rc = encode(text, &q);

        if (rc == WX_OK) {
            rc = png_of(*q, module_px, margin, &png);
        }

        return rc == WX_OK ? wx::copy_out(a, png, out) : rc;
    });
}

extern "C" wx_status_t
wx_qr_svg(wx_span_t text, unsigned size, const wx_allocator_t *a,
    wx_span_t *out)
{
    if (a == nullptr || out == nullptr || size < 1
        || size > WX_QR_MAX_SVG_SIZE)
    {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] {
        qrcode_ptr q;
        wx_status_t rc = encode(text, &q);

        if (rc != WX_OK) {
            return rc;
        }

        std::string px = std::to_string(size);
        std::string n = std::to_string(q->width + 2 * svg_margin);
        std::string svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px
            + "\" height=\"" + px + "\" viewBox=\"0 0 " + n + " " + n
            + "\" shape-rendering=\"crispEdges\"><rect width=\"" + n
            + "\" height=\"" + n + "\" fill=\"#fff\"/><path d=\""
            + svg_path(*q) + "\" fill=\"#000\"/></svg>";

        return wx::copy_out(a, svg, out);
    });
}
