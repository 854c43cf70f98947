// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's flags (ferryd_options.h). A new flag is one entry in options[]:
 * its name, whether it takes an argument, its --help lines (verbatim, in
 * --help order) and a setter that checks the argument and stores it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <linux/types.h>

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
#include "ferry_maps.h"
#include "ferryd_options.h"
#include "source/seldon_webhook.h"
#include "kernel/dataplane.h"
#include "kernel/netlink.h"
#include "kernel/table.h"
#include "log.h"
#include "telemetry/metrics.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* Appends an interface flag's value; flag names it in errors. */
static int add_iface(const char *flag, const char **list, int *n, const char *arg)
{
	char err[256];
	int ifindex;

	if (ferry_nl__ifindex_by_name(flag, arg, &ifindex, err, sizeof(err))) {
		fprintf(stderr, "ferryd: %s\n", err);
		return -EINVAL;
	}
	for (int i = 0; i < *n; i++) {
		if (!strcmp(list[i], arg)) {
			fprintf(stderr, "ferryd: %s %s is given twice; name each interface once\n",
				flag, arg);
			return -EINVAL;
		}
	}
	if (*n >= MAX_IFACES) {
		fprintf(stderr, "ferryd: at most %d interfaces per flag\n", MAX_IFACES);
		return -EINVAL;
	}
	list[(*n)++] = arg;
	return 0;
}

static int set_config_dir(struct ferryd_opts *o, const char *arg)
{
	o->config_dir = arg;
	return 0;
}

static int set_seldon_config(struct ferryd_opts *o, const char *arg)
{
	struct ferry_config_error cerr;
	char line[1600];

	ferry_seldon_servers__free(o->seldon_servers);
	o->seldon_servers = ferry_seldon_servers__load(arg, &cerr);
	if (!o->seldon_servers) {
		ferry_config_error__format(&cerr, line, sizeof(line));
		fprintf(stderr, "ferryd: --seldon-config: %s\n", line);
		return -EINVAL;
	}
	return 0;
}

static int set_kubernetes(struct ferryd_opts *o, const char *arg)
{
	o->kubernetes = true;
	return 0;
}

static int set_kubeconfig(struct ferryd_opts *o, const char *arg)
{
	o->kubeconfig = arg;
	o->kubernetes = true;
	return 0;
}

static int set_namespace(struct ferryd_opts *o, const char *arg)
{
	o->k8s_namespace = arg;
	return 0;
}

static int set_hash_seed_file(struct ferryd_opts *o, const char *arg)
{
	if (!*arg) {
		fprintf(stderr, "ferryd: --hash-seed-file: expected a file name\n");
		return -EINVAL;
	}
	o->hash_seed_file = arg;
	return 0;
}

static int set_hash_seed_secret(struct ferryd_opts *o, const char *arg)
{
	const char *slash = strchr(arg, '/');

	/* Names as the API server takes them: DNS subdomain rules, checked loosely here. */
	if (!*arg || (slash && (slash == arg || !slash[1] || strchr(slash + 1, '/'))) ||
	    strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789-./") != strlen(arg)) {
		fprintf(stderr,
			"ferryd: --hash-seed-secret %s: expected NAME or NAMESPACE/NAME in lower "
			"case (default " FERRYD_HASH_SEED_SECRET_DEFAULT
			" in ferryd's namespace)\n",
			arg);
		return -EINVAL;
	}
	o->hash_seed_secret = arg;
	o->hash_seed_secret_set = true;
	return 0;
}

static int set_iface(struct ferryd_opts *o, const char *arg)
{
	return add_iface("--iface", o->ifaces, &o->nifaces, arg);
}

static int set_reply_iface(struct ferryd_opts *o, const char *arg)
{
	return add_iface("--reply-iface", o->reply_ifaces, &o->nreply_ifaces, arg);
}

static int set_tx_iface(struct ferryd_opts *o, const char *arg)
{
	return add_iface("--xdp-tx-iface", o->tx_ifaces, &o->ntx_ifaces, arg);
}

