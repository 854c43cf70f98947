// SPDX-License-Identifier: GPL-2.0-only
/*
 * The sync mirror: id maps, id allocation, and reading what the pinned maps
 * hold at start (so ids stay stable across restarts); ferry_sync__new/free.
 */
#include "fnv.h"
#include "kernel/sync_internal.h"

/* ------------------------------------------------------------- id maps */

__u64 hash_bytes(const void *p, size_t n)
{
	__u64 h = ferry_fnv1a(p, n);

	return h ^ (h >> 29);
}

void wqueue_init(struct wqueue *q, __u32 ksize, __u32 vsize)
{
	*q = (struct wqueue){ .ksize = ksize, .vsize = vsize };
}

int wqueue_put(struct wqueue *q, const void *key, const void *val)
{
	if (q->n == q->cap) {
		__u32 cap = q->cap ? q->cap * 2 : 256;
		void *keys = realloc(q->keys, (size_t)cap * q->ksize), *vals;

		if (!keys)
			return -ENOMEM;
		q->keys = keys;
		vals = realloc(q->vals, (size_t)cap * q->vsize);
		if (!vals)
			return -ENOMEM;
		q->vals = vals;
		q->cap = cap;
	}
	memcpy((char *)q->keys + (size_t)q->n * q->ksize, key, q->ksize);
	memcpy((char *)q->vals + (size_t)q->n * q->vsize, val, q->vsize);
	q->n++;
	return 0;
}

__u32 wqueue_flush(struct wqueue *q, int fd, __u64 elem_flags, int *err)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = elem_flags);
	__u32 done = q->n, i;

	*err = 0;
	if (!q->n || !bpf_map_update_batch(fd, q->keys, q->vals, &done, &opts))
		return q->n;
	/* Stopped part-way, or a kernel without batch writes: the rest one by one. */
	if (done > q->n)
		done = 0;
	for (i = done; i < q->n; i++) {
		if (bpf_map_update_elem(fd, (char *)q->keys + (size_t)i * q->ksize,
					(char *)q->vals + (size_t)i * q->vsize, elem_flags)) {
			*err = -errno;
			break;
		}
	}
	return i;
}

void wqueue_free(struct wqueue *q)
{
	free(q->keys);
	free(q->vals);
}

int idmap_init(struct idmap *m, size_t keylen, size_t cap)
{
	m->cap = cap;
	m->keylen = keylen;
	m->used = m->live = 0;
	m->keys = calloc(cap, keylen);
	m->vals = calloc(cap, sizeof(*m->vals));
	m->state = calloc(cap, 1);
	return m->keys && m->vals && m->state ? 0 : -ENOMEM;
}

void idmap_free(struct idmap *m)
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

__u32 idmap_get(const struct idmap *m, const void *key)
{
	bool found;
	size_t i = idmap_find(m, key, &found);

	return found ? m->vals[i] : 0;
}

int idmap_put(struct idmap *m, const void *key, __u32 val)
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

void idmap_del(struct idmap *m, const void *key)
{
	bool found;
	size_t i = idmap_find(m, key, &found);

	if (found) {
		m->state[i] = 2;
		m->live--;
	}
}

int idvec_add(struct idvec *v, __u32 id)
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

void idvec_remove(struct idvec *v, __u32 id)
{
	size_t i;

	for (i = 0; i < v->n; i++) {
		if (v->ids[i] == id) {
			v->ids[i] = v->ids[--v->n];
			return;
		}
	}
}

