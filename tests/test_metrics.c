// SPDX-License-Identifier: GPL-2.0-only
/*
 * Histogram math, the Prometheus rendering of a hand-built snapshot (checked
 * by hand and by `promtool check metrics`), the /metrics HTTP server, and
 * (as root) a snapshot read back from maps pinned by the real BPF object.
 *
 * The protobuf exposition is decoded with protobuf-c (the code generated from
 * Prometheus' metrics.proto) and its native buckets checked against the
 * kernel histogram and the stated quantile error bound.
 *
 * FERRY_METRICS_DUMP=PATH writes the sample rendering to PATH, so that
 * tests/promtool.sh can check the dashboard's metric names against it.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <curl/curl.h>

#include "io/prometheus/client/metrics.pb-c.h"
#include "testing.h"
#include "telemetry/hist.h"
#include "telemetry/metrics.h"
#include "kernel/snapshot.h"
#include "kernel/rebalance.h"
#include "kernel/dataplane.h"
#include "ferry_xdp.skel.h"

#define SUITE "metrics"
#define MS 1000000ULL

/* ------------------------------------------------------------ helpers */

/* xorshift64*: deterministic samples, no libc rand state */
static __u64 rng_state = 0x9e3779b97f4a7c15ULL;

static double rng_uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* Box-Muller: exp(N(log(median), sigma)) */
static double rng_lognormal(double median, double sigma)
{
	double u1 = rng_uniform(), u2 = rng_uniform();

	if (u1 < 1e-300)
		u1 = 1e-300;
	return median * exp(sigma * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* The exact q-quantile of sorted samples (nearest rank). */
static double exact_quantile(const __u64 *sorted, size_t n, double q)
{
	size_t r = (size_t)ceil(q * n);

	return (double)sorted[r ? r - 1 : 0];
}

static bool within(double got, double want, double rel)
{
	return fabs(got - want) <= rel * want;
}

/* Prometheus' histogram_quantile over cumulative (le, count) pairs (seconds). */
static double prom_quantile(double q, const double *le, const double *cum, size_t n, double total)
{
	double rank = q * total, prev_le = 0, prev_c = 0;

	for (size_t k = 0; k < n; k++) {
		if (cum[k] >= rank) {
			if (cum[k] == prev_c)
				return le[k];
			return prev_le + (le[k] - prev_le) * (rank - prev_c) / (cum[k] - prev_c);
		}
		prev_le = le[k];
		prev_c = cum[k];
	}
	return n ? le[n - 1] : NAN;
}

/* Fine exported boundaries: 2% apart from 100 us to 100 s. */
static int fine_buckets(struct ferry_hist_buckets *b)
{
	size_t cap = 800;

	b->le = calloc(cap, sizeof(double));
	if (!b->le)
		return -ENOMEM;
	b->n = 0;
	for (double x = 1e-4; x < 100 && b->n < cap; x *= 1.02)
		b->le[b->n++] = x;
	return 0;
}

/* ------------------------------------------------------- histogram math */

static void test_hist_bucket_mapping(void)
{
	__u64 lower, upper, prev_upper = 0;

	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++) {
		ferry_hist__bounds(i, &lower, &upper);
		if (!ASSERT_EQ(lower, prev_upper, "buckets are contiguous"))
			return;
		if (!ASSERT_TRUE(upper > lower, "bucket has width"))
			return;
		if (!ASSERT_EQ(ferry_hist__bucket(lower), i, "lower bound maps to its bucket"))
			return;
		if (!ASSERT_EQ(ferry_hist__bucket(upper - 1), i, "upper - 1 maps to its bucket"))
			return;
		if (i > 1 && !ASSERT_LE((double)(upper - lower) / lower,
					1.0 / FERRY_HIST_SUBS + 1e-12, "bucket at most 1/16 wide"))
			return;
		prev_upper = upper;
	}
	ASSERT_EQ(ferry_hist__bucket(0), 0, "0 ns");
	ASSERT_EQ(ferry_hist__bucket(1023), 0, "1023 ns");
	ASSERT_EQ(ferry_hist__bucket(1024), 1, "1024 ns");
	ASSERT_EQ(ferry_hist__bucket(1088), 2, "1088 ns = 1024 * 17/16");
	ASSERT_EQ(ferry_hist__bucket(2048), 1 + FERRY_HIST_SUBS, "2048 ns starts octave 1");
	ASSERT_EQ(ferry_hist__bucket(1ULL << 37), FERRY_HIST_LAST, "2^37 ns");
	ASSERT_EQ(ferry_hist__bucket(UINT64_MAX), FERRY_HIST_LAST, "UINT64_MAX");
	ASSERT_EQ(ferry_hist__msb(1), 0, "msb(1)");
	ASSERT_EQ(ferry_hist__msb(UINT64_MAX), 63, "msb(max)");
	/* the slow obvious formula agrees on every power-of-two neighbourhood */
	for (int b = 0; b < 64; b++) {
		__u64 vals[3] = { 1ULL << b, (1ULL << b) - 1, (1ULL << b) + (1ULL << b) / 3 };

		for (int k = 0; k < 3; k++) {
			__u64 v = vals[k];
			unsigned int want;

			if (v < 1024) {
				want = 0;
			} else {
				int msb = 63 - __builtin_clzll(v), o = msb - 10;

				want = o >= FERRY_HIST_OCTAVES ?
					       FERRY_HIST_LAST :
					       1 + o * FERRY_HIST_SUBS +
						       (unsigned int)((v >> (msb -
									     FERRY_HIST_SUB_BITS)) &
								      (FERRY_HIST_SUBS - 1));
			}
			if (!ASSERT_EQ(ferry_hist__bucket(v), want, "bucket vs clz formula"))
				return;
		}
	}
}

static void fill_constant(struct ferry_hist *h, __u64 ns, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		ferry_hist__add(h, ns);
}

static void test_hist_quantile_constant(void)
{
	static const __u64 values[] = { 5 * MS, 20 * MS };
	static const double qs[] = { 0.5, 0.9, 0.99 };

	/* the task's reference points: constant 5 ms and 20 ms, p50..p99 within 5% */
	for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
		struct ferry_hist h = {};

		fill_constant(&h, values[v], 1000);
		for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
			double got = ferry_hist__quantile(&h, qs[k]);

			if (!ASSERT_TRUE(within(got, values[v], 0.05),
					 "constant quantile within 5%")) {
				fprintf(stderr, "    value %llu q %.2f got %.0f\n",
					(unsigned long long)values[v], qs[k], got);
				return;
			}
		}
	}
	/* any constant: every quantile within its bucket, i.e. the 12.5% bound */
	for (int i = 0; i < 2000; i++) {
		__u64 ns = 1024 + (__u64)(rng_uniform() * 1e11), lower, upper;
		struct ferry_hist h = {};
		double got;

		fill_constant(&h, ns, 10);
		ferry_hist__bounds(ferry_hist__bucket(ns), &lower, &upper);
		got = ferry_hist__quantile(&h, rng_uniform());
		if (!ASSERT_TRUE(got >= lower && got <= upper, "estimate inside the bucket") ||
		    !ASSERT_LE(fabs(got - ns) / ns, 0.125, "12.5% bound")) {
			fprintf(stderr, "    value %llu got %.0f\n", (unsigned long long)ns, got);
			return;
		}
	}
	/* half 5 ms, half 20 ms: the quartiles land on each mode */
	struct ferry_hist h = {};

	fill_constant(&h, 5 * MS, 500);
	fill_constant(&h, 20 * MS, 500);
	ASSERT_TRUE(within(ferry_hist__quantile(&h, 0.25), 5 * MS, 0.05), "p25 of mix");
	ASSERT_TRUE(within(ferry_hist__quantile(&h, 0.75), 20 * MS, 0.05), "p75 of mix");
	ASSERT_TRUE(isnan(ferry_hist__quantile(&(struct ferry_hist){}, 0.5)), "empty is NaN");
}

static void test_hist_quantile_lognormal(void)
{
	static const double qs[] = { 0.1, 0.5, 0.9, 0.95, 0.99 };
	static const struct {
		double median_ns, sigma;
	} dists[] = { { 10e6, 0.5 }, { 300e3, 1.0 }, { 2e9, 0.3 } };
	const size_t n = 100000;
	__u64 *samples = calloc(n, sizeof(*samples));

	if (!ASSERT_TRUE(samples, "calloc"))
		return;
	for (size_t d = 0; d < sizeof(dists) / sizeof(dists[0]); d++) {
		struct ferry_hist h = {};

		for (size_t i = 0; i < n; i++) {
			samples[i] = (__u64)rng_lognormal(dists[d].median_ns, dists[d].sigma);
			ferry_hist__add(&h, samples[i]);
		}
		qsort(samples, n, sizeof(*samples), cmp_u64);
		for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
			double want = exact_quantile(samples, n, qs[k]);
			double got = ferry_hist__quantile(&h, qs[k]);

			if (!ASSERT_TRUE(within(got, want, 0.05), "lognormal quantile within 5%")) {
				fprintf(stderr, "    dist %zu q %.2f got %.0f want %.0f\n", d,
					qs[k], got, want);
				goto out;
			}
		}
	}
out:
	free(samples);
}

