// SPDX-License-Identifier: GPL-2.0-only
/*
 * Canary analysis (user/canary/canary.c): the judge on synthetic windows, the
 * Mann-Whitney U test against scipy's values, the merge of per-node windows,
 * the false-positive rate on identical distributions, and the rollout state
 * machine. Pure: no root, no maps.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "canary/canary.h"
#include "canary/canary_run.h"
#include "telemetry/hist.h"
#include "telemetry/metrics.h"
#include "testing.h"

#define SUITE "canary"

/* xorshift64*: the same windows on every run. */
static __u64 rng_state;

static double uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(void)
{
	double u = uniform(), v = uniform();

	return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

/* n requests with log-normal latency (median ms, sigma 0.3), errors of them 5xx. */
static void window(struct ferry_canary_counts *c, __u64 n, double median_ms, __u64 errors)
{
	memset(c, 0, sizeof(*c));
	c->requests = n;
	c->http_5xx = errors;
	for (__u64 i = 0; i < n; i++)
		ferry_hist__add(&c->latency, (__u64)(median_ms * 1e6 * exp(0.3 * normal())));
}

static struct ferry_canary_config config(void)
{
	struct ferry_canary_config cfg;

	ferry_canary_config__defaults(&cfg);
	cfg.enabled = true;
	snprintf(cfg.canary, sizeof(cfg.canary), "v2");
	snprintf(cfg.baseline, sizeof(cfg.baseline), "v1");
	return cfg;
}

static struct ferry_canary_counts *pair(void)
{
	return calloc(2, sizeof(struct ferry_canary_counts));
}

static void test_clearly_worse(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;

	rng_state = 1;
	window(&w[0], 1000, 30, 0);
	window(&w[1], 4000, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_FAIL, "verdict");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_LATENCY_P50, "reason");
	ASSERT_GE(j.p50_ratio, 2.7, "p50 ratio");
	ASSERT_LE(j.p50_ratio, 3.3, "p50 ratio");
	ASSERT_LE(j.mwu.p, 1e-6, "U test p");
	free(w);
}

static void test_clearly_equal(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;

	rng_state = 2;
	window(&w[0], 1000, 10, 1);
	window(&w[1], 4000, 10, 4);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_PASS, "verdict");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_OK, "reason");
	ASSERT_TRUE(j.baseline_judged, "baseline judged");
	/* 1000 samples on both sides: the tail is a p99. */
	ASSERT_GE(j.tail_q, 0.99, "p99 judged");
	free(w);
}

/*
 * 5% slower with 20000 samples a side: the U test is sure (p far below 0.01)
 * but the median moved less than the 1.1x floor, so the window passes; at 20%
 * slower it fails on the rank test while p50 and p99 stay under 1.5x.
 */
static void test_slightly_worse(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;

	rng_state = 3;
	window(&w[0], 20000, 10.5, 0);
	window(&w[1], 20000, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_LE(j.mwu.p, 1e-6, "U test significant");
	ASSERT_EQ(j.verdict, FERRY_CANARY_PASS, "under the effect floor");

	window(&w[0], 20000, 12, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_FAIL, "verdict at 1.2x");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_LATENCY_RANK, "reason at 1.2x");
	ASSERT_LE(j.p50_ratio, 1.5, "p50 under the ratio");
	free(w);
}

static void test_too_few_samples(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;

	rng_state = 4;
	/* 50 canary requests, every one an error and slow: still not judged. */
	window(&w[0], 50, 100, 50);
	window(&w[1], 4000, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_INCONCLUSIVE, "verdict");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_FEW_REQUESTS, "reason");

	memset(&w[0], 0, sizeof(w[0]));
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.reason, FERRY_CANARY_R_EMPTY, "empty window");

	/* Below the p90 minimum (100 samples a side) the tail is not judged. */
	window(&w[0], 250, 10, 0);
	window(&w[1], 90, 10, 0);
	cfg.min_requests = 50;
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.tail_q, 0, "no tail quantile under 100 samples");
	window(&w[1], 500, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_GE(j.tail_q, 0.9, "p90 from 100 samples");
	ASSERT_LE(j.tail_q, 0.9, "p90 below 1000 samples");
	free(w);
}

