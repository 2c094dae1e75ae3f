#include <ctype.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wx_test.h"


/* The scene of an event push of the given Event and EventKey. */
static wx_span_t
scene_of(const char *msg_type, const char *event, const char *key)
{
    wx_event_t  ev = { 0 };

    ev.msg_type = S(msg_type);
    ev.event = S(event);
    ev.event_key = S(key);

    return wx_scene_from_event(&ev);
}

#define scene(event, key)  scene_of("event", event, key)

static void
test_subscribe_prefix_removed(void **state)
{
    (void) state;
    assert_span_equal(scene("subscribe", "qrscene_X"),
                      "X");
    /* the prefix comes off once, and only as a prefix */
    assert_span_equal(scene("subscribe", "qrscene_qrscene_X"),
                      "qrscene_X");
    assert_span_equal(scene("subscribe", "X_qrscene_"),
                      "");
}

static void
test_scan_key_is_scene(void **state)
{
    (void) state;
    assert_span_equal(scene("SCAN", "X"), "X");
    assert_span_equal(scene("SCAN", "qrscene_X"),
                      "qrscene_X");
}

static void
test_no_scene(void **state)
{
    (void) state;
    /* a plain subscribe, a menu click, a message */
    assert_span_equal(scene("subscribe", ""), "");
    assert_span_equal(scene("CLICK", "qrscene_X"), "");
    assert_span_equal(scene("", "X"), "");
    assert_span_equal(scene("scan", "X"), "");
}


/* A text message that carries Event and EventKey is no scan. */
static void
test_scene_needs_event_message(void **state)
{
    (void) state;
    assert_span_equal(scene_of("text", "SCAN", "X"), "");
    assert_span_equal(scene_of("", "subscribe", "qrscene_X"), "");
    assert_span_equal(scene_of("device_event", "SCAN", "X"), "");
    assert_span_equal(scene_of("event", "SCAN", "X"), "X");
}

static void
test_new_scene_is_ours_and_random(void **state)
{
    (void) state;
    char a[WX_SCENE_LEN], b[WX_SCENE_LEN];
    wx_span_t sa = { (unsigned char *) a, sizeof(a) };

    assert_int_equal(wx_scene_new(a), WX_OK);
    assert_int_equal(wx_scene_new(b), WX_OK);
    assert_memory_equal(a, "wxs_", 4);
    for (size_t i = 4; i < sizeof(a); i++) {
        assert_true(isxdigit((unsigned char) a[i]) && !isupper(a[i]));
    }
    assert_memory_not_equal(a, b, sizeof(a));
    assert_true(wx_scene_is_ours(sa));
}

static void
test_foreign_scenes(void **state)
{
    (void) state;
    assert_false(wx_scene_is_ours(S("promo2024")));
    assert_false(wx_scene_is_ours(S("wxs_0123")));
    assert_false(wx_scene_is_ours(S("wxs_0123456789abcdef0123456789ABCDEF")));
    assert_false(wx_scene_is_ours(S("wxt_0123456789abcdef0123456789abcdef")));
    assert_true(wx_scene_is_ours(S("wxs_0123456789abcdef0123456789abcdef")));
}

static void
test_random_hex(void **state)
{
    (void) state;
    char out[200];

    memset(out, 'z', sizeof(out));
    assert_int_equal(wx_random_hex(out, 80), WX_OK);
    for (size_t i = 0; i < 160; i++) {
        assert_true(isxdigit((unsigned char) out[i]));
    }
    assert_int_equal(out[160], 'z');
}

/*
 * Random bytes are drawn in blocks: a forked child (an nginx worker) must
 * not hand out what its parent's block still holds.
 */
static void
test_random_after_fork(void **state)
{
    (void) state;
    char    first[32], parent[32], child[32];
    int     fds[2], status;
    pid_t   pid;

    /* the parent's block is filled and partly used before the fork */
    assert_int_equal(wx_random_hex(first, 16), WX_OK);
    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid >= 0);

    if (pid == 0) {
        if (wx_random_hex(child, 16) != WX_OK
            || write(fds[1], child, sizeof(child)) != sizeof(child))
        {
            _exit(1);
        }
        _exit(0);
    }

    assert_int_equal(wx_random_hex(parent, 16), WX_OK);
    assert_int_equal(read(fds[0], child, sizeof(child)), sizeof(child));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    assert_memory_not_equal(parent, child, sizeof(parent));
    assert_memory_not_equal(first, parent, sizeof(parent));
    close(fds[0]);
    close(fds[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_prefix_removed),
        cmocka_unit_test(test_scan_key_is_scene),
        cmocka_unit_test(test_no_scene),
        cmocka_unit_test(test_scene_needs_event_message),
        cmocka_unit_test(test_new_scene_is_ours_and_random),
        cmocka_unit_test(test_foreign_scenes),
        cmocka_unit_test(test_random_hex),
        cmocka_unit_test(test_random_after_fork),
    };

    return cmocka_run_group_tests_name("scene", tests, NULL, NULL);
}
