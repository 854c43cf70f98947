// SPDX-License-Identifier: GPL-2.0-only
/*
 * Reads ferry's pinned maps into a struct ferry_snapshot: per-CPU values
 * summed, user-space metadata joined to the kernel's ids, everything sorted
 * by id for lookups. Shared by ferryd's /metrics and ferryctl.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "kernel/pins.h"
#include "kernel/snapshot.h"

static const char *const counter_names[FERRY_CTR_MAX] = {
	[FERRY_CTR_MALFORMED] = "malformed",
	[FERRY_CTR_FRAGMENT] = "fragment",
	[FERRY_CTR_IPV6_EXT] = "ipv6_ext",
	[FERRY_CTR_VIP_PORT_MISS] = "vip_port_miss",
	[FERRY_CTR_NO_BACKEND] = "no_backend",
	[FERRY_CTR_FLOW_MISS] = "flow_miss",
	[FERRY_CTR_FLOW_FULL] = "flow_full",
	[FERRY_CTR_FIB_STACK] = "fib_stack",
	[FERRY_CTR_FIB_DROP] = "fib_drop",
	[FERRY_CTR_REDIRECT] = "redirect",
	[FERRY_CTR_REDIRECT_NEIGH] = "redirect_neigh",
	[FERRY_CTR_XDP_HANDOFF] = "xdp_handoff",
	[FERRY_CTR_REPLY_NAT] = "reply_nat",
	[FERRY_CTR_TRACE_LOST] = "trace_lost",
	[FERRY_CTR_HIST_MISS] = "hist_miss",
	[FERRY_CTR_ICMP_FWD] = "icmp_fwd",
	[FERRY_CTR_ICMP_REPLY] = "icmp_reply",
	[FERRY_CTR_FLOW_RESTORED] = "flow_restored",
	[FERRY_CTR_REJECT] = "reject",
	[FERRY_CTR_REJECT_LIMITED] = "reject_limited",
	[FERRY_CTR_REJECT_ICMP] = "reject_icmp",
	[FERRY_CTR_REPLY_FRAGMENT] = "reply_fragment",
	[FERRY_CTR_REDIRECT_PEER] = "redirect_peer",
	[FERRY_CTR_TTL_EXPIRED] = "ttl_expired",
	[FERRY_CTR_EMBRYONIC_NEW] = "embryonic_new",
	[FERRY_CTR_EMBRYONIC_PROMOTED] = "embryonic_promoted",
	[FERRY_CTR_EMBRYONIC_DROPPED] = "embryonic_dropped",
	[FERRY_CTR_RATE_SKIPPED] = "rate_skipped",
	[FERRY_CTR_REPLY_CLASH] = "reply_clash",
	[FERRY_CTR_GOAWAY_APPENDED] = "goaway_appended",
	[FERRY_CTR_GOAWAY_TOLD] = "goaway_told",
	[FERRY_CTR_H2_GAP_BRIDGED] = "h2_gap_bridged",
};
_Static_assert(FERRY_CTR_H2_GAP_BRIDGED + 1 == FERRY_CTR_MAX, "a counter without a name");

const char *ferry_counter__name(unsigned int counter)
{
	return counter < FERRY_CTR_MAX ? counter_names[counter] : NULL;
}

bool ferry_counter__is_drop(unsigned int counter)
{
	return counter == FERRY_CTR_FRAGMENT || counter == FERRY_CTR_NO_BACKEND ||
	       counter == FERRY_CTR_FIB_DROP || counter == FERRY_CTR_REPLY_CLASH ||
	       counter == FERRY_CTR_GOAWAY_TOLD;
}

void ferry_stats__add(struct ferry_stats *a, const struct ferry_stats *b)
{
	a->fwd_packets += b->fwd_packets;
	a->fwd_bytes += b->fwd_bytes;
	a->rev_packets += b->rev_packets;
	a->rev_bytes += b->rev_bytes;
	a->new_flows += b->new_flows;
	a->flow_misses += b->flow_misses;
	a->resets += b->resets;
	for (int i = 0; i < FERRY_HTTP_CLASSES; i++)
		a->http[i] += b->http[i];
	a->syn_timeouts += b->syn_timeouts;
	for (int i = 0; i < FERRY_L7_PROTOS; i++)
		a->requests[i] += b->requests[i];
	a->h2_resets += b->h2_resets;
	a->l7_unsync += b->l7_unsync;
	a->streams_skipped += b->streams_skipped;
}

/* ------------------------------------------------------------ map reading */

