// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writing the maps: table swaps (batched, one RCU wait per sync), retired
 * stats, address markers, the filters and table rebuilds.
 */
#include <pthread.h>

#include "kernel/sync_internal.h"
#include "weights.h"

/* The filters (struct filter): words in force, written only where they change. */
int filter_init(struct filter *f, int fd, __u32 nwords)
{
	f->fd = fd;
	f->nwords = nwords;
	f->words = calloc(nwords, sizeof(*f->words));
	f->want = calloc(nwords, sizeof(*f->want));
	return f->words && f->want ? 0 : -ENOMEM;
}

void filter_free(struct filter *f)
{
	free(f->words);
	free(f->want);
	f->words = f->want = NULL;
}

/* The words as the kernel holds them, which filter_write() compares with. */
int filter_read(struct filter *f)
{
	for (__u32 i = 0; f->words && i < f->nwords; i++)
		if (bpf_map_lookup_elem(f->fd, &i, &f->words[i]))
			return -errno;
	return 0;
}

static void filter_set(struct filter *f, __u32 bit)
{
	f->want[bit / 64] |= 1ULL << (bit % 64);
}

/* Starts f->want from the words in force (keep) or from none. */
static void filter_start(struct filter *f, bool keep)
{
	if (keep)
		memcpy(f->want, f->words, f->nwords * sizeof(*f->want));
	else
		memset(f->want, 0, f->nwords * sizeof(*f->want));
}

/*
 * Writes the words of f->want that differ from those in force. One 64-bit
 * word is one copy; a write either only adds bits (keep) or only clears
 * them, so a reader of a half-copied word sees a superset of what it needs.
 */
static int filter_write(struct filter *f)
{
	for (__u32 i = 0; i < f->nwords; i++) {
		if (f->want[i] == f->words[i])
			continue;
		if (bpf_map_update_elem(f->fd, &i, &f->want[i], BPF_ANY))
			return -errno;
		f->words[i] = f->want[i];
	}
	return 0;
}

/* ------------------------------------------------------------- writing */

/* Every protocol's histogram of (id, kind, metric): one per enum ferry_l7_proto value. */
void hist_delete(struct ferry_sync *s, __u32 id, __u8 kind, __u8 metric)
{
	struct ferry_hist_key key = { .id = id, .kind = kind, .metric = metric };

	for (key.protocol = 0; key.protocol < FERRY_L7_PROTOS; key.protocol++)
		bpf_map_delete_elem(s->dp->map_fds[FERRY_M_LATENCY], &key);
}

/*
 * The queued backend and predictor-metadata writes. What did not reach the
 * kernel is forgotten by the mirror and its service is not kept as applied,
 * so the next sync writes it again.
 */
static int flush_entries(struct ferry_sync *s)
{
	int err_be, err_pm;
	__u32 i, done;

	/* The queued backends' bits first: a table may name them as soon as they are written. */
	if (s->be_filter.words && s->be_q.n) { /* nothing queued: no 128 KB copy and compare */
		filter_start(&s->be_filter, true);
		for (i = 0; i < s->be_q.n; i++) {
			const struct ferry_backend *be = &s->bes[((__u32 *)s->be_q.keys)[i]].be;

			filter_set(&s->be_filter, ferry_be_bit(be->addr, be->port));
		}
		err_be = filter_write(&s->be_filter);
		if (err_be)
			return err_be;
	}
	done = wqueue_flush(&s->be_q, s->dp->map_fds[FERRY_M_BACKENDS], BPF_ANY, &err_be);
	for (i = done; i < s->be_q.n; i++) {
		struct mbackend *mb = &s->bes[((__u32 *)s->be_q.keys)[i]];

		if (mb->be.svc_id < s->svc_cap) {
			s->svcs[mb->be.svc_id].applied = 0;
			s->svcs[mb->be.svc_id].held = true;
		}
		memset(&mb->be, 0, sizeof(mb->be));
	}
	s->be_q.n = 0;
	done = wqueue_flush(&s->pm_q, s->dp->map_fds[FERRY_M_PRED_META], BPF_ANY, &err_pm);
	for (i = done; i < s->pm_q.n; i++) {
		const struct mpred *mp = &s->preds[((__u32 *)s->pm_q.keys)[i]];

		if (mp->meta.svc_id < s->svc_cap) {
			s->svcs[mp->meta.svc_id].applied = 0;
			s->svcs[mp->meta.svc_id].held = true;
		}
	}
	s->pm_q.n = 0;
	return err_be ?: err_pm;
}