__u32 alloc_id(bool (*used)(struct ferry_sync *, __u32), struct ferry_sync *s, __u32 *hint,
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

bool svc_used(struct ferry_sync *s, __u32 id)
{
	return s->svcs[id].used;
}

bool pred_used(struct ferry_sync *s, __u32 id)
{
	return s->preds[id].used;
}

bool be_used(struct ferry_sync *s, __u32 id)
{
	return s->bes[id].used;
}

void backend_key_of(struct backend_key *k, const struct ferry_backend *be)
{
	memset(k, 0, sizeof(*k));
	k->svc_id = be->svc_id;
	k->pred_id = be->predictor_id;
	memcpy(k->addr, be->addr, sizeof(k->addr));
	k->port = be->port;
	k->family = be->family;
}

void pred_key_of(struct pred_key *k, __u32 svc_id, const char *name)
{
	memset(k, 0, sizeof(*k));
	k->svc_id = svc_id;
	snprintf(k->name, sizeof(k->name), "%s", name);
}

int table_pin_path(const struct ferry_sync *s, __u32 id, const char *suffix, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/tables/%u%s", s->dp->pin_path, id, suffix);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Reads the inputs digest (cell 1) of a predictor's pinned table: 0 when there is none. */
int read_table_inputs(struct ferry_sync *s, __u32 pred_id)
{
	struct ferry_table_cell cell = {};
	char path[PATH_MAX];
	__u32 key = 1;
	int fd, err;

	s->preds[pred_id].inputs = 0;
	err = table_pin_path(s, pred_id, "", path, sizeof(path));
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	err = bpf_map_lookup_elem(fd, &key, &cell) ? -errno : 0;
	close(fd);
	if (!err)
		s->preds[pred_id].inputs = cell.inputs;
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
		err = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, vals, &n,
					   &opts);
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

/*
 * A service's predictors in its metadata's order (the manifest's, as ferryd
 * wrote it) rather than the hash walk's: a weight write from this mirror
 * lists them as ferryd does and as ferry_sync__open_service() does, and the
 * rounding remainder goes to the same predictor on a tie.
 */
static void order_preds(struct mservice *ms)
{
	__u32 n = ms->meta.npredictors < FERRY_MAX_SVC_PREDICTORS ? ms->meta.npredictors :
								    FERRY_MAX_SVC_PREDICTORS;
	size_t pos = 0, i, j;

	for (i = 0; i < n; i++) {
		for (j = pos; j < ms->preds.n; j++) {
			if (ms->preds.ids[j] == ms->meta.predictor_ids[i]) {
				ms->preds.ids[j] = ms->preds.ids[pos];
				ms->preds.ids[pos++] = ms->meta.predictor_ids[i];
				break;
			}
		}
	}
}

static int load_mirror(struct ferry_sync *s)
{
	int *fds = s->dp->map_fds;
	struct ferry_vip vip, last, *prev = NULL;
	struct ferry_service svc;
	__u32 id, key, *pprev = NULL;
	int err;

	while (!bpf_map_get_next_key(fds[FERRY_M_SERVICES], prev, &vip)) {
		/* A variable of the function: a compound literal here would end with the iteration. */
		last = vip;
		prev = &last;
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
		top_raise(&s->svc_top, svc.id);
		bpf_map_lookup_elem(fds[FERRY_M_SVC_META], &svc.id, &s->svcs[svc.id].meta);
		if (bpf_map_lookup_elem_flags(fds[FERRY_M_SELECT], &svc.id, &s->svcs[svc.id].sel,
					      BPF_F_LOCK))
			memset(&s->svcs[svc.id].sel, 0, sizeof(s->svcs[svc.id].sel));
		err = idmap_put(&s->svc_ids, &vip, svc.id);
		if (err)
			return err;
	}

	/*
	 * Metadata of a service whose VIP entry is missing: an ABI migration
	 * (migrate.c) carries ferry_svc_meta, not ferry_services. The id comes
	 * back from it, so that its predictors, and an SRE's overrides on them,
	 * are found again; the first sync writes the VIP entry and the table.
	 */
	while (!bpf_map_get_next_key(fds[FERRY_M_SVC_META], pprev, &key)) {
		struct ferry_svc_meta meta;

		id = key;
		pprev = &id;
		if (!key || key >= FERRY_MAX_SERVICES || s->svcs[key].used ||
		    bpf_map_lookup_elem(fds[FERRY_M_SVC_META], &key, &meta) ||
		    idmap_get(&s->svc_ids, &meta.vip))
			continue;
		s->svcs[key] = (struct mservice){ .used = true, .vip = meta.vip, .meta = meta };
		top_raise(&s->svc_top, key);
		err = idmap_put(&s->svc_ids, &meta.vip, key);
		if (err)
			return err;
	}
	pprev = NULL;

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
		top_raise(&s->pred_top, key);
		if (read_table_inputs(s, key))
			pr_debug("predictor %u: no table pinned; it will be built", key);
		pred_key_of(&pk, mp->meta.svc_id, mp->meta.name);
		err = idmap_put(&s->pred_ids, &pk, key);
		if (!err && mp->meta.svc_id < s->svc_cap && s->svcs[mp->meta.svc_id].used)
			err = idvec_add(&s->svcs[mp->meta.svc_id].preds, key);
		if (err)
			return err;
	}

	for (id = 1; id < s->svc_top; id++)
		if (s->svcs[id].used)
			order_preds(&s->svcs[id]);

	err = read_backends(s);
	if (err)
		return err;
	for (key = 1; key < FERRY_MAX_BACKENDS; key++) {
		struct mbackend *mb = &s->bes[key];
		struct backend_key bk;

		if (mb->be.state == FERRY_BE_UNUSED)
			continue;
		mb->used = true;
		top_raise(&s->be_top, key);
		backend_key_of(&bk, &mb->be);
		err = idmap_put(&s->be_ids, &bk, key);
		if (!err && mb->be.svc_id < s->svc_cap && s->svcs[mb->be.svc_id].used)
			err = idvec_add(&s->svcs[mb->be.svc_id].bes, key);
		if (err)
			return err;
	}
	return 0;
}

/* One service, its metadata (its opener read it) and predictors: see ferry_sync__open_service(). */
static int load_service(struct ferry_sync *s, __u32 id, const struct ferry_svc_meta *meta)
{
	int *fds = s->dp->map_fds;
	struct mservice *ms = &s->svcs[id];
	__u32 i, n, p;
	int err;

	ms->meta = *meta;
	if (bpf_map_lookup_elem(fds[FERRY_M_SERVICES], &ms->meta.vip, &ms->svc))
		return errno == ENOENT ? -ENOENT : -errno;
	if (ms->svc.id != id || (ms->svc.flags & FERRY_SVC_F_ADDR_MARKER))
		return -ENOENT;
	ms->used = true;
	ms->vip = ms->meta.vip;
	top_raise(&s->svc_top, id);
	if (bpf_map_lookup_elem_flags(fds[FERRY_M_SELECT], &id, &ms->sel, BPF_F_LOCK))
		memset(&ms->sel, 0, sizeof(ms->sel));
	err = idmap_put(&s->svc_ids, &ms->vip, id);
	if (err)
		return err;

	n = ms->meta.npredictors < FERRY_MAX_SVC_PREDICTORS ? ms->meta.npredictors :
							      FERRY_MAX_SVC_PREDICTORS;
	for (i = 0; i < n; i++) {
		struct mpred *mp;
		struct pred_key pk;

		p = ms->meta.predictor_ids[i];
		if (!p || p >= s->pred_cap || s->preds[p].used)
			continue;
		mp = &s->preds[p];
		if (bpf_map_lookup_elem(fds[FERRY_M_PRED_META], &p, &mp->meta) ||
		    mp->meta.svc_id != id) {
			memset(mp, 0, sizeof(*mp));
			continue;
		}
		mp->used = true;
		top_raise(&s->pred_top, p);
		pred_key_of(&pk, id, mp->meta.name);
		err = idmap_put(&s->pred_ids, &pk, p);
		err = err ?: idvec_add(&ms->preds, p);
		if (err)
			return err;
	}
	return 0;
}

/*
 * narrow: one service (ferryctl weights), whose maps start small (they grow)
 * and whose arrays end at its own ids, svc_cap and pred_cap: for a process
 * that lives a millisecond, two 9 MB arrays were an mmap, page faults and an
 * munmap each.
 */
static struct ferry_sync *sync_alloc(struct ferry_dp *dp, const struct ferry_sync_opts *opts,
				     bool narrow, __u32 svc_cap, __u32 pred_cap)
{
	size_t cap = narrow ? 16 : 1024;
	struct ferry_sync *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dp = dp;
	s->names_fd = -1;
	s->table_size = opts && opts->table_size ? opts->table_size : FERRY_TABLE_SIZE_DEFAULT;
	wqueue_init(&s->be_q, sizeof(__u32), sizeof(struct ferry_backend));
	wqueue_init(&s->pm_q, sizeof(__u32), sizeof(struct ferry_pred_meta));
	s->markers_stale = true; /* what the pins hold is read, not known to be current */
	s->svc_cap = svc_cap;
	s->pred_cap = pred_cap;
	s->svcs = calloc(svc_cap, sizeof(*s->svcs));
	s->preds = calloc(pred_cap, sizeof(*s->preds));
	if (!s->svcs || !s->preds) {
		err = -ENOMEM;
		goto err_free;
	}
	/* A narrow mirror reads no backend and retires no counter: what only that needs. */
	if (!narrow) {
		s->ncpus = libbpf_num_possible_cpus();
		if (s->ncpus <= 0) {
			err = -EINVAL;
			goto err_free;
		}
		s->percpu_buf = calloc(s->ncpus, sizeof(*s->percpu_buf));
		s->bes = calloc(FERRY_MAX_BACKENDS, sizeof(*s->bes));
	}
	/* The filters are written by the process that loaded the programs (ferryd): struct filter. */
	if (!narrow && dp->xdp) {
		err = filter_init(&s->vip_filter, dp->map_fds[FERRY_M_VIP_BITS],
				  FERRY_VIP_BITS_WORDS);
		err = err   ?:
			      filter_init(&s->be_filter, dp->map_fds[FERRY_M_BE_BITS],
					  FERRY_BE_BITS_WORDS);
		if (err)
			goto err_free;
	}
	if (!narrow && (!s->percpu_buf || !s->bes)) {
		err = -ENOMEM;
		goto err_free;
	}
	s->narrow = narrow;
	err = idmap_init(&s->svc_ids, sizeof(struct ferry_vip), cap);
	err = err ?: idmap_init(&s->pred_ids, sizeof(struct pred_key), cap);
	err = err ?: idmap_init(&s->be_ids, sizeof(struct backend_key), cap * 4);
	err = err ?: idmap_init(&s->markers, sizeof(struct ferry_vip), cap / 4);
	err = err ?: idmap_init(&s->names_touched, FERRY_NAME_LEN, cap / 4);
	if (err)
		goto err_free;
	return s;

err_free:
	ferry_sync__free(s);
	errno = -err;
	return NULL;
}

struct ferry_sync *ferry_sync__new(struct ferry_dp *dp, const struct ferry_sync_opts *opts)
{
	struct ferry_sync *s =
		sync_alloc(dp, opts, false, FERRY_MAX_SERVICES, FERRY_MAX_PREDICTORS);
	int err;

	if (!s)
		return NULL;
	err = load_mirror(s);
	if (err) {
		pr_err("cannot read the data plane state under %s: %s", dp->pin_path,
		       strerror(-err));
		goto err_free;
	}
	/*
	 * Before any program of this binary is attached: the bits of the
	 * services and backends adopted (a previous release made no filter; a
	 * migration carries the services' metadata and the reply halves, not
	 * the backends), so that their flows keep flowing. Only added: what is
	 * gone is cleared by the first sync, which knows.
	 */
	err = filter_read(&s->vip_filter);
	err = err ?: filter_read(&s->be_filter);
	err = err ?: sync_vip_bits(s, true);
	err = err ?: sync_be_bits(s, true);
	if (dp->created) {
		err = err ?: be_bits_from_replies(s, FERRY_M_RFLOWS);
		err = err ?: be_bits_from_replies(s, FERRY_M_ERFLOWS);
	}
	if (err) {
		pr_err("%s: cannot write the filters %s and %s: %s", dp->pin_path,
		       FERRY_MAP_VIP_BITS, FERRY_MAP_BE_BITS, strerror(-err));
		goto err_free;
	}
	return s;

err_free:
	ferry_sync__free(s);
	errno = -err;
	return NULL;
}

struct ferry_sync *ferry_sync__open_service(struct ferry_dp *dp, __u32 svc_id)
{
	struct ferry_svc_meta meta;
	struct ferry_sync *s;
	__u32 i, pred_cap = 1;
	int err;

	if (!svc_id || svc_id >= FERRY_MAX_SERVICES) {
		errno = ENOENT;
		return NULL;
	}
	if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_SVC_META], &svc_id, &meta))
		return NULL;
	for (i = 0; i < meta.npredictors && i < FERRY_MAX_SVC_PREDICTORS; i++)
		if (meta.predictor_ids[i] < FERRY_MAX_PREDICTORS &&
		    meta.predictor_ids[i] >= pred_cap)
			pred_cap = meta.predictor_ids[i] + 1;
	s = sync_alloc(dp, NULL, true, svc_id + 1, pred_cap);
	if (!s)
		return NULL;
	err = load_service(s, svc_id, &meta);
	if (err) {
		ferry_sync__free(s);
		errno = -err;
		return NULL;
	}
	return s;
}

