// SPDX-License-Identifier: GPL-2.0-only
/*
 * The control plane's config half alone, for profiling without root or a
 * data plane: loads a --config-dir the way ferryd does (parse, validate,
 * keep) and builds the model, and prints both times. Run it under
 * `perf record --call-graph dwarf` to see where a full sync's config time goes
 * (docs/performance.md quotes it).
 *
 *   cfg_load DIR [REPEAT]   REPEAT > 1 loads the same directory again, as a
 *                           reload after an edit does (the parse cache hits)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */

#include "log.h"
#include "model.h"
#include "source/config.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct ferry_config_store *store;
	int repeat = argc > 2 ? atoi(argv[2]) : 1, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: cfg_load DIR [REPEAT]\n");
		return 2;
	}
	ferry_log_level = FERRY_LOG_ERROR;
	store = ferry_config_store__new();
	if (!store)
		return 1;
	for (int i = 0; i < repeat && !rc; i++) {
		struct ferry_model model = {};
		double t0 = now_ms(), t1, t2;
		int load = ferry_config_store__load_dir(store, argv[1]);

		t1 = now_ms();
		rc = ferry_config_store__build(store, &model);
		t2 = now_ms();
		printf("{\"load_ms\": %.1f, \"build_ms\": %.1f, \"services\": %zu, \"errors\": %d}\n",
		       t1 - t0, t2 - t1, model.nservices, load);
		ferry_model__free(&model);
	}
	ferry_config_store__free(store);
	return rc ? 1 : 0;
}