/* All entries of one map; values of per-CPU maps are already summed. */
struct map_dump {
	void *keys;
	void *values; /* raw: ncpus slots of slot_size for per-CPU maps */
	size_t n, cap;
	__u32 key_size;
	__u32 value_size; /* one CPU's value */
	__u32 raw_size; /* bytes per entry as the syscall returns it */
	__u32 max_entries;
	int ncpus; /* 1 for maps that are not per-CPU */
};

static bool map_type_percpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

/* Opens map id under pin; an absent optional map leaves *fd at -1 and returns 0. */
static int map_open(const char *pin, enum ferry_map_id id, bool optional, int *fd)
{
	char path[PATH_MAX];
	int err;

	err = ferry_pin__open(pin, id, path, sizeof(path));
	if (err >= 0) {
		*fd = err;
		return 0;
	}
	*fd = -1;
	if (optional && err == -ENOENT)
		return 0;
	pr_err("%s: cannot open pinned map: %s (is ferryd running with this pin path?)", path,
	       strerror(-err));
	return err;
}

static int map_info(int fd, struct map_dump *d)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int err, ncpus;

	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err)
		return err;
	d->key_size = info.key_size;
	d->value_size = info.value_size;
	d->max_entries = info.max_entries;
	d->ncpus = 1;
	d->raw_size = info.value_size;
	if (map_type_percpu(info.type)) {
		ncpus = libbpf_num_possible_cpus();
		if (ncpus < 0)
			return ncpus;
		d->ncpus = ncpus;
		/* the kernel copies each CPU's value into an 8-byte aligned slot */
		d->raw_size = ((info.value_size + 7) & ~7U) * ncpus;
	}
	return 0;
}

static int dump_grow(struct map_dump *d, size_t want)
{
	void *keys, *values;
	size_t cap = d->cap ? d->cap : 64;

	if (want <= d->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	keys = realloc(d->keys, cap * d->key_size);
	if (!keys)
		return -ENOMEM;
	d->keys = keys;
	values = realloc(d->values, cap * d->raw_size);
	if (!values)
		return -ENOMEM;
	d->values = values;
	d->cap = cap;
	return 0;
}

static void dump_free(struct map_dump *d)
{
	free(d->keys);
	free(d->values);
	d->keys = d->values = NULL;
	d->n = d->cap = 0;
}

static int dump_batch(int fd, struct map_dump *d)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	/* hash maps use a 4-byte bucket cursor, arrays a key: room for both */
	size_t tok_size = d->key_size > 8 ? d->key_size : 8;
	__u32 chunk = d->max_entries < 4096 ? d->max_entries : 4096, count;
	char *in = calloc(1, tok_size), *out = calloc(1, tok_size);
	bool first = true;
	int err;

	if (!in || !out) {
		err = -ENOMEM;
		goto out_free;
	}
	if (!chunk)
		chunk = 1;
	for (;;) {
		err = dump_grow(d, d->n + chunk);
		if (err)
			goto out_free;
		count = chunk;
		err = bpf_map_lookup_batch(fd, first ? NULL : in, out,
					   (char *)d->keys + d->n * d->key_size,
					   (char *)d->values + d->n * d->raw_size, &count, &opts);
		if (err == -ENOSPC && !count) {
			/* a hash bucket holds more entries than fit: ask for more */
			chunk *= 2;
			continue;
		}
		if (err && err != -ENOENT)
			goto out_free;
		d->n += count;
		if (err == -ENOENT) {
			err = 0;
			break;
		}
		memcpy(in, out, tok_size);
		first = false;
	}
out_free:
	free(in);
	free(out);
	return err;
}

static int dump_iter(int fd, struct map_dump *d)
{
	char *cur = calloc(1, d->key_size), *next = calloc(1, d->key_size);
	void *prev = NULL;
	int err;

	if (!cur || !next) {
		err = -ENOMEM;
		goto out_free;
	}
	while (!(err = bpf_map_get_next_key(fd, prev, next))) {
		err = dump_grow(d, d->n + 1);
		if (err)
			goto out_free;
		err = bpf_map_lookup_elem(fd, next, (char *)d->values + d->n * d->raw_size);
		if (!err) {
			memcpy((char *)d->keys + d->n * d->key_size, next, d->key_size);
			d->n++;
		} else if (err != -ENOENT) { /* ENOENT: deleted under us */
			goto out_free;
		}
		memcpy(cur, next, d->key_size);
		prev = cur;
	}
	if (err == -ENOENT)
		err = 0;
out_free:
	free(cur);
	free(next);
	return err;
}

