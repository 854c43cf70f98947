// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-predictor Maglev tables (see table.h for the contract, docs/tables.md
 * for the reasoning and the measured disruption).
 *
 * Two steps: quotas (size split evenly between the members; the first
 * size mod n members in key order get one slot more) and fill (Maglev's round
 * robin over each member's permutation). Members are sorted by key first, so
 * nothing depends on their input order, and nothing on any earlier table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/bpf.h>

#include "ferry_maps.h"
#include "log.h"
#include "kernel/table.h"

/* Working state of one member while its table is built. */
struct slot_owner {
	__u32 skip; /* step of the permutation, 1..size-1: coprime with the prime size */
	__u32 pos; /* next slot of the permutation to try */
	__u32 quota; /* slots this member must end up with */
	__u32 count; /* slots it holds so far */
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

__u32 ferry_table__pred_key(const char *name)
{
	__u64 h = 0x6a09e667f3bcc908ULL;

	/* Byte by byte: the same on every node whatever its endianness. */
	for (; *name; name++)
		h = mix64(h ^ (__u8)*name);
	return (__u32)(mix64(h) >> 32);
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

__u32 ferry_table__size(__u32 n, __u32 floor)
{
	__u64 want = (__u64)n * FERRY_TABLE_SLOTS_PER_BACKEND, step;

	if (!n)
		return 0;
	if (floor < FERRY_TABLE_SIZE_MIN)
		floor = FERRY_TABLE_SIZE_MIN;
	/*
	 * A ladder of doublings from the floor, not the nearest prime to 100 n:
	 * slot = hash % size, so a new size re-deals the whole table, and with a
	 * ladder that happens only when the backend count crosses a doubling,
	 * not at every scale-up by one.
	 */
	for (step = floor; step < want && step < FERRY_TABLE_SIZE_MAX; step *= 2)
		;
	if (step >= FERRY_TABLE_SIZE_MAX)
		return FERRY_TABLE_SIZE_MAX;
	return ferry_table__next_prime((__u32)step);
}

static int cmp_member(const void *a, const void *b)
{
	const struct ferry_table_member *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->backend_id > y->backend_id) - (x->backend_id < y->backend_id);
}

/* Digest of the inputs, kept in the table so a restarted ferryd need not rebuild it. */
static __u64 inputs_digest(const struct ferry_table_member *m, __u32 n, __u32 size);

__u64 ferry_table__digest(struct ferry_table_member *members, __u32 n, __u32 size)
{
	if (n)
		qsort(members, n, sizeof(*members), cmp_member);
	return inputs_digest(members, n, size);
}

static __u64 inputs_digest(const struct ferry_table_member *m, __u32 n, __u32 size)
{
	__u64 h = mix64(0xa0761d6478bd642fULL ^ size) ^ n;
	__u32 i;

	for (i = 0; i < n; i++)
		h = mix64(h ^ m[i].key) + m[i].backend_id;
	return mix64(h) | 1; /* never 0: 0 means "unknown" */
}

/*
 * Maglev's round robin: every member with room, in key order, takes its most
 * preferred empty slot, until every slot is taken. The quotas sum to size, so
 * a member with room always finds an empty slot further along its own
 * permutation (the slots it passed were all taken, and slots never empty).
 * taken[] marks slots; slot values are written into the cells.
 */
static int fill(struct slot_owner *owners, __u32 n, __u32 size, struct ferry_table_cell *cells)
{
	__u32 *active, nactive = n, i, w;
	bool *taken;
	int err = -ENOMEM;

	active = malloc(n * sizeof(*active));
	taken = calloc(size, sizeof(*taken));
	if (!active || !taken)
		goto out_free;
	for (i = 0; i < n; i++)
		active[i] = i;
	while (nactive) {
		for (i = 0, w = 0; i < nactive; i++) {
			struct slot_owner *o = &owners[active[i]];
			__u32 slot;

			do {
				slot = o->pos;
				o->pos += o->skip;
				if (o->pos >= size)
					o->pos -= size;
			} while (taken[slot]);
			taken[slot] = true;
			cells[FERRY_TABLE_SLOT_CELL(slot)].slot[slot % 4] = (__u16)active[i];
			if (++o->count < o->quota)
				active[w++] = active[i];
		}
		nactive = w;
	}
	err = 0;
out_free:
	free(taken);
	free(active);
	return err;
}

int ferry_table__build(struct ferry_table_member *members, __u32 n, __u32 size,
		       struct ferry_table_cell *cells)
{
	struct slot_owner *owners;
	__u32 i;
	int err;

	if (n > FERRY_TABLE_MAX_BACKENDS || (n && !members) || !cells || n > size ||
	    (size &&
	     (size < FERRY_TABLE_SIZE_MIN || size > FERRY_TABLE_SIZE_MAX || !is_prime(size))) ||
	    (!size && n))
		return -EINVAL;
	if (n) /* an empty predictor has no member array: qsort(NULL) is undefined */
		qsort(members, n, sizeof(*members), cmp_member);
	for (i = 0; i < n; i++) {
		if (!members[i].backend_id || (i && members[i].key == members[i - 1].key)) {
			pr_debug("table: member %u: backend id %u, key %llx twice\n", i,
				 members[i].backend_id, (unsigned long long)members[i].key);
			return -EINVAL;
		}
	}
	memset(cells, 0, FERRY_TABLE_CELLS(size, n) * sizeof(*cells));
	cells[0].head.size = n ? size : 0;
	cells[0].head.nbackends = n;
	cells[1].inputs = inputs_digest(members, n, size);
	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		cells[FERRY_TABLE_ID_CELL(size, i)].backend_id[i % 2] = members[i].backend_id;

	owners = calloc(n, sizeof(*owners));
	if (!owners)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		__u64 key = members[i].key;

		owners[i].pos = mix64(key ^ 0x243f6a8885a308d3ULL) % size;
		owners[i].skip = mix64(key ^ 0x13198a2e03707344ULL) % (size - 1) + 1;
		/* even split; the first size mod n members (in key order) get one more */
		owners[i].quota = size / n + (i < size % n ? 1 : 0);
	}
	err = fill(owners, n, size, cells);
	free(owners);
	return err;
}

int ferry_table__create(const struct ferry_table_cell *cells, __u32 ncells, const char *name)
{
	LIBBPF_OPTS(bpf_map_create_opts, create, .map_flags = FERRY_TABLE_MAP_FLAGS);
	LIBBPF_OPTS(bpf_map_batch_opts, batch);
	__u32 *keys, i, count = ncells;
	int fd, err;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), sizeof(*cells), ncells,
			    &create);
	if (fd < 0)
		return -errno;
	keys = malloc(ncells * sizeof(*keys));
	if (!keys) {
		close(fd);
		return -ENOMEM;
	}
	for (i = 0; i < ncells; i++)
		keys[i] = i;
	/* Not yet reachable by any packet: one batch write (one syscall per cell before 5.6). */
	err = bpf_map_update_batch(fd, keys, cells, &count, &batch);
	if (err) {
		err = 0;
		for (i = 0; i < ncells && !err; i++)
			if (bpf_map_update_elem(fd, &i, &cells[i], BPF_ANY))
				err = -errno;
	}
	free(keys);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}