/* Count of samples strictly below x ns (samples sorted). */
static __u64 count_below(const __u64 *sorted, size_t n, double x)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if ((double)sorted[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void test_hist_rebucket(void)
{
	const struct ferry_hist_buckets *def = ferry_hist__default_buckets();
	struct ferry_hist_buckets fine = {};
	const size_t n = 50000;
	__u64 *samples = calloc(n, sizeof(*samples)), *cum = NULL, total;
	double *fcum = NULL;
	struct ferry_hist h = {};

	if (!ASSERT_TRUE(samples, "calloc") || !ASSERT_OK(fine_buckets(&fine), "fine buckets"))
		goto out;
	cum = calloc(fine.n, sizeof(*cum));
	fcum = calloc(fine.n, sizeof(*fcum));
	if (!ASSERT_TRUE(cum && fcum, "calloc"))
		goto out;
	ASSERT_EQ(def->n, 18, "default boundaries");
	ASSERT_TRUE(def->le[0] == 0.0001 && def->le[5] == 0.005 && def->le[17] == 60,
		    "default boundaries values");
	for (size_t i = 0; i < n; i++) {
		samples[i] = (__u64)rng_lognormal(8e6, 0.8);
		ferry_hist__add(&h, samples[i]);
	}
	qsort(samples, n, sizeof(*samples), cmp_u64);

	/* default boundaries: integral, monotonic, within the documented bound */
	ferry_hist__rebucket(&h, def, cum, &total);
	ASSERT_EQ(total, n, "+Inf is the total");
	for (size_t k = 0; k < def->n; k++) {
		double x = def->le[k] * 1e9;
		unsigned int b = ferry_hist__bucket((__u64)x);
		__u64 lower, upper, exact = count_below(samples, n, x + 1);

		ferry_hist__bounds(b, &lower, &upper);
		if (k && !ASSERT_GE(cum[k], cum[k - 1], "monotonic"))
			goto out;
		if (!ASSERT_LE(cum[k], total, "at most the total"))
			goto out;
		/* between the exact counts at the straddling kernel bucket's bounds */
		if (!ASSERT_GE(cum[k] + 1, count_below(samples, n, lower), "error bound low") ||
		    !ASSERT_LE(cum[k], count_below(samples, n, upper) + 1, "error bound high"))
			goto out;
		if (!ASSERT_LE(fabs((double)cum[k] - exact), h.bucket[b] + 1.0, "off by <= bucket"))
			goto out;
	}

	/* fine boundaries: Prometheus' histogram_quantile on them is within 5% */
	ferry_hist__rebucket(&h, &fine, cum, &total);
	for (size_t k = 0; k < fine.n; k++)
		fcum[k] = (double)cum[k];
	for (double q = 0.1; q < 1; q += 0.2) {
		double want = exact_quantile(samples, n, q) / 1e9;
		double got = prom_quantile(q, fine.le, fcum, fine.n, (double)total);

		if (!ASSERT_TRUE(within(got, want, 0.05), "re-bucketed quantile within 5%")) {
			fprintf(stderr, "    q %.2f got %g want %g\n", q, got, want);
			goto out;
		}
	}
	/* constants too: 5 ms and 20 ms */
	for (int v = 0; v < 2; v++) {
		__u64 ns = v ? 20 * MS : 5 * MS;
		struct ferry_hist c = {};

		fill_constant(&c, ns, 1000);
		ferry_hist__rebucket(&c, &fine, cum, &total);
		for (size_t k = 0; k < fine.n; k++)
			fcum[k] = (double)cum[k];
		for (double q = 0.5; q < 1; q += 0.49) {
			double got = prom_quantile(q, fine.le, fcum, fine.n, (double)total);

			if (!ASSERT_TRUE(within(got, ns / 1e9, 0.05), "constant re-bucketed")) {
				fprintf(stderr, "    %llu ns q %.2f got %g\n",
					(unsigned long long)ns, q, got);
				goto out;
			}
		}
	}
out:
	ferry_hist__buckets_free(&fine);
	free(samples);
	free(cum);
	free(fcum);
}

static void test_parse_buckets(void)
{
	struct ferry_hist_buckets b;
	char err[256];

	if (!ASSERT_OK(ferry_hist__parse_buckets("0.001, 0.005,0.1,1,+Inf", &b, err, sizeof(err)),
		       "good list"))
		return;
	ASSERT_EQ(b.n, 4, "four boundaries, +Inf dropped");
	ASSERT_TRUE(b.le[0] == 0.001 && b.le[3] == 1, "values");
	ferry_hist__buckets_free(&b);

	ASSERT_EQ(ferry_hist__parse_buckets("0.1,0.01", &b, err, sizeof(err)), -EINVAL,
		  "descending");
	ASSERT_STRSTR(err, "ascending", "descending message");
	ASSERT_EQ(ferry_hist__parse_buckets("0.1,fast", &b, err, sizeof(err)), -EINVAL, "junk");
	ASSERT_STRSTR(err, "\"fast\"", "junk message names the item");
	ASSERT_EQ(ferry_hist__parse_buckets("-1", &b, err, sizeof(err)), -EINVAL, "negative");
	ASSERT_EQ(ferry_hist__parse_buckets("", &b, err, sizeof(err)), -EINVAL, "empty");
	ASSERT_EQ(ferry_hist__parse_buckets("+Inf,1", &b, NULL, 0), -EINVAL, "+Inf not last");
	ASSERT_TRUE(b.le == NULL && b.n == 0, "nothing allocated on error");
}

/* ----------------------------------------------------- sample snapshot */

enum { PRED_MAIN = 1, PRED_CANARY = 2, SVC_ID = 7 };

static void set_v4(__be32 addr[4], const char *s)
{
	memset(addr, 0, 16);
	inet_pton(AF_INET, s, &addr[0]);
}

/*
 * One service "models/iris" on 198.18.0.10:80, predictors main (90%) and
 * canary (10%), backends: two of main (one draining), one of canary.
 * main's requests take 5 ms, canary's 20 ms; connects a lognormal.
 */
static struct ferry_snapshot *sample_snapshot(const char *canary_name)
{
	struct ferry_snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->services = calloc(1, sizeof(*s->services));
	s->predictors = calloc(2, sizeof(*s->predictors));
	s->backends = calloc(3, sizeof(*s->backends));
	s->hists = calloc(5, sizeof(*s->hists));
	s->links = calloc(1, sizeof(*s->links));
	if (!s->services || !s->predictors || !s->backends || !s->hists || !s->links) {
		ferry_snapshot__free(s);
		return NULL;
	}
	s->has_config = true;
	s->config.abi_version = FERRY_ABI_VERSION;
	s->config.generation = 42;
	s->config.sync_unix_ns = 1700000000123456789ULL;
	s->config.heartbeat_unix_ns = 1700000005000000000ULL;
	s->counters[FERRY_CTR_MALFORMED] = 3;
	s->counters[FERRY_CTR_FRAGMENT] = 4;
	s->counters[FERRY_CTR_NO_BACKEND] = 5;
	s->counters[FERRY_CTR_REPLY_NAT] = 1000;

	s->nservices = 1;
	s->services[0] = (struct ferry_snap_service){
		.id = SVC_ID,
		.vip = { .port = htons(80), .proto = 6, .family = FERRY_AF_INET },
		.table_size = 16381,
		.sample_every = 1,
		.has_meta = true,
		.deployment = "models/iris",
		.npredictors = 2,
		.predictor_ids = { PRED_MAIN, PRED_CANARY },
		.table_generation = 9,
		.stats = { .no_backend = 11, .fragments = 4 },
	};
	set_v4(s->services[0].vip.addr, "198.18.0.10");

	s->npredictors = 2;
	s->predictors[0] = (struct ferry_snap_predictor){
		.id = PRED_MAIN,
		.svc_id = SVC_ID,
		.weight_configured = 900000,
		.weight_effective = 900000,
		.backends_ready = 1,
		.backends_draining = 1,
		.name = "main",
		.stats = { .fwd_packets = 300,
			   .fwd_bytes = 30000,
			   .rev_packets = 250,
			   .rev_bytes = 500000,
			   .new_flows = 30,
			   .flow_misses = 2,
			   .resets = 1,
			   .http = { [FERRY_HTTP_2XX] = 27,
				     [FERRY_HTTP_5XX] = 1,
				     [FERRY_HTTP_UNKNOWN] = 2 } },
	};
	s->predictors[1] = (struct ferry_snap_predictor){
		.id = PRED_CANARY,
		.svc_id = SVC_ID,
		/* Both in force: the override wins (weights.c); both are exported. */
		.flags = FERRY_PRED_F_OVERRIDE | FERRY_PRED_F_CANARY,
		.weight_configured = 100000,
		.weight_effective = 50000,
		.weight_override = 50000,
		.weight_canary = 250000,
		.backends_ready = 1,
		.stats = { .new_flows = 3, .http = { [FERRY_HTTP_2XX] = 2, [FERRY_HTTP_5XX] = 1 } },
	};
	snprintf(s->predictors[1].name, sizeof(s->predictors[1].name), "%s", canary_name);

	s->nbackends = 3;
	for (int i = 0; i < 3; i++) {
		struct ferry_snap_backend *b = &s->backends[i];

		b->id = 100 + i;
		b->backend.family = FERRY_AF_INET;
		b->backend.port = htons(8080);
		b->backend.svc_id = SVC_ID;
		b->backend.predictor_id = i < 2 ? PRED_MAIN : PRED_CANARY;
		b->backend.state = i == 1 ? FERRY_BE_DRAINING : FERRY_BE_ACTIVE;
		b->stats.new_flows = 10 + i;
		b->stats.http[FERRY_HTTP_2XX] = 5 + i;
	}
	set_v4(s->backends[0].backend.addr, "198.18.1.1");
	set_v4(s->backends[1].backend.addr, "198.18.1.2");
	set_v4(s->backends[2].backend.addr, "198.18.2.1");

	s->nhists = 5;
	s->hists[0].key = (struct ferry_hist_key){ PRED_MAIN, FERRY_HIST_PREDICTOR,
						   FERRY_LAT_REQUEST, FERRY_L7_H2C };
	fill_constant(&s->hists[0].hist, 5 * MS, 1000);
	s->hists[1].key =
		(struct ferry_hist_key){ PRED_CANARY, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST };
	fill_constant(&s->hists[1].hist, 20 * MS, 100);
	s->hists[2].key =
		(struct ferry_hist_key){ PRED_MAIN, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT };
	for (int i = 0; i < 5000; i++)
		ferry_hist__add(&s->hists[2].hist, (__u64)rng_lognormal(200e3, 0.7));
	s->hists[3].key = (struct ferry_hist_key){ 100, FERRY_HIST_BACKEND, FERRY_LAT_REQUEST };
	fill_constant(&s->hists[3].hist, 5 * MS, 600);
	s->hists[4].key = (struct ferry_hist_key){ 102, FERRY_HIST_BACKEND, FERRY_LAT_REQUEST,
						   FERRY_L7_HTTP1 };
	fill_constant(&s->hists[4].hist, 20 * MS, 100);

	s->nlinks = 1;
	s->links[0].ifindex = 4;
	snprintf(s->links[0].link.ifname, sizeof(s->links[0].link.ifname), "eth0");
	s->links[0].link.hooks = FERRY_LINK_XDP_NATIVE | FERRY_LINK_TC_REPLY_IN | FERRY_LINK_TCX;
	ferry_snapshot__sort(s);
	return s;
}

/* ------------------------------------------------- parsing the output */

/* Every "# TYPE name type" is preceded by HELP; every sample belongs to a TYPE'd family. */
static bool check_families(const char *text)
{
	char *copy = strdup(text), *line, *save = NULL, family[128] = "", type[32] = "";
	char help_for[128] = "";
	bool ok = true;

	if (!copy)
		return false;
	for (line = strtok_r(copy, "\n", &save); line && ok; line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		size_t len;

		if (!strncmp(line, "# HELP ", 7)) {
			sscanf(line + 7, "%127s", help_for);
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			sscanf(line + 7, "%127s %31s", family, type);
			ok = ASSERT_STREQ(family, help_for, "HELP before TYPE");
			continue;
		}
		len = strcspn(line, "{ ");
		snprintf(name, sizeof(name), "%.*s", (int)len, line);
		if (!strcmp(type, "histogram")) {
			size_t fl = strlen(family);

			ok = ASSERT_TRUE(!strncmp(name, family, fl) &&
						 (!strcmp(name + fl, "_bucket") ||
						  !strcmp(name + fl, "_sum") ||
						  !strcmp(name + fl, "_count")),
					 "histogram sample in its family");
		} else {
			ok = ASSERT_STREQ(name, family, "sample in its family");
		}
		if (!ok)
			fprintf(stderr, "    line: %s\n", line);
	}
	free(copy);
	return ok;
}

struct hist_series {
	char labels[512];
	double le[1024], cum[1024];
	size_t n;
	double count, sum;
	bool has_count, has_sum;
};

/*
 * Collects the series of histogram `name` whose labels contain `match`;
 * checks buckets ascend in le, counts are cumulative and +Inf == _count.
 */
static bool parse_hist(const char *text, const char *name, const char *match,
		       struct hist_series *out)
{
	size_t nl = strlen(name);
	const char *p = text;
	double inf = -1;

	memset(out, 0, sizeof(*out));
	while (p && *p) {
		const char *eol = strchr(p, '\n'), *brace, *close;
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - p : (long)strlen(p)), p);
		p = eol ? eol + 1 : NULL;
		if (strncmp(line, name, nl) || !strstr(line, match))
			continue;
		brace = strchr(line, '{');
		close = strrchr(line, '}');
		if (!brace || !close)
			continue;
		if (!strncmp(line + nl, "_bucket{", 8)) {
			const char *le = strstr(line, ",le=\"");
			double v = strtod(close + 1, NULL);

			if (!ASSERT_TRUE(le, "le label"))
				return false;
			snprintf(out->labels, sizeof(out->labels), "%.*s", (int)(le - brace - 1),
				 brace + 1);
			if (!strncmp(le + 5, "+Inf", 4)) {
				inf = v;
				continue;
			}
			if (out->n && (!ASSERT_TRUE(strtod(le + 5, NULL) > out->le[out->n - 1],
						    "le ascending") ||
				       !ASSERT_GE(v, out->cum[out->n - 1], "cumulative")))
				return false;
			if (!ASSERT_TRUE(v == floor(v), "integral count"))
				return false;
			out->le[out->n] = strtod(le + 5, NULL);
			out->cum[out->n++] = v;
		} else if (!strncmp(line + nl, "_count{", 7)) {
			out->count = strtod(close + 1, NULL);
			out->has_count = true;
		} else if (!strncmp(line + nl, "_sum{", 5)) {
			out->sum = strtod(close + 1, NULL);
			out->has_sum = true;
		}
	}
	return ASSERT_TRUE(out->n && out->has_count && out->has_sum, "histogram series found") &&
	       ASSERT_EQ(inf, out->count, "+Inf == _count") &&
	       ASSERT_LE(out->cum[out->n - 1], inf, "last bucket <= +Inf");
}

