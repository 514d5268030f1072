/*
 * A growable byte buffer for the core (malloc-backed): output of
 * transforms, events built outside nginx's pools, test fixtures.
 */

#ifndef EB_BUF_H
#define EB_BUF_H

#include <stddef.h>


typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          cap;
    int             failed;      /* an allocation failed; contents cut */
} eb_buf_t;


void eb_buf_init(eb_buf_t *b);
void eb_buf_free(eb_buf_t *b);
void eb_buf_reset(eb_buf_t *b);
/* Returns 0, or -1 (and sets failed) when memory ran out. */
int eb_buf_append(eb_buf_t *b, const void *p, size_t len);
/* room for len more bytes at data + len, which the caller fills */
int eb_buf_reserve(eb_buf_t *b, size_t len);
int eb_buf_append_str(eb_buf_t *b, const char *s);
/* A yajl_print_t: yajl_gen_config(g, yajl_gen_print_callback,
 * eb_buf_yajl_print, &buf) makes yajl_gen write into buf. */
void eb_buf_yajl_print(void *ctx, const char *s, size_t len);

#endif /* EB_BUF_H */
