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

#endif /* FERRY_HASH_BPF_H */
