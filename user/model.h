/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The desired state: what the kernel should hold, independent of where it
 * came from (manifest files, the Kubernetes API) and of how it is stored
 * (maps). The config layer produces it, the sync layer writes it to maps.
 */
#ifndef FERRY_MODEL_H
#define FERRY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */

#include "ferry_maps.h"

/* ferry.io/rebalance-window: default and bounds. */
#define FERRY_REBALANCE_WINDOW_DEFAULT_NS (30ULL * 1000000000ULL)
#define FERRY_REBALANCE_WINDOW_MIN_NS (1ULL * 1000000000ULL)
#define FERRY_REBALANCE_WINDOW_MAX_NS (3600ULL * 1000000000ULL)

struct ferry_model_backend {
	__u8 family; /* FERRY_AF_INET or FERRY_AF_INET6 */
	__u8 state; /* FERRY_BE_ACTIVE, FERRY_BE_DRAINING or FERRY_BE_UNREADY */
	__be16 port; /* network byte order */
	__be32 addr[4]; /* network byte order; IPv4 in addr[0] */
};

struct ferry_model_predictor {
	char name[FERRY_PRED_NAME_LEN];
	__u32 weight_configured; /* ppm: the manifest's traffic, x10000 */
	__u32 weight_effective; /* ppm: after moving the share of a predictor with no ready backend */
	bool shadow; /* accepted, never routed */
	struct ferry_model_backend *backends;
	size_t nbackends;
};

/*
 * ferry.io/canary-* (docs/canary.md): how canary analysis judges a deployment.
 * The same settings on every service of the deployment.
 */
#define FERRY_CANARY_MAX_STEPS 16

/* Defaults of the ferry.io/canary-* annotations. */
#define FERRY_CANARY_DEF_INTERVAL_S 30
#define FERRY_CANARY_DEF_MAX_ERROR_RATE 0.01
#define FERRY_CANARY_DEF_MAX_ERROR_INCREASE 0.005
#define FERRY_CANARY_DEF_MAX_LATENCY_RATIO 1.5
#define FERRY_CANARY_DEF_MIN_REQUESTS 200
#define FERRY_CANARY_DEF_FAILURES 2
#define FERRY_CANARY_DEF_SIGNIFICANCE 0.01
#define FERRY_CANARY_DEF_MIN_EFFECT 1.1

struct ferry_canary_config {
	bool enabled; /* ferry.io/canary: auto */
	char canary[FERRY_PRED_NAME_LEN]; /* named, or the smallest configured share above 0 */
	char baseline[FERRY_PRED_NAME_LEN]; /* named, or the largest other */
	__u32 steps[FERRY_CANARY_MAX_STEPS]; /* ppm, ascending; nsteps 0: guard the split */
	__u32 nsteps;
	__u32 interval_s;
	double max_error_rate;
	double max_error_increase;
	double max_latency_ratio;
	__u32 min_requests;
	__u32 failures;
	double significance;
	double min_effect; /* canary median / baseline median needed for a rank-test failure */
	/* Changes when the canary predictor's spec or any traffic changes (a new rollout). */
	__u64 fingerprint;
};

static inline void ferry_canary_config__defaults(struct ferry_canary_config *cfg)
{
	*cfg = (struct ferry_canary_config){
		.interval_s = FERRY_CANARY_DEF_INTERVAL_S,
		.max_error_rate = FERRY_CANARY_DEF_MAX_ERROR_RATE,
		.max_error_increase = FERRY_CANARY_DEF_MAX_ERROR_INCREASE,
		.max_latency_ratio = FERRY_CANARY_DEF_MAX_LATENCY_RATIO,
		.min_requests = FERRY_CANARY_DEF_MIN_REQUESTS,
		.failures = FERRY_CANARY_DEF_FAILURES,
		.significance = FERRY_CANARY_DEF_SIGNIFICANCE,
		.min_effect = FERRY_CANARY_DEF_MIN_EFFECT,
	};
}

struct ferry_model_service {
	struct ferry_vip vip; /* network byte order */
	char deployment[FERRY_NAME_LEN]; /* "namespace/name" */
	__u32 flags; /* FERRY_SVC_F_HASH_SRC_ADDR */
	__u32 sample_every; /* latency sampling, see struct ferry_service */
	__u32 table_size; /* 0: the data plane's default */
	char service[FERRY_NAME_LEN]; /* "namespace/name" of the Service it came from, or "" */
	bool rebalance_off; /* ferry.io/rebalance: off: held connections are never ended */
	__u64 rebalance_window_ns; /* ferry.io/rebalance-window */
	struct ferry_model_predictor *predictors;
	size_t npredictors;
	struct ferry_canary_config canary; /* enabled: ferry.io/canary: auto */
	/*
	 * Which build made this service: unique to one build and kept by
	 * __build_update for the services an edit does not touch; 0: unknown (a
	 * model made by hand). The sync keeps a service whose build it applied
	 * last without reading it again, so nothing may change a model service
	 * after its build.
	 */
	__u64 build_gen;
};

struct ferry_model {
	struct ferry_model_service *services;
	size_t nservices;
};

void ferry_model__free(struct ferry_model *model);

#endif /* FERRY_MODEL_H */
