/* SPDX-License-Identifier: GPL-2.0-only */
/* Logging for ferryd, ferryctl and tests: one line per event, to stderr. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum ferry_log_level {
	FERRY_LOG_ERROR,
	FERRY_LOG_WARN,
	FERRY_LOG_INFO,
	FERRY_LOG_DEBUG,
};

extern enum ferry_log_level ferry_log_level;

void ferry_log(enum ferry_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int ferry_log_parse_level(const char *name, enum ferry_log_level *level);

#define pr_err(...) ferry_log(FERRY_LOG_ERROR, __VA_ARGS__)
#define pr_warn(...) ferry_log(FERRY_LOG_WARN, __VA_ARGS__)
#define pr_info(...) ferry_log(FERRY_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) ferry_log(FERRY_LOG_DEBUG, __VA_ARGS__)

#endif /* FERRY_LOG_H */