static void test_errors_only(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;

	rng_state = 5;
	window(&w[0], 1000, 10, 100); /* 10% 503s */
	window(&w[1], 4000, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_FAIL, "verdict");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_ERROR_RATE, "reason");

	/* 0.8% against 0.1%: under the 1% rate, over the 0.5% increase. */
	window(&w[0], 1000, 10, 8);
	window(&w[1], 4000, 10, 4);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.reason, FERRY_CANARY_R_ERROR_INCREASE, "increase");

	/* Resets and SYN timeouts count as errors and as attempts. */
	window(&w[0], 980, 10, 0);
	w[0].resets = 15;
	w[0].syn_timeouts = 5;
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.canary_requests, 1000, "attempts");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_ERROR_RATE, "transport errors");
	free(w);
}

static void test_latency_only(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;

	rng_state = 6;
	window(&w[0], 600, 20, 0);
	window(&w[1], 600, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_FAIL, "verdict");
	ASSERT_EQ(j.canary_error_rate, 0, "no errors");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_LATENCY_P50, "reason");

	/* Same median, a slow tail on the canary: 10% of requests 5x slower. */
	window(&w[0], 2000, 10, 0);
	for (int i = 0; i < 200; i++)
		ferry_hist__add(&w[0].latency, 50000000);
	window(&w[1], 2200, 10, 0);
	ferry_canary__judge(&cfg, &w[0], &w[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_FAIL, "tail verdict");
	ASSERT_EQ(j.reason, FERRY_CANARY_R_LATENCY_TAIL, "tail reason");
	free(w);
}

/* Node A saw only canary traffic, node B only baseline: merged, the judgement is the whole's. */
static void test_merge_nodes(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *a = pair(), *b = pair(), *all = pair();
	struct ferry_canary_judgement j;

	rng_state = 7;
	window(&a[0], 300, 30, 2);
	window(&b[1], 900, 10, 1);
	window(&b[0], 150, 30, 1);
	all[0] = a[0];
	all[1] = a[1];
	ferry_canary_counts__merge(&all[0], &b[0]);
	ferry_canary_counts__merge(&all[1], &b[1]);
	ASSERT_EQ(all[0].requests, 450, "requests summed");
	ASSERT_EQ(all[0].http_5xx, 3, "5xx summed");
	ASSERT_EQ(ferry_hist__total(&all[0].latency), 450, "buckets summed");
	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++)
		if (!ASSERT_EQ(all[0].latency.bucket[i],
			       a[0].latency.bucket[i] + b[0].latency.bucket[i], "bucket by bucket"))
			break;
	/* Node A alone has no baseline; node B alone too few canary requests. */
	ferry_canary__judge(&cfg, &a[0], &a[1], &j);
	ASSERT_FALSE(j.baseline_judged, "node A: no baseline");
	ASSERT_EQ(j.verdict, FERRY_CANARY_PASS, "node A: absolute checks only");
	ferry_canary__judge(&cfg, &b[0], &b[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_INCONCLUSIVE, "node B: too few");
	ferry_canary__judge(&cfg, &all[0], &all[1], &j);
	ASSERT_EQ(j.verdict, FERRY_CANARY_FAIL, "merged: 3x slower");
	free(a);
	free(b);
	free(all);
}

