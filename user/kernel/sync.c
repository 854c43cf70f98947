// SPDX-License-Identifier: GPL-2.0-only
/*
 * Desired state -> pinned maps, writing only the difference. See sync.h for
 * the write order. Ids (service, predictor, backend) are allocated here and
 * recovered from the maps at start, so they stay stable across restarts.
 */
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

/* ------------------------------------------------------------- id maps */

/* Open addressing from fixed-size byte keys to ids; deletion by tombstone. */
struct idmap {
	size_t cap, used, live;
	size_t keylen;
	unsigned char *keys;
	__u32 *vals;
	__u8 *state; /* 0 empty, 1 live, 2 tombstone */
};

static __u64 hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	__u64 h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static int idmap_init(struct idmap *m, size_t keylen, size_t cap)
{
	m->cap = cap;
	m->keylen = keylen;
	m->used = m->live = 0;
	m->keys = calloc(cap, keylen);
	m->vals = calloc(cap, sizeof(*m->vals));
	m->state = calloc(cap, 1);
	return m->keys && m->vals && m->state ? 0 : -ENOMEM;
}

static void idmap_free(struct idmap *m)
{
	free(m->keys);
	free(m->vals);
	free(m->state);
}

static size_t idmap_find(const struct idmap *m, const void *key, bool *found)
{
	size_t i = hash_bytes(key, m->keylen) % m->cap, tomb = SIZE_MAX;

	for (;;) {
		if (!m->state[i]) {
			*found = false;
			return tomb != SIZE_MAX ? tomb : i;
		}
		if (m->state[i] == 2) {
			if (tomb == SIZE_MAX)
				tomb = i;
		} else if (!memcmp(m->keys + i * m->keylen, key, m->keylen)) {
			*found = true;
			return i;
		}
		i = (i + 1) % m->cap;
	}
}

static int idmap_grow(struct idmap *m)
{
	struct idmap bigger;
	size_t i;
	bool found;

	if (idmap_init(&bigger, m->keylen, m->cap * 2))
		return -ENOMEM;
	for (i = 0; i < m->cap; i++) {
		size_t j;

		if (m->state[i] != 1)
			continue;
		j = idmap_find(&bigger, m->keys + i * m->keylen, &found);
		memcpy(bigger.keys + j * m->keylen, m->keys + i * m->keylen, m->keylen);
		bigger.vals[j] = m->vals[i];
		bigger.state[j] = 1;
		bigger.used++;
		bigger.live++;
	}
	idmap_free(m);
	*m = bigger;
	return 0;
}

static __u32 idmap_get(const struct idmap *m, const void *key)
{
	bool found;
	size_t i = idmap_find(m, key, &found);

	return found ? m->vals[i] : 0;
}

static int idmap_put(struct idmap *m, const void *key, __u32 val)
{
	bool found;
	size_t i;

	if ((m->used + 1) * 2 > m->cap && idmap_grow(m))
		return -ENOMEM;
	i = idmap_find(m, key, &found);
	if (!found) {
		if (m->state[i] == 0)
			m->used++;
		m->live++;
		memcpy(m->keys + i * m->keylen, key, m->keylen);
		m->state[i] = 1;
	}
	m->vals[i] = val;
	return 0;
}

static void idmap_del(struct idmap *m, const void *key)
{
	bool found;
	size_t i = idmap_find(m, key, &found);

	if (found) {
		m->state[i] = 2;
		m->live--;
	}
}

/* -------------------------------------------------------------- mirror */

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

static int idvec_add(struct idvec *v, __u32 id)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		__u32 *ids = realloc(v->ids, cap * sizeof(*ids));

		if (!ids)
			return -ENOMEM;
		v->ids = ids;
		v->cap = cap;
	}
	v->ids[v->n++] = id;
	return 0;
}

static void idvec_remove(struct idvec *v, __u32 id)
{
	size_t i;

	for (i = 0; i < v->n; i++) {
		if (v->ids[i] == id) {
			v->ids[i] = v->ids[--v->n];
			return;
		}
	}
}

struct mservice {
	bool used;
	bool seen; /* in the model being applied */
	struct ferry_vip vip;
	struct ferry_service svc;
	struct ferry_svc_meta meta;
	__u32 *table; /* the slots in force */
	__u32 table_slots; /* how many: ms->table's length */
	bool dirty; /* svc differs from the kernel's entry: write it after the swaps */
	__u64 inputs; /* hash of what the table was last built from; 0: unknown */
	struct idvec preds; /* predictor ids, in manifest order */
	struct idvec bes; /* backend ids */
};

struct mpred {
	bool used;
	bool seen;
	struct ferry_pred_meta meta;
};

struct mbackend {
	bool used;
	bool seen;
	struct ferry_backend be;
};

