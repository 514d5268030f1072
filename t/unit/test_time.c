/*
 * eb_time_rfc3339: known instants, offsets, calendar corners, and a
 * comparison with gmtime_r over many random instants.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "eb_rand.h"
#include "eb_time.h"


/* years 0001 to 9999, the range RFC 3339 can write */
#define YEAR1_SEC     (-62135596800LL)
#define YEAR9999_SEC  253402300799LL


typedef struct {
    long long    sec;
    unsigned     msec;
    int          off;
    int          utc_z;
    const char  *want;
} time_case_t;


static const time_case_t  cases[] = {

    /* the epoch */
    { 0, 0, 0, 1, "1970-01-01T00:00:00.000Z" },
    { 0, 0, 0, 0, "1970-01-01T00:00:00.000+00:00" },

    /* the CloudEvents example instant, UTC and local */
    { 1652426909, 505, 0, 1, "2022-05-13T07:28:29.505Z" },
    { 1652426909, 504, 480, 0, "2022-05-13T15:28:29.504+08:00" },
    { 1652426909, 505, 480, 1, "2022-05-13T07:28:29.505Z" },
    { 1652426909, 505, -330, 1, "2022-05-13T07:28:29.505Z" },

    /* negative and half-hour offsets */
    { 1652426909, 504, -330, 0, "2022-05-13T01:58:29.504-05:30" },
    { 1652426909, 504, 330, 0, "2022-05-13T12:58:29.504+05:30" },
    { 1652426909, 504, 345, 0, "2022-05-13T13:13:29.504+05:45" },
    { 1652426909, 0, -30, 0, "2022-05-13T06:58:29.000-00:30" },
    { 1652426909, 0, 30, 0, "2022-05-13T07:58:29.000+00:30" },
    { 1652426909, 0, -600, 0, "2022-05-12T21:28:29.000-10:00" },

    /* offsets crossing midnight, month and year */
    { 1652400000, 0, -60, 0, "2022-05-12T23:00:00.000-01:00" },
    { 1652400000, 0, 840, 0, "2022-05-13T14:00:00.000+14:00" },
    { 1652400000, 0, -720, 0, "2022-05-12T12:00:00.000-12:00" },
    { 0, 0, -60, 0, "1969-12-31T23:00:00.000-01:00" },
    { 1640995199, 999, 60, 0, "2022-01-01T00:59:59.999+01:00" },
    { 1640995200, 0, -1, 0, "2021-12-31T23:59:00.000-00:01" },
    { 1651363200, 0, -1, 0, "2022-04-30T23:59:00.000-00:01" },

    /* leap days */
    { 1709164800, 0, 0, 1, "2024-02-29T00:00:00.000Z" },
    { 1709164799, 999, 0, 1, "2024-02-28T23:59:59.999Z" },
    { 1709210096, 789, 0, 1, "2024-02-29T12:34:56.789Z" },
    { 1709251199, 0, 0, 1, "2024-02-29T23:59:59.000Z" },
    { 1709251200, 0, 0, 1, "2024-03-01T00:00:00.000Z" },
    { 1709164800, 0, -60, 0, "2024-02-28T23:00:00.000-01:00" },
    { 1709251200, 0, -60, 0, "2024-02-29T23:00:00.000-01:00" },
    { 951782400, 0, 0, 1, "2000-02-29T00:00:00.000Z" },
    { 1677628800, 0, 0, 1, "2023-03-01T00:00:00.000Z" },

    /* 2100 and 1900 are not leap years */
    { 4107542399LL, 0, 0, 1, "2100-02-28T23:59:59.000Z" },
    { 4107542400LL, 0, 0, 1, "2100-03-01T00:00:00.000Z" },
    { -2203891201LL, 0, 0, 1, "1900-02-28T23:59:59.000Z" },
    { -2203891200LL, 0, 0, 1, "1900-03-01T00:00:00.000Z" },

    /* milliseconds are zero-padded to three digits */
    { 0, 1, 0, 1, "1970-01-01T00:00:00.001Z" },
    { 0, 7, 0, 1, "1970-01-01T00:00:00.007Z" },
    { 0, 50, 0, 1, "1970-01-01T00:00:00.050Z" },
    { 0, 99, 0, 1, "1970-01-01T00:00:00.099Z" },
    { 0, 100, 0, 1, "1970-01-01T00:00:00.100Z" },
    { 0, 999, 0, 1, "1970-01-01T00:00:00.999Z" },
    { 0, 9, 600, 0, "1970-01-01T10:00:00.009+10:00" },

    /* before the epoch */
    { -1, 0, 0, 1, "1969-12-31T23:59:59.000Z" },
    { -1, 999, 0, 1, "1969-12-31T23:59:59.999Z" },
    { -86400, 0, 0, 1, "1969-12-31T00:00:00.000Z" },
    { -86401, 0, 0, 1, "1969-12-30T23:59:59.000Z" },
    { -31536000, 0, 0, 1, "1969-01-01T00:00:00.000Z" },

    /* 32-bit rollover, and the ends of four-digit years */
    { 2147483647LL, 0, 0, 1, "2038-01-19T03:14:07.000Z" },
    { 2147483648LL, 0, 0, 1, "2038-01-19T03:14:08.000Z" },
    { YEAR1_SEC, 0, 0, 1, "0001-01-01T00:00:00.000Z" },
    { YEAR9999_SEC, 999, 0, 1, "9999-12-31T23:59:59.999Z" },
    { YEAR9999_SEC, 999, 0, 0, "9999-12-31T23:59:59.999+00:00" },
    { 946684800, 0, 0, 1, "2000-01-01T00:00:00.000Z" },
    { 946684799, 0, 0, 1, "1999-12-31T23:59:59.000Z" },
};