/* The same samples as /usr/bin/python3 with scipy 1.10 (see the comment at each case). */
static void test_u_reference(void)
{
	static const __u64 x1[] = { 1500, 2100, 2100, 3300, 5000, 7000, 9100, 12000, 15000, 40000 };
	static const __u64 y1[] = { 1200, 1500, 2000, 2200, 3000, 3100, 4000, 6000 };
	struct ferry_hist *h = calloc(2, sizeof(*h));
	struct ferry_canary_mwu m;

	/*
	 * scipy.stats.mannwhitneyu(bx, by, alternative="greater", method="asymptotic"),
	 * bx, by the kernel bucket of each sample (a bucket is a tie): U 60.5,
	 * p 0.0376294421772992.
	 */
	for (size_t i = 0; i < sizeof(x1) / sizeof(x1[0]); i++)
		ferry_hist__add(&h[0], x1[i]);
	for (size_t i = 0; i < sizeof(y1) / sizeof(y1[0]); i++)
		ferry_hist__add(&h[1], y1[i]);
	ferry_canary__mann_whitney(&h[0], &h[1], &m);
	ASSERT_EQ(m.n1, 10, "n1");
	ASSERT_EQ(m.n2, 8, "n2");
	ASSERT_LE(fabs(m.u - 60.5), 1e-9, "U small");
	ASSERT_LE(fabs(m.p - 0.0376294421772992), 1e-9, "p small");

	/*
	 * Many ties: x = 10000 + (137 i mod 5000) for i < 60, y = 9000 + (101 i
	 * mod 5000) for i < 50 (ns): scipy U 1851.5, p 0.017116513956270684.
	 */
	memset(h, 0, 2 * sizeof(*h));
	for (int i = 0; i < 60; i++)
		ferry_hist__add(&h[0], 10000 + (137 * i) % 5000);
	for (int i = 0; i < 50; i++)
		ferry_hist__add(&h[1], 9000 + (101 * i) % 5000);
	ferry_canary__mann_whitney(&h[0], &h[1], &m);
	ASSERT_LE(fabs(m.u - 1851.5), 1e-9, "U ties");
	ASSERT_LE(fabs(m.p - 0.017116513956270684), 1e-9, "p ties");

	/* Swapped, the one-sided test looks the other way: U' = n1 n2 - U. */
	ferry_canary__mann_whitney(&h[1], &h[0], &m);
	ASSERT_LE(fabs(m.u - (3000 - 1851.5)), 1e-9, "U swapped");
	ASSERT_GE(m.p, 0.9, "p swapped");

	/* One side empty: no test. */
	memset(&h[1], 0, sizeof(h[1]));
	ferry_canary__mann_whitney(&h[0], &h[1], &m);
	ASSERT_EQ(m.p, 1, "empty side");
	free(h);
}

/*
 * 300 pairs of windows drawn from one distribution (500 requests a side, the
 * same 0.2% error rate): how many would fail? The U test alone rejects about
 * 1% (its significance); with the effect floor and the 1.5x ratios none should.
 */
static void test_false_positive_rate(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_counts *w = pair();
	struct ferry_canary_judgement j;
	int fails = 0, u_rejects = 0, pairs = 300;

	rng_state = 8;
	for (int i = 0; i < pairs; i++) {
		window(&w[0], 500, 10, 1);
		window(&w[1], 500, 10, 1);
		ferry_canary__judge(&cfg, &w[0], &w[1], &j);
		fails += j.verdict == FERRY_CANARY_FAIL;
		u_rejects += j.mwu.p < cfg.significance;
	}
	fprintf(stderr,
		"    %d identical pairs: %d failed windows (%.2f%%); U test alone %d (%.2f%%)\n",
		pairs, fails, 100.0 * fails / pairs, u_rejects, 100.0 * u_rejects / pairs);
	ASSERT_EQ(fails, 0, "false rollbacks on identical windows");
	/* The U test's own rate is near its 1% level (binomial: at most 4% in 300). */
	ASSERT_LE(u_rejects, 12, "U test false positives");
	free(w);
}

static struct ferry_canary_judgement verdict(enum ferry_canary_verdict v)
{
	return (struct ferry_canary_judgement){ .verdict = v };
}

