// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rebalancing, the user-space half (rebalance.h): notices a service whose
 * shares or backends changed, chooses which of its connections must go and
 * when (a deadline per connection, hashed into the service's window), and
 * runs the TCP socket iterator (bpf/ferry_iter.bpf.c) each tick while any
 * connection is marked. The iterator ends a marked connection once its
 * deadline has passed and it is idle, and reports every ferry socket it saw.
 * One that speaks h2c it leaves open instead and reports its TCP state: this
 * file then delivers a GOAWAY into it (goaway.c) from the same namespace, and
 * records in the mark that a later pass is to end the socket.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "kernel/goaway.h"
#include "kernel/pins.h"
#include "kernel/rebalance.h"
#include "kernel/snapshot.h"
#include "ferry_iter.skel.h"
#include "log.h"

#define NSEC_PER_SEC 1000000000ULL
#define DEFAULT_WINDOW_NS (30 * NSEC_PER_SEC)
/* A due connection still busy this long after its window is left alone (and counted). */
#define GRACE_NS (30 * NSEC_PER_SEC)
/*
 * An armed connection (a GOAWAY to follow the backend's next quiet segment) keeps
 * its mark this much longer, so that phase 2 can end it once it is told; one
 * still armed then is given up, and if it is told later its client closes it.
 */
#define ARMED_GRACE_NS (300 * NSEC_PER_SEC)
#define MAX_NETNS 4096

struct policy {
	struct ferry_vip vip;
	bool off;
	__u64 window_ns;
};

struct svc_state {
	__u32 svc_id;
	__u64 sig; /* shares and backend counts as last seen */
	bool present; /* seen in this tick's walk */
	bool pending; /* a round started: plan at the next pass */
	__u64 start_ns, window_ns, end_ns;
	/* shares in force as last seen, and which went down when the round started */
	__u32 npreds;
	__u32 pred_ids[FERRY_MAX_SVC_PREDICTORS];
	__u32 shares[FERRY_MAX_SVC_PREDICTORS];
	bool shrunk[FERRY_MAX_SVC_PREDICTORS];
};

struct mark {
	__u64 cookie;
	__u32 svc_id;
	__u64 end_ns; /* the round's end: given up after it */
	struct ferry_rebal_mark km; /* as in ferry_rb_marks */
	bool goaway; /* a GOAWAY went in: its end is not counted again */
	bool armed; /* the reply path is to append a GOAWAY (FERRY_L7_GOAWAY_TELL) */
	bool flow; /* key is a flow of the packet path (ferry_l7 describes it) */
	struct ferry_flow_key key;
};

struct ferry_rebal {
	struct ferry_rebal_stats st;
	char pin_path[256];
	struct ferry_iter *skel;
	struct bpf_link *link;
	int marks_fd, svc_meta_fd, pred_meta_fd, backends_fd, services_fd;
	int self_netns_fd;
	bool warned_eperm; /* --rebalance-pod-netns without CAP_SYS_ADMIN, said once */
	bool warned_goaway; /* a GOAWAY could not be sent (CAP_NET_RAW), said once */
	struct policy *policies;
	size_t npolicies;
	struct svc_state *svcs;
	size_t nsvcs;
	__u32 *svc_pos; /* service id -> its index in svcs + 1; 0: none */
	struct ferry_map_buf svc_buf, pred_buf; /* each walk's read of the metadata maps */
	__u32 *pred_pos; /* predictor id -> its index in this walk's pred_meta + 1 */
	struct mark *marks;
	size_t nmarks;
	struct ferry_rebal_sock *recs;
	size_t nrecs, caprecs;
};

/* ------------------------------------------------------------- planning */

static __u64 mix64(__u64 x)
{
	/* splitmix64's finaliser: cookies are sequential, deadlines must not be. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

__u64 ferry_rebal__deadline(__u64 start_ns, __u64 window_ns, __u64 cookie)
{
	return start_ns + (window_ns ? mix64(cookie) % window_ns : 0);
}

struct cand {
	size_t i;
	__u32 hash;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

size_t ferry_rebal__plan(size_t n, const __u32 *pred, const bool *losing, const __u32 *hash,
			 size_t npreds, const __u32 *pred_ids, const __u32 *shares,
			 const bool *shrunk, bool *out)
{
	struct cand *c;
	size_t i, p, total = 0, nout = 0;

	for (i = 0; i < n; i++) {
		out[i] = losing[i];
		if (losing[i])
			nout++;
		else
			total++;
	}
	c = calloc(n ? n : 1, sizeof(*c));
	if (!c)
		return nout; /* the losing backends still go */
	for (p = 0; p < npreds; p++) {
		size_t m = 0, keep;

		if (shrunk && !shrunk[p])
			continue;
		for (i = 0; i < n; i++)
			if (!losing[i] && pred[i] == pred_ids[p])
				c[m++] = (struct cand){ .i = i, .hash = hash[i] };
		/* round(total * share): a share of 0 keeps nothing, one of 100% keeps all. */
		keep = (size_t)(((__u64)total * shares[p] + FERRY_WEIGHT_ONE / 2) /
				FERRY_WEIGHT_ONE);
		if (m <= keep)
			continue;
		qsort(c, m, sizeof(*c), cmp_cand);
		for (i = keep; i < m; i++) {
			out[c[i].i] = true;
			nout++;
		}
	}
	/* A predictor the service no longer has: all its connections go. */
	for (i = 0; i < n; i++) {
		if (out[i])
			continue;
		for (p = 0; p < npreds && pred_ids[p] != pred[i]; p++)
			;
		if (p == npreds) {
			out[i] = true;
			nout++;
		}
	}
	free(c);
	return nout;
}

/* ------------------------------------------------------------- loading */

/* How reuse_pin takes a pin: as it is, ferry_l7 by its shape, or only if it is the object's. */
enum reuse {
	REUSE_ANY,
	REUSE_L7,
	REUSE_SAME,
};

/* 0, -ENOENT without the pin, -EPROTO for a pin of another shape than asked. */
static int reuse_pin(struct ferry_rebal *r, struct bpf_map *map, enum reuse how)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[512];
	int fd, err;

	err = ferry_pin__path(path, sizeof(path), r->pin_path, bpf_map__name(map));
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (how != REUSE_ANY && bpf_obj_get_info_by_fd(fd, &info, &len))
		info.type = BPF_MAP_TYPE_UNSPEC; /* unreadable: taken as another shape */
	/* ferry_l7: the iterator reads the head and writes the GOAWAY state (goaway_seq). */
	if ((how == REUSE_L7 &&
	     (info.type == BPF_MAP_TYPE_UNSPEC || info.key_size != sizeof(struct ferry_flow_key) ||
	      info.value_size < sizeof(struct ferry_l7))) ||
	    (how == REUSE_SAME &&
	     (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
	      info.value_size != bpf_map__value_size(map)))) {
		close(fd);
		return -EPROTO;
	}
	if (how == REUSE_L7) {
		bpf_map__set_type(map, info.type);
		bpf_map__set_value_size(map, info.value_size);
		bpf_map__set_max_entries(map, info.max_entries);
		bpf_map__set_map_flags(map, info.map_flags);
	}
	err = bpf_map__reuse_fd(map, fd);
	close(fd);
	return err;
}

