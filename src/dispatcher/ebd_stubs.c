/* TEMPORARY: weak stand-ins until the http and SQL drivers land. */
#include <stdio.h>
#include "ebd_target.h"

static int ebd_stub_open(ebd_target_t *t, char *err, size_t errlen)
{ snprintf(err, errlen, "driver not built"); return -1; }
static void ebd_stub_deliver(ebd_target_t *t, ebd_delivery_t *d) {}
static void ebd_stub_close(ebd_target_t *t) {}

__attribute__((weak)) const ebd_driver_t ebd_http_driver = { "http", ebd_stub_open, ebd_stub_deliver, ebd_stub_close };
__attribute__((weak)) const ebd_driver_t ebd_cloudevents_driver = { "cloudevents", ebd_stub_open, ebd_stub_deliver, ebd_stub_close };
__attribute__((weak)) const ebd_driver_t ebd_mysql_driver = { "mysql", ebd_stub_open, ebd_stub_deliver, ebd_stub_close };
__attribute__((weak)) const ebd_driver_t ebd_postgresql_driver = { "postgresql", ebd_stub_open, ebd_stub_deliver, ebd_stub_close };