static void test_rollout_steps(void)
{
	struct ferry_canary_config cfg = config();
	struct ferry_canary_rollout r;
	struct ferry_canary_judgement pass = verdict(FERRY_CANARY_PASS);
	struct ferry_canary_judgement fail = verdict(FERRY_CANARY_FAIL);
	struct ferry_canary_judgement none = verdict(FERRY_CANARY_INCONCLUSIVE);
	const __u32 steps[] = { 100000, 250000, 500000, 1000000 };

	memcpy(cfg.steps, steps, sizeof(steps));
	cfg.nsteps = 4;
	ferry_canary_rollout__start(&r, &cfg);
	ASSERT_EQ(r.state, FERRY_CANARY_S_PROGRESSING, "start");
	ASSERT_EQ(r.weight, 100000, "10%");
	ASSERT_TRUE(ferry_canary_rollout__window(&r, &cfg, &pass), "step up");
	ASSERT_EQ(r.step, 2, "step 2");
	ASSERT_EQ(r.weight, 250000, "25%");
	/* Inconclusive: the step holds and the failure count stands. */
	ASSERT_TRUE(ferry_canary_rollout__window(&r, &cfg, &fail) == false, "one failure");
	ASSERT_EQ(r.consecutive_failures, 1, "counted");
	ASSERT_TRUE(ferry_canary_rollout__window(&r, &cfg, &none), "inconclusive");
	ASSERT_EQ(r.state, FERRY_CANARY_S_INCONCLUSIVE, "state inconclusive");
	ASSERT_EQ(r.consecutive_failures, 1, "still counted");
	ASSERT_TRUE(ferry_canary_rollout__window(&r, &cfg, &fail), "second failure");
	ASSERT_EQ(r.state, FERRY_CANARY_S_ROLLED_BACK, "rolled back");
	ASSERT_TRUE(r.has_weight, "override in force");
	ASSERT_EQ(r.weight, 0, "canary at 0");
	ASSERT_FALSE(ferry_canary_rollout__window(&r, &cfg, &pass), "no analysis after rollback");

	/* --resume after a rollback starts over. */
	ASSERT_TRUE(ferry_canary_rollout__command(&r, &cfg, FERRY_CANARY_CMD_RESUME), "resume");
	ASSERT_EQ(r.step, 1, "from step 1");
	for (int i = 0; i < 3; i++)
		ferry_canary_rollout__window(&r, &cfg, &pass);
	ASSERT_EQ(r.step, 4, "last step");
	ASSERT_EQ(r.weight, 1000000, "100%");
	ASSERT_TRUE(ferry_canary_rollout__window(&r, &cfg, &pass), "promote");
	ASSERT_EQ(r.state, FERRY_CANARY_S_PROMOTED, "promoted");

	/* Pause holds the step; resume returns to it; abort rolls back; promote jumps. */
	ferry_canary_rollout__start(&r, &cfg);
	ferry_canary_rollout__command(&r, &cfg, FERRY_CANARY_CMD_PAUSE);
	ASSERT_EQ(r.state, FERRY_CANARY_S_PAUSED, "paused");
	ASSERT_FALSE(ferry_canary_rollout__window(&r, &cfg, &pass), "no analysis while paused");
	ferry_canary_rollout__command(&r, &cfg, FERRY_CANARY_CMD_RESUME);
	ASSERT_EQ(r.state, FERRY_CANARY_S_PROGRESSING, "resumed");
	ASSERT_EQ(r.step, 1, "same step");
	ferry_canary_rollout__command(&r, &cfg, FERRY_CANARY_CMD_PROMOTE);
	ASSERT_EQ(r.step, 4, "promote: last step");
	ferry_canary_rollout__command(&r, &cfg, FERRY_CANARY_CMD_ABORT);
	ASSERT_EQ(r.state, FERRY_CANARY_S_ROLLED_BACK, "abort");
	ASSERT_EQ(r.weight, 0, "abort weight");

	/* No steps: holding, no weight of its own until a failure; failures 1 rolls back at once. */
	cfg.nsteps = 0;
	cfg.failures = 1;
	ferry_canary_rollout__start(&r, &cfg);
	ASSERT_EQ(r.state, FERRY_CANARY_S_HOLDING, "holding");
	ASSERT_FALSE(r.has_weight, "manifest split");
	ferry_canary_rollout__window(&r, &cfg, &pass);
	ASSERT_EQ(r.state, FERRY_CANARY_S_HOLDING, "still holding");
	ferry_canary_rollout__window(&r, &cfg, &fail);
	ASSERT_EQ(r.state, FERRY_CANARY_S_ROLLED_BACK, "first failure rolls back");
}

