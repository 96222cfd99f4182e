/* One line per event on stderr: human-readable, or JSON with LOG_FORMAT=json.
 * Each process sets its task context (task id, run id) so every line about a
 * task carries them. Never log secrets. */
#ifndef CWORKER_LOG_H
#define CWORKER_LOG_H

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

void log_configure(enum log_level min_level, int json, const char *process_name);
/* Context attached to every following line of this process; NULL / 0 clears it. */
void log_set_task(const char *task_id, long run_id);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses "debug|info|warning|error" (any case); returns -1 when unknown. */
int log_level_parse(const char *s, enum log_level *out);

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