static const char *const required_families[] = {
	"ferry_request_duration_seconds",
	"ferry_backend_request_duration_seconds",
	"ferry_connect_duration_seconds",
	"ferry_new_connections_total",
	"ferry_packets_total",
	"ferry_bytes_total",
	"ferry_backend_resets_total",
	"ferry_flow_misses_total",
	"ferry_http_responses_total",
	"ferry_drops_total",
	"ferry_datapath_events_total",
	"ferry_service_no_backend_drops_total",
	"ferry_predictor_weight_configured",
	"ferry_predictor_weight_effective",
	"ferry_predictor_weight_override",
	"ferry_predictor_weight_canary",
	"ferry_predictor_weight_canary_active",
	"ferry_backends",
	"ferry_table_generation",
	"ferry_last_sync_timestamp_seconds",
	"ferry_config_errors",
	"ferry_config_errors_total",
	"ferry_program_attached",
	"ferry_build_info",
};

#define FERRY_STR_(x) #x
#define FERRY_STR(x) FERRY_STR_(x)

#define MAIN_LABELS \
	"namespace=\"models\",deployment_name=\"iris\",vip=\"198.18.0.10:80\",predictor_name=\"main\""
#define CANARY_LABELS \
	"namespace=\"models\",deployment_name=\"iris\",vip=\"198.18.0.10:80\",predictor_name=\"canary\""

static const char *const required_lines[] = {
	"ferry_build_info{version=\"test-1.2\",abi=\"" FERRY_STR(FERRY_ABI_VERSION) "\"} 1\n",
	"ferry_config_errors 2\n",
	"ferry_config_errors_total 17\n",
	"ferry_rebalance_available 1\n",
	"ferry_rebalance_rounds_total 3\n",
	"ferry_rebalance_connections_total{outcome=\"destroyed\"} 12\n",
	"ferry_rebalance_connections_total{outcome=\"busy\"} 5\n",
	"ferry_rebalance_connections_total{outcome=\"failed\"} 0\n",
	"ferry_rebalance_connections_total{outcome=\"expired\"} 1\n",
	"ferry_rebalance_connections_total{outcome=\"gone\"} 2\n",
	"ferry_rebalance_connections_total{outcome=\"goaway\"} 6\n",
	"ferry_rebalance_marked_connections 4\n",
	"ferry_flow_entries{table=\"confirmed\"} 1500\n",
	"ferry_flow_entries{table=\"embryonic\"} 7\n",
	"ferry_flow_capacity{table=\"confirmed\"} 262144\n",
	"ferry_flow_capacity{table=\"embryonic\"} 65536\n",
	"ferry_flow_gc_removed_total{table=\"confirmed\"} 420\n",
	"ferry_flow_gc_removed_total{table=\"embryonic\"} 3\n",
	"ferry_flow_gc_duration_seconds 0.012500000\n",
	"ferry_last_sync_timestamp_seconds 1700000000.123456",
	"ferry_new_connections_total{" MAIN_LABELS "} 30\n",
	"ferry_new_connections_total{" CANARY_LABELS "} 3\n",
	"ferry_packets_total{" MAIN_LABELS ",direction=\"forward\"} 300\n",
	"ferry_packets_total{" MAIN_LABELS ",direction=\"reply\"} 250\n",
	"ferry_bytes_total{" MAIN_LABELS ",direction=\"reply\"} 500000\n",
	"ferry_backend_resets_total{" MAIN_LABELS "} 1\n",
	"ferry_flow_misses_total{" MAIN_LABELS "} 2\n",
	"ferry_http_responses_total{" MAIN_LABELS ",class=\"5xx\"} 1\n",
	"ferry_http_responses_total{" MAIN_LABELS ",class=\"unknown\"} 2\n",
	"ferry_http_responses_total{" CANARY_LABELS ",class=\"2xx\"} 2\n",
	"ferry_predictor_weight_configured{" MAIN_LABELS "} 0.900000\n",
	"ferry_predictor_weight_effective{" CANARY_LABELS "} 0.050000\n",
	"ferry_predictor_weight_override{" CANARY_LABELS "} 0.050000\n",
	"ferry_predictor_weight_override_active{" MAIN_LABELS "} 0\n",
	"ferry_predictor_weight_canary{" CANARY_LABELS "} 0.250000\n",
	"ferry_predictor_weight_canary_active{" CANARY_LABELS "} 1\n",
	"ferry_predictor_weight_canary_active{" MAIN_LABELS "} 0\n",
	"ferry_predictor_no_ready_backend{" CANARY_LABELS "} 1\n",
	"ferry_predictor_no_ready_backend{" MAIN_LABELS "} 0\n",
	"ferry_backends{" MAIN_LABELS ",state=\"ready\"} 1\n",
	"ferry_backends{" MAIN_LABELS ",state=\"draining\"} 1\n",
	"ferry_backends{" MAIN_LABELS ",state=\"unready\"} 0\n",
	"ferry_backends{" CANARY_LABELS ",state=\"ready\"} 1\n",
	"ferry_table_generation{namespace=\"models\",deployment_name=\"iris\",vip=\"198.18.0.10:80\"} 9\n",
	"ferry_service_no_backend_drops_total{namespace=\"models\",deployment_name=\"iris\",vip=\"198.18.0.10:80\"} 11\n",
	"ferry_drops_total{reason=\"fragment\"} 4\n",
	"ferry_drops_total{reason=\"no_backend\"} 5\n",
	"ferry_datapath_events_total{event=\"malformed\"} 3\n",
	"ferry_datapath_events_total{event=\"reply_nat\"} 1000\n",
	"ferry_program_attached{ifname=\"eth0\",hook=\"xdp\",mode=\"native\"} 1\n",
	"ferry_program_attached{ifname=\"eth0\",hook=\"tc_reply_ingress\",mode=\"tcx\"} 1\n",
	"ferry_backend_new_connections_total{" MAIN_LABELS ",backend=\"198.18.1.2:8080\"} 11\n",
	"ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"h2c\"} 1000\n",
	"ferry_request_duration_seconds_count{" CANARY_LABELS ",protocol=\"unknown\"} 100\n",
	"ferry_request_duration_seconds_bucket{" MAIN_LABELS
	",protocol=\"h2c\",le=\"+Inf\"} 1000\n",
	"ferry_request_duration_seconds_bucket{" MAIN_LABELS ",protocol=\"h2c\",le=\"0.0025\"} 0\n",
	"ferry_request_duration_seconds_bucket{" MAIN_LABELS
	",protocol=\"h2c\",le=\"0.01\"} 1000\n",
	"ferry_backend_request_duration_seconds_count{" CANARY_LABELS
	",backend=\"198.18.2.1:8080\",protocol=\"http1\"} 100\n",
};

