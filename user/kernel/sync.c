// SPDX-License-Identifier: GPL-2.0-only
/*
 * Desired state -> pinned maps, writing only the difference. See sync.h for
 * the write order. Ids (service, predictor, backend) are allocated in
 * sync_mirror.c and recovered from the maps at start, so they stay stable
 * across restarts. This file applies a model (and ferryctl's overrides).
 */
#include "kernel/sync_internal.h"

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
	if (mb->be.svc_id < s->svc_cap)
		idvec_remove(&s->svcs[mb->be.svc_id].bes, id);
	memset(mb, 0, sizeof(*mb));
	dead[id] = true;
}

static void delete_pred(struct ferry_sync *s, __u32 id)
{
	struct mpred *mp = &s->preds[id];
	char path[PATH_MAX];
	struct pred_key pk;

	/* Its service's predictor stage no longer names it: the table can go. */
	idvec_add(&s->drops, id);
	if (!table_pin_path(s, id, "", path, sizeof(path)))
		unlink(path);
	bpf_map_delete_elem(s->dp->map_fds[FERRY_M_PRED_META], &id);
	hist_delete(s, id, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST);
	hist_delete(s, id, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT);
	pred_key_of(&pk, mp->meta.svc_id, mp->meta.name);
	idmap_del(&s->pred_ids, &pk);
	if (mp->meta.svc_id < s->svc_cap) {
		idvec_remove(&s->svcs[mp->meta.svc_id].preds, id);
		s->svcs[mp->meta.svc_id].meta_dirty = true;
	}
	memset(mp, 0, sizeof(*mp));
}

static void delete_service(struct ferry_sync *s, __u32 id)
{
	struct mservice *ms = &s->svcs[id];
	struct ferry_select none = {};

	/* The VIP first: no new packet can reach the selection we then empty. */
	bpf_map_delete_elem(s->dp->map_fds[FERRY_M_SERVICES], &ms->vip);
	bpf_map_update_elem(s->dp->map_fds[FERRY_M_SELECT], &id, &none, BPF_F_LOCK);
	memset(&ms->sel, 0, sizeof(ms->sel));
	ms->sel_dirty = false;
	bpf_map_delete_elem(s->dp->map_fds[FERRY_M_SVC_META], &id);
	names_touch(s, ms->meta.deployment);
	idmap_del(&s->svc_ids, &ms->vip);
	s->markers_stale = true;
	ms->used = false;
	ms->seen = false;
	ms->applied = 0;
	ms->meta_dirty = false;
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
	if (bpf_map_lookup_elem_flags(s->dp->map_fds[FERRY_M_SELECT], &id, &ms->sel, BPF_F_LOCK))
		memset(&ms->sel, 0, sizeof(ms->sel));
	for (i = 0; i < ms->preds.n; i++) {
		p = ms->preds.ids[i];
		bpf_map_lookup_elem(s->dp->map_fds[FERRY_M_PRED_META], &p, &s->preds[p].meta);
		read_table_inputs(s, p);
	}
	for (i = 0; i < ms->bes.n; i++) {
		p = ms->bes.ids[i];
		bpf_map_lookup_elem(s->dp->map_fds[FERRY_M_BACKENDS], &p, &s->bes[p].be);
	}
}

/*
 * Long on purpose: the per-service diff in the write order sync.h documents
 * (predictors, backends, table, VIP); in one place that order stays visible.
 */
static int apply_service(struct ferry_sync *s, const struct ferry_model_service *ms_in,
			 struct ferry_sync_result *res)
{
	struct ferry_service want;
	struct mservice *ms;
	__u32 id, floor, p;
	size_t i, j;
	bool fresh = false, svc_changed;
	int err;

