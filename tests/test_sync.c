// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's sync layer against real pinned maps (root): a model goes in, and
 * what the kernel holds is read back with plain map lookups, the way the
 * data plane reads it, not through the sync layer's own mirror.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel/dataplane.h"
#include "log.h"
#include "model.h"
#include "kernel/sync.h"
#include "kernel/pins.h"
#include "testing.h"

#define PIN "/sys/fs/bpf/ferry-tsync"
#define SUITE "sync"

static struct ferry_model_backend backend(const char *addr, __u16 port, __u8 state)
{
	struct ferry_model_backend b = { .family = FERRY_AF_INET,
					 .state = state,
					 .port = htons(port) };

	inet_pton(AF_INET, addr, &b.addr[0]);
	return b;
}

/* One service: main (2 backends) and canary (1), weights in percent. */
struct fixture {
	struct ferry_model_backend main_be[2], canary_be[1];
	struct ferry_model_predictor preds[2];
	struct ferry_model_service svc;
	struct ferry_model model;
};

static void fixture_init(struct fixture *f, __u32 main_pct, __u32 canary_pct)
{
	memset(f, 0, sizeof(*f));
	f->main_be[0] = backend("198.18.11.2", 9000, FERRY_BE_ACTIVE);
	f->main_be[1] = backend("198.18.12.2", 9000, FERRY_BE_ACTIVE);
	f->canary_be[0] = backend("198.18.13.2", 9000, FERRY_BE_ACTIVE);
	snprintf(f->preds[0].name, sizeof(f->preds[0].name), "main");
	f->preds[0].weight_configured = main_pct * 10000;
	f->preds[0].weight_effective = main_pct * 10000;
	f->preds[0].backends = f->main_be;
	f->preds[0].nbackends = 2;
	snprintf(f->preds[1].name, sizeof(f->preds[1].name), "canary");
	f->preds[1].weight_configured = canary_pct * 10000;
	f->preds[1].weight_effective = canary_pct * 10000;
	f->preds[1].backends = f->canary_be;
	f->preds[1].nbackends = 1;
	f->svc.vip.family = FERRY_AF_INET;
	f->svc.vip.proto = IPPROTO_TCP;
	f->svc.vip.port = htons(8000);
	inet_pton(AF_INET, "198.18.100.10", &f->svc.vip.addr[0]);
	snprintf(f->svc.deployment, sizeof(f->svc.deployment), "models/iris");
	f->svc.sample_every = 1;
	f->svc.table_size = 1021;
	f->svc.predictors = f->preds;
	f->svc.npredictors = 2;
	f->model.services = &f->svc;
	f->model.nservices = 1;
}

/* Applies model, then reads vip's entry in ferry_services into *svc; false (said) when either fails. */
static bool apply_then_entry(struct ferry_sync *sync, const struct ferry_model *model,
			     struct ferry_dp *dp, const struct ferry_vip *vip,
			     struct ferry_service *svc, const char *what)
{
	struct ferry_sync_result res;

	return ASSERT_OK(ferry_sync__apply(sync, model, &res), what) &&
	       ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], vip, svc) ? -errno : 0,
			 "VIP entry");
}

/* A second deployment beside fixture_init()'s: wine on port 8001, backends of its own. */
static void fixture_wine(struct fixture *g, __u32 main_pct, __u32 canary_pct)
{
	fixture_init(g, main_pct, canary_pct);
	g->svc.vip.port = htons(8001);
	snprintf(g->svc.deployment, sizeof(g->svc.deployment), "models/wine");
	g->main_be[0] = backend("198.18.21.2", 9000, FERRY_BE_ACTIVE);
	g->main_be[1] = backend("198.18.22.2", 9000, FERRY_BE_ACTIVE);
	g->canary_be[0] = backend("198.18.23.2", 9000, FERRY_BE_ACTIVE);
	g->preds[0].backends = g->main_be;
	g->preds[1].backends = g->canary_be;
}

/*
 * Reads the service's selection the way the data plane does: the VIP entry,
 * its predictor stage (ferry_selectors), and each weighted predictor's table
 * (outer slot, inner map). *main / *canary get the effective weights (ppm);
 * *empty counts weighted predictors whose table names no backend of theirs.
 */
static bool kernel_shares(struct ferry_dp *dp, const struct ferry_vip *vip, __u32 *main_w,
			  __u32 *canary_w, __u32 *empty)
{
	struct ferry_select sel;
	struct ferry_service svc;
	__u32 i;

	*main_w = *canary_w = *empty = 0;
	if (!ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], vip, &svc) ? -errno : 0,
		       "VIP entry") ||
	    !ASSERT_OK(bpf_map_lookup_elem_flags(dp->map_fds[FERRY_M_SELECT], &svc.id, &sel,
						 BPF_F_LOCK) ?
			       -errno :
			       0,
		       "predictor stage"))
		return false;
	for (i = 0; i < sel.npredictors && i < FERRY_MAX_SVC_PREDICTORS; i++) {
		struct ferry_table_cell cell;
		struct ferry_pred_meta pm;
		struct ferry_backend be;
		__u32 inner_id, key = 0, p = sel.preds[i].predictor_id, slot, idx, id;
		int inner;

		if (!ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_PRED_META], &p, &pm) ?
				       -errno :
				       0,
			       "predictor meta"))
			return false;
		ASSERT_EQ(pm.weight_effective, sel.preds[i].weight,
			  "meta says what the kernel holds");
		if (!strcmp(pm.name, "main"))
			*main_w = sel.preds[i].weight;
		else
			*canary_w = sel.preds[i].weight;
		if (!sel.preds[i].weight)
			continue;
		if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_TABLES], &p, &inner_id)) {
			(*empty)++;
			continue;
		}
		inner = bpf_map_get_fd_by_id(inner_id);
		if (!ASSERT_TRUE(inner >= 0, "inner table by id"))
			return false;
		/* every slot names a backend of this predictor */
		if (bpf_map_lookup_elem(inner, &key, &cell) || !cell.head.size) {
			(*empty)++;
			close(inner);
			continue;
		}
		for (slot = 0; slot < cell.head.size; slot++) {
			struct ferry_table_cell sc, ic;
			__u32 head_size = cell.head.size;

			key = FERRY_TABLE_SLOT_CELL(slot);
			if (bpf_map_lookup_elem(inner, &key, &sc))
				break;
			idx = sc.slot[slot % 4];
			key = FERRY_TABLE_ID_CELL(head_size, idx);
			if (idx >= cell.head.nbackends || bpf_map_lookup_elem(inner, &key, &ic))
				break;
			id = ic.backend_id[idx % 2];
			if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_BACKENDS], &id, &be) ||
			    be.predictor_id != p)
				break;
		}
		if (slot != cell.head.size)
			(*empty)++;
		close(inner);
	}
	return true;
}

