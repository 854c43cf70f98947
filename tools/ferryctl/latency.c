// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl latency: per-predictor latency histograms.
 */
#include "ferryctl.h"

/* ------------------------------------------------------------- latency */

static void print_hist_bars(const struct ferry_hist *h)
{
	unsigned int i, first = FERRY_HIST_BUCKETS, last = 0;
	__u64 max = 0;

	for (i = 0; i < FERRY_HIST_BUCKETS; i++) {
		if (!h->bucket[i])
			continue;
		first = i < first ? i : first;
		last = i;
		max = h->bucket[i] > max ? h->bucket[i] : max;
	}
	if (first == FERRY_HIST_BUCKETS) {
		printf("    (no samples)\n");
		return;
	}
	for (i = first; i <= last; i++) {
		__u64 lo, hi;
		int w = max ? (int)(40.0 * h->bucket[i] / max + 0.5) : 0;

		ferry_hist__bounds(i, &lo, &hi);
		printf("    %10.3f ms | %-40.*s %llu\n", lo / 1e6, w,
		       "########################################",
		       (unsigned long long)h->bucket[i]);
	}
}

int cmd_latency(struct ctl *c, int argc, char **argv)
{
	static const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
	struct ferry_snapshot *snap;
	__u32 ids[FERRY_MAX_SERVICES];
	json_t *arr;
	int n, i, rc;
	size_t j, q;

	if (simple_args(argc, argv, 1,
			"Usage: ferryctl latency [SERVICE] [-j]\n"
			"Per-predictor request latency measured in the kernel (first request byte\n"
			"to first response byte): histogram bars and p50, p90, p99, p99.9, for\n"
			"SERVICE (VIP ADDR:PORT or namespace/name) or every service.\n",
			&rc))
		return rc;
	snap = read_snapshot(c);
	if (!snap)
		return EXIT_FAIL;
	arr = json_array();
	if (argc > 1) {
		n = match_services(snap, argv[1], ids, FERRY_MAX_SERVICES);
		if (n < 0) {
			json_decref(arr);
			ferry_snapshot__free(snap);
			return n == -ENOENT ? EXIT_NOT_FOUND : EXIT_USAGE;
		}
	} else {
		for (n = 0; (size_t)n < snap->nservices; n++)
			ids[n] = snap->services[n].id;
	}
	for (i = 0; i < n; i++) {
		const struct ferry_snap_service *s = ferry_snapshot__service(snap, ids[i]);
		char vip[FERRY_ADDR_STRLEN + 8];

		if (!s)
			continue;
		ferry_vip__format(&s->vip, vip, sizeof(vip));
		if (!c->json)
			printf("%s  %s\n", vip, s->deployment);
		for (j = 0; j < s->npredictors; j++) {
			const struct ferry_snap_predictor *p =
				ferry_snapshot__predictor(snap, s->predictor_ids[j]);
			const struct ferry_hist *h, *hc;
			json_t *o;

			if (!p)
				continue;
			h = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST,
						 p->id);
			hc = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT,
						  p->id);
			o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "vip", vip, "deployment",
				      s->deployment, "predictor", p->name, "requests",
				      (json_int_t)(h ? h->count : 0), "connects",
				      (json_int_t)(hc ? hc->count : 0));
			if (!c->json)
				printf("  %s: %llu requests", p->name,
				       (unsigned long long)(h ? h->count : 0));
			for (q = 0; q < sizeof(qs) / sizeof(qs[0]); q++) {
				char name[16];
				/* ferry_hist__quantile() answers in ns; JSON speaks seconds. */
				double v = h && h->count ? ferry_hist__quantile(h, qs[q]) / 1e9 :
							   NAN;

				snprintf(name, sizeof(name), "p%g", qs[q] * 100);
				json_object_set_new(o, name, isnan(v) ? json_null() : json_real(v));
				if (!c->json && !isnan(v))
					printf("  %s %.3f ms", name, v * 1e3);
			}
			if (c->json) {
				json_array_append_new(arr, o);
			} else {
				json_decref(o);
				printf("\n");
				if (h)
					print_hist_bars(h);
			}
		}
	}
	if (c->json)
		print_json(arr);
	else
		json_decref(arr);
	ferry_snapshot__free(snap);
	return EXIT_OK;
}
