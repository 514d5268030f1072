#include <stdio.h>

#include "eb_time.h"


/* Days since 1970-01-01 to a civil date (proleptic Gregorian); the
 * well-known days_from_civil inverse, so no libc time zone code runs. */
static void
eb_civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    long long  era, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    yoe = z - era * 146097;
    yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
    *y = yoe + era * 400;
    doy = (z - era * 146097) - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned) (doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned) (mp < 10 ? mp + 3 : mp - 9);

    if (*m <= 2) {
        (*y)++;
    }
}


size_t
eb_time_rfc3339(char *buf, time_t sec, unsigned msec, int gmtoff_min,
    int utc_z)
{
    long long  t, days, secs, y;
    unsigned   mo, d;
    int        n, off;
    char       sign;

    t = (long long) sec + (utc_z ? 0 : (long long) gmtoff_min * 60);

    days = t / 86400;
    secs = t % 86400;

    if (secs < 0) {
        secs += 86400;
        days--;
    }

    eb_civil_from_days(days, &y, &mo, &d);

    n = snprintf(buf, EB_RFC3339_MAX, "%04lld-%02u-%02uT%02d:%02d:%02d.%03u",
                 y, mo, d, (int) (secs / 3600), (int) (secs / 60 % 60),
                 (int) (secs % 60), msec % 1000);

    if (utc_z) {
        buf[n++] = 'Z';
        buf[n] = '\0';
        return (size_t) n;
    }

    sign = gmtoff_min < 0 ? '-' : '+';
    off = gmtoff_min < 0 ? -gmtoff_min : gmtoff_min;

    n += snprintf(buf + n, EB_RFC3339_MAX - n, "%c%02d:%02d",
                  sign, off / 60, off % 60);

    return (size_t) n;
}