/* Every entry of fd into d (its sizes known, its arrays grown); batch lookups when the kernel has them for the type. */
static int dump_entries(int fd, struct map_dump *d)
{
	int err = dump_batch(fd, d);

	if (err == -EINVAL || err == -EOPNOTSUPP || err == -ENOTSUP || err == -524 /* ENOTSUPP */) {
		d->n = 0;
		err = dump_iter(fd, d);
	}
	return err;
}

/* Reads every entry of fd into fresh arrays. */
static int map_dump(int fd, struct map_dump *d)
{
	int err;

	memset(d, 0, sizeof(*d));
	err = map_info(fd, d);
	return err ?: dump_entries(fd, d);
}

int ferry_map__read_all(int fd, struct ferry_map_buf *buf)
{
	struct map_dump d = {};
	int err = map_info(fd, &d);

	buf->n = 0;
	if (!err && d.ncpus != 1)
		err = -EINVAL;
	if (err)
		return err;
	/* The arrays of the last read, counted again in this map's sizes. */
	d.keys = buf->keys;
	d.values = buf->values;
	if (buf->key_size == d.key_size && buf->value_size == d.raw_size)
		d.cap = buf->cap;
	err = dump_entries(fd, &d);
	buf->keys = d.keys;
	buf->values = d.values;
	buf->cap = d.cap;
	buf->key_size = d.key_size;
	buf->value_size = d.raw_size;
	buf->n = err ? 0 : d.n;
	return err;
}

void ferry_map_buf__free(struct ferry_map_buf *buf)
{
	free(buf->keys);
	free(buf->values);
	memset(buf, 0, sizeof(*buf));
}

static const void *dump_key(const struct map_dump *d, size_t i)
{
	return (const char *)d->keys + i * d->key_size;
}

static const void *dump_raw(const struct map_dump *d, size_t i)
{
	return (const char *)d->values + i * d->raw_size;
}

/*
 * Sums raw per-CPU slots of a value made only of __u64 fields into out
 * (out_size bytes; a shorter kernel value leaves the tail zero).
 */
static void sum_u64(void *out, size_t out_size, const void *raw, __u32 value_size, int ncpus)
{
	size_t slot = (value_size + 7) & ~7U,
	       words = (value_size < out_size ? value_size : out_size) / 8;
	__u64 *dst = out;

	memset(out, 0, out_size);
	for (int c = 0; c < ncpus; c++) {
		const __u64 *src = (const void *)((const char *)raw + c * slot);

		for (size_t w = 0; w < words; w++)
			dst[w] += src[w];
	}
}

/* Looks up one key of a per-CPU (or plain) map of __u64 fields and sums it. */
static int lookup_sum(int fd, const struct map_dump *info, const void *key, void *out,
		      size_t out_size)
{
	char stack[4096], *raw = stack;
	int err;

	if (info->raw_size > sizeof(stack)) {
		raw = malloc(info->raw_size);
		if (!raw)
			return -ENOMEM;
	}
	err = bpf_map_lookup_elem(fd, key, raw);
	if (!err)
		sum_u64(out, out_size, raw, info->value_size, info->ncpus);
	else
		memset(out, 0, out_size);
	if (raw != stack)
		free(raw);
	return err;
}

/* --------------------------------------------------------------- sorting */

static int cmp_u32(__u32 a, __u32 b)
{
	return a < b ? -1 : a > b;
}

static int cmp_service(const void *a, const void *b)
{
	return cmp_u32(((const struct ferry_snap_service *)a)->id,
		       ((const struct ferry_snap_service *)b)->id);
}

static int cmp_predictor(const void *a, const void *b)
{
	return cmp_u32(((const struct ferry_snap_predictor *)a)->id,
		       ((const struct ferry_snap_predictor *)b)->id);
}

static int cmp_backend(const void *a, const void *b)
{
	return cmp_u32(((const struct ferry_snap_backend *)a)->id,
		       ((const struct ferry_snap_backend *)b)->id);
}

