// SPDX-License-Identifier: GPL-2.0-only
/*
 * Weighted Maglev tables with per-backend slot quotas (see table.h for the
 * contract, docs/tables.md for the reasoning and the measured disruption).
 *
 * Three steps: quotas (each group's exact share by largest remainder, split
 * evenly inside the group), keep (the slots of the table in force whose
 * backend still has room), fill (Maglev's round robin over each backend's
 * permutation, for the slots still empty). Everything depends only on the
 * spec and prev, never on the order of spec->members, so two nodes with the
 * same history build the same table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>

#include "ferry_maps.h"
#include "log.h"
#include "kernel/table.h"

/* Working state of one member while its table is built. */
struct slot_owner {
	__u64 key;
	__u32 backend_id;
	__u32 group;
	__u32 offset; /* first slot of the permutation */
	__u32 skip; /* step of the permutation, 1..size-1: coprime with the prime size */
	__u32 pos; /* next slot of the permutation to try */
	__u32 quota; /* slots this member must end up with */
	__u32 count; /* slots it holds so far */
	__u32 prev_count; /* slots it holds in prev */
};

/* backend id -> owner index, sorted by id: duplicate check and prev lookup. */
struct id_index {
	__u32 backend_id;
	__u32 owner;
};

/* Group order for the largest remainder. */
struct group_share {
	__u32 group;
	__u64 remainder;
};

/*
 * splitmix64's finalizer: every input bit flips each output bit with
 * probability close to 1/2, so neighbouring addresses or ports give unrelated
 * permutations.
 */
static __u64 mix64(__u64 x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

__u64 ferry_table__key(__u8 family, const __be32 addr[4], __be16 port)
{
	const __u8 *a = (const __u8 *)addr;
	const __u8 *p = (const __u8 *)&port;
	__u64 hi = 0, lo = 0, h;
	int i;

	/*
	 * Read the bytes in wire order so that the key, and with it every
	 * table, is the same on little- and big-endian nodes.
	 */
	for (i = 0; i < 8; i++) {
		hi = hi << 8 | a[i];
		lo = lo << 8 | a[8 + i];
	}
	h = mix64(0x9e3779b97f4a7c15ULL ^ ((__u64)family << 16 | (__u64)p[0] << 8 | p[1]));
	h = mix64(h ^ hi);
	h = mix64(h ^ lo);
	return h;
}

static bool is_prime(__u32 n)
{
	__u32 d;

	if (n < 2)
		return false;
	if (n % 2 == 0)
		return n == 2;
	for (d = 3; d <= n / d; d += 2)
		if (n % d == 0)
			return false;
	return true;
}

__u32 ferry_table__next_prime(__u32 n)
{
	if (n < FERRY_TABLE_SIZE_MIN)
		n = FERRY_TABLE_SIZE_MIN;
	for (; n <= FERRY_TABLE_SIZE_MAX; n++)
		if (is_prime(n))
			return n;
	return 0;
}

/* a^-1 mod p for a prime p and 0 < a < p (extended Euclid). */
static __u32 mod_inverse(__u32 a, __u32 p)
{
	long long t = 0, new_t = 1, r = p, new_r = a, q, tmp;

	while (new_r) {
		q = r / new_r;
		tmp = t - q * new_t;
		t = new_t;
		new_t = tmp;
		tmp = r - q * new_r;
		r = new_r;
		new_r = tmp;
	}
	return t < 0 ? (__u32)(t + p) : (__u32)t;
}

static int cmp_id_index(const void *a, const void *b)
{
	const struct id_index *x = a, *y = b;

	return (x->backend_id > y->backend_id) - (x->backend_id < y->backend_id);
}

/* The fill order: by key, then by backend id, never by input position. */
static int cmp_owner_key(const void *a, const void *b)
{
	const struct slot_owner *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->backend_id > y->backend_id) - (x->backend_id < y->backend_id);
}

static int cmp_group_share(const void *a, const void *b)
{
	const struct group_share *x = a, *y = b;

	if (x->remainder != y->remainder)
		return x->remainder > y->remainder ? -1 : 1;
	return (x->group > y->group) - (x->group < y->group);
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return (x > y) - (x < y);
}

