// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writing the maps: table swaps (batched, one RCU wait per sync), retired
 * stats, address markers and table rebuilds.
 */
#include "kernel/sync_internal.h"

/* ------------------------------------------------------------- writing */

/* Every protocol's histogram of (id, kind, metric): one per enum ferry_l7_proto value. */
void hist_delete(struct ferry_sync *s, __u32 id, __u8 kind, __u8 metric)
{
	struct ferry_hist_key key = { .id = id, .kind = kind, .metric = metric };

	for (key.protocol = 0; key.protocol < FERRY_L7_PROTOS; key.protocol++)
		bpf_map_delete_elem(s->dp->map_fds[FERRY_M_LATENCY], &key);
}

static int swaps_add(struct ferry_sync *s, __u32 id, int fd)
{
	if (s->swaps.n == s->swaps.cap) {
		size_t cap = s->swaps.cap ? s->swaps.cap * 2 : 64;
		__u32 *ids = realloc(s->swaps.ids, cap * sizeof(*ids));
		int *fds;

		if (!ids)
			return -ENOMEM;
		s->swaps.ids = ids;
		fds = realloc(s->swaps.fds, cap * sizeof(*fds));
		if (!fds)
			return -ENOMEM;
		s->swaps.fds = fds;
		s->swaps.cap = cap;
	}
	s->swaps.ids[s->swaps.n] = id;
	s->swaps.fds[s->swaps.n++] = fd;
	return 0;
}

/*
 * Writes the queued table swaps into ferry_tables: each slot changes
 * atomically, all in one batch. A kernel without batch ops on map-in-map
 * arrays gets them one by one. Then renames each new pin over the old one.
 */
int flush_swaps(struct ferry_sync *s)
{
	LIBBPF_OPTS(bpf_map_batch_opts, batch);
	int outer = s->dp->map_fds[FERRY_M_TABLES], err = 0;
	__u32 done = s->swaps.n;
	size_t i;

	if (s->swaps.n && bpf_map_update_batch(outer, s->swaps.ids, s->swaps.fds, &done, &batch)) {
		if (done > s->swaps.n)
			done = 0;
		for (i = done; i < s->swaps.n; i++) {
			if (bpf_map_update_elem(outer, &s->swaps.ids[i], &s->swaps.fds[i],
						BPF_ANY)) {
				err = -errno;
				break;
			}
		}
		done = i;
	}
	for (i = 0; i < s->swaps.n; i++) {
		char tmp[PATH_MAX], final[PATH_MAX];

		if (!table_pin_path(s, s->swaps.ids[i], "-new", tmp, sizeof(tmp)) &&
		    !table_pin_path(s, s->swaps.ids[i], "", final, sizeof(final))) {
			if (i < done)
				rename(tmp, final);
			else
				unlink(tmp);
		}
		if (i >= done) {
			/* Not in the kernel: forget it so the next sync builds it again. */
			struct mservice *ms = &s->svcs[s->swaps.ids[i]];

			free(ms->table);
			ms->table = NULL;
		}
		close(s->swaps.fds[i]);
	}
	s->swaps.n = 0;

	if (s->drops.n) {
		__u32 count = s->drops.n;

		if (bpf_map_delete_batch(outer, s->drops.ids, &count, &batch))
			for (i = 0; i < s->drops.n; i++)
				bpf_map_delete_elem(outer, &s->drops.ids[i]);
		s->drops.n = 0;
	}
	return err;
}

/* Builds a new inner table (create, fill, pin beside the old) and queues its swap. */
static int table_swap(struct ferry_sync *s, __u32 id, const __u32 *slots, __u32 size)
{
	LIBBPF_OPTS(bpf_map_create_opts, create, .map_flags = FERRY_TABLE_MAP_FLAGS);
	char name[16], tmp[PATH_MAX], final[PATH_MAX];
	size_t len = table_mmap_len(size);
	void *mem;
	int fd, err;

	snprintf(name, sizeof(name), "ferry_tbl_%u", id);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), sizeof(__u32), size, &create);
	if (fd < 0)
		return -errno;
	/* Not yet reachable by any packet: fill it in one copy. */
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		err = -errno;
		goto out_close;
	}
	for (__u32 i = 0; i < size; i++)
		memcpy((char *)mem + (size_t)i * TABLE_STRIDE, &slots[i], sizeof(*slots));
	munmap(mem, len);
	err = table_pin_path(s, id, "", final, sizeof(final));
	err = err ?: table_pin_path(s, id, "-new", tmp, sizeof(tmp));
	if (err)
		goto out_close;
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp)) {
		err = -errno;
		goto out_close;
	}
	err = swaps_add(s, id, fd);
	if (!err)
		return 0; /* flush_swaps() closes fd */
	unlink(tmp);
