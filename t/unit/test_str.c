/*
 * eb_str: form decoding, host patterns and constant-time comparison.
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_str.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


/* Decodes src (its sizeof length) into a fresh buffer of exactly that
 * size, so that ASan sees any write past it, and compares with want. */
static void
form_is(const char *src, size_t len, const char *want, size_t wlen,
    const char *name)
{
    unsigned char  *dst;
    size_t          n;

    dst = malloc(len ? len : 1);
    if (dst == NULL) {
        ok(0, "%s: malloc", name);
        return;
    }

    n = eb_form_decode(dst, (const unsigned char *) src, len);

    ok(n == wlen && memcmp(dst, want, wlen) == 0, "form: %s", name);

    if (!(n == wlen && memcmp(dst, want, wlen) == 0)) {
        printf("#   got:      '%.*s' (%zu)\n#   expected: '%.*s' (%zu)\n",
               (int) n, (char *) dst, n, (int) wlen, want, wlen);
    }

    free(dst);
}

#define FORM(src, want, name)                                                 \
    form_is(src, sizeof(src) - 1, want, sizeof(want) - 1, name)


static void
test_form(void)
{
    unsigned char  buf[64];
    size_t         n;

    FORM("", "", "empty");
    FORM("plain", "plain", "nothing to decode");
    FORM("a+b", "a b", "'+' is a space");
    FORM("+++", "   ", "only '+'");
    FORM("%20", " ", "%20");
    FORM("%2B", "+", "%2B is a literal '+', not a space");
    FORM("%2b", "+", "%2b lower-case");
    FORM("%41%61", "Aa", "upper- and lower-case letters");
    FORM("%e5%b0%8F%E6%98%8e", "\xe5\xb0\x8f\xe6\x98\x8e",
         "mixed-case hex digits (UTF-8)");
    FORM("%Ff%fF", "\xff\xff", "%Ff and %fF");
    FORM("%00x", "\0x", "%00 is a NUL byte");
    FORM("%7E%7e", "~~", "%7E %7e");
    FORM("a%3Db%26c", "a=b&c", "escaped '=' and '&'");

    /* malformed escapes stay as they are */
    FORM("%", "%", "lone '%'");
    FORM("ab%", "ab%", "trailing '%'");
    FORM("ab%4", "ab%4", "trailing '%4'");
    FORM("%4", "%4", "only '%4'");
    FORM("%zz", "%zz", "%zz");
    FORM("%4g", "%4g", "%4g: second digit not hex");
    FORM("%g4", "%g4", "%g4: first digit not hex");
    FORM("%%41", "%A", "'%' then %41");
    FORM("%%", "%%", "%%");
    FORM("%+20", "% 20", "'%' before '+': the '+' is still a space");
    FORM("%2+", "%2 ", "'%2' before '+'");
    FORM("100%", "100%", "percent sign at the end");
    FORM("%G0%:0%/0%@0%`0", "%G0%:0%/0%@0%`0",
         "characters next to the hex ranges are not hex");
    FORM("%\xc1" "1", "%\xc1" "1", "a high byte is not hex");
    FORM("a%20b+c%2", "a b c%2", "everything at once");

    /* decoding in place works: the output never overtakes the input */
    memcpy(buf, "x%41+%4", 7);
    n = eb_form_decode(buf, buf, 7);
    ok(n == 5 && memcmp(buf, "xA %4", 5) == 0, "form: in place");

    memcpy(buf, "%41%42%43", 9);
    n = eb_form_decode(buf, buf, 9);
    ok(n == 3 && memcmp(buf, "ABC", 3) == 0, "form: in place, all escapes");

    /* len, not a NUL, ends the input */
    n = eb_form_decode(buf, (const unsigned char *) "%41", 2);
    ok(n == 2 && memcmp(buf, "%4", 2) == 0, "form: stops at len");
}


typedef struct {
    const char  *pat;
    const char  *host;
    int          want;
} host_case_t;


