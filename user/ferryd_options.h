/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferryd's command line: one table (ferryd_options.c) gives each flag its
 * name, argument, --help lines and what it sets; getopt's option list and
 * the --help text are both made from it.
 */
#ifndef FERRYD_OPTIONS_H
#define FERRYD_OPTIONS_H

#include <stdbool.h>
#include <linux/types.h>

#include "telemetry/hist.h"

struct ferry_seldon_servers;

#define MAX_IFACES 64

/* The Secret that holds the cluster hash seed in --kubernetes mode, and its key. */
#define FERRYD_HASH_SEED_SECRET_DEFAULT "ferry-hash-seed"
#define FERRYD_HASH_SEED_SECRET_KEY "seed"
/* --attach: where an --iface gets its forward program. */
enum ferryd_attach {
	FERRYD_ATTACH_AUTO, /* by what the driver does (ferryd.c choose_xdp) */
	FERRYD_ATTACH_XDP, /* XDP (native, else generic) plus TC for the handoff */
	FERRYD_ATTACH_TC, /* TC ingress only */
};

struct ferryd_opts {
	const char *config_dir;
	const char *ifaces[MAX_IFACES];
	int nifaces;
	const char *reply_ifaces[MAX_IFACES];
	int nreply_ifaces;
	const char *tx_ifaces[MAX_IFACES]; /* --xdp-tx-iface: XDP_REDIRECT-safe egress */
	int ntx_ifaces;
	const char *metrics_addr;
	const char *pin_path;
	const char *pod_ifaces; /* comma-separated fnmatch patterns */
	__u32 pod_path; /* --pod-fast-path: FERRY_POD_PATH_* */
	enum ferryd_attach attach; /* --attach */
	__u32 table_size;
	bool once;
	bool kubernetes;
	bool host_clients; /* balance connect() of this namespace's processes */
	const char *host_cgroup; /* its cgroup v2 tree; NULL: the root one */
	bool rebalance_pod_netns; /* rebalancing also enters pods' network namespaces */
	const char *kubeconfig;
	struct ferry_hist_buckets buckets; /* --latency-buckets; n == 0: the defaults */
	bool no_backend_histograms; /* --no-backend-histograms */
	const char *k8s_namespace;
	const char *hash_seed_file; /* --hash-seed-file: the cluster's seed */
	const char *hash_seed_secret; /* --hash-seed-secret [NS/]NAME (--kubernetes) */
	bool hash_seed_secret_set; /* given on the command line, not the default */
	struct ferry_seldon_servers *seldon_servers; /* --seldon-config; NULL: Helm's defaults */
	/* Flow state (docs/datapath.md, "Flow lifecycle"), in seconds. */
	__u32 tcp_idle_s; /* --tcp-idle-timeout: confirmed, open TCP */
	__u32 tcp_closing_s; /* --tcp-closing-timeout: after FIN or RST */
	__u32 embryonic_s; /* --embryonic-timeout: TCP not yet confirmed */
	__u32 udp_s; /* --udp-timeout */
	__u32 new_flow_rate; /* --new-flow-rate: per CPU and service per second; 0: no guard */
};

/* Defaults of the flow flags: TCP idle as conntrack's established timeout (5 days). */
#define FERRYD_TCP_IDLE_S_DEFAULT 432000
#define FERRYD_TCP_CLOSING_S_DEFAULT 10
#define FERRYD_EMBRYONIC_S_DEFAULT 30
#define FERRYD_UDP_S_DEFAULT 60

/*
 * Parses argv into o (defaults first). Prints --help and exits 0 on -h;
 * returns -EINVAL after a message naming the flag on a bad command line.
 */
int ferryd_opts__parse(int argc, char **argv, struct ferryd_opts *o);

#endif /* FERRYD_OPTIONS_H */