static __u64 monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * NSEC_PER_SEC + (__u64)ts.tv_nsec;
}

/*
 * The marks an earlier ferryd left in the pin, taken over: a told one goes on
 * with phase 2 from its GOAWAY's time (the iterator reads the kernel mark); an
 * untold one keeps its deadline, and its round's end is a grace past it. The
 * service, key and origin come from the first pass that sees the socket.
 */
static void adopt_marks(struct ferry_rebal *r, __u64 now)
{
	struct ferry_map_buf buf = {};
	size_t told = 0;
	struct mark *m;

	if (ferry_map__read_all(r->marks_fd, &buf) || !buf.n)
		goto out_free;
	m = calloc(buf.n, sizeof(*m));
	if (!m)
		goto out_free;
	for (size_t i = 0; i < buf.n; i++) {
		const struct ferry_rebal_mark *km = (const struct ferry_rebal_mark *)buf.values + i;

		m[i] = (struct mark){
			.cookie = ((const __u64 *)buf.keys)[i],
			.end_ns = (km->deadline_ns > now ? km->deadline_ns : now) + GRACE_NS,
			.km = *km,
			.goaway = km->goaway_ns != 0,
		};
		told += km->goaway_ns != 0;
	}
	r->marks = m;
	r->nmarks = buf.n;
	pr_info("rebalance: took over %zu marked connections from the previous ferryd "
		"(%zu told with a GOAWAY: their sockets end as phase 2 says)",
		r->nmarks, told);
out_free:
	ferry_map_buf__free(&buf);
}

static bool kernel_has_sock_destroy(char *why, size_t len)
{
	struct btf *btf;
	int id;

	/* A test switch (docs/kernels.md): behave exactly as on a kernel without the kfunc. */
	if (getenv("FERRY_REBALANCE_FORCE_UNAVAILABLE")) {
		snprintf(why, len,
			 "the kernel has no bpf_sock_destroy (Linux 6.5+) "
			 "[forced by FERRY_REBALANCE_FORCE_UNAVAILABLE]");
		return false;
	}
	btf = btf__load_vmlinux_btf();
	if (!btf) {
		snprintf(why, len,
			 "no kernel BTF (/sys/kernel/btf/vmlinux): cannot find "
			 "bpf_sock_destroy");
		return false;
	}
	id = btf__find_by_name_kind(btf, "bpf_sock_destroy", BTF_KIND_FUNC);
	btf__free(btf);
	if (id < 0) {
		snprintf(why, len, "the kernel has no bpf_sock_destroy (Linux 6.5+)");
		return false;
	}
	return true;
}

