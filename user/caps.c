// SPDX-License-Identifier: GPL-2.0-only
/* ferryd's start-up check of its effective capabilities (see caps.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "caps.h"
#include "log.h"

/*
 * Bit numbers from linux/capability.h, spelled out because CAP_BPF and
 * CAP_PERFMON are missing from older userspace headers.
 */
#define FERRY_CAP_NET_ADMIN 12
#define FERRY_CAP_SYS_ADMIN 21
#define FERRY_CAP_PERFMON 38
#define FERRY_CAP_BPF 39

static const struct {
	int bit;
	/* The kernel's bpf_capable()/perfmon_capable() also accept CAP_SYS_ADMIN. */
	bool sys_admin_covers;
	const char *name;
	const char *why;
} needed[] = {
	{ FERRY_CAP_BPF, true, "CAP_BPF", "bpf(2): maps, programs, pins" },
	/* rtnetlink and TC want CAP_NET_ADMIN itself, whatever else is held. */
	{ FERRY_CAP_NET_ADMIN, false, "CAP_NET_ADMIN", "XDP/TC attach, XDP and TC program load" },
	{ FERRY_CAP_PERFMON, true, "CAP_PERFMON", "the verifier allows packet pointer arithmetic" },
};

int ferry_caps__missing(uint64_t effective, char *buf, size_t len)
{
	size_t n = 0;
	int missing = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		int w;

		if (effective & (1ULL << needed[i].bit))
			continue;
		if (needed[i].sys_admin_covers && (effective & (1ULL << FERRY_CAP_SYS_ADMIN)))
			continue;
		missing++;
		if (n >= len)
			continue;
		w = snprintf(buf + n, len - n, "%s%s (%s)", n ? ", " : "", needed[i].name,
			     needed[i].why);
		if (w > 0)
			n += (size_t)w;
	}
	return missing;
}

int ferry_caps__check(void)
{
	char line[256], missing[512];
	uint64_t eff = 0;
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f) {
		pr_err("cannot read /proc/self/status to check capabilities: %s", strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %" SCNx64, &eff) == 1) {
			found = true;
			break;
		}
	}
	fclose(f);
	if (!found) {
		pr_err("no CapEff line in /proc/self/status: cannot check capabilities");
		return -ENOENT;
	}
	if (ferry_caps__missing(eff, missing, sizeof(missing)) == 0)
		return 0;
	pr_err("missing capabilities: %s; grant them (Kubernetes: securityContext.capabilities.add "
	       "without the CAP_ prefix; docker/podman: --cap-add) or run as root (effective set %#" PRIx64
	       ")",
	       missing, eff);
	return -EPERM;
}
