// SPDX-License-Identifier: GPL-2.0-only
/*
 * VIP ordering for the config store; the ADDR:PORT[/udp] text itself is
 * user/addr.c's.
 */
#include "source/config_internal.h"

/* ------------------------------------------------------------------ VIPs */

int vip_cmp(const struct ferry_vip *a, const struct ferry_vip *b)
{
	int r;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	r = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (r)
		return r;
	if (a->port != b->port)
		return ntohs(a->port) < ntohs(b->port) ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}