	floor = ms_in->table_size ? ms_in->table_size : s->table_size;
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
		top_raise(&s->svc_top, id);
		s->markers_stale = true;
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
			top_raise(&s->pred_top, p);
			snprintf(s->preds[p].meta.name, sizeof(s->preds[p].meta.name), "%s",
				 mp_in->name);
			s->preds[p].meta.svc_id = id;
		}
		mp = &s->preds[p];
		mp->seen = true;
		mp->meta.weight_configured = mp_in->shadow ? 0 : mp_in->weight_configured;
		/* The operator's override and canary analysis' weight are theirs to clear. */
		mp->meta.flags = (mp->meta.flags & (FERRY_PRED_F_OVERRIDE | FERRY_PRED_F_CANARY)) |
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
				top_raise(&s->be_top, bid);
				s->bes[bid].be = (struct ferry_backend){};
				res->backends_added++;
			}
			s->bes[bid].seen = true;
			be.flags = s->bes[bid].be.flags;
			if (memcmp(&s->bes[bid].be, &be, sizeof(be))) {
				err = wqueue_put(&s->be_q, &bid, &be);
				if (err)
					return err;
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

	err = sync_selection(s, id, floor, true, res);
	if (err) {
		pr_err("%s: cannot build its tables: %s", ms_in->deployment, strerror(-err));
		return err;
	}

	want = (struct ferry_service){
		.id = id,
		.flags = ms_in->flags,
		.table_size = floor,
		.sample_every = ms_in->sample_every,
		.hash_mode = ms_in->flags & FERRY_SVC_F_HASH_SRC_ADDR ? FERRY_HASH_CLIENT_ADDR :
									FERRY_HASH_TUPLE,
	};
	svc_changed = fresh || memcmp(&ms->svc, &want, sizeof(want));
	if (svc_changed) {
		ms->svc = want;
		ms->dirty = true; /* written by commit_services(), after its table */
	}

	for (i = 0; i < ms->preds.n; i++) {
		p = ms->preds.ids[i];
		if (s->preds[p].seen && (err = wqueue_put(&s->pm_q, &p, &s->preds[p].meta)))
			return err;
	}
	ms->meta.vip = ms_in->vip;
	if (strncmp(ms->meta.deployment, ms_in->deployment, sizeof(ms->meta.deployment)))
		names_touch(s, ms->meta.deployment); /* the VIP moved: its old name loses it */
	snprintf(ms->meta.deployment, sizeof(ms->meta.deployment), "%s", ms_in->deployment);
	svc_meta_preds(s, id, &ms->meta);
	ms->meta_dirty = true;
	return 0;
}