static int set_pod_iface(struct ferryd_opts *o, const char *arg)
{
	char err[256];

	if (ferry_nl__check_patterns("--pod-iface", arg, err, sizeof(err))) {
		fprintf(stderr, "ferryd: %s\n", err);
		return -EINVAL;
	}
	o->pod_ifaces = arg;
	return 0;
}

static int set_pod_fast_path(struct ferryd_opts *o, const char *arg)
{
	if (!strcmp(arg, "off")) {
		o->pod_path = FERRY_POD_PATH_STACK;
	} else if (!strcmp(arg, "peer")) {
		o->pod_path = FERRY_POD_PATH_PEER;
	} else {
		fprintf(stderr,
			"ferryd: --pod-fast-path %s: expected off (the default: the stack routes, "
			"NetworkPolicy applies) or peer (redirects that bypass it)\n",
			arg);
		return -EINVAL;
	}
	return 0;
}

static int set_attach(struct ferryd_opts *o, const char *arg)
{
	if (!strcmp(arg, "auto")) {
		o->attach = FERRYD_ATTACH_AUTO;
	} else if (!strcmp(arg, "xdp")) {
		o->attach = FERRYD_ATTACH_XDP;
	} else if (!strcmp(arg, "tc")) {
		o->attach = FERRYD_ATTACH_TC;
	} else {
		fprintf(stderr, "ferryd: --attach %s: expected auto, xdp or tc\n", arg);
		return -EINVAL;
	}
	return 0;
}

/*
 * What to give --host-clients instead of a rejected path: the cgroup2 mount
 * found here (/sys/fs/cgroup/unified on a hybrid host, where /sys/fs/cgroup is
 * not cgroup2 and so must not be suggested), or how to get one.
 */
static void host_clients_hint(char *buf, size_t len)
{
	const char *root = ferry_dp__cgroup2_root();

	if (root)
		snprintf(buf, len,
			 "give a directory under the cgroup2 mount, e.g. %s (or --host-clients "
			 "alone for it)",
			 root);
	else
		snprintf(buf, len,
			 "no cgroup2 is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified: mount "
			 "one and give a directory under it");
}

static int set_host_clients(struct ferryd_opts *o, const char *arg)
{
	struct statfs sfs;
	struct stat st;
	char hint[160];

	/* Checked here, not at attach: a wrong path must not leave a half-started node. */
	if (!arg) {
		o->host_cgroup = NULL;
		o->host_clients = true;
		return 0;
	}
	host_clients_hint(hint, sizeof(hint));
	if (stat(arg, &st)) {
		fprintf(stderr, "ferryd: --host-clients=%s: %s; %s\n", arg, strerror(errno), hint);
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ferryd: --host-clients=%s: not a directory; %s\n", arg, hint);
		return -EINVAL;
	}
	if (statfs(arg, &sfs) || (unsigned long)sfs.f_type != CGROUP2_SUPER_MAGIC) {
		fprintf(stderr,
			"ferryd: --host-clients=%s: not a cgroup v2 directory (its file system is "
			"not cgroup2); %s\n",
			arg, hint);
		return -EINVAL;
	}
	o->host_cgroup = arg;
	o->host_clients = true;
	return 0;
}

static int set_rebalance_pod_netns(struct ferryd_opts *o, const char *arg)
{
	o->rebalance_pod_netns = true;
	return 0;
}

static int set_metrics_addr(struct ferryd_opts *o, const char *arg)
{
	char err[512];

	if (ferry_metrics__check_addr(arg, err, sizeof(err))) {
		fprintf(stderr, "ferryd: %s\n", err);
		return -EINVAL;
	}
	o->metrics_addr = arg;
	return 0;
}

