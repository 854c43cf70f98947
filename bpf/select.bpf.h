/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend selection: the one function that maps a connection to a backend,
 * used by the packet path (a new flow at XDP or TC) and by the connect hook
 * for host clients alike. Two stages (docs/tables.md): the service's
 * predictor by weighted rendezvous over ferry_select (weights only, one
 * locked value), then a backend from that predictor's Maglev table in
 * ferry_tables with a second, independently seeded hash. What is hashed is
 * the service's hash_mode: the whole 5-tuple, or the client address only
 * (client-ip affinity, and the connect hook's synthetic key).
 */
#ifndef FERRY_SELECT_BPF_H
#define FERRY_SELECT_BPF_H

#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ferry_maps.h"
#include "maps.bpf.h"
#include "hash.bpf.h"

enum ferry_hash_mode {
	FERRY_HASH_MODE_TUPLE = FERRY_HASH_TUPLE, /* every field of the key */
	FERRY_HASH_MODE_SRC_ADDR = FERRY_HASH_CLIENT_ADDR, /* the source address only */
};

/* The hash mode a service asks for on the packet path: its explicit field. */
static __always_inline enum ferry_hash_mode ferry_svc_hash_mode(const struct ferry_service *svc)
{
	return svc->hash_mode == FERRY_HASH_CLIENT_ADDR ? FERRY_HASH_MODE_SRC_ADDR :
							  FERRY_HASH_MODE_TUPLE;
}

static __always_inline bool ferry_addr_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/*
 * Stage 1: the predictor id for hash, 0 when no predictor has a weight;
 * *second the runner-up (0: none), where a hairpin client goes when the
 * winner's table holds only itself. The
 * scores are computed under the entry's lock, so a weight change written by
 * user space (BPF_F_LOCK) is seen whole or not at all; nothing but loads and
 * arithmetic runs while it is held (the verifier allows no call there).
 */
static __always_inline __u32 ferry_select_predictor(__u32 svc_id, __u32 hash, __u32 *second)
{
	__u64 best = ~0ULL, next = ~0ULL, score;
	struct ferry_select *sel;
	__u32 i, n, w, pred = 0, pred2 = 0;

	sel = bpf_map_lookup_elem(&ferry_selectors, &svc_id);
	if (!sel)
		return 0;
	bpf_spin_lock(&sel->lock);
	n = sel->npredictors;
	for (i = 0; i < FERRY_MAX_SVC_PREDICTORS; i++) {
		if (i >= n)
			break;
		w = sel->preds[i].weight;
		if (!w)
			continue;
		score = ferry_pred_score(hash, sel->preds[i].key, w);
		if (!pred || score < best) {
			next = best;
			pred2 = pred;
			best = score;
			pred = sel->preds[i].predictor_id;
		} else if (!pred2 || score < next) {
			next = score;
			pred2 = sel->preds[i].predictor_id;
		}
	}
	bpf_spin_unlock(&sel->lock);
	*second = pred2;
	return pred;
}

/*
 * Stage 2 in one predictor's table: the backend in the slot of hash2, or
 * (hairpin) in one of the next FERRY_HAIRPIN_TRIES - 1 slots when the first
 * is the client itself (self). *is_self says whether the pick is the client.
 */
static __always_inline const struct ferry_backend *
ferry_select_backend(__u32 pred, __u32 hash2, __u8 family, const __be32 *self, __u32 *backend_id,
		     bool *is_self)
{
	const struct ferry_backend *be = NULL, *pick;
	const struct ferry_table_cell *cell;
	__u32 size, nbe, slot, idx, id, c, i;
	void *table;

	*is_self = false;
	table = bpf_map_lookup_elem(&ferry_tables, &pred);
	if (!table)
		return NULL;
	c = 0;
	cell = bpf_map_lookup_elem(table, &c);
	if (!cell)
		return NULL;
	/* size and backend count come from the table itself: never stale */
	size = cell->head.size;
	nbe = cell->head.nbackends;
	if (!size || !nbe)
		return NULL;
	slot = hash2 % size;
	for (i = 0; i < FERRY_HAIRPIN_TRIES; i++) {
		c = FERRY_TABLE_SLOT_CELL(slot);
		cell = bpf_map_lookup_elem(table, &c);
		if (!cell)
			break;
		idx = cell->slot[slot & 3];
		if (idx >= nbe)
			break;
		c = FERRY_TABLE_ID_CELL(size, idx);
		cell = bpf_map_lookup_elem(table, &c);
		if (!cell)
			break;
		id = cell->backend_id[idx & 1];
		pick = bpf_map_lookup_elem(&ferry_backends, &id);
		if (!id || !pick || pick->family != family)
			break;
		if (!be || i == 0) {
			*backend_id = id;
			be = pick;
		}
		if (!self || !ferry_addr_eq(pick->addr, self)) {
			*backend_id = id;
			return pick;
		}
		slot = slot + 1 < size ? slot + 1 : 0;
	}
	*is_self = be != NULL && self != NULL;
	return be;
}

/*
 * Hashes key (per mode) and returns the backend of the chosen predictor's
 * slot, or NULL when the service has none for this family (no weighted
 * predictor, an empty table, or a backend of the other family). *hash gets
 * the first hash whatever the outcome (the forward path samples flows by
 * it), *backend_id the backend's id when one is found.
 *
 * Hairpin: when self (the client's address; NULL for the connect hook) is
 * the chosen backend's address, a backend pod is calling its own VIP. DNAT
 * alone cannot serve that (its reply to itself never crosses ferry, so it
 * leaves untranslated and the connection resets), so the following slots of
 * the predictor's table are tried (a Maglev table's neighbours are spread
 * over the backends), and if they all hold the client, the runner-up
 * predictor's slot; the choice is still a pure function of the tuple. If
 * that too is the client (it is the only backend), the first pick stands.
 */
static __always_inline const struct ferry_backend *
ferry_select(const struct ferry_service *svc, const struct ferry_flow_key *key, __u32 seed,
	     enum ferry_hash_mode mode, __u8 family, const __be32 *self, __u32 *hash,
	     __u32 *backend_id)
{
	const struct ferry_backend *be, *other;
	bool src_only = mode == FERRY_HASH_MODE_SRC_ADDR, is_self;
	__u32 pred, second = 0, hash2, other_id = 0;

	*hash = ferry_flow_hash(key, seed, src_only);
	pred = ferry_select_predictor(svc->id, *hash, &second);
	if (!pred)
		return NULL;
	hash2 = ferry_flow_hash(key, ferry_seed2(seed), src_only);
	be = ferry_select_backend(pred, hash2, family, self, backend_id, &is_self);
	if (!be || !is_self || !second)
		return be;
	other = ferry_select_backend(second, hash2, family, self, &other_id, &is_self);
	if (!other || is_self)
		return be;
	*backend_id = other_id;
	return other;
}

#endif /* FERRY_SELECT_BPF_H */
