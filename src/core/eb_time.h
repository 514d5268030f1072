/*
 * RFC 3339 timestamps with milliseconds, as CloudEvents `time` wants
 * them: "2022-05-13T15:28:29.504+08:00" or "...Z" for UTC.
 */

#ifndef EB_TIME_H
#define EB_TIME_H

#include <stddef.h>
#include <time.h>

#define EB_RFC3339_MAX  sizeof("-2147483648-12-31T23:59:59.999+23:59")


/* gmtoff_min: offset east of UTC in minutes; utc_z: write "Z" instead of
 * an offset (the offset is then ignored). Returns the length written. */
size_t eb_time_rfc3339(char *buf, time_t sec, unsigned msec, int gmtoff_min,
    int utc_z);

#endif /* EB_TIME_H */