static const host_case_t  hosts[] = {

    /* exact names */
    { "example.com", "example.com", 1 },
    { "example.com", "EXAMPLE.COM", 1 },
    { "Example.Com", "eXaMpLe.cOm", 1 },
    { "example.com", "example.co", 0 },
    { "example.com", "example.comm", 0 },
    { "example.com", "a.example.com", 0 },
    { "example.com", "xexample.com", 0 },
    { "example.com", "", 0 },
    { "localhost", "localhost", 1 },
    { "127.0.0.1", "127.0.0.1", 1 },
    { "127.0.0.1", "127.0.0.10", 0 },

    /* "*.example.com": strictly a sub-domain */
    { "*.example.com", "a.example.com", 1 },
    { "*.example.com", "A.EXAMPLE.COM", 1 },
    { "*.example.com", "a.b.example.com", 1 },
    { "*.example.com", "www.Example.Com", 1 },
    { "*.example.com", "example.com", 0 },
    { "*.example.com", "badexample.com", 0 },
    { "*.example.com", "a.badexample.com", 0 },
    { "*.example.com", ".example.com", 0 },
    { "*.example.com", "a.example.com.evil.org", 0 },
    { "*.example.com", "a.example.co", 0 },
    { "*.example.com", "xample.com", 0 },
    { "*.example.com", "", 0 },
    { "*.EXAMPLE.COM", "a.example.com", 1 },

    /* ".example.com": the domain itself or a sub-domain */
    { ".example.com", "example.com", 1 },
    { ".example.com", "EXAMPLE.com", 1 },
    { ".example.com", "a.example.com", 1 },
    { ".example.com", "a.b.example.com", 1 },
    { ".example.com", "A.Example.COM", 1 },
    { ".example.com", "badexample.com", 0 },
    { ".example.com", "a.badexample.com", 0 },
    { ".example.com", "example.org", 0 },
    { ".example.com", "xample.com", 0 },
    { ".example.com", "example.co", 0 },
    { ".example.com", "example.com.evil.org", 0 },
    { ".example.com", "", 0 },
    { ".EXAMPLE.COM", "a.example.com", 1 },
};


static void
test_host(void)
{
    size_t  i;

    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        is_int(eb_host_match((const unsigned char *) hosts[i].pat,
                             strlen(hosts[i].pat),
                             (const unsigned char *) hosts[i].host,
                             strlen(hosts[i].host)),
               hosts[i].want, "host: '%s' %s '%s'", hosts[i].pat,
               hosts[i].want ? "matches" : "does not match", hosts[i].host);
    }

    /* lengths, not NULs, bound both strings */
    ok(eb_host_match(S("example.com"), (const unsigned char *) "example.comX",
                     11),
       "host: host bounded by its length");
    ok(!eb_host_match(S("example.com"), (const unsigned char *) "example.c",
                      11 - 2),
       "host: shorter host does not match");
    ok(eb_host_match((const unsigned char *) "*.example.comX", 13,
                     S("a.example.com")),
       "host: pattern bounded by its length");
}


static void
test_ct_equal(void)
{
    unsigned char  a[256], b[256];
    int            i, bad;

    ok(eb_ct_equal(S("secret"), S("secret")), "ct: equal strings");
    ok(eb_ct_equal(S(""), S("")), "ct: two empty strings");
    ok(!eb_ct_equal(S("secret"), S("secreT")), "ct: last byte differs");
    ok(!eb_ct_equal(S("secret"), S("Secret")), "ct: first byte differs");
    ok(!eb_ct_equal(S("secret"), S("secre")), "ct: shorter");
    ok(!eb_ct_equal(S("secret"), S("secrets")), "ct: longer");
    ok(!eb_ct_equal(S(""), S("x")), "ct: empty and non-empty");
    ok(!eb_ct_equal(S("a\x80"), S("a\x00")), "ct: high bit differs");
    ok(eb_ct_equal(S("a\0b"), S("a\0b")), "ct: NUL inside, equal");
    ok(!eb_ct_equal(S("a\0b"), S("a\0c")), "ct: difference after a NUL");
    ok(!eb_ct_equal(S("secret"), (const unsigned char *) "secret", 5),
       "ct: equal prefix, other length");

    /* each single-bit difference at each position is seen */
    for (i = 0; i < 256; i++) {
        a[i] = (unsigned char) i;
    }

    memcpy(b, a, sizeof(b));
    ok(eb_ct_equal(a, sizeof(a), b, sizeof(b)), "ct: 256 equal bytes");

    for (i = 0, bad = 0; i < 256 * 8; i++) {
        b[i / 8] ^= (unsigned char) (1 << (i % 8));

        if (eb_ct_equal(a, sizeof(a), b, sizeof(b))) {
            bad++;
        }

        b[i / 8] ^= (unsigned char) (1 << (i % 8));
    }

    is_int(bad, 0, "ct: every one-bit difference is found");
}


int
main(void)
{
    test_form();
    test_host();
    test_ct_equal();

    return tap_done();
}
