/*
 * The QR images are read back with libpng and zbar and parsed with
 * libxml2: decoders independent of the code that drew them.
 */

#include <stdio.h>

#include <libxml/parser.h>
#include <png.h>
#include <zbar.h>

#include "wx_test.h"

#define URL  "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI"

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}

/* The PNG's side from its IHDR, after checking the header is ours. */
static uint32_t
png_side(wx_span_t png)
{
    assert_true(png.len > 33);
    assert_memory_equal(png.data, "\x89PNG\r\n\x1a\n", 8);
    assert_int_equal(be32(png.data + 8), 13);
    assert_memory_equal(png.data + 12, "IHDR", 4);
    assert_int_equal(be32(png.data + 16), be32(png.data + 20));
    assert_int_equal(png.data[24], 1);     /* bit depth */
    assert_int_equal(png.data[25], 0);     /* grayscale */
    return be32(png.data + 16);
}

/* 8-bit gray pixels of png, decoded by libpng; the caller frees them. */
static unsigned char *
png_pixels(wx_span_t png, uint32_t *side)
{
    png_image img;
    unsigned char *px;

    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_memory(&img, png.data, png.len));
    img.format = PNG_FORMAT_GRAY;
    px = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(px);
    assert_true(png_image_finish_read(&img, NULL, px, 0, NULL));
    assert_int_equal(img.width, img.height);
    *side = img.width;
    return px;
}

/* What zbar reads in the image, NUL-terminated into out. */
static void
zbar_read(unsigned char *px, uint32_t side, char *out, size_t size)
{
    zbar_image_scanner_t *scanner = zbar_image_scanner_create();
    zbar_image_t *img = zbar_image_create();
    const zbar_symbol_t *sym;

    zbar_image_scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
    zbar_image_scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
    zbar_image_set_format(img, zbar_fourcc('Y', '8', '0', '0'));
    zbar_image_set_size(img, side, side);
    zbar_image_set_data(img, px, (unsigned long) side * side, NULL);

    assert_int_equal(zbar_scan_image(scanner, img), 1);
    sym = zbar_image_first_symbol(img);
    assert_int_equal(zbar_symbol_get_type(sym), ZBAR_QRCODE);
    snprintf(out, size, "%.*s", (int) zbar_symbol_get_data_length(sym),
             zbar_symbol_get_data(sym));

    zbar_image_destroy(img);
    zbar_image_scanner_destroy(scanner);
}

static void
test_png_round_trips(void **state)
{
    (void) state;
    const char *texts[] = { URL, "HELLO", "https://example.com/?a=1&b=2",
                            "验证码 123456" };
    wx_span_t png;
    char read[256];
    uint32_t side;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_int_equal(wx_qr_png(S(texts[i]), 4, 4, &test_allocator, &png),
                         WX_OK);
        unsigned char *px = png_pixels(png, &side);
        assert_int_equal(side, png_side(png));
        zbar_read(px, side, read, sizeof(read));
        assert_string_equal(read, texts[i]);
        free(px);
    }
}

static void
test_png_dimensions(void **state)
{
    (void) state;
    wx_span_t png;
    uint32_t modules, side;

    /* five alphanumeric characters fit version 1: 21 modules */
    assert_int_equal(wx_qr_png(S("HELLO"), 1, 0, &test_allocator, &png),
                     WX_OK);
    assert_int_equal(png_side(png), 21);
    assert_int_equal(wx_qr_png(S("HELLO"), 3, 2, &test_allocator, &png),
                     WX_OK);
    assert_int_equal(png_side(png), (21 + 2 * 2) * 3);

    assert_int_equal(wx_qr_png(S(URL), 1, 0, &test_allocator, &png), WX_OK);
    modules = png_side(png);
    assert_int_equal((modules - 21) % 4, 0);    /* a real version's size */
    assert_int_equal(wx_qr_png(S(URL), 7, 4, &test_allocator, &png), WX_OK);
    assert_int_equal(png_side(png), (modules + 2 * 4) * 7);

    /* the quiet zone is white, the finder pattern's corner black */
    unsigned char *px = png_pixels(png, &side);
    for (uint32_t i = 0; i < 4 * 7; i++) {
        assert_int_equal(px[i * side + i], 255);
        assert_int_equal(px[i], 255);
    }
    assert_int_equal(px[28 * side + 28], 0);
    free(px);
}

