/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend selection: the one function that maps a connection to a backend,
 * used by the packet path (a new flow at XDP or TC) and by the connect hook
 * for host clients alike, so both read a service's table the same way. What
 * is hashed is an explicit input: the whole 5-tuple, or the client address
 * only (client-ip affinity, and the connect hook's synthetic key).
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
	FERRY_HASH_TUPLE, /* every field of the key */
	FERRY_HASH_SRC_ADDR, /* the source address only */
};

/* The hash mode a service asks for on the packet path. */
static __always_inline enum ferry_hash_mode ferry_svc_hash_mode(const struct ferry_service *svc)
{
	return (svc->flags & FERRY_SVC_F_HASH_SRC_ADDR) ? FERRY_HASH_SRC_ADDR : FERRY_HASH_TUPLE;
}

static __always_inline bool ferry_addr_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/*
 * Hashes key (per mode) into the service's table and returns the backend in
 * that slot, or NULL when the service has none for this family (empty
 * table, empty slot, or a backend of the other family). *hash gets the hash
 * whatever the outcome (the forward path samples flows by it), *backend_id
 * the backend's id when one is found.
 *
 * Hairpin: when self (the client's address; NULL for the connect hook) is
 * the chosen backend's address, a backend pod is calling its own VIP. DNAT
 * alone cannot serve that (its reply to itself never crosses ferry, so it
 * leaves untranslated and the connection resets), so the following slots
 * are tried (a Maglev table's neighbours are spread over the backends); the
 * choice is still a pure function of the tuple. If
 * every try lands on the client itself (it is the only backend), that pick
 * stands: there is no other.
 */
static __always_inline const struct ferry_backend *
ferry_select(const struct ferry_service *svc, const struct ferry_flow_key *key, __u32 seed,
	     enum ferry_hash_mode mode, __u8 family, const __be32 *self, __u32 *hash,
	     __u32 *backend_id)
{
	const struct ferry_backend *be = NULL, *pick;
	__u32 svc_id = svc->id, table_size = svc->table_size, slot, *id, i;
	void *table;

	*hash = ferry_flow_hash(key, seed, mode == FERRY_HASH_SRC_ADDR);
	if (!table_size)
		return NULL;
	table = bpf_map_lookup_elem(&ferry_tables, &svc_id);
	if (!table)
		return NULL;
	slot = *hash % table_size;
	for (i = 0; i < FERRY_HAIRPIN_TRIES; i++) {
		id = bpf_map_lookup_elem(table, &slot);
		if (!id || !*id)
			return be;
		pick = bpf_map_lookup_elem(&ferry_backends, id);
		if (!pick || pick->family != family)
			return be;
		if (!be || i == 0) {
			*backend_id = *id;
			be = pick;
		}
		if (!self || !ferry_addr_eq(pick->addr, self)) {
			*backend_id = *id;
			return pick;
		}
		slot = slot + 1 < table_size ? slot + 1 : 0;
	}
	return be;
}

#endif /* FERRY_SELECT_BPF_H */
