/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Selection tables (docs/tables.md). Stage 1 needs only a key per predictor
 * (ferry_table__pred_key) and the effective weights (user/weights.h). Stage 2
 * is a Maglev table per predictor: `size` slots (a prime sized to the
 * predictor's backends), each holding the index of a backend in the
 * predictor's member list sorted by key, split as evenly as a prime allows.
 * Everything is a pure function of the members' keys (their addresses) and
 * ids: no history, no input order, so every node with the same inputs
 * builds the same slots.
 */
#ifndef FERRY_TABLE_H
#define FERRY_TABLE_H

#include <stddef.h>
#include <linux/types.h>
#include <linux/bpf.h>

#include "ferry_maps.h"

struct ferry_table_member {
	__u64 key; /* stable identity (ferry_table__key), seeds the permutation */
	__u32 backend_id; /* written into the id cells; never 0 */
	__u32 pad;
};

/* A stable 64-bit identity for a backend: its family, address and port. */
__u64 ferry_table__key(__u8 family, const __be32 addr[4], __be16 port);

/* The rendezvous key of a predictor: a hash of its name, the same on every node. */
__u32 ferry_table__pred_key(const char *name);

/* Smallest prime >= n (n <= FERRY_TABLE_SIZE_MAX), or 0 when there is none in range. */
__u32 ferry_table__next_prime(__u32 n);

/*
 * Slots for a predictor with n ready backends: the smallest prime >= floor *
 * 2^k for the least k with floor * 2^k >= FERRY_TABLE_SLOTS_PER_BACKEND * n,
 * at most FERRY_TABLE_SIZE_MAX; 0 for n == 0 (an empty table). So between 100
 * and 200 slots per backend, and the size moves only at doublings.
 */
__u32 ferry_table__size(__u32 n, __u32 floor);

/*
 * Sorts members by key (then id) and fills cells[FERRY_TABLE_CELLS(size, n)]:
 * head, inputs digest, slots (indices into the sorted members), ids. size 0
 * with n 0 gives an empty table. Returns 0, or -EINVAL (size not a prime in
 * range, n > size or > FERRY_TABLE_MAX_BACKENDS, an id 0, a key twice),
 * -ENOMEM.
 */
int ferry_table__build(struct ferry_table_member *members, __u32 n, __u32 size,
		       struct ferry_table_cell *cells);

/*
 * What ferry_table__build would write into cell 1 (the inputs digest), without
 * building: sorts members the same way. Equal digests, equal tables.
 */
__u64 ferry_table__digest(struct ferry_table_member *members, __u32 n, __u32 size);

/* The backend index in slot s of a built table. */
static inline __u32 ferry_table__slot(const struct ferry_table_cell *cells, __u32 s)
{
	return cells[FERRY_TABLE_SLOT_CELL(s)].slot[s % 4];
}

/* The backend id at index i of a built table. */
static inline __u32 ferry_table__id(const struct ferry_table_cell *cells, __u32 i)
{
	return cells[FERRY_TABLE_ID_CELL(cells[0].head.size, i)].backend_id[i % 2];
}

/*
 * Creates an inner map (FERRY_TABLE_MAP_FLAGS) holding ncells cells, filled
 * in one batch write. Returns its fd, or a negative errno.
 */
int ferry_table__create(const struct ferry_table_cell *cells, __u32 ncells, const char *name);

#endif /* FERRY_TABLE_H */
