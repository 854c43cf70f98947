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
 *   cfg_load DIR REPEAT FILE  after the first load, REPEAT times: touches
 *                           DIR/FILE (a new mtime, the same content) and reads
 *                           it alone, the way ferryd's inotify path does
 *                           (__load_files, then __build_update of the model);
 *                           prints the median and worst of those, with
 *                           "partial" false when the store fell back to a
 *                           full load or build
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utime.h>
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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The inotify path: one file edited, read alone, the model updated. */
static int edits(struct ferry_config_store *store, const char *dir, const char *file, int repeat)
{
	struct ferry_model model = {};
	double *load = calloc(repeat, sizeof(*load)), *build = calloc(repeat, sizeof(*build));
	const char *names[] = { file };
	char path[4096];
	bool partial = true;
	int rc = 1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (!load || !build || ferry_config_store__load_dir(store, dir) < 0 ||
	    ferry_config_store__build(store, &model))
		goto out_free;
	for (int i = 0; i < repeat; i++) {
		struct timespec ts = {};
		struct utimbuf ut;
		double t0, t1;
		int err;

		clock_gettime(CLOCK_REALTIME, &ts);
		ut.actime = ut.modtime = ts.tv_sec + i + 1;
		if (utime(path, &ut)) {
			perror(path);
			goto out_free;
		}
		t0 = now_ms();
		err = ferry_config_store__load_files(store, dir, names, 1);
		if (err == -EAGAIN) {
			partial = false;
			err = ferry_config_store__load_dir(store, dir);
		}
		t1 = now_ms();
		err = err < 0 ? err : ferry_config_store__build_update(store, &model);
		if (err == -EAGAIN) {
			partial = false;
			ferry_model__free(&model);
			err = ferry_config_store__build(store, &model);
		}
		if (err) {
			fprintf(stderr, "cfg_load: %s: %s\n", path, strerror(-err));
			goto out_free;
		}
		load[i] = t1 - t0;
		build[i] = now_ms() - t1;
	}
	qsort(load, repeat, sizeof(*load), cmp_double);
	qsort(build, repeat, sizeof(*build), cmp_double);
	printf("{\"edits\": %d, \"services\": %zu, \"partial\": %s, \"load_p50_ms\": %.3f, "
	       "\"load_max_ms\": %.3f, \"build_p50_ms\": %.3f, \"build_max_ms\": %.3f}\n",
	       repeat, model.nservices, partial ? "true" : "false", load[repeat / 2],
	       load[repeat - 1], build[repeat / 2], build[repeat - 1]);
	rc = 0;
out_free:
	ferry_model__free(&model);
	free(load);
	free(build);
	return rc;
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
	if (argc > 3 && repeat > 0) {
		rc = edits(store, argv[1], argv[3], repeat);
		ferry_config_store__free(store);
		return rc;
	}
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
