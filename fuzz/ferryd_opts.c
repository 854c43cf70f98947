// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: ferryd's option parsers. The input is a command line (NUL
 * separates arguments) for parse_args, which runs every option's own parser:
 * --latency-buckets, --table-size, --pod-iface patterns, interface names,
 * --log-level. The first argument is also given to ferry_hist__parse_buckets
 * alone, whose accepted lists are checked: strictly ascending, positive,
 * finite. parse_args is static in ferryd's source, so this file includes
 * that source whole (FERRYD_SRC, its main renamed by the Makefile).
 */
#include "../user/ferryd_options.c"

#include <math.h>

#include "fuzz.h"

#define MAX_ARGS 32

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static void check_buckets(const char *text)
{
	struct ferry_hist_buckets b = {};
	char err[256];

	err[0] = '\0';
	if (ferry_hist__parse_buckets(text, &b, err, sizeof(err))) {
		if (!err[0] || b.n || b.le)
			abort(); /* a rejection names the item and leaves nothing behind */
		return;
	}
	if (!b.n)
		abort(); /* an accepted list has at least one boundary */
	for (size_t i = 0; i < b.n; i++)
		if (!isfinite(b.le[i]) || b.le[i] <= 0 || (i && b.le[i] <= b.le[i - 1]))
			abort();
	ferry_hist__buckets_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferryd_opts o = {};
	char *buf, *argv[MAX_ARGS + 2];
	int argc = 0;
	size_t i;

	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "ferryd";
	for (i = 0; i <= size && argc <= MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	check_buckets(argv[1]);
	/* --help prints and exits: not a parser, and it would end the run. */
	for (int a = 1; a < argc; a++)
		if (!strncmp(argv[a], "-h", 2) || !strncmp(argv[a], "--he", 4) ||
		    (argv[a][0] == '-' && argv[a][1] != '-' && strchr(argv[a], 'h')))
			goto out;
	optind = 0; /* glibc: a full re-initialisation of getopt */
	opterr = 0;
	ferryd_opts__parse(argc, argv, &o);
	ferry_hist__buckets_free(&o.buckets);
out:
	ferry_log_level = FERRY_LOG_ERROR;
	free(buf);
	return 0;
}