static const __u32 no_ready_ids[] = { PRED_CANARY };

/* ferryd's rebalancing counters (user/kernel/rebalance.h), as it passes them. */
static const struct ferry_rebal_stats sample_rebal = {
	.available = true,
	.rounds = 3,
	.destroyed = 12,
	.busy = 5,
	.expired = 1,
	.goaway = 6,
	.gone = 2,
	.marked = 4,
};

/* ferryd's flow GC figures (user/telemetry/metrics.h), as it passes them. */
static const struct ferry_flow_gc_stats sample_gc = {
	.entries = { [FERRY_FLOWS_CONFIRMED] = 1500, [FERRY_FLOWS_EMBRYONIC] = 7 },
	.capacity = { [FERRY_FLOWS_CONFIRMED] = 262144, [FERRY_FLOWS_EMBRYONIC] = 65536 },
	.removed_total = { [FERRY_FLOWS_CONFIRMED] = 420, [FERRY_FLOWS_EMBRYONIC] = 3 },
	.last_pass_seconds = 0.0125,
};

static int render_sample_format(struct ferry_snapshot *s, const struct ferry_hist_buckets *buckets,
				enum ferry_metrics_format format, char **out, size_t *len)
{
	struct ferry_metrics_opts opts = {
		.version = "test-1.2",
		.config_errors = 2,
		.config_errors_total = 17,
		.no_ready_predictors = no_ready_ids,
		.nno_ready_predictors = 1,
		.buckets = buckets,
		.rebalance = &sample_rebal,
		.flow_gc = &sample_gc,
	};

	return ferry_metrics__render_format(s, &opts, format, out, len);
}

static int render_sample(struct ferry_snapshot *s, const struct ferry_hist_buckets *buckets,
			 char **out, size_t *len)
{
	return render_sample_format(s, buckets, FERRY_METRICS_TEXT, out, len);
}

static void test_render(void)
{
	struct ferry_snapshot *s = sample_snapshot("canary");
	struct hist_series *hs = calloc(1, sizeof(*hs));
	const char *dump = getenv("FERRY_METRICS_DUMP");
	char *text = NULL, need[160];
	size_t len;

	if (!ASSERT_TRUE(s && hs, "sample snapshot"))
		goto out;
	if (!ASSERT_OK(render_sample(s, NULL, &text, &len), "render"))
		goto out;
	ASSERT_EQ(strlen(text), len, "length");
	for (size_t i = 0; i < sizeof(required_families) / sizeof(required_families[0]); i++) {
		snprintf(need, sizeof(need), "# HELP %s ", required_families[i]);
		ASSERT_STRSTR(text, need, "HELP line");
		snprintf(need, sizeof(need), "# TYPE %s ", required_families[i]);
		ASSERT_STRSTR(text, need, "TYPE line");
	}
	for (size_t i = 0; i < sizeof(required_lines) / sizeof(required_lines[0]); i++)
		if (!strstr(text, required_lines[i]))
			test__fail(__FILE__, __LINE__, "sample line", "missing: %s",
				   required_lines[i]);
	ASSERT_STRSTR(text, "# TYPE ferry_syn_timeouts_total counter", "syn timeouts family");
	ASSERT_TRUE(!strstr(text, "ferry_predictor_weight_canary{" MAIN_LABELS "}"),
		    "no canary weight where the canary analysis set none");
	check_families(text);

	/* the histograms parse back and agree with the samples */
	if (parse_hist(text, "ferry_request_duration_seconds", "predictor_name=\"main\"", hs)) {
		ASSERT_EQ(hs->n, ferry_hist__default_buckets()->n, "every default boundary");
		ASSERT_TRUE(within(hs->sum, 5.0, 1e-9), "_sum in seconds: 1000 x 5 ms");
		/* 5 ms sits inside kernel bucket [4.72, 5.24) ms: a linear share below 5 ms */
		ASSERT_TRUE(hs->cum[5] > 0 && hs->cum[5] < 1000, "le=0.005 takes a share");
	}
	if (parse_hist(text, "ferry_connect_duration_seconds", "predictor_name=\"main\"", hs))
		ASSERT_EQ(hs->count, 5000, "connect count");
	if (dump) {
		FILE *f = fopen(dump, "w");

		if (ASSERT_TRUE(f, "open FERRY_METRICS_DUMP")) {
			fwrite(text, 1, len, f);
			fclose(f);
		}
	}
out:
	free(text);
	free(hs);
	ferry_snapshot__free(s);
}

/* Quantiles read back from the text, with fine boundaries, as Prometheus would. */
static void test_render_quantiles(void)
{
	struct ferry_snapshot *s = sample_snapshot("canary");
	struct ferry_hist_buckets fine = {};
	struct hist_series *hs = calloc(1, sizeof(*hs));
	char *text = NULL;
	size_t len;

	if (!ASSERT_TRUE(s && hs, "sample snapshot") || !ASSERT_OK(fine_buckets(&fine), "fine"))
		goto out;
	if (!ASSERT_OK(render_sample(s, &fine, &text, &len), "render"))
		goto out;
	if (!parse_hist(text, "ferry_request_duration_seconds", "predictor_name=\"main\"", hs))
		goto out;
	for (double q = 0.5; q < 1; q += 0.49)
		ASSERT_TRUE(within(prom_quantile(q, hs->le, hs->cum, hs->n, hs->count), 0.005,
				   0.05),
			    "main p50/p99 ~ 5 ms");
	if (!parse_hist(text, "ferry_request_duration_seconds", "predictor_name=\"canary\"", hs))
		goto out;
	for (double q = 0.5; q < 1; q += 0.49)
		ASSERT_TRUE(within(prom_quantile(q, hs->le, hs->cum, hs->n, hs->count), 0.020,
				   0.05),
			    "canary p50/p99 ~ 20 ms");
out:
	ferry_hist__buckets_free(&fine);
	free(text);
	free(hs);
	ferry_snapshot__free(s);
}

static void test_render_escaping(void)
{
	struct ferry_snapshot *s = sample_snapshot("we\"ird\\name\nx");
	char *text = NULL;
	size_t len;

	if (!ASSERT_TRUE(s, "sample snapshot"))
		return;
	snprintf(s->services[0].deployment, sizeof(s->services[0].deployment), "ns\\1/dep\"2");
	if (ASSERT_OK(render_sample(s, NULL, &text, &len), "render")) {
		ASSERT_STRSTR(text, "predictor_name=\"we\\\"ird\\\\name\\nx\"",
			      "predictor escaped");
		ASSERT_STRSTR(text, "namespace=\"ns\\\\1\",deployment_name=\"dep\\\"2\"",
			      "deployment escaped");
		check_families(text);
	}
	free(text);
	ferry_snapshot__free(s);
}

/* A snapshot with nothing in it still renders valid node-wide families. */
static void test_render_empty(void)
{
	struct ferry_snapshot *s = calloc(1, sizeof(*s));
	char *text = NULL;
	size_t len;

	if (!ASSERT_TRUE(s, "calloc"))
		return;
	if (ASSERT_OK(ferry_metrics__render(s, NULL, &text, &len), "render empty")) {
		ASSERT_STRSTR(text, "ferry_build_info{version=\"", "build info");
		ASSERT_STRSTR(text, "ferry_drops_total{reason=\"fib_drop\"} 0\n", "zero drops");
		ASSERT_FALSE(strstr(text, "ferry_last_sync_timestamp_seconds "),
			     "no config, no sync");
		check_families(text);
	}
	free(text);
	ferry_snapshot__free(s);
}

/*
 * Before a predictor's first request its empty latency histogram carries the
 * protocol its service declares, so that rate() over a window opening before
 * the first requests counts them all (the series they fill already exists).
 */