static int set_latency_buckets(struct ferryd_opts *o, const char *arg)
{
	char err[256];

	ferry_hist__buckets_free(&o->buckets); /* the last one given counts */
	if (ferry_hist__parse_buckets(arg, &o->buckets, err, sizeof(err))) {
		fprintf(stderr, "ferryd: --latency-buckets: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

static int set_no_backend_histograms(struct ferryd_opts *o, const char *arg)
{
	o->no_backend_histograms = true;
	return 0;
}

static int set_pin_path(struct ferryd_opts *o, const char *arg)
{
	o->pin_path = arg;
	return 0;
}

static int set_table_size(struct ferryd_opts *o, const char *arg)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno || *end || n < FERRY_TABLE_SIZE_MIN || n > FERRY_TABLE_SIZE_MAX) {
		fprintf(stderr,
			"ferryd: --table-size %s: expected a whole number from %d to "
			"%d, the smallest Maglev table of a predictor (a prime; default %d; "
			"a predictor gets 100-200 slots per backend above it)\n",
			arg, FERRY_TABLE_SIZE_MIN, FERRY_TABLE_SIZE_MAX, FERRY_TABLE_SIZE_DEFAULT);
		return -EINVAL;
	}
	o->table_size = ferry_table__next_prime(n);
	if (o->table_size != n)
		fprintf(stderr,
			"ferryd: --table-size %lu is not prime; using %u (Maglev "
			"needs a prime)\n",
			n, o->table_size);
	return 0;
}

/* A whole number from min to max for --flag; a message naming the flag otherwise. */
static int parse_u32(const char *flag, const char *arg, unsigned long min, unsigned long max,
		     const char *unit, __u32 *out)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || n < min || n > max) {
		fprintf(stderr, "ferryd: --%s %s: expected a whole number of %s from %lu to %lu\n",
			flag, arg, unit, min, max);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static int set_tcp_idle(struct ferryd_opts *o, const char *arg)
{
	return parse_u32("tcp-idle-timeout", arg, 1, 365UL * 24 * 3600, "seconds", &o->tcp_idle_s);
}

static int set_tcp_closing(struct ferryd_opts *o, const char *arg)
{
	return parse_u32("tcp-closing-timeout", arg, 1, 24UL * 3600, "seconds", &o->tcp_closing_s);
}

static int set_embryonic(struct ferryd_opts *o, const char *arg)
{
	return parse_u32("embryonic-timeout", arg, 1, 3600, "seconds", &o->embryonic_s);
}

static int set_udp_timeout(struct ferryd_opts *o, const char *arg)
{
	return parse_u32("udp-timeout", arg, 1, 24UL * 3600, "seconds", &o->udp_s);
}

static int set_new_flow_rate(struct ferryd_opts *o, const char *arg)
{
	return parse_u32("new-flow-rate", arg, 0, 100000000, "new flows per second",
			 &o->new_flow_rate);
}

static int set_once(struct ferryd_opts *o, const char *arg)
{
	o->once = true;
	return 0;
}

static int set_log_level(struct ferryd_opts *o, const char *arg)
{
	if (ferry_log_parse_level(arg, &ferry_log_level)) {
		fprintf(stderr,
			"ferryd: --log-level %s: expected error, warn, info or "
			"debug\n",
			arg);
		return -EINVAL;
	}
	return 0;
}

struct ferryd_option {
	const char *name;
	int has_arg; /* getopt's no_argument, required_argument, optional_argument */
	const char *help; /* its lines of --help, verbatim */
	int (*set)(struct ferryd_opts *o, const char *arg); /* NULL: --help */
};

/* In --help order. */
static const struct ferryd_option options[] = {
	{ "config-dir", required_argument,
	  "  --config-dir DIR        manifests to apply; watched, changes apply within 100 ms\n",
	  set_config_dir },
	{ "seldon-config", required_argument,
	  "  --seldon-config FILE    the seldon-config ConfigMap (YAML): its prepackaged servers\n"
	  "                          replace the Helm chart's when judging files' deployments\n",
	  set_seldon_config },
	{ "kubernetes", no_argument,
	  "  --kubernetes            list and watch seldondeployments.machinelearning.seldon.io\n"
	  "                          and endpointslices.discovery.k8s.io from the API server\n"
	  "                          (in-cluster service account, or --kubeconfig FILE);\n"
	  "                          validation errors also become Events on the deployment\n",
	  set_kubernetes },
	{ "kubeconfig", required_argument,
	  "  --kubeconfig FILE       kubeconfig to use instead of the in-cluster account\n",
	  set_kubeconfig },
	{ "namespace", required_argument,
	  "  --namespace NS          watch one namespace (default: all)\n", set_namespace },
	{ "hash-seed-file", required_argument,
	  "  --hash-seed-file PATH   the cluster's flow hash seed: any non-empty file, the\n"
	  "                          same on every node (head -c 32 /dev/urandom > PATH), so\n"
	  "                          every node picks the same backend for a connection.\n"
	  "                          Without it (and without --kubernetes) the seed is\n"
	  "                          random per node\n",
	  set_hash_seed_file },
	{ "hash-seed-secret", required_argument,
	  "  --hash-seed-secret [NS/]NAME\n"
	  "                          with --kubernetes and no --hash-seed-file: the Secret\n"
	  "                          whose key 'seed' holds the cluster's seed,\n"
	  "                          created with a random one if missing (default\n"
	  "                          " FERRYD_HASH_SEED_SECRET_DEFAULT
	  " in ferryd's own namespace)\n",
	  set_hash_seed_secret },
	{ "iface", required_argument,
	  "  --iface IFNAME          where client traffic to VIPs arrives: XDP (native, else\n"
	  "                          generic with a warning) plus TC ingress; repeatable\n",
	  set_iface },
	{ "attach", required_argument,
	  "  --attach MODE           where --iface interfaces get the forward program: auto\n"
	  "                          (default: XDP where the driver runs it natively or a\n"
	  "                          veth's peer runs XDP, else TC ingress; ferryctl status\n"
	  "                          says why), xdp or tc\n",
	  set_attach },
	{ "reply-iface", required_argument,
	  "  --reply-iface IFNAME    where backend replies arrive (TC ingress); repeatable.\n"
	  "                          Without it, every interface through which a backend\n"
	  "                          address is routed, following route and link changes\n",
	  set_reply_iface },
	{ "xdp-tx-iface", required_argument,
	  "  --xdp-tx-iface IFNAME   an egress interface whose driver takes XDP_REDIRECT\n"
	  "                          frames (a physical NIC; a veth whose peer runs XDP):\n"
	  "                          forwarded packets leaving through it stay in XDP.\n"
	  "                          Without it XDP hands packets to TC to redirect, which\n"
	  "                          always delivers (a veth peer without XDP or GRO\n"
	  "                          silently drops redirected XDP frames); repeatable.\n"
	  "                          Replaces the default: every interface whose\n"
	  "                          xdp-features say ndo-xmit (Linux 6.3+), followed live\n",
	  set_tx_iface },
	{ "pod-iface", required_argument,
	  "  --pod-iface PATTERNS    also balance traffic from pods: TC on host-side veths\n"
	  "                          whose names match, e.g. 'veth*,cali*,lxc*'; new ones are\n"
	  "                          attached as they appear\n",
	  set_pod_iface },
	{ "pod-fast-path", required_argument,
	  "  --pod-fast-path MODE    off (default): pod traffic, once rewritten, is routed by\n"
	  "                          the stack, so netfilter and the CNI's hooks on the\n"
	  "                          backend's veth (NetworkPolicy) apply. peer: straight\n"
	  "                          into a local pod (bpf_redirect_peer) or out to a remote\n"
	  "                          one (bpf_redirect_neigh), replies too: faster, and it\n"
	  "                          BYPASSES NetworkPolicy enforced there\n",
	  set_pod_fast_path },
	{ "host-clients", optional_argument,
	  "  --host-clients[=CGROUP] also balance processes of this network namespace that\n"
	  "                          connect to a VIP (host-network pods, the node itself):\n"
	  "                          connect() hooks on the cgroup v2 tree (default: the\n"
	  "                          root one) point their sockets at a backend\n",
	  set_host_clients },
	{ "rebalance-pod-netns", no_argument,
	  "  --rebalance-pod-netns   rebalancing also ends idle connections of pods on this\n"
	  "                          node, entering their network namespaces (needs\n"
	  "                          CAP_SYS_ADMIN and the host PID namespace); without it\n"
	  "                          only this namespace's clients are rebalanced\n",
	  set_rebalance_pod_netns },
	{ "metrics-addr", required_argument,
	  "  --metrics-addr H:P      serve Prometheus metrics on http://H:P/metrics\n"
	  "                          (IPv6: [::1]:9477)\n",
	  set_metrics_addr },
	{ "latency-buckets", required_argument,
	  "  --latency-buckets LIST  exported histogram boundaries in seconds, ascending,\n"
	  "                          comma-separated (default: 0.0001 ... 0.001, Seldon's\n"
	  "                          0.005 ... 10, then 30, 60)\n",
	  set_latency_buckets },
	{ "no-backend-histograms", no_argument,
	  "  --no-backend-histograms leave out ferry_backend_{request,connect}_duration_seconds\n"
	  "                          (per-predictor histograms stay): 10 series per backend\n"
	  "                          instead of 52 with the default buckets\n",
	  set_no_backend_histograms },
	{ "pin-path", required_argument,
	  "  --pin-path PATH         bpffs directory for ferry's maps (default " FERRY_PIN_ROOT_DEFAULT
	  ")\n",
	  set_pin_path },
	/* The help text's lines as ferryd --help prints them (not clang-formatted). */
	/* clang-format off */
	{ "table-size", required_argument,
	  "  --table-size N          smallest lookup table per predictor, in slots, rounded\n"
	  "                          up to a prime (default " STR(FERRY_TABLE_SIZE_DEFAULT) "); a predictor gets\n"
	  "                          100-200 slots per ready backend above it\n",
	  set_table_size },
	/* clang-format on */
	{ "tcp-idle-timeout", required_argument,
	  "  --tcp-idle-timeout S    an open TCP connection idle this long (both directions\n"
	  "                          count) loses its flow state (default " STR(
		  FERRYD_TCP_IDLE_S_DEFAULT) ",\n"
					     "                          5 days, as conntrack's established timeout)\n",
	  set_tcp_idle },
	{ "tcp-closing-timeout", required_argument,
	  "  --tcp-closing-timeout S after a FIN or RST (default " STR(
		  FERRYD_TCP_CLOSING_S_DEFAULT) ")\n",
	  set_tcp_closing },
	{ "embryonic-timeout", required_argument,
	  "  --embryonic-timeout S   a TCP flow not yet confirmed (handshake, mid-stream\n"
	  "                          pickup) idle this long is dropped (default " STR(
		  FERRYD_EMBRYONIC_S_DEFAULT) ")\n",
	  set_embryonic },
	{ "udp-timeout", required_argument,
	  "  --udp-timeout S         a UDP flow idle this long picks a backend anew\n"
	  "                          (default " STR(FERRYD_UDP_S_DEFAULT) ")\n",
	  set_udp_timeout },
	{ "new-flow-rate", required_argument,
	  "  --new-flow-rate N       new flows each CPU stores per second and service; past\n"
	  "                          it they are sent where the hash points, not stored,\n"
	  "                          and a tuple turned away is let in on its next packet\n"
	  "                          (a SYN's retransmission) up to 2N\n"
	  "                          (default " STR(FERRY_NEW_FLOW_RATE_DEFAULT) ", 0: no limit)\n",
	  set_new_flow_rate },
	{ "once", no_argument,
	  "  --once                  apply DIR, report, exit: 0 when every manifest was\n"
	  "                          accepted, 1 otherwise; the data plane stays attached\n",
	  set_once },
	{ "log-level", required_argument,
	  "  --log-level LEVEL       error, warn, info (default) or debug\n", set_log_level },
	{ "help", no_argument, "  -h, --help              this text\n", NULL },
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static void usage(FILE *out)
{
	fputs("Usage: ferryd --config-dir DIR --iface IFNAME [--iface IFNAME ...]\n"
	      "              [--reply-iface IFNAME ...] [--metrics-addr HOST:PORT]\n"
	      "              [--pin-path PATH] [--table-size N] [--pod-iface PATTERNS]\n"
	      "              [--hash-seed-file PATH] [--once] [--log-level LEVEL]\n"
	      "       ferryd --kubernetes [--kubeconfig FILE] [--namespace NS] --iface ... | "
	      "--pod-iface ...\n"
	      "\n"
	      "Keeps ferry's kernel data plane equal to the SeldonDeployment and EndpointSlice\n"
	      "manifests in DIR (*.yaml, *.yml, *.json, as 'kubectl get -o yaml|json' writes "
	      "them),\n"
	      "or in the Kubernetes API.\n"
	      "\n",
	      out);
	for (size_t i = 0; i < NOPTIONS; i++)
		fputs(options[i].help, out);
	fputs("\n"
	      "Signals: SIGHUP re-reads DIR and the pinned state and resyncs everything;\n"
	      "SIGTERM and SIGINT exit leaving the data plane attached and forwarding;\n"
	      "SIGUSR1 and SIGUSR2 are logged and ignored.\n"
	      "Remove ferry from a node with 'ferryctl reset'.\n",
	      out);
}

/* Rules between flags, after all are read. */
static int check_combination(const struct ferryd_opts *o)
{
	if (!o->config_dir && !o->kubernetes) {
		fprintf(stderr, "ferryd: give --config-dir DIR or --kubernetes (see --help)\n");
		return -EINVAL;
	}
	if (o->kubernetes && o->once) {
		fprintf(stderr,
			"ferryd: --once reads a directory; it does not go with --kubernetes\n");
		return -EINVAL;
	}
	if (o->k8s_namespace && !o->kubernetes) {
		fprintf(stderr, "ferryd: --namespace goes with --kubernetes\n");
		return -EINVAL;
	}
	if (o->hash_seed_secret_set && !o->kubernetes) {
		fprintf(stderr, "ferryd: --hash-seed-secret goes with --kubernetes (without it, "
				"give --hash-seed-file PATH)\n");
		return -EINVAL;
	}
	if (o->hash_seed_secret_set && o->hash_seed_file) {
		fprintf(stderr, "ferryd: give --hash-seed-file or --hash-seed-secret, not both\n");
		return -EINVAL;
	}
	if (o->pod_path == FERRY_POD_PATH_PEER && !o->pod_ifaces) {
		fprintf(stderr, "ferryd: --pod-fast-path peer changes how pod traffic is sent and "
				"needs --pod-iface PATTERNS (which pods' veths to balance)\n");
		return -EINVAL;
	}
	if (!o->nifaces && !o->pod_ifaces) {
		fprintf(stderr, "ferryd: give at least one --iface IFNAME where client traffic "
				"arrives, or --pod-iface PATTERNS (see --help)\n");
		return -EINVAL;
	}
	return 0;
}

int ferryd_opts__parse(int argc, char **argv, struct ferryd_opts *o)
{
	struct option longopts[NOPTIONS + 1] = {};
	int c;

	/* getopt returns the table index + 256 (below 256 are short options: -h). */
	for (size_t i = 0; i < NOPTIONS; i++)
		longopts[i] = (struct option){ options[i].name, options[i].has_arg, NULL,
					       options[i].set ? 256 + (int)i : 'h' };
	o->pin_path = FERRY_PIN_ROOT_DEFAULT;
	o->table_size = FERRY_TABLE_SIZE_DEFAULT;
	o->hash_seed_secret = FERRYD_HASH_SEED_SECRET_DEFAULT;
	o->tcp_idle_s = FERRYD_TCP_IDLE_S_DEFAULT;
	o->tcp_closing_s = FERRYD_TCP_CLOSING_S_DEFAULT;
	o->embryonic_s = FERRYD_EMBRYONIC_S_DEFAULT;
	o->udp_s = FERRYD_UDP_S_DEFAULT;
	o->new_flow_rate = FERRY_NEW_FLOW_RATE_DEFAULT;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c < 256 || c >= 256 + (int)NOPTIONS) {
			usage(stderr);
			return -EINVAL;
		}
		if (options[c - 256].set(o, optarg))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "ferryd: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	return check_combination(o);
}
