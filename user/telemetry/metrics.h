/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Prometheus exposition of a ferry snapshot (text format 0.0.4, or protobuf
 * with native histograms when the scraper asks) and the small HTTP server
 * (libmicrohttpd) that serves it on /metrics. The metric
 * families are documented in docs/metrics.md.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "canary/canary.h"
#include "telemetry/hist.h"
#include "kernel/snapshot.h"
#include "kernel/sync.h"

/* ferryd's flow GC (every 10 s, ferry_sync__gc_flows): per enum ferry_flow_table. */
struct ferry_flow_gc_stats {
	__u64 entries[FERRY_FLOW_TABLES]; /* connections in the table at the last pass */
	__u64 capacity[FERRY_FLOW_TABLES]; /* the table's size */
	__u64 removed_total[FERRY_FLOW_TABLES]; /* removed since ferryd started */
	double last_pass_seconds; /* the last pass's wall time */
};

/* Values only ferryd knows; every field may be left zero. */
struct ferry_metrics_opts {
	const char *version; /* ferry_build_info{version}; "unknown" when NULL */
	unsigned int config_errors; /* ferry_config_errors: manifests rejected right now */
	__u64 config_errors_total; /* ferry_config_errors_total: rejections since start */
	/* predictors ferryd sees with no ready backend (their weight moved elsewhere) */
	const __u32 *no_ready_predictors;
	size_t nno_ready_predictors;
	/* exported `le` boundaries; NULL: ferry_hist__default_buckets() */
	const struct ferry_hist_buckets *buckets;
	bool no_backend_histograms; /* omit ferry_backend_*_duration_seconds (cardinality) */
	/* rebalancing's state and counters; NULL: not reported (ferryctl, tests) */
	const struct ferry_rebal_stats *rebalance;
	/* ferryd's flow GC; NULL: not reported (ferryctl, and ferryd before its first pass) */
	const struct ferry_flow_gc_stats *flow_gc;
	/* canary analysis, one row per deployment with ferry.io/canary: auto (ferry_canary_*) */
	const struct ferry_canary_metrics *canary;
	size_t ncanary;
};

/* The two expositions /metrics serves. */
enum ferry_metrics_format {
	FERRY_METRICS_TEXT, /* text/plain; version=0.0.4 (the default) */
	/* application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
	 * encoding=delimited: histograms as native (schema 4) and classic buckets */
	FERRY_METRICS_PROTOBUF,
};

#define FERRY_METRICS_PROTOBUF_TYPE                                                  \
	"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; " \
	"encoding=delimited"

/*
 * Renders snap (sorted, see ferry_snapshot__sort) into a malloc'd buffer
 * (NUL-terminated; *len excludes the NUL). opts may be NULL. Returns 0 or
 * -errno.
 */
int ferry_metrics__render(const struct ferry_snapshot *snap, const struct ferry_metrics_opts *opts,
			  char **buf, size_t *len);
/* The same in either format (for protobuf, *buf is binary and *len its size). */
int ferry_metrics__render_format(const struct ferry_snapshot *snap,
				 const struct ferry_metrics_opts *opts,
				 enum ferry_metrics_format format, char **buf, size_t *len);

/*
 * Which format an Accept header asks for: protobuf when it lists the
 * delimited MetricFamily type with a q at least as high as the best text
 * type it accepts (text/plain or a wildcard); text otherwise, and without a
 * header.
 */
enum ferry_metrics_format ferry_metrics__negotiate(const char *accept);

/*
 * Produces the /metrics body for one scrape in the negotiated format, called
 * on the server's thread: 0 with a malloc'd *buf the server frees, or -errno
 * (the scrape gets 500; -EAGAIN: 503, not ready yet, and no warning).
 */
typedef int (*ferry_metrics_produce_fn)(void *ctx, enum ferry_metrics_format format, char **buf,
					size_t *len);

/*
 * A ready-made producer for ferry_metrics__serve: pass a struct
 * ferry_metrics_source as ctx. Each scrape reads the pins at pin_path and
 * renders them with opts, holding lock (when set) while it reads opts, so
 * ferryd can update opts under the same lock.
 */
struct ferry_metrics_source {
	const char *pin_path; /* NULL: FERRY_PIN_ROOT_DEFAULT */
	struct ferry_metrics_opts opts;
	pthread_mutex_t *lock;
};

int ferry_metrics__produce(void *source, enum ferry_metrics_format format, char **buf, size_t *len);

struct ferry_metrics_server;

/*
 * Serves /metrics and /healthz on addr ("HOST:PORT", "[V6]:PORT" or
 * ":PORT" for every address; port 0 picks a free one). NULL and errno on
 * failure, with the error logged against --metrics-addr.
 */
struct ferry_metrics_server *ferry_metrics__serve(const char *addr, ferry_metrics_produce_fn fn,
						  void *ctx);
/*
 * addr's form as ferry_metrics__serve takes it, and its host resolved, with
 * nothing bound: 0, or -EINVAL with a message naming --metrics-addr in err.
 * ferryd checks its flag with it before it touches the data plane.
 */
int ferry_metrics__check_addr(const char *addr, char *err, size_t errlen);
/*
 * /canary/window?deployment=NS/NAME (docs/canary.md, several nodes): the JSON
 * of this node's last closed window, for the deciding ferryd. Called on the
 * server's thread; 0 with a malloc'd *buf, or -ENOENT (404).
 */
typedef int (*ferry_metrics_window_fn)(void *ctx, const char *deployment, char **buf, size_t *len);
void ferry_metrics__set_window_handler(struct ferry_metrics_server *srv, ferry_metrics_window_fn fn,
				       void *ctx);

/* The bound port (useful after port 0). */
int ferry_metrics__port(const struct ferry_metrics_server *srv);
void ferry_metrics__stop(struct ferry_metrics_server *srv);

/*
 * /readyz answers 200 once this is set (ferryd: after the first complete sync
 * of its manifests, from the directory or the Kubernetes API), 503 before.
 * /healthz answers 200 while the server runs.
 */
void ferry_metrics__set_ready(struct ferry_metrics_server *srv, bool ready);

#endif /* FERRY_METRICS_H */
