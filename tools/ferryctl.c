// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl: an SRE's view of ferry and its emergency controls. It reads and
 * writes the pinned maps directly, so it works whether or not ferryd runs.
 * Every read command prints a table, or JSON with -j.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "dataplane.h"
#include "hist.h"
#include "log.h"
#include "snapshot.h"
#include "status.h"
#include "sync.h"

/* Exit codes, documented in --help and docs/operations.md. */
#define EXIT_OK 0
#define EXIT_FAIL 1 /* the command ran and failed (kernel error, nothing attached) */
#define EXIT_USAGE 2 /* bad command line */
#define EXIT_NOT_FOUND 3 /* no such service, predictor or backend */

struct ctl {
	const char *pin_path;
	bool json;
};

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ------------------------------------------------------------- parsing */

/* "ADDR:PORT", "[ADDR6]:PORT", or without ":PORT" when port_optional. */
static int parse_endpoint(const char *text, bool port_optional, __u8 *family, __be32 addr[4],
			  __be16 *port)
{
	char host[64];
	const char *p = NULL, *end;
	unsigned long n;
	char *e;

	memset(addr, 0, 16);
	*port = 0;
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end || (size_t)(end - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, end - text - 1);
		host[end - text - 1] = '\0';
		if (end[1] == ':')
			p = end + 2;
		else if (end[1])
			return -EINVAL;
		*family = FERRY_AF_INET6;
		if (inet_pton(AF_INET6, host, addr) != 1)
			return -EINVAL;
	} else {
		const char *colon = strchr(text, ':');

		if (colon && strchr(colon + 1, ':')) {
			/* A bare IPv6 address: no port possible. */
			if (inet_pton(AF_INET6, text, addr) != 1)
				return -EINVAL;
			*family = FERRY_AF_INET6;
		} else {
			size_t len = colon ? (size_t)(colon - text) : strlen(text);

			if (len >= sizeof(host))
				return -EINVAL;
			memcpy(host, text, len);
			host[len] = '\0';
			if (inet_pton(AF_INET, host, addr) != 1)
				return -EINVAL;
			*family = FERRY_AF_INET;
			p = colon ? colon + 1 : NULL;
		}
	}
	if (!p)
		return port_optional ? 0 : -EINVAL;
	errno = 0;
	n = strtoul(p, &e, 10);
	if (errno || *e || !*p || n == 0 || n > 65535)
		return -EINVAL;
	*port = htons((__u16)n);
	return 0;
}

static const char *fmt_vip(const struct ferry_vip *vip, char *buf, size_t len)
{
	ferry_addr__format(vip->addr, vip->port, vip->family, buf, len);
	if (vip->proto == IPPROTO_UDP)
		strncat(buf, "/udp", len - strlen(buf) - 1);
	return buf;
}

/*
 * SERVICE is a VIP (ADDR:PORT) or a deployment (namespace/name, all its VIPs).
 * Fills ids with matching service ids; returns how many, or -errno.
 */
static int match_services(const struct ferry_snapshot *snap, const char *service, __u32 *ids,
			  size_t max)
{
	struct ferry_vip want = {};
	bool by_name = strchr(service, '/') && service[0] != '[';
	size_t i, n = 0;

	if (!by_name && parse_endpoint(service, false, &want.family, want.addr, &want.port)) {
		fprintf(stderr,
			"ferryctl: SERVICE '%s': expected a VIP ADDR:PORT ([ADDR]:PORT for IPv6) "
			"or a deployment namespace/name\n",
			service);
		return -EINVAL;
	}
	for (i = 0; i < snap->nservices && n < max; i++) {
		const struct ferry_snap_service *s = &snap->services[i];

		if (by_name ? !strcmp(s->deployment, service) :
			      (s->vip.family == want.family && s->vip.port == want.port &&
			       !memcmp(s->vip.addr, want.addr, 16)))
			ids[n++] = s->id;
	}
	if (!n) {
		fprintf(stderr, "ferryctl: no service %s (see 'ferryctl services')\n", service);
		return -ENOENT;
	}
	return n;
}

static struct ferry_snapshot *read_snapshot(const struct ctl *c)
{
	struct ferry_snapshot *snap = ferry_snapshot__read(c->pin_path);

	if (!snap)
		fprintf(stderr,
			"ferryctl: cannot read ferry's maps under %s: %s (is ferry running on this "
			"node, and with this --pin-path?)\n",
			c->pin_path, strerror(errno));
	return snap;
}

static double now_unix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static __u64 now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void print_json(json_t *root)
{
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(root);
}

/*
 * For commands without options: prints usage on --help (true: done, exit 0)
 * and rejects anything else but max_args positional arguments.
 */
static bool simple_args(int argc, char **argv, int max_args, const char *usage_text, int *rc)
{
	int i, pos = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			*rc = EXIT_OK;
			return true;
		}
		if (argv[i][0] == '-' || ++pos > max_args) {
			fprintf(stderr, "ferryctl %s: unexpected argument '%s' (see --help)\n", argv[0],
				argv[i]);
			*rc = EXIT_USAGE;
			return true;
		}
	}
	return false;
}

/* -------------------------------------------------------------- status */

static int map_count(int fd)
{
	__u8 key[64], next[64];
	void *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, sizeof(key));
		prev = key;
		n++;
	}
	return n;
}

static bool ferryd_alive(const struct ferry_config *cfg, double *age)
{
	*age = cfg->heartbeat_unix_ns ? now_unix() - cfg->heartbeat_unix_ns / 1e9 : -1;
	return cfg->ferryd_pid && !kill(cfg->ferryd_pid, 0) && *age >= 0 && *age < 5;
}

static const char *hooks_text(__u32 hooks, char *buf, size_t len)
{
	buf[0] = '\0';
	if (hooks & FERRY_LINK_XDP_NATIVE)
		strncat(buf, "xdp(native) ", len - strlen(buf) - 1);
	if (hooks & FERRY_LINK_XDP_GENERIC)
		strncat(buf, "xdp(generic) ", len - strlen(buf) - 1);
	if (hooks & FERRY_LINK_TC_FWD)
		strncat(buf, "tc-ingress(forward) ", len - strlen(buf) - 1);
	if (hooks & FERRY_LINK_TC_REPLY_IN)
		strncat(buf, "tc-ingress(reply) ", len - strlen(buf) - 1);
	if (hooks & FERRY_LINK_TC_REPLY_EG)
		strncat(buf, "tc-egress(reply) ", len - strlen(buf) - 1);
	if (hooks & FERRY_LINK_SOCK)
		strncat(buf, "cgroup-connect(host clients) ", len - strlen(buf) - 1);
	if (buf[0])
		buf[strlen(buf) - 1] = '\0';
	return buf;
}

