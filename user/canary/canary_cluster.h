/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Canary analysis over several nodes (--kubernetes; docs/canary.md). One
 * ferryd holds the coordination.k8s.io Lease "ferry-canary" in ferry's
 * namespace and decides: at each window's end it gathers the other nodes'
 * window counts from their /canary/window (pods found through the
 * DaemonSet's label selector, port from the container port named metrics),
 * merges them bucket by bucket, judges, and publishes every rollout in the
 * ConfigMap "ferry-canary" of ferry's namespace (never on the
 * SeldonDeployment: GitOps tools would see drift). Every other node applies
 * what is published; a node that loses the leader keeps the last weights it
 * applied. Identity and namespace come from the downward API (POD_NAME,
 * POD_NAMESPACE), the selector from FERRY_POD_SELECTOR
 * (app.kubernetes.io/name=ferryd by default).
 *
 * Requests are synchronous with short timeouts (1 s connect, 2 s in all) on
 * ferryd's loop; a leader waits at most 1.5 s for a node's window to close.
 */
#ifndef FERRY_CANARY_CLUSTER_H
#define FERRY_CANARY_CLUSTER_H

#include <stdbool.h>
#include <time.h>

#include "canary/canary_run.h"
#include "source/k8s.h"

#define FERRY_CANARY_LEASE "ferry-canary"
#define FERRY_CANARY_CONFIGMAP "ferry-canary"
#define FERRY_CANARY_LEASE_S 10
#define FERRY_CANARY_POD_SELECTOR "app.kubernetes.io/name=ferryd"

struct ferry_canary_cluster_opts {
	struct ferry_k8s *k8s;
	const char *identity; /* this pod's name */
	const char *namespace; /* ferry's namespace: the Lease, the ConfigMap, the pods */
	const char *selector; /* label selector of ferryd's pods */
	int metrics_port; /* a peer without a metrics container port: this one */
};

struct ferry_canary_cluster;

struct ferry_canary_cluster *
ferry_canary_cluster__new(const struct ferry_canary_cluster_opts *opts);
void ferry_canary_cluster__free(struct ferry_canary_cluster *c);

/* Before the runner's tick: acquires or renews the Lease (every 2 s). */
void ferry_canary_cluster__elect(struct ferry_canary_cluster *c, time_t now);
/* The runner's may_decide: true while this node holds the Lease. */
bool ferry_canary_cluster__leading(void *cluster);
/* The runner's gather: merges the other nodes' windows into *merged. */
int ferry_canary_cluster__gather(void *cluster, const char *deployment, __u64 window,
				 struct ferry_canary_node_window *merged);
/* After the runner's tick: the leader publishes, the others apply. */
void ferry_canary_cluster__exchange(struct ferry_canary_cluster *c, struct ferry_canary_runner *r,
				    struct ferry_sync *sync, time_t now);

#endif /* FERRY_CANARY_CLUSTER_H */
