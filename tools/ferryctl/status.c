// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl status: programs and interfaces, map fill, ABI, ferryd liveness,
 * config generation and errors.
 */
#include "ferryctl.h"

/* -------------------------------------------------------------- status */

static int map_count_keys(int fd)
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

/*
 * The entries of a map, read a batch at a time by the snapshot's reader into
 * buf (kept from map to map): a key at a time took status 1.1 s on a full
 * flow table. Per-CPU maps, which that reader leaves out, a key at a time.
 */
static int map_count(int fd, struct ferry_map_buf *buf)
{
	return ferry_map__read_all(fd, buf) ? map_count_keys(fd) : (int)buf->n;
}

static void print_rebalance(json_t *rb)
{
	json_int_t n;

	if (!rb) {
		printf("rebalancing: unknown (ferryd not running)\n");
		return;
	}
	if (!json_is_true(json_object_get(rb, "available"))) {
		printf("rebalancing: UNAVAILABLE: %s; weight changes reach held connections only "
		       "when clients reconnect\n",
		       json_string_value(json_object_get(rb, "reason")));
		return;
	}
	n = json_integer_value(json_object_get(rb, "marked"));
	printf("rebalancing: available (%s; %s); %lld rounds, %lld connections ended "
	       "(%lld aborted, %lld after a GOAWAY), %lld busy skips, %lld failed, %lld expired, "
	       "%lld marked now\n",
	       json_is_true(json_object_get(rb, "l7")) ? "requests in flight from ferry_l7" :
							 "no ferry_l7: socket-level idleness only",
	       json_is_true(json_object_get(rb, "pod_netns")) ? "pod namespaces too" :
								"this namespace only",
	       (long long)json_integer_value(json_object_get(rb, "rounds")),
	       (long long)(json_integer_value(json_object_get(rb, "destroyed")) +
			   json_integer_value(json_object_get(rb, "goaway"))),
	       (long long)json_integer_value(json_object_get(rb, "destroyed")),
	       (long long)json_integer_value(json_object_get(rb, "goaway")),
	       (long long)json_integer_value(json_object_get(rb, "busy")),
	       (long long)json_integer_value(json_object_get(rb, "failed")),
	       (long long)json_integer_value(json_object_get(rb, "expired")), (long long)n);
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
	if (hooks & FERRY_LINK_TX_PORT)
		strncat(buf, "xdp-tx-port ", len - strlen(buf) - 1);
	if (buf[0])
		buf[strlen(buf) - 1] = '\0';
	return buf;
}

/* Why the interface has what it has (ferry_link.reason), in words; "" when nothing is recorded. */
static const char *reason_text(__u32 hooks, __u32 reason, char *buf, size_t len)
{
	static const char *const attach[] = {
		[FERRY_LINK_WHY_FLAG] = "--attach said so",
		[FERRY_LINK_WHY_NATIVE] = "driver runs XDP natively",
		[FERRY_LINK_WHY_NO_NATIVE] = "no native XDP in the driver: TC beats generic XDP",
		[FERRY_LINK_WHY_VETH] = "veth, peer runs no XDP: skbs arrive, TC avoids XDP's copy",
		[FERRY_LINK_WHY_VETH_PEER_XDP] = "veth whose peer runs XDP: XDP frames arrive",
		[FERRY_LINK_WHY_NO_FEATURES] =
			"kernel reports no xdp-features (< 6.3): XDP as before",
		[FERRY_LINK_WHY_POD] = "pod interface (--pod-iface)",
		[FERRY_LINK_WHY_REPLY] = "backends are routed here",
	};
	static const char *const tx[] = {
		[FERRY_TX_WHY_FLAG] = "tx port by --xdp-tx-iface",
		[FERRY_TX_WHY_NDO_XMIT] = "tx port: xdp-features say ndo-xmit",
	};
	__u32 a = reason & 0xff, t = (reason >> 8) & 0xff;

	buf[0] = '\0';
	if (a < sizeof(attach) / sizeof(attach[0]) && attach[a])
		snprintf(buf, len, "%s", attach[a]);
	if ((hooks & FERRY_LINK_TX_PORT) && t < sizeof(tx) / sizeof(tx[0]) && tx[t])
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "; " : "", tx[t]);
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

/*
 * Long on purpose: one linear report (programs, maps, ferryd, config) in table and JSON
 * form; each part is a few lines and reads best in output order.
 */