/* A tcx link lives through its pin; the pin opens only while the link does. */
static bool tcx_live(const char *pin_path, __u32 ifindex, const char *prog)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/links/tcx-%u-%s", pin_path, ifindex, prog);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* What is really attached now, checked against the kernel, not just recorded. */
static bool link_live(const char *pin_path, __u32 ifindex, __u32 hooks)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	char name[IF_NAMESIZE];

	if (hooks & FERRY_LINK_SOCK)
		return true;
	if (!if_indextoname(ifindex, name))
		return false;
	if ((hooks & (FERRY_LINK_XDP_NATIVE | FERRY_LINK_XDP_GENERIC)) &&
	    (bpf_xdp_query(ifindex, 0, &q) || !q.prog_id))
		return false;
	if (hooks & FERRY_LINK_TCX) {
		if ((hooks & FERRY_LINK_TC_FWD) && !tcx_live(pin_path, ifindex, "ferry_tc_fwd"))
			return false;
		if ((hooks & FERRY_LINK_TC_REPLY_IN) &&
		    !tcx_live(pin_path, ifindex, "ferry_tc_reply_in"))
			return false;
		if ((hooks & FERRY_LINK_TC_REPLY_EG) &&
		    !tcx_live(pin_path, ifindex, "ferry_tc_reply_eg"))
			return false;
	}
	return true;
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	static const struct {
		enum ferry_map_id id;
		unsigned int max;
	} fill[] = {
		{ FERRY_M_SERVICES, FERRY_MAX_SERVICES * 2 }, { FERRY_M_FLOWS, FERRY_MAX_FLOWS },
		{ FERRY_M_RFLOWS, FERRY_MAX_FLOWS },	       { FERRY_M_LATENCY, FERRY_MAX_HISTOGRAMS },
		{ FERRY_M_PRED_META, FERRY_MAX_PREDICTORS },   { FERRY_M_LINKS, FERRY_MAX_LINKS },
	};
	struct ferry_snapshot *snap;
	struct ferry_dp *dp;
	char path[PATH_MAX], buf[128];
	json_t *root, *links, *maps, *overrides, *errors = NULL, *st = NULL;
	double age;
	bool alive;
	size_t i;
	int rc;

	if (simple_args(argc, argv, 0,
			"Usage: ferryctl status [-j]\n"
			"Programs and the interfaces they are on, map fill against limits, ABI,\n"
			"ferryd alive or not, config generation and last sync, weight overrides\n"
			"in force, and current config errors.\n",
			&rc))
		return rc;
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = c->pin_path, .maps_only = true });
	if (!dp)
		return EXIT_FAIL;
	snap = read_snapshot(c);
	if (!snap) {
		ferry_dp__close(dp);
		return EXIT_FAIL;
	}
	alive = ferryd_alive(&snap->config, &age);
	if (!ferry_status__path(c->pin_path, path, sizeof(path)))
		st = json_load_file(path, 0, NULL);
	errors = st ? json_object_get(st, "errors") : NULL;

	links = json_array();
	for (i = 0; i < snap->nlinks; i++) {
		const struct ferry_snap_link *l = &snap->links[i];

		json_array_append_new(
			links, json_pack("{s:s, s:i, s:s, s:b, s:s}", "ifname", l->link.ifname,
					 "ifindex", (int)l->ifindex, "hooks",
					 hooks_text(l->link.hooks, buf, sizeof(buf)), "attached",
					 link_live(c->pin_path, l->ifindex, l->link.hooks), "tc_attach",
					 l->link.hooks & FERRY_LINK_TCX ? "tcx" : "clsact"));
	}
	maps = json_array();
	for (i = 0; i < sizeof(fill) / sizeof(fill[0]); i++) {
		int n = map_count(dp->map_fds[fill[i].id]);

		json_array_append_new(maps, json_pack("{s:s, s:i, s:i}", "name",
						      ferry_map_names[fill[i].id], "entries", n,
						      "max_entries", (int)fill[i].max));
	}
	json_array_append_new(maps, json_pack("{s:s, s:i, s:i}", "name", FERRY_MAP_BACKENDS,
					      "entries", (int)snap->nbackends, "max_entries",
					      FERRY_MAX_BACKENDS));
	overrides = json_array();
	for (i = 0; i < snap->npredictors; i++) {
		const struct ferry_snap_predictor *p = &snap->predictors[i];
		const struct ferry_snap_service *s = ferry_snapshot__service(snap, p->svc_id);
		char vip[FERRY_ADDR_STRLEN + 8] = "?";

		if (!(p->flags & FERRY_PRED_F_OVERRIDE))
			continue;
		if (s)
			fmt_vip(&s->vip, vip, sizeof(vip));
		json_array_append_new(overrides,
				      json_pack("{s:s, s:s, s:s, s:f, s:f}", "vip", vip, "deployment",
						s ? s->deployment : "", "predictor", p->name,
						"weight_override", p->weight_override / 1e4,
						"weight_configured", p->weight_configured / 1e4));
	}
	root = json_pack(
		"{s:s, s:i, s:i, s:{s:b, s:i, s:f}, s:I, s:f, s:o, s:o, s:{s:b, s:b, s:b}, s:O?, s:O}",
		"pin_path", c->pin_path, "abi_version", (int)snap->config.abi_version,
		"services", (int)snap->nservices, "ferryd", "alive", alive, "pid",
		(int)snap->config.ferryd_pid, "heartbeat_age_s", age, "generation",
		(json_int_t)snap->config.generation, "last_sync_unix",
		snap->config.sync_unix_ns / 1e9, "links", links, "maps", maps, "kernel", "tcx",
		!!(snap->config.features & FERRY_FEAT_TCX), "redirect_neigh",
		!!(snap->config.features & FERRY_FEAT_REDIRECT_NEIGH), "redirect_peer",
		!!(snap->config.features & FERRY_FEAT_REDIRECT_PEER), "config_errors", errors,
		"overrides", overrides);
	if (c->json) {
		print_json(root);
	} else {
		time_t t = snap->config.sync_unix_ns / 1000000000ULL;
		char when[64] = "never";
		size_t k;

		if (t)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		printf("ferry data plane at %s (ABI %u)\n", c->pin_path, snap->config.abi_version);
		printf("ferryd:      %s", alive ? "alive" : "NOT RUNNING (the data plane keeps "
						       "forwarding; manifests are not followed)");
		if (snap->config.ferryd_pid)
			printf(" (pid %u, heartbeat %.1fs ago)", snap->config.ferryd_pid, age);
		printf("\nconfig:      generation %llu, last sync %s\n",
		       (unsigned long long)snap->config.generation, when);
		printf("kernel:      TC attach %s; bpf_redirect_neigh %s; bpf_redirect_peer %s\n",
		       snap->config.features & FERRY_FEAT_TCX ?
			       "tcx links (pinned under PIN/links; 'tc filter' does not show them)" :
			       "clsact qdisc + cls_bpf (no tcx before Linux 6.6)",
		       snap->config.features & FERRY_FEAT_REDIRECT_NEIGH ? "yes" : "no",
		       snap->config.features & FERRY_FEAT_REDIRECT_PEER ? "yes" : "no");
		printf("programs:\n");
		for (i = 0; i < snap->nlinks; i++) {
			const struct ferry_snap_link *l = &snap->links[i];

			printf("  %-15s %s%s\n", l->link.ifname,
			       hooks_text(l->link.hooks, buf, sizeof(buf)),
			       link_live(c->pin_path, l->ifindex, l->link.hooks) ? "" : "  [GONE]");
		}
		printf("maps:\n");
		for (k = 0; k < json_array_size(maps); k++) {
			json_t *m = json_array_get(maps, k);
			json_int_t n = json_integer_value(json_object_get(m, "entries"));
			json_int_t max = json_integer_value(json_object_get(m, "max_entries"));

			printf("  %-16s %8lld / %-8lld (%.1f%%)\n",
			       json_string_value(json_object_get(m, "name")), (long long)n,
			       (long long)max, max ? 100.0 * n / max : 0);
		}
		printf("services:    %zu\n", snap->nservices);
		printf("overrides:   %zu%s\n", json_array_size(overrides),
		       json_array_size(overrides) ? " (ferryctl weights SERVICE --clear drops one)" : "");
		for (k = 0; k < json_array_size(overrides); k++) {
			json_t *o = json_array_get(overrides, k);

			printf("  %s %s: %s = %.2f%% (configured %.2f%%)\n",
			       json_string_value(json_object_get(o, "vip")),
			       json_string_value(json_object_get(o, "deployment")),
			       json_string_value(json_object_get(o, "predictor")),
			       json_real_value(json_object_get(o, "weight_override")),
			       json_real_value(json_object_get(o, "weight_configured")));
		}
		printf("config errors: %zu\n", errors ? json_array_size(errors) : (size_t)0);
		for (k = 0; errors && k < json_array_size(errors); k++)
			printf("  %s\n",
			       json_string_value(json_object_get(json_array_get(errors, k), "text")));
		json_decref(root);
	}
	json_decref(overrides);
	json_decref(st);
	ferry_snapshot__free(snap);
	ferry_dp__close(dp);
	return EXIT_OK;
}

