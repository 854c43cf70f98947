/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * FNV-1a, 64-bit: the one hash user space uses where it needs a cheap, stable
 * one of its own (id maps, the store's entry summaries, a canary rollout's
 * fingerprint). Not for anything an attacker chooses and a table is keyed
 * by alone; the data plane's flow hash is another (bpf/hash.bpf.h).
 */
#ifndef FERRY_FNV_H
#define FERRY_FNV_H

#include <stddef.h>
#include <linux/types.h>

#define FERRY_FNV_OFFSET 0xcbf29ce484222325ULL
#define FERRY_FNV_PRIME 0x100000001b3ULL

static inline __u64 ferry_fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	__u64 h = FERRY_FNV_OFFSET;

	while (n--)
		h = (h ^ *b++) * FERRY_FNV_PRIME;
	return h;
}

static inline __u64 ferry_fnv1a_str(const char *s)
{
	__u64 h = FERRY_FNV_OFFSET;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * FERRY_FNV_PRIME;
	return h;
}

#endif /* FERRY_FNV_H */
