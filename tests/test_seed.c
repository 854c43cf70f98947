// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for the cluster hash seed (user/hash_seed.c): SipHash-2-4
 * against the reference vectors, the seed as a function of the file's
 * whole content only, and the errors for a missing, empty or huge file.
 * Unprivileged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>

#include "hash_seed.h"
#include "testing.h"

#define SUITE "seed"

static char dir[64];
static const char *const files[] = { "a", "b", "c", "empty", "huge" };

static const char *write_file(const char *name, const void *bytes, size_t len)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return NULL;
	if (len && fwrite(bytes, 1, len, f) != len) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	return path;
}

/* The reference vectors of the SipHash paper: key 00..0f, message 00..len-1. */
static void test_siphash_vectors(void)
{
	unsigned char key[16], msg[64];

	for (int i = 0; i < 16; i++)
		key[i] = (unsigned char)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	if (!ASSERT_EQ(ferry_siphash24(key, msg, 0), (long long)0x726fdb47dd0e0e31ULL, "len 0"))
		return;
	if (!ASSERT_EQ(ferry_siphash24(key, msg, 8), (long long)0x93f5f5799a932462ULL, "len 8"))
		return;
	ASSERT_EQ(ferry_siphash24(key, msg, 15), (long long)0xa129ca6149be45e5ULL, "len 15");
}

static void test_file_seed_is_content(void)
{
	char why[512], big[100];
	__u64 a = 0, b = 0, c = 0;

	memset(big, 'x', sizeof(big));
	if (!ASSERT_OK(ferry_hash_seed__read_file(write_file("a", "cluster-secret", 14), &a, why,
						  sizeof(why)),
		       why))
		return;
	/* The same bytes under another name (another node's mount) give the same seed. */
	if (!ASSERT_OK(ferry_hash_seed__read_file(write_file("b", "cluster-secret", 14), &b, why,
						  sizeof(why)),
		       why))
		return;
	if (!ASSERT_EQ(a, b, "same content, same seed"))
		return;
	if (!ASSERT_EQ(a, ferry_hash_seed__derive("cluster-secret", 14), "derive agrees"))
		return;
	/* A trailing newline is content: `echo secret > f` and `printf secret` differ. */
	if (!ASSERT_OK(ferry_hash_seed__read_file(write_file("c", "cluster-secret\n", 15), &c, why,
						  sizeof(why)),
		       why))
		return;
	if (!ASSERT_NEQ(a, c, "one byte more, another seed"))
		return;
	/* Bytes past the first 8 and the first 32 count too (the whole content). */
	ASSERT_NEQ(ferry_hash_seed__derive(big, 99), ferry_hash_seed__derive(big, 100),
		   "length counts");
	big[90] = 'y';
	ASSERT_NEQ(ferry_hash_seed__derive(big, 100), ferry_hash_seed__derive(big + 1, 99),
		   "every byte counts");
}

static void test_file_errors(void)
{
	char why[512], path[128];
	__u64 seed = 42;
	char *huge;

	ASSERT_EQ(ferry_hash_seed__read_file(write_file("empty", "", 0), &seed, why, sizeof(why)),
		  -ENODATA, "empty file");
	ASSERT_STRSTR(why, "empty", "says empty");
	ASSERT_STRSTR(why, dir, "names the file");
	ASSERT_STRSTR(why, "head -c 32 /dev/urandom", "says the fix");
	ASSERT_EQ(seed, 42, "seed untouched on error");

	snprintf(path, sizeof(path), "%s/missing", dir);
	ASSERT_EQ(ferry_hash_seed__read_file(path, &seed, why, sizeof(why)), -ENOENT, "missing");
	ASSERT_STRSTR(why, path, "names the missing file");
	ASSERT_STRSTR(why, "--hash-seed-file", "names the flag");

	huge = calloc(1, FERRY_HASH_SEED_MAX_BYTES + 2);
	if (!ASSERT_TRUE(huge != NULL, "calloc"))
		return;
	ASSERT_EQ(
		ferry_hash_seed__read_file(write_file("huge", huge, FERRY_HASH_SEED_MAX_BYTES + 1),
					   &seed, why, sizeof(why)),
		-EFBIG, "huge file");
	free(huge);
	ASSERT_EQ(ferry_hash_seed__read_file(dir, &seed, why, sizeof(why)), -EISDIR, "directory");
}

int main(int argc, char **argv)
{
	int rc;

	test__main_init(argc, argv);
	snprintf(dir, sizeof(dir), "/tmp/fk-seed-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN_TEST(SUITE, test_siphash_vectors);
	RUN_TEST(SUITE, test_file_seed_is_content);
	RUN_TEST(SUITE, test_file_errors);
	rc = test__summary();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return rc;
}
