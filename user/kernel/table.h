/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Weighted consistent-hash lookup tables (Maglev, with per-backend slot
 * quotas). A service's table has `size` slots (a prime); each slot holds a
 * backend id. Predictors are groups with a weight; each group's slot count
 * is its exact share of `size` (largest remainder), split evenly between the
 * group's backends. Building from the table in force keeps every slot whose
 * backend still has room, so a change moves only the slots the new quotas
 * require.
 */
#ifndef FERRY_TABLE_H
#define FERRY_TABLE_H

#include <stddef.h>
#include <linux/types.h>

struct ferry_table_member {
	__u32 backend_id; /* written into the slots; never 0 */
	__u32 group; /* index into ferry_table_spec.group_weights */
	__u64 key; /* stable identity (ferry_table__key), seeds the permutation */
};

struct ferry_table_spec {
	__u32 size; /* slots: a prime >= FERRY_TABLE_SIZE_MIN */
	const __u32 *group_weights; /* ppm per group; need not sum to FERRY_WEIGHT_ONE */
	__u32 ngroups;
	const struct ferry_table_member *members; /* backends that take new connections */
	__u32 nmembers;
};

/*
 * Fills slots[spec->size]. prev, when not NULL, is the table in force (same
 * size) and is used to keep slots in place. A group with weight 0 gets no
 * slot at all; a group with weight but no member gives its share to the
 * others in proportion; with no member at all every slot is 0.
 * Returns 0, or -EINVAL for a bad spec, -ENOMEM.
 */
int ferry_table__build(const struct ferry_table_spec *spec, const __u32 *prev, __u32 *slots);

/* A stable 64-bit identity for a backend: its family, address and port. */
__u64 ferry_table__key(__u8 family, const __be32 addr[4], __be16 port);

/* Smallest prime >= n (n <= FERRY_TABLE_SIZE_MAX), or 0 when there is none in range. */
__u32 ferry_table__next_prime(__u32 n);

#endif /* FERRY_TABLE_H */