/* Eight bytes a step: this runs over every service of the model at every sync. */
static __u64 fp_mix(__u64 h, const void *p, size_t n)
{
	const unsigned char *b = p;
	__u64 w;

	for (; n >= 8; n -= 8, b += 8) {
		memcpy(&w, b, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

/* Everything apply_service() reads of a model service, as one number (never 0). */
static __u64 service_fingerprint(const struct ferry_model_service *m, __u32 floor)
{
	__u64 h = 0xcbf29ce484222325ULL;

	h = fp_mix(h, &m->vip, sizeof(m->vip));
	h = fp_mix(h, m->deployment, strnlen(m->deployment, sizeof(m->deployment)) + 1);
	h = fp_mix(h, &m->flags, sizeof(m->flags));
	h = fp_mix(h, &m->sample_every, sizeof(m->sample_every));
	h = fp_mix(h, &floor, sizeof(floor));
	h = fp_mix(h, &m->npredictors, sizeof(m->npredictors));
	for (size_t p = 0; p < m->npredictors; p++) {
		const struct ferry_model_predictor *mp = &m->predictors[p];

		h = fp_mix(h, mp->name, strnlen(mp->name, sizeof(mp->name)) + 1);
		h = fp_mix(h, &mp->weight_configured, sizeof(mp->weight_configured));
		h = fp_mix(h, &mp->shadow, sizeof(mp->shadow));
		h = fp_mix(h, &mp->nbackends, sizeof(mp->nbackends));
		h = fp_mix(h, mp->backends, mp->nbackends * sizeof(*mp->backends));
	}
	return h ? h : 1;
}

/*
 * A service whose model is what this sync applied last time: the kernel
 * holds it already (another writer's changes, ferryctl's, are the kernel's
 * too), so it is only marked kept, which keeps its predictors and backends
 * (kept_by()). The very build applied last is known by its build_gen; any
 * other model service by its fingerprint (*fp: computed then, else 0). An
 * edit at 1,000 deployments did both for every service: a cold walk of the
 * whole model and mirror, 0.5 ms of each edit. Returns true when skipped.
 */
static bool keep_service(struct ferry_sync *s, const struct ferry_model_service *m, __u32 floor,
			 __u64 *fp)
{
	__u32 id = idmap_get(&s->svc_ids, &m->vip);
	struct mservice *ms = id ? &s->svcs[id] : NULL;

	*fp = 0;
	if (!ms || !ms->applied)
		return false;
	if (!m->build_gen || ms->applied_gen != m->build_gen || ms->applied_floor != floor) {
		*fp = service_fingerprint(m, floor);
		if (ms->applied != *fp)
			return false;
		ms->applied_gen = m->build_gen;
		ms->applied_floor = floor;
	}
	ms->seen = ms->kept = true;
	return true;
}

/* The predictor or backend of service svc_id stays: the sync kept svc_id whole. */
static bool kept_by(const struct ferry_sync *s, __u32 svc_id)
{
	return svc_id < s->svc_cap && s->svcs[svc_id].kept;
}

/*
 * After the table swaps: the predictor stages and then the VIP entries of new
 * or changed services (a VIP never points at a selection, nor a selection at
 * a predictor, whose table is not yet in place). Each is one batch; a service
 * whose predictor stage did not reach the kernel gets no VIP entry and is
 * written again by the next sync.
 */
static int commit_services(struct ferry_sync *s)
{
	int *fds = s->dp->map_fds, err, e;
	struct idvec svc_ids = {};
	struct wqueue sel_q, svc_q;
	__u32 id, i, done;

	wqueue_init(&sel_q, sizeof(__u32), sizeof(struct ferry_select));
	wqueue_init(&svc_q, sizeof(struct ferry_vip), sizeof(struct ferry_service));
	for (id = 1, err = 0; id < s->svc_top && !err; id++)
		if (s->svcs[id].used && s->svcs[id].sel_dirty && !s->svcs[id].held)
			err = wqueue_put(&sel_q, &id, &s->svcs[id].sel);
	done = err ? 0 : wqueue_flush(&sel_q, fds[FERRY_M_SELECT], BPF_F_LOCK, &err);
	for (i = 0; i < sel_q.n; i++) {
		struct mservice *ms = &s->svcs[((__u32 *)sel_q.keys)[i]];

		if (i < done) {
			ms->sel_dirty = false;
			continue;
		}
		ms->applied = 0; /* not kept as it is: the next sync writes it again */
	}
	for (id = 1; id < s->svc_top; id++) {
		struct mservice *ms = &s->svcs[id];

		if (!ms->used || !ms->dirty || ms->sel_dirty || ms->held)
			continue;
		e = idvec_add(&svc_ids, id);
		if (!e && (e = wqueue_put(&svc_q, &ms->vip, &ms->svc)))
			svc_ids.n--;
		if (e) {
			err = err ?: e;
			ms->applied = 0;
			break;
		}
	}
	done = wqueue_flush(&svc_q, fds[FERRY_M_SERVICES], BPF_ANY, &e);
	err = err ?: e;
	for (i = 0; i < svc_ids.n; i++) {
		struct mservice *ms = &s->svcs[svc_ids.ids[i]];

		if (i < done)
			ms->dirty = false;
		else
			ms->applied = 0;
	}
	free(svc_ids.ids);
	wqueue_free(&sel_q);
	wqueue_free(&svc_q);
	return err;
}

/* Every service's metadata, after deletions (its predictor list is final): one batch. */
static int commit_meta(struct ferry_sync *s)
{
	struct wqueue q;
	int err = 0;
	__u32 id, i, done;

	wqueue_init(&q, sizeof(__u32), sizeof(struct ferry_svc_meta));
	for (id = 1; id < s->svc_top && !err; id++) {
		struct mservice *ms = &s->svcs[id];

		/* Only what this sync touched: a kept service's meta may be ferryctl's newer one. */
		if (!ms->used || !ms->meta_dirty)
			continue;
		svc_meta_preds(s, id, &ms->meta);
		err = wqueue_put(&q, &id, &ms->meta);
	}
	done = err ? 0 : wqueue_flush(&q, s->dp->map_fds[FERRY_M_SVC_META], BPF_ANY, &err);
	for (i = 0; i < done; i++) {
		struct mservice *ms = &s->svcs[((__u32 *)q.keys)[i]];

		ms->meta_dirty = false;
		names_touch(s, ms->meta.deployment);
	}
	wqueue_free(&q);
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
	bool names_ok;

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
	s->applying = true;
	for (id = 0; id < s->svc_top; id++)
		s->svcs[id].seen = s->svcs[id].held = s->svcs[id].kept = false;
	for (id = 0; id < s->pred_top; id++)
		s->preds[id].seen = false;
	for (id = 0; id < s->be_top; id++)
		s->bes[id].seen = false;

	for (i = 0; i < model->nservices; i++) {
		const struct ferry_model_service *m = &model->services[i];
		__u32 sid, floor = m->table_size ? m->table_size : s->table_size;
		__u64 fp;

		if (keep_service(s, m, floor, &fp))
			continue;
		err = apply_service(s, m, &res);
		sid = idmap_get(&s->svc_ids, &m->vip);
		if (sid) {
			s->svcs[sid].applied = err ? 0 : fp ?: service_fingerprint(m, floor);
			s->svcs[sid].applied_gen = m->build_gen;
			s->svcs[sid].applied_floor = floor;
		}
		if (err) {
			/* Keep what this service had: mark all of it seen so nothing is deleted. */
			__u32 sid = idmap_get(&s->svc_ids, &model->services[i].vip);

			pr_err("%s: not applied: %s", model->services[i].deployment,
			       strerror(-err));
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

	/*
	 * A backend another service now shares loses FERRY_BE_F_SOLE first.
	 * Sharing changes only with the set of backends: a sync that adds or
	 * removes none (a weight edit) sorts nothing.
	 */
	if (res.backends_added || !s->sole_known)
		sync_sole(s, false);
	/* Every new table in place, in one batch, before anything points at it. */
	err = flush_swaps(s);
	first_err = first_err ?: err;
	/* The filter lets a new service's packets through before its entry exists. */
	err = sync_vip_bits(s, true);
	first_err = first_err ?: err;
	err = commit_services(s);
	first_err = first_err ?: err;

	/* Deletions last: services, then their predictors and backends. */
	for (id = 1; id < s->svc_top; id++)
		if (s->svcs[id].used && !s->svcs[id].seen)
			delete_service(s, id);
	for (id = 1; id < s->be_top; id++) {
		struct mbackend *mb = &s->bes[id];

		if (mb->used &&
		    (!(mb->seen || kept_by(s, mb->be.svc_id)) || !s->svcs[mb->be.svc_id].used)) {
			delete_backend(s, id, dead);
			res.backends_removed++;
		}
	}
	for (id = 1; id < s->pred_top; id++) {
		struct mpred *mp = &s->preds[id];

		if (mp->used &&
		    (!(mp->seen || kept_by(s, mp->meta.svc_id)) || !s->svcs[mp->meta.svc_id].used))
			delete_pred(s, id);
	}
	err = flush_swaps(s); /* the deleted predictors' outer slots */
	first_err = first_err ?: err;
	err = commit_meta(s);
	first_err = first_err ?: err;
	names_ok = !(err = sync_names(s));
	if (err)
		pr_warn("%s/%s: not updated: %s; unpinned until the next sync (ferryctl reads "
			"ferry_svc_meta meanwhile)",
			s->dp->pin_path, FERRY_MAP_SVC_NAMES, strerror(-err));
	if (res.backends_removed)
		res.flows_purged = purge_flows(s, dead);
	/* And a backend no other service shares (any more) gets it, once their flows are gone. */
	if (res.backends_added || res.backends_removed || !s->sole_known) {
		sync_sole(s, true);
		err = flush_swaps(s);
		s->sole_known = !err;
		first_err = first_err ?: err;
	}
	/* Markers follow the set of VIPs: only a service added or deleted moves them. */
	if (s->markers_stale) {
		err = sync_markers(s);
		if (!err)
			s->markers_stale = false;
		first_err = first_err ?: err;
	}
	/* Last: deleted services' and backends' flows are gone, their packets may pass untouched. */
	err = sync_vip_bits(s, false);
	first_err = first_err ?: err;
	err = sync_be_bits(s, false);
	first_err = first_err ?: err;

	if (!ferry_dp__config_read(s->dp, &cfg)) {
		clock_gettime(CLOCK_REALTIME, &now);
		cfg.generation++;
		cfg.sync_unix_ns = (__u64)now.tv_sec * 1000000000ULL + now.tv_nsec;
		cfg.ferryd_pid = getpid();
		/* Before the generation moves: a reader in between reads ferry_svc_meta. */
		if (names_ok)
			names_mark(s, cfg.generation);
		ferry_dp__config_write(s->dp, &cfg);
	}
	res.services = s->svc_ids.live;
	err = first_err;
out_unlock:
	s->applying = false;
	free(dead);
	ferry_sync__unlock(lock);
	if (res_out)
		*res_out = res;
	return err;
}

/*
 * After a weight-only change (an SRE's override, canary analysis): no table is built, one
 * locked write of the predictor stage switches the split; then the metadata ferryctl reads.
 * The caller holds the sync lock.
 */
static int write_weights(struct ferry_sync *s, __u32 id)
{
	struct ferry_sync_result res = {};
	size_t k;
	__u32 p;
	int err;

	err = sync_selection(s, id, s->svcs[id].svc.table_size, false, &res);
	err = err ?: write_select(s, id);
	if (!err)
		s->svcs[id].meta.table_generation++;
	for (k = 0; k < s->svcs[id].preds.n && !err; k++) {
		p = s->svcs[id].preds.ids[k];
		if (bpf_map_update_elem(s->dp->map_fds[FERRY_M_PRED_META], &p, &s->preds[p].meta,
					BPF_ANY))
			err = -errno;
	}
	if (!err &&
	    bpf_map_update_elem(s->dp->map_fds[FERRY_M_SVC_META], &id, &s->svcs[id].meta, BPF_ANY))
		err = -errno;
	return err;
}

int ferry_sync__override(struct ferry_sync *s, const struct ferry_vip *vip,
			 const char *const *names, const __u32 *weights, size_t n, bool clear)
{
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
	err = write_weights(s, id);
	ferry_sync__unlock(lock);
	return err;
}

int ferry_sync__canary(struct ferry_sync *s, const struct ferry_vip *vip, const char *name,
		       bool set, __u32 weight)
{
	__u32 id, p;
	size_t k;
	int err, lock;

	id = idmap_get(&s->svc_ids, vip);
	if (!id)
		return -ENOENT;
	/*
	 * Called for every service after every manifest sync. Only this writer sets
	 * FERRY_PRED_F_CANARY, so the mirror knows where it is: a service without
	 * it has nothing to clear, and is not read back (1,000 lookups per edit).
	 */
	if (!set) {
		for (k = 0; k < s->svcs[id].preds.n; k++)
			if (s->preds[s->svcs[id].preds.ids[k]].meta.flags & FERRY_PRED_F_CANARY)
				break;
		if (k == s->svcs[id].preds.n)
			return 0;
	}
	refresh_service(s, id);
	/* Nothing to change is nothing to write. */
	for (k = 0; k < s->svcs[id].preds.n; k++) {
		const struct ferry_pred_meta *pm = &s->preds[s->svcs[id].preds.ids[k]].meta;
		bool want = set && name && !strcmp(pm->name, name);

		if (want != !!(pm->flags & FERRY_PRED_F_CANARY) ||
		    (want && pm->weight_canary != weight))
			break;
	}
	if (k == s->svcs[id].preds.n)
		return 0;
	lock = ferry_sync__lock(s->dp->pin_path);
	if (lock < 0)
		return lock;
	for (k = 0; k < s->svcs[id].preds.n; k++) {
		struct ferry_pred_meta *pm;

		p = s->svcs[id].preds.ids[k];
		pm = &s->preds[p].meta;
		if (set && name && !strcmp(pm->name, name)) {
			pm->flags |= FERRY_PRED_F_CANARY;
			pm->weight_canary = weight;
		} else {
			pm->flags &= ~FERRY_PRED_F_CANARY;
			pm->weight_canary = 0;
		}
	}
	err = write_weights(s, id);
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
	for (id = 1; id < s->be_top; id++) {
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
		if (be->svc_id < s->svc_cap)
			touched[be->svc_id] = true;
		(*changed)++;
	}
	for (sid = 1; sid < FERRY_MAX_SERVICES && !err; sid++) {
		if (!touched[sid] || !s->svcs[sid].used)
			continue;
		refresh_service(s, sid);
		err = sync_selection(s, sid, s->svcs[sid].svc.table_size, true, &res);
		err = err ?: flush_swaps(s);
		err = err ?: write_select(s, sid);
		for (size_t k = 0; k < s->svcs[sid].preds.n && !err; k++) {
			__u32 p = s->svcs[sid].preds.ids[k];

			/* weight_effective and backends_ready follow the drain */
			if (bpf_map_update_elem(s->dp->map_fds[FERRY_M_PRED_META], &p,
						&s->preds[p].meta, BPF_ANY))
				err = -errno;
		}
		if (!err)
			bpf_map_update_elem(s->dp->map_fds[FERRY_M_SVC_META], &sid,
					    &s->svcs[sid].meta, BPF_ANY);
	}
	ferry_sync__unlock(lock);
	free(touched);
	return err;
}
