/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A point-in-time copy of everything ferry keeps in bpffs: config, services,
 * predictors, backends, per-CPU counters summed over CPUs, latency
 * histograms and attachments. ferryd's /metrics and ferryctl (status,
 * services, latency, top) read the maps only through this.
 *
 * The struct is public so that tests can build one by hand: allocate the
 * struct and its arrays with malloc/calloc (ferry_snapshot__free frees them),
 * fill them, then call ferry_snapshot__sort() before the lookup helpers.
 */
#ifndef FERRY_SNAPSHOT_H
#define FERRY_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
#include "ferry_maps.h"
#include "addr.h"

struct ferry_snap_service {
	__u32 id;
	struct ferry_vip vip;
	__u32 flags; /* FERRY_SVC_F_* */
	__u32 table_size;
	__u32 sample_every;
	bool has_meta; /* the rest comes from ferry_svc_meta */
	char deployment[FERRY_NAME_LEN]; /* "namespace/name" */
	__u32 npredictors;
	__u32 predictor_ids[FERRY_MAX_SVC_PREDICTORS];
	__u64 table_generation;
	struct ferry_svc_stats stats; /* summed over CPUs */
};

struct ferry_snap_predictor {
	__u32 id;
	__u32 svc_id;
	__u32 flags; /* FERRY_PRED_F_* */
	__u32 weight_configured; /* ppm */
	__u32 weight_effective; /* ppm */
	__u32 weight_override; /* ppm; in force when flags has FERRY_PRED_F_OVERRIDE */
	__u32 weight_canary; /* ppm; in force when flags has FERRY_PRED_F_CANARY */
	__u32 backends_ready;
	__u32 backends_draining;
	char name[FERRY_PRED_NAME_LEN];
	/* retired totals plus the per-CPU sums of its live backends */
	struct ferry_stats stats;
};

struct ferry_snap_backend {
	__u32 id;
	struct ferry_backend backend; /* address, state, predictor_id, svc_id */
	struct ferry_stats stats; /* summed over CPUs */
};

struct ferry_snap_hist {
	struct ferry_hist_key key;
	struct ferry_hist hist; /* summed over CPUs */
};

struct ferry_snap_link {
	__u32 ifindex; /* the ferry_links key */
	struct ferry_link link;
};

struct ferry_snapshot {
	bool has_config;
	struct ferry_config config;
	__u64 counters[FERRY_CTR_MAX]; /* ferry_counters summed over CPUs */

	struct ferry_snap_service *services; /* sorted by id */
	size_t nservices;
	struct ferry_snap_predictor *predictors; /* sorted by id */
	size_t npredictors;
	struct ferry_snap_backend *backends; /* sorted by id */
	size_t nbackends;
	/* sorted by (kind, metric, id, protocol); see FERRY_HIST_ALL_PROTOCOLS */
	struct ferry_snap_hist *hists;
	size_t nhists;
	struct ferry_snap_link *links; /* sorted by ifindex */
	size_t nlinks;
};

/*
 * Reads the maps pinned under pin_path (FERRY_PIN_ROOT_DEFAULT when NULL).
 * Returns NULL and sets errno on failure (ENOENT: a required map is not
 * pinned there; ferry_svc_meta, ferry_pred_meta, ferry_links and
 * ferry_latency are optional and read as empty when absent).
 */
struct ferry_snapshot *ferry_snapshot__read(const char *pin_path);
void ferry_snapshot__free(struct ferry_snapshot *snap);

/* Sorts the arrays as the lookups expect; for hand-built snapshots. */
void ferry_snapshot__sort(struct ferry_snapshot *snap);

const struct ferry_snap_service *ferry_snapshot__service(const struct ferry_snapshot *snap,
							 __u32 id);
const struct ferry_snap_predictor *ferry_snapshot__predictor(const struct ferry_snapshot *snap,
							     __u32 id);
const struct ferry_snap_backend *ferry_snapshot__backend(const struct ferry_snapshot *snap,
							 __u32 id);
/*
 * A snapshot read from the maps holds, next to each (kind, metric, id)'s
 * histograms by protocol, their sum under this protocol value (user space
 * only: the kernel's protocols are enum ferry_l7_proto).
 */
#define FERRY_HIST_ALL_PROTOCOLS 0xff

/* All protocols together (a hand-built snapshot without sums: its first protocol's). */
const struct ferry_hist *ferry_snapshot__hist(const struct ferry_snapshot *snap, __u8 kind,
					      __u8 metric, __u32 id);
/* One protocol (enum ferry_l7_proto), or FERRY_HIST_ALL_PROTOCOLS. */
const struct ferry_hist *ferry_snapshot__hist_proto(const struct ferry_snapshot *snap, __u8 kind,
						    __u8 metric, __u8 protocol, __u32 id);

/*
 * Every entry of a map that is not per-CPU, in a few batch reads (a lookup
 * per key where the kernel has no batch reads for the map's type), into buf:
 * buf->n keys and values side by side. For a poller that reads a whole map
 * each tick (rebalance.c): buf's arrays are kept for the next read of the
 * same map (fresh ones cost ~1 MB of new pages every tick at 1,000
 * deployments, 3 ms of page faults here), and ferry_map_buf__free() releases
 * them. buf->n is 0 after an error. 0 or -errno.
 */
struct ferry_map_buf {
	void *keys, *values;
	size_t n, cap;
	__u32 key_size, value_size; /* what cap counts in */
};

int ferry_map__read_all(int fd, struct ferry_map_buf *buf);
void ferry_map_buf__free(struct ferry_map_buf *buf);

/* "malformed", "fragment", ... for enum ferry_counter; NULL when out of range. */
const char *ferry_counter__name(unsigned int counter);
/* True for counters that count dropped packets (the rest are datapath events). */
bool ferry_counter__is_drop(unsigned int counter);

/* Adds b's counters into a. */
void ferry_stats__add(struct ferry_stats *a, const struct ferry_stats *b);

#endif /* FERRY_SNAPSHOT_H */