static struct ferry_dp *open_dp(void)
{
	return ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = PIN });
}

/*
 * A data plane of its own (PIN, reset first) and a sync on it; iris (f) and
 * wine (g) with their main predictors' shares in percent, both in both[].
 * NULL (and *dp maybe NULL) when either could not be opened.
 */
static struct ferry_sync *open_iris_wine(struct ferry_dp **dp, struct fixture *f, struct fixture *g,
					 struct ferry_model_service both[2], __u32 iris_main,
					 __u32 wine_main)
{
	ferry_dp__reset(PIN);
	*dp = open_dp();
	fixture_init(f, iris_main, 100 - iris_main);
	fixture_wine(g, wine_main, 100 - wine_main);
	both[0] = f->svc;
	both[1] = g->svc;
	return *dp ? ferry_sync__new(*dp, NULL) : NULL;
}

static void test_apply_and_read_back(void)
{
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp;
	struct fixture f;
	__u32 m, c, e;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	if (!ASSERT_TRUE(dp, "open data plane"))
		return;
	sync = ferry_sync__new(dp, NULL);
	if (!ASSERT_TRUE(sync, "sync"))
		goto out;
	fixture_init(&f, 90, 10);
	if (!ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply"))
		goto out;
	ASSERT_EQ(res.tables_swapped, 2, "one table per predictor");
	ASSERT_EQ(res.backends_added, 3, "three backends");
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		/* Exact weights in the predictor stage; every slot names its predictor's backend. */
		ASSERT_EQ(e, 0, "every table complete");
		ASSERT_EQ(m, 900000, "main's weight");
		ASSERT_EQ(c, 100000, "canary's weight");
	}

	/* Weight change: one write of the predictor stage, no table built; 0 is exactly 0. */
	fixture_init(&f, 0, 100);
	if (!ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply 0/100"))
		goto out;
	ASSERT_EQ(res.tables_swapped, 0, "a weight change builds no table");
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 0, "main's weight 0");
		ASSERT_EQ(c, 1000000, "canary takes everything");
	}

	/* traffic 0 everywhere (docs/configuration.md): an even split, not nothing. */
	fixture_init(&f, 0, 0);
	if (ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply 0/0") &&
	    kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 500000, "all zero: main half");
		ASSERT_EQ(c, 500000, "all zero: canary half");
	}

	/* The canary's only backend not ready: its share moves to main. */
	fixture_init(&f, 80, 20);
	f.canary_be[0].state = FERRY_BE_UNREADY;
	if (ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply 80/20, canary unready") &&
	    kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 1000000, "no ready canary: main takes all");
		ASSERT_EQ(c, 0, "no ready canary: 0");
		ASSERT_EQ(e, 0, "no weighted predictor without a table");
	}
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* A restarted ferryd (new sync, same pins) writes nothing when nothing changed. */
static void test_restart_is_hitless(void)
{
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_service before, after;
	struct ferry_dp *dp = NULL;
	struct fixture f;
	__u32 m, c, e;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	fixture_init(&f, 75, 25);
	dp = open_dp();
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	if (!ASSERT_TRUE(sync, "first ferryd") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "first apply"))
		goto out;
	bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], &f.svc.vip, &before);
	ferry_sync__free(sync);
	ferry_dp__close(dp);

	dp = open_dp();
	if (!ASSERT_TRUE(dp && !dp->created, "second ferryd reuses the pins"))
		goto out_nosync;
	sync = ferry_sync__new(dp, NULL);
	if (!ASSERT_TRUE(sync, "second sync reads the pinned state") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "second apply"))
		goto out;
	ASSERT_EQ(res.tables_swapped, 0, "no table swapped after a restart");
	ASSERT_EQ(res.backends_added, 0, "no backend re-added");
	ASSERT_EQ(res.backends_removed, 0, "no backend removed");
	bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], &f.svc.vip, &after);
	ASSERT_EQ(after.id, before.id, "same service id");
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(e, 0, "every table complete");
		ASSERT_EQ(m + c, FERRY_WEIGHT_ONE, "weights sum to one");
	}
out:
	ferry_sync__free(sync);