/* The expected text via libc: gmtime_r of the local wall clock. */
static int
ref_rfc3339(char *buf, size_t size, long long sec, unsigned msec, int off,
    int utc_z)
{
    struct tm  tm;
    time_t     t;
    int        n, a;

    t = (time_t) (sec + (utc_z ? 0 : (long long) off * 60));

    if (gmtime_r(&t, &tm) == NULL) {
        return -1;
    }

    n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03u",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, msec);

    if (utc_z) {
        n += snprintf(buf + n, size - n, "Z");

    } else {
        a = off < 0 ? -off : off;
        n += snprintf(buf + n, size - n, "%c%02d:%02d", off < 0 ? '-' : '+',
                      a / 60, a % 60);
    }

    return n;
}


static void
test_known(void)
{
    char    buf[EB_RFC3339_MAX + 8];
    size_t  i, n;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 'X', sizeof(buf));

        n = eb_time_rfc3339(buf, (time_t) cases[i].sec, cases[i].msec,
                            cases[i].off, cases[i].utc_z);

        is_str(buf, cases[i].want, "%lld s + %u ms, offset %d%s",
               cases[i].sec, cases[i].msec, cases[i].off,
               cases[i].utc_z ? ", Z" : "");
        is_int(n, strlen(cases[i].want), "  returns its length");
    }

    ok(sizeof("2022-05-13T15:28:29.504+08:00") <= EB_RFC3339_MAX,
       "EB_RFC3339_MAX holds a local time");
}


static void
test_buffer(void)
{
    char    buf[EB_RFC3339_MAX + 8];
    size_t  n;

    /* nothing is written past the NUL */
    memset(buf, 'X', sizeof(buf));
    n = eb_time_rfc3339(buf, 1652426909, 505, 0, 1);
    ok(buf[n] == '\0' && buf[n + 1] == 'X', "Z form: NUL-terminated, "
       "nothing after it");

    memset(buf, 'X', sizeof(buf));
    n = eb_time_rfc3339(buf, 1652426909, 504, -330, 0);
    ok(buf[n] == '\0' && buf[n + 1] == 'X', "offset form: NUL-terminated, "
       "nothing after it");

    /* the widest realistic value fits in EB_RFC3339_MAX */
    memset(buf, 'X', sizeof(buf));
    n = eb_time_rfc3339(buf, (time_t) YEAR9999_SEC - 24 * 3600, 999, -1439,
                        0);
    is_str(buf, "9999-12-30T00:00:59.999-23:59", "widest four-digit year");
    ok(n < EB_RFC3339_MAX && buf[EB_RFC3339_MAX] == 'X',
       "  stays inside EB_RFC3339_MAX");
}


