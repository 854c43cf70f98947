/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The cluster hash seed: the secret that keys ferry's flow hash. Every node
 * must hash with the same seed so that a connection routed to another node
 * (ECMP, a route change) lands on the same backend there. The seed is derived
 * from the bytes of a file (--hash-seed-file) or of a Kubernetes Secret key,
 * so any non-empty secret works: `head -c 32 /dev/urandom > PATH`, a mounted
 * Secret, a passphrase.
 */
#ifndef FERRY_HASH_SEED_H
#define FERRY_HASH_SEED_H

#include <stddef.h>
#include <linux/types.h>

/* Secret bytes above this are refused: a seed file is a key, not a data set. */
#define FERRY_HASH_SEED_MAX_BYTES (1u << 20)
/* How many random bytes ferryd puts in a Secret it creates. */
#define FERRY_HASH_SEED_NEW_BYTES 32

/*
 * SipHash-2-4 of the whole content under a fixed, published key: the secret
 * is the content, the fixed key only separates this use from others. 64 bits,
 * so a selection that wants more than ferry_config.hash_seed's 32 has them.
 */
__u64 ferry_hash_seed__derive(const void *bytes, size_t len);

/* SipHash-2-4 (Aumasson and Bernstein) with a 128-bit key; exposed for its test vectors. */
__u64 ferry_siphash24(const unsigned char key[16], const void *bytes, size_t len);

/* The 32 bits the data plane hashes with (ferry_config.hash_seed). */
static inline __u32 ferry_hash_seed__fold32(__u64 seed)
{
	return (__u32)(seed ^ (seed >> 32));
}

/*
 * Reads path whole and derives its seed into *seed. Returns 0, or a negative
 * errno with a message naming the file, what is wrong and the fix in why
 * (-ENODATA for an empty file).
 */
int ferry_hash_seed__read_file(const char *path, __u64 *seed, char *why, size_t whylen);

#endif /* FERRY_HASH_SEED_H */