static int cmp_hist_key(const struct ferry_hist_key *x, const struct ferry_hist_key *y)
{
	if (x->kind != y->kind)
		return cmp_u32(x->kind, y->kind);
	if (x->metric != y->metric)
		return cmp_u32(x->metric, y->metric);
	if (x->id != y->id)
		return cmp_u32(x->id, y->id);
	return cmp_u32(x->protocol, y->protocol);
}

static int cmp_hist(const void *a, const void *b)
{
	return cmp_hist_key(&((const struct ferry_snap_hist *)a)->key,
			    &((const struct ferry_snap_hist *)b)->key);
}

static int cmp_link(const void *a, const void *b)
{
	return cmp_u32(((const struct ferry_snap_link *)a)->ifindex,
		       ((const struct ferry_snap_link *)b)->ifindex);
}

void ferry_snapshot__sort(struct ferry_snapshot *snap)
{
	if (snap->nservices)
		qsort(snap->services, snap->nservices, sizeof(*snap->services), cmp_service);
	if (snap->npredictors)
		qsort(snap->predictors, snap->npredictors, sizeof(*snap->predictors),
		      cmp_predictor);
	if (snap->nbackends)
		qsort(snap->backends, snap->nbackends, sizeof(*snap->backends), cmp_backend);
	if (snap->nhists)
		qsort(snap->hists, snap->nhists, sizeof(*snap->hists), cmp_hist);
	if (snap->nlinks)
		qsort(snap->links, snap->nlinks, sizeof(*snap->links), cmp_link);
}

const struct ferry_snap_service *ferry_snapshot__service(const struct ferry_snapshot *snap,
							 __u32 id)
{
	struct ferry_snap_service key = { .id = id };

	if (!snap->nservices)
		return NULL;
	return bsearch(&key, snap->services, snap->nservices, sizeof(key), cmp_service);
}

const struct ferry_snap_predictor *ferry_snapshot__predictor(const struct ferry_snapshot *snap,
							     __u32 id)
{
	struct ferry_snap_predictor key = { .id = id };

	if (!snap->npredictors)
		return NULL;
	return bsearch(&key, snap->predictors, snap->npredictors, sizeof(key), cmp_predictor);
}

const struct ferry_snap_backend *ferry_snapshot__backend(const struct ferry_snapshot *snap,
							 __u32 id)
{
	struct ferry_snap_backend key = { .id = id };

	if (!snap->nbackends)
		return NULL;
	return bsearch(&key, snap->backends, snap->nbackends, sizeof(key), cmp_backend);
}

const struct ferry_hist *ferry_snapshot__hist_proto(const struct ferry_snapshot *snap, __u8 kind,
						    __u8 metric, __u8 protocol, __u32 id)
{
	struct ferry_snap_hist key = {
		.key = { .id = id, .kind = kind, .metric = metric, .protocol = protocol }
	};
	const struct ferry_snap_hist *found;

	if (!snap->nhists)
		return NULL;
	found = bsearch(&key, snap->hists, snap->nhists, sizeof(key), cmp_hist);
	return found ? &found->hist : NULL;
}

const struct ferry_hist *ferry_snapshot__hist(const struct ferry_snapshot *snap, __u8 kind,
					      __u8 metric, __u32 id)
{
	const struct ferry_hist *h;

	h = ferry_snapshot__hist_proto(snap, kind, metric, FERRY_HIST_ALL_PROTOCOLS, id);
	/* A hand-built snapshot has no sums: its first protocol's histogram stands in. */
	for (__u8 p = 0; !h && p < FERRY_L7_PROTOS; p++)
		h = ferry_snapshot__hist_proto(snap, kind, metric, p, id);
	return h;
}

/* Appends to each run of (kind, metric, id) the sum of its protocols' histograms. */
static void add_protocol_sums(struct ferry_snapshot *snap)
{
	size_t n = snap->nhists, out = n;

	if (!n)
		return;
	qsort(snap->hists, n, sizeof(*snap->hists), cmp_hist);
	for (size_t i = 0; i < n;) {
		struct ferry_snap_hist *sum = &snap->hists[out++];
		size_t j = i;

		*sum = snap->hists[i];
		sum->key.protocol = FERRY_HIST_ALL_PROTOCOLS;
		for (j = i + 1; j < n && snap->hists[j].key.kind == sum->key.kind &&
				snap->hists[j].key.metric == sum->key.metric &&
				snap->hists[j].key.id == sum->key.id;
		     j++) {
			const __u64 *src = (const __u64 *)&snap->hists[j].hist;
			__u64 *dst = (__u64 *)&sum->hist;

			for (size_t k = 0; k < sizeof(sum->hist) / sizeof(__u64); k++)
				dst[k] += src[k];
		}
		i = j;
	}
	snap->nhists = out;
}

