/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Latency histogram math for ferry's log-linear kernel histograms (struct
 * ferry_hist): bucket bounds, the value -> bucket mapping the BPF side uses,
 * quantile estimates, and re-bucketing into Prometheus `le` boundaries.
 *
 * Bucket layout (see FERRY_HIST_* in maps/ferry_maps.h): bucket 0 holds
 * [0, 2^10) ns; bucket i > 0 has octave o = (i - 1) / 16 and sub-bucket
 * s = (i - 1) % 16 and holds [2^(10+o) * (1 + s/16), 2^(10+o) * (1 + (s+1)/16)).
 * The last bucket also takes everything above its upper bound (open-ended).
 */
#ifndef FERRY_HIST_H
#define FERRY_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "ferry_maps.h"

#define FERRY_HIST_SUBS (1U << FERRY_HIST_SUB_BITS)
#define FERRY_HIST_LAST (FERRY_HIST_BUCKETS - 1)

/*
 * Index of the most significant set bit of v (v > 0), by binary search:
 * no builtins and no loops, so the BPF side can use this body verbatim
 * (clang's BPF target has no count-leading-zeros instruction).
 */
static inline __u32 ferry_hist__msb(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/*
 * The bucket a latency of ns nanoseconds goes to. This is THE mapping: the
 * BPF programs must compute exactly this (copy the body), and the tests
 * check it against ferry_hist__bounds().
 */
static inline __u32 ferry_hist__bucket(__u64 ns)
{
	__u32 msb, octave, sub;

	if (ns < (1ULL << FERRY_HIST_MIN_SHIFT))
		return 0;
	msb = ferry_hist__msb(ns);
	octave = msb - FERRY_HIST_MIN_SHIFT;
	if (octave >= FERRY_HIST_OCTAVES)
		return FERRY_HIST_LAST;
	/* the FERRY_HIST_SUB_BITS bits just below the leading one */
	sub = (ns >> (msb - FERRY_HIST_SUB_BITS)) & (FERRY_HIST_SUBS - 1);
	return 1 + (octave << FERRY_HIST_SUB_BITS) + sub;
}

/*
 * Bounds of bucket i in ns: [*lower, *upper). For the last bucket *upper is
 * its nominal upper bound although it also holds larger values.
 */
void ferry_hist__bounds(unsigned int i, __u64 *lower, __u64 *upper);

/* Adds one sample of ns nanoseconds (user-space twin of the BPF update). */
void ferry_hist__add(struct ferry_hist *h, __u64 ns);

/* Sum of the bucket counts (can differ from h->count by in-flight per-CPU updates). */
__u64 ferry_hist__total(const struct ferry_hist *h);

/*
 * Estimate of quantile q (0..1) in ns, interpolating linearly inside the
 * bucket that holds the rank. Within one bucket width (12.5%) of the truth;
 * at most ~6% off when samples are spread evenly in that bucket. Returns
 * NaN for an empty histogram. A rank in the open-ended last bucket gives
 * its lower bound.
 */
double ferry_hist__quantile(const struct ferry_hist *h, double q);

/* Exported Prometheus `le` boundaries, in seconds, ascending; +Inf is implicit. */
struct ferry_hist_buckets {
	double *le;
	size_t n;
};

/* The default boundaries (sub-millisecond, Seldon's defaults, 30 s and 60 s). */
const struct ferry_hist_buckets *ferry_hist__default_buckets(void);

/*
 * Parses "0.001,0.005,..." (seconds, strictly ascending, positive, finite;
 * "+Inf" may end the list and is dropped). On error returns -EINVAL and, if
 * err is not NULL, writes a message naming the offending item into err.
 */
int ferry_hist__parse_buckets(const char *list, struct ferry_hist_buckets *out, char *err,
			      size_t err_len);
void ferry_hist__buckets_free(struct ferry_hist_buckets *b);

/*
 * Cumulative counts at each boundary of b into cum[0..b->n-1], and the
 * total (the +Inf bucket) into *total. The count at boundary x is the sum
 * of kernel buckets entirely below x plus a linear share of the kernel
 * bucket that straddles x, rounded to the nearest integer. Rounding a
 * non-decreasing sequence keeps it non-decreasing, so counts stay integral
 * and monotonic. Error bound: the count at x lies between the exact counts
 * at the straddling bucket's bounds lower(x) <= x < upper(x), a band at most
 * 12.5% wide around x; and it is off by at most that bucket's count.
 */
void ferry_hist__rebucket(const struct ferry_hist *h, const struct ferry_hist_buckets *b,
			  __u64 *cum, __u64 *total);

#endif /* FERRY_HIST_H */
