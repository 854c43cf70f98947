// SPDX-License-Identifier: GPL-2.0-only
/* The list of ferry's pinned maps and their one opener (pins.h). */
#include <errno.h>
#include <stdio.h>
#include <bpf/bpf.h>

#include "kernel/pins.h"

const char *const ferry_map_names[FERRY_M_COUNT] = {
	[FERRY_M_CONFIG] = FERRY_MAP_CONFIG,
	[FERRY_M_SERVICES] = FERRY_MAP_SERVICES,
	[FERRY_M_TABLES] = FERRY_MAP_TABLES,
	[FERRY_M_BACKENDS] = FERRY_MAP_BACKENDS,
	[FERRY_M_FLOWS] = FERRY_MAP_FLOWS,
	[FERRY_M_RFLOWS] = FERRY_MAP_RFLOWS,
	[FERRY_M_STATS] = FERRY_MAP_STATS,
	[FERRY_M_SVC_STATS] = FERRY_MAP_SVC_STATS,
	[FERRY_M_COUNTERS] = FERRY_MAP_COUNTERS,
	[FERRY_M_LATENCY] = FERRY_MAP_LATENCY,
	[FERRY_M_TRACE] = FERRY_MAP_TRACE,
	[FERRY_M_TX_PORTS] = FERRY_MAP_TX_PORTS,
	[FERRY_M_SVC_META] = FERRY_MAP_SVC_META,
	[FERRY_M_PRED_META] = FERRY_MAP_PRED_META,
	[FERRY_M_LINKS] = FERRY_MAP_LINKS,
	[FERRY_M_SELECT] = FERRY_MAP_SELECT,
	[FERRY_M_L7] = FERRY_MAP_L7,
	[FERRY_M_EFLOWS] = FERRY_MAP_EFLOWS,
	[FERRY_M_ERFLOWS] = FERRY_MAP_ERFLOWS,
	[FERRY_M_VIP_BITS] = FERRY_MAP_VIP_BITS,
	[FERRY_M_BE_BITS] = FERRY_MAP_BE_BITS,
};

int ferry_pin__path(char *buf, size_t len, const char *pin_path, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", pin_path, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ferry_pin__open(const char *pin_path, enum ferry_map_id id, char *path, size_t len)
{
	int fd, err;

	err = ferry_pin__path(path, len, pin_path, ferry_map_names[id]);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}
