/*
 * The head of a request to the --metrics listener (RFC 9112 section 2
 * to 5, what a server of one resource needs): the request line, header
 * fields checked for their form and Host, everything else ignored. The
 * body, if any, is never read: the answer ends the connection.
 */

#include <string.h>
#include <strings.h>

#include "ebd_metrics_request.h"


#define EBD_MR_PATH  "/metrics"


/* tchar (RFC 9110 5.6.2): what a method and a field name are made of */
static int
ebd_mr_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


/* The line starting at *pos, without its CRLF or LF; *pos moves past
 * it. Only called within the head (buf[0 .. end)), whose last byte is
 * an LF. */
static size_t
ebd_mr_line(const char *buf, size_t end, size_t *pos, const char **line)
{
    size_t       n;
    const char  *nl;

    *line = buf + *pos;
    nl = memchr(*line, '\n', end - *pos);
    n = (size_t) (nl - *line);
    *pos += n + 1;

    if (n && (*line)[n - 1] == '\r') {
        n--;
    }

    return n;
}


/* "METHOD SP TARGET SP HTTP/1.x": 0 (rq's fields set), 400 or 505 */
static int
ebd_mr_request_line(ebd_metrics_request_t *rq, const char *p, size_t n)
{
    size_t       i, t;
    const char  *v;

    for (i = 0; i < n && ebd_mr_tchar(p[i]); i++) { /* void */ }

    if (i == 0 || i == n || p[i] != ' ') {
        return 400;
    }

    rq->method = p;
    rq->method_len = i++;

    /* visible ASCII: no control character, no bare CR, no UTF-8 */
    for (t = i; i < n && p[i] > 0x20 && p[i] < 0x7f; i++) { /* void */ }

    if (i == t || i == n || p[i] != ' ') {
        return 400;
    }

    rq->path = p + t;
    rq->path_len = i - t;

    v = p + i + 1;

    if (n - i - 1 != sizeof("HTTP/1.1") - 1 || memcmp(v, "HTTP/", 5) != 0
        || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
    {
        return 400;
    }

    if (v[5] != '1') {
        return 505;
    }

    rq->minor = (unsigned) (v[7] - '0');

    return 0;
}


/* "name: value", no fold: 0 or 400; *host counts Host fields */
static int
ebd_mr_field(const char *p, size_t n, unsigned *host)
{
    size_t          i;
    unsigned char   c;

    for (i = 0; i < n && ebd_mr_tchar(p[i]); i++) { /* void */ }

    /* a line starting with a space (obs-fold) and "name :" end here */
    if (i == 0 || i == n || p[i] != ':') {
        return 400;
    }

    if (i == 4 && strncasecmp(p, "host", 4) == 0) {
        (*host)++;
    }

    /* field-vchar, SP and HTAB: no CR of its own, no NUL */
    while (++i < n) {
        c = (unsigned char) p[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 400;
        }
    }

    return 0;
}


/* the whole head is in buf[0 .. rq->head_len) */
static int
ebd_mr_head(ebd_metrics_request_t *rq, const char *buf)
{
    int          rc;
    size_t       pos, n;
    unsigned     host;
    const char  *line, *q;

    pos = 0;
    n = ebd_mr_line(buf, rq->head_len, &pos, &line);

    rc = ebd_mr_request_line(rq, line, n);
    if (rc) {
        return rc;
    }

    host = 0;

    for ( ;; ) {
        n = ebd_mr_line(buf, rq->head_len, &pos, &line);
        if (n == 0) {
            break;
        }

        if (ebd_mr_field(line, n, &host)) {
            return 400;
        }
    }

    /* RFC 9112 3.2: a server MUST answer these with 400 */
    if (host > 1 || (host == 0 && rq->minor > 0)) {
        return 400;
    }

    q = memchr(rq->path, '?', rq->path_len);
    if (q) {
        rq->path_len = (size_t) (q - rq->path);
    }

    rq->head = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;

    if (rq->path_len != sizeof(EBD_MR_PATH) - 1
        || memcmp(rq->path, EBD_MR_PATH, rq->path_len) != 0)
    {
        return 404;
    }

    if (!rq->head
        && !(rq->method_len == 3 && memcmp(rq->method, "GET", 3) == 0))
    {
        return 405;
    }

    return 200;
}


void
ebd_metrics_request_init(ebd_metrics_request_t *rq)
{
    memset(rq, 0, sizeof(ebd_metrics_request_t));
}


int
ebd_metrics_request_parse(ebd_metrics_request_t *rq, const char *buf,
    size_t len)
{
    size_t       end, lim;
    const char  *nl;

    lim = len < EBD_MR_HEAD_MAX ? len : EBD_MR_HEAD_MAX;

    /* line by line, to the first empty one (the first line, empty or
     * not, is the request line) */
    while (rq->scanned < lim) {
        nl = memchr(buf + rq->scanned, '\n', lim - rq->scanned);
        if (nl == NULL) {
            rq->scanned = lim;
            break;
        }

        end = (size_t) (nl - buf);
        rq->scanned = end + 1;

        if (rq->line > 0
            && (end == rq->line
                || (end == rq->line + 1 && buf[rq->line] == '\r')))
        {
            rq->head_len = end + 1;
            return ebd_mr_head(rq, buf);
        }

        rq->line = end + 1;
    }

    if (len < EBD_MR_HEAD_MAX) {
        return 0;
    }

    return rq->line == 0 ? 414 : 431;
}


const char *
ebd_metrics_request_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default:  return "Internal Server Error";
    }
}
