/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Private to user/kernel/sync*.c: the mirror of what the maps hold (ids,
 * services, predictors, backends) and the helpers the sync files share.
 * sync_mirror.c reads the mirror back from the maps; sync_write.c writes
 * tables, markers and stats; sync_flows.c collects dead flows; sync.c
 * applies a model.
 */
#ifndef FERRY_SYNC_INTERNAL_H
#define FERRY_SYNC_INTERNAL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "kernel/sync.h"
#include "kernel/table.h"

#include "kernel/pins.h"

/* Open addressing from fixed-size byte keys to ids; deletion by tombstone. */
struct idmap {
	size_t cap, used, live;
	size_t keylen;
	unsigned char *keys;
	__u32 *vals;
	__u8 *state; /* 0 empty, 1 live, 2 tombstone */
};

struct pred_key {
	__u32 svc_id;
	char name[FERRY_PRED_NAME_LEN];
};

struct backend_key {
	__u32 svc_id;
	__u32 pred_id;
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 pad;
};

/* A growable list of ids: a service's predictors and backends. */
struct idvec {
	__u32 *ids;
	size_t n, cap;
};

struct mservice {
	bool used;
	bool seen; /* in the model being applied */
	struct ferry_vip vip;
	struct ferry_service svc;
	struct ferry_svc_meta meta;
	struct ferry_select sel; /* the predictor stage in force (lock field unused) */
	bool sel_dirty; /* sel differs from the kernel's: write it after the table swaps */
	bool dirty; /* svc differs from the kernel's entry: write it after the swaps */
	bool meta_dirty; /* meta to be written by this sync (applied, or a predictor left) */
	/*
	 * A backend or table of it did not reach the kernel in this sync: its
	 * predictor stage and VIP entry are not written (nothing may point at
	 * what is not there); the next sync applies it again.
	 */
	bool held;
	/*
	 * Fingerprint of the model service last applied whole (0: none, or it
	 * failed): a sync skips a service whose model is the same, so an edit of
	 * one file writes that deployment's maps only.
	 */
	__u64 applied;
	/*
	 * The build (ferry_model_service.build_gen; 0: unknown) and table floor
	 * of that model service: the same build again is kept without its
	 * fingerprint. Meaningful only while applied is not 0.
	 */
	__u64 applied_gen;
	__u32 applied_floor;
	/* Kept whole by the sync being applied: its predictors and backends are wanted. */
	bool kept;
	struct idvec preds; /* predictor ids, in manifest order */
	struct idvec bes; /* backend ids */
};

struct mpred {
	bool used;
	bool seen;
	struct ferry_pred_meta meta;
	__u64 inputs; /* digest of the table in force (its cell 1); 0: none or unknown */
};

struct mbackend {
	bool used;
	bool seen;
	struct ferry_backend be;
};

/*
 * Writes to one map, queued and sent as one batch: a first sync of 10,000
 * deployments writes 150,000 entries, and one syscall each was half of its
 * kernel time. Later writes of a key in the same queue win (in order).
 */
struct wqueue {
	void *keys, *vals;
	__u32 n, cap, ksize, vsize;
};

/*
 * A predictor's new table, queued by the sync and made (map created, filled,
 * pinned) at flush_swaps() by two threads: at 10,000 deployments that is
 * 20,000 maps, and the syscalls of each are independent of the others'.
 */
struct table_swap {
	__u32 pred_id;
	bool may_direct; /* no table in force: pin under its final name */
	bool direct; /* pinned under its final name */
	int fd; /* the new inner map, or -1 */
	int err; /* making it failed: -errno */
	/* What to build it from, sorted by key (owned until made): built on the making threads. */
	struct ferry_table_member *members;
	__u32 nmembers, size;
};

/*
 * One of the data plane's filters (maps/ferry_maps.h): the words in force
 * and a scratch array of as many. words is NULL but in the process that
 * loaded the programs (ferryd): ferryctl adds no service and no backend.
 */
struct filter {
	int fd;
	__u32 nwords;
	__u64 *words, *want;
};

