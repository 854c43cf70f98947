// SPDX-License-Identifier: GPL-2.0-only
/* Histogram math: bucket bounds, quantiles and Prometheus re-bucketing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/hist.h"

void ferry_hist__bounds(unsigned int i, __u64 *lower, __u64 *upper)
{
	unsigned int octave, sub;
	__u64 base;

	if (i == 0 || i >= FERRY_HIST_BUCKETS) {
		*lower = 0;
		*upper = 1ULL << FERRY_HIST_MIN_SHIFT;
		return;
	}
	octave = (i - 1) >> FERRY_HIST_SUB_BITS;
	sub = (i - 1) & (FERRY_HIST_SUBS - 1);
	base = 1ULL << (FERRY_HIST_MIN_SHIFT + octave);
	/* base is a multiple of 8 (>= 2^10), so these divisions are exact */
	*lower = base + (base >> FERRY_HIST_SUB_BITS) * sub;
	*upper = base + (base >> FERRY_HIST_SUB_BITS) * (sub + 1);
}

void ferry_hist__add(struct ferry_hist *h, __u64 ns)
{
	h->count++;
	h->sum_ns += ns;
	h->bucket[ferry_hist__bucket(ns)]++;
}

__u64 ferry_hist__total(const struct ferry_hist *h)
{
	__u64 total = 0;

	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++)
		total += h->bucket[i];
	return total;
}

double ferry_hist__quantile(const struct ferry_hist *h, double q)
{
	__u64 total = ferry_hist__total(h), lower, upper;
	double rank, cum = 0;

	if (!total || isnan(q))
		return NAN;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	rank = q * (double)total;
	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++) {
		double n = (double)h->bucket[i];

		if (!h->bucket[i] || cum + n < rank) {
			cum += n;
			continue;
		}
		ferry_hist__bounds(i, &lower, &upper);
		if (i == FERRY_HIST_LAST)
			return (double)lower;
		return (double)lower + (double)(upper - lower) * ((rank - cum) / n);
	}
	/* rounding left the rank past the end: the highest non-empty bucket */
	for (unsigned int i = FERRY_HIST_BUCKETS; i-- > 0;) {
		if (h->bucket[i]) {
			ferry_hist__bounds(i, &lower, &upper);
			return i == FERRY_HIST_LAST ? (double)lower : (double)upper;
		}
	}
	return NAN;
}

/*
 * Sub-millisecond bounds for models that answer from memory, Seldon's
 * default buckets (what its executor exports, so dashboards line up), and
 * 30 s / 60 s for large-model inference.
 */
static double default_le[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1,	0.25,	 0.5,	 1,	2.5,	5,     10,   30,    60,
};

static const struct ferry_hist_buckets default_buckets = {
	.le = default_le,
	.n = sizeof(default_le) / sizeof(default_le[0]),
};

const struct ferry_hist_buckets *ferry_hist__default_buckets(void)
{
	return &default_buckets;
}

int ferry_hist__parse_buckets(const char *list, struct ferry_hist_buckets *out, char *err,
			      size_t err_len)
{
	char *copy, *item, *rest;
	double *le = NULL;
	size_t n = 0, cap = 0, pos = 0;
	bool inf_seen = false;

	out->le = NULL;
	out->n = 0;
	copy = strdup(list ? list : "");
	if (!copy)
		return -ENOMEM;
	rest = copy + strspn(copy, " ");
	/* An empty list keeps its own message; an empty item inside one is named below. */
	if (!*rest)
		rest = NULL;
	while ((item = strsep(&rest, ","))) {
		char *end;
		double v;

		pos++;
		while (*item == ' ')
			item++;
		if (!*item) {
			/* "0.1,,0.2" is a typo, not two boundaries: as --pod-iface, say where. */
			snprintf(err, err ? err_len : 0,
				 "bucket %zu of \"%s\" is empty: remove the extra comma", pos,
				 list);
			goto err_inval;
		}
		if (inf_seen) {
			snprintf(err, err ? err_len : 0,
				 "bucket \"%s\" after +Inf: +Inf must be last", item);
			goto err_inval;
		}
		if (!strcasecmp(item, "+inf") || !strcasecmp(item, "inf")) {
			inf_seen = true;
			continue;
		}
		errno = 0;
		v = strtod(item, &end);
		while (*end == ' ')
			end++;
		if (errno || end == item || *end || !isfinite(v) || v <= 0) {
			snprintf(
				err, err ? err_len : 0,
				"bucket \"%s\": expected a positive number of seconds such as 0.005",
				item);
			goto err_inval;
		}
		if (n && v <= le[n - 1]) {
			snprintf(err, err ? err_len : 0,
				 "bucket \"%s\": boundaries must be strictly ascending (after %g)",
				 item, le[n - 1]);
			goto err_inval;
		}
		if (n == cap) {
			double *grown;

			cap = cap ? cap * 2 : 16;
			grown = realloc(le, cap * sizeof(*le));
			if (!grown) {
				free(le);
				free(copy);
				return -ENOMEM;
			}
			le = grown;
		}
		le[n++] = v;
	}
	if (!n && inf_seen) {
		snprintf(err, err ? err_len : 0,
			 "+Inf alone: every histogram ends with +Inf already; give at least one "
			 "finite boundary in seconds such as 0.005");
		goto err_inval;
	}
	if (!n) {
		snprintf(
			err, err ? err_len : 0,
			"empty bucket list: expected comma-separated seconds such as 0.005,0.01,0.1");
		goto err_inval;
	}
	free(copy);
	out->le = le;
	out->n = n;
	return 0;

err_inval:
	free(le);
	free(copy);
	return -EINVAL;
}

