/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Rebalancing: after a weight change, rollback or drain, ends the idle
 * client connections of the predictors and backends that must lose traffic,
 * spread over a window, so long-lived connections (gRPC channels, keep-alive
 * pools) follow the new weights. The kernel half is bpf/ferry_iter.bpf.c (a
 * TCP socket iterator with bpf_sock_destroy, Linux 6.5+); this half decides
 * which connections go and when, and counts what happened.
 */
#ifndef FERRY_REBALANCE_H
#define FERRY_REBALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/types.h>

#include "ferry_maps.h"

struct ferry_rebal;

struct ferry_rebal_opts {
	const char *pin_path;
	/* Also walk every other network namespace on the node (pods): needs CAP_SYS_ADMIN and
	 * the host's PID namespace (--rebalance-pod-netns). */
	bool pod_netns;
};

/* What ferryd reports in its status file and metrics. */
struct ferry_rebal_stats {
	bool available; /* the iterator and bpf_sock_destroy are usable */
	bool l7; /* ferry_l7 is present: requests in flight come from the kernel's count */
	bool pod_netns;
	char reason[160]; /* why not available, or "" */
	__u64 rounds; /* rebalances started (a service's weights or backends changed) */
	__u64 destroyed; /* connections ended idle with an abort only */
	__u64 goaway; /* connections told with a GOAWAY (their sockets end a little later) */
	__u64 busy; /* passes that found a due connection busy and left it */
	__u64 failed; /* bpf_sock_destroy errors */
	__u64 expired; /* due connections never seen idle before their round ended */
	__u64 gone; /* marked connections the client closed first */
	__u64 passes; /* iterator runs (one per namespace walked) */
	__u32 marked; /* connections marked now */
	__u32 netns; /* namespaces walked by the last pass */
};

/*
 * Loads the iterator against the pins under opts->pin_path. Never fails for a
 * kernel without the feature: the object then reports itself unavailable
 * (ferry_rebal__stats) with the reason, logged once. NULL only on ENOMEM.
 */
struct ferry_rebal *ferry_rebal__new(const struct ferry_rebal_opts *opts);
void ferry_rebal__free(struct ferry_rebal *r);

/* ferry.io/rebalance and ferry.io/rebalance-window of the service at vip (default: idle, 30 s). */
int ferry_rebal__set_policy(struct ferry_rebal *r, const struct ferry_vip *vip, bool off,
			    __u64 window_ns);
/* Forgets every policy (before a resync sets them again). */
void ferry_rebal__clear_policies(struct ferry_rebal *r);

/*
 * One step, at ferryd's 1 s tick: notices services whose weights or backends
 * changed, plans which connections go (by deadline), and runs the iterator
 * while anything is planned. now_ns is CLOCK_MONOTONIC (bpf_ktime_get_ns).
 */
void ferry_rebal__tick(struct ferry_rebal *r, __u64 now_ns);

void ferry_rebal__stats(const struct ferry_rebal *r, struct ferry_rebal_stats *st);

/*
 * The planning rule, exposed for tests: which of n connections (predictor ids
 * pred[i], losing[i] set for those on a backend that left the table) must go,
 * given the predictors' shares in force (ppm). Sets out[i]; returns how many.
 * Every connection of a losing backend goes, and every one of a predictor the
 * service no longer has; then each predictor whose share went down (shrunk[p];
 * NULL: all) keeps at most round(total * share) of the rest, the ones kept
 * chosen by hash[i]. A predictor whose share did not go down loses nothing, so
 * a scale-up or an unrelated table change does not churn connections.
 */
size_t ferry_rebal__plan(size_t n, const __u32 *pred, const bool *losing, const __u32 *hash,
			 size_t npreds, const __u32 *pred_ids, const __u32 *shares,
			 const bool *shrunk, bool *out);

/* A connection's deadline inside its round: start + a hash-spread offset in [0, window). */
__u64 ferry_rebal__deadline(__u64 start_ns, __u64 window_ns, __u64 cookie);

#endif /* FERRY_REBALANCE_H */