/* ------------------------------------------------------------ services */

static const char *state_name(__u8 state, __u32 flags)
{
	if (flags & FERRY_BE_F_ADMIN_DRAIN)
		return "drained";
	switch (state) {
	case FERRY_BE_ACTIVE:
		return "active";
	case FERRY_BE_DRAINING:
		return "draining";
	case FERRY_BE_UNREADY:
		return "unready";
	default:
		return "unused";
	}
}

/* New connections per second per backend: two snapshots 1 s apart. */
static double rate_of(const struct ferry_snapshot *a, const struct ferry_snapshot *b, __u32 id,
		      double dt)
{
	const struct ferry_snap_backend *x = a ? ferry_snapshot__backend(a, id) : NULL;
	const struct ferry_snap_backend *y = ferry_snapshot__backend(b, id);

	if (!x || !y || dt <= 0)
		return 0;
	return (y->stats.new_flows - x->stats.new_flows) / dt;
}

static json_t *services_json(const struct ferry_snapshot *prev, const struct ferry_snapshot *snap,
			     double dt)
{
	json_t *arr = json_array();
	size_t i, j, k;
	char buf[FERRY_ADDR_STRLEN + 8];

	for (i = 0; i < snap->nservices; i++) {
		const struct ferry_snap_service *s = &snap->services[i];
		json_t *preds = json_array();

		for (j = 0; j < s->npredictors; j++) {
			const struct ferry_snap_predictor *p =
				ferry_snapshot__predictor(snap, s->predictor_ids[j]);
			json_t *bes = json_array();

			if (!p)
				continue;
			for (k = 0; k < snap->nbackends; k++) {
				const struct ferry_snap_backend *b = &snap->backends[k];

				if (b->backend.predictor_id != p->id)
					continue;
				json_array_append_new(
					bes, json_pack("{s:s, s:s, s:I, s:f}", "address",
						       ferry_addr__format(b->backend.addr,
									  b->backend.port,
									  b->backend.family, buf,
									  sizeof(buf)),
						       "state",
						       state_name(b->backend.state, b->backend.flags),
						       "new_connections",
						       (json_int_t)b->stats.new_flows,
						       "new_connections_per_s",
						       rate_of(prev, snap, b->id, dt)));
			}
			json_array_append_new(
				preds,
				json_pack("{s:s, s:f, s:f, s:o, s:b, s:I, s:o}", "name", p->name,
					  "weight_configured", p->weight_configured / 1e4,
					  "weight_effective", p->weight_effective / 1e4,
					  "weight_override",
					  p->flags & FERRY_PRED_F_OVERRIDE ?
						  json_real(p->weight_override / 1e4) :
						  json_null(),
					  "shadow", !!(p->flags & FERRY_PRED_F_SHADOW),
					  "new_connections", (json_int_t)p->stats.new_flows,
					  "backends", bes));
		}
		json_array_append_new(arr,
				      json_pack("{s:s, s:s, s:s, s:i, s:o}", "vip",
						fmt_vip(&s->vip, buf, sizeof(buf)), "deployment",
						s->deployment, "affinity",
						s->flags & FERRY_SVC_F_HASH_SRC_ADDR ? "client-ip" :
										       "connection",
						"table_size", (int)s->table_size, "predictors",
						preds));
	}
	return arr;
}