int cmd_status(struct ctl *c, int argc, char **argv)
{
	static const struct {
		enum ferry_map_id id;
		unsigned int max;
	} fill[] = {
		{ FERRY_M_SERVICES, FERRY_MAX_SERVICES * 2 },
		{ FERRY_M_FLOWS, FERRY_MAX_FLOWS },
		{ FERRY_M_RFLOWS, FERRY_MAX_FLOWS },
		{ FERRY_M_EFLOWS, FERRY_MAX_EMBRYONIC },
		{ FERRY_M_ERFLOWS, FERRY_MAX_EMBRYONIC },
		{ FERRY_M_LATENCY, FERRY_MAX_HISTOGRAMS },
		{ FERRY_M_PRED_META, FERRY_MAX_PREDICTORS },
		{ FERRY_M_LINKS, FERRY_MAX_LINKS },
	};
	struct ferry_snapshot *snap;
	struct ferry_dp *dp;
	char path[PATH_MAX], buf[160], why[160];
	json_t *root, *links, *maps, *overrides, *errors = NULL, *st = NULL, *rebal;
	struct ferry_map_buf counted = {};
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
	dp = open_maps(c);
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
			links,
			json_pack("{s:s, s:i, s:s, s:b, s:s, s:s}", "ifname", l->link.ifname,
				  "ifindex", (int)l->ifindex, "hooks",
				  hooks_text(l->link.hooks, buf, sizeof(buf)), "attached",
				  link_live(c->pin_path, l->ifindex, l->link.hooks), "tc_attach",
				  l->link.hooks & FERRY_LINK_TCX ? "tcx" : "clsact", "reason",
				  reason_text(l->link.hooks, l->link.reason, why, sizeof(why))));
	}
	maps = json_array();
	for (i = 0; i < sizeof(fill) / sizeof(fill[0]); i++) {
		int n = map_count(dp->map_fds[fill[i].id], &counted);

		json_array_append_new(maps, json_pack("{s:s, s:i, s:i}", "name",
						      ferry_map_names[fill[i].id], "entries", n,
						      "max_entries", (int)fill[i].max));
	}
	ferry_map_buf__free(&counted);
	json_array_append_new(maps,
			      json_pack("{s:s, s:i, s:i}", "name", FERRY_MAP_BACKENDS, "entries",
					(int)snap->nbackends, "max_entries", FERRY_MAX_BACKENDS));
	overrides = json_array();
	for (i = 0; i < snap->npredictors; i++) {
		const struct ferry_snap_predictor *p = &snap->predictors[i];
		const struct ferry_snap_service *s = ferry_snapshot__service(snap, p->svc_id);
		char vip[FERRY_ADDR_STRLEN + 8] = "?";

		if (!(p->flags & (FERRY_PRED_F_OVERRIDE | FERRY_PRED_F_CANARY)))
			continue;
		if (s)
			ferry_vip__format(&s->vip, vip, sizeof(vip));
		/* Both sources show: the SRE's (ferryctl weights) wins over the canary analysis'. */
		if (p->flags & FERRY_PRED_F_OVERRIDE)
			json_array_append_new(
				overrides, json_pack("{s:s, s:s, s:s, s:f, s:f, s:s}", "vip", vip,
						     "deployment", s ? s->deployment : "",
						     "predictor", p->name, "weight_override",
						     p->weight_override / 1e4, "weight_configured",
						     p->weight_configured / 1e4, "source", "sre"));
		if (p->flags & FERRY_PRED_F_CANARY)
			json_array_append_new(overrides,
					      json_pack("{s:s, s:s, s:s, s:f, s:f, s:s}", "vip",
							vip, "deployment", s ? s->deployment : "",
							"predictor", p->name, "weight_override",
							p->weight_canary / 1e4, "weight_configured",
							p->weight_configured / 1e4, "source",
							"canary"));
	}
	root = json_pack(
		"{s:s, s:i, s:i, s:{s:b, s:i, s:f}, s:I, s:f, s:o, s:o, s:{s:b, s:b, s:b, s:b, s:b}, s:O?, "
		"s:O}",
		"pin_path", c->pin_path, "abi_version", (int)snap->config.abi_version, "services",
		(int)snap->nservices, "ferryd", "alive", alive, "pid", (int)snap->config.ferryd_pid,
		"heartbeat_age_s", age, "generation", (json_int_t)snap->config.generation,
		"last_sync_unix", snap->config.sync_unix_ns / 1e9, "links", links, "maps", maps,
		"kernel", "tcx", !!(snap->config.features & FERRY_FEAT_TCX), "redirect_neigh",
		!!(snap->config.features & FERRY_FEAT_REDIRECT_NEIGH), "redirect_peer",
		!!(snap->config.features & FERRY_FEAT_REDIRECT_PEER), "xdp_meta",
		!!(snap->config.features & FERRY_FEAT_XDP_META), "jiffies_clock",
		!!(snap->config.features & FERRY_FEAT_JIFFIES), "config_errors", errors,
		"overrides", overrides);
	/* ferryd's own account (status file): only a live ferryd runs rebalancing. */
	rebal = st && alive ? json_object_get(st, "rebalance") : NULL;
	if (root)
		json_object_set(root, "rebalance", rebal ? rebal : json_null());
	if (c->json) {
		print_json(root);
	} else {
		time_t t = snap->config.sync_unix_ns / 1000000000ULL;
		char when[64] = "never";
		size_t k;

		if (t)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		printf("ferry data plane at %s (ABI %u)\n", c->pin_path, snap->config.abi_version);
		printf("ferryd:      %s", alive ? "alive" :
						  "NOT RUNNING (the data plane keeps "
						  "forwarding; manifests are not followed)");
		if (snap->config.ferryd_pid)
			printf(" (pid %u, heartbeat %.1fs ago)", snap->config.ferryd_pid, age);
		printf("\nconfig:      generation %llu, last sync %s\n",
		       (unsigned long long)snap->config.generation, when);
		printf("kernel:      TC attach %s; bpf_redirect_neigh %s; bpf_redirect_peer %s; "
		       "XDP metadata %s; flow clock %s\n",
		       snap->config.features & FERRY_FEAT_TCX ?
			       "tcx links (pinned under PIN/links; 'tc filter' does not show them)" :
			       "clsact qdisc + cls_bpf (no tcx before Linux 6.6)",
		       snap->config.features & FERRY_FEAT_REDIRECT_NEIGH ? "yes" : "no",
		       snap->config.features & FERRY_FEAT_REDIRECT_PEER ? "yes" : "no",
		       snap->config.features & FERRY_FEAT_XDP_META ?
			       "yes" :
			       "no (XDP hands what it cannot redirect to the stack)",
		       snap->config.features & FERRY_FEAT_JIFFIES ?
			       "jiffies" :
			       "bpf_ktime_get_coarse_ns (no tick measured: see ferryd's log)");
		printf("programs:\n");
		for (i = 0; i < snap->nlinks; i++) {
			const struct ferry_snap_link *l = &snap->links[i];

			reason_text(l->link.hooks, l->link.reason, why, sizeof(why));
			printf("  %-15s %s%s%s%s%s\n", l->link.ifname,
			       hooks_text(l->link.hooks, buf, sizeof(buf)),
			       link_live(c->pin_path, l->ifindex, l->link.hooks) ? "" : "  [GONE]",
			       why[0] ? "  (" : "", why, why[0] ? ")" : "");
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
		       json_array_size(overrides) ?
			       " (ferryctl weights SERVICE --clear drops an SRE one, ferryctl canary SERVICE "
			       "--resume a canary one)" :
			       "");
		for (k = 0; k < json_array_size(overrides); k++) {
			json_t *o = json_array_get(overrides, k);

			printf("  %s%s %s: %s = %.2f%% (configured %.2f%%)\n",
			       strcmp(json_string_value(json_object_get(o, "source")), "canary") ?
				       "" :
				       "[canary analysis; an SRE override wins] ",
			       json_string_value(json_object_get(o, "vip")),
			       json_string_value(json_object_get(o, "deployment")),
			       json_string_value(json_object_get(o, "predictor")),
			       json_real_value(json_object_get(o, "weight_override")),
			       json_real_value(json_object_get(o, "weight_configured")));
		}
		print_rebalance(rebal);
		printf("config errors: %zu\n", errors ? json_array_size(errors) : (size_t)0);
		for (k = 0; errors && k < json_array_size(errors); k++)
			printf("  %s\n", json_string_value(json_object_get(
						 json_array_get(errors, k), "text")));
		json_decref(root);
	}
	json_decref(overrides);
	json_decref(st);
	ferry_snapshot__free(snap);
	ferry_dp__close(dp);
	return EXIT_OK;
}