out_nosync:
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* Draining, an override, and a deleted service, read back from the kernel. */
static void test_override_drain_delete(void)
{
	const char *names[] = { "main", "canary" };
	const __u32 weights[] = { 0, FERRY_WEIGHT_ONE };
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_service svc;
	struct ferry_dp *dp;
	struct fixture f;
	size_t changed = 0;
	__u32 m, c, e;
	int err;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	fixture_init(&f, 50, 50);
	if (!ASSERT_TRUE(sync, "sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply"))
		goto out;

	/* ferryctl's way: a fresh sync of its own reads the maps, overrides, exits. */
	{
		struct ferry_sync *ctl = ferry_sync__new(dp, NULL);

		err = ctl ? ferry_sync__override(ctl, &f.svc.vip, names, weights, 2, false) :
			    -errno;
		ferry_sync__free(ctl);
		if (!ASSERT_OK(err, "override from another writer"))
			goto out;
	}
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 0, "override 0/100: main has no weight");
		ASSERT_EQ(c, FERRY_WEIGHT_ONE, "override 0/100: canary has all");
	}
	/* The manifest applied again does not undo the override. */
	ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "re-apply");
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e))
		ASSERT_EQ(m, 0, "override survives a sync");
	ASSERT_OK(ferry_sync__override(sync, &f.svc.vip, NULL, NULL, 0, true), "clear");
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 500000, "cleared: main back to half");
		ASSERT_EQ(c, 500000, "cleared: canary back to half");
	}

	/* Drain the canary's only backend: its share moves to main. */
	if (ASSERT_OK(ferry_sync__set_backend_state(sync, FERRY_AF_INET, f.canary_be[0].addr, 0,
						    FERRY_BE_DRAINING, &changed),
		      "drain") &&
	    ASSERT_EQ(changed, 1, "one backend drained") &&
	    kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(c, 0, "a drained predictor has no weight");
		ASSERT_EQ(m, 1000000, "main takes everything");
	}

	/* The deployment goes away: VIP entry and table slot go too. */
	f.model.nservices = 0;
	if (ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply nothing")) {
		ASSERT_EQ(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], &f.svc.vip, &svc),
			  -ENOENT, "VIP entry removed");
		ASSERT_EQ(res.backends_removed, 3, "backends removed");
	}
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/*
 * A sync writes only the services whose model changed: another writer's
 * override of an unchanged service stays (its predictor stage and its
 * metadata, generation included), the changed one gets its new weights.
 */
static void test_unchanged_service_kept(void)
{
	const char *names[] = { "main", "canary" };
	const __u32 weights[] = { 0, FERRY_WEIGHT_ONE };
	struct ferry_model_service both[2];
	struct ferry_model model = { .services = both, .nservices = 2 };
	struct ferry_svc_meta meta_before, meta_after;
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_service svc;
	struct ferry_dp *dp;
	struct fixture f, g;
	__u32 m, c, e;
	int err;

	TEST_NEEDS_ROOT();
	sync = open_iris_wine(&dp, &f, &g, both, 50, 90);
	if (!ASSERT_TRUE(sync, "sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply"))
		goto out;
	{
		struct ferry_sync *ctl = ferry_sync__new(dp, NULL);

		err = ctl ? ferry_sync__override(ctl, &f.svc.vip, names, weights, 2, false) :
			    -errno;
		ferry_sync__free(ctl);
		if (!ASSERT_OK(err, "override from another writer"))
			goto out;
	}
	if (!ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], &f.svc.vip, &svc) ?
			       -errno :
			       0,
		       "VIP entry") ||
	    !ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SVC_META], &svc.id, &meta_before) ?
			       -errno :
			       0,
		       "meta"))
		goto out;

	/* Only wine's weights change. */
	g.preds[0].weight_configured = 800000;
	g.preds[1].weight_configured = 200000;
	both[1] = g.svc;
	if (!ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply wine's edit"))
		goto out;
	ASSERT_EQ(res.tables_swapped, 0, "a weight edit builds no table");
	if (kernel_shares(dp, &g.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 800000, "wine's new main weight");
		ASSERT_EQ(c, 200000, "wine's new canary weight");
	}
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 0, "iris keeps the other writer's override");
		ASSERT_EQ(c, FERRY_WEIGHT_ONE, "iris keeps the other writer's override");
	}
	if (ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SVC_META], &svc.id, &meta_after) ?
			      -errno :
			      0,
		      "meta after"))
		ASSERT_EQ(meta_after.table_generation, meta_before.table_generation,
			  "iris's metadata not written back older");

	/* Its model changing at last, iris is applied (and the override still holds). */
	f.svc.sample_every = 2;
	both[0] = f.svc;
	if (apply_then_entry(sync, &model, dp, &f.svc.vip, &svc, "apply iris's edit")) {
		ASSERT_EQ(svc.sample_every, 2, "iris's change written");
		if (kernel_shares(dp, &f.svc.vip, &m, &c, &e))
			ASSERT_EQ(m, 0, "override survives");
	}
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* True when the filter map id holds exactly the words want. */
static bool filter_is(struct ferry_dp *dp, enum ferry_map_id id, const __u64 *want, __u32 nwords,
		      const char *what)
{
	bool ok = true;
	__u64 got;

	for (__u32 i = 0; i < nwords && ok; i++) {
		ok = ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[id], &i, &got), what);
		ok = ok && ASSERT_EQ(got, want[i], what);
	}
	return ok;
}

/*
 * True when ferry_vip_bits holds exactly the bits of the n services and of
 * their addresses (port 0, protocol 0), and ferry_be_bits those of their
 * backends (and the source of reply, when not NULL): no bit missing, none
 * left over.
 */
