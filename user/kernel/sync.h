/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Desired state -> kernel state. A ferry_sync mirrors what the pinned maps
 * hold (read back from them at start, so a restarted ferryd continues where
 * the last one stopped), diffs a struct ferry_model against it and writes
 * only the difference. Write order keeps every intermediate state valid:
 * backends before the tables that name them, a service's table (swapped in
 * one outer-map update) before its VIP entry, and deletions last.
 */
#ifndef FERRY_SYNC_H
#define FERRY_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "kernel/dataplane.h"
#include "model.h"

struct ferry_sync_opts {
	__u32 table_size; /* default slots per service; 0: FERRY_TABLE_SIZE_DEFAULT */
};

struct ferry_sync_result {
	size_t services; /* services in force after the apply */
	size_t tables_swapped;
	size_t backends_added;
	size_t backends_removed;
	size_t flows_purged; /* flows of deleted backends */
	size_t errors; /* services that could not be applied (logged) */
	size_t starved_members; /* backends with no slot (table too small) */
};

struct ferry_sync;

/* Reads the kernel state under dp into a new mirror. NULL + errno on failure. */
struct ferry_sync *ferry_sync__new(struct ferry_dp *dp, const struct ferry_sync_opts *opts);
void ferry_sync__free(struct ferry_sync *sync);

/*
 * A mirror of service svc_id only (its VIP, metadata, predictor stage and
 * predictors, in ferry_svc_meta's order), for one weight-only write by
 * ferry_sync__override or ferry_sync__canary: a few lookups instead of reading
 * every map. Backends are not read; the ready counts are the predictors'
 * backends_ready. Nothing else may be called on it. NULL + errno (ENOENT: no
 * such service, or its VIP entry is missing).
 */
struct ferry_sync *ferry_sync__open_service(struct ferry_dp *dp, __u32 svc_id);
/* What a mirror holds of service svc_id and of predictor pred_id: NULL if nothing. */
const struct ferry_svc_meta *ferry_sync__svc_meta(const struct ferry_sync *sync, __u32 svc_id);
const struct ferry_pred_meta *ferry_sync__pred_meta(const struct ferry_sync *sync, __u32 pred_id);

/* Makes the kernel hold model. 0, or a negative errno (state is still valid). */
int ferry_sync__apply(struct ferry_sync *sync, const struct ferry_model *model,
		      struct ferry_sync_result *result);

/*
 * Emergency weights for one service, by predictor name (ppm each); names not
 * given get 0. With clear, the manifest's weights apply again. The override
 * lives in ferry_pred_meta, so it survives ferryd restarts. 0, -ENOENT (no
 * such service or predictor), or a negative errno.
 */
int ferry_sync__override(struct ferry_sync *sync, const struct ferry_vip *vip,
			 const char *const *names, const __u32 *weights, size_t n, bool clear);

/*
 * The canary analysis' weight for one service (docs/canary.md): with set,
 * predictor name takes weight (ppm) with FERRY_PRED_F_CANARY and the others
 * share the rest by their configured weights; without, every predictor's
 * canary weight is cleared. An SRE override wins while it is set. Persisted
 * in ferry_pred_meta. 0, -ENOENT (no such service), or a negative errno.
 */
int ferry_sync__canary(struct ferry_sync *sync, const struct ferry_vip *vip, const char *name,
		       bool set, __u32 weight);

/* Sets a backend's state (FERRY_BE_ACTIVE or FERRY_BE_DRAINING) by address. */
int ferry_sync__set_backend_state(struct ferry_sync *sync, __u8 family, const __be32 addr[4],
				  __be16 port, __u8 state, size_t *changed);

struct ferry_gc_opts {
	__u64 tcp_idle_ns; /* confirmed TCP flow idle this long: gone */
	__u64 tcp_closing_ns; /* after FIN or RST */
	__u64 embryonic_ns; /* TCP flow not yet confirmed (0: tcp_closing_ns) */
	__u64 udp_idle_ns; /* confirmed or not */
};

/* The flow tables ferry_sync__gc_flows walked: confirmed and embryonic. */
enum ferry_flow_table {
	FERRY_FLOWS_CONFIRMED,
	FERRY_FLOWS_EMBRYONIC,
	FERRY_FLOW_TABLES,
};

/* What one pass saw, per table, in connections (forward halves). */
struct ferry_gc_result {
	size_t seen[FERRY_FLOW_TABLES]; /* entries before the pass */
	size_t removed[FERRY_FLOW_TABLES];
	size_t capacity[FERRY_FLOW_TABLES]; /* the map's max_entries */
};

/*
 * Removes flows (both directions) that have been idle past their timeout.
 * The LRU evicts under pressure anyway; this keeps the table meaningful for
 * 'ferryctl flows' and leaves room before the LRU has to choose. Returns the
 * number of flows removed; res (may be NULL) gets what the pass saw.
 */
size_t ferry_sync__gc_flows(struct ferry_sync *sync, const struct ferry_gc_opts *opts,
			    struct ferry_gc_result *res);

/* The ferry_rflows key of a flow: backend -> client, as the reply arrives. */
void ferry_flow__reverse_key(struct ferry_flow_key *rkey, const struct ferry_flow_key *key,
			     const struct ferry_flow *flow);

/*
 * Calls fn with each service the mirror holds, by id; stops at the first
 * nonzero return of fn and returns it, else 0.
 */
int ferry_sync__for_each_svc(const struct ferry_sync *sync,
			     int (*fn)(const struct ferry_svc_meta *meta, void *ctx), void *ctx);

/* Counts of what the mirror holds, for logs and metrics. */
size_t ferry_sync__nservices(const struct ferry_sync *sync);

/*
 * Predictors with configured weight and no ready backend, as of what this
 * sync object last wrote or read back (the kernel's view without a walk of
 * every map). Fills at most max ids; returns how many there are.
 */
size_t ferry_sync__no_ready(const struct ferry_sync *sync, __u32 *ids, size_t max);

/* Takes the pin directory's lock that serialises writers (ferryd, ferryctl). */
int ferry_sync__lock(const char *pin_path);
void ferry_sync__unlock(int lock_fd);

#endif /* FERRY_SYNC_H */
