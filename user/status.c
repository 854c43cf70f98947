// SPDX-License-Identifier: GPL-2.0-only
/* Where ferryd's status file lives for a given pin path. */
#include <errno.h>
#include <stdio.h>

#include "status.h"

int ferry_status__path(const char *pin_path, char *buf, size_t len)
{
	size_t n;
	int w;

	w = snprintf(buf, len, "%s/", FERRY_STATUS_DIR);
	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	n = w;
	for (; *pin_path && n + 6 < len; pin_path++)
		buf[n++] = *pin_path == '/' ? '_' : *pin_path;
	if (*pin_path)
		return -ENAMETOOLONG;
	snprintf(buf + n, len - n, ".json");
	return 0;
}