static void test_render_hist_placeholder(void)
{
	static const struct {
		__u32 flags;
		const char *want, *not ;
	} cases[] = {
		{ FERRY_SVC_F_PROTO_HTTP1,
		  "ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"http1\"} 0\n",
		  "ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"unknown\"}" },
		{ FERRY_SVC_F_PROTO_H2C,
		  "ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"h2c\"} 0\n",
		  "ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"unknown\"}" },
		{ 0,
		  "ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"unknown\"} 0\n",
		  "ferry_request_duration_seconds_count{" MAIN_LABELS ",protocol=\"http1\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ferry_snapshot *s = sample_snapshot("canary");
		char *text = NULL;
		size_t len;

		if (!ASSERT_TRUE(s, "sample snapshot"))
			return;
		s->nhists = 0; /* no request measured yet */
		s->services[0].flags = cases[i].flags;
		if (ASSERT_OK(ferry_metrics__render(s, NULL, &text, &len), "render")) {
			ASSERT_STRSTR(text, cases[i].want, "placeholder of the declared protocol");
			ASSERT_FALSE(strstr(text, cases[i].not ), "and no other");
		}
		free(text);
		ferry_snapshot__free(s);
	}
}

/* Runs argv with stdin from `in`; captures combined output. Returns exit status or -1. */
static int run_capture(char *const argv[], const char *in, char *out, size_t out_len)
{
	int pipefd[2], status, fd;
	ssize_t got, total = 0;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		fd = open(in, O_RDONLY);
		if (fd < 0)
			_exit(126);
		dup2(fd, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	while ((got = read(pipefd[0], out + total, out_len - 1 - total)) > 0)
		total += got;
	out[total] = '\0';
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static bool have_promtool(void)
{
	return !system("command -v promtool >/dev/null 2>&1");
}

static void test_promtool_check_metrics(void)
{
	struct ferry_snapshot *s = sample_snapshot("canary");
	char path[] = "/tmp/ferry-fm-metrics-XXXXXX", out[8192];
	char *argv[] = { "promtool", "check", "metrics", NULL };
	char *text = NULL;
	size_t len;
	int fd = -1, rc;

	if (!have_promtool()) {
		test__skip(
			"promtool not installed: cannot lint the exposition (apt install prometheus)");
		goto out;
	}
	if (!ASSERT_TRUE(s, "sample") || !ASSERT_OK(render_sample(s, NULL, &text, &len), "render"))
		goto out;
	fd = mkstemp(path);
	if (!ASSERT_TRUE(fd >= 0, "mkstemp"))
		goto out;
	if (!ASSERT_EQ(write(fd, text, len), (ssize_t)len, "write sample"))
		goto out_unlink;
	rc = run_capture(argv, path, out, sizeof(out));
	if (!ASSERT_EQ(rc, 0, "promtool check metrics exit status") ||
	    !ASSERT_EQ(strlen(out), 0, "promtool printed no lint problem"))
		fprintf(stderr, "    promtool said:\n%s\n", out);
out_unlink:
	close(fd);
	unlink(path);
out:
	free(text);
	ferry_snapshot__free(s);
}

/* ---------------------------------------------------- native histograms */

#define LOG2_NS_TO_S(ns) (log2((double)(ns)) - 9 * log2(10))

/*
 * Every kernel bucket [a, b) goes to the schema-4 bucket (L, U] that holds its
 * geometric midpoint, in kernel order, and the farthest a sample can be
 * from anything in its native bucket, max(log2(U/a), log2(b/L)), is within
 * FERRY_HIST_NATIVE_LOG2_ERR: the bound docs/metrics.md states.
 */
static void test_hist_native_mapping(void)
{
	double zt = ferry_hist__native_zero_threshold(), worst = 0;
	int prev = -100000;

	ASSERT_TRUE(zt <= 1.024e-6 && zt * exp2(1.0 / 16) > 1.024e-6,
		    "zero threshold: the schema-4 boundary just below 1.024 us");
	ASSERT_TRUE(fabs(16 * log2(zt) - round(16 * log2(zt))) < 1e-9,
		    "zero threshold is a schema-4 boundary");
	for (unsigned int i = 1; i < FERRY_HIST_LAST; i++) {
		__u64 a, b;
		int k = ferry_hist__native_index(i);
		double la, lb, lo = (k - 1) / 16.0, hi = k / 16.0, mid;

		ferry_hist__bounds(i, &a, &b);
		la = LOG2_NS_TO_S(a);
		lb = LOG2_NS_TO_S(b);
		mid = (la + lb) / 2;
		if (!ASSERT_TRUE(mid > lo && mid <= hi, "midpoint inside its native bucket") ||
		    !ASSERT_TRUE(k >= prev, "native index monotonic in the kernel index") ||
		    !ASSERT_TRUE(lo >= log2(zt) - 1e-12,
				 "no native bucket below the zero bucket")) {
			fprintf(stderr, "    kernel bucket %u -> native %d\n", i, k);
			return;
		}
		prev = k;
		worst = fmax(worst, fmax(hi - la, lb - lo));
	}
	ASSERT_LE(worst, FERRY_HIST_NATIVE_LOG2_ERR + 1e-12, "stated bound holds for every bucket");
	fprintf(stderr, "    worst log2 distance %.4f (bound %.4f: x%.4f)\n", worst,
		FERRY_HIST_NATIVE_LOG2_ERR, exp2(FERRY_HIST_NATIVE_LOG2_ERR));
}

/* Fills h and sorted[] from a generator; returns the sample count. */
enum dist { DIST_CONST, DIST_LOGNORMAL, DIST_LOGUNIFORM, DIST_BIMODAL };

static size_t fill_dist(struct ferry_hist *h, __u64 *sorted, size_t n, enum dist d, double param)
{
	for (size_t i = 0; i < n; i++) {
		double v;

		switch (d) {
		case DIST_CONST:
			v = param;
			break;
		case DIST_LOGNORMAL:
			v = rng_lognormal(param, 0.5);
			break;
		case DIST_LOGUNIFORM: /* 2 us .. 20 s */
			v = 2e3 * pow(1e7, rng_uniform());
			break;
		default: /* half 5 ms, half 25 ms, each with 3% jitter */
			v = (i & 1 ? 25e6 : 5e6) * (1 + 0.03 * (rng_uniform() - 0.5));
		}
		if (v < 1.1e3)
			v = 1.1e3; /* above the zero bucket: relative errors are defined */
		sorted[i] = (__u64)v;
		ferry_hist__add(h, sorted[i]);
	}
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	return n;
}

/*
 * Quantiles from the native histogram, computed as Prometheus 2.42's
 * histogram_quantile() does, against the exact sample quantiles: within the
 * stated factor for every distribution and quantile.
 */
static void test_hist_native_quantiles(void)
{
	static const struct {
		enum dist d;
		double param;
	} cases[] = {
		{ DIST_CONST, 5e6 },	 { DIST_CONST, 25e6 },	  { DIST_CONST, 7.3e6 },
		{ DIST_CONST, 13.7e6 },	 { DIST_CONST, 1234 },	  { DIST_CONST, 99e9 },
		{ DIST_LOGNORMAL, 5e6 }, { DIST_LOGNORMAL, 2e5 }, { DIST_LOGUNIFORM, 0 },
		{ DIST_BIMODAL, 0 },
	};
	static const double qs[] = { 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999 };
	const size_t n = 20000;
	__u64 *sorted = calloc(n, sizeof(*sorted));
	struct ferry_hist *h = calloc(1, sizeof(*h));
	struct ferry_hist_native *nat = malloc(sizeof(*nat));
	double worst = 0;

	if (!ASSERT_TRUE(sorted && h && nat, "alloc"))
		goto out;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		memset(h, 0, sizeof(*h));
		fill_dist(h, sorted, n, cases[c].d, cases[c].param);
		ferry_hist__native(h, nat);
		if (!ASSERT_EQ(nat->count, n, "native count is the kernel total") ||
		    !ASSERT_TRUE(within(nat->sum, (double)h->sum_ns / 1e9, 1e-12), "sum"))
			goto out;
		for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
			double want = exact_quantile(sorted, n, qs[k]) / 1e9;
			double got = ferry_hist__native_quantile(nat, qs[k]);
			double err = fabs(log2(got / want));

			worst = fmax(worst, err);
			if (!ASSERT_LE(err, FERRY_HIST_NATIVE_LOG2_ERR,
				       "native quantile within bound")) {
				fprintf(stderr, "    case %zu q %.3f: got %.9g s, exact %.9g s\n",
					c, qs[k], got, want);
				goto out;
			}
		}
	}
	fprintf(stderr, "    worst native quantile error x%.4f (bound x%.4f)\n", exp2(worst),
		exp2(FERRY_HIST_NATIVE_LOG2_ERR));
	ASSERT_TRUE(isnan(ferry_hist__native_quantile(
			    &(struct ferry_hist_native){ .zero_threshold = 1e-6 }, 0.5)),
		    "empty is NaN");
out:
	free(sorted);
	free(h);
	free(nat);
}

/* ------------------------------------------------------------ protobuf */

struct pb_families {
	Io__Prometheus__Client__MetricFamily **f;
	size_t n;
};

static void pb_families_free(struct pb_families *p)
{
	for (size_t i = 0; i < p->n; i++)
		io__prometheus__client__metric_family__free_unpacked(p->f[i], NULL);
	free(p->f);
	p->f = NULL;
	p->n = 0;
}

/* Splits a delimited stream (varint length, message) and unpacks each MetricFamily. */
static bool pb_decode(const uint8_t *buf, size_t len, struct pb_families *out)
{
	size_t pos = 0;

	out->f = NULL;
	out->n = 0;
	while (pos < len) {
		Io__Prometheus__Client__MetricFamily **grown, *mf;
		size_t size = 0;
		int shift = 0;

		do {
			if (pos >= len || shift > 56)
				return false;
			size |= (size_t)(buf[pos] & 0x7f) << shift;
			shift += 7;
		} while (buf[pos++] & 0x80);
		if (size > len - pos)
			return false;
		mf = io__prometheus__client__metric_family__unpack(NULL, size, buf + pos);
		if (!mf)
			return false;
		grown = realloc(out->f, (out->n + 1) * sizeof(*grown));
		if (!grown) {
			io__prometheus__client__metric_family__free_unpacked(mf, NULL);
			return false;
		}
		out->f = grown;
		out->f[out->n++] = mf;
		pos += size;
	}
	return true;
}

static const Io__Prometheus__Client__MetricFamily *pb_family(const struct pb_families *p,
							     const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->f[i]->name && !strcmp(p->f[i]->name, name))
			return p->f[i];
	return NULL;
}

static const char *pb_label(const Io__Prometheus__Client__Metric *m, const char *name)
{
	for (size_t i = 0; i < m->n_label; i++)
		if (!strcmp(m->label[i]->name, name))
			return m->label[i]->value;
	return NULL;
}

static const Io__Prometheus__Client__Metric *
pb_metric(const Io__Prometheus__Client__MetricFamily *mf, const char *label, const char *value)
{
	for (size_t i = 0; mf && i < mf->n_metric; i++) {
		const char *v = pb_label(mf->metric[i], label);

		if (v && !strcmp(v, value))
			return mf->metric[i];
	}
	return NULL;
}

/* The native buckets of a decoded histogram, spans and deltas expanded. */
static bool pb_native(const Io__Prometheus__Client__Histogram *ph, struct ferry_hist_native *out)
{
	size_t j = 0;
	__s64 count = 0;
	int idx = 0;

	memset(out, 0, sizeof(*out));
	out->zero_threshold = ph->zero_threshold;
	out->zero_count = ph->zero_count;
	out->count = ph->zero_count;
	out->sum = ph->sample_sum;
	for (size_t s = 0; s < ph->n_positive_span; s++) {
		idx += ph->positive_span[s]->offset;
		for (__u32 l = 0; l < ph->positive_span[s]->length; l++, idx++, j++) {
			if (j >= ph->n_positive_delta || j >= FERRY_HIST_BUCKETS)
				return false;
			count += ph->positive_delta[j];
			if (count < 0)
				return false;
			out->index[j] = idx;
			out->bucket[j] = (__u64)count;
			out->count += (__u64)count;
		}
	}
	out->n = j;
	return j == ph->n_positive_delta;
}