static int load(struct ferry_rebal *r)
{
	struct ferry_rebal_stats *st = &r->st;
	bool marks_pinned = false;
	char path[512];
	int err;

	if (!kernel_has_sock_destroy(st->reason, sizeof(st->reason)))
		return -EOPNOTSUPP;
	r->skel = ferry_iter__open();
	if (!r->skel) {
		snprintf(st->reason, sizeof(st->reason), "cannot open the iterator object: %s",
			 strerror(errno));
		return -errno;
	}
	err = reuse_pin(r, r->skel->maps.ferry_flows, REUSE_ANY);
	if (err) {
		snprintf(st->reason, sizeof(st->reason), "%.100s/%s: %s", r->pin_path,
			 FERRY_MAP_FLOWS, strerror(-err));
		return err;
	}
	/* Without the pin (no connect-hook object) host clients are simply never found. */
	err = reuse_pin(r, r->skel->maps.ferry_sock_sel, REUSE_ANY);
	if (err && err != -ENOENT) {
		snprintf(st->reason, sizeof(st->reason), "%.100s/%s: %s", r->pin_path,
			 FERRY_MAP_SOCK_SEL, strerror(-err));
		return err;
	}
	err = reuse_pin(r, r->skel->maps.ferry_l7, REUSE_L7);
	st->l7 = !err;
	if (err && err != -ENOENT)
		pr_warn("rebalance: %s/%s is not the ferry_l7 this ferryd knows (%s): "
			"requests in flight are not read from it",
			r->pin_path, FERRY_MAP_L7, strerror(-err));
	r->skel->rodata->ferry_have_l7 = st->l7;
	/*
	 * ferry_rb_marks outlives ferryd (maps/ferry_maps.h): a told connection's
	 * socket must still end when the ferryd that told it stops before phase 2
	 * (a rolling update, a crash). A host client's server discards the
	 * client's FIN, which acknowledges the GOAWAY's 32 bytes it never sent,
	 * and stays ESTABLISHED for as long as it keeps no keepalive: only phase
	 * 2's abort and RST end it. A pin of another layout is replaced.
	 */
	err = ferry_pin__path(path, sizeof(path), r->pin_path, FERRY_MAP_RB_MARKS);
	marks_pinned = !err && !reuse_pin(r, r->skel->maps.ferry_rb_marks, REUSE_SAME);
	if (!err && !marks_pinned && !access(path, F_OK)) {
		pr_warn("rebalance: %s is not the mark map this ferryd knows: replaced; "
			"connections an earlier ferryd told and did not end are left to their "
			"clients",
			path);
		unlink(path);
	}
	err = ferry_iter__load(r->skel);
	if (err) {
		snprintf(st->reason, sizeof(st->reason), "cannot load the TCP socket iterator: %s",
			 strerror(-err));
		return err;
	}
	if (!marks_pinned && bpf_map__pin(r->skel->maps.ferry_rb_marks, path))
		pr_warn("rebalance: cannot pin %s/%s: a ferryd restarted during a rebalance does "
			"not end the connections this one told",
			r->pin_path, FERRY_MAP_RB_MARKS);
	r->link = bpf_program__attach_iter(r->skel->progs.ferry_rebal_iter, NULL);
	if (!r->link) {
		err = -errno;
		snprintf(st->reason, sizeof(st->reason),
			 "cannot attach the TCP socket iterator: %s", strerror(errno));
		return err;
	}
	r->marks_fd = bpf_map__fd(r->skel->maps.ferry_rb_marks);
	adopt_marks(r, monotonic_ns());
	r->svc_meta_fd = ferry_pin__open(r->pin_path, FERRY_M_SVC_META, path, sizeof(path));
	r->pred_meta_fd = ferry_pin__open(r->pin_path, FERRY_M_PRED_META, path, sizeof(path));
	r->backends_fd = ferry_pin__open(r->pin_path, FERRY_M_BACKENDS, path, sizeof(path));
	/* Only for ferry.io/protocol: h2c (host clients' GOAWAY); without it, ferry_l7's view. */
	r->services_fd = ferry_pin__open(r->pin_path, FERRY_M_SERVICES, path, sizeof(path));
	if (r->svc_meta_fd < 0 || r->pred_meta_fd < 0 || r->backends_fd < 0) {
		snprintf(st->reason, sizeof(st->reason), "cannot open the pinned maps under %.100s",
			 r->pin_path);
		return -ENOENT;
	}
	r->self_netns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (r->self_netns_fd < 0 && st->pod_netns) {
		snprintf(st->reason, sizeof(st->reason),
			 "--rebalance-pod-netns: cannot open this thread's namespace: %s",
			 strerror(errno));
		return -errno;
	}
	return 0;
}

struct ferry_rebal *ferry_rebal__new(const struct ferry_rebal_opts *opts)
{
	struct ferry_rebal *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->marks_fd = r->svc_meta_fd = r->pred_meta_fd = r->backends_fd = r->services_fd = -1;
	r->self_netns_fd = -1;
	r->st.pod_netns = opts->pod_netns;
	snprintf(r->pin_path, sizeof(r->pin_path), "%s",
		 opts->pin_path ? opts->pin_path : FERRY_PIN_ROOT_DEFAULT);
	if (load(r)) {
		pr_warn("rebalancing unavailable: %s; weight changes reach long-lived connections "
			"only when clients reconnect",
			r->st.reason);
		bpf_link__destroy(r->link);
		r->link = NULL;
		ferry_iter__destroy(r->skel);
		r->skel = NULL;
		return r;
	}
	r->st.available = true;
	pr_info("rebalancing available: idle connections of predictors that lose traffic are "
		"ended over each service's window (h2c ones after a GOAWAY); %s%s",
		r->st.l7 ? "requests in flight from the kernel's HTTP count (ferry_l7)" :
			   "no ferry_l7 map in this data plane: only socket-level idleness applies "
			   "(a request is taken as in flight while the client spoke last)",
		r->st.pod_netns ? "; pod namespaces included (--rebalance-pod-netns)" :
				  "; this namespace only (host-network clients)");
	return r;
}