void ferry_snapshot__free(struct ferry_snapshot *snap)
{
	if (!snap)
		return;
	free(snap->services);
	free(snap->predictors);
	free(snap->backends);
	free(snap->hists);
	free(snap->links);
	free(snap);
}

/* ------------------------------------------------------------- the read */

enum snap_map {
	SM_CONFIG,
	SM_SERVICES,
	SM_SVC_META,
	SM_SVC_STATS,
	SM_BACKENDS,
	SM_STATS,
	SM_PRED_META,
	SM_LATENCY,
	SM_COUNTERS,
	SM_LINKS,
	SM_COUNT,
};

/* The maps a snapshot reads; optional ones may be absent from older pins. */
static const struct {
	enum ferry_map_id id;
	bool optional;
} snap_maps[SM_COUNT] = {
	[SM_CONFIG] = { FERRY_M_CONFIG, false },      [SM_SERVICES] = { FERRY_M_SERVICES, false },
	[SM_SVC_META] = { FERRY_M_SVC_META, true },   [SM_SVC_STATS] = { FERRY_M_SVC_STATS, true },
	[SM_BACKENDS] = { FERRY_M_BACKENDS, false },  [SM_STATS] = { FERRY_M_STATS, true },
	[SM_PRED_META] = { FERRY_M_PRED_META, true }, [SM_LATENCY] = { FERRY_M_LATENCY, true },
	[SM_COUNTERS] = { FERRY_M_COUNTERS, true },   [SM_LINKS] = { FERRY_M_LINKS, true },
};

static int read_config(int fd, struct ferry_snapshot *snap)
{
	__u32 zero = 0;
	int err;

	err = bpf_map_lookup_elem(fd, &zero, &snap->config);
	if (err == -ENOENT)
		return 0; /* a hash-typed config that ferryd has not written yet */
	if (err)
		return err;
	/* an array slot ferryd never wrote reads as zeros: no config yet */
	if (!snap->config.abi_version)
		return 0;
	if (snap->config.abi_version != FERRY_ABI_VERSION)
		return -EPROTO;
	snap->has_config = true;
	return 0;
}

static int read_services(const int *fds, struct ferry_snapshot *snap)
{
	struct map_dump d, stats_info = {};
	size_t n = 0;
	int err;

	err = map_dump(fds[SM_SERVICES], &d);
	if (err)
		return err;
	if (d.key_size != sizeof(struct ferry_vip) ||
	    d.value_size != sizeof(struct ferry_service)) {
		err = -EPROTO;
		goto out_free;
	}
	if (fds[SM_SVC_STATS] >= 0) {
		err = map_info(fds[SM_SVC_STATS], &stats_info);
		if (err)
			goto out_free;
	}
	snap->services = calloc(d.n ? d.n : 1, sizeof(*snap->services));
	if (!snap->services) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < d.n; i++) {
		const struct ferry_vip *vip = dump_key(&d, i);
		const struct ferry_service *svc = dump_raw(&d, i);
		struct ferry_snap_service *s = &snap->services[n];
		struct ferry_svc_meta meta;

		/* address markers exist for the data plane's fragment and port checks */
		if ((svc->flags & FERRY_SVC_F_ADDR_MARKER) || (!vip->port && !vip->proto))
			continue;
		s->id = svc->id;
		s->vip = *vip;
		s->flags = svc->flags;
		s->table_size = svc->table_size;
		s->sample_every = svc->sample_every;
		if (fds[SM_SVC_META] >= 0 &&
		    !bpf_map_lookup_elem(fds[SM_SVC_META], &s->id, &meta)) {
			s->has_meta = true;
			memcpy(s->deployment, meta.deployment, sizeof(s->deployment));
			s->deployment[sizeof(s->deployment) - 1] = '\0';
			s->npredictors = meta.npredictors < FERRY_MAX_SVC_PREDICTORS ?
						 meta.npredictors :
						 FERRY_MAX_SVC_PREDICTORS;
			memcpy(s->predictor_ids, meta.predictor_ids, sizeof(s->predictor_ids));
			s->table_generation = meta.table_generation;
		}
		if (fds[SM_SVC_STATS] >= 0) {
			err = lookup_sum(fds[SM_SVC_STATS], &stats_info, &s->id, &s->stats,
					 sizeof(s->stats));
			if (err && err != -ENOENT)
				goto out_free;
		}
		n++;
	}
	snap->nservices = n;
	err = 0;