/* What the native buckets must be: each kernel bucket whole at its midpoint, computed here. */
static bool native_matches_kernel(const struct ferry_hist_native *got, const struct ferry_hist *h)
{
	static __u64 want[2048];
	const int base = 1024; /* schema-4 indexes of 1 us .. 137 s are -319 .. 114 */
	size_t j = 0;

	memset(want, 0, sizeof(want));
	if (got->zero_count != h->bucket[0])
		return false;
	for (unsigned int i = 1; i < FERRY_HIST_BUCKETS; i++) {
		__u64 a, b;
		double mid;

		if (!h->bucket[i])
			continue;
		ferry_hist__bounds(i, &a, &b);
		mid = i == FERRY_HIST_LAST ? LOG2_NS_TO_S(a) :
					     (LOG2_NS_TO_S(a) + LOG2_NS_TO_S(b)) / 2;
		want[base + (int)ceil(mid * 16)] += h->bucket[i];
	}
	for (int k = 0; k < 2048; k++) {
		if (!want[k])
			continue;
		if (j >= got->n || got->index[j] != k - base || got->bucket[j] != want[k])
			return false;
		j++;
	}
	return j == got->n;
}

static void check_pb_hist(const struct pb_families *p, const char *family, const char *pred,
			  const struct ferry_hist *h, double exact_s)
{
	const Io__Prometheus__Client__MetricFamily *mf = pb_family(p, family);
	const Io__Prometheus__Client__Metric *m = pb_metric(mf, "predictor_name", pred);
	const struct ferry_hist_buckets *b = ferry_hist__default_buckets();
	struct ferry_hist_native *nat = malloc(sizeof(*nat));
	const Io__Prometheus__Client__Histogram *ph;
	__u64 cum[64], total;

	if (!ASSERT_TRUE(nat, "alloc") ||
	    !ASSERT_TRUE(mf && mf->type == IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM,
			 "histogram family") ||
	    !ASSERT_TRUE(m && m->histogram, "histogram of the predictor"))
		goto out;
	ph = m->histogram;
	ASSERT_EQ(ph->sample_count, ferry_hist__total(h), "sample_count");
	ASSERT_TRUE(within(ph->sample_sum, (double)h->sum_ns / 1e9, 1e-12), "sample_sum");
	/* classic buckets in the same message, as the text format has them */
	ferry_hist__rebucket(h, b, cum, &total);
	if (ASSERT_EQ(ph->n_bucket, b->n, "classic buckets"))
		for (size_t k = 0; k < b->n; k++)
			if (!ASSERT_EQ(ph->bucket[k]->cumulative_count, cum[k], "classic count") ||
			    !ASSERT_TRUE(ph->bucket[k]->upper_bound == b->le[k], "classic le"))
				break;
	ASSERT_TRUE(ph->has_schema && ph->schema == 4, "schema 4");
	ASSERT_TRUE(ph->zero_threshold > 0, "zero threshold set (marks it native)");
	if (!ASSERT_TRUE(pb_native(ph, nat), "spans and deltas decode"))
		goto out;
	ASSERT_EQ(nat->count, ph->sample_count, "native buckets add up to the count");
	ASSERT_TRUE(native_matches_kernel(nat, h), "native buckets are the kernel's, at midpoints");
	if (exact_s > 0)
		for (double q = 0.5; q < 1; q += 0.49) {
			double got = ferry_hist__native_quantile(nat, q);

			if (!ASSERT_LE(fabs(log2(got / exact_s)), FERRY_HIST_NATIVE_LOG2_ERR,
				       "decoded native quantile within bound"))
				fprintf(stderr, "    %s q %.2f: %.9g s, exact %.9g s\n", pred, q,
					got, exact_s);
		}
out:
	free(nat);
}

/* Counts text samples (not comments) that carry needle. */
static size_t count_lines(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *eol = strchr(l, '\n'), *hit = strstr(l, needle);

		if (*l != '#' && hit && (!eol || hit < eol))
			n++;
	}
	return n;
}

static void test_render_protobuf(void)
{
	struct ferry_snapshot *s = sample_snapshot("canary");
	struct ferry_metrics_opts opts = { .version = "test-1.2" };
	struct pb_families p = {};
	char *buf = NULL, *text = NULL;
	size_t len, tlen;

	if (!ASSERT_TRUE(s, "sample"))
		goto out;
	if (!ASSERT_OK(render_sample_format(s, NULL, FERRY_METRICS_PROTOBUF, &buf, &len),
		       "render protobuf") ||
	    !ASSERT_OK(render_sample(s, NULL, &text, &tlen), "render text"))
		goto out;
	if (!ASSERT_TRUE(pb_decode((const uint8_t *)buf, len, &p), "delimited MetricFamily stream"))
		goto out;
	/* the same families as the text (both walk families[]), with the same types */
	for (const char *t = strstr(text, "# TYPE "); t; t = strstr(t + 1, "# TYPE ")) {
		char name[128], type[32], first[140];
		const Io__Prometheus__Client__MetricFamily *mf;
		static const char *const types[] = { "counter", "gauge", "summary", "untyped",
						     "histogram" };

		if (sscanf(t, "# TYPE %127s %31s", name, type) != 2)
			continue;
		snprintf(first, sizeof(first), "\n%s", name);
		mf = pb_family(&p, name);
		if (!strstr(t, first)) /* no sample in the text: none in protobuf either */
			continue;
		if (!ASSERT_TRUE(mf, "family in protobuf")) {
			fprintf(stderr, "    missing %s\n", name);
			continue;
		}
		ASSERT_TRUE(mf->has_type && (size_t)mf->type < 5 && !strcmp(types[mf->type], type),
			    "family type");
		ASSERT_TRUE(mf->help && mf->help[0], "family help");
	}
	{
		const Io__Prometheus__Client__Metric *m = pb_metric(
			pb_family(&p, "ferry_new_connections_total"), "predictor_name", "main");
		const Io__Prometheus__Client__Metric *w =
			pb_metric(pb_family(&p, "ferry_predictor_weight_configured"),
				  "predictor_name", "main");

		ASSERT_TRUE(m && m->counter && m->counter->value == 30, "counter value");
		ASSERT_TRUE(m && pb_label(m, "deployment_name") &&
				    !strcmp(pb_label(m, "deployment_name"), "iris"),
			    "row labels");
		ASSERT_TRUE(w && w->gauge && within(w->gauge->value, 0.9, 1e-9), "gauge value");
	}
	check_pb_hist(&p, "ferry_request_duration_seconds", "main",
		      ferry_snapshot__hist(s, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, PRED_MAIN),
		      0.005);
	check_pb_hist(&p, "ferry_request_duration_seconds", "canary",
		      ferry_snapshot__hist(s, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, PRED_CANARY),
		      0.020);
	check_pb_hist(&p, "ferry_connect_duration_seconds", "main",
		      ferry_snapshot__hist(s, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT, PRED_MAIN),
		      0);
	/* a predictor without samples: an empty native histogram, still marked native */
	{
		const Io__Prometheus__Client__Metric *m =
			pb_metric(pb_family(&p, "ferry_connect_duration_seconds"), "predictor_name",
				  "canary");

		ASSERT_TRUE(m && m->histogram && m->histogram->sample_count == 0 &&
				    m->histogram->zero_threshold > 0 &&
				    m->histogram->n_positive_span == 0,
			    "empty native histogram");
	}
	pb_families_free(&p);
	free(buf);
	buf = NULL;

	/* --no-backend-histograms: gone from both formats, the other backend series stay */
	opts.no_backend_histograms = true;
	if (ASSERT_OK(ferry_metrics__render_format(s, &opts, FERRY_METRICS_PROTOBUF, &buf, &len),
		      "render protobuf without backend histograms") &&
	    ASSERT_TRUE(pb_decode((const uint8_t *)buf, len, &p), "decode")) {
		ASSERT_TRUE(!pb_family(&p, "ferry_backend_request_duration_seconds"),
			    "no backend request histograms");
		ASSERT_TRUE(pb_family(&p, "ferry_backend_new_connections_total"),
			    "backend counters stay");
		ASSERT_TRUE(pb_family(&p, "ferry_request_duration_seconds"),
			    "predictor histograms stay");
	}
out:
	pb_families_free(&p);
	free(buf);
	free(text);
	ferry_snapshot__free(s);
}

/*
 * Series per backend, with and without --no-backend-histograms, as
 * docs/metrics.md states them: 10 counters (new connections, 6 HTTP classes,
 * requests by 3 protocols)
 * plus 21 per classic histogram with the default buckets (18 boundaries,
 * +Inf, _sum, _count).
 */
static void test_backend_series(void)
{
	struct ferry_snapshot *s = sample_snapshot("canary");
	struct ferry_metrics_opts opts = { .version = "t" };
	const char *be = "backend=\"198.18.1.1:8080\"";
	char *text = NULL;
	size_t len;

	if (!ASSERT_TRUE(s, "sample"))
		return;
	/* 198.18.1.1 has a request histogram and no connect histogram entry */
	if (!ASSERT_OK(render_sample(s, NULL, &text, &len), "render"))
		goto out;
	/* 7 + 3: ferry_backend_requests_total has one series per protocol */
	ASSERT_EQ(count_lines(text, be), 10 + 21, "backend with one histogram: 31 series");
	free(text);
	text = NULL;
	opts.no_backend_histograms = true;
	if (!ASSERT_OK(ferry_metrics__render(s, &opts, &text, &len), "render without"))
		goto out;
	ASSERT_EQ(count_lines(text, be), 10, "--no-backend-histograms: 10 series");
	ASSERT_TRUE(!strstr(text, "ferry_backend_request_duration_seconds"), "family gone");
	ASSERT_STRSTR(text, "ferry_request_duration_seconds_bucket{", "predictor histograms stay");
out:
	free(text);
	ferry_snapshot__free(s);
}

static void test_negotiate(void)
{
	static const struct {
		const char *accept;
		enum ferry_metrics_format want;
	} cases[] = {
		{ NULL, FERRY_METRICS_TEXT },
		{ "", FERRY_METRICS_TEXT },
		{ "*/*", FERRY_METRICS_TEXT },
		{ "text/plain;version=0.0.4", FERRY_METRICS_TEXT },
		{ "application/openmetrics-text; version=1.0.0", FERRY_METRICS_TEXT },
		{ FERRY_METRICS_PROTOBUF_TYPE, FERRY_METRICS_PROTOBUF },
		/* what Prometheus sends with --enable-feature=native-histograms */
		{ "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
		  "encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.5,"
		  "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
		  FERRY_METRICS_PROTOBUF },
		/* without encoding=delimited it is another format */
		{ "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily",
		  FERRY_METRICS_TEXT },
		{ "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
		  FERRY_METRICS_TEXT },
		/* text preferred */
		{ "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
		  "encoding=delimited;q=0.2, text/plain;q=0.5",
		  FERRY_METRICS_TEXT },
		{ "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
		  "encoding=delimited;q=0",
		  FERRY_METRICS_TEXT },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!ASSERT_EQ(ferry_metrics__negotiate(cases[i].accept), cases[i].want,
			       "negotiated format"))
			fprintf(stderr, "    Accept: %s\n",
				cases[i].accept ? cases[i].accept : "(none)");
}

