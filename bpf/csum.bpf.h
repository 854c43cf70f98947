/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental Internet checksum updates (RFC 1624) for XDP, where there is
 * no skb and no bpf_l[34]_csum_replace. Values stay in network byte order:
 * a ones' complement sum does not care about byte order as long as every
 * term is taken the same way.
 */
#ifndef FERRY_CSUM_BPF_H
#define FERRY_CSUM_BPF_H

#include <linux/types.h>

static __always_inline __u16 ferry_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Folds a 64-bit sum of 32-bit words to the 32-bit form the csum helpers take. */
static __always_inline __u32 ferry_csum_fold_wsum(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)sum;
}

/* Adds the change from old to new (32-bit words) to a running difference. */
static __always_inline __u64 ferry_csum_diff32(__u64 diff, __u32 old, __u32 new)
{
	return diff + (~old & 0xffffffff) + new;
}

static __always_inline __u64 ferry_csum_diff16(__u64 diff, __u16 old, __u16 new)
{
	return diff + (__u16)~old + new;
}

/* HC' = ~(~HC + sum of (~m + m')) */
static __always_inline __u16 ferry_csum_apply(__u16 check, __u64 diff)
{
	return ~ferry_csum_fold((__u16)~check + diff);
}

#endif /* FERRY_CSUM_BPF_H */