void ferry_hist__buckets_free(struct ferry_hist_buckets *b)
{
	if (!b || b->le == default_le)
		return;
	free(b->le);
	b->le = NULL;
	b->n = 0;
}

void ferry_hist__rebucket(const struct ferry_hist *h, const struct ferry_hist_buckets *b,
			  __u64 *cum, __u64 *total)
{
	__u64 all = ferry_hist__total(h), lower, upper;
	unsigned int i = 0;
	double below = 0; /* samples in kernel buckets entirely below the boundary */

	for (size_t k = 0; k < b->n; k++) {
		double x = b->le[k] * 1e9, share = 0, c;

		/* kernel buckets are ascending; boundaries too: one pass */
		for (; i < FERRY_HIST_BUCKETS; i++) {
			ferry_hist__bounds(i, &lower, &upper);
			if (i == FERRY_HIST_LAST || (double)upper > x)
				break;
			below += (double)h->bucket[i];
		}
		/* the open-ended last bucket has no width to share linearly */
		if (i < FERRY_HIST_LAST && (double)lower < x)
			share = (double)h->bucket[i] * (x - (double)lower) /
				(double)(upper - lower);
		c = floor(below + share + 0.5);
		cum[k] = c > (double)all ? all : (__u64)c;
	}
	*total = all;
}

/* ------------------------------------------------- native histograms */

/* ns -> seconds in log2: log2(ns * 1e-9) */
static double log2_seconds(double ns)
{
	return log2(ns) - 9 * log2(10);
}

int ferry_hist__native_index(unsigned int i)
{
	__u64 lower, upper;
	double mid;

	ferry_hist__bounds(i, &lower, &upper);
	/* log2 of the geometric midpoint; the open-ended last bucket: its lower bound */
	mid = i >= FERRY_HIST_LAST ?
		      log2_seconds((double)lower) :
		      (log2_seconds((double)lower) + log2_seconds((double)upper)) / 2;
	/* (2^((k-1)/16), 2^(k/16)] holds x when k = ceil(16 log2 x) */
	return (int)ceil(mid * (1 << FERRY_HIST_NATIVE_SCHEMA));
}

double ferry_hist__native_zero_threshold(void)
{
	double scale = 1 << FERRY_HIST_NATIVE_SCHEMA;

	return exp2(floor(log2_seconds((double)(1ULL << FERRY_HIST_MIN_SHIFT)) * scale) / scale);
}

void ferry_hist__native(const struct ferry_hist *h, struct ferry_hist_native *out)
{
	out->zero_threshold = ferry_hist__native_zero_threshold();
	out->zero_count = h ? h->bucket[0] : 0;
	out->count = out->zero_count;
	out->sum = h ? (double)h->sum_ns / 1e9 : 0;
	out->n = 0;
	out->nspans = 0;
	if (!h)
		return;
	for (unsigned int i = 1; i < FERRY_HIST_BUCKETS; i++) {
		int k;

		if (!h->bucket[i])
			continue;
		out->count += h->bucket[i];
		k = ferry_hist__native_index(i);
		/* the midpoint map is monotonic: equal or greater than the last index */
		if (out->n && out->index[out->n - 1] == k) {
			out->bucket[out->n - 1] += h->bucket[i];
			continue;
		}
		if (out->n && out->index[out->n - 1] + 1 == k) {
			out->span[out->nspans - 1].length++;
		} else {
			out->span[out->nspans].offset = out->n ? k - (out->index[out->n - 1] + 1) :
								 k;
			out->span[out->nspans].length = 1;
			out->nspans++;
		}
		out->index[out->n] = k;
		out->bucket[out->n] = h->bucket[i];
		out->n++;
	}
}

double ferry_hist__native_quantile(const struct ferry_hist_native *n, double q)
{
	double rank, cum, scale = 1 << FERRY_HIST_NATIVE_SCHEMA;

	if (!n->count || isnan(q))
		return NAN;
	q = q < 0 ? 0 : q > 1 ? 1 : q;
	rank = q * (double)n->count;
	cum = (double)n->zero_count;
	if (n->zero_count && cum >= rank)
		return n->zero_threshold * (rank / cum);
	for (size_t j = 0; j < n->n; j++) {
		double c = (double)n->bucket[j];

		if (cum + c >= rank) {
			double lower = exp2((n->index[j] - 1) / scale);
			double upper = exp2(n->index[j] / scale);

			return lower + (upper - lower) * ((rank - cum) / c);
		}
		cum += c;
	}
	return exp2(n->index[n->n - 1] / scale);
}