struct ferry_sync {
	struct ferry_dp *dp;
	__u32 table_size;
	int ncpus;
	struct mservice *svcs;
	struct mpred *preds;
	struct mbackend *bes;
	struct idmap svc_ids, pred_ids, be_ids;
	__u32 svc_hint, pred_hint, be_hint;
	/* Address markers in force: VIP address -> number of VIPs on it. */
	struct idmap markers;
	struct ferry_stats *percpu_buf; /* one ferry_stats row per possible CPU */
	/*
	 * Outer-map writes wait for an RCU grace period each (the kernel must
	 * know no program still runs on the old inner map): they are queued and
	 * written in one batch, one wait per sync instead of one per service.
	 */
	struct {
		__u32 *ids;
		int *fds;
		size_t n, cap;
	} swaps;
	struct idvec drops; /* outer slots to clear */
};

static __u32 alloc_id(bool (*used)(struct ferry_sync *, __u32), struct ferry_sync *s, __u32 *hint,
		      __u32 max)
{
	__u32 i, id;

	for (i = 0; i < max - 1; i++) {
		id = 1 + (*hint + i) % (max - 1);
		if (!used(s, id)) {
			*hint = id;
			return id;
		}
	}
	return 0;
}

static bool svc_used(struct ferry_sync *s, __u32 id)
{
	return s->svcs[id].used;
}

static bool pred_used(struct ferry_sync *s, __u32 id)
{
	return s->preds[id].used;
}

static bool be_used(struct ferry_sync *s, __u32 id)
{
	return s->bes[id].used;
}

static void backend_key_of(struct backend_key *k, const struct ferry_backend *be)
{
	memset(k, 0, sizeof(*k));
	k->svc_id = be->svc_id;
	k->pred_id = be->predictor_id;
	memcpy(k->addr, be->addr, sizeof(k->addr));
	k->port = be->port;
	k->family = be->family;
}

static void pred_key_of(struct pred_key *k, __u32 svc_id, const char *name)
{
	memset(k, 0, sizeof(*k));
	k->svc_id = svc_id;
	snprintf(k->name, sizeof(k->name), "%s", name);
}

static int table_pin_path(const struct ferry_sync *s, __u32 id, const char *suffix, char *buf,
			  size_t len)
{
	int n = snprintf(buf, len, "%s/tables/%u%s", s->dp->pin_path, id, suffix);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * Inner tables (FERRY_TABLE_MAP_FLAGS) are filled and read through mmap.
 * An array's elements are 8-byte aligned (the kernel rounds value_size up to
 * 8), so slot i of a __u32 table is at byte 8 * i of the mapping.
 */
#define TABLE_STRIDE 8

static size_t table_mmap_len(__u32 slots)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return ((size_t)slots * TABLE_STRIDE + page - 1) / page * page;
}

/* Reads an inner table through its pin. */
static int read_table(struct ferry_sync *s, struct mservice *ms, __u32 id)
{
	void *mem;
	char path[PATH_MAX];
	__u32 i, size = ms->svc.table_size;
	int fd, err;

	free(ms->table);
	ms->table_slots = 0;
	ms->table = calloc(size ? size : 1, sizeof(__u32));
	if (!ms->table)
		return -ENOMEM;
	ms->table_slots = size;
	err = table_pin_path(s, id, "", path, sizeof(path));
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	mem = mmap(NULL, table_mmap_len(size), PROT_READ, MAP_SHARED, fd, 0);
	if (mem != MAP_FAILED) {
		for (i = 0; i < size; i++)
			memcpy(&ms->table[i], (char *)mem + (size_t)i * TABLE_STRIDE, sizeof(__u32));
		munmap(mem, table_mmap_len(size));
	} else {
		for (i = 0; i < size && !err; i++)
			if (bpf_map_lookup_elem(fd, &i, &ms->table[i]))
				err = -errno;
	}
	close(fd);
	return err;
}

/* The whole backends array in a few batch reads (one syscall per id before 5.6). */
static int read_backends(struct ferry_sync *s)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int fd = s->dp->map_fds[FERRY_M_BACKENDS];
	const __u32 chunk = 8192;
	struct ferry_backend *vals;
	__u32 *keys, batch = 0, i, n, key;
	bool first = true;
	int err = 0;

	keys = calloc(chunk, sizeof(*keys));
	vals = calloc(chunk, sizeof(*vals));
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out_free;
	}
	for (;;) {
		n = chunk;
		err = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, vals, &n, &opts);
		if (err && errno != ENOENT) {
			err = -errno;
			break;
		}
		for (i = 0; i < n; i++)
			if (keys[i] < FERRY_MAX_BACKENDS)
				s->bes[keys[i]].be = vals[i];
		if (err) { /* ENOENT: the end of the map */
			err = 0;
			goto out_free;
		}
		first = false;
	}
	/* No batch ops: one lookup per id. */
	for (key = 1, err = 0; key < FERRY_MAX_BACKENDS && !err; key++)
		if (bpf_map_lookup_elem(fd, &key, &s->bes[key].be))
			err = -errno;
out_free:
	free(keys);
	free(vals);
	return err;
}