/* ------------------------------------------------------------- server */

struct fetch {
	char *body;
	size_t len;
};

static size_t fetch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct fetch *f = userdata;
	char *grown = realloc(f->body, f->len + size * nmemb + 1);

	if (!grown)
		return 0;
	f->body = grown;
	memcpy(f->body + f->len, ptr, size * nmemb);
	f->len += size * nmemb;
	f->body[f->len] = '\0';
	return size * nmemb;
}

static long http_get_accept(const char *url, const char *accept, struct fetch *f, char *ctype,
			    size_t ctype_len)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *headers = NULL;
	char header[512];
	long status = -1;
	char *ct = NULL;

	if (!curl)
		return -1;
	if (accept) {
		snprintf(header, sizeof(header), "Accept: %s", accept);
		headers = curl_slist_append(NULL, header);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	}
	f->body = NULL;
	f->len = 0;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	if (curl_easy_perform(curl) == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
		if (ctype)
			snprintf(ctype, ctype_len, "%s", ct ? ct : "");
	}
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	return status;
}

static long http_get(const char *url, struct fetch *f, char *ctype, size_t ctype_len)
{
	return http_get_accept(url, NULL, f, ctype, ctype_len);
}

static int produce_sample(void *ctx, enum ferry_metrics_format format, char **buf, size_t *len)
{
	return render_sample_format(ctx, NULL, format, buf, len);
}

static void test_http_server(void)
{
	struct ferry_snapshot *s = sample_snapshot("canary");
	struct ferry_metrics_server *srv = NULL;
	struct fetch f = {};
	char url[128], ctype[128] = "";
	static const char *const bad[] = { "nonsense",	"::1:9090",	   "127.0.0.1:http",
					   "[::1]9090", "127.0.0.1:70000", "" };

	if (!ASSERT_TRUE(s, "sample"))
		return;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv = ferry_metrics__serve(bad[i], produce_sample, s);
		if (!ASSERT_TRUE(!srv && errno == EINVAL, "bad --metrics-addr refused")) {
			fprintf(stderr, "    address \"%s\"\n", bad[i]);
			goto out;
		}
	}
	srv = ferry_metrics__serve("127.0.0.1:0", produce_sample, s);
	if (!ASSERT_TRUE(srv, "serve on 127.0.0.1:0"))
		goto out;
	if (!ASSERT_TRUE(ferry_metrics__port(srv) > 0, "bound port"))
		goto out;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", ferry_metrics__port(srv));
	if (ASSERT_EQ(http_get(url, &f, ctype, sizeof(ctype)), 200, "/metrics status")) {
		ASSERT_STRSTR(ctype, "text/plain; version=0.0.4", "content type");
		ASSERT_STRSTR(f.body, "ferry_new_connections_total{" MAIN_LABELS "} 30\n", "body");
	}
	free(f.body);
	/* a scraper asking for protobuf gets delimited MetricFamily messages */
	if (ASSERT_EQ(http_get_accept(url,
				      "application/vnd.google.protobuf;proto=io.prometheus.client."
				      "MetricFamily;encoding=delimited;q=0.8,text/plain;q=0.4",
				      &f, ctype, sizeof(ctype)),
		      200, "/metrics protobuf status")) {
		struct pb_families p;

		ASSERT_STRSTR(ctype, "application/vnd.google.protobuf", "protobuf content type");
		ASSERT_STRSTR(ctype, "encoding=delimited", "delimited");
		if (ASSERT_TRUE(pb_decode((const uint8_t *)f.body, f.len, &p), "decodes"))
			ASSERT_TRUE(pb_family(&p, "ferry_request_duration_seconds"),
				    "histogram family served");
		pb_families_free(&p);
	}
	free(f.body);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", ferry_metrics__port(srv));
	if (ASSERT_EQ(http_get(url, &f, NULL, 0), 200, "/healthz status"))
		ASSERT_STRSTR(f.body, "ok", "/healthz body");
	free(f.body);
	/* Not ready until told (ferryd: after its first complete sync). */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", ferry_metrics__port(srv));
	ASSERT_EQ(http_get(url, &f, NULL, 0), 503, "/readyz before the first sync");
	free(f.body);
	ferry_metrics__set_ready(srv, true);
	ASSERT_EQ(http_get(url, &f, NULL, 0), 200, "/readyz after it");
	free(f.body);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/other", ferry_metrics__port(srv));
	ASSERT_EQ(http_get(url, &f, NULL, 0), 404, "other paths 404");
	free(f.body);
	ferry_metrics__stop(srv);
	srv = NULL;

	/* ":PORT" listens on every address, IPv4 included */
	srv = ferry_metrics__serve(":0", produce_sample, s);
	if (ASSERT_TRUE(srv, "serve on :0")) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", ferry_metrics__port(srv));
		ASSERT_EQ(http_get(url, &f, NULL, 0), 200, "/healthz on :PORT over IPv4");
		free(f.body);
	}
	ferry_metrics__stop(srv);
	srv = NULL;

	/* IPv6 literal; loopback v6 may be disabled on a host, so only if it binds */
	srv = ferry_metrics__serve("[::1]:0", produce_sample, s);
	if (srv) {
		snprintf(url, sizeof(url), "http://[::1]:%d/healthz", ferry_metrics__port(srv));
		ASSERT_EQ(http_get(url, &f, NULL, 0), 200, "/healthz over IPv6");
		free(f.body);
	} else {
		fprintf(stderr, "    note: [::1] not bindable here (%s); IPv6 fetch not checked\n",
			strerror(errno));
	}
out:
	ferry_metrics__stop(srv);
	ferry_snapshot__free(s);
}

/* ------------------------------------------------- pinned maps (root) */

#define PIN_ROOT "/sys/fs/bpf/ferry-fm-test"

static void remove_pins(void)
{
	DIR *d = opendir(PIN_ROOT);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), PIN_ROOT "/%s", e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(PIN_ROOT);
}

/*
 * Writes value into every CPU's slot of a per-CPU map, CPU c getting each
 * __u64 word times (c + 1), so the snapshot must sum to value x n(n+1)/2.
 */
static int put_percpu(int fd, const void *key, const void *value, size_t size, int ncpus)
{
	size_t slot = (size + 7) & ~7UL;
	char *raw = calloc(ncpus, slot);
	int err;

	if (!raw)
		return -ENOMEM;
	for (int c = 0; c < ncpus; c++)
		for (size_t w = 0; w < size / 8; w++)
			((__u64 *)(raw + c * slot))[w] = ((const __u64 *)value)[w] * (c + 1);
	err = bpf_map_update_elem(fd, key, raw, BPF_ANY);
	free(raw);
	return err;
}

static int pinned_fd(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), PIN_ROOT "/%s", name);
	return bpf_obj_get(path);
}