static int cmd_services(struct ctl *c, int argc, char **argv)
{
	struct ferry_snapshot *a, *b;
	json_t *arr;
	size_t i, j, k;
	int rc;

	if (simple_args(argc, argv, 0,
			"Usage: ferryctl services [-j]\n"
			"Each VIP with its deployment, predictors with configured and effective\n"
			"weight (and any override), backends with state and new connections/s\n"
			"(measured over one second).\n",
			&rc))
		return rc;
	a = read_snapshot(c);
	if (!a)
		return EXIT_FAIL;
	usleep(1000000);
	b = read_snapshot(c);
	if (!b) {
		ferry_snapshot__free(a);
		return EXIT_FAIL;
	}
	arr = services_json(a, b, 1.0);
	if (c->json) {
		print_json(arr);
	} else {
		for (i = 0; i < json_array_size(arr); i++) {
			json_t *s = json_array_get(arr, i), *preds = json_object_get(s, "predictors");

			printf("%s  %s  (affinity %s, %lld slots)\n",
			       json_string_value(json_object_get(s, "vip")),
			       json_string_value(json_object_get(s, "deployment")),
			       json_string_value(json_object_get(s, "affinity")),
			       (long long)json_integer_value(json_object_get(s, "table_size")));
			for (j = 0; j < json_array_size(preds); j++) {
				json_t *p = json_array_get(preds, j), *bes = json_object_get(p, "backends");
				json_t *ov = json_object_get(p, "weight_override");
				char ovtext[48] = "";

				if (json_is_real(ov))
					snprintf(ovtext, sizeof(ovtext), "  OVERRIDE %.2f%%",
						 json_real_value(ov));
				printf("  %-20s configured %6.2f%%  effective %6.2f%%%s%s\n",
				       json_string_value(json_object_get(p, "name")),
				       json_real_value(json_object_get(p, "weight_configured")),
				       json_real_value(json_object_get(p, "weight_effective")), ovtext,
				       json_is_true(json_object_get(p, "shadow")) ? "  (shadow: not routed)" :
										    "");
				for (k = 0; k < json_array_size(bes); k++) {
					json_t *be = json_array_get(bes, k);

					printf("    %-40s %-9s %8.1f new conn/s\n",
					       json_string_value(json_object_get(be, "address")),
					       json_string_value(json_object_get(be, "state")),
					       json_real_value(
						       json_object_get(be, "new_connections_per_s")));
				}
			}
		}
		if (!json_array_size(arr))
			printf("no services\n");
		json_decref(arr);
	}
	ferry_snapshot__free(a);
	ferry_snapshot__free(b);
	return EXIT_OK;
}

/* --------------------------------------------------------------- flows */

static int cmd_flows(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "service", required_argument, NULL, 's' },
					      { "backend", required_argument, NULL, 'b' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct ferry_vip svc = {};
	__u8 be_family = 0;
	__be32 be_addr[4] = {};
	__be16 be_port = 0;
	bool want_svc = false, want_be = false;
	struct ferry_flow_key key, next, *prev = NULL;
	struct ferry_dp *dp;
	json_t *arr;
	__u64 now = now_mono_ns();
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:b:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (parse_endpoint(optarg, false, &svc.family, svc.addr, &svc.port)) {
				fprintf(stderr, "ferryctl flows: --service %s: expected ADDR:PORT\n",
					optarg);
				return EXIT_USAGE;
			}
			want_svc = true;
			break;
		case 'b':
			if (parse_endpoint(optarg, true, &be_family, be_addr, &be_port)) {
				fprintf(stderr,
					"ferryctl flows: --backend %s: expected ADDR or ADDR:PORT\n",
					optarg);
				return EXIT_USAGE;
			}
			want_be = true;
			break;
		case 'h':
			printf("Usage: ferryctl flows [--service VIP] [--backend ADDR[:PORT]] [-j]\n"
			       "Lists the connection table: client, VIP, backend, age, idle time,\n"
			       "packets and bytes each way, state.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = c->pin_path, .maps_only = true });
	if (!dp)
		return EXIT_FAIL;
	arr = json_array();
	if (!c->json)
		printf("%-24s %-24s %-24s %8s %8s %10s %10s %s\n", "CLIENT", "VIP", "BACKEND",
		       "AGE", "IDLE", "PKTS>", "PKTS<", "STATE");
	while (!bpf_map_get_next_key(dp->map_fds[FERRY_M_FLOWS], prev, &next)) {
		struct ferry_flow flow;
		struct ferry_rflow rflow = {};
		struct ferry_flow_key rkey;
		char cl[FERRY_ADDR_STRLEN], vip[FERRY_ADDR_STRLEN], be[FERRY_ADDR_STRLEN];
		double age, idle;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_FLOWS], &key, &flow))
			continue;
		if (want_svc && (svc.family != key.family || svc.port != key.dport ||
				 memcmp(svc.addr, key.daddr, 16)))
			continue;
		if (want_be && (be_family != flow.family || (be_port && be_port != flow.backend_port) ||
				memcmp(be_addr, flow.backend_addr, 16)))
			continue;
		ferry_flow__reverse_key(&rkey, &key, &flow);
		bpf_map_lookup_elem(dp->map_fds[FERRY_M_RFLOWS], &rkey, &rflow);
		ferry_addr__format(key.saddr, key.sport, key.family, cl, sizeof(cl));
		ferry_addr__format(key.daddr, key.dport, key.family, vip, sizeof(vip));
		ferry_addr__format(flow.backend_addr, flow.backend_port, flow.family, be, sizeof(be));
		age = flow.created_ns && now > flow.created_ns ? (now - flow.created_ns) / 1e9 : 0;
		idle = flow.last_ns && now > flow.last_ns ? (now - flow.last_ns) / 1e9 : 0;
		if (c->json)
			json_array_append_new(
				arr, json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:s}",
					       "client", cl, "vip", vip, "backend", be, "protocol",
					       key.proto == IPPROTO_UDP ? "udp" : "tcp", "age_s", age,
					       "idle_s", idle, "packets_forward", (json_int_t)flow.packets,
					       "bytes_forward", (json_int_t)flow.bytes, "packets_reply",
					       (json_int_t)rflow.packets, "bytes_reply",
					       (json_int_t)rflow.bytes, "backend_id",
					       (int)flow.backend_id, "state",
					       flow.flags & FERRY_FLOW_F_CLOSING ? "closing" : "open"));
		else
			printf("%-24s %-24s %-24s %7.1fs %7.1fs %10llu %10llu %s\n", cl, vip, be, age,
			       idle, (unsigned long long)flow.packets,
			       (unsigned long long)rflow.packets,
			       flow.flags & FERRY_FLOW_F_CLOSING ? "closing" : "open");
	}
	if (c->json)
		print_json(arr);
	else
		json_decref(arr);
	ferry_dp__close(dp);
	return EXIT_OK;
}

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