out_free:
	dump_free(&d);
	return err;
}

static int read_backends(const int *fds, struct ferry_snapshot *snap)
{
	struct map_dump d, stats_info = {};
	size_t n = 0;
	int err;

	err = map_dump(fds[SM_BACKENDS], &d);
	if (err)
		return err;
	if (d.key_size != sizeof(__u32) || d.value_size != sizeof(struct ferry_backend)) {
		err = -EPROTO;
		goto out_free;
	}
	if (fds[SM_STATS] >= 0) {
		err = map_info(fds[SM_STATS], &stats_info);
		if (err)
			goto out_free;
	}
	snap->backends = calloc(d.n ? d.n : 1, sizeof(*snap->backends));
	if (!snap->backends) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < d.n; i++) {
		const struct ferry_backend *be = dump_raw(&d, i);
		struct ferry_snap_backend *b = &snap->backends[n];

		if (be->state == FERRY_BE_UNUSED)
			continue;
		memcpy(&b->id, dump_key(&d, i), sizeof(b->id));
		b->backend = *be;
		if (fds[SM_STATS] >= 0) {
			err = lookup_sum(fds[SM_STATS], &stats_info, &b->id, &b->stats,
					 sizeof(b->stats));
			if (err && err != -ENOENT)
				goto out_free;
		}
		n++;
	}
	snap->nbackends = n;
	err = 0;
out_free:
	dump_free(&d);
	return err;
}

static int read_predictors(const int *fds, struct ferry_snapshot *snap)
{
	struct map_dump d;
	size_t n = 0;
	int err;

	if (fds[SM_PRED_META] < 0)
		return 0;
	err = map_dump(fds[SM_PRED_META], &d);
	if (err)
		return err;
	if (d.key_size != sizeof(__u32) || d.value_size != sizeof(struct ferry_pred_meta)) {
		err = -EPROTO;
		goto out_free;
	}
	snap->predictors = calloc(d.n ? d.n : 1, sizeof(*snap->predictors));
	if (!snap->predictors) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < d.n; i++) {
		const struct ferry_pred_meta *m = dump_raw(&d, i);
		struct ferry_snap_predictor *p = &snap->predictors[n];

		/* array slots never written are all zero */
		if (!m->svc_id && !m->name[0])
			continue;
		memcpy(&p->id, dump_key(&d, i), sizeof(p->id));
		if (!p->id)
			continue;
		p->svc_id = m->svc_id;
		p->flags = m->flags;
		p->weight_configured = m->weight_configured;
		p->weight_effective = m->weight_effective;
		p->weight_override = m->weight_override;
		p->weight_canary = m->weight_canary;
		p->backends_ready = m->backends_ready;
		p->backends_draining = m->backends_draining;
		memcpy(p->name, m->name, sizeof(p->name));
		p->name[sizeof(p->name) - 1] = '\0';
		p->stats = m->retired;
		n++;
	}
	snap->npredictors = n;
	err = 0;
out_free:
	dump_free(&d);
	return err;
}

static int read_latency(const int *fds, struct ferry_snapshot *snap)
{
	struct map_dump d;
	size_t n = 0;
	int err;

	if (fds[SM_LATENCY] < 0)
		return 0;
	err = map_dump(fds[SM_LATENCY], &d);
	if (err)
		return err;
	if (d.key_size != sizeof(struct ferry_hist_key) ||
	    d.value_size != sizeof(struct ferry_hist)) {
		err = -EPROTO;
		goto out_free;
	}
	/* Room for one sum over protocols per histogram at most. */
	snap->hists = calloc(d.n ? 2 * d.n : 1, sizeof(*snap->hists));
	if (!snap->hists) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < d.n; i++) {
		struct ferry_snap_hist *h = &snap->hists[n];

		memcpy(&h->key, dump_key(&d, i), sizeof(h->key));
		if (!h->key.kind || !h->key.metric || h->key.protocol == FERRY_HIST_ALL_PROTOCOLS)
			continue;
		sum_u64(&h->hist, sizeof(h->hist), dump_raw(&d, i), d.value_size, d.ncpus);
		n++;
	}
	snap->nhists = n;
	add_protocol_sums(snap);
	err = 0;
