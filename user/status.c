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
	/*
	 * One name per directory however it is spelt: /sys/fs/bpf/ferry-x/ and
	 * /sys/fs/bpf//ferry-x are /sys/fs/bpf/ferry-x, or ferryd writes one
	 * file and ferryctl, given the other spelling, reads another (and
	 * reports no config errors). Repeated slashes count once, trailing
	 * ones not at all ("/" alone stays "_").
	 */
	for (; *pin_path && n + 6 < len; pin_path++) {
		if (*pin_path == '/' && (pin_path[1] == '/' || (!pin_path[1] && n > (size_t)w)))
			continue;
		buf[n++] = *pin_path == '/' ? '_' : *pin_path;
	}
	if (*pin_path)
		return -ENAMETOOLONG;
	snprintf(buf + n, len - n, ".json");
	return 0;
}