static int cmd_latency(struct ctl *c, int argc, char **argv)
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
		fmt_vip(&s->vip, vip, sizeof(vip));
		if (!c->json)
			printf("%s  %s\n", vip, s->deployment);
		for (j = 0; j < s->npredictors; j++) {
			const struct ferry_snap_predictor *p =
				ferry_snapshot__predictor(snap, s->predictor_ids[j]);
			const struct ferry_hist *h, *hc;
			json_t *o;

			if (!p)
				continue;
			h = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, p->id);
			hc = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT, p->id);
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
				double v = h && h->count ? ferry_hist__quantile(h, qs[q]) / 1e9 : NAN;

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

/* ----------------------------------------------------------------- top */

static int cmd_top(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "iterations", required_argument, NULL, 'n' },
					      { "interval", required_argument, NULL, 'i' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct ferry_snapshot *prev = NULL, *snap;
	long iterations = -1, it;
	double interval = 1.0;
	bool tty = isatty(STDOUT_FILENO);
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			iterations = strtol(optarg, NULL, 10);
			break;
		case 'i':
			interval = strtod(optarg, NULL);
			if (interval < 0.1)
				interval = 0.1;
			break;
		case 'h':
			printf("Usage: ferryctl top [--iterations N] [--interval SECONDS]\n"
			       "Refreshing view of services and predictors: traffic share of new\n"
			       "connections, connections/s, p50/p99 latency (- when no request was\n"
			       "sampled in the interval), 5xx and resets. q or Ctrl-C quits. With -j,\n"
			       "one JSON object per interval, one line each.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	for (it = 0; !stop_requested && (iterations < 0 || it < iterations + 1); it++) {
		size_t i, j;
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

		snap = read_snapshot(c);
		if (!snap)
			break;
		if (prev) {
			/* -j: one JSON object per interval, one line each. */
			json_t *jsvcs = c->json ? json_array() : NULL;

			if (!c->json) {
				if (tty)
					printf("\033[H\033[2J");
				printf("ferry top — %s — every %.1fs (q quits)\n\n", c->pin_path,
				       interval);
				printf("%-22s %-16s %7s %7s %9s %10s %10s %7s %7s\n", "SERVICE",
				       "PREDICTOR", "WEIGHT", "SHARE", "CONN/s", "p50", "p99", "5xx/s",
				       "RST/s");
			}
			for (i = 0; i < snap->nservices; i++) {
				const struct ferry_snap_service *s = &snap->services[i];
				char vip[FERRY_ADDR_STRLEN + 8];
				json_t *jpreds = c->json ? json_array() : NULL;
				double total = 0;

				fmt_vip(&s->vip, vip, sizeof(vip));
				if (c->json)
					json_array_append_new(jsvcs, json_pack("{s:s, s:o}", "vip", vip,
									       "predictors", jpreds));
				for (j = 0; j < s->npredictors; j++) {
					const struct ferry_snap_predictor *p =
						ferry_snapshot__predictor(snap, s->predictor_ids[j]);
					const struct ferry_snap_predictor *q =
						ferry_snapshot__predictor(prev, s->predictor_ids[j]);

					if (p && q)
						total += p->stats.new_flows - q->stats.new_flows;
				}
				for (j = 0; j < s->npredictors; j++) {
					const struct ferry_snap_predictor *p =
						ferry_snapshot__predictor(snap, s->predictor_ids[j]);
					const struct ferry_snap_predictor *q =
						ferry_snapshot__predictor(prev, s->predictor_ids[j]);
					const struct ferry_hist *h;
					struct ferry_hist delta = {};
					double conn, p50 = NAN, p99 = NAN;
					unsigned int b;

					if (!p || !q)
						continue;
					conn = p->stats.new_flows - q->stats.new_flows;
					h = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR,
								 FERRY_LAT_REQUEST, p->id);
					{
						const struct ferry_hist *hp = ferry_snapshot__hist(
							prev, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST,
							p->id);

						/* Latency of this interval, not since boot. */
						if (h && hp) {
							delta.count = h->count - hp->count;
							delta.sum_ns = h->sum_ns - hp->sum_ns;
							for (b = 0; b < FERRY_HIST_BUCKETS; b++)
								delta.bucket[b] =
									h->bucket[b] - hp->bucket[b];
						}
					}
					if (delta.count) {
						p50 = ferry_hist__quantile(&delta, 0.5) / 1e9;
						p99 = ferry_hist__quantile(&delta, 0.99) / 1e9;
					}
					double weight = (p->flags & FERRY_PRED_F_OVERRIDE ?
								 p->weight_override :
								 p->weight_configured) /
							1e4;
					double share = total ? 100.0 * conn / total : 0.0;
					double http5 = (p->stats.http[FERRY_HTTP_5XX] -
							q->stats.http[FERRY_HTTP_5XX]) /
						       interval;
					double rst = (p->stats.resets - q->stats.resets) / interval;
					/* No sampled request in the interval: no quantile, "-". */
					char p50s[24] = "-", p99s[24] = "-";

					if (c->json) {
						json_array_append_new(
							jpreds,
							json_pack("{s:s, s:f, s:f, s:f, s:o, s:o, s:f, s:f}",
								  "name", p->name, "weight_pct", weight,
								  "share_pct", share, "connections_per_s",
								  conn / interval, "p50_s",
								  isnan(p50) ? json_null() : json_real(p50),
								  "p99_s",
								  isnan(p99) ? json_null() : json_real(p99),
								  "http_5xx_per_s", http5, "resets_per_s",
								  rst));
						continue;
					}
					if (!isnan(p50)) {
						snprintf(p50s, sizeof(p50s), "%.2fms", p50 * 1e3);
						snprintf(p99s, sizeof(p99s), "%.2fms", p99 * 1e3);
					}
					printf("%-22s %-16s %6.1f%% %6.1f%% %9.1f %10s %10s %7.1f %7.1f\n",
					       j ? "" : vip, p->name, weight, share, conn / interval, p50s,
					       p99s, http5, rst);
				}
			}
			if (c->json) {
				json_t *o = json_pack("{s:f, s:o}", "interval_s", interval, "services",
						      jsvcs);

				json_dumpf(o, stdout, JSON_COMPACT);
				printf("\n");
				json_decref(o);
			}
			fflush(stdout);
		}
		ferry_snapshot__free(prev);
		prev = snap;
		if (iterations >= 0 && it >= iterations)
			break;
		if (poll(&pfd, tty ? 1 : 0, (int)(interval * 1000)) > 0) {
			char ch;

			if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
				break;
		}
	}
	ferry_snapshot__free(prev);
	return EXIT_OK;
}