static int find_owner(const struct id_index *ids, __u32 n, __u32 backend_id)
{
	__u32 lo = 0, hi = n;

	while (lo < hi) {
		__u32 mid = lo + (hi - lo) / 2;

		if (ids[mid].backend_id == backend_id)
			return ids[mid].owner;
		if (ids[mid].backend_id < backend_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int validate(const struct ferry_table_spec *spec, const __u32 *slots)
{
	__u32 i;

	if (!spec || !slots)
		return -EINVAL;
	if (spec->size < FERRY_TABLE_SIZE_MIN || spec->size > FERRY_TABLE_SIZE_MAX ||
	    !is_prime(spec->size)) {
		pr_debug("table: size %u is not a prime in [%u, %u]\n", spec->size,
			 FERRY_TABLE_SIZE_MIN, FERRY_TABLE_SIZE_MAX);
		return -EINVAL;
	}
	if ((spec->ngroups && !spec->group_weights) || (spec->nmembers && !spec->members))
		return -EINVAL;
	for (i = 0; i < spec->nmembers; i++) {
		if (spec->members[i].backend_id == 0 || spec->members[i].group >= spec->ngroups) {
			pr_debug("table: member %u: backend id %u, group %u of %u\n", i,
				 spec->members[i].backend_id, spec->members[i].group,
				 spec->ngroups);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Each group's slots: its exact share of size among the groups that have a
 * weight and at least one member (so a group without members hands its
 * share to the others in proportion to their weights), rounded by largest
 * remainder so that the quotas sum to size. Returns the sum (0 or size).
 */
static __u32 group_quotas(const struct ferry_table_spec *spec, const __u32 *group_members,
			  __u32 *group_quota, struct group_share *order)
{
	__u64 total = 0, size = spec->size;
	__u32 g, n = 0, given = 0;

	for (g = 0; g < spec->ngroups; g++)
		if (group_members[g])
			total += spec->group_weights[g];
	memset(group_quota, 0, spec->ngroups * sizeof(*group_quota));
	if (!total)
		return 0;
	for (g = 0; g < spec->ngroups; g++) {
		__u64 w = group_members[g] ? spec->group_weights[g] : 0;

		if (!w)
			continue; /* weight 0 is exactly 0: never a remainder seat */
		/* size < 2^21 and w < 2^32: the product fits in 64 bits */
		group_quota[g] = size * w / total;
		given += group_quota[g];
		order[n].group = g;
		order[n].remainder = size * w % total;
		n++;
	}
	/* fewer than n seats are left over, since every remainder is < total */
	qsort(order, n, sizeof(*order), cmp_group_share);
	for (g = 0; given < size; g++, given++)
		group_quota[order[g].group]++;
	return given;
}

static int cmp_owner_extra(const void *a, const void *b, void *arg)
{
	const struct slot_owner *owners = arg;
	const struct slot_owner *x = &owners[*(const __u32 *)a], *y = &owners[*(const __u32 *)b];

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	/* extra seats go to members already holding more, so fewer slots move */
	if (x->prev_count != y->prev_count)
		return x->prev_count > y->prev_count ? -1 : 1;
	return cmp_owner_key(x, y);
}

/*
 * Splits each group's quota evenly between its members; the first
 * (quota mod n) members, by slots held in prev and then by key, get one more.
 */
static int member_quotas(struct slot_owner *owners, __u32 n, const __u32 *group_members,
			 const __u32 *group_quota)
{
	__u32 *order, i, seen = 0, group = 0;

	order = malloc((n ? n : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_owner_extra, owners);
	for (i = 0; i < n; i++) {
		struct slot_owner *o = &owners[order[i]];
		__u32 q = group_quota[o->group], members = group_members[o->group];

		if (i == 0 || o->group != group) {
			group = o->group;
			seen = 0;
		}
		o->quota = q / members + (seen < q % members ? 1 : 0);
		seen++;
	}
	free(order);
	return 0;
}

/*
 * Puts back the slots of prev whose backend is still a member with room. A
 * member holding more than its new quota keeps the slots its own permutation
 * prefers most, which is what a fresh build would have given it first, so an
 * incrementally built table drifts less from a fresh one (docs/tables.md).
 */
static int keep_prev(struct slot_owner *owners, __u32 n, __u32 size, const __u32 *slot_owner,
		     __u32 *slots)
{
	__u32 i, m, start;
	__u32 *bucket_start = NULL, *bucket = NULL;
	__u64 *ranked = NULL;
	int err = -ENOMEM;

	bucket_start = calloc(n + 1, sizeof(*bucket_start));
	bucket = malloc(size * sizeof(*bucket));
	ranked = malloc(size * sizeof(*ranked));
	if (!bucket_start || !bucket || !ranked)
		goto out_free;

	/* counting sort of prev's slots by owner */
	for (i = 0; i < size; i++)
		if (slot_owner[i] != (__u32)-1 && owners[slot_owner[i]].quota)
			bucket_start[slot_owner[i] + 1]++;
	for (m = 0; m < n; m++)
		bucket_start[m + 1] += bucket_start[m];
	for (i = 0; i < size; i++) {
		m = slot_owner[i];
		if (m != (__u32)-1 && owners[m].quota)
			bucket[bucket_start[m] + owners[m].count++] = i;
	}

	for (m = 0; m < n; m++) {
		struct slot_owner *o = &owners[m];
		__u32 held = o->count, keep = held < o->quota ? held : o->quota;

		start = bucket_start[m];
		if (held > o->quota) {
			__u64 inv = mod_inverse(o->skip, size);

			/* rank in the permutation: slot = offset + rank * skip (mod size) */
			for (i = 0; i < held; i++) {
				__u64 slot = bucket[start + i];
				__u64 rank = (slot + size - o->offset) % size * inv % size;

				ranked[i] = rank << 32 | slot;
			}
			qsort(ranked, held, sizeof(*ranked), cmp_u64);
			for (i = 0; i < keep; i++)
				bucket[start + i] = (__u32)ranked[i];
		}
		for (i = 0; i < keep; i++)
			slots[bucket[start + i]] = o->backend_id;
		o->count = keep;
	}
	err = 0;
out_free:
	free(ranked);
	free(bucket);
	free(bucket_start);
	return err;
}

static __u32 owner_next(struct slot_owner *o, __u32 size)
{
	__u32 slot = o->pos;

	o->pos += o->skip;
	if (o->pos >= size)
		o->pos -= size;
	return slot;
}

/*
 * Maglev's round robin: every member with room, in key order, takes its most
 * preferred empty slot, until every slot is taken. The quotas sum to size, so
 * a member with room always finds an empty slot further along its own
 * permutation (the slots it passed were all taken, and slots never empty).
 */
static int fill(struct slot_owner *owners, __u32 n, __u32 size, __u32 *slots)
{
	__u32 *active, nactive = 0, i, w;

	active = malloc((n ? n : 1) * sizeof(*active));
	if (!active)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (owners[i].count < owners[i].quota)
			active[nactive++] = i;
	while (nactive) {
		for (i = 0, w = 0; i < nactive; i++) {
			struct slot_owner *o = &owners[active[i]];
			__u32 slot;

			do
				slot = owner_next(o, size);
			while (slots[slot]);
			slots[slot] = o->backend_id;
			if (++o->count < o->quota)
				active[w++] = active[i];
		}
		nactive = w;
	}
	free(active);
	return 0;
}

int ferry_table__build(const struct ferry_table_spec *spec, const __u32 *prev, __u32 *slots)
{
	struct slot_owner *owners = NULL;
	struct id_index *ids = NULL;
	struct group_share *shares = NULL;
	__u32 *group_members = NULL, *group_quota = NULL, *slot_owner = NULL;
	__u32 size, n, i;
	int err;

	err = validate(spec, slots);
	if (err)
		return err;
	size = spec->size;
	n = spec->nmembers;

	err = -ENOMEM;
	owners = calloc(n ? n : 1, sizeof(*owners));
	ids = calloc(n ? n : 1, sizeof(*ids));
	group_members = calloc(spec->ngroups ? spec->ngroups : 1, sizeof(*group_members));
	group_quota = calloc(spec->ngroups ? spec->ngroups : 1, sizeof(*group_quota));
	shares = calloc(spec->ngroups ? spec->ngroups : 1, sizeof(*shares));
	if (!owners || !ids || !group_members || !group_quota || !shares)
		goto out_free;

	for (i = 0; i < n; i++) {
		const struct ferry_table_member *m = &spec->members[i];

		owners[i].key = m->key;
		owners[i].backend_id = m->backend_id;
		owners[i].group = m->group;
		owners[i].offset = mix64(m->key ^ 0x243f6a8885a308d3ULL) % size;
		owners[i].skip = mix64(m->key ^ 0x13198a2e03707344ULL) % (size - 1) + 1;
		owners[i].pos = owners[i].offset;
		group_members[m->group]++;
	}
	qsort(owners, n, sizeof(*owners), cmp_owner_key);
	for (i = 0; i < n; i++) {
		ids[i].backend_id = owners[i].backend_id;
		ids[i].owner = i;
	}
	qsort(ids, n, sizeof(*ids), cmp_id_index);
	for (i = 1; i < n; i++) {
		if (ids[i].backend_id == ids[i - 1].backend_id) {
			pr_debug("table: backend id %u appears twice\n", ids[i].backend_id);
			err = -EINVAL;
			goto out_free;
		}
	}

	memset(slots, 0, size * sizeof(*slots));
	if (!group_quotas(spec, group_members, group_quota, shares)) {
		err = 0; /* no member with a weight: every slot 0, nothing routed */
		goto out_free;
	}

	if (prev) {
		slot_owner = malloc(size * sizeof(*slot_owner));
		if (!slot_owner)
			goto out_free;
		for (i = 0; i < size; i++) {
			int m = prev[i] ? find_owner(ids, n, prev[i]) : -1;

			slot_owner[i] = (__u32)m;
			if (m >= 0)
				owners[m].prev_count++;
		}
	}
	err = member_quotas(owners, n, group_members, group_quota);
	if (err)
		goto out_free;
	if (prev) {
		err = keep_prev(owners, n, size, slot_owner, slots);
		if (err)
			goto out_free;
	}
	err = fill(owners, n, size, slots);
out_free:
	free(slot_owner);
	free(shares);
	free(group_quota);
	free(group_members);
	free(ids);
	free(owners);
	return err;
}