void ferry_rebal__free(struct ferry_rebal *r)
{
	if (!r)
		return;
	bpf_link__destroy(r->link);
	ferry_iter__destroy(r->skel);
	if (r->svc_meta_fd >= 0)
		close(r->svc_meta_fd);
	if (r->pred_meta_fd >= 0)
		close(r->pred_meta_fd);
	if (r->backends_fd >= 0)
		close(r->backends_fd);
	if (r->services_fd >= 0)
		close(r->services_fd);
	if (r->self_netns_fd >= 0)
		close(r->self_netns_fd);
	free(r->policies);
	free(r->svcs);
	free(r->svc_pos);
	free(r->pred_pos);
	ferry_map_buf__free(&r->svc_buf);
	ferry_map_buf__free(&r->pred_buf);
	free(r->marks);
	free(r->recs);
	free(r);
}

void ferry_rebal__stats(const struct ferry_rebal *r, struct ferry_rebal_stats *st)
{
	*st = r->st;
	st->marked = (__u32)r->nmarks;
}

/* ------------------------------------------------------------- policies */

void ferry_rebal__clear_policies(struct ferry_rebal *r)
{
	r->npolicies = 0;
}

int ferry_rebal__set_policy(struct ferry_rebal *r, const struct ferry_vip *vip, bool off,
			    __u64 window_ns)
{
	struct policy *p = realloc(r->policies, (r->npolicies + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	r->policies = p;
	p[r->npolicies++] = (struct policy){ .vip = *vip, .off = off, .window_ns = window_ns };
	return 0;
}

static const struct policy *find_policy(const struct ferry_rebal *r, const struct ferry_vip *vip)
{
	for (size_t i = 0; i < r->npolicies; i++)
		if (!memcmp(&r->policies[i].vip, vip, sizeof(*vip)))
			return &r->policies[i];
	return NULL;
}

/* ------------------------------------------------------------- services */

static struct svc_state *find_svc(struct ferry_rebal *r, __u32 id)
{
	return id < FERRY_MAX_SERVICES && r->svc_pos[id] ? &r->svcs[r->svc_pos[id] - 1] : NULL;
}

/* This walk's copy of ferry_pred_meta, by predictor id (r->pred_pos). */
struct pred_view {
	const __u32 *pos;
	const struct ferry_pred_meta *vals;
};

static const struct ferry_pred_meta *pred_of(const struct pred_view *pv, __u32 id)
{
	return id < FERRY_MAX_PREDICTORS && pv->pos[id] ? &pv->vals[pv->pos[id] - 1] : NULL;
}

/*
 * What a round reacts to: each predictor's share in force, its backend counts,
 * and the table generation (an operator's drain swaps the table and changes
 * no count). Fills the shares into s when given.
 */
static __u64 service_sig(const struct pred_view *pv, const struct ferry_svc_meta *sm, __u32 *ids,
			 __u32 *shares, __u32 *n)
{
	__u64 sig = mix64(0xcbf29ce484222325ULL ^ sm->table_generation);

	*n = 0;
	for (__u32 i = 0; i < sm->npredictors && i < FERRY_MAX_SVC_PREDICTORS; i++) {
		__u32 id = sm->predictor_ids[i];
		const struct ferry_pred_meta *pm = pred_of(pv, id);

		if (!pm)
			continue;
		sig = mix64(sig ^ id);
		sig = mix64(sig ^ pm->weight_effective);
		sig = mix64(sig ^ ((__u64)pm->backends_ready << 32 | pm->backends_draining));
		ids[*n] = id;
		shares[(*n)++] = pm->weight_effective;
	}
	return sig;
}

/*
 * A new round (or the service's end) replaces its marks, except those told with a
 * GOAWAY: their sockets must still end (phase 2), or the server's side of a
 * connection whose byte stream the GOAWAY desynchronised would stay open.
 */
static void drop_marks_of(struct ferry_rebal *r, __u32 svc_id)
{
	size_t i = 0;

	while (i < r->nmarks) {
		/* A told or armed connection goes anyway: its mark carries phase 2. */
		if (r->marks[i].svc_id == svc_id && !r->marks[i].goaway && !r->marks[i].armed) {
			bpf_map_delete_elem(r->marks_fd, &r->marks[i].cookie);
			r->marks[i] = r->marks[--r->nmarks];
		} else {
			i++;
		}
	}
}

static void remember_shares(struct svc_state *s, const __u32 *ids, const __u32 *shares, __u32 n)
{
	s->npreds = n;
	memcpy(s->pred_ids, ids, n * sizeof(*ids));
	memcpy(s->shares, shares, n * sizeof(*shares));
}

/* shrunk[i] for the new list: the predictor's share is lower than last seen. */
static void mark_shrunk(struct svc_state *s, const __u32 *ids, const __u32 *shares, __u32 n)
{
	bool shrunk[FERRY_MAX_SVC_PREDICTORS] = {};

	for (__u32 i = 0; i < n; i++)
		for (__u32 j = 0; j < s->npreds; j++)
			if (s->pred_ids[j] == ids[i] && shares[i] < s->shares[j])
				shrunk[i] = true;
	memcpy(s->shrunk, shrunk, sizeof(shrunk));
}

/*
 * Each tick: both metadata maps read whole, in a few batch reads (a lookup
 * per service and per predictor cost 11 ms a tick at 1,000 deployments, the
 * time an edit waited when it arrived during one), then each service's
 * signature against the last.
 */
static void walk_services(struct ferry_rebal *r, __u64 now)
{
	const struct ferry_svc_meta *svals;
	const struct ferry_pred_meta *pvals;
	const __u32 *skeys, *pkeys;
	size_t i, ns, np;
	struct pred_view pv;
	int err;

	if (!r->svc_pos)
		r->svc_pos = calloc(FERRY_MAX_SERVICES, sizeof(*r->svc_pos));
	if (!r->pred_pos)
		r->pred_pos = calloc(FERRY_MAX_PREDICTORS, sizeof(*r->pred_pos));
	err = r->svc_pos && r->pred_pos ? 0 : -ENOMEM;
	err = err ?: ferry_map__read_all(r->svc_meta_fd, &r->svc_buf);
	err = err ?: ferry_map__read_all(r->pred_meta_fd, &r->pred_buf);
	if (err) {
		/* Nothing is taken as gone on a failed read: the next tick tries again. */
		pr_warn("rebalance: cannot read the service metadata: %s", strerror(-err));
		return;
	}
	skeys = r->svc_buf.keys;
	svals = r->svc_buf.values;
	ns = r->svc_buf.n;
	pkeys = r->pred_buf.keys;
	pvals = r->pred_buf.values;
	np = r->pred_buf.n;
	for (i = 0; i < np; i++)
		if (pkeys[i] < FERRY_MAX_PREDICTORS)
			r->pred_pos[pkeys[i]] = (__u32)i + 1;
	pv = (struct pred_view){ .pos = r->pred_pos, .vals = pvals };
	for (i = 0; i < r->nsvcs; i++)
		r->svcs[i].present = false;
	for (size_t k = 0; k < ns; k++) {
		__u32 ids[FERRY_MAX_SVC_PREDICTORS], shares[FERRY_MAX_SVC_PREDICTORS], n;
		const struct ferry_svc_meta sm = svals[k];
		__u32 key = skeys[k];
		const struct policy *pol;
		struct svc_state *s;
		char vip[64];
		__u64 sig;

		if (key >= FERRY_MAX_SERVICES)
			continue;
		sig = service_sig(&pv, &sm, ids, shares, &n);
		s = find_svc(r, key);
		if (!s) {
			s = realloc(r->svcs, (r->nsvcs + 1) * sizeof(*s));
			if (!s)
				goto out_unindex; /* no service taken as gone on this pass */
			r->svcs = s;
			s = &r->svcs[r->nsvcs++];
			r->svc_pos[key] = (__u32)r->nsvcs;
			/* First sight (ferryd start, a new service): nothing changed yet. */
			*s = (struct svc_state){ .svc_id = key, .sig = sig };
			remember_shares(s, ids, shares, n);
		}
		s->present = true;
		if (s->sig == sig)
			continue;
		s->sig = sig;
		mark_shrunk(s, ids, shares, n);
		remember_shares(s, ids, shares, n);
		pol = find_policy(r, &sm.vip);
		snprintf(vip, sizeof(vip), "service %u", key);
		if (pol && pol->off) {
			pr_info("rebalance: %s (%s) changed; ferry.io/rebalance is off, held "
				"connections stay",
				vip, sm.deployment);
			continue;
		}
		drop_marks_of(r, key);
		s->pending = true;
		s->start_ns = now;
		s->window_ns = pol ? pol->window_ns : DEFAULT_WINDOW_NS;
		s->end_ns = now + s->window_ns + GRACE_NS;
		r->st.rounds++;
	}
	/* A service that went away takes its marks along. */
	i = 0;
	while (i < r->nsvcs) {
		if (!r->svcs[i].present) {
			drop_marks_of(r, r->svcs[i].svc_id);
			r->svc_pos[r->svcs[i].svc_id] = 0;
			r->svcs[i] = r->svcs[--r->nsvcs];
			if (i < r->nsvcs)
				r->svc_pos[r->svcs[i].svc_id] = (__u32)i + 1;
		} else {
			i++;
		}
	}
out_unindex:
	for (i = 0; i < np; i++)
		if (pkeys[i] < FERRY_MAX_PREDICTORS)
			r->pred_pos[pkeys[i]] = 0;
}

/* ------------------------------------------------------------- passes */

static int push_recs(struct ferry_rebal *r, const char *buf, size_t len)
{
	size_t n = len / sizeof(struct ferry_rebal_sock);

	if (r->nrecs + n > r->caprecs) {
		size_t cap = r->caprecs ? r->caprecs : 256;
		void *p;

		while (cap < r->nrecs + n)
			cap *= 2;
		p = realloc(r->recs, cap * sizeof(*r->recs));
		if (!p)
			return -ENOMEM;
		r->recs = p;
		r->caprecs = cap;
	}
	memcpy(r->recs + r->nrecs, buf, n * sizeof(struct ferry_rebal_sock));
	r->nrecs += n;
	return 0;
}

static struct mark *find_mark(struct ferry_rebal *r, __u64 cookie)
{
	for (size_t i = 0; i < r->nmarks; i++)
		if (r->marks[i].cookie == cookie)
			return &r->marks[i];
	return NULL;
}

/*
 * The records from..nrecs of this namespace's pass that the iterator left open
 * for a GOAWAY: deliver it now, from this namespace (the raw socket must be
 * in the client's), and note it in the mark so that a later pass ends the
 * socket. A connection that cannot be told is marked to be aborted instead.
 * A told socket the pass ended gets its RST toward the server here too
 * (ferry_goaway__rst_from_rec says why).
 */
static void send_goaways(struct ferry_rebal *r, size_t from)
{
	struct ferry_goaway_sockets sk = { .fd4 = -EBADF, .fd6 = -EBADF };
	bool opened = false;

	for (size_t i = from; i < r->nrecs; i++) {
		const struct ferry_rebal_sock *rec = &r->recs[i];
		struct ferry_goaway_seg seg;
		struct mark *m;
		int err;

		if (rec->verdict != FERRY_RB_GOAWAY && rec->verdict != FERRY_RB_TOLD &&
		    rec->verdict != FERRY_RB_DESTROYED)
			continue;
		m = find_mark(r, rec->cookie);
		if (!m)
			continue;
		if (rec->verdict == FERRY_RB_DESTROYED) {
			/* Phase 2 ended a told socket: the server's side gets an exact RST. */
			if (!m->goaway)
				continue;
			if (!opened) {
				ferry_goaway__open(&sk);
				opened = true;
			}
			ferry_goaway__rst_from_rec(rec, &seg);
			err = ferry_goaway__send(&sk, &seg);
			pr_debug("rebalance: RST after connection %llu at seq %u: %s",
				 (unsigned long long)rec->cookie, rec->snd_una,
				 err ? strerror(-err) : "sent");
			continue;
		}
		if (rec->verdict == FERRY_RB_TOLD) {
			/* The reply path appended it (a connection never idle at a pass). */
			m->km.goaway_ns = monotonic_ns();
			m->km.goaway_end_seq = rec->goaway_end_seq;
			m->goaway = true;
			r->st.goaway++;
			pr_debug("rebalance: GOAWAY appended to connection %llu of service %u "
				 "by the reply path",
				 (unsigned long long)rec->cookie, rec->svc_id);
			goto update;
		}
		if (!opened) {
			ferry_goaway__open(&sk);
			opened = true;
		}
		ferry_goaway__from_rec(rec, &seg);
		err = ferry_goaway__send(&sk, &seg);
		if (err) {
			if (!r->warned_goaway) {
				r->warned_goaway = true;
				pr_warn("rebalance: cannot send a GOAWAY into a client's connection: "
					"%s (a raw socket needs CAP_NET_RAW); such connections are "
					"aborted instead",
					strerror(-err));
			}
			m->km.flags |= FERRY_RB_MARK_ABORT;
		} else {
			m->km.goaway_ns = monotonic_ns();
			m->km.goaway_end_seq = rec->rcv_nxt + (__u32)FERRY_GOAWAY_FRAME_LEN;
			m->goaway = true;
			r->st.goaway++;
			pr_debug(
				"rebalance: GOAWAY into connection %llu of service %u (seq %u ack %u%s)",
				(unsigned long long)rec->cookie, rec->svc_id, rec->rcv_nxt,
				rec->snd_nxt, seg.tstamp ? ", timestamps" : "");
		}
update:
		if (bpf_map_update_elem(r->marks_fd, &m->cookie, &m->km, BPF_EXIST))
			pr_warn("rebalance: cannot update the mark of connection %llu: %s",
				(unsigned long long)m->cookie, strerror(errno));
	}
	if (opened)
		ferry_goaway__close(&sk);
}

/* Runs the iterator once in the calling thread's namespace, appending its records. */
static int run_iter(struct ferry_rebal *r)
{
	static char buf[64 * sizeof(struct ferry_rebal_sock) * 16];
	size_t have = 0, from = r->nrecs;
	ssize_t n;
	int fd, err = 0;

	fd = bpf_iter_create(bpf_link__fd(r->link));
	if (fd < 0)
		return -errno;
	/* Records are whole in each read (the seq_file never splits a bpf_seq_write). */
	while ((n = read(fd, buf + have, sizeof(buf) - have)) > 0) {
		have += (size_t)n;
		err = push_recs(r, buf, have - have % sizeof(struct ferry_rebal_sock));
		if (err)
			break;
		memmove(buf, buf + have - have % sizeof(struct ferry_rebal_sock),
			have % sizeof(struct ferry_rebal_sock));
		have %= sizeof(struct ferry_rebal_sock);
	}
	if (n < 0)
		err = -errno;
	close(fd);
	r->st.passes++;
	send_goaways(r, from);
	return err;
}

/*
 * Every other network namespace of the node, by its processes (pods' pause
 * containers hold theirs): setns() into each, create the iterator there (it
 * binds the namespace at creation), come back. setns changes this thread only.
 */
static void run_pod_netns(struct ferry_rebal *r)
{
	struct stat self, st;
	struct {
		dev_t dev;
		ino_t ino;
	} * seen;
	size_t nseen = 0;
	struct dirent *de;
	DIR *proc;

	if (fstat(r->self_netns_fd, &self))
		return;
	seen = calloc(MAX_NETNS, sizeof(*seen));
	proc = opendir("/proc");
	if (!seen || !proc)
		goto out;
	while ((de = readdir(proc)) && nseen < MAX_NETNS) {
		char path[300];
		size_t i;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", de->d_name);
		if (stat(path, &st))
			continue;
		if (st.st_dev == self.st_dev && st.st_ino == self.st_ino)
			continue;
		for (i = 0; i < nseen && !(seen[i].dev == st.st_dev && seen[i].ino == st.st_ino);
		     i++)
			;
		if (i < nseen)
			continue;
		seen[nseen].dev = st.st_dev;
		seen[nseen].ino = st.st_ino;
		nseen++;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (setns(fd, CLONE_NEWNET)) {
			if (errno == EPERM && !r->warned_eperm) {
				r->warned_eperm = true;
				pr_warn("--rebalance-pod-netns: cannot enter %s: %s (needs "
					"CAP_SYS_ADMIN; pods' connections are not rebalanced)",
					path, strerror(errno));
			}
		} else {
			int err = run_iter(r);

			if (setns(r->self_netns_fd, CLONE_NEWNET)) {
				/* Never go on in a pod's namespace: attaching and metrics assume ours. */
				pr_err("rebalance: cannot return to ferryd's network namespace: %s",
				       strerror(errno));
				abort();
			}
			if (err)
				pr_debug("rebalance: %s: %s", path, strerror(-err));
		}
		close(fd);
	}
out:
	r->st.netns = 1 + (__u32)nseen;
	if (proc)
		closedir(proc);
	free(seen);
}

static int cmp_rec(const void *a, const void *b)
{
	const struct ferry_rebal_sock *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

/* The records are sorted by cookie after each pass: marks x sockets stays cheap. */
static const struct ferry_rebal_sock *find_rec(const struct ferry_rebal *r, __u64 cookie)
{
	struct ferry_rebal_sock key = { .cookie = cookie };

	return bsearch(&key, r->recs, r->nrecs, sizeof(*r->recs), cmp_rec);
}

/* Whether the reply path told m's connection (ferry_l7's GOAWAY state) before it closed. */
static bool told_by_reply(const struct ferry_rebal *r, const struct mark *m)
{
	struct ferry_l7 l7;

	if (!r->st.l7 || !m->flow ||
	    bpf_map_lookup_elem(bpf_map__fd(r->skel->maps.ferry_l7), &m->key, &l7))
		return false;
	return l7.head.goaway == FERRY_L7_GOAWAY_TOLD;
}

static void settle_marks(struct ferry_rebal *r, __u64 now)
{
	size_t i = 0;

	while (i < r->nmarks) {
		const struct ferry_rebal_sock *rec = find_rec(r, r->marks[i].cookie);
		bool drop = true, reply_told = false;
		char svc[48];

		/*
		 * A connection told with a GOAWAY was counted then: its end is not
		 * counted again. One the reply path told and its client closed
		 * before a pass saw it is counted as told, not as gone.
		 */
		if (!rec && !r->marks[i].goaway && told_by_reply(r, &r->marks[i])) {
			reply_told = true;
			r->st.goaway++;
		} else if (!rec)
			r->st.gone += !r->marks[i].goaway;
		else if (rec->verdict == FERRY_RB_DESTROYED)
			r->st.destroyed += !r->marks[i].goaway;
		else if (rec->verdict == FERRY_RB_FAILED)
			r->st.failed++;
		else if (rec->verdict == FERRY_RB_GOAWAY || rec->verdict == FERRY_RB_TOLD)
			drop = false; /* just told (or to be aborted at the next pass) */
		else if (r->marks[i].goaway && rec->l7_goaway >= FERRY_L7_GOAWAY_TOLD)
			drop = false; /* the data path drops its payload: phase 2 ends it at its limit */
		else if (now >
			 r->marks[i].end_ns +
				 (rec->l7_goaway == FERRY_L7_GOAWAY_TELL ? ARMED_GRACE_NS : 0))
			r->st.expired++;
		else
			drop = false;
		if (rec) {
			/* What an adopted mark (adopt_marks) learns at its first pass. */
			r->marks[i].svc_id = rec->svc_id;
			r->marks[i].flow = rec->origin == FERRY_RB_ORIGIN_FLOW;
			r->marks[i].key = rec->key;
			r->marks[i].armed = rec->l7_goaway == FERRY_L7_GOAWAY_TELL;
		}
		if (rec && rec->verdict == FERRY_RB_BUSY) {
			r->st.busy++;
			pr_debug(
				"rebalance: connection %llu of service %u is due and busy (%s%s%s%s%s)",
				(unsigned long long)rec->cookie, rec->svc_id,
				rec->busy & FERRY_RB_BUSY_STATE ? "state " : "",
				rec->busy & FERRY_RB_BUSY_SEND ? "send " : "",
				rec->busy & FERRY_RB_BUSY_RECV ? "recv " : "",
				rec->busy & FERRY_RB_BUSY_L7 ? "l7 " : "",
				rec->busy & FERRY_RB_BUSY_TURN ? "client-spoke-last" : "");
		}
		if (drop) {
			/* An adopted mark learns its service at its first pass (adopt_marks). */
			if (r->marks[i].svc_id)
				snprintf(svc, sizeof(svc), "service %u", r->marks[i].svc_id);
			else
				snprintf(svc, sizeof(svc),
					 "a service (taken over, not seen since)");
			pr_debug("rebalance: connection %llu of %s: %s%s",
				 (unsigned long long)r->marks[i].cookie, svc,
				 reply_told ? "gone (told by the reply path)" :
				 !rec	    ? "gone" :
				 rec->verdict == FERRY_RB_DESTROYED ? "ended" :
				 rec->verdict == FERRY_RB_FAILED    ? "bpf_sock_destroy failed" :
								      "expired",
				 r->marks[i].goaway ? " (told)" : "");
			bpf_map_delete_elem(r->marks_fd, &r->marks[i].cookie);
			r->marks[i] = r->marks[--r->nmarks];
		} else {
			i++;
		}
	}
}

static bool backend_losing(struct ferry_rebal *r, __u32 id)
{
	struct ferry_backend be;

	if (bpf_map_lookup_elem(r->backends_fd, &id, &be))
		return true;
	return be.state != FERRY_BE_ACTIVE || (be.flags & FERRY_BE_F_ADMIN_DRAIN);
}

static void plan_service(struct ferry_rebal *r, struct svc_state *s)
{
	size_t i, n = 0, npreds, nout;
	struct ferry_service svc;
	struct ferry_svc_meta sm;
	__u32 mark_flags = 0;
	__u32 *pred = NULL, *hash = NULL;
	bool *losing = NULL, *out = NULL;
	size_t *idx = NULL;

	s->pending = false;
	if (bpf_map_lookup_elem(r->svc_meta_fd, &s->svc_id, &sm))
		return;
	npreds = s->npreds;
	pred = calloc(r->nrecs + 1, sizeof(*pred));
	hash = calloc(r->nrecs + 1, sizeof(*hash));
	losing = calloc(r->nrecs + 1, sizeof(*losing));
	out = calloc(r->nrecs + 1, sizeof(*out));
	idx = calloc(r->nrecs + 1, sizeof(*idx));
	if (!pred || !hash || !losing || !out || !idx)
		goto out_free;
	for (i = 0; i < r->nrecs; i++) {
		const struct ferry_rebal_sock *rec = &r->recs[i];

		if (rec->svc_id != s->svc_id || rec->verdict != FERRY_RB_SEEN)
			continue;
		idx[n] = i;
		pred[n] = rec->predictor_id;
		hash[n] = (__u32)mix64(rec->cookie ^ s->start_ns);
		losing[n] = backend_losing(r, rec->backend_id);
		n++;
	}
	nout = ferry_rebal__plan(n, pred, losing, hash, npreds, s->pred_ids, s->shares, s->shrunk,
				 out);
	/* ferry.io/protocol: h2c: told with a GOAWAY even where ferry_l7 does not see (host). */
	if (r->services_fd >= 0 && !bpf_map_lookup_elem(r->services_fd, &sm.vip, &svc) &&
	    (svc.flags & FERRY_SVC_F_PROTO_H2C))
		mark_flags = FERRY_RB_MARK_H2C;
	for (i = 0; i < n; i++) {
		const struct ferry_rebal_sock *rec = &r->recs[idx[i]];
		struct ferry_rebal_mark mk = {
			.deadline_ns =
				ferry_rebal__deadline(s->start_ns, s->window_ns, rec->cookie),
			.flags = mark_flags,
		};
		struct mark *m;

		if (!out[i])
			continue;
		m = realloc(r->marks, (r->nmarks + 1) * sizeof(*m));
		if (!m)
			break;
		r->marks = m;
		if (bpf_map_update_elem(r->marks_fd, &rec->cookie, &mk, BPF_ANY)) {
			pr_warn("rebalance: cannot mark a connection of service %u: %s", s->svc_id,
				strerror(errno));
			break;
		}
		r->marks[r->nmarks++] = (struct mark){ .cookie = rec->cookie,
						       .svc_id = s->svc_id,
						       .end_ns = s->end_ns,
						       .km = mk,
						       .flow = rec->origin == FERRY_RB_ORIGIN_FLOW,
						       .key = rec->key };
	}
	pr_info("rebalance: service %u (%s): %zu of %zu connections to end when idle within "
		"%.0f s",
		s->svc_id, sm.deployment, nout, n, s->window_ns / 1e9);
out_free:
	free(pred);
	free(hash);
	free(losing);
	free(out);
	free(idx);
}

void ferry_rebal__tick(struct ferry_rebal *r, __u64 now)
{
	bool pending = false;
	size_t i;
	int err;

	if (!r || !r->st.available)
		return;
	walk_services(r, now);
	for (i = 0; i < r->nsvcs; i++)
		pending |= r->svcs[i].pending;
	/* Nothing to do: no iterator run, so an idle ferryd costs nothing here. */
	if (!pending && !r->nmarks)
		return;
	r->nrecs = 0;
	err = run_iter(r);
	if (err) {
		/* Without this pass's records every mark would look gone: try again next tick. */
		pr_warn("rebalance: the socket iterator failed: %s", strerror(-err));
		return;
	}
	r->st.netns = 1;
	if (r->st.pod_netns)
		run_pod_netns(r);
	if (r->nrecs)
		qsort(r->recs, r->nrecs, sizeof(*r->recs), cmp_rec);
	settle_marks(r, now);
	for (i = 0; i < r->nsvcs; i++)
		if (r->svcs[i].pending)
			plan_service(r, &r->svcs[i]);
}