/* ------------------------------------------------------------- weights */

static int cmd_weights(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "clear", no_argument, NULL, 'c' },
					      { "rollback", no_argument, NULL, 'r' },
					      { "to", required_argument, NULL, 't' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	const char *names[FERRY_MAX_SVC_PREDICTORS], *to = NULL, *service;
	__u32 weights[FERRY_MAX_SVC_PREDICTORS], ids[64];
	bool clear = false, rollback = false;
	struct ferry_snapshot *snap = NULL;
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp = NULL;
	size_t n = 0, total = 0;
	int opt, nsvc, i, rc = EXIT_FAIL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+crt:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			clear = true;
			break;
		case 'r':
			rollback = true;
			break;
		case 't':
			to = optarg;
			break;
		case 'h':
			printf("Usage: ferryctl weights SERVICE PREDICTOR=PERCENT ...\n"
			       "       ferryctl weights SERVICE --rollback [--to PREDICTOR]\n"
			       "       ferryctl weights SERVICE --clear\n"
			       "Emergency override of a service's split, in the kernel at once. It\n"
			       "survives ferryd restarts and shows in status and services until\n"
			       "--clear. Percentages must sum to 100; predictors not named get 0.\n"
			       "--rollback sends every new connection to one predictor: --to's, or\n"
			       "else the one with the largest configured traffic (first on a tie).\n"
			       "Open connections are never moved.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ferryctl weights: SERVICE is required (see --help)\n");
		return EXIT_USAGE;
	}
	service = argv[optind++];
	/* Options may also follow SERVICE. */
	while ((opt = getopt_long(argc, argv, "crt:h", opts, NULL)) != -1) {
		if (opt == 'c')
			clear = true;
		else if (opt == 'r')
			rollback = true;
		else if (opt == 't')
			to = optarg;
		else
			return EXIT_USAGE;
	}
	for (; optind < argc; optind++) {
		char *eq = strchr(argv[optind], '='), *end;
		double pct;

		if (!eq || eq == argv[optind] || n == FERRY_MAX_SVC_PREDICTORS) {
			fprintf(stderr,
				"ferryctl weights: '%s': expected PREDICTOR=PERCENT, e.g. main=100\n",
				argv[optind]);
			return EXIT_USAGE;
		}
		*eq = '\0';
		pct = strtod(eq + 1, &end);
		if (*end || eq[1] == '\0' || pct < 0 || pct > 100) {
			fprintf(stderr,
				"ferryctl weights: %s=%s: expected a percentage from 0 to 100\n",
				argv[optind], eq + 1);
			return EXIT_USAGE;
		}
		names[n] = argv[optind];
		weights[n] = (__u32)llround(pct * 1e4);
		total += weights[n];
		n++;
	}
	if ((clear + rollback + (n > 0)) != 1) {
		fprintf(stderr, "ferryctl weights: give exactly one of PREDICTOR=PERCENT..., "
				"--rollback or --clear (see --help)\n");
		return EXIT_USAGE;
	}
	if (n && (total < FERRY_WEIGHT_ONE - 100 || total > FERRY_WEIGHT_ONE + 100)) {
		fprintf(stderr,
			"ferryctl weights: the percentages sum to %.2f; they must sum to 100\n",
			total / 1e4);
		return EXIT_USAGE;
	}

	snap = read_snapshot(c);
	if (!snap)
		return EXIT_FAIL;
	nsvc = match_services(snap, service, ids, 64);
	if (nsvc < 0) {
		rc = nsvc == -ENOENT ? EXIT_NOT_FOUND : EXIT_USAGE;
		goto out;
	}
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = c->pin_path, .maps_only = true });
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	if (!sync)
		goto out;
	for (i = 0; i < nsvc; i++) {
		const struct ferry_snap_service *s = ferry_snapshot__service(snap, ids[i]);
		char vip[FERRY_ADDR_STRLEN + 8];
		size_t nn = n;
		int err;

		fmt_vip(&s->vip, vip, sizeof(vip));
		if (rollback) {
			const struct ferry_snap_predictor *best = NULL;
			size_t j;

			for (j = 0; j < s->npredictors; j++) {
				const struct ferry_snap_predictor *p =
					ferry_snapshot__predictor(snap, s->predictor_ids[j]);

				if (!p || (p->flags & FERRY_PRED_F_SHADOW))
					continue;
				if (to ? !strcmp(p->name, to) :
					 (!best || p->weight_configured > best->weight_configured))
					best = p;
			}
			if (!best) {
				fprintf(stderr, "ferryctl weights: %s has no predictor %s\n", vip,
					to ? to : "to roll back to");
				rc = EXIT_NOT_FOUND;
				goto out;
			}
			names[0] = best->name;
			weights[0] = FERRY_WEIGHT_ONE;
			nn = 1;
		}
		err = ferry_sync__override(sync, &s->vip, names, weights, nn, clear);
		if (err == -ENOENT) {
			fprintf(stderr,
				"ferryctl weights: %s (%s): no such predictor among those named; see "
				"'ferryctl services'\n",
				vip, s->deployment);
			rc = EXIT_NOT_FOUND;
			goto out;
		}
		if (err) {
			fprintf(stderr, "ferryctl weights: %s: %s\n", vip, strerror(-err));
			goto out;
		}
		if (clear)
			printf("%s (%s): override cleared; the manifest's weights apply\n", vip,
			       s->deployment);
		else
			for (size_t k = 0; k < nn; k++)
				printf("%s (%s): %s = %.2f%% (override)\n", vip, s->deployment,
				       names[k], weights[k] / 1e4);
	}
	rc = EXIT_OK;
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_snapshot__free(snap);
	return rc;
}