/* What a node serves on /canary/window and the leader publishes survive their JSON. */
static void test_json_round_trip(void)
{
	struct ferry_canary_node_window *w = calloc(2, sizeof(*w));
	struct ferry_canary_decision d = { .deployment = "models/iris", .fingerprint = 0xfeed },
				     back;
	char *text;
	json_t *o;

	rng_state = 9;
	snprintf(w[0].deployment, sizeof(w[0].deployment), "models/iris");
	w[0].window = 598819546;
	window(&w[0].canary, 300, 12, 3);
	w[0].canary.resets = 2;
	window(&w[0].baseline, 900, 10, 0);
	w[0].http_unknown = 7;
	text = ferry_canary_node_window__json(&w[0]);
	if (ASSERT_TRUE(text, "json") &&
	    ASSERT_OK(ferry_canary_node_window__parse(text, &w[1]), "parse")) {
		ASSERT_EQ(w[1].window, w[0].window, "window");
		ASSERT_EQ(w[1].http_unknown, 7, "unknown");
		ASSERT_EQ(w[1].canary.resets, 2, "resets");
		ASSERT_TRUE(!memcmp(&w[1].canary, &w[0].canary, sizeof(w[0].canary)), "canary");
		ASSERT_TRUE(!memcmp(&w[1].baseline, &w[0].baseline, sizeof(w[0].baseline)),
			    "baseline");
	}
	free(text);
	ASSERT_EQ(ferry_canary_node_window__parse("{\"deployment\": \"a/b\", \"canary\": "
						  "{\"buckets\": {\"9999\": 1}}}",
						  &w[1]),
		  -EINVAL, "bucket out of range");

	d.ro = (struct ferry_canary_rollout){ .state = FERRY_CANARY_S_PAUSED,
					      .paused_from = FERRY_CANARY_S_PROGRESSING,
					      .step = 3,
					      .consecutive_failures = 1,
					      .has_weight = true,
					      .weight = 500000 };
	o = ferry_canary_decision__json(&d);
	if (ASSERT_OK(ferry_canary_decision__parse(o, &back), "decision")) {
		ASSERT_STREQ(back.deployment, "models/iris", "deployment");
		ASSERT_EQ(back.fingerprint, 0xfeed, "fingerprint");
		ASSERT_TRUE(!memcmp(&back.ro, &d.ro, sizeof(d.ro)), "rollout");
	}
	json_decref(o);
	free(w);
}

/* ferry_canary_*: present only with a canary row, one-hot state, decisions by reason. */
static void test_metrics(void)
{
	struct ferry_snapshot *snap = calloc(1, sizeof(*snap));
	struct ferry_canary_metrics row = { .deployment = "models/iris",
					    .state = FERRY_CANARY_S_ROLLED_BACK,
					    .step = 2 };
	struct ferry_metrics_opts opts = {};
	char *buf = NULL;
	size_t len;

	row.decisions[FERRY_CANARY_FAIL][FERRY_CANARY_R_LATENCY_P50] = 2;
	row.commands[FERRY_CANARY_CMD_PAUSE] = 1;
	if (!ASSERT_OK(ferry_metrics__render(snap, &opts, &buf, &len), "render without"))
		goto out;
	ASSERT_TRUE(!strstr(buf, "ferry_canary_"), "no canary family without a row");
	free(buf);
	buf = NULL;
	opts.canary = &row;
	opts.ncanary = 1;
	if (!ASSERT_OK(ferry_metrics__render(snap, &opts, &buf, &len), "render"))
		goto out;
	ASSERT_STRSTR(buf, "ferry_canary_state{deployment=\"models/iris\",state=\"rolled-back\"} 1",
		      "state");
	ASSERT_STRSTR(buf, "ferry_canary_state{deployment=\"models/iris\",state=\"progressing\"} 0",
		      "one-hot");
	ASSERT_STRSTR(buf, "ferry_canary_step{deployment=\"models/iris\"} 2", "step");
	ASSERT_STRSTR(buf,
		      "ferry_canary_decisions_total{deployment=\"models/iris\",decision=\"fail\","
		      "reason=\"latency_p50\"} 2",
		      "decisions");
	ASSERT_STRSTR(buf,
		      "ferry_canary_decisions_total{deployment=\"models/iris\",decision=\"pause\","
		      "reason=\"manual\"} 1",
		      "commands");
out:
	free(buf);
	ferry_snapshot__free(snap);
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_clearly_worse);
	RUN_TEST(SUITE, test_clearly_equal);
	RUN_TEST(SUITE, test_slightly_worse);
	RUN_TEST(SUITE, test_too_few_samples);
	RUN_TEST(SUITE, test_errors_only);
	RUN_TEST(SUITE, test_latency_only);
	RUN_TEST(SUITE, test_merge_nodes);
	RUN_TEST(SUITE, test_u_reference);
	RUN_TEST(SUITE, test_false_positive_rate);
	RUN_TEST(SUITE, test_rollout_steps);
	RUN_TEST(SUITE, test_json_round_trip);
	RUN_TEST(SUITE, test_metrics);
	return test__summary();
}
