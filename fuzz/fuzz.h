/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared bits of ferry's libFuzzer targets: a private scratch directory for
 * parsers that read files (manifests, kubeconfig), removed at exit.
 */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char fuzz_dir[64];

static void fuzz_dir_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fuzz_dir);
	if (fuzz_dir[0] && system(cmd))
		fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* Makes the scratch directory (tmpfs when there is one: a write per input). */
static inline const char *fuzz_dir_make(void)
{
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/ferry-fuzz.XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	if (!mkdtemp(fuzz_dir)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(fuzz_dir_remove);
	return fuzz_dir;
}

/* Writes data to path whole, or aborts: a harness that cannot write tests nothing. */
static inline void fuzz_write(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "we");

	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
		perror(path);
		abort();
	}
}

#endif /* FERRY_FUZZ_H */
