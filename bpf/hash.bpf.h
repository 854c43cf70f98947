/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow hash: murmur3's 32-bit body and finaliser over 32-bit words. Every
 * bit of every word reaches every output bit, so adjacent client ports and
 * addresses spread over the whole lookup table. The seed comes from
 * ferry_config.hash_seed so that the mapping is not predictable off-node.
 */
#ifndef FERRY_HASH_BPF_H
#define FERRY_HASH_BPF_H

#include <stdbool.h>
#include <linux/types.h>
#include "ferry_maps.h"

static __always_inline __u32 ferry_rol32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 ferry_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = ferry_rol32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = ferry_rol32(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 ferry_fmix(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* Hashes the client address only (src_only) or the whole 5-tuple. */
static __always_inline __u32 ferry_flow_hash(const struct ferry_flow_key *key, __u32 seed,
					     bool src_only)
{
	__u32 h = seed;

	h = ferry_mix(h, key->saddr[0]);
	h = ferry_mix(h, key->saddr[1]);
	h = ferry_mix(h, key->saddr[2]);
	h = ferry_mix(h, key->saddr[3]);
	if (src_only)
		return ferry_fmix(h, 16);
	h = ferry_mix(h, key->daddr[0]);
	h = ferry_mix(h, key->daddr[1]);
	h = ferry_mix(h, key->daddr[2]);
	h = ferry_mix(h, key->daddr[3]);
	h = ferry_mix(h, ((__u32)key->sport << 16) | key->dport);
	h = ferry_mix(h, key->proto);
	return ferry_fmix(h, 40);
}

/*
 * The seed of the second hash (the backend stage): derived from the cluster seed so that
 * one secret drives both stages, and different from it so that the two hashes of a
 * connection are independent (a slice of the first would skew the backend shares).
 */
static __always_inline __u32 ferry_seed2(__u32 seed)
{
	return ferry_fmix(seed ^ 0x9e3779b9, 0x5bd1e995);
}

/* log2(1 + i / 256) in 8.24 fixed point, i = 0..256; eight values a line (not clang-formatted). */
/* clang-format off */
static const __u32 ferry_log2_frac[257] = {
	0, 94364, 188362, 281996, 375270, 468185, 560745, 652952,
	744810, 836320, 927485, 1018309, 1108793, 1198939, 1288752, 1378232,
	1467383, 1556207, 1644705, 1732882, 1820738, 1908277, 1995500, 2082410,
	2169009, 2255299, 2341283, 2426963, 2512340, 2597417, 2682196, 2766679,
	2850868, 2934766, 3018374, 3101694, 3184728, 3267478, 3349946, 3432134,
	3514044, 3595678, 3677038, 3758124, 3838941, 3919488, 3999768, 4079782,
	4159533, 4239023, 4318251, 4397222, 4475935, 4554394, 4632599, 4710552,
	4788255, 4865709, 4942916, 5019878, 5096595, 5173071, 5249305, 5325300,
	5401057, 5476578, 5551864, 5626916, 5701737, 5776327, 5850688, 5924821,
	5998727, 6072409, 6145867, 6219103, 6292118, 6364913, 6437490, 6509850,
	6581994, 6653924, 6725641, 6797146, 6868440, 6939525, 7010402, 7081072,
	7151536, 7221795, 7291852, 7361706, 7431359, 7500812, 7570066, 7639123,
	7707984, 7776649, 7845119, 7913397, 7981483, 8049377, 8117082, 8184598,
	8251926, 8319067, 8386022, 8452793, 8519380, 8585785, 8652008, 8718050,
	8783912, 8849596, 8915102, 8980431, 9045584, 9110562, 9175366, 9239998,
	9304457, 9368745, 9432863, 9496811, 9560591, 9624203, 9687648, 9750928,
	9814042, 9876993, 9939780, 10002404, 10064867, 10127170, 10189312, 10251295,
	10313120, 10374787, 10436298, 10497652, 10558852, 10619897, 10680789, 10741528,
	10802114, 10862550, 10922835, 10982970, 11042956, 11102794, 11162484, 11222028,
	11281425, 11340677, 11399784, 11458748, 11517568, 11576245, 11634780, 11693175,
	11751428, 11809542, 11867517, 11925353, 11983051, 12040612, 12098037, 12155325,
	12212479, 12269497, 12326382, 12383133, 12439752, 12496238, 12552593, 12608817,
	12664911, 12720875, 12776710, 12832416, 12887994, 12943445, 12998770, 13053968,
	13109041, 13163988, 13218811, 13273511, 13328087, 13382540, 13436871, 13491080,
	13545168, 13599135, 13652983, 13706711, 13760320, 13813810, 13867183, 13920438,
	13973576, 14026597, 14079503, 14132294, 14184969, 14237530, 14289978, 14342312,
	14394532, 14446641, 14498638, 14550523, 14602297, 14653961, 14705514, 14756958,
	14808293, 14859519, 14910637, 14961648, 15012551, 15063347, 15114037, 15164621,
	15215099, 15265473, 15315742, 15365906, 15415967, 15465925, 15515779, 15565531,
	15615181, 15664730, 15714177, 15763523, 15812769, 15861915, 15910962, 15959909,
	16008758, 16057508, 16106160, 16154714, 16203172, 16251532, 16299796, 16347964,
	16396036, 16444013, 16491896, 16539683, 16587377, 16634976, 16682482, 16729896,
	16777216,
};
/* clang-format on */

/*
 * -log2(u) in 8.24 fixed point for u = (x + 1) / 2^32, x a 32-bit hash: the exponential
 * variable (up to a constant factor) of weighted rendezvous. Integer part by binary
 * search, fraction by linear interpolation in ferry_log2_frac: at most ~3e-6 off, which
 * moves a predictor's share by less than 1e-6 (docs/tables.md).
 */
static __always_inline __u64 ferry_neglog2(__u32 x)
{
	__u64 v = (__u64)x + 1, m, t;
	__u32 p = 0, frac, idx, lo, hi;

	if (x == 0xffffffff) /* x + 1 == 2^32: u == 1 */
		return 0;
	/*
	 * floor(log2(v)) without branches: (k - v) >> 63 is 1 exactly when
	 * v > k (v < 2^32, so the subtraction only wraps then). Each branch here
	 * would double the paths the verifier walks, 16 predictors over.
	 */
	t = ((0xffffULL - v) >> 63) << 4;
	v >>= t;
	p += t;
	t = ((0xffULL - v) >> 63) << 3;
	v >>= t;
	p += t;
	t = ((0xfULL - v) >> 63) << 2;
	v >>= t;
	p += t;
	t = ((0x3ULL - v) >> 63) << 1;
	v >>= t;
	p += t;
	p += (0x1ULL - v) >> 63;
	/* the 32 bits below the leading one */
	m = ((__u64)x + 1) << (63 - (p & 31));
	frac = (__u32)(m >> 31);
	idx = (frac >> 24) & 0xff;
	lo = ferry_log2_frac[idx];
	hi = ferry_log2_frac[idx + 1];
	return ((__u64)32 << 24) -
	       (((__u64)p << 24) + lo + (((__u64)(hi - lo) * (frac & 0xffffff)) >> 24));
}

/*
 * A predictor's rendezvous score for a connection hash: -log2(u) / weight, lower wins.
 * The minimum over predictors falls on each one with probability weight / sum(weights)
 * (a race of exponential variables), and changing one weight only moves connections to or
 * from that predictor. weight 0 is never called (never picked).
 */
static __always_inline __u64 ferry_pred_score(__u32 hash, __u32 key, __u32 weight)
{
	__u32 u = ferry_fmix(ferry_mix(key, hash), 8);

	return (ferry_neglog2(u) << 32) / weight;
}

#endif /* FERRY_HASH_BPF_H */