out_close:
	close(fd);
	return err;
}

void svc_meta_preds(struct ferry_sync *s, __u32 svc_id, struct ferry_svc_meta *meta)
{
	const struct idvec *v = &s->svcs[svc_id].preds;
	size_t i;

	meta->npredictors = 0;
	memset(meta->predictor_ids, 0, sizeof(meta->predictor_ids));
	for (i = 0; i < v->n && meta->npredictors < FERRY_MAX_SVC_PREDICTORS; i++)
		meta->predictor_ids[meta->npredictors++] = v->ids[i];
}

/* Adds a deleted backend's counters to its predictor's retired totals, zeroes its row. */
void retire_stats(struct ferry_sync *s, __u32 be_id, __u32 pred_id)
{
	int fd = s->dp->map_fds[FERRY_M_STATS], cpu;
	struct ferry_stats *rows = s->percpu_buf;
	struct mpred *mp = pred_id < FERRY_MAX_PREDICTORS ? &s->preds[pred_id] : NULL;

	if (bpf_map_lookup_elem(fd, &be_id, rows))
		return;
	if (mp && mp->used) {
		__u64 *dst = (__u64 *)&mp->meta.retired;

		for (cpu = 0; cpu < s->ncpus; cpu++) {
			const __u64 *src = (const __u64 *)&rows[cpu];
			size_t f;

			for (f = 0; f < sizeof(struct ferry_stats) / sizeof(__u64); f++)
				dst[f] += src[f];
		}
		bpf_map_update_elem(s->dp->map_fds[FERRY_M_PRED_META], &pred_id, &mp->meta,
				    BPF_ANY);
	}
	memset(rows, 0, s->ncpus * sizeof(*rows));
	bpf_map_update_elem(fd, &be_id, rows, BPF_ANY);
}

/* Keys to delete after a map walk: get_next_key restarts from the top on a deleted key. */
static void marker_of(struct ferry_vip *marker, const struct ferry_vip *vip)
{
	memset(marker, 0, sizeof(*marker));
	memcpy(marker->addr, vip->addr, sizeof(marker->addr));
	marker->family = vip->family;
}

int sync_markers(struct ferry_sync *s)
{
	int fd = s->dp->map_fds[FERRY_M_SERVICES];
	struct ferry_service mark = { .flags = FERRY_SVC_F_ADDR_MARKER };
	struct idmap want;
	size_t i;
	__u32 id;
	int err;

	err = idmap_init(&want, sizeof(struct ferry_vip), 256);
	if (err)
		return err;
	for (id = 1; id < FERRY_MAX_SERVICES; id++) {
		struct ferry_vip m;

		if (!s->svcs[id].used)
			continue;
		marker_of(&m, &s->svcs[id].vip);
		err = idmap_put(&want, &m, idmap_get(&want, &m) + 1);
		if (err)
			goto out_free;
	}
	for (i = 0; i < want.cap; i++) {
		void *k = want.keys + i * want.keylen;

		if (want.state[i] != 1 || idmap_get(&s->markers, k))
			continue;
		if (bpf_map_update_elem(fd, k, &mark, BPF_ANY)) {
			err = -errno;
			goto out_free;
		}
		idmap_put(&s->markers, k, 1);
	}
	for (i = 0; i < s->markers.cap; i++) {
		void *k = s->markers.keys + i * s->markers.keylen;

		if (s->markers.state[i] != 1 || idmap_get(&want, k))
			continue;
		bpf_map_delete_elem(fd, k);
		idmap_del(&s->markers, k);
	}
out_free:
	idmap_free(&want);
	return err;
}

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/*
 * Long on purpose: builds, compares and swaps one table with its cleanup labels;
 * weight computation here moves with the exact-weights issue, not before.
 */
