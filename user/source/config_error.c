// SPDX-License-Identifier: GPL-2.0-only
/* One line per configuration error: FILE:LINE:COL: OBJECT: FIELD: MESSAGE. */
#include <stdio.h>

#include "source/config_error.h"

void ferry_config_error__format(const struct ferry_config_error *err, char *buf, size_t len)
{
	size_t off = 0;

#define APPEND(...)                                                                    \
	do {                                                                           \
		int __n = snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__); \
		if (__n > 0)                                                           \
			off += (size_t)__n;                                            \
	} while (0)
	if (!len)
		return;
	buf[0] = '\0';
	APPEND("%s", err->file);
	if (err->line > 0) {
		APPEND(":%d", err->line);
		if (err->column > 0)
			APPEND(":%d", err->column);
	}
	if (err->object[0])
		APPEND(": %s", err->object);
	if (err->field[0])
		APPEND(": %s", err->field);
	APPEND(": %s", err->message);
#undef APPEND
}