const struct ferry_svc_meta *ferry_sync__svc_meta(const struct ferry_sync *s, __u32 svc_id)
{
	return svc_id < s->svc_cap && s->svcs[svc_id].used ? &s->svcs[svc_id].meta : NULL;
}

const struct ferry_pred_meta *ferry_sync__pred_meta(const struct ferry_sync *s, __u32 pred_id)
{
	return pred_id < s->pred_cap && s->preds[pred_id].used ? &s->preds[pred_id].meta : NULL;
}

void ferry_sync__free(struct ferry_sync *s)
{
	__u32 i;

	if (!s)
		return;
	/* No list above svc_top: walking all 16,384 would fault in megabytes of zeroes. */
	if (s->svcs)
		for (i = 0; i < s->svc_top; i++) {
			free(s->svcs[i].preds.ids);
			free(s->svcs[i].bes.ids);
		}
	free(s->svcs);
	free(s->preds);
	free(s->bes);
	free(s->percpu_buf);
	filter_free(&s->vip_filter);
	filter_free(&s->be_filter);
	for (i = 0; i < s->swaps.n; i++) /* a sync that stopped before its flush */
		free(s->swaps.v[i].members);
	free(s->swaps.v);
	free(s->drops.ids);
	wqueue_free(&s->be_q);
	wqueue_free(&s->pm_q);
	idmap_free(&s->svc_ids);
	idmap_free(&s->pred_ids);
	idmap_free(&s->be_ids);
	idmap_free(&s->markers);
	idmap_free(&s->names_touched);
	free(s->names_touched_keys);
	if (s->names_fd >= 0)
		close(s->names_fd);
	free(s);
}

int ferry_sync__for_each_svc(const struct ferry_sync *s,
			     int (*fn)(const struct ferry_svc_meta *meta, void *ctx), void *ctx)
{
	int err;

	for (__u32 id = 1; id < s->svc_top; id++) {
		if (!s->svcs[id].used)
			continue;
		err = fn(&s->svcs[id].meta, ctx);
		if (err)
			return err;
	}
	return 0;
}

size_t ferry_sync__nservices(const struct ferry_sync *s)
{
	return s->svc_ids.live;
}

size_t ferry_sync__no_ready(const struct ferry_sync *s, __u32 *ids, size_t max)
{
	size_t n = 0;

	for (__u32 id = 1; id < s->svc_top; id++) {
		const struct mservice *ms = &s->svcs[id];

		for (size_t k = 0; ms->used && k < ms->preds.n; k++) {
			const struct ferry_pred_meta *pm = &s->preds[ms->preds.ids[k]].meta;

			if (!pm->weight_configured || pm->backends_ready)
				continue;
			if (n < max)
				ids[n] = ms->preds.ids[k];
			n++;
		}
	}
	return n;
}
