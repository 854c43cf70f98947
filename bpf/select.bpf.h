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
 * Stage 1: the predictor id for hash (low 32 bits; 0 when no predictor has a
 * weight) and the runner-up (high 32 bits; 0: none), where a hairpin client
 * goes when the winner's table holds only itself. A global function, so the
 * verifier checks its 16-predictor loop once, not once for every path of the
 * caller that reaches it (which made the programs 30x longer to verify). The
 * scores are computed under the entry's lock, so a weight change written by
 * user space (BPF_F_LOCK) is seen whole or not at all; nothing but loads and
 * arithmetic runs while it is held (the verifier allows no call there).
 */
__attribute__((noinline)) __u64 ferry_select_predictors(__u32 svc_id, __u32 hash)
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
		/*
		 * Scores are below 2^62, so the first weighted predictor always
		 * beats ~0. No test of pred itself: a branch on a register the
		 * verifier knows (0 at first) makes it track every path apart.
		 */
		if (score < best) {
			next = best;
			pred2 = pred;
			best = score;
			pred = sel->preds[i].predictor_id;
		} else if (score < next) {
			next = score;
			pred2 = sel->preds[i].predictor_id;
		}
	}
	bpf_spin_unlock(&sel->lock);
	return (__u64)pred2 << 32 | pred;
}

/*
 * Stage 2, one try: the backend id in slot hash2 % size of the predictor's
 * table for try 0, 0 for none (no table, an empty one). A hairpin's further
 * tries (ferry_select_backend): slots an eighth of the table apart, since a
 * Maglev table holds runs of one backend's slots (13 in a row in a 251-slot
 * table of two), so its neighbours were often the client again (4 % of a
 * backend's calls to its own VIP); past FERRY_HAIRPIN_TRIES, the table's
 * backends in turn from the hash's, so that a client with another backend
 * beside it never gets itself. A global function, checked once by the
 * verifier and with its own stack frame.
 */
__attribute__((noinline)) __u32 ferry_table_pick(__u32 pred, __u32 hash2, __u32 try)
{
	const struct ferry_table_cell *cell;
	__u32 size, nbe, slot, idx, c = 0;
	void *table;

	table = bpf_map_lookup_elem(&ferry_tables, &pred);
	if (!table)
		return 0;
	cell = bpf_map_lookup_elem(table, &c);
	if (!cell)
		return 0;
	/* size and backend count come from the table itself: never stale */
	size = cell->head.size;
	nbe = cell->head.nbackends;
	if (!size || !nbe)
		return 0;
	if (try < FERRY_HAIRPIN_TRIES) {
		slot = (hash2 % size + try * (size / FERRY_HAIRPIN_TRIES ?: 1)) % size;
		c = FERRY_TABLE_SLOT_CELL(slot);
		cell = bpf_map_lookup_elem(table, &c);
		if (!cell)
			return 0;
		idx = cell->slot[slot & 3];
	} else {
		idx = (hash2 + try) % nbe;
	}
	if (idx >= nbe)
		return 0;
	c = FERRY_TABLE_ID_CELL(size, idx);
	cell = bpf_map_lookup_elem(table, &c);
	return cell ? cell->backend_id[idx & 1] : 0;
}

/*
 * Stage 2 in one predictor's table: the backend in the slot of hash2, or
 * (hairpin) when that is the client itself (self) one of FERRY_HAIRPIN_TRIES
 * - 1 slots spread over the table, then of FERRY_HAIRPIN_IDS of its backends
 * (ferry_table_pick); the client itself only when every try was.
 * *backend_id doubles as the lookup key: no new stack slot (see below).
 */
static __always_inline const struct ferry_backend *
ferry_select_backend(__u32 pred, __u32 hash2, __u8 family, const __be32 *self, __u32 *backend_id)
{
	const struct ferry_backend *be = NULL, *pick;
	__u32 i, first = 0;

	for (i = 0; i < FERRY_HAIRPIN_TRIES + FERRY_HAIRPIN_IDS; i++) {
		*backend_id = ferry_table_pick(pred, hash2, i);
		if (!*backend_id)
			break;
		pick = bpf_map_lookup_elem(&ferry_backends, backend_id);
		if (!pick || pick->family != family)
			break;
		if (!be) {
			first = *backend_id;
			be = pick;
		}
		if (!self || !ferry_addr_eq(pick->addr, self))
			return pick;
	}
	*backend_id = first;
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
 * leaves untranslated and the connection resets), so other slots of the
 * predictor's table and then its other backends are tried
 * (ferry_select_backend), and if they all are the client, the runner-up
 * predictor's; the choice is still a pure function of the tuple. If that too
 * is the client (it is the only backend), there is no backend for it.
 */
static __always_inline const struct ferry_backend *
ferry_select(const struct ferry_service *svc, const struct ferry_flow_key *key, __u32 seed,
	     enum ferry_hash_mode mode, __u8 family, const __be32 *self, __u32 *hash,
	     __u32 *backend_id)
{
	const struct ferry_backend *be, *other;
	bool src_only = mode == FERRY_HASH_MODE_SRC_ADDR;
	__u32 pred, second, hash2;
	__u64 preds;

	*hash = ferry_flow_hash(key, seed, src_only);
	preds = ferry_select_predictors(svc->id, *hash);
	pred = (__u32)preds;
	second = (__u32)(preds >> 32);
	if (!pred)
		return NULL;
	hash2 = ferry_flow_hash(key, ferry_seed2(seed), src_only);
	be = ferry_select_backend(pred, hash2, family, self, backend_id);
	if (!be || !self || !ferry_addr_eq(be->addr, self))
		return be;
	if (second) {
		other = ferry_select_backend(second, hash2, family, self, backend_id);
		if (other && !ferry_addr_eq(other->addr, self))
			return other;
	}
	/*
	 * Every try was the client, the service's only backend: no backend, so
	 * the caller gets the fast failure (a RST), not a SYN sent to itself
	 * whose SYN-ACK never crosses ferry (its connect hung until it timed out).
	 */
	return NULL;
}

#endif /* FERRY_SELECT_BPF_H */