static bool filters_are(struct ferry_dp *dp, const struct ferry_model_service *svcs, int n,
			const struct ferry_flow_key *reply, const char *what)
{
	static __u64 vips[FERRY_VIP_BITS_WORDS], bes[FERRY_BE_BITS_WORDS];
	__u32 b;

	memset(vips, 0, sizeof(vips));
	memset(bes, 0, sizeof(bes));
	for (int i = 0; i < n; i++) {
		const struct ferry_vip *v = &svcs[i].vip;

		b = ferry_vip_bit(v->addr, v->port, v->proto);
		vips[b / 64] |= 1ULL << (b % 64);
		b = ferry_vip_bit(v->addr, 0, 0);
		vips[b / 64] |= 1ULL << (b % 64);
		for (size_t p = 0; p < svcs[i].npredictors; p++)
			for (size_t k = 0; k < svcs[i].predictors[p].nbackends; k++) {
				const struct ferry_model_backend *be =
					&svcs[i].predictors[p].backends[k];

				b = ferry_be_bit(be->addr, be->port);
				bes[b / 64] |= 1ULL << (b % 64);
			}
	}
	if (reply) {
		b = ferry_be_bit(reply->saddr, reply->sport);
		bes[b / 64] |= 1ULL << (b % 64);
	}
	return filter_is(dp, FERRY_M_VIP_BITS, vips, FERRY_VIP_BITS_WORDS, what) &&
	       filter_is(dp, FERRY_M_BE_BITS, bes, FERRY_BE_BITS_WORDS, what);
}

/*
 * The filters follow the services and backends: a sync sets the bits of the
 * services and backends it writes and clears those of the ones it deletes,
 * and a new mirror (ferryd's start, whose programs attach after it) rewrites
 * both filters from what the pins hold, as after an upgrade from a release
 * that had none.
 */
static void test_filters(void)
{
	struct ferry_model_service both[2];
	struct ferry_model model = { .services = both, .nservices = 2 };
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp;
	struct ferry_rflow rflow = {};
	struct ferry_flow_key reply;
	struct fixture f, g;
	__u64 zero = 0;

	TEST_NEEDS_ROOT();
	sync = open_iris_wine(&dp, &f, &g, both, 90, 50);
	if (!ASSERT_TRUE(sync, "sync") || !filters_are(dp, both, 0, NULL, "no service, no bit") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply both") ||
	    !filters_are(dp, both, 2, NULL, "both services' bits"))
		goto out;
	model.nservices = 1;
	if (!ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply iris alone") ||
	    !filters_are(dp, both, 1, NULL, "wine's bits cleared"))
		goto out;

	/*
	 * Pins without the filters' content: the next mirror writes them whole,
	 * with the sources of the reply halves on a data plane this process
	 * created (a migration carries those, not their backends).
	 */
	ferry_sync__free(sync);
	memset(&reply, 0, sizeof(reply));
	reply.saddr[0] = htonl(0xc6336407); /* 198.51.100.7, no backend's */
	reply.sport = htons(9000);
	reply.proto = IPPROTO_TCP;
	reply.family = FERRY_AF_INET;
	if (!ASSERT_TRUE(dp->created, "a data plane this test created") ||
	    !ASSERT_OK(bpf_map_update_elem(dp->map_fds[FERRY_M_RFLOWS], &reply, &rflow, 0),
		       "a carried reply half"))
		goto out;
	for (__u32 i = 0; i < FERRY_VIP_BITS_WORDS; i++)
		bpf_map_update_elem(dp->map_fds[FERRY_M_VIP_BITS], &i, &zero, 0);
	for (__u32 i = 0; i < FERRY_BE_BITS_WORDS; i++)
		bpf_map_update_elem(dp->map_fds[FERRY_M_BE_BITS], &i, &zero, 0);
	sync = ferry_sync__new(dp, NULL);
	if (ASSERT_TRUE(sync, "a new mirror"))
		filters_are(dp, both, 1, &reply, "the filters rewritten from the pins");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* The backends at addr:port in the kernel (*n), and how many have FERRY_BE_F_SOLE (*sole). */
static void sole_count(struct ferry_dp *dp, const char *addr, __u16 port, __u32 *n, __u32 *sole)
{
	struct ferry_backend be;
	__be32 a = 0;

	inet_pton(AF_INET, addr, &a);
	*n = *sole = 0;
	for (__u32 id = 1; id < FERRY_MAX_BACKENDS; id++) {
		if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_BACKENDS], &id, &be) ||
		    be.state == FERRY_BE_UNUSED || be.addr[0] != a || be.port != htons(port))
			continue;
		(*n)++;
		*sole += !!(be.flags & FERRY_BE_F_SOLE);
	}
}

/*
 * FERRY_BE_F_SOLE (a new flow to the backend skips the reply-clash lookup):
 * on every backend whose endpoint no other service has, taken away from
 * both when a second service takes the endpoint (before its VIP exists, so
 * no flow of it can meet a backend still marked), given back once that
 * service lets it go.
 */
