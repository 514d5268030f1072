/*
 * ebd's log: one line per message on stderr (systemd's journal takes it
 * from there), "2026-11-23T11:25:00.123Z warn target crm: ...". Messages
 * never contain secrets: callers name targets and connections, never
 * print their configuration.
 */

#ifndef EBD_LOG_H
#define EBD_LOG_H

typedef enum {
    EBD_LOG_ERROR = 0,
    EBD_LOG_WARN,
    EBD_LOG_INFO,
    EBD_LOG_DEBUG
} ebd_log_level_t;

extern ebd_log_level_t  ebd_log_level;

/* "error", "warn", "info", "debug"; returns 0, or -1 when unknown. */
int ebd_log_set_level(const char *name);

void ebd_log(ebd_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ebd_log_debug(...)                                                   \
    do { if (ebd_log_level >= EBD_LOG_DEBUG) ebd_log(EBD_LOG_DEBUG,          \
                                                     __VA_ARGS__); } while (0)

#endif /* EBD_LOG_H */
