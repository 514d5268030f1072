/*
 * ebd's log: see ebd_log.h.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "ebd_log.h"


ebd_log_level_t  ebd_log_level = EBD_LOG_INFO;

static const char *const  ebd_log_names[] = { "error", "warn", "info", "debug" };


int
ebd_log_set_level(const char *name)
{
    int  i;

    for (i = 0; i <= EBD_LOG_DEBUG; i++) {
        if (strcmp(name, ebd_log_names[i]) == 0) {
            ebd_log_level = (ebd_log_level_t) i;
            return 0;
        }
    }

    return -1;
}


void
ebd_log(ebd_log_level_t level, const char *fmt, ...)
{
    char            line[2048];
    size_t          n;
    int             r;
    struct tm       tm;
    va_list         ap;
    struct timeval  tv;

    if (level > ebd_log_level) {
        return;
    }

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);

    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - n, ".%03dZ %s ",
                  (int) (tv.tv_usec / 1000), ebd_log_names[level]);

    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);

    if (r < 0) {
        return;
    }

    n += (size_t) r;
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }

    line[n++] = '\n';

    /* one write per line: lines of concurrent processes do not mix */
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}
