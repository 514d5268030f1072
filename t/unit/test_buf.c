#include "tap.h"
#include "eb_buf.h"

int
main(void)
{
    eb_buf_t  b;
    int       i, ok_all;

    eb_buf_init(&b);
    is_int(b.len, 0, "starts empty");
    is_int(eb_buf_append(&b, "", 0), 0, "empty append");
    is_int(eb_buf_append_str(&b, "abc"), 0, "append");
    is_int(b.len, 3, "length 3");

    ok_all = 1;
    for (i = 0; i < 10000; i++) {
        ok_all &= eb_buf_append(&b, "0123456789", 10) == 0;
    }
    ok(ok_all, "10000 appends");
    is_int(b.len, 100003, "length after growth");
    ok(memcmp(b.data + 99993, "0123456789", 10) == 0, "content intact");

    eb_buf_yajl_print(&b, "xy", 2);
    ok(b.len == 100005 && memcmp(b.data + 100003, "xy", 2) == 0,
       "yajl print callback appends");

    eb_buf_reset(&b);
    is_int(b.len, 0, "reset keeps memory, empties");
    eb_buf_free(&b);
    ok(b.data == NULL && b.cap == 0, "freed");

    return tap_done();
}
