// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: the kubeconfig reader (ferryd --kubeconfig FILE). The input is
 * the file; ferry_k8s__new reads it (and any file it names, relative to its
 * directory) and sets up the client without contacting a server.
 */
#include <errno.h>

#include "source/k8s.h"
#include "log.h"
#include "fuzz.h"

static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_dir_make();
	char p[128];

	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	/* Files a kubeconfig may name (certificate-authority: ca.crt, tokenFile: token). */
	snprintf(p, sizeof(p), "%s/ca.crt", dir);
	fuzz_write(p, "-----BEGIN CERTIFICATE-----\n", 28);
	snprintf(p, sizeof(p), "%s/token", dir);
	fuzz_write(p, "t0ken\n", 6);
	ferry_log_level = FERRY_LOG_ERROR;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_k8s_opts opts = { .kubeconfig = path };
	struct ferry_k8s *k8s;

	fuzz_write(path, data, size);
	k8s = ferry_k8s__new(&opts);
	if (k8s)
		ferry_k8s__free(k8s);
	else if (errno == 0)
		abort(); /* a rejection says why */
	return 0;
}
