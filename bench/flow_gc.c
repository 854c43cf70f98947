// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's flow GC pass (ferry_sync__gc_flows, every 10 s) over a full flow
 * table, against the per-key walk it replaced (get_next_key, then a lookup,
 * for every flow), in the same invocation, interleaved. The table holds
 * FLOWS live connections and nothing is due, so both passes only read: the
 * steady state of a busy node. Root; pins under PIN_PATH, removed at exit.
 *
 *   flow_gc PIN_PATH [FLOWS] [RUNS]   FLOWS empty or absent: a full table
 *
 * Prints JSON: {"flows": N, "gc_ms": [...], "walk_ms": [...]} (CPU ms per
 * pass, the process's own: what the pass takes from the node's cores).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel/dataplane.h"
#include "kernel/pins.h"
#include "kernel/sync.h"
#include "log.h"

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* FLOWS confirmed connections to one VIP, both halves, all just active. */
static int fill(struct ferry_dp *dp, unsigned int flows)
{
	__u64 now = mono_ns();

	for (unsigned int i = 0; i < flows; i++) {
		struct ferry_flow_key key = { .family = FERRY_AF_INET, .proto = IPPROTO_TCP };
		struct ferry_flow flow = { .family = FERRY_AF_INET, .backend_id = 1 + i % 3 };
		struct ferry_rflow rflow = { .family = FERRY_AF_INET, .backend_id = 1 + i % 3 };
		struct ferry_flow_key rkey;

		key.saddr[0] = htonl(0x0a000000 | i);
		inet_pton(AF_INET, "198.18.100.10", &key.daddr[0]);
		key.sport = htons(1024 + i % 60000);
		key.dport = htons(8000);
		inet_pton(AF_INET, "198.18.11.2", &flow.backend_addr[0]);
		flow.backend_port = htons(9000);
		flow.last_ns = now;
		ferry_flow__reverse_key(&rkey, &key, &flow);
		rflow.fwd = key;
		if (bpf_map_update_elem(dp->map_fds[FERRY_M_FLOWS], &key, &flow, BPF_ANY) ||
		    bpf_map_update_elem(dp->map_fds[FERRY_M_RFLOWS], &rkey, &rflow, BPF_ANY))
			return -errno;
	}
	return 0;
}

/* The walk before the GC read in batches: two syscalls per flow. */
static unsigned int key_walk(int fd)
{
	struct ferry_flow_key key, next, *prev = NULL;
	struct ferry_flow flow;
	unsigned int n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		n += !bpf_map_lookup_elem(fd, &key, &flow);
	}
	return n;
}

int main(int argc, char **argv)
{
	const struct ferry_gc_opts o = { .tcp_idle_ns = 3600 * 1000000000ULL,
					 .tcp_closing_ns = 10 * 1000000000ULL,
					 .embryonic_ns = 30 * 1000000000ULL,
					 .udp_idle_ns = 60 * 1000000000ULL };
	unsigned int flows = argc > 2 && *argv[2] ? strtoul(argv[2], NULL, 10) : FERRY_MAX_FLOWS;
	int runs = argc > 3 ? atoi(argv[3]) : 5, err;
	struct ferry_sync *sync = NULL;
	double t, *gc = NULL, *walk = NULL;
	struct ferry_dp *dp;

	if (argc < 2 || runs < 1 || !flows || flows > FERRY_MAX_FLOWS) {
		fprintf(stderr, "usage: flow_gc PIN_PATH [FLOWS (1-%u)] [RUNS]\n", FERRY_MAX_FLOWS);
		return 2;
	}
	ferry_log_level = FERRY_LOG_WARN;
	libbpf_set_print(NULL);
	ferry_dp__reset(argv[1]);
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = argv[1] });
	if (!dp) {
		fprintf(stderr, "flow_gc: cannot open a data plane at %s\n", argv[1]);
		return 1;
	}
	sync = ferry_sync__new(dp, NULL);
	err = sync ? fill(dp, flows) : -ENOMEM;
	if (err) {
		fprintf(stderr, "flow_gc: filling the flow table: %s\n", strerror(-err));
		goto out;
	}
	gc = calloc(runs, sizeof(*gc));
	walk = calloc(runs, sizeof(*walk));
	if (!gc || !walk) {
		err = -ENOMEM;
		goto out;
	}
	/* Interleaved: a slow phase of the machine lands on both. */
	for (int r = 0; r < runs; r++) {
		t = cpu_ms();
		if (ferry_sync__gc_flows(sync, &o, NULL))
			fprintf(stderr, "flow_gc: the pass removed live flows\n");
		gc[r] = cpu_ms() - t;
		t = cpu_ms();
		if (key_walk(dp->map_fds[FERRY_M_FLOWS]) != flows)
			fprintf(stderr, "flow_gc: the walk missed flows\n");
		/* The GC reads the embryonic table as well: so does the baseline. */
		key_walk(dp->map_fds[FERRY_M_EFLOWS]);
		walk[r] = cpu_ms() - t;
	}
	printf("{\"flows\": %u, \"gc_ms\": [", flows);
	for (int r = 0; r < runs; r++)
		printf("%s%.2f", r ? ", " : "", gc[r]);
	printf("], \"walk_ms\": [");
	for (int r = 0; r < runs; r++)
		printf("%s%.2f", r ? ", " : "", walk[r]);
	printf("]}\n");
out:
	free(walk);
	free(gc);
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(argv[1]);
	return err ? 1 : 0;
}
