/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferryd's side of canary analysis: for every deployment with
 * ferry.io/canary: auto, it cuts windows aligned to the wall clock (window k
 * is [k * interval, (k + 1) * interval) in Unix seconds, so every node cuts the
 * same windows), takes the kernel's counters and request-latency histograms at
 * each boundary, judges the deltas (canary.h), steps the rollout and writes
 * the canary's weight (ferry_sync__canary). Only new connections follow a
 * weight: open connections keep their backend.
 *
 * What a restart must find again lives in two places: the weight in the
 * pinned ferry_pred_meta, the rollout (state, step, failures, the last
 * windows) in the state file FERRY_STATUS_DIR/<pin>.canary.json, rewritten
 * atomically after each window. SRE commands (ferryctl canary --pause ...)
 * arrive as files in FERRY_STATUS_DIR/<pin>.canary-ctl/, one per command
 * ("namespace_name@time-pid", holding it), read in order and removed at the
 * next tick.
 */
#ifndef FERRY_CANARY_RUN_H
#define FERRY_CANARY_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "canary/canary.h"
#include "kernel/snapshot.h"
#include "kernel/sync.h"
#include "model.h"

/* How many judged windows the state file keeps per deployment (ferryctl canary shows them). */
#define FERRY_CANARY_HISTORY 6

/* Paths of the state file and the command directory for a pin path. */
int ferry_canary__state_path(const char *pin_path, char *buf, size_t len);
int ferry_canary__ctl_dir(const char *pin_path, char *buf, size_t len);
/* Queues cmd for deployment ("namespace/name") where ferryd picks it up. 0 or -errno. */
int ferry_canary__queue_command(const char *pin_path, const char *deployment,
				enum ferry_canary_command cmd);

/* One deployment's window counts, as one node saw them. */
struct ferry_canary_node_window {
	char deployment[FERRY_NAME_LEN];
	__u64 window; /* index: end time / interval */
	struct ferry_canary_counts canary, baseline;
	__u64 http_unknown; /* canary responses without an HTTP/1.x status (TLS, h2, gRPC) */
};

/* Sums what the snapshot holds for predictor name over the deployment's services. */
void ferry_canary__collect(const struct ferry_snapshot *snap, const char *deployment,
			   const char *predictor, struct ferry_canary_counts *out, __u64 *unknown);

struct ferry_canary_runner_opts {
	const char *pin_path;
	/* A transition, with the numbers that decided it: for a Kubernetes Event. */
	void (*on_transition)(void *ctx, const char *deployment, bool warning, const char *reason,
			      const char *message);
	void *ctx;
	void *cluster_ctx; /* the first argument of gather and may_decide */
	/*
	 * Cluster mode: the windows of the other nodes for deployment and window
	 * index, merged into the local counts before judging. NULL: decide alone.
	 */
	int (*gather)(void *cluster_ctx, const char *deployment, __u64 window,
		      struct ferry_canary_node_window *merged);
	/* false: this node follows a decision made elsewhere and judges nothing. */
	bool (*may_decide)(void *cluster_ctx);
	/* The maps were just created: a state file left over describes maps that are gone. */
	bool fresh;
};

struct ferry_canary_runner;

struct ferry_canary_runner *ferry_canary_runner__new(const struct ferry_canary_runner_opts *opts);
void ferry_canary_runner__free(struct ferry_canary_runner *r);

/* After every manifest sync: starts, keeps or ends rollouts and (re)applies weights. */
void ferry_canary_runner__sync(struct ferry_canary_runner *r, struct ferry_sync *sync,
			       const struct ferry_model *model);

/* Every second: commands, then any window that ended at or before now. */
void ferry_canary_runner__tick(struct ferry_canary_runner *r, struct ferry_sync *sync, time_t now);

/* Copies the per-deployment figures into a malloc'd array; its length, or 0. */
size_t ferry_canary_runner__metrics(const struct ferry_canary_runner *r,
				    struct ferry_canary_metrics **out);

/* This node's last closed window of a deployment (for the leader). -ENOENT when none. */
int ferry_canary_runner__last_window(const struct ferry_canary_runner *r, const char *deployment,
				     struct ferry_canary_node_window *out);

/* A rollout as the deciding node publishes it (cluster mode). */
struct ferry_canary_decision {
	char deployment[FERRY_NAME_LEN];
	__u64 fingerprint; /* of the manifest version it is about */
	struct ferry_canary_rollout ro;
};

/* Every configured rollout, malloc'd; its length, or 0. */
size_t ferry_canary_runner__decisions(const struct ferry_canary_runner *r,
				      struct ferry_canary_decision **out);

/*
 * Cluster mode, every node but the deciding one: applies a published decision
 * when it is about the manifest version this node has (same fingerprint).
 * Returns true when something changed.
 */
bool ferry_canary_runner__apply_decision(struct ferry_canary_runner *r, struct ferry_sync *sync,
					 const struct ferry_canary_decision *decided);

/* JSON of a window (counts, histograms as sparse buckets) and back. */
char *ferry_canary_node_window__json(const struct ferry_canary_node_window *w);
int ferry_canary_node_window__parse(const char *text, struct ferry_canary_node_window *w);
/* The same for a decision. */
json_t *ferry_canary_decision__json(const struct ferry_canary_decision *d);
int ferry_canary_decision__parse(json_t *o, struct ferry_canary_decision *d);

#endif /* FERRY_CANARY_RUN_H */