static void
test_random(void)
{
    static const int  offs[] = {
        0, 1, -1, 30, -30, 60, -60, 330, -330, 345, 480, -480, 525, 600,
        -570, 765, 840, -720, 1439, -1439
    };

    char       got[EB_RFC3339_MAX + 8], want[64];
    eb_rand_t  r;
    long long  sec, span;
    unsigned   msec;
    int        i, off, utc_z, bad, badoff, nonref;
    size_t     n;

    eb_rand_seed(&r, 1652426909);
    span = YEAR9999_SEC - YEAR1_SEC + 1;

    bad = 0;
    badoff = 0;
    nonref = 0;

    for (i = 0; i < 200000; i++) {

        /* half over years 1..9999, half over 1901..2100 */
        if (i & 1) {
            sec = YEAR1_SEC + (long long) (eb_rand_next(&r) % (uint64_t) span);

        } else {
            sec = -2177452800LL
                  + (long long) (eb_rand_next(&r) % 6311433600ULL);
        }

        msec = (unsigned) (eb_rand_next(&r) % 1000);
        off = offs[eb_rand_next(&r) % (sizeof(offs) / sizeof(offs[0]))];
        utc_z = (int) (eb_rand_next(&r) % 3 == 0);

        /* keep the local wall clock inside years 1..9999 too */
        if (!utc_z && (sec + off * 60 < YEAR1_SEC
                       || sec + off * 60 > YEAR9999_SEC))
        {
            continue;
        }

        if (ref_rfc3339(want, sizeof(want), sec, msec, off, utc_z) < 0) {
            nonref++;
            continue;
        }

        n = eb_time_rfc3339(got, (time_t) sec, msec, off, utc_z);

        if (n != strlen(want) || strcmp(got, want) != 0) {
            if (bad++ < 5) {
                printf("# %lld %u %d %d: got '%s', expected '%s'\n",
                       sec, msec, off, utc_z, got, want);
            }

            if (!utc_z && off != 0) {
                badoff++;
            }
        }
    }

    is_int(nonref, 0, "gmtime_r handled every random instant");
    is_int(bad, 0, "200000 random instants equal gmtime_r");
    is_int(badoff, 0, "  including those with an offset");
}


/* Every day from 1600-01-01 to 2400-12-31 at 00:00:00 and 23:59:59. */
static void
test_days(void)
{
    char       got[EB_RFC3339_MAX + 8], want[64];
    long long  day, sec;
    int        bad;

    bad = 0;

    for (day = -135140; day <= 157419; day++) {
        sec = day * 86400;

        ref_rfc3339(want, sizeof(want), sec, 0, 0, 1);
        eb_time_rfc3339(got, (time_t) sec, 0, 0, 1);

        if (strcmp(got, want) != 0 && bad++ < 5) {
            printf("# day %lld: got '%s', expected '%s'\n", day, got, want);
        }

        ref_rfc3339(want, sizeof(want), sec + 86399, 999, 0, 1);
        eb_time_rfc3339(got, (time_t) (sec + 86399), 999, 0, 1);

        if (strcmp(got, want) != 0 && bad++ < 5) {
            printf("# day %lld end: got '%s', expected '%s'\n", day, got,
                   want);
        }
    }

    is_int(bad, 0, "every day of 1600..2400 starts and ends as in gmtime_r");
}


int
main(void)
{
    test_known();
    test_buffer();
    test_random();
    test_days();

    return tap_done();
}