static void test_backend_sole(void)
{
	struct ferry_model_service both[2];
	struct ferry_model model = { .services = both, .nservices = 2 };
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp;
	struct fixture f, g;
	__u32 n, sole;

	TEST_NEEDS_ROOT();
	sync = open_iris_wine(&dp, &f, &g, both, 90, 50);
	if (!ASSERT_TRUE(sync, "sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply iris and wine"))
		goto out;
	sole_count(dp, "198.18.11.2", 9000, &n, &sole);
	ASSERT_TRUE(n == 1 && sole == 1, "iris's main backend: sole");
	sole_count(dp, "198.18.23.2", 9000, &n, &sole);
	ASSERT_TRUE(n == 1 && sole == 1, "wine's canary backend: sole");

	/* wine's canary moves onto iris's canary endpoint: two services share it. */
	g.canary_be[0] = backend("198.18.13.2", 9000, FERRY_BE_ACTIVE);
	both[1] = g.svc;
	if (!ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply the shared endpoint"))
		goto out;
	sole_count(dp, "198.18.13.2", 9000, &n, &sole);
	ASSERT_EQ(n, 2, "one backend per service at the shared endpoint");
	ASSERT_EQ(sole, 0, "neither is sole");
	sole_count(dp, "198.18.12.2", 9000, &n, &sole);
	ASSERT_TRUE(n == 1 && sole == 1, "the others stay sole");

	/* A restarted ferryd reads the flags back and writes nothing. */
	ferry_sync__free(sync);
	sync = ferry_sync__new(dp, NULL);
	if (!ASSERT_TRUE(sync, "a new mirror") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply again"))
		goto out;
	sole_count(dp, "198.18.13.2", 9000, &n, &sole);
	ASSERT_EQ(sole, 0, "still shared after a restart");

	/* wine lets it go: iris's backend is sole again in the same sync. */
	g.canary_be[0] = backend("198.18.23.2", 9000, FERRY_BE_ACTIVE);
	both[1] = g.svc;
	if (!ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply wine's own canary"))
		goto out;
	sole_count(dp, "198.18.13.2", 9000, &n, &sole);
	ASSERT_TRUE(n == 1 && sole == 1, "iris's canary sole again");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/*
 * A model service made by the config build carries its build's identity
 * (build_gen): the sync keeps the very build it applied last without reading
 * it again, and keeps that service's predictors and backends without
 * marking each one, while a service that left the model still loses its own.
 */
static void test_kept_by_build(void)
{
	struct ferry_model_service both[2];
	struct ferry_model model = { .services = both, .nservices = 2 };
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_service svc;
	struct ferry_dp *dp;
	struct fixture f, g;
	__u32 m, c, e;

	TEST_NEEDS_ROOT();
	sync = open_iris_wine(&dp, &f, &g, both, 90, 50);
	f.svc.build_gen = both[0].build_gen = 1;
	g.svc.build_gen = both[1].build_gen = 2;
	if (!ASSERT_TRUE(sync, "sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply both"))
		goto out;

	/* wine leaves; iris, the same build, is kept with everything it has. */
	model.nservices = 1;
	if (!ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply iris alone"))
		goto out;
	ASSERT_EQ(res.backends_removed, 3, "wine's backends removed, iris's kept");
	ASSERT_EQ(res.tables_swapped, 0, "no table built");
	if (ASSERT_TRUE(kernel_shares(dp, &f.svc.vip, &m, &c, &e), "iris's selection")) {
		ASSERT_EQ(m, 900000, "iris's main weight");
		ASSERT_EQ(e, 0, "iris's tables still name its backends");
	}
	ASSERT_TRUE(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], &g.svc.vip, &svc) &&
			    errno == ENOENT,
		    "wine's VIP entry gone");

	/*
	 * The same build is not read again: a change to it (which the build
	 * never makes) is not seen, which shows that the identity is what was
	 * compared; the same content from a new build is applied.
	 */
	f.svc.sample_every = 2;
	both[0] = f.svc;
	if (apply_then_entry(sync, &model, dp, &f.svc.vip, &svc, "apply the same build"))
		ASSERT_EQ(svc.sample_every, 1, "the same build: kept as applied");
	both[0].build_gen = 3;
	if (apply_then_entry(sync, &model, dp, &f.svc.vip, &svc, "apply a new build"))
		ASSERT_EQ(svc.sample_every, 2, "a new build: applied");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* ferryd's ferry_predictor_no_ready_backend: the weighted predictors with no ready backend. */
static void test_no_ready(void)
{
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_pred_meta pm;
	struct ferry_dp *dp;
	struct fixture f;
	__u32 ids[4] = {};
	size_t n;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	fixture_init(&f, 90, 10);
	if (!ASSERT_TRUE(sync, "sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply"))
		goto out;
	ASSERT_EQ(ferry_sync__no_ready(sync, ids, 4), 0, "all ready: none");

	f.canary_be[0].state = FERRY_BE_UNREADY;
	if (!ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "canary unready"))
		goto out;
	n = ferry_sync__no_ready(sync, ids, 4);
	if (ASSERT_EQ(n, 1, "one predictor") &&
	    ASSERT_OK(bpf_map_lookup_elem(dp->map_fds[FERRY_M_PRED_META], &ids[0], &pm) ? -errno :
											  0,
		      "its meta"))
		ASSERT_STREQ(pm.name, "canary", "the canary");

	/* A predictor with no weight is not missing anything. */
	f.preds[1].weight_configured = 0;
	f.preds[0].weight_configured = FERRY_WEIGHT_ONE;
	if (ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "canary at 0"))
		ASSERT_EQ(ferry_sync__no_ready(sync, ids, 4), 0, "none with weight");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/*
 * Backends are written in one batch before the tables that name them. When
 * that write fails (here ferry_backends swapped for a one-entry array: E2BIG),
 * nothing may point at the missing backends: no VIP entry, no table; the
 * service is not kept as applied, so the next sync writes it whole.
 */
static void test_failed_batch_held(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, none);
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_service svc;
	int tiny = -1, real = -1;
	struct ferry_dp *dp;
	struct fixture f;
	__u32 m, c, e;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	fixture_init(&f, 90, 10);
	tiny = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ferry_tiny", sizeof(__u32),
			      sizeof(struct ferry_backend), 1, &none);
	if (!ASSERT_TRUE(sync, "sync") || !ASSERT_TRUE(tiny >= 0, "one-entry array"))
		goto out;
	real = dp->map_fds[FERRY_M_BACKENDS];
	dp->map_fds[FERRY_M_BACKENDS] = tiny;
	ASSERT_TRUE(ferry_sync__apply(sync, &f.model, &res) < 0, "apply fails");
	dp->map_fds[FERRY_M_BACKENDS] = real;
	ASSERT_EQ(bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], &f.svc.vip, &svc) ? errno : 0,
		  ENOENT, "no VIP entry points at backends the kernel has not got");
	ASSERT_EQ(res.tables_swapped, 2, "tables built");

	if (!ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "the next sync"))
		goto out;
	ASSERT_EQ(res.tables_swapped, 2, "its tables built again");
	if (kernel_shares(dp, &f.svc.vip, &m, &c, &e)) {
		ASSERT_EQ(m, 900000, "main");
		ASSERT_EQ(c, 100000, "canary");
		ASSERT_EQ(e, 0, "every slot names a backend of its predictor");
	}
