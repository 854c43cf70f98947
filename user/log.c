// SPDX-License-Identifier: GPL-2.0-only
/* Logging: level-filtered lines on stderr with a UTC timestamp and level tag. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

enum ferry_log_level ferry_log_level = FERRY_LOG_INFO;

static const char *const level_names[] = {
	[FERRY_LOG_ERROR] = "error",
	[FERRY_LOG_WARN] = "warn",
	[FERRY_LOG_INFO] = "info",
	[FERRY_LOG_DEBUG] = "debug",
};

void ferry_log(enum ferry_log_level level, const char *fmt, ...)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > ferry_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s ", stamp, ts.tv_nsec / 1000000, level_names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ferry_log_parse_level(const char *name, enum ferry_log_level *level)
{
	for (unsigned int i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(name, level_names[i])) {
			*level = i;
			return 0;
		}
	}
	return -EINVAL;
}