/* Makes one queued table: builds it, creates, fills and pins its inner map. */
static void make_table(const struct ferry_sync *s, struct table_swap *t)
{
	__u32 ncells = FERRY_TABLE_CELLS(t->size, t->nmembers);
	char name[16], tmp[PATH_MAX], final[PATH_MAX];
	struct ferry_table_cell *cells;
	int err;

	cells = malloc(ncells * sizeof(*cells));
	err = cells ? ferry_table__build(t->members, t->nmembers, t->size, cells) : -ENOMEM;
	free(t->members);
	t->members = NULL;
	snprintf(name, sizeof(name), "ferry_tbl_%u", t->pred_id);
	t->fd = err ?: ferry_table__create(cells, ncells, name);
	free(cells);
	if (t->fd < 0) {
		t->err = t->fd;
		t->fd = -1;
		return;
	}
	t->err = table_pin_path(s, t->pred_id, "", final, sizeof(final));
	t->err = t->err ?: table_pin_path(s, t->pred_id, "-new", tmp, sizeof(tmp));
	if (t->err)
		goto out_close;
	/*
	 * A predictor without a table in force is pinned under its final name at
	 * once (a first sync: 20,000 renames fewer at 10,000 deployments); one
	 * with a table, or a leftover pin, beside it and renamed after the swap. A
	 * leftover "-new" (a sync that died before its rename) is rare: unlinked
	 * only then.
	 */
	t->direct = t->may_direct && !bpf_obj_pin(t->fd, final);
	if (t->direct || !bpf_obj_pin(t->fd, tmp) ||
	    (errno == EEXIST && !unlink(tmp) && !bpf_obj_pin(t->fd, tmp)))
		return;
	t->err = -errno;
out_close:
	close(t->fd);
	t->fd = -1;
}

struct table_maker {
	const struct ferry_sync *s;
	size_t next; /* the next table to make, shared by both threads */
};

static void *make_tables_worker(void *arg)
{
	struct table_maker *m = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&m->next, 1, __ATOMIC_RELAXED)) < m->s->swaps.n)
		make_table(m->s, &m->s->swaps.v[i]);
	return NULL;
}

/* Fewer tables than this: a second thread is not worth starting. */
#define MAKE_TABLES_THREAD_MIN 32

/* Every queued table, on this thread and a second one (they share only the counter). */
static void make_tables(struct ferry_sync *s)
{
	struct table_maker m = { .s = s };
	pthread_t worker;
	bool started;

	started = s->swaps.n >= MAKE_TABLES_THREAD_MIN &&
		  !pthread_create(&worker, NULL, make_tables_worker, &m);
	make_tables_worker(&m);
	if (started)
		pthread_join(worker, NULL);
}

/* Orders backend ids by endpoint (family, address, port), then service. */
static int endpoint_cmp(const void *a, const void *b, void *arg)
{
	const struct mbackend *bes = arg;
	const struct ferry_backend *x = &bes[*(const __u32 *)a].be, *y = &bes[*(const __u32 *)b].be;
	int c;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	c = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (c)
		return c;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return x->svc_id < y->svc_id ? -1 : x->svc_id > y->svc_id;
}

/*
 * FERRY_BE_F_SOLE (maps/ferry_maps.h) on every backend whose address and
 * port no other service's backend has, counting every backend the kernel
 * still holds (draining ones too: their flows hold reply keys). Queued in
 * be_q for the next flush. set false only takes the flag away: the pass
 * before anything is written, so that a backend becoming shared loses it
 * before the new service's VIP entry exists; set true also gives it, after
 * the deletions and their flows' purge (a flag given late costs a lookup,
 * one given early a connection).
 */
/* Queues backend id's entry; written at once if it cannot be queued (a flag taken away). */
static void sole_write(struct ferry_sync *s, __u32 id)
{
	if (wqueue_put(&s->be_q, &id, &s->bes[id].be) &&
	    bpf_map_update_elem(s->dp->map_fds[FERRY_M_BACKENDS], &id, &s->bes[id].be, BPF_ANY))
		pr_warn("%s: backend %u: %s", FERRY_MAP_BACKENDS, id, strerror(errno));
}

