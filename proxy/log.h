/*
 * log.h - one line per event, to stderr, as text or JSON lines.
 *
 * Text: "2026-11-21T23:59:59.123Z info  client 7: closed (idle)".
 * JSON: {"ts":"...","level":"info","msg":"client 7: closed (idle)"}.
 * Never log secrets: callers pass no passwords or SASL tokens here.
 */
#ifndef EOSPROXY_LOG_H
#define EOSPROXY_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the threshold and format (json != 0 for JSON lines). */
void log_setup(enum log_level level, int json);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/*
 * Formats a one-line error into the caller's buffer err[0..errlen), for
 * functions that report "what is wrong" to their caller instead of
 * logging it. Nothing happens when err is NULL or errlen is 0.
 */
void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