struct ferry_sync {
	struct ferry_dp *dp;
	bool applying; /* inside ferry_sync__apply: "seen" flags mean something */
	bool sole_known; /* FERRY_BE_F_SOLE given by a whole pass since this mirror began */
	/*
	 * ferry_sync__open_service(): one service mirrored, its backends not read;
	 * weight-only writes take backends_ready from its predictors' metadata.
	 */
	bool narrow;
	/* Entries of svcs and preds: FERRY_MAX_SERVICES and _PREDICTORS but when narrow. */
	__u32 svc_cap, pred_cap;
	__u32 table_size;
	int ncpus;
	struct mservice *svcs;
	struct mpred *preds;
	struct mbackend *bes;
	struct idmap svc_ids, pred_ids, be_ids;
	__u32 svc_hint, pred_hint, be_hint;
	/*
	 * One past the highest id ever marked used: a sync walks the ids below
	 * it, not all 180,000 slots (megabytes of mirror at every edit).
	 */
	__u32 svc_top, pred_top, be_top;
	/* The set of VIPs in force changed (or is not known to match): write the markers. */
	bool markers_stale;
	/* Address markers in force: VIP address -> number of VIPs on it. */
	struct idmap markers;
	/* ferry_vip_bits and ferry_be_bits (sync_write.c). */
	struct filter vip_filter, be_filter;
	struct ferry_stats *percpu_buf; /* one ferry_stats row per possible CPU */
	/*
	 * Outer-map writes wait for an RCU grace period each (the kernel must
	 * know no program still runs on the old inner map): they are queued and
	 * written in one batch, one wait per sync instead of one per service.
	 */
	struct {
		struct table_swap *v;
		size_t n, cap;
	} swaps;
	struct idvec drops; /* outer slots to clear */
	/*
	 * Backend and predictor-metadata writes of the services being applied,
	 * sent before the table swaps that name them (flush_swaps()).
	 */
	struct wqueue be_q, pm_q;
	/*
	 * Deployment names whose services changed in this sync (name -> its
	 * index in names_touched_keys + 1): their ferry_svc_names entries are
	 * rewritten by sync_names(). names_fd: that map, -1 until first used.
	 */
	struct idmap names_touched;
	char (*names_touched_keys)[FERRY_NAME_LEN];
	size_t names_touched_cap;
	bool names_all; /* the index was dropped: the next sync writes every name */
	int names_fd;
};

static inline void top_raise(__u32 *top, __u32 id)
{
	if (id >= *top)
		*top = id + 1;
}

__u64 hash_bytes(const void *p, size_t n);
void names_touch(struct ferry_sync *s, const char *name);
int sync_names(struct ferry_sync *s);
/* Dates the index with the generation this sync writes to ferry_config (pins.h). */
int names_mark(struct ferry_sync *s, __u64 generation);
void wqueue_init(struct wqueue *q, __u32 ksize, __u32 vsize);
int wqueue_put(struct wqueue *q, const void *key, const void *val);
/*
 * Writes the queue into fd with elem_flags; returns how many entries, in
 * order, are in the kernel (q->n when all are) and sets *err for the first
 * that is not. The queue is left as it is: the caller reads what failed,
 * then empties it (q->n = 0).
 */
__u32 wqueue_flush(struct wqueue *q, int fd, __u64 elem_flags, int *err);
void wqueue_free(struct wqueue *q);
int idmap_init(struct idmap *m, size_t keylen, size_t cap);
void idmap_free(struct idmap *m);
__u32 idmap_get(const struct idmap *m, const void *key);
int idmap_put(struct idmap *m, const void *key, __u32 val);
void idmap_del(struct idmap *m, const void *key);
int idvec_add(struct idvec *v, __u32 id);
void idvec_remove(struct idvec *v, __u32 id);
__u32 alloc_id(bool (*used)(struct ferry_sync *, __u32), struct ferry_sync *s, __u32 *hint,
	       __u32 max);
bool svc_used(struct ferry_sync *s, __u32 id);
bool pred_used(struct ferry_sync *s, __u32 id);
bool be_used(struct ferry_sync *s, __u32 id);
void backend_key_of(struct backend_key *k, const struct ferry_backend *be);
void pred_key_of(struct pred_key *k, __u32 svc_id, const char *name);
int table_pin_path(const struct ferry_sync *s, __u32 id, const char *suffix, char *buf, size_t len);
int read_table_inputs(struct ferry_sync *s, __u32 pred_id);
void hist_delete(struct ferry_sync *s, __u32 id, __u8 kind, __u8 metric);
int flush_swaps(struct ferry_sync *s);
void svc_meta_preds(struct ferry_sync *s, __u32 svc_id, struct ferry_svc_meta *meta);
void retire_stats(struct ferry_sync *s, __u32 be_id, __u32 pred_id);
int sync_markers(struct ferry_sync *s);
int filter_init(struct filter *f, int fd, __u32 nwords);
int filter_read(struct filter *f);
void filter_free(struct filter *f);
int sync_vip_bits(struct ferry_sync *s, bool keep);
int sync_be_bits(struct ferry_sync *s, bool keep);
void sync_sole(struct ferry_sync *s, bool set);
int be_bits_from_replies(struct ferry_sync *s, enum ferry_map_id id);
int sync_selection(struct ferry_sync *s, __u32 svc_id, __u32 floor, bool tables,
		   struct ferry_sync_result *res);
int write_select(struct ferry_sync *s, __u32 svc_id);
size_t purge_flows(struct ferry_sync *s, const bool *dead);

#endif /* FERRY_SYNC_INTERNAL_H */
