/* log.h: structured log lines (one JSON object per line) on stderr. */
/* Owns nothing: JSON given to log_json is borrowed. */
#ifndef AIRLOCK_LOG_H
#define AIRLOCK_LOG_H

#include <stddef.h>

#include <jansson.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Sets the lowest level written; the default is LOG_LVL_INFO. */
void log_set_level(enum log_level level);

/* Writes {"ts","level","msg"} with a printf-formatted message. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the object as one line, after adding "ts" and "level".  Steals obj. */
void log_json(enum log_level level, json_t *obj);

/* Formats a message into a caller's error buffer (errlen may be 0), dropping the trailing
 * newlines libpq's messages carry. */
void log_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
