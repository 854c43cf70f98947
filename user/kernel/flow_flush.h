/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Forgetting flow state on purpose ('ferryctl flows --flush'): every flow, or
 * those of some VIPs, in every pinned flow map. Open connections survive it:
 * their next packet has no flow, is a mid-stream pickup and goes where the
 * consistent hash points, which is where it went unless the table or the seed
 * changed since. That is also what makes a flush the way to rehash: after a
 * weight change, flushed connections follow the new table.
 */
#ifndef FERRY_FLOW_FLUSH_H
#define FERRY_FLOW_FLUSH_H

#include <stdbool.h>
#include <stddef.h>

#include "ferry_maps.h"

struct ferry_flow_flush_map {
	const char *name; /* its pin name under the pin path */
	size_t deleted; /* entries removed */
	bool present; /* pinned (an optional map may be missing) */
};

/* One entry per pinned flow map (flow_flush.c's table). */
#define FERRY_FLOW_FLUSH_MAX_MAPS 8

struct ferry_flow_flush_result {
	struct ferry_flow_flush_map maps[FERRY_FLOW_FLUSH_MAX_MAPS];
	size_t nmaps;
};

/*
 * Deletes the entries of every flow map pinned under pin_path that belong to
 * one of vips (matching address, port, protocol and family), or every entry
 * when nvips is 0. Returns 0, or a negative errno when a required map cannot
 * be opened or read (the result then says what was deleted before).
 */
int ferry_flows__flush(const char *pin_path, const struct ferry_vip *vips, size_t nvips,
		       struct ferry_flow_flush_result *res);

#endif /* FERRY_FLOW_FLUSH_H */