static void
test_png_is_compact(void **state)
{
    (void) state;
    wx_span_t png;

    assert_int_equal(wx_qr_png(S(URL), 8, 4, &test_allocator, &png), WX_OK);
    assert_true(png.len < 2048);
}

static void
test_limits(void **state)
{
    (void) state;
    static char text[WX_QR_MAX_TEXT + 1];
    wx_span_t out, nul = { (const unsigned char *) "a\0b", 3 };

    assert_int_equal(wx_qr_png(S("x"), 0, 4, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_png(S("x"), 33, 4, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_png(S("x"), 32, 17, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_png(S(""), 4, 4, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_png(nul, 4, 4, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_svg(S("x"), 0, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_svg(S("x"), 4097, &test_allocator, &out),
                     WX_ERR_ARGS);

    memset(text, 'a', sizeof(text));
    wx_span_t at_cap = { (unsigned char *) text, WX_QR_MAX_TEXT };
    wx_span_t over = { (unsigned char *) text, WX_QR_MAX_TEXT + 1 };

    assert_int_equal(wx_qr_png(over, 1, 0, &test_allocator, &out),
                     WX_ERR_ARGS);
    assert_int_equal(wx_qr_png(at_cap, 32, 16, &test_allocator, &out),
                     WX_OK);
    assert_true(png_side(out) <= (177 + 32) * 32);
}

/* Fills modules from the path's "Mx yhNv1h-Nz" rectangles. */
static void
draw_path(const char *d, unsigned char *m, unsigned n)
{
    unsigned x, y, w, w2;
    int used;

    while (*d) {
        assert_int_equal(sscanf(d, "M%u %uh%uv1h-%uz%n", &x, &y, &w, &w2,
                                &used), 4);
        assert_int_equal(w, w2);
        assert_true(x + w <= n && y < n);
        memset(m + y * n + x, 1, w);
        d += used;
    }
}

static void
test_svg(void **state)
{
    (void) state;
    wx_span_t svg, png;
    uint32_t side;
    unsigned paths = 0;

    assert_int_equal(wx_qr_svg(S(URL), 256, &test_allocator, &svg), WX_OK);

    xmlDocPtr doc = xmlReadMemory((const char *) svg.data, (int) svg.len,
                                  NULL, NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *) root->name, "svg");
    assert_string_equal((const char *) root->ns->href,
                        "http://www.w3.org/2000/svg");
    xmlChar *width = xmlGetProp(root, (const xmlChar *) "width");
    assert_string_equal((const char *) width, "256");
    xmlFree(width);

    /* the path draws the same modules as the PNG zbar reads */
    assert_int_equal(wx_qr_png(S(URL), 1, 4, &test_allocator, &png), WX_OK);
    unsigned char *px = png_pixels(png, &side);
    unsigned char *modules = calloc(side * side, 1);
    assert_non_null(modules);

    for (xmlNodePtr n = root->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE
            || strcmp((const char *) n->name, "path") != 0)
        {
            continue;
        }

        xmlChar *d = xmlGetProp(n, (const xmlChar *) "d");
        assert_non_null(d);
        draw_path((const char *) d, modules, side);
        xmlFree(d);
        paths++;
    }

    assert_int_equal(paths, 1);
    for (uint32_t i = 0; i < side * side; i++) {
        assert_int_equal(modules[i], px[i] == 0);
    }

    free(modules);
    free(px);
    xmlFreeDoc(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_png_round_trips, reset_arena),
        cmocka_unit_test_setup(test_png_dimensions, reset_arena),
        cmocka_unit_test_setup(test_png_is_compact, reset_arena),
        cmocka_unit_test_setup(test_limits, reset_arena),
        cmocka_unit_test_setup(test_svg, reset_arena),
    };

    return cmocka_run_group_tests_name("qrimage", tests, NULL, NULL);
}
