/*
 * Parsing what the command line and the configuration give as text:
 * Redis addresses and times. No I/O here (unit-tested on its own).
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd.h"


int
ebd_addr_parse(const char *s, ebd_addr_t *a, char *err, size_t errlen)
{
    const char  *colon;
    char        *end;
    long         port;
    size_t       hlen;

    memset(a, 0, sizeof(*a));

    if (strncmp(s, "unix:", 5) == 0) {
        s += 5;
    }

    if (s[0] == '/') {
        if (strlen(s) >= sizeof(a->path)) {
            snprintf(err, errlen, "unix socket path too long: \"%s\"", s);
            return -1;
        }
        strcpy(a->path, s);
        return 0;
    }

    colon = strrchr(s, ':');
    if (colon == NULL) {
        a->port = 6379;
        hlen = strlen(s);

    } else {
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1 || port < 1 || port > 65535) {
            snprintf(err, errlen, "invalid port in \"%s\"", s);
            return -1;
        }
        a->port = (int) port;
        hlen = (size_t) (colon - s);
    }

    /* [::1]:6379 */
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }

    if (hlen == 0 || hlen >= sizeof(a->host)) {
        snprintf(err, errlen, "invalid host in Redis address");
        return -1;
    }

    memcpy(a->host, s, hlen);
    a->host[hlen] = '\0';
    return 0;
}


int
ebd_addr_list(const char *s, ebd_addr_t **addrs, size_t *n, char *err,
    size_t errlen)
{
    char        *copy, *p, *comma;
    size_t       cap;
    ebd_addr_t  *a;

    *addrs = NULL;
    *n = 0;

    copy = strdup(s);
    cap = 1;
    for (p = copy; p && *p; p++) {
        cap += *p == ',';
    }

    a = calloc(cap, sizeof(ebd_addr_t));
    if (copy == NULL || a == NULL) {
        free(copy);
        free(a);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    for (p = copy; p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        if (comma) {
            *comma = '\0';
        }

        if (*p == '\0') {
            snprintf(err, errlen, "empty address in \"%s\"", s);
            goto failed;
        }

        if (ebd_addr_parse(p, &a[*n], err, errlen) != 0) {
            goto failed;
        }

        (*n)++;
    }

    free(copy);
    *addrs = a;
    return 0;

failed:

    free(copy);
    free(a);
    *n = 0;
    return -1;
}


int
ebd_listen_parse(const char *s, ebd_addr_t *a, char *err, size_t errlen)
{
    int          v6;
    const char  *colon;
    char        *end;
    long         port;
    size_t       hlen;

    memset(a, 0, sizeof(*a));

    /* a port is required: there is no usual one to default to */
    colon = strrchr(s, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "\"%s\": HOST:PORT, [IPV6]:PORT or :PORT", s);
        return -1;
    }

    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || !isdigit((unsigned char) colon[1]) || port < 1
        || port > 65535)
    {
        snprintf(err, errlen, "invalid port in \"%s\"", s);
        return -1;
    }

    hlen = (size_t) (colon - s);
    v6 = hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']';
    if (v6) {
        s++;
        hlen -= 2;
    }

    /* an IPv6 address only in brackets: "::1:9464" is ambiguous */
    if (hlen >= sizeof(a->host) || (v6 && hlen == 0)
        || (!v6 && memchr(s, ':', hlen) != NULL)
        || memchr(s, '[', hlen) != NULL || memchr(s, ']', hlen) != NULL)
    {
        snprintf(err, errlen, "invalid host in \"%s\"", v6 ? s - 1 : s);
        return -1;
    }

    memcpy(a->host, s, hlen);
    a->host[hlen] = '\0';
    a->port = (int) port;
    return 0;
}


/* days since 1970-01-01 of a proleptic Gregorian date */
static long long
ebd_days(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long  era = (y >= 0 ? y : y - 399) / 400;
    unsigned   yoe = (unsigned) (y - era * 400);
    unsigned   doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned   doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (long long) doe - 719468;
}


int
ebd_parse_time(const char *s, uint64_t now_ms, uint64_t *ms)
{
    int                 n;
    char               *end;
    unsigned            y, mo, d, h, mi, sec;
    long long           t, frac, scale;
    uint64_t            v;

    if (strcmp(s, "now") == 0) {
        *ms = now_ms;
        return 0;
    }

    if (s[0] == '-') {
        if (eb_config_duration_str(s + 1, &v) != 0 || v > now_ms) {
            return -1;
        }
        *ms = now_ms - v;
        return 0;
    }

    if (strchr(s, '-') == NULL) {
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || end == s) {
            return -1;
        }
        *ms = v;
        return 0;
    }

    n = 0;
    if (sscanf(s, "%4u-%2u-%2uT%2u:%2u:%2u%n", &y, &mo, &d, &h, &mi, &sec,
               &n) != 6 || n == 0)
    {
        return -1;
    }

    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59
        || sec > 60)
    {
        return -1;
    }

    s += n;
    frac = 0;

    if (*s == '.') {
        s++;
        scale = 100;
        while (isdigit((unsigned char) *s)) {
            frac += (*s - '0') * scale;
            scale /= 10;
            s++;
        }
    }

    t = (ebd_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000
        + frac;

    if (*s == 'Z' || *s == 'z') {
        s++;

    } else if (*s == '+' || *s == '-') {
        unsigned  oh, om;
        int       sign = *s == '-' ? -1 : 1;

        if (sscanf(s + 1, "%2u:%2u%n", &oh, &om, &n) != 2) {
            return -1;
        }
        t -= sign * (long long) (oh * 3600 + om * 60) * 1000;
        s += 1 + n;

    } else if (*s != '\0') {
        return -1;
    }

    if (*s != '\0' || t < 0) {
        return -1;
    }

    *ms = (uint64_t) t;
    return 0;
}