out_free:
	dump_free(&d);
	return err;
}

static int read_counters(const int *fds, struct ferry_snapshot *snap)
{
	struct map_dump info = {};
	int err;

	if (fds[SM_COUNTERS] < 0)
		return 0;
	err = map_info(fds[SM_COUNTERS], &info);
	if (err)
		return err;
	for (__u32 i = 0; i < FERRY_CTR_MAX && i < info.max_entries; i++) {
		err = lookup_sum(fds[SM_COUNTERS], &info, &i, &snap->counters[i], sizeof(__u64));
		if (err && err != -ENOENT)
			return err;
	}
	return 0;
}

static int read_links(const int *fds, struct ferry_snapshot *snap)
{
	struct map_dump d;
	size_t n = 0;
	int err;

	if (fds[SM_LINKS] < 0)
		return 0;
	err = map_dump(fds[SM_LINKS], &d);
	if (err)
		return err;
	if (d.value_size != sizeof(struct ferry_link)) {
		err = -EPROTO;
		goto out_free;
	}
	snap->links = calloc(d.n ? d.n : 1, sizeof(*snap->links));
	if (!snap->links) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < d.n; i++) {
		const struct ferry_link *l = dump_raw(&d, i);
		struct ferry_snap_link *s = &snap->links[n];

		if (!l->ifname[0] && !l->hooks)
			continue;
		if (d.key_size == sizeof(__u32))
			memcpy(&s->ifindex, dump_key(&d, i), sizeof(s->ifindex));
		s->link = *l;
		s->link.ifname[sizeof(s->link.ifname) - 1] = '\0';
		n++;
	}
	snap->nlinks = n;
	err = 0;
out_free:
	dump_free(&d);
	return err;
}

/* A predictor's stats: its retired totals plus its live backends' rows. */
static void fold_backend_stats(struct ferry_snapshot *snap)
{
	for (size_t i = 0; i < snap->nbackends; i++) {
		const struct ferry_snap_backend *b = &snap->backends[i];
		struct ferry_snap_predictor *p;

		p = (struct ferry_snap_predictor *)ferry_snapshot__predictor(
			snap, b->backend.predictor_id);
		if (p)
			ferry_stats__add(&p->stats, &b->stats);
	}
}

struct ferry_snapshot *ferry_snapshot__read(const char *pin_path)
{
	struct ferry_snapshot *snap;
	int fds[SM_COUNT], err = 0;

	if (!pin_path)
		pin_path = FERRY_PIN_ROOT_DEFAULT;
	for (int i = 0; i < SM_COUNT; i++)
		fds[i] = -1;
	snap = calloc(1, sizeof(*snap));
	if (!snap) {
		errno = ENOMEM;
		return NULL;
	}
	for (int i = 0; i < SM_COUNT; i++) {
		err = map_open(pin_path, snap_maps[i].id, snap_maps[i].optional, &fds[i]);
		if (err)
			goto err_close;
	}
	err = read_config(fds[SM_CONFIG], snap);
	if (!err)
		err = read_services(fds, snap);
	if (!err)
		err = read_backends(fds, snap);
	if (!err)
		err = read_predictors(fds, snap);
	if (!err)
		err = read_latency(fds, snap);
	if (!err)
		err = read_counters(fds, snap);
	if (!err)
		err = read_links(fds, snap);
	if (err) {
		if (err == -EPROTO)
			pr_err("%s: pinned maps have another layout than this build (ABI %d, "
			       "maps say %u); use ferryctl and ferryd from the same build",
			       pin_path, FERRY_ABI_VERSION, snap->config.abi_version);
		goto err_close;
	}
	ferry_snapshot__sort(snap);
	fold_backend_stats(snap);
	for (int i = 0; i < SM_COUNT; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return snap;

err_close:
	for (int i = 0; i < SM_COUNT; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	ferry_snapshot__free(snap);
	errno = -err;
	return NULL;
}