static void test_snapshot_pinned(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts, .pin_root_path = PIN_ROOT);
	struct ferry_xdp *xdp = NULL;
	struct ferry_snapshot *snap = NULL;
	int ncpus = libbpf_num_possible_cpus(), err, fd;
	__u64 mult = (__u64)ncpus * (ncpus + 1) / 2;

	TEST_NEEDS_ROOT();
	/* The XDP object of this build (its skeleton), loaded as ferryd loads it, pins
	 * the maps: every step is expected to work, a verifier rejection is a failure. */
	remove_pins();
	if (mkdir(PIN_ROOT, 0700) && errno != EEXIST) {
		test__fail(__FILE__, __LINE__, "pin dir",
			   "cannot create " PIN_ROOT ": %s (is bpffs mounted?)", strerror(errno));
		return;
	}
	xdp = ferry_xdp__open_opts(&oopts);
	if (!xdp) {
		test__fail(__FILE__, __LINE__, "open", "the XDP object does not open: %s",
			   strerror(errno));
		goto out_unpin;
	}
	xdp->rodata->ferry_xdp_meta = ferry_dp_xdp_meta();
	err = ferry_xdp__load(xdp);
	if (err) {
		test__fail(__FILE__, __LINE__, "load",
			   "the XDP object does not load: %s (verifier log above)", strerror(-err));
		goto out_close;
	}

	/* config */
	struct ferry_config cfg = { .abi_version = FERRY_ABI_VERSION,
				    .generation = 5,
				    .sync_unix_ns = 123456789 };
	__u32 zero = 0, id;
	fd = pinned_fd(FERRY_MAP_CONFIG);
	if (!ASSERT_TRUE(fd >= 0, "config pinned") ||
	    !ASSERT_OK(bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY), "write config"))
		goto out_close;
	close(fd);

	/* a service, and an address marker that the snapshot must skip */
	struct ferry_vip vip = { .port = htons(80), .proto = 6, .family = FERRY_AF_INET };
	struct ferry_vip marker = { .family = FERRY_AF_INET };
	struct ferry_service svc = { .id = SVC_ID, .table_size = 7, .sample_every = 1 };
	struct ferry_service msvc = { .flags = FERRY_SVC_F_ADDR_MARKER };
	set_v4(vip.addr, "198.18.0.10");
	set_v4(marker.addr, "198.18.0.10");
	fd = pinned_fd(FERRY_MAP_SERVICES);
	if (!ASSERT_TRUE(fd >= 0, "services pinned") ||
	    !ASSERT_OK(bpf_map_update_elem(fd, &vip, &svc, BPF_ANY), "write service") ||
	    !ASSERT_OK(bpf_map_update_elem(fd, &marker, &msvc, BPF_ANY), "write marker"))
		goto out_close;
	close(fd);

	struct ferry_svc_meta smeta = { .vip = vip,
					.npredictors = 1,
					.deployment = "models/iris",
					.predictor_ids = { PRED_MAIN },
					.table_generation = 3 };
	id = SVC_ID;
	fd = pinned_fd(FERRY_MAP_SVC_META);
	if (!ASSERT_TRUE(fd >= 0, "svc_meta pinned") ||
	    !ASSERT_OK(bpf_map_update_elem(fd, &id, &smeta, BPF_ANY), "write svc_meta"))
		goto out_close;
	close(fd);
	struct ferry_svc_stats sst = { .no_backend = 2, .fragments = 1 };
	fd = pinned_fd(FERRY_MAP_SVC_STATS);
	if (!ASSERT_TRUE(fd >= 0, "svc_stats pinned") ||
	    !ASSERT_OK(put_percpu(fd, &id, &sst, sizeof(sst), ncpus), "write svc_stats"))
		goto out_close;
	close(fd);

	/* two backends of predictor 1 */
	struct ferry_backend be = { .port = htons(8080),
				    .family = FERRY_AF_INET,
				    .state = FERRY_BE_ACTIVE,
				    .predictor_id = PRED_MAIN,
				    .svc_id = SVC_ID };
	struct ferry_stats st = { .fwd_packets = 10,
				  .new_flows = 2,
				  .http = { [FERRY_HTTP_2XX] = 1 } };
	int bfd = pinned_fd(FERRY_MAP_BACKENDS), sfd = pinned_fd(FERRY_MAP_STATS);
	if (!ASSERT_TRUE(bfd >= 0 && sfd >= 0, "backends and stats pinned")) {
		if (bfd >= 0)
			close(bfd);
		if (sfd >= 0)
			close(sfd);
		goto out_close;
	}
	for (id = 100; id < 102; id++) {
		set_v4(be.addr, id == 100 ? "198.18.1.1" : "198.18.1.2");
		be.state = id == 100 ? FERRY_BE_ACTIVE : FERRY_BE_DRAINING;
		if (!ASSERT_OK(bpf_map_update_elem(bfd, &id, &be, BPF_ANY), "write backend") ||
		    !ASSERT_OK(put_percpu(sfd, &id, &st, sizeof(st), ncpus), "write stats"))
			break;
	}
	close(bfd);
	close(sfd);

	struct ferry_pred_meta pm = { .svc_id = SVC_ID,
				      .weight_configured = 1000000,
				      .weight_effective = 1000000,
				      .backends_ready = 1,
				      .backends_draining = 1,
				      .name = "main",
				      .retired = { .new_flows = 7 } };
	id = PRED_MAIN;
	fd = pinned_fd(FERRY_MAP_PRED_META);
	if (!ASSERT_TRUE(fd >= 0, "pred_meta pinned") ||
	    !ASSERT_OK(bpf_map_update_elem(fd, &id, &pm, BPF_ANY), "write pred_meta"))
		goto out_close;
	close(fd);

	struct ferry_hist_key hk = { .id = PRED_MAIN,
				     .kind = FERRY_HIST_PREDICTOR,
				     .metric = FERRY_LAT_REQUEST };
	struct ferry_hist *h = calloc(1, sizeof(*h));
	if (!ASSERT_TRUE(h, "calloc"))
		goto out_close;
	fill_constant(h, 5 * MS, 10);
	fd = pinned_fd(FERRY_MAP_LATENCY);
	err = fd >= 0 ? put_percpu(fd, &hk, h, sizeof(*h), ncpus) : -ENOENT;
	if (fd >= 0)
		close(fd);
	if (!ASSERT_OK(err, "write latency")) {
		free(h);
		goto out_close;
	}

	__u64 one = 1;
	__u32 ctr = FERRY_CTR_FRAGMENT;
	fd = pinned_fd(FERRY_MAP_COUNTERS);
	if (!ASSERT_TRUE(fd >= 0, "counters pinned") ||
	    !ASSERT_OK(put_percpu(fd, &ctr, &one, sizeof(one), ncpus), "write counter")) {
		free(h);
		goto out_close;
	}
	close(fd);

	struct ferry_link link = { .ifname = "fm-veth0", .hooks = FERRY_LINK_XDP_NATIVE };
	id = 9;
	fd = pinned_fd(FERRY_MAP_LINKS);
	if (!ASSERT_TRUE(fd >= 0, "links pinned") ||
	    !ASSERT_OK(bpf_map_update_elem(fd, &id, &link, BPF_ANY), "write link")) {
		free(h);
		goto out_close;
	}
	close(fd);

	/* read it all back */
	snap = ferry_snapshot__read(PIN_ROOT);
	if (!ASSERT_TRUE(snap, "snapshot read")) {
		fprintf(stderr, "    errno: %s\n", strerror(errno));
		free(h);
		goto out_close;
	}
	ASSERT_TRUE(snap->has_config && snap->config.generation == 5, "config");
	if (ASSERT_EQ(snap->nservices, 1, "one service, marker skipped")) {
		const struct ferry_snap_service *sv = ferry_snapshot__service(snap, SVC_ID);

		if (ASSERT_TRUE(sv, "service by id")) {
			ASSERT_TRUE(sv->has_meta, "svc meta joined");
			ASSERT_STREQ(sv->deployment, "models/iris", "deployment");
			ASSERT_EQ(sv->table_size, 7, "table size");
			ASSERT_EQ(sv->table_generation, 3, "table generation");
			ASSERT_EQ(sv->stats.no_backend, 2 * mult, "svc stats summed over CPUs");
		}
	}
	if (ASSERT_EQ(snap->nbackends, 2, "two backends (unused slots skipped)")) {
		ASSERT_EQ(snap->backends[1].backend.state, FERRY_BE_DRAINING, "state");
		ASSERT_EQ(snap->backends[0].stats.fwd_packets, 10 * mult, "per-CPU sum");
	}
	if (ASSERT_EQ(snap->npredictors, 1, "one predictor")) {
		const struct ferry_snap_predictor *p = ferry_snapshot__predictor(snap, PRED_MAIN);

		if (ASSERT_TRUE(p, "predictor by id")) {
			ASSERT_STREQ(p->name, "main", "name");
			ASSERT_EQ(p->stats.new_flows, 7 + 2 * 2 * mult, "retired + backends");
			ASSERT_EQ(p->stats.http[FERRY_HTTP_2XX], 2 * mult, "http 2xx");
		}
	}
	const struct ferry_hist *got =
		ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, PRED_MAIN);
	if (ASSERT_TRUE(got, "histogram by key")) {
		ASSERT_EQ(got->count, 10 * mult, "hist count");
		ASSERT_EQ(got->bucket[ferry_hist__bucket(5 * MS)], 10 * mult, "hist bucket");
	}
	ASSERT_EQ(snap->counters[FERRY_CTR_FRAGMENT], mult, "counter");
	if (ASSERT_EQ(snap->nlinks, 1, "one link")) {
		ASSERT_EQ(snap->links[0].ifindex, 9, "ifindex");
		ASSERT_STREQ(snap->links[0].link.ifname, "fm-veth0", "ifname");
	}
	free(h);

	/* end to end: ferryd's producer serves what the pins hold */
	{
		struct ferry_metrics_source src = { .pin_path = PIN_ROOT };
		struct ferry_metrics_source absent = { .pin_path = PIN_ROOT "-absent" };
		struct ferry_metrics_server *srv;
		struct fetch f = {};
		char url[128], want[256];

		srv = ferry_metrics__serve("127.0.0.1:0", ferry_metrics__produce, &src);
		if (ASSERT_TRUE(srv, "serve pins")) {
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics",
				 ferry_metrics__port(srv));
			snprintf(
				want, sizeof(want), "ferry_new_connections_total{%s} %llu\n",
				"namespace=\"models\",deployment_name=\"iris\",vip=\"198.18.0.10:80\","
				"predictor_name=\"main\"",
				(unsigned long long)(7 + 2 * 2 * mult));
			if (ASSERT_EQ(http_get(url, &f, NULL, 0), 200, "/metrics from pins"))
				ASSERT_STRSTR(f.body, want, "pinned counters served");
			free(f.body);
			ferry_metrics__stop(srv);
		}
		srv = ferry_metrics__serve("127.0.0.1:0", ferry_metrics__produce, &absent);
		if (ASSERT_TRUE(srv, "serve absent pins")) {
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics",
				 ferry_metrics__port(srv));
			ASSERT_EQ(http_get(url, &f, NULL, 0), 500, "/metrics without pins is 500");
			free(f.body);
			ferry_metrics__stop(srv);
		}
	}

	/* pins written under another ABI are refused, not misread */
	cfg.abi_version = FERRY_ABI_VERSION + 1;
	fd = pinned_fd(FERRY_MAP_CONFIG);
	if (ASSERT_TRUE(fd >= 0, "config pinned") &&
	    ASSERT_OK(bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY), "write config")) {
		struct ferry_snapshot *other = ferry_snapshot__read(PIN_ROOT);

		ASSERT_TRUE(!other && errno == EPROTO, "other ABI refused");
		ferry_snapshot__free(other);
	}
	if (fd >= 0)
		close(fd);
	/* a missing pin directory is ENOENT, not a crash */
	ASSERT_TRUE(!ferry_snapshot__read(PIN_ROOT "-absent") && errno == ENOENT, "absent pins");
out_close:
	ferry_snapshot__free(snap);
	ferry_xdp__destroy(xdp);
out_unpin:
	remove_pins();
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	RUN_TEST(SUITE, test_hist_bucket_mapping);
	RUN_TEST(SUITE, test_hist_quantile_constant);
	RUN_TEST(SUITE, test_hist_quantile_lognormal);
	RUN_TEST(SUITE, test_hist_rebucket);
	RUN_TEST(SUITE, test_parse_buckets);
	RUN_TEST(SUITE, test_hist_native_mapping);
	RUN_TEST(SUITE, test_hist_native_quantiles);
	RUN_TEST(SUITE, test_negotiate);
	RUN_TEST(SUITE, test_render);
	RUN_TEST(SUITE, test_render_quantiles);
	RUN_TEST(SUITE, test_render_escaping);
	RUN_TEST(SUITE, test_render_empty);
	RUN_TEST(SUITE, test_render_hist_placeholder);
	RUN_TEST(SUITE, test_render_protobuf);
	RUN_TEST(SUITE, test_backend_series);
	RUN_TEST(SUITE, test_promtool_check_metrics);
	RUN_TEST(SUITE, test_http_server);
	RUN_TEST(SUITE, test_snapshot_pinned);
	curl_global_cleanup();
	return test__summary();
}
