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
};

struct ferry_model {
	struct ferry_model_service *services;
	size_t nservices;
};

void ferry_model__free(struct ferry_model *model);

#endif /* FERRY_MODEL_H */