/* Builds and, when it differs, swaps the table of one service. */
int rebuild_table(struct ferry_sync *s, __u32 svc_id, __u32 size, struct ferry_sync_result *res)
{
	struct mservice *ms = &s->svcs[svc_id];
	__u32 gweights[FERRY_MAX_SVC_PREDICTORS] = {}, gids[FERRY_MAX_SVC_PREDICTORS];
	__u32 counts[FERRY_MAX_SVC_PREDICTORS] = {};
	struct ferry_table_member *members = NULL;
	__u32 ngroups = 0, nmembers = 0, g, i, *slots = NULL, *ids = NULL, starved = 0;
	__u64 inputs;
	bool override = false;
	int err = 0;

	for (i = 0; i < ms->preds.n; i++)
		if (s->preds[ms->preds.ids[i]].meta.flags & FERRY_PRED_F_OVERRIDE)
			override = true;
	for (i = 0; i < ms->preds.n && ngroups < FERRY_MAX_SVC_PREDICTORS; i++) {
		const struct ferry_pred_meta *pm = &s->preds[ms->preds.ids[i]].meta;

		gids[ngroups] = ms->preds.ids[i];
		if (pm->flags & FERRY_PRED_F_SHADOW)
			gweights[ngroups] = 0;
		else if (override)
			gweights[ngroups] =
				pm->flags & FERRY_PRED_F_OVERRIDE ? pm->weight_override : 0;
		else
			gweights[ngroups] = pm->weight_configured;
		ngroups++;
	}

	members = calloc(ms->bes.n ? ms->bes.n : 1, sizeof(*members));
	ids = calloc(ms->bes.n ? ms->bes.n : 1, sizeof(*ids));
	slots = calloc(size, sizeof(*slots));
	if (!members || !ids || !slots) {
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < ms->bes.n; i++) {
		__u32 id = ms->bes.ids[i];
		const struct ferry_backend *be = &s->bes[id].be;

		if (be->state != FERRY_BE_ACTIVE || (be->flags & FERRY_BE_F_ADMIN_DRAIN))
			continue;
		for (g = 0; g < ngroups && gids[g] != be->predictor_id; g++)
			;
		if (g == ngroups)
			continue;
		members[nmembers] = (struct ferry_table_member){
			.backend_id = id,
			.group = g,
			.key = ferry_table__key(be->family, be->addr, be->port),
		};
		ids[nmembers++] = id;
	}

	/*
	 * Same weights, same members, same size: the table cannot change, and a
	 * sync of thousands of services must not rebuild every one of them.
	 */
	inputs = hash_bytes(&size, sizeof(size)) ^ hash_bytes(gweights, sizeof(gweights)) ^
		 (hash_bytes(gids, ngroups * sizeof(*gids)) * 3) ^
		 (hash_bytes(members, nmembers * sizeof(*members)) * 5) ^ ngroups ^
		 ((__u64)nmembers << 32);
	if (!inputs)
		inputs = 1;
	if (ms->table && ms->table_slots == size && ms->inputs == inputs)
		goto out_free;

	err = ferry_table__build(&(struct ferry_table_spec){ .size = size,
							     .group_weights = gweights,
							     .ngroups = ngroups,
							     .members = members,
							     .nmembers = nmembers },
				 ms->table && ms->table_slots == size ? ms->table : NULL, slots);
	if (err)
		goto out_free;

	/* Effective weight: what the table really holds, so metrics never guess. */
	for (i = 0; i < size; i++) {
		if (!slots[i])
			continue;
		for (g = 0; g < ngroups; g++)
			if (s->bes[slots[i]].be.predictor_id == gids[g])
				counts[g]++;
	}
	for (g = 0; g < ngroups; g++)
		s->preds[gids[g]].meta.weight_effective =
			(__u32)((__u64)counts[g] * FERRY_WEIGHT_ONE / size);

	/* A member with no slot gets no traffic: say so, the fix is a bigger table. */
	qsort(ids, nmembers, sizeof(*ids), cmp_u32);
	{
		bool *has = calloc(nmembers ? nmembers : 1, sizeof(*has));

		if (!has) {
			err = -ENOMEM;
			goto out_free;
		}
		for (i = 0; i < size; i++) {
			__u32 *hit = slots[i] ? bsearch(&slots[i], ids, nmembers, sizeof(*ids),
							cmp_u32) :
						NULL;

			if (hit)
				has[hit - ids] = true;
		}
		for (i = 0; i < nmembers; i++) {
			const struct ferry_backend *be = &s->bes[ids[i]].be;

			for (g = 0; g < ngroups && gids[g] != be->predictor_id; g++)
				;
			starved += g < ngroups && gweights[g] && !has[i];
		}
		free(has);
	}
	if (starved) {
		pr_warn("%s: %u backends got no slot in a %u-slot table; raise --table-size",
			ms->meta.deployment[0] ? ms->meta.deployment : "service", starved, size);
		res->starved_members += starved;
	}

	ms->inputs = inputs;
	if (ms->table && ms->table_slots == size &&
	    !memcmp(ms->table, slots, size * sizeof(*slots)))
		goto out_free;
	err = table_swap(s, svc_id, slots, size);
	if (err)
		goto out_free;
	free(ms->table);
	ms->table = slots;
	ms->table_slots = size;
	slots = NULL;
	ms->meta.table_generation++;
	res->tables_swapped++;
out_free:
	free(members);
	free(ids);
	free(slots);
	return err;
}