static int load_mirror(struct ferry_sync *s)
{
	int *fds = s->dp->map_fds;
	struct ferry_vip vip, *prev = NULL;
	struct ferry_service svc;
	__u32 id, key, *pprev = NULL;
	int err;

	while (!bpf_map_get_next_key(fds[FERRY_M_SERVICES], prev, &vip)) {
		prev = &(struct ferry_vip){};
		*prev = vip;
		if (bpf_map_lookup_elem(fds[FERRY_M_SERVICES], &vip, &svc))
			continue;
		if (svc.flags & FERRY_SVC_F_ADDR_MARKER) {
			err = idmap_put(&s->markers, &vip, svc.id);
			if (err)
				return err;
			continue;
		}
		if (!svc.id || svc.id >= FERRY_MAX_SERVICES)
			continue;
		s->svcs[svc.id] = (struct mservice){ .used = true, .vip = vip, .svc = svc };
		bpf_map_lookup_elem(fds[FERRY_M_SVC_META], &svc.id, &s->svcs[svc.id].meta);
		err = read_table(s, &s->svcs[svc.id], svc.id);
		if (err)
			pr_warn("service %u: cannot read its table (%s); it will be rebuilt", svc.id,
				strerror(-err));
		err = idmap_put(&s->svc_ids, &vip, svc.id);
		if (err)
			return err;
	}

	while (!bpf_map_get_next_key(fds[FERRY_M_PRED_META], pprev, &key)) {
		struct mpred *mp;
		struct pred_key pk;

		id = key;
		pprev = &id;
		if (key >= FERRY_MAX_PREDICTORS)
			continue;
		mp = &s->preds[key];
		if (bpf_map_lookup_elem(fds[FERRY_M_PRED_META], &key, &mp->meta))
			continue;
		mp->used = true;
		pred_key_of(&pk, mp->meta.svc_id, mp->meta.name);
		err = idmap_put(&s->pred_ids, &pk, key);
		if (!err && mp->meta.svc_id < FERRY_MAX_SERVICES && s->svcs[mp->meta.svc_id].used)
			err = idvec_add(&s->svcs[mp->meta.svc_id].preds, key);
		if (err)
			return err;
	}

	err = read_backends(s);
	if (err)
		return err;
	for (key = 1; key < FERRY_MAX_BACKENDS; key++) {
		struct mbackend *mb = &s->bes[key];
		struct backend_key bk;

		if (mb->be.state == FERRY_BE_UNUSED)
			continue;
		mb->used = true;
		backend_key_of(&bk, &mb->be);
		err = idmap_put(&s->be_ids, &bk, key);
		if (!err && mb->be.svc_id < FERRY_MAX_SERVICES && s->svcs[mb->be.svc_id].used)
			err = idvec_add(&s->svcs[mb->be.svc_id].bes, key);
		if (err)
			return err;
	}
	return 0;
}

struct ferry_sync *ferry_sync__new(struct ferry_dp *dp, const struct ferry_sync_opts *opts)
{
	struct ferry_sync *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dp = dp;
	s->table_size = opts && opts->table_size ? opts->table_size : FERRY_TABLE_SIZE_DEFAULT;
	s->ncpus = libbpf_num_possible_cpus();
	if (s->ncpus <= 0) {
		err = -EINVAL;
		goto err_free;
	}
	s->percpu_buf = calloc(s->ncpus, sizeof(*s->percpu_buf));
	s->svcs = calloc(FERRY_MAX_SERVICES, sizeof(*s->svcs));
	s->preds = calloc(FERRY_MAX_PREDICTORS, sizeof(*s->preds));
	s->bes = calloc(FERRY_MAX_BACKENDS, sizeof(*s->bes));
	if (!s->percpu_buf || !s->svcs || !s->preds || !s->bes) {
		err = -ENOMEM;
		goto err_free;
	}
	err = idmap_init(&s->svc_ids, sizeof(struct ferry_vip), 1024);
	err = err ?: idmap_init(&s->pred_ids, sizeof(struct pred_key), 1024);
	err = err ?: idmap_init(&s->be_ids, sizeof(struct backend_key), 4096);
	err = err ?: idmap_init(&s->markers, sizeof(struct ferry_vip), 256);
	if (err)
		goto err_free;
	err = load_mirror(s);
	if (err) {
		pr_err("cannot read the data plane state under %s: %s", dp->pin_path,
		       strerror(-err));
		goto err_free;
	}
	return s;

err_free:
	ferry_sync__free(s);
	errno = -err;
	return NULL;
}

void ferry_sync__free(struct ferry_sync *s)
{
	__u32 i;

	if (!s)
		return;
	if (s->svcs)
		for (i = 0; i < FERRY_MAX_SERVICES; i++) {
			free(s->svcs[i].table);
			free(s->svcs[i].preds.ids);
			free(s->svcs[i].bes.ids);
		}
	free(s->svcs);
	free(s->preds);
	free(s->bes);
	free(s->percpu_buf);
	free(s->swaps.ids);
	free(s->swaps.fds);
	free(s->drops.ids);
	idmap_free(&s->svc_ids);
	idmap_free(&s->pred_ids);
	idmap_free(&s->be_ids);
	idmap_free(&s->markers);
	free(s);
}

