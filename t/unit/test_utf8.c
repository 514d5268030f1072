#include "tap.h"
#include "eb_utf8.h"

#define U(s)  (const unsigned char *) (s), sizeof(s) - 1

int
main(void)
{
    is_int(eb_utf8_invalid_at(U("")), -1, "empty is valid");
    is_int(eb_utf8_invalid_at(U("plain ascii")), -1, "ascii");
    is_int(eb_utf8_invalid_at(U("\xe5\xb0\x8f\xe6\x98\x8e")), -1, "CJK");
    is_int(eb_utf8_invalid_at(U("\xf0\x9f\x98\x80")), -1, "4-byte emoji");
    is_int(eb_utf8_invalid_at(U("\xf4\x8f\xbf\xbf")), -1, "U+10FFFF");
    is_int(eb_utf8_invalid_at(U("ab\xff")), 2, "0xFF byte");
    is_int(eb_utf8_invalid_at(U("\xc0\xaf")), 0, "overlong 2-byte");
    is_int(eb_utf8_invalid_at(U("\xe0\x80\xaf")), 0, "overlong 3-byte");
    is_int(eb_utf8_invalid_at(U("\xf0\x80\x80\xaf")), 0, "overlong 4-byte");
    is_int(eb_utf8_invalid_at(U("x\xed\xa0\x80")), 1, "surrogate U+D800");
    is_int(eb_utf8_invalid_at(U("\xf4\x90\x80\x80")), 0, "above U+10FFFF");
    is_int(eb_utf8_invalid_at(U("ok\xe5\xb0")), 2, "truncated sequence");
    is_int(eb_utf8_invalid_at(U("\x80")), 0, "lone continuation byte");
    is_int(eb_utf8_invalid_at(U("\xe5\x28\x8f")), 0, "bad continuation");

    return tap_done();
}