/* --------------------------------------------------------------- drain */

static int cmd_drain(struct ctl *c, int argc, char **argv, bool drain)
{
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp;
	__be32 addr[4];
	__be16 port;
	__u8 family;
	size_t changed = 0;
	int err, rc = EXIT_FAIL;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("Usage: ferryctl %s BACKEND\n"
		       "BACKEND is ADDR or ADDR:PORT ([ADDR]:PORT for IPv6). %s\n",
		       drain ? "drain" : "undrain",
		       drain ? "The backend takes no new connection (its open ones continue)\n"
			       "in every service it serves, until 'ferryctl undrain'; survives\n"
			       "ferryd restarts." :
			       "Undoes 'ferryctl drain'.");
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (parse_endpoint(argv[1], true, &family, addr, &port)) {
		fprintf(stderr, "ferryctl %s: BACKEND '%s': expected ADDR or ADDR:PORT\n",
			drain ? "drain" : "undrain", argv[1]);
		return EXIT_USAGE;
	}
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = c->pin_path, .maps_only = true });
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	if (!sync)
		goto out;
	err = ferry_sync__set_backend_state(sync, family, addr, port,
					    drain ? FERRY_BE_DRAINING : FERRY_BE_ACTIVE, &changed);
	if (err) {
		fprintf(stderr, "ferryctl: %s\n", strerror(-err));
		goto out;
	}
	if (!changed) {
		fprintf(stderr, "ferryctl: no backend %s %s (see 'ferryctl services')\n", argv[1],
			drain ? "to drain (unknown, or already drained)" :
				"to undrain (unknown, or not drained)");
		rc = EXIT_NOT_FOUND;
		goto out;
	}
	printf("%s: %s in %zu service(s)\n", argv[1], drain ? "drained" : "undrained", changed);
	rc = EXIT_OK;
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	return rc;
}

/* --------------------------------------------------------------- trace */

struct trace_ctx {
	struct ctl *c;
	bool want_svc;
	struct ferry_vip svc;
	long count, seen;
};

static const char *reason_name(__u8 r)
{
	switch (r) {
	case FERRY_TR_NEW_FLOW:
		return "new-flow";
	case FERRY_TR_FLOW_HIT:
		return "flow-hit";
	case FERRY_TR_FLOW_MISS:
		return "flow-miss";
	case FERRY_TR_REPLY:
		return "reply";
	case FERRY_TR_DROP_NO_BACKEND:
		return "drop:no-backend";
	case FERRY_TR_DROP_FRAGMENT:
		return "drop:fragment";
	case FERRY_TR_DROP_FIB:
		return "drop:fib";
	default:
		return "unknown";
	}
}

