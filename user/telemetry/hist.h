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

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
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

/*
 * Prometheus native histograms, schema 4: bucket k holds (2^((k-1)/16), 2^(k/16)]
 * seconds. The kernel's buckets are log-linear in nanoseconds, so their
 * boundaries do not line up with schema 4's; each kernel bucket [a, b) goes
 * whole to the native bucket that holds its geometric midpoint sqrt(a b).
 *
 * Why whole and not split: a split count must be rounded to an integer, and
 * a rounded share can go down by one while the kernel's counts only grow,
 * which Prometheus takes for a counter reset (rate() then jumps). A whole
 * assignment keeps every native bucket a sum of kernel counters: integral,
 * monotonic, and the total is exact. The midpoint map is monotonic in the
 * kernel index, so samples keep their order across the re-bucketing.
 *
 * Error bound: a sample of true value v in kernel bucket [a, b) lands in the
 * native bucket (L, U] that holds sqrt(a b), so |log2(v) - log2(x)| for any x
 * in [L, U] is at most 1/16 + log2(b/a)/2 <= 1/16 + log2(17/16)/2 = 0.1062
 * (factor 1.0764). Because the order is kept, the sample at rank ceil(q n) sits
 * in the native bucket where Prometheus' histogram_quantile() looks for rank
 * q n, and whatever that function interpolates inside the bucket, the
 * estimate is within a factor 2^0.1062 (-7.1%, +7.6%) of the true quantile of
 * the sampled latencies (tests/test_metrics.c checks it). Typical errors are
 * far smaller: interpolation lands near the middle of a 4.4% bucket.
 *
 * The kernel's bucket 0, [0, 1.024 us), is the zero bucket; its threshold is
 * the largest schema-4 boundary at or below 1.024 us (0.996 us), so the zero
 * bucket and the first native bucket do not overlap. The open-ended last
 * kernel bucket goes to the native bucket of its lower bound.
 */
#define FERRY_HIST_NATIVE_SCHEMA 4
/* log2 of the error factor bound above, for the tests and docs/metrics.md */
#define FERRY_HIST_NATIVE_LOG2_ERR (1.0 / 16 + 0.0437314) /* log2(17/16)/2 = 0.04373 */

struct ferry_hist_span {
	__s32 offset; /* gap to the previous span's end, or the first index */
	__u32 length;
};

struct ferry_hist_native {
	double zero_threshold; /* seconds */
	__u64 zero_count;
	__u64 count; /* zero bucket included: equals the kernel buckets' total */
	double sum; /* seconds */
	size_t n; /* non-empty native buckets */
	__s32 index[FERRY_HIST_BUCKETS]; /* ascending */
	__u64 bucket[FERRY_HIST_BUCKETS];
	size_t nspans; /* runs of consecutive indexes, as the exposition wants */
	struct ferry_hist_span span[FERRY_HIST_BUCKETS];
};

/* The schema-4 index kernel bucket i (> 0) goes to. */
int ferry_hist__native_index(unsigned int i);
/* The zero bucket's threshold in seconds. */
double ferry_hist__native_zero_threshold(void);
/* Converts h (NULL: empty) into out. */
void ferry_hist__native(const struct ferry_hist *h, struct ferry_hist_native *out);
/*
 * Quantile q of a native histogram as Prometheus 2.42's histogram_quantile()
 * computes it (linear interpolation inside the bucket holding rank q * count;
 * the zero bucket spans [0, threshold]). NaN when empty.
 */
double ferry_hist__native_quantile(const struct ferry_hist_native *n, double q);

#endif /* FERRY_HIST_H */
