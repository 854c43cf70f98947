// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cluster hash seed (hash_seed.h): SipHash-2-4 over the secret's bytes.
 * SipHash because it is a keyed PRF made for short secret inputs, small
 * enough to write here (no Debian library ferry links exposes one), and its
 * output does not reveal the input: the seed in ferry_config (readable by
 * anyone with access to the pins) does not give away the file's content.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash_seed.h"

#define ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                   \
	do {                       \
		v0 += v1;          \
		v1 = ROTL(v1, 13); \
		v1 ^= v0;          \
		v0 = ROTL(v0, 32); \
		v2 += v3;          \
		v3 = ROTL(v3, 16); \
		v3 ^= v2;          \
		v0 += v3;          \
		v3 = ROTL(v3, 21); \
		v3 ^= v0;          \
		v2 += v1;          \
		v1 = ROTL(v1, 17); \
		v1 ^= v2;          \
		v2 = ROTL(v2, 32); \
	} while (0)

/* Little-endian load, whatever the host's byte order: every node must agree. */
static __u64 load_le64(const unsigned char *p, size_t n)
{
	__u64 v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (__u64)p[i] << (8 * i);
	return v;
}

/* "ferry hash seed" as the fixed key: domain separation, not a secret. */
static const unsigned char derive_key[16] = "ferry-hash-seed";

__u64 ferry_siphash24(const unsigned char key[16], const void *bytes, size_t len)
{
	const unsigned char *in = bytes;
	__u64 k0 = load_le64(key, 8), k1 = load_le64(key + 8, 8);
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	size_t full = len & ~(size_t)7, i;
	__u64 m;

	for (i = 0; i < full; i += 8) {
		m = load_le64(in + i, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	m = load_le64(in + full, len - full) | ((__u64)(len & 0xff) << 56);
	v3 ^= m;
	SIPROUND;
	SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

__u64 ferry_hash_seed__derive(const void *bytes, size_t len)
{
	return ferry_siphash24(derive_key, bytes, len);
}

int ferry_hash_seed__read_file(const char *path, __u64 *seed, char *why, size_t whylen)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen,
			 "--hash-seed-file %s: cannot read it: %s (create it once for the whole "
			 "cluster, e.g. 'head -c 32 /dev/urandom > %s', and give every node the "
			 "same file)",
			 path, strerror(errno), path);
		return err;
	}
	for (;;) {
		if (len == cap) {
			unsigned char *more;

			cap = cap ? cap * 2 : 4096;
			if (cap > FERRY_HASH_SEED_MAX_BYTES + 1)
				cap = FERRY_HASH_SEED_MAX_BYTES + 1;
			more = realloc(buf, cap);
			if (!more) {
				err = -ENOMEM;
				snprintf(why, whylen, "--hash-seed-file %s: out of memory", path);
				goto out_free;
			}
			buf = more;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			snprintf(why, whylen, "--hash-seed-file %s: cannot read it: %s", path,
				 strerror(errno));
			goto out_free;
		}
		if (!n)
			break;
		len += (size_t)n;
		if (len > FERRY_HASH_SEED_MAX_BYTES) {
			err = -EFBIG;
			snprintf(why, whylen,
				 "--hash-seed-file %s: larger than %u bytes; a seed file holds a "
				 "key (32 random bytes are plenty), not data",
				 path, FERRY_HASH_SEED_MAX_BYTES);
			goto out_free;
		}
	}
	if (!len) {
		err = -ENODATA;
		snprintf(why, whylen,
			 "--hash-seed-file %s: the file is empty; write a secret into it once for "
			 "the whole cluster, e.g. 'head -c 32 /dev/urandom > %s', and give every "
			 "node the same file",
			 path, path);
		goto out_free;
	}
	*seed = ferry_hash_seed__derive(buf, len);
out_free:
	if (buf)
		memset(buf, 0, len); /* the secret does not linger in freed memory */
	free(buf);
	close(fd);
	return err;
}