static int on_trace(void *ctx, void *data, size_t size)
{
	struct trace_ctx *t = ctx;
	const struct ferry_trace_event *e = data;
	char src[FERRY_ADDR_STRLEN], dst[FERRY_ADDR_STRLEN], ifname[IF_NAMESIZE] = "?";
	const char *hook;

	/* libbpf 1.1 drains what is queued even after a positive return: stop here too. */
	if (size < sizeof(*e) || (t->count > 0 && t->seen >= t->count))
		return 0;
	if (t->want_svc && e->reason != FERRY_TR_REPLY &&
	    (e->tuple.family != t->svc.family || e->tuple.dport != t->svc.port ||
	     memcmp(e->tuple.daddr, t->svc.addr, 16)))
		return 0;
	ferry_addr__format(e->tuple.saddr, e->tuple.sport, e->tuple.family, src, sizeof(src));
	ferry_addr__format(e->tuple.daddr, e->tuple.dport, e->tuple.family, dst, sizeof(dst));
	if_indextoname(e->ifindex, ifname);
	hook = e->hook == FERRY_HOOK_XDP ? "xdp" : e->hook == FERRY_HOOK_TC_INGRESS ? "tc-in" : "tc-eg";
	if (t->c->json) {
		json_t *o = json_pack("{s:f, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "ts",
				      e->ts_ns / 1e9, "hook", hook, "ifname", ifname, "src", src,
				      "dst", dst, "reason", reason_name(e->reason), "service_id",
				      (int)e->svc_id, "predictor_id", (int)e->predictor_id,
				      "backend_id", (int)e->backend_id);

		json_dumpf(o, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		printf("%.6f %-5s %-10s %-24s -> %-24s %-16s svc %u pred %u backend %u\n",
		       e->ts_ns / 1e9, hook, ifname, src, dst, reason_name(e->reason), e->svc_id,
		       e->predictor_id, e->backend_id);
	}
	fflush(stdout);
	t->seen++;
	return t->count > 0 && t->seen >= t->count ? 1 : 0;
}

static int cmd_trace(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "service", required_argument, NULL, 's' },
					      { "count", required_argument, NULL, 'n' },
					      { "every", required_argument, NULL, 'e' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct trace_ctx t = { .c = c, .count = 0 };
	struct ring_buffer *rb = NULL;
	struct ferry_config cfg;
	struct ferry_dp *dp;
	long every = 1;
	int opt, rc = EXIT_FAIL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:n:e:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (parse_endpoint(optarg, false, &t.svc.family, t.svc.addr, &t.svc.port)) {
				fprintf(stderr, "ferryctl trace: --service %s: expected ADDR:PORT\n",
					optarg);
				return EXIT_USAGE;
			}
			t.want_svc = true;
			break;
		case 'n':
			t.count = strtol(optarg, NULL, 10);
			break;
		case 'e':
			every = strtol(optarg, NULL, 10);
			if (every < 1) {
				fprintf(stderr, "ferryctl trace: --every N: N >= 1\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			printf("Usage: ferryctl trace [--service VIP] [--count N] [--every N]\n"
			       "Streams the data plane's per-packet decisions (service, predictor,\n"
			       "backend, and why: new flow, flow hit, miss, reply, drop reason),\n"
			       "sampling one packet in N (default every packet) while it runs.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = c->pin_path, .maps_only = true });
	if (!dp)
		return EXIT_FAIL;
	rb = ring_buffer__new(dp->map_fds[FERRY_M_TRACE], on_trace, &t, NULL);
	if (!rb || ferry_dp__config_read(dp, &cfg)) {
		fprintf(stderr, "ferryctl trace: cannot open the trace ring buffer: %s\n",
			strerror(errno));
		goto out;
	}
	cfg.trace_every = every;
	ferry_dp__config_write(dp, &cfg);
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	while (!stop_requested) {
		int err = ring_buffer__poll(rb, 200);

		if (err < 0 && err != -EINTR)
			break;
		if (t.count > 0 && t.seen >= t.count)
			break;
	}
	rc = EXIT_OK;
	/* Tracing costs a branch per packet only while off: always switch it off. */
	if (!ferry_dp__config_read(dp, &cfg)) {
		cfg.trace_every = 0;
		ferry_dp__config_write(dp, &cfg);
	}
out:
	ring_buffer__free(rb);
	ferry_dp__close(dp);
	return rc;
}

/* --------------------------------------------------------------- reset */

static int cmd_reset(struct ctl *c, int argc, char **argv)
{
	bool yes = false;
	int err, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--yes") || !strcmp(argv[i], "-y")) {
			yes = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: ferryctl reset [--yes]\n"
			       "Detaches every ferry program and removes every pin under the pin\n"
			       "path. Open connections through ferry break. Asks first unless --yes.\n");
			return EXIT_OK;
		} else {
			fprintf(stderr, "ferryctl reset: unknown argument %s\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!yes) {
		char answer[16] = "";

		if (!isatty(STDIN_FILENO)) {
			fprintf(stderr, "ferryctl reset: refusing without --yes (no terminal to "
					"ask on)\n");
			return EXIT_USAGE;
		}
		printf("Detach ferry and remove %s? Open connections through ferry will break. "
		       "[y/N] ",
		       c->pin_path);
		fflush(stdout);
		if (!fgets(answer, sizeof(answer), stdin) || (answer[0] != 'y' && answer[0] != 'Y')) {
			printf("nothing changed\n");
			return EXIT_FAIL;
		}
	}
	if (ferry_dp__check_bpffs(c->pin_path))
		return EXIT_FAIL;
	err = ferry_dp__reset(c->pin_path);
	if (err && err != -ENOENT) {
		fprintf(stderr, "ferryctl reset: %s: %s\n", c->pin_path, strerror(-err));
		return EXIT_FAIL;
	}
	{
		char path[PATH_MAX];

		if (!ferry_status__path(c->pin_path, path, sizeof(path)))
			unlink(path);
	}
	printf("ferry removed: programs detached, %s deleted\n", c->pin_path);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ferryctl [--pin-path PATH] [-j|--json] COMMAND [ARGS]\n"
		"\n"
		"Reads and steers ferry's kernel data plane through its pinned maps; works\n"
		"whether or not ferryd is running.\n"
		"\n"
		"Commands:\n"
		"  status                       programs and interfaces, map fill, ABI, ferryd\n"
		"                               liveness, config generation and errors\n"
		"  services                     VIPs, predictors (configured/effective weight),\n"
		"                               backends with state and new connections/s\n"
		"  flows [--service VIP] [--backend ADDR]   the connection table\n"
		"  latency [SERVICE]            per-predictor latency histograms, p50..p99.9\n"
		"  top                          refreshing view of share, rate, latency, errors\n"
		"  weights SERVICE P=PCT ...    emergency split override (--clear to drop it,\n"
		"                               --rollback [--to P] for all-to-one)\n"
		"  drain BACKEND | undrain BACKEND\n"
		"  trace [--service VIP] [--count N]        sampled per-packet decisions\n"
		"  reset [--yes]                detach everything and remove every pin\n"
		"\n"
		"SERVICE is a VIP ADDR:PORT ([ADDR]:PORT for IPv6) or a deployment\n"
		"namespace/name (all its VIPs). 'ferryctl COMMAND --help' for details.\n"
		"\n"
		"Options:\n"
		"  --pin-path PATH   ferry's bpffs directory (default %s)\n"
		"  -j, --json        JSON output for read commands\n"
		"\n"
		"Exit codes: 0 ok, 1 failed, 2 usage error, 3 no such service/predictor/backend.\n",
		FERRY_PIN_ROOT_DEFAULT);
}

int main(int argc, char **argv)
{
	struct ctl c = { .pin_path = FERRY_PIN_ROOT_DEFAULT };
	const char *cmd;
	int i;

	/* Global options come before the command. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			c.json = true;
		} else if (!strcmp(argv[i], "--pin-path") && i + 1 < argc) {
			c.pin_path = argv[++i];
		} else if (!strncmp(argv[i], "--pin-path=", 11)) {
			c.pin_path = argv[i] + 11;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "ferryctl: unknown option %s (see --help)\n", argv[i]);
			return EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[i];
	argc -= i;
	argv += i;
	/* -j and --pin-path may also follow the command, as with ip and bpftool. */
	for (i = 1; i < argc; i++) {
		int drop = 0;

		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			c.json = true;
			drop = 1;
		} else if (!strcmp(argv[i], "--pin-path") && i + 1 < argc) {
			c.pin_path = argv[i + 1];
			drop = 2;
		}
		if (drop) {
			memmove(&argv[i], &argv[i + drop], (argc - i - drop + 1) * sizeof(*argv));
			argc -= drop;
			i--;
		}
	}
	ferry_log_level = FERRY_LOG_WARN;
	libbpf_set_print(NULL);

	if (!strcmp(cmd, "status"))
		return cmd_status(&c, argc, argv);
	if (!strcmp(cmd, "services"))
		return cmd_services(&c, argc, argv);
	if (!strcmp(cmd, "flows"))
		return cmd_flows(&c, argc, argv);
	if (!strcmp(cmd, "latency"))
		return cmd_latency(&c, argc, argv);
	if (!strcmp(cmd, "top"))
		return cmd_top(&c, argc, argv);
	if (!strcmp(cmd, "weights"))
		return cmd_weights(&c, argc, argv);
	if (!strcmp(cmd, "drain"))
		return cmd_drain(&c, argc, argv, true);
	if (!strcmp(cmd, "undrain"))
		return cmd_drain(&c, argc, argv, false);
	if (!strcmp(cmd, "trace"))
		return cmd_trace(&c, argc, argv);
	if (!strcmp(cmd, "reset"))
		return cmd_reset(&c, argc, argv);
	fprintf(stderr, "ferryctl: unknown command '%s' (see --help)\n", cmd);
	return EXIT_USAGE;
}