void sync_sole(struct ferry_sync *s, bool set)
{
	__u32 *ids, n = 0, i, j, k, id;

	ids = malloc(sizeof(*ids) * (s->be_top ? s->be_top : 1));
	if (!ids) {
		/* Sharing unknown: every flag taken away, none given. */
		for (id = 1; id < s->be_top; id++) {
			struct ferry_backend *be = &s->bes[id].be;

			if (s->bes[id].used && (be->flags & FERRY_BE_F_SOLE)) {
				be->flags &= ~FERRY_BE_F_SOLE;
				sole_write(s, id);
			}
		}
		return;
	}
	for (id = 1; id < s->be_top; id++)
		if (s->bes[id].used)
			ids[n++] = id;
	qsort_r(ids, n, sizeof(*ids), endpoint_cmp, s->bes);
	for (i = 0; i < n; i = j) {
		const struct ferry_backend *first = &s->bes[ids[i]].be;
		bool sole = true;

		for (j = i + 1; j < n; j++) {
			const struct ferry_backend *be = &s->bes[ids[j]].be;

			if (be->family != first->family || be->port != first->port ||
			    memcmp(be->addr, first->addr, sizeof(be->addr)))
				break;
			if (be->svc_id != first->svc_id)
				sole = false;
		}
		for (k = i; k < j; k++) {
			struct ferry_backend *be = &s->bes[ids[k]].be;
			__u32 want = sole ? be->flags | FERRY_BE_F_SOLE :
					    be->flags & ~FERRY_BE_F_SOLE;

			if (want == be->flags || (!set && sole))
				continue;
			be->flags = want;
			sole_write(s, ids[k]);
		}
	}
	free(ids);
}

/*
 * Writes the queued backends first (a table may only name what exists), makes
 * the queued tables, then writes them into ferry_tables: each slot changes
 * atomically, all in one batch. A kernel without batch ops on map-in-map
 * arrays gets them one by one. Then renames each new pin over the old one. A
 * table not made or not swapped in holds its service (nothing points at it)
 * and is built again by the next sync.
 */
int flush_swaps(struct ferry_sync *s)
{
	LIBBPF_OPTS(bpf_map_batch_opts, batch);
	int outer = s->dp->map_fds[FERRY_M_TABLES], err;
	__u32 *ids = NULL, done = 0, n = 0;
	int *fds = NULL;
	size_t i;

	err = flush_entries(s);
	if (!err) /* no table may name a backend the kernel has not got: none is made */
		make_tables(s);
	if (!err && s->swaps.n) {
		ids = calloc(s->swaps.n, sizeof(*ids));
		fds = calloc(s->swaps.n, sizeof(*fds));
		if (!ids || !fds)
			err = -ENOMEM;
	}
	for (i = 0; ids && fds && i < s->swaps.n; i++) {
		const struct table_swap *t = &s->swaps.v[i];

		if (t->err) {
			pr_err("predictor %u: cannot make its table: %s; its service keeps what it "
			       "had until the next sync",
			       t->pred_id, strerror(-t->err));
			err = err ?: t->err;
			continue;
		}
		ids[n] = t->pred_id;
		fds[n++] = t->fd;
	}
	done = n;
	if (n && bpf_map_update_batch(outer, ids, fds, &done, &batch)) {
		if (done > n)
			done = 0;
		for (; done < n; done++) {
			if (bpf_map_update_elem(outer, &ids[done], &fds[done], BPF_ANY)) {
				err = err ?: -errno;
				break;
			}
		}
	}
	for (i = 0, n = 0; i < s->swaps.n; i++) {
		struct table_swap *t = &s->swaps.v[i];
		bool in = t->fd >= 0 && n++ < done;
		char tmp[PATH_MAX], final[PATH_MAX];

		if (t->fd >= 0 && !table_pin_path(s, t->pred_id, "-new", tmp, sizeof(tmp)) &&
		    !table_pin_path(s, t->pred_id, "", final, sizeof(final))) {
			if (!in)
				unlink(t->direct ? final : tmp);
			else if (!t->direct)
				rename(tmp, final);
		}
		if (!in) { /* not in the kernel: the next sync builds it again */
			struct mpred *mp = &s->preds[t->pred_id];

			mp->inputs = 0;
			if (mp->meta.svc_id < s->svc_cap) {
				s->svcs[mp->meta.svc_id].applied = 0;
				s->svcs[mp->meta.svc_id].held = true;
			}
		}
		if (t->fd >= 0)
			close(t->fd);
		free(t->members); /* not made: an earlier failure */
	}
	s->swaps.n = 0;
	free(ids);
	free(fds);

	if (s->drops.n) {
		__u32 count = s->drops.n;

		if (bpf_map_delete_batch(outer, s->drops.ids, &count, &batch))
			for (i = 0; i < s->drops.n; i++)
				bpf_map_delete_elem(outer, &s->drops.ids[i]);
		s->drops.n = 0;
	}
	return err;
}