size_t ferry_sync__nservices(const struct ferry_sync *s)
{
	return s->svc_ids.live;
}

/* ------------------------------------------------------------- writing */

static void hist_delete(struct ferry_sync *s, __u32 id, __u8 kind, __u8 metric)
{
	struct ferry_hist_key key = { .id = id, .kind = kind, .metric = metric };

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
static int flush_swaps(struct ferry_sync *s)
{
	LIBBPF_OPTS(bpf_map_batch_opts, batch);
	int outer = s->dp->map_fds[FERRY_M_TABLES], err = 0;
	__u32 done = s->swaps.n;
	size_t i;

	if (s->swaps.n &&
	    bpf_map_update_batch(outer, s->swaps.ids, s->swaps.fds, &done, &batch)) {
		if (done > s->swaps.n)
			done = 0;
		for (i = done; i < s->swaps.n; i++) {
			if (bpf_map_update_elem(outer, &s->swaps.ids[i], &s->swaps.fds[i], BPF_ANY)) {
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

static void svc_meta_preds(struct ferry_sync *s, __u32 svc_id, struct ferry_svc_meta *meta)
{
	const struct idvec *v = &s->svcs[svc_id].preds;
	size_t i;

	meta->npredictors = 0;
	memset(meta->predictor_ids, 0, sizeof(meta->predictor_ids));
	for (i = 0; i < v->n && meta->npredictors < FERRY_MAX_SVC_PREDICTORS; i++)
		meta->predictor_ids[meta->npredictors++] = v->ids[i];
}

/* Adds a deleted backend's counters to its predictor's retired totals, zeroes its row. */
static void retire_stats(struct ferry_sync *s, __u32 be_id, __u32 pred_id)
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
struct keylist {
	struct ferry_flow_key *keys;
	size_t n, cap;
};

static int keylist_add(struct keylist *l, const struct ferry_flow_key *key)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct ferry_flow_key *more = realloc(l->keys, cap * sizeof(*more));

		if (!more)
			return -ENOMEM;
		l->keys = more;
		l->cap = cap;
	}
	l->keys[l->n++] = *key;
	return 0;
}

static void keylist_delete(struct keylist *l, int fd)
{
	for (size_t i = 0; i < l->n; i++)
		bpf_map_delete_elem(fd, &l->keys[i]);
	free(l->keys);
}


/*
 * Removes the flows of deleted backends. Their next packet is a flow miss:
 * it is hashed onto a live backend, which has no such connection and answers
 * with a reset, so clients reconnect at once instead of waiting on a dead pod.
 */
static size_t purge_flows(struct ferry_sync *s, const bool *dead)
{
	int ffd = s->dp->map_fds[FERRY_M_FLOWS], rfd = s->dp->map_fds[FERRY_M_RFLOWS];
	struct ferry_flow_key key, next, *prev = NULL;
	struct keylist fwd = {}, rev = {};
	struct ferry_flow flow;
	struct ferry_rflow rflow;
	size_t purged;

	while (!bpf_map_get_next_key(ffd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(ffd, &key, &flow) && flow.backend_id < FERRY_MAX_BACKENDS &&
		    dead[flow.backend_id])
			keylist_add(&fwd, &key);
	}
	prev = NULL;
	while (!bpf_map_get_next_key(rfd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(rfd, &key, &rflow) &&
		    rflow.backend_id < FERRY_MAX_BACKENDS && dead[rflow.backend_id])
			keylist_add(&rev, &key);
	}
	purged = fwd.n;
	keylist_delete(&fwd, ffd);
	keylist_delete(&rev, rfd);
	return purged;
}

void ferry_flow__reverse_key(struct ferry_flow_key *rkey, const struct ferry_flow_key *key,
			     const struct ferry_flow *flow)
{
	memset(rkey, 0, sizeof(*rkey));
	memcpy(rkey->saddr, flow->backend_addr, sizeof(rkey->saddr));
	memcpy(rkey->daddr, key->saddr, sizeof(rkey->daddr));
	rkey->sport = flow->backend_port;
	rkey->dport = key->sport;
	rkey->proto = key->proto;
	rkey->family = key->family;
}

size_t ferry_sync__gc_flows(struct ferry_sync *s, const struct ferry_gc_opts *o)
{
	int ffd = s->dp->map_fds[FERRY_M_FLOWS], rfd = s->dp->map_fds[FERRY_M_RFLOWS];
	struct ferry_flow_key key, next, rkey, *prev = NULL;
	struct keylist fwd = {}, rev = {};
	struct ferry_flow flow;
	struct timespec ts;
	size_t n;
	__u64 now;

	/* The data plane stamps flows with bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	while (!bpf_map_get_next_key(ffd, prev, &next)) {
		__u64 limit;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(ffd, &key, &flow) || flow.last_ns > now)
			continue;
		if (key.proto == IPPROTO_UDP)
			limit = o->udp_idle_ns;
		else if (flow.flags & FERRY_FLOW_F_CLOSING)
			limit = o->tcp_closing_ns;
		else
			limit = o->tcp_idle_ns;
		if (now - flow.last_ns < limit)
			continue;
		ferry_flow__reverse_key(&rkey, &key, &flow);
		if (keylist_add(&fwd, &key) || keylist_add(&rev, &rkey))
			break;
	}
	n = fwd.n;
	keylist_delete(&fwd, ffd);
	keylist_delete(&rev, rfd);
	return n;
}

static void marker_of(struct ferry_vip *marker, const struct ferry_vip *vip)
{
	memset(marker, 0, sizeof(*marker));
	memcpy(marker->addr, vip->addr, sizeof(marker->addr));
	marker->family = vip->family;
}

static int sync_markers(struct ferry_sync *s)
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

/* Builds and, when it differs, swaps the table of one service. */
static int rebuild_table(struct ferry_sync *s, __u32 svc_id, __u32 size, struct ferry_sync_result *res)
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
			gweights[ngroups] = pm->flags & FERRY_PRED_F_OVERRIDE ? pm->weight_override : 0;
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

static void delete_backend(struct ferry_sync *s, __u32 id, bool *dead)
{
	struct mbackend *mb = &s->bes[id];
	struct ferry_backend zero = {};
	struct backend_key bk;

	retire_stats(s, id, mb->be.predictor_id);
	hist_delete(s, id, FERRY_HIST_BACKEND, FERRY_LAT_REQUEST);
	hist_delete(s, id, FERRY_HIST_BACKEND, FERRY_LAT_CONNECT);
	bpf_map_update_elem(s->dp->map_fds[FERRY_M_BACKENDS], &id, &zero, BPF_ANY);
	backend_key_of(&bk, &mb->be);
	idmap_del(&s->be_ids, &bk);
	if (mb->be.svc_id < FERRY_MAX_SERVICES)
		idvec_remove(&s->svcs[mb->be.svc_id].bes, id);
	memset(mb, 0, sizeof(*mb));
	dead[id] = true;
}

static void delete_pred(struct ferry_sync *s, __u32 id)
{
	struct mpred *mp = &s->preds[id];
	struct pred_key pk;

	bpf_map_delete_elem(s->dp->map_fds[FERRY_M_PRED_META], &id);
	hist_delete(s, id, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST);
	hist_delete(s, id, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT);
	pred_key_of(&pk, mp->meta.svc_id, mp->meta.name);
	idmap_del(&s->pred_ids, &pk);
	if (mp->meta.svc_id < FERRY_MAX_SERVICES)
		idvec_remove(&s->svcs[mp->meta.svc_id].preds, id);
	memset(mp, 0, sizeof(*mp));
}

static void delete_service(struct ferry_sync *s, __u32 id)
{
	struct mservice *ms = &s->svcs[id];
	char path[PATH_MAX];

	/* The VIP first: no new packet can reach the table we then remove. */
	bpf_map_delete_elem(s->dp->map_fds[FERRY_M_SERVICES], &ms->vip);
	idvec_add(&s->drops, id);
	if (!table_pin_path(s, id, "", path, sizeof(path)))
		unlink(path);
	bpf_map_delete_elem(s->dp->map_fds[FERRY_M_SVC_META], &id);
	idmap_del(&s->svc_ids, &ms->vip);
	free(ms->table);
	ms->table = NULL;
	ms->used = false;
	ms->seen = false;
	/* preds and bes stay listed until delete_pred/delete_backend drop them. */
}

/* Picks up what another writer (ferryctl) changed since our last look. */
static void refresh_service(struct ferry_sync *s, __u32 id)
{
	struct mservice *ms = &s->svcs[id];
	struct ferry_svc_meta meta;
	size_t i;
	__u32 p;

	if (bpf_map_lookup_elem(s->dp->map_fds[FERRY_M_SVC_META], &id, &meta) ||
	    meta.table_generation == ms->meta.table_generation)
		return;
	ms->meta.table_generation = meta.table_generation;
	read_table(s, ms, id);
	ms->inputs = 0; /* another writer changed it: build again next time */
	for (i = 0; i < ms->preds.n; i++) {
		p = ms->preds.ids[i];
		bpf_map_lookup_elem(s->dp->map_fds[FERRY_M_PRED_META], &p, &s->preds[p].meta);
	}
	for (i = 0; i < ms->bes.n; i++) {
		p = ms->bes.ids[i];
		bpf_map_lookup_elem(s->dp->map_fds[FERRY_M_BACKENDS], &p, &s->bes[p].be);
	}
}

static int apply_service(struct ferry_sync *s, const struct ferry_model_service *ms_in,
			 struct ferry_sync_result *res)
{
	int *fds = s->dp->map_fds;
	struct ferry_service want;
	struct mservice *ms;
	__u32 id, size, p;
	size_t i, j;
	bool fresh = false, svc_changed;
	int err;

	size = ms_in->table_size ? ms_in->table_size : s->table_size;
	id = idmap_get(&s->svc_ids, &ms_in->vip);
	if (!id) {
		id = alloc_id(svc_used, s, &s->svc_hint, FERRY_MAX_SERVICES);
		if (!id) {
			pr_err("%s: no free service id (limit %d services)", ms_in->deployment,
			       FERRY_MAX_SERVICES - 1);
			return -ENOSPC;
		}
		err = idmap_put(&s->svc_ids, &ms_in->vip, id);
		if (err)
			return err;
		s->svcs[id].used = true;
		s->svcs[id].vip = ms_in->vip;
		memset(&s->svcs[id].svc, 0, sizeof(s->svcs[id].svc));
		memset(&s->svcs[id].meta, 0, sizeof(s->svcs[id].meta));
		fresh = true;
	} else {
		refresh_service(s, id);
	}
	ms = &s->svcs[id];
	ms->seen = true;

	/* Predictors and backends first: the table may only name what exists. */
	for (i = 0; i < ms_in->npredictors; i++) {
		const struct ferry_model_predictor *mp_in = &ms_in->predictors[i];
		struct pred_key pk;
		struct mpred *mp;
		__u32 ready = 0, draining = 0;

		pred_key_of(&pk, id, mp_in->name);
		p = idmap_get(&s->pred_ids, &pk);
		if (!p) {
			p = alloc_id(pred_used, s, &s->pred_hint, FERRY_MAX_PREDICTORS);
			if (!p)
				return -ENOSPC;
			err = idmap_put(&s->pred_ids, &pk, p);
			if (err)
				return err;
			err = idvec_add(&s->svcs[id].preds, p);
			if (err)
				return err;
			s->preds[p] = (struct mpred){ .used = true };
			snprintf(s->preds[p].meta.name, sizeof(s->preds[p].meta.name), "%s",
				 mp_in->name);
			s->preds[p].meta.svc_id = id;
		}
		mp = &s->preds[p];
		mp->seen = true;
		mp->meta.weight_configured = mp_in->shadow ? 0 : mp_in->weight_configured;
		mp->meta.flags = (mp->meta.flags & FERRY_PRED_F_OVERRIDE) |
				 (mp_in->shadow ? FERRY_PRED_F_SHADOW : 0);

		for (j = 0; j < mp_in->nbackends; j++) {
			const struct ferry_model_backend *b = &mp_in->backends[j];
			struct ferry_backend be = {
				.port = b->port,
				.family = b->family,
				.state = b->state,
				.predictor_id = p,
				.svc_id = id,
			};
			struct backend_key bk;
			__u32 bid;

			memcpy(be.addr, b->addr, sizeof(be.addr));
			backend_key_of(&bk, &be);
			bid = idmap_get(&s->be_ids, &bk);
			if (!bid) {
				bid = alloc_id(be_used, s, &s->be_hint, FERRY_MAX_BACKENDS);
				if (!bid)
					return -ENOSPC;
				err = idmap_put(&s->be_ids, &bk, bid);
				err = err ?: idvec_add(&s->svcs[id].bes, bid);
				if (err)
					return err;
				s->bes[bid].used = true;
				s->bes[bid].be = (struct ferry_backend){};
				res->backends_added++;
			}
			s->bes[bid].seen = true;
			be.flags = s->bes[bid].be.flags;
			if (memcmp(&s->bes[bid].be, &be, sizeof(be))) {
				if (bpf_map_update_elem(fds[FERRY_M_BACKENDS], &bid, &be, BPF_ANY))
					return -errno;
				s->bes[bid].be = be;
			}
			if (be.state == FERRY_BE_ACTIVE && !(be.flags & FERRY_BE_F_ADMIN_DRAIN))
				ready++;
			else
				draining++;
		}
		mp->meta.backends_ready = ready;
		mp->meta.backends_draining = draining;
	}

	/* Keep the service's predictor list in manifest order (rollback ties use it). */
	for (i = 0; i < ms_in->npredictors; i++) {
		struct pred_key pk;
		__u32 want;

		pred_key_of(&pk, id, ms_in->predictors[i].name);
		want = idmap_get(&s->pred_ids, &pk);
		for (j = i; j < ms->preds.n; j++) {
			if (ms->preds.ids[j] == want) {
				ms->preds.ids[j] = ms->preds.ids[i];
				ms->preds.ids[i] = want;
				break;
			}
		}
	}

	/* Predictors and backends that left the manifest leave the table now. */
	for (i = 0; i < ms->preds.n; i++)
		if (!s->preds[ms->preds.ids[i]].seen)
			s->preds[ms->preds.ids[i]].meta.weight_configured = 0;
	for (i = 0; i < ms->bes.n; i++) {
		struct mbackend *mb = &s->bes[ms->bes.ids[i]];

		if (!mb->seen && mb->be.state == FERRY_BE_ACTIVE)
			mb->be.state = FERRY_BE_DRAINING;
	}

	err = rebuild_table(s, id, size, res);
	if (err) {
		pr_err("%s: cannot build its table: %s", ms_in->deployment, strerror(-err));
		return err;
	}

	want = (struct ferry_service){
		.id = id,
		.flags = ms_in->flags,
		.table_size = size,
		.sample_every = ms_in->sample_every,
	};
	svc_changed = fresh || memcmp(&ms->svc, &want, sizeof(want));
	if (svc_changed) {
		ms->svc = want;
		ms->dirty = true; /* written by commit_services(), after its table */
	}

	for (i = 0; i < ms->preds.n; i++) {
		p = ms->preds.ids[i];
		if (s->preds[p].seen &&
		    bpf_map_update_elem(fds[FERRY_M_PRED_META], &p, &s->preds[p].meta, BPF_ANY))
			return -errno;
	}
	ms->meta.vip = ms_in->vip;
	snprintf(ms->meta.deployment, sizeof(ms->meta.deployment), "%s", ms_in->deployment);
	svc_meta_preds(s, id, &ms->meta);
	return 0;
}

/*
 * After the table swaps: the VIP entries of new or changed services (a VIP
 * never points at a table not yet in place) and every service's metadata.
 */
static int commit_services(struct ferry_sync *s)
{
	int *fds = s->dp->map_fds, err = 0;
	__u32 id;

	for (id = 1; id < FERRY_MAX_SERVICES; id++) {
		struct mservice *ms = &s->svcs[id];

		if (!ms->used)
			continue;
		if (ms->dirty) {
			if (bpf_map_update_elem(fds[FERRY_M_SERVICES], &ms->vip, &ms->svc, BPF_ANY)) {
				err = err ?: -errno;
				continue;
			}
			ms->dirty = false;
		}
		svc_meta_preds(s, id, &ms->meta);
		if (bpf_map_update_elem(fds[FERRY_M_SVC_META], &id, &ms->meta, BPF_ANY))
			err = err ?: -errno;
	}
	return err;
}

int ferry_sync__lock(const char *pin_path)
{
	int fd = open(pin_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

void ferry_sync__unlock(int lock_fd)
{
	if (lock_fd >= 0)
		close(lock_fd);
}

static int ensure_tables_dir(struct ferry_sync *s)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/tables", s->dp->pin_path);
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int ferry_sync__apply(struct ferry_sync *s, const struct ferry_model *model,
		      struct ferry_sync_result *res_out)
{
	struct ferry_sync_result res = {};
	struct ferry_config cfg;
	struct timespec now;
	bool *dead = NULL;
	size_t i;
	__u32 id;
	int err, lock, first_err = 0;

	err = ensure_tables_dir(s);
	if (err)
		return err;
	lock = ferry_sync__lock(s->dp->pin_path);
	if (lock < 0)
		return lock;
	dead = calloc(FERRY_MAX_BACKENDS, sizeof(*dead));
	if (!dead) {
		err = -ENOMEM;
		goto out_unlock;
	}
	for (id = 0; id < FERRY_MAX_SERVICES; id++)
		s->svcs[id].seen = false;
	for (id = 0; id < FERRY_MAX_PREDICTORS; id++)
		s->preds[id].seen = false;
	for (id = 0; id < FERRY_MAX_BACKENDS; id++)
		s->bes[id].seen = false;

	for (i = 0; i < model->nservices; i++) {
		err = apply_service(s, &model->services[i], &res);
		if (err) {
			/* Keep what this service had: mark all of it seen so nothing is deleted. */
			__u32 sid = idmap_get(&s->svc_ids, &model->services[i].vip);

			pr_err("%s: not applied: %s", model->services[i].deployment, strerror(-err));
			res.errors++;
			first_err = first_err ?: err;
			if (sid) {
				struct mservice *ms = &s->svcs[sid];
				size_t k;

				ms->seen = true;
				for (k = 0; k < ms->preds.n; k++)
					s->preds[ms->preds.ids[k]].seen = true;
				for (k = 0; k < ms->bes.n; k++)
					s->bes[ms->bes.ids[k]].seen = true;
			}
		}
	}

	/* Every new table in place, in one batch, before anything points at it. */
	err = flush_swaps(s);
	first_err = first_err ?: err;

	/* Deletions last: services, then their predictors and backends. */
	for (id = 1; id < FERRY_MAX_SERVICES; id++)
		if (s->svcs[id].used && !s->svcs[id].seen)
			delete_service(s, id);
	for (id = 1; id < FERRY_MAX_BACKENDS; id++) {
		struct mbackend *mb = &s->bes[id];

		if (mb->used && (!mb->seen || !s->svcs[mb->be.svc_id].used)) {
			delete_backend(s, id, dead);
			res.backends_removed++;
		}
	}
	for (id = 1; id < FERRY_MAX_PREDICTORS; id++) {
		struct mpred *mp = &s->preds[id];

		if (mp->used && (!mp->seen || !s->svcs[mp->meta.svc_id].used))
			delete_pred(s, id);
	}
	err = flush_swaps(s); /* the deleted services' outer slots */
	first_err = first_err ?: err;
	err = commit_services(s);
	first_err = first_err ?: err;
	if (res.backends_removed)
		res.flows_purged = purge_flows(s, dead);
	err = sync_markers(s);
	first_err = first_err ?: err;

	if (!ferry_dp__config_read(s->dp, &cfg)) {
		clock_gettime(CLOCK_REALTIME, &now);
		cfg.generation++;
		cfg.sync_unix_ns = (__u64)now.tv_sec * 1000000000ULL + now.tv_nsec;
		cfg.ferryd_pid = getpid();
		ferry_dp__config_write(s->dp, &cfg);
	}
	res.services = s->svc_ids.live;
	err = first_err;
out_unlock:
	free(dead);
	ferry_sync__unlock(lock);
	if (res_out)
		*res_out = res;
	return err;
}

int ferry_sync__override(struct ferry_sync *s, const struct ferry_vip *vip,
			 const char *const *names, const __u32 *weights, size_t n, bool clear)
{
	struct ferry_sync_result res = {};
	__u32 id, p;
	size_t i, k;
	int err, lock;

	id = idmap_get(&s->svc_ids, vip);
	if (!id)
		return -ENOENT;
	refresh_service(s, id);
	for (i = 0; i < n && !clear; i++) {
		struct pred_key pk;

		pred_key_of(&pk, id, names[i]);
		if (!idmap_get(&s->pred_ids, &pk))
			return -ENOENT;
	}
	lock = ferry_sync__lock(s->dp->pin_path);
	if (lock < 0)
		return lock;
	for (k = 0; k < s->svcs[id].preds.n; k++) {
		struct ferry_pred_meta *pm;

		p = s->svcs[id].preds.ids[k];
		pm = &s->preds[p].meta;
		if (clear) {
			pm->flags &= ~FERRY_PRED_F_OVERRIDE;
			pm->weight_override = 0;
			continue;
		}
		pm->flags |= FERRY_PRED_F_OVERRIDE;
		pm->weight_override = 0;
		for (i = 0; i < n; i++)
			if (!strcmp(pm->name, names[i]))
				pm->weight_override = weights[i];
	}
	err = rebuild_table(s, id, s->svcs[id].svc.table_size, &res);
	err = err ?: flush_swaps(s);
	for (k = 0; k < s->svcs[id].preds.n && !err; k++) {
		p = s->svcs[id].preds.ids[k];
		if (bpf_map_update_elem(s->dp->map_fds[FERRY_M_PRED_META], &p, &s->preds[p].meta,
					BPF_ANY))
			err = -errno;
	}
	if (!err && bpf_map_update_elem(s->dp->map_fds[FERRY_M_SVC_META], &id, &s->svcs[id].meta,
					BPF_ANY))
		err = -errno;
	ferry_sync__unlock(lock);
	return err;
}

int ferry_sync__set_backend_state(struct ferry_sync *s, __u8 family, const __be32 addr[4],
				  __be16 port, __u8 state, size_t *changed)
{
	struct ferry_sync_result res = {};
	__u32 id, sid;
	bool *touched;
	int err = 0, lock;

	*changed = 0;
	touched = calloc(FERRY_MAX_SERVICES, sizeof(*touched));
	if (!touched)
		return -ENOMEM;
	lock = ferry_sync__lock(s->dp->pin_path);
	if (lock < 0) {
		free(touched);
		return lock;
	}
	for (id = 1; id < FERRY_MAX_BACKENDS; id++) {
		struct ferry_backend *be = &s->bes[id].be;
		__u32 flags;

		if (!s->bes[id].used || be->family != family ||
		    memcmp(be->addr, addr, family == FERRY_AF_INET ? 4 : 16) ||
		    (port && be->port != port))
			continue;
		flags = state == FERRY_BE_DRAINING ? be->flags | FERRY_BE_F_ADMIN_DRAIN :
						     be->flags & ~FERRY_BE_F_ADMIN_DRAIN;
		if (flags == be->flags)
			continue;
		be->flags = flags;
		if (bpf_map_update_elem(s->dp->map_fds[FERRY_M_BACKENDS], &id, be, BPF_ANY)) {
			err = -errno;
			break;
		}
		if (be->svc_id < FERRY_MAX_SERVICES)
			touched[be->svc_id] = true;
		(*changed)++;
	}
	for (sid = 1; sid < FERRY_MAX_SERVICES && !err; sid++) {
		if (!touched[sid] || !s->svcs[sid].used)
			continue;
		refresh_service(s, sid);
		err = rebuild_table(s, sid, s->svcs[sid].svc.table_size, &res);
		err = err ?: flush_swaps(s);
		if (!err)
			bpf_map_update_elem(s->dp->map_fds[FERRY_M_SVC_META], &sid,
					    &s->svcs[sid].meta, BPF_ANY);
	}
	ferry_sync__unlock(lock);
	free(touched);
	return err;
}