out:
	if (tiny >= 0)
		close(tiny);
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* PIN/ferry_svc_names: what ferryctl resolves a deployment name with (pins.h). */
static int name_ids(const char *name, __u32 *ids)
{
	char path[PATH_MAX], key[FERRY_NAME_LEN] = {};
	struct ferry_svc_name v = {};
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", PIN, FERRY_MAP_SVC_NAMES);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	snprintf(key, sizeof(key), "%s", name);
	n = bpf_map_lookup_elem(fd, key, &v) ? -errno : (int)v.nids;
	for (int i = 0; i < FERRY_SVC_NAME_IDS; i++)
		ids[i] = v.ids[i];
	close(fd);
	return n;
}

static __u32 vip_id(struct ferry_dp *dp, const struct ferry_vip *vip)
{
	struct ferry_service svc;

	return bpf_map_lookup_elem(dp->map_fds[FERRY_M_SERVICES], vip, &svc) ? 0 : svc.id;
}

/*
 * The name index follows services in, out and between deployments, and a
 * sync that finds it gone writes every name again.
 */
static void test_name_index(void)
{
	struct ferry_model_service two[2];
	struct ferry_model model = { .services = two, .nservices = 2 };
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	char path[PATH_MAX];
	struct ferry_dp *dp;
	struct fixture f, g;
	__u32 ids[FERRY_SVC_NAME_IDS] = {}, a, b;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	fixture_init(&f, 90, 10);
	fixture_init(&g, 90, 10);
	g.svc.vip.port = htons(8001); /* iris's second VIP */
	two[0] = f.svc;
	two[1] = g.svc;
	if (!ASSERT_TRUE(sync, "sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply"))
		goto out;
	a = vip_id(dp, &f.svc.vip);
	b = vip_id(dp, &g.svc.vip);
	{
		struct ferry_config cfg;
		__u64 dated = 0;

		/* The empty name dates the index with the generation in force (pins.h). */
		if (ASSERT_EQ(name_ids("", ids), 0, "the dating entry") &&
		    ASSERT_OK(ferry_dp__config_read(dp, &cfg), "ferry_config")) {
			dated = (__u64)ids[1] << 32 | ids[0];
			ASSERT_EQ(dated, cfg.generation, "dated with the generation in force");
		}
	}
	if (ASSERT_EQ(name_ids("models/iris", ids), 2, "iris has two services"))
		ASSERT_TRUE((ids[0] == a && ids[1] == b) || (ids[0] == b && ids[1] == a),
			    "their ids");

	/* The second VIP moves to another deployment. */
	snprintf(two[1].deployment, sizeof(two[1].deployment), "models/wine");
	if (!ASSERT_OK(ferry_sync__apply(sync, &model, &res), "VIP moved"))
		goto out;
	if (ASSERT_EQ(name_ids("models/iris", ids), 1, "iris keeps one"))
		ASSERT_EQ(ids[0], a, "iris's own");
	if (ASSERT_EQ(name_ids("models/wine", ids), 1, "wine has it"))
		ASSERT_EQ(ids[0], b, "the moved VIP's id");

	/* Gone from the pins: the next sync writes every name, an unchanged model too. */
	snprintf(path, sizeof(path), "%s/%s", PIN, FERRY_MAP_SVC_NAMES);
	unlink(path);
	ferry_sync__free(sync);
	sync = ferry_sync__new(dp, NULL);
	if (!ASSERT_TRUE(sync, "a restarted ferryd's sync") ||
	    !ASSERT_OK(ferry_sync__apply(sync, &model, &res), "apply again"))
		goto out;
	ASSERT_EQ(name_ids("models/iris", ids), 1, "iris written again");
	ASSERT_EQ(name_ids("models/wine", ids), 1, "wine written again");

	/* Wine deleted: its name leaves the index. */
	model.nservices = 1;
	if (ASSERT_OK(ferry_sync__apply(sync, &model, &res), "wine deleted"))
		ASSERT_EQ(name_ids("models/wine", ids), -ENOENT, "no wine");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/* ------------------------------------------------------------- flow GC */

#define GC_FLOWS 10000 /* more than two of the sync layer's 4,096-entry batches */
#define SEC 1000000000ULL

/* A flow to the fixture's VIP from client i, on backend addr:9000. */
static void gc_flow(struct ferry_flow_key *key, struct ferry_flow *flow, __u32 i, __u8 proto,
		    const char *addr, __u32 backend_id, __u64 last_ns, __u32 flags)
{
	memset(key, 0, sizeof(*key));
	memset(flow, 0, sizeof(*flow));
	key->family = FERRY_AF_INET;
	key->proto = proto;
	key->saddr[0] = htonl(0x0a000000 | i);
	inet_pton(AF_INET, "198.18.100.10", &key->daddr[0]);
	key->sport = htons(1024 + i % 50000);
	key->dport = htons(8000);
	inet_pton(AF_INET, addr, &flow->backend_addr[0]);
	flow->backend_port = htons(9000);
	flow->family = FERRY_AF_INET;
	flow->backend_id = backend_id;
	flow->flags = flags;
	flow->last_ns = last_ns;
}

/* Writes both halves of a flow: confirmed (ferry_flows, ferry_rflows) or embryonic. */
static int gc_put(struct ferry_dp *dp, bool emb, const struct ferry_flow_key *key,
		  const struct ferry_flow *flow)
{
	struct ferry_flow_key rkey;
	struct ferry_rflow rflow = { .family = FERRY_AF_INET, .backend_id = flow->backend_id };

	ferry_flow__reverse_key(&rkey, key, flow);
	rflow.fwd = *key;
	if (bpf_map_update_elem(dp->map_fds[emb ? FERRY_M_EFLOWS : FERRY_M_FLOWS], key, flow,
				BPF_ANY))
		return -errno;
	if (bpf_map_update_elem(dp->map_fds[emb ? FERRY_M_ERFLOWS : FERRY_M_RFLOWS], &rkey, &rflow,
				BPF_ANY))
		return -errno;
	return 0;
}

/* Entries of fd, a flow map. */
static __u32 map_count(int fd)
{
	struct ferry_flow_key key, next, *prev = NULL;
	__u32 n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		n++;
	}
	return n;
}