/*
 * Queues a predictor's new table (members, sorted by key: taken, freed here
 * or when made) for flush_swaps(), which builds it on two threads, makes and
 * swaps it in. The queue is flushed every 4,096 tables, or a first sync of
 * 10,000 deployments would hold 20,000 fds at its flush. A table in place
 * early is harmless: nothing names it before the predictor stage is written.
 */
static int table_swap(struct ferry_sync *s, __u32 pred_id, struct ferry_table_member *members,
		      __u32 n, __u32 size)
{
	int err = 0;

	if (s->swaps.n >= 4096)
		err = flush_swaps(s);
	if (!err && s->swaps.n == s->swaps.cap) {
		size_t cap = s->swaps.cap ? s->swaps.cap * 2 : 64;
		struct table_swap *v = realloc(s->swaps.v, cap * sizeof(*v));

		if (!v)
			err = -ENOMEM;
		else {
			s->swaps.v = v;
			s->swaps.cap = cap;
		}
	}
	if (err) {
		free(members);
		return err;
	}
	s->swaps.v[s->swaps.n++] = (struct table_swap){ .pred_id = pred_id,
							.may_direct = !s->preds[pred_id].inputs,
							.fd = -1,
							.members = members,
							.nmembers = n,
							.size = size };
	return 0;
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
	struct mpred *mp = pred_id < s->pred_cap ? &s->preds[pred_id] : NULL;

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
	for (id = 1; id < s->svc_top; id++) {
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

/*
 * Adds to ferry_be_bits the source (backend address and port) of every reply
 * half in the map id: after a migration, which carries the reply halves but
 * not the backends (the first sync writes those), the carried connections'
 * replies must not pass untranslated until then. A key at a time: this runs
 * once, on a table that a migration has just filled.
 */
int be_bits_from_replies(struct ferry_sync *s, enum ferry_map_id id)
{
	struct ferry_flow_key key, prev;
	struct filter *f = &s->be_filter;
	bool first = true;

	if (!f->words)
		return 0;
	filter_start(f, true);
	while (!bpf_map_get_next_key(s->dp->map_fds[id], first ? NULL : &prev, &key)) {
		filter_set(f, ferry_be_bit(key.saddr, key.sport));
		prev = key;
		first = false;
	}
	return filter_write(f);
}

/*
 * ferry_vip_bits for the services in the mirror: each one's bit and its
 * address's. keep: the bits in force stay set too (before new entries are
 * written, so that no packet of a new service finds its bit clear);
 * otherwise the bits of services gone are cleared (after their entries and
 * flows are).
 */
int sync_vip_bits(struct ferry_sync *s, bool keep)
{
	struct filter *f = &s->vip_filter;

	if (!f->words)
		return 0;
	filter_start(f, keep);
	for (__u32 id = 1; id < s->svc_top; id++) {
		const struct ferry_vip *vip = &s->svcs[id].vip;

		if (!s->svcs[id].used)
			continue;
		filter_set(f, ferry_vip_bit(vip->addr, vip->port, vip->proto));
		filter_set(f, ferry_vip_bit(vip->addr, 0, 0));
	}
	return filter_write(f);
}

/*
 * ferry_be_bits for the backends in the mirror. keep: the bits in force stay
 * set too; otherwise those of backends gone are cleared (after their flows
 * are). A new backend's bit is set earlier, with its entry (flush_entries),
 * before any table names it.
 */
int sync_be_bits(struct ferry_sync *s, bool keep)
{
	struct filter *f = &s->be_filter;

	if (!f->words)
		return 0;
	filter_start(f, keep);
	for (__u32 id = 1; id < s->be_top; id++)
		if (s->bes[id].used)
			filter_set(f, ferry_be_bit(s->bes[id].be.addr, s->bes[id].be.port));
	return filter_write(f);
}

/*
 * Builds the table of one predictor from its ready backends and queues its
 * swap unless the table in force was built from the same inputs (a pure
 * function: same inputs, same table). Returns 0 or a negative errno; *ready
 * gets the number of backends in the table.
 */
static int sync_pred_table(struct ferry_sync *s, struct mservice *ms, __u32 pred_id, __u32 floor,
			   bool tables, __u32 *ready, struct ferry_sync_result *res)
{
	struct ferry_table_member *members;
	__u32 n = 0, size, i;
	__u64 inputs;
	int err = 0;

	if (s->narrow && !tables) {
		/* What the last full sync counted from the backends it wrote with this meta. */
		*ready = s->preds[pred_id].meta.backends_ready;
		return 0;
	}
	members = calloc(ms->bes.n ? ms->bes.n : 1, sizeof(*members));
	if (!members)
		return -ENOMEM;
	for (i = 0; i < ms->bes.n; i++) {
		__u32 id = ms->bes.ids[i];
		const struct ferry_backend *be = &s->bes[id].be;

		if (be->predictor_id != pred_id || be->state != FERRY_BE_ACTIVE ||
		    (be->flags & FERRY_BE_F_ADMIN_DRAIN) || n >= FERRY_TABLE_MAX_BACKENDS)
			continue;
		members[n].key = ferry_table__key(be->family, be->addr, be->port);
		members[n++].backend_id = id;
	}
	*ready = n;
	size = ferry_table__size(n, floor);
	/* Sorts members: the table is built from them as they are (its cell 1 is this digest). */
	inputs = tables ? ferry_table__digest(members, n, size) : 0;
	if (!tables || inputs == s->preds[pred_id].inputs)
		goto out_free; /* the kernel holds this very table */
	err = table_swap(s, pred_id, members, n, size);
	members = NULL; /* the queue's now */
	if (err)
		goto out_free;
	s->preds[pred_id].inputs = inputs; /* reset by flush_swaps() if it is not swapped in */
	ms->meta.table_generation++;
	res->tables_swapped++;
out_free:
	free(members);
	return err;
}

/*
 * The selection of one service: each predictor's table (built only when its
 * backends changed), then the effective weights from the one owner
 * (user/weights.c) into the predictor stage, ms->sel. When sel changes it is
 * marked dirty; the caller writes it with write_select() once the swapped
 * tables are in place, so the kernel never picks a predictor without one.
 * Predictors not seen in the model being applied (leaving) get no weight.
 * Without tables (a weight override) no table is built or compared.
 */
int sync_selection(struct ferry_sync *s, __u32 svc_id, __u32 floor, bool tables,
		   struct ferry_sync_result *res)
{
	struct mservice *ms = &s->svcs[svc_id];
	struct ferry_weight_in in[FERRY_MAX_SVC_PREDICTORS] = {};
	__u32 out[FERRY_MAX_SVC_PREDICTORS], ids[FERRY_MAX_SVC_PREDICTORS];
	struct ferry_select sel = {};
	size_t i, n = 0;
	int err;

	for (i = 0; i < ms->preds.n && n < FERRY_MAX_SVC_PREDICTORS; i++) {
		__u32 p = ms->preds.ids[i];
		const struct ferry_pred_meta *pm = &s->preds[p].meta;
		__u32 ready = 0;

		err = sync_pred_table(s, ms, p, floor, tables, &ready, res);
		if (err)
			return err;
		ids[n] = p;
		s->preds[p].meta.backends_ready = ready;
		in[n].configured = pm->weight_configured;
		in[n].flags = pm->flags;
		in[n].override = pm->weight_override;
		in[n].canary = pm->weight_canary;
		in[n].ready = s->preds[p].seen || !s->applying ? ready : 0;
		n++;
	}
	ferry_weights__effective(in, n, out);
	sel.npredictors = n;
	for (i = 0; i < n; i++) {
		s->preds[ids[i]].meta.weight_effective = out[i];
		sel.preds[i].predictor_id = ids[i];
		sel.preds[i].weight = out[i];
		sel.preds[i].key = ferry_table__pred_key(s->preds[ids[i]].meta.name);
	}
	sel.generation = ms->sel.generation;
	if (memcmp(&sel, &ms->sel, sizeof(sel))) {
		sel.generation++;
		ms->sel = sel;
		ms->sel_dirty = true;
	}
	return 0;
}

/* Writes a service's predictor stage: one locked update, seen whole by every packet. */
int write_select(struct ferry_sync *s, __u32 svc_id)
{
	struct mservice *ms = &s->svcs[svc_id];

	if (!ms->sel_dirty)
		return 0;
	if (bpf_map_update_elem(s->dp->map_fds[FERRY_M_SELECT], &svc_id, &ms->sel, BPF_F_LOCK))
		return -errno;
	ms->sel_dirty = false;
	return 0;
}