/* ferry_flows entries on backend_id. */
static __u32 flows_on(int fd, __u32 backend_id)
{
	struct ferry_flow_key key, next, *prev = NULL;
	struct ferry_flow flow;
	__u32 n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		n += !bpf_map_lookup_elem(fd, &key, &flow) && flow.backend_id == backend_id;
	}
	return n;
}

static bool has_key(int fd, const struct ferry_flow_key *key, void *val)
{
	return !bpf_map_lookup_elem(fd, key, val);
}

/*
 * The flow GC over tables larger than one batch: idle, closed, embryonic and
 * UDP flows past their limits go with their reply halves, live ones stay,
 * and a reply half already gone does not stop the others from going.
 */
static void test_gc_flows(void)
{
	/* Short limits: flow times are CLOCK_MONOTONIC, which a fresh VM has little of. */
	const struct ferry_gc_opts o = { .tcp_idle_ns = 8 * SEC,
					 .tcp_closing_ns = 4 * SEC,
					 .embryonic_ns = 2 * SEC,
					 .udp_idle_ns = 6 * SEC };
	struct ferry_flow_key key, rkey, first_idle, first_live;
	struct ferry_gc_result res = {};
	struct ferry_sync *sync = NULL;
	struct ferry_flow flow, got;
	struct ferry_rflow rgot;
	struct ferry_dp *dp;
	struct timespec ts;
	__u64 now;
	__u32 i;
	int err = 0;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	if (!ASSERT_TRUE(dp, "open data plane"))
		return;
	sync = ferry_sync__new(dp, NULL);
	if (!ASSERT_TRUE(sync, "sync"))
		goto out;
	/* Every age below must fit in the clock (a VM tested right after its boot). */
	do {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (__u64)ts.tv_sec * SEC + ts.tv_nsec;
	} while (now < 10 * SEC && !sleep(1));
	/* Confirmed TCP: even i idle past the limit, odd i live. */
	for (i = 0; i < GC_FLOWS && !err; i++) {
		gc_flow(&key, &flow, i, IPPROTO_TCP, "198.18.11.2", 1, i % 2 ? now : now - 9 * SEC,
			0);
		err = gc_put(dp, false, &key, &flow);
		if (i == 0)
			first_idle = key;
		if (i == 1)
			first_live = key;
	}
	/* Closed 5 s ago (past 4 s, within the idle limit), and closed just now. */
	gc_flow(&key, &flow, GC_FLOWS, IPPROTO_TCP, "198.18.11.2", 1, now - 5 * SEC,
		FERRY_FLOW_F_CLOSING);
	err = err ?: gc_put(dp, false, &key, &flow);
	gc_flow(&key, &flow, GC_FLOWS + 1, IPPROTO_TCP, "198.18.11.2", 1, now,
		FERRY_FLOW_F_CLOSING);
	err = err ?: gc_put(dp, false, &key, &flow);
	/* UDP: 7 s idle (past 6 s, within TCP's limit) and 1 s. */
	gc_flow(&key, &flow, GC_FLOWS + 2, IPPROTO_UDP, "198.18.11.2", 1, now - 7 * SEC, 0);
	err = err ?: gc_put(dp, false, &key, &flow);
	gc_flow(&key, &flow, GC_FLOWS + 3, IPPROTO_UDP, "198.18.11.2", 1, now - SEC, 0);
	err = err ?: gc_put(dp, false, &key, &flow);
	/* Embryonic: 3 s without a handshake (past 2 s, within the closing limit), and a fresh one. */
	gc_flow(&key, &flow, GC_FLOWS + 4, IPPROTO_TCP, "198.18.12.2", 2, now - 3 * SEC, 0);
	err = err ?: gc_put(dp, true, &key, &flow);
	gc_flow(&key, &flow, GC_FLOWS + 5, IPPROTO_TCP, "198.18.12.2", 2, now, 0);
	err = err ?: gc_put(dp, true, &key, &flow);
	if (!ASSERT_OK(err, "write the flows"))
		goto out;
	/* The first idle flow's reply half is gone already (the LRU took it). */
	ASSERT_TRUE(has_key(dp->map_fds[FERRY_M_FLOWS], &first_idle, &got), "first idle flow");
	ferry_flow__reverse_key(&rkey, &first_idle, &got);
	ASSERT_OK(bpf_map_delete_elem(dp->map_fds[FERRY_M_RFLOWS], &rkey), "its reply half gone");

	ASSERT_EQ(ferry_sync__gc_flows(sync, &o, &res), GC_FLOWS / 2 + 3,
		  "idle, closed, UDP and embryonic flows past their limits");
	/* What ferryd exports (ferry_flow_entries, ferry_flow_gc_removed_total). */
	ASSERT_EQ(res.seen[FERRY_FLOWS_CONFIRMED], GC_FLOWS + 4, "confirmed flows seen");
	ASSERT_EQ(res.removed[FERRY_FLOWS_CONFIRMED], GC_FLOWS / 2 + 2, "confirmed flows removed");
	ASSERT_EQ(res.seen[FERRY_FLOWS_EMBRYONIC], 2, "embryonic flows seen");
	ASSERT_EQ(res.removed[FERRY_FLOWS_EMBRYONIC], 1, "embryonic flows removed");
	ASSERT_EQ(res.capacity[FERRY_FLOWS_CONFIRMED], FERRY_MAX_FLOWS, "confirmed table size");
	ASSERT_EQ(res.capacity[FERRY_FLOWS_EMBRYONIC], FERRY_MAX_EMBRYONIC, "embryonic table size");
	ASSERT_EQ(map_count(dp->map_fds[FERRY_M_FLOWS]), GC_FLOWS / 2 + 2,
		  "live confirmed flows kept");
	ASSERT_EQ(map_count(dp->map_fds[FERRY_M_RFLOWS]), GC_FLOWS / 2 + 2,
		  "their reply halves kept, every other one removed");
	ASSERT_EQ(map_count(dp->map_fds[FERRY_M_EFLOWS]), 1, "the fresh embryonic flow kept");
	ASSERT_EQ(map_count(dp->map_fds[FERRY_M_ERFLOWS]), 1, "its reply half kept");
	ASSERT_FALSE(has_key(dp->map_fds[FERRY_M_FLOWS], &first_idle, &got), "idle flow removed");
	if (ASSERT_TRUE(has_key(dp->map_fds[FERRY_M_FLOWS], &first_live, &got), "live flow kept")) {
		ferry_flow__reverse_key(&rkey, &first_live, &got);
		ASSERT_TRUE(has_key(dp->map_fds[FERRY_M_RFLOWS], &rkey, &rgot),
			    "live flow's reply half kept");
	}
	/* A second pass finds nothing more. */
	ASSERT_EQ(ferry_sync__gc_flows(sync, &o, NULL), 0, "second pass");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

/*
 * The flows of a deleted backend go when the sync removes it, over more than
 * one batch; the other backends' flows stay.
 */
static void test_purge_flows(void)
{
	struct ferry_sync_result res;
	struct ferry_sync *sync = NULL;
	struct ferry_flow_key key;
	struct ferry_backend be;
	struct ferry_flow flow;
	struct ferry_dp *dp;
	struct fixture f;
	__u32 canary_id = 0, main_id = 0, i;
	char addr[INET_ADDRSTRLEN];
	int err = 0;

	TEST_NEEDS_ROOT();
	ferry_dp__reset(PIN);
	dp = open_dp();
	if (!ASSERT_TRUE(dp, "open data plane"))
		return;
	sync = ferry_sync__new(dp, NULL);
	if (!ASSERT_TRUE(sync, "sync"))
		goto out;
	fixture_init(&f, 90, 10);
	if (!ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply"))
		goto out;
	for (i = 1; i < FERRY_MAX_BACKENDS && (!canary_id || !main_id); i++) {
		if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_BACKENDS], &i, &be) || !be.port)
			continue;
		inet_ntop(AF_INET, &be.addr[0], addr, sizeof(addr));
		if (!strcmp(addr, "198.18.13.2"))
			canary_id = i;
		else if (!strcmp(addr, "198.18.11.2"))
			main_id = i;
	}
	if (!ASSERT_TRUE(canary_id && main_id, "backend ids"))
		goto out;
	for (i = 0; i < GC_FLOWS && !err; i++) {
		gc_flow(&key, &flow, i, IPPROTO_TCP, i % 2 ? "198.18.13.2" : "198.18.11.2",
			i % 2 ? canary_id : main_id, 0, 0);
		err = gc_put(dp, false, &key, &flow);
	}
	if (!ASSERT_OK(err, "write the flows"))
		goto out;
	/* The canary predictor goes, and its one backend with it. */
	f.svc.npredictors = 1;
	if (!ASSERT_OK(ferry_sync__apply(sync, &f.model, &res), "apply without the canary"))
		goto out;
	ASSERT_EQ(res.backends_removed, 1, "the canary's backend removed");
	ASSERT_EQ(res.flows_purged, GC_FLOWS / 2, "its flows purged");
	ASSERT_EQ(map_count(dp->map_fds[FERRY_M_FLOWS]), GC_FLOWS / 2, "main's flows kept");
	ASSERT_EQ(map_count(dp->map_fds[FERRY_M_RFLOWS]), GC_FLOWS / 2, "main's reply halves kept");
	ASSERT_EQ(flows_on(dp->map_fds[FERRY_M_FLOWS], main_id), GC_FLOWS / 2,
		  "every kept flow is main's");
	ASSERT_EQ(flows_on(dp->map_fds[FERRY_M_FLOWS], canary_id), 0, "none on the canary's");
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_dp__reset(PIN);
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	ferry_log_level = FERRY_LOG_WARN;
	libbpf_set_print(NULL);
	if (geteuid() == 0) {
		struct statfs st;

		/* A second mount would hide every existing pin: only when there is none. */
		if (statfs("/sys/fs/bpf", &st) || (unsigned long)st.f_type != BPF_FS_MAGIC)
			mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL);
	}
	RUN_TEST(SUITE, test_apply_and_read_back);
	RUN_TEST(SUITE, test_restart_is_hitless);
	RUN_TEST(SUITE, test_override_drain_delete);
	RUN_TEST(SUITE, test_unchanged_service_kept);
	RUN_TEST(SUITE, test_kept_by_build);
	RUN_TEST(SUITE, test_filters);
	RUN_TEST(SUITE, test_backend_sole);
	RUN_TEST(SUITE, test_no_ready);
	RUN_TEST(SUITE, test_failed_batch_held);
	RUN_TEST(SUITE, test_name_index);
	RUN_TEST(SUITE, test_gc_flows);
	RUN_TEST(SUITE, test_purge_flows);
	return test__summary();
}
