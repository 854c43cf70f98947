// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd: keeps the kernel's maps equal to the SeldonDeployments and
 * EndpointSlices in a directory. One thread runs an epoll loop over inotify
 * (debounced), signals, netlink and a 1 s tick; the metrics server answers
 * on libmicrohttpd's own thread from a fresh snapshot of the pinned maps.
 * Exiting never detaches anything: the data plane keeps forwarding.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <stdarg.h>
#include <bpf/libbpf.h>

#include <sys/eventfd.h>

#include "caps.h"
#include "canary/canary_cluster.h"
#include "canary/canary_run.h"
#include "source/config.h"
#include "source/seldon_webhook.h"
#include "source/k8s.h"
#include "kernel/dataplane.h"
#include "log.h"
#include "telemetry/hist.h"
#include "telemetry/metrics.h"
#include "kernel/netlink.h"
#include "kernel/snapshot.h"
#include "status.h"
#include "kernel/rebalance.h"
#include "kernel/sync.h"
#include "kernel/table.h"
#include "ferryd_options.h"
#include "hash_seed.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0"
#endif

/*
 * A finished write (close after write, rename into place, delete) is applied
 * at once: only the files named by inotify are read again (a burst that
 * arrives meanwhile is read together, at the next wakeup); a write still in
 * progress (modify, create) waits DEBOUNCE_PARTIAL_MS for its close.
 */
#define DEBOUNCE_MS 25
#define DEBOUNCE_PARTIAL_MS 25
/*
 * A manifest deleted, or the directory itself renamed, removed or created,
 * waits this long for more (re-armed by every event): 'rm -rf DIR' deletes
 * the files before the directory, and 'mv DIR DIR.old; mv DIR.new DIR' or
 * 'mkdir DIR; cp ... DIR' are two steps. Read too early, each would apply a
 * directory that is about to be gone or is still empty.
 */
#define DEBOUNCE_GONE_MS 100
/* What the config directory's own watch asks for; IN_*_SELF: it was removed or renamed. */
#define CONFIG_DIR_EVENTS                                                                   \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_MODIFY | \
	 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
/* Its parent's watch: only entries coming and going (filtered for the directory's name). */
#define CONFIG_PARENT_EVENTS (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)
#define GC_EVERY_TICKS 10

/* Flow idle limits from the flags (ferryd_options.h has the defaults). */
static struct ferry_gc_opts gc_opts_of(const struct ferryd_opts *o)
{
	return (struct ferry_gc_opts){
		.tcp_idle_ns = o->tcp_idle_s * 1000000000ULL,
		.tcp_closing_ns = o->tcp_closing_s * 1000000000ULL,
		.embryonic_ns = o->embryonic_s * 1000000000ULL,
		.udp_idle_ns = o->udp_s * 1000000000ULL,
	};
}

struct ferryd {
	struct ferryd_opts opts;
	struct ferry_dp *dp;
	struct ferry_sync *sync;
	struct ferry_config_store *store;
	struct ferry_nl *nl;
	struct ferry_metrics_server *metrics;
	struct ferry_k8s *k8s;
	/* The Kubernetes thread puts objects into the store under store_lock and pokes k8s_fd. */
	pthread_mutex_t store_lock;
	int k8s_fd;
	bool k8s_synced;
	volatile bool k8s_failed; /* the client gave up (bad token, no RBAC): exit non-zero */
	int epfd, inotify_fd, signal_fd, debounce_fd, tick_fd;
	/*
	 * --config-dir is followed by its path, not its inode: dir_wd watches the
	 * directory the path names now, parent_wd its parent for that name
	 * (config_base) being replaced. dir_replaced: seen, not yet re-watched
	 * and read. dir_error: why the path cannot be read (it is missing), a
	 * config error while it lasts.
	 */
	int dir_wd, parent_wd;
	char *config_parent, *config_base;
	bool dir_replaced;
	char dir_error[PATH_MAX + 256];
	bool running;
	bool routes_dirty;
	unsigned long ticks;

	/* Read by the metrics thread. */
	pthread_mutex_t lock;
	bool metrics_live; /* start-up done: /metrics answers (503 before, as unbound before) */
	unsigned int config_errors;
	__u64 config_errors_total;
	__u32 *no_ready; /* predictor ids with configured weight and no ready backend */
	size_t nno_ready;

	/*
	 * The errors of the last sync, formatted: ferry_config_errors_total counts
	 * rejections, so an error still outstanding on the next resync (the same
	 * file, line and message) is not counted again.
	 */
	char **seen_errors;
	size_t nseen_errors;

	/* Interfaces the reply program is on because a backend is routed there. */
	int auto_reply[MAX_IFACES * 4];
	int nauto_reply;
	struct ferry_model model; /* the last model applied */
	/* Files inotify named since the last load; reload_all: read the whole directory. */
	char **edited;
	size_t nedited;
	bool reload_all;
	struct ferry_rebal *rebal;
	struct ferry_sync_result last_res; /* for status rewrites between syncs */
	struct ferry_rebal_stats rebal_stats; /* copied at each tick, under lock */
	struct ferry_flow_gc_stats flow_gc; /* after each flow GC pass, under lock */
	bool flow_gc_ran;
	struct ferry_canary_runner *canary;
	struct ferry_canary_cluster *cluster; /* --kubernetes: one node decides */
	/* The runner is used by the loop and by /canary/window on the metrics thread. */
	pthread_mutex_t canary_lock;
	struct ferry_canary_metrics *canary_rows; /* read by the metrics thread, under lock */
	size_t ncanary_rows;
};

/* ------------------------------------------------------------- status */

static void write_status(struct ferryd *d, const struct ferry_sync_result *res)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	json_t *root, *errors, *vip_services;
	struct timespec now;
	size_t i;

	if (ferry_status__path(d->opts.pin_path, path, sizeof(path)))
		return;
	if (res)
		d->last_res = *res;
	else
		res = &d->last_res;
	mkdir(FERRY_STATUS_DIR, 0755);
	clock_gettime(CLOCK_REALTIME, &now);
	errors = json_array();
	/* The Kubernetes watch thread edits the store: read it under its lock (TSan). */
	pthread_mutex_lock(&d->store_lock);
	for (i = 0; i < ferry_config_store__nerrors(d->store); i++) {
		const struct ferry_config_error *e = ferry_config_store__error(d->store, i);
		char line[2048];

		ferry_config_error__format(e, line, sizeof(line));
		json_array_append_new(
			errors, json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "file", e->file,
					  "line", e->line, "column", e->column, "object", e->object,
					  "field", e->field, "message", e->message, "text", line));
	}
	pthread_mutex_unlock(&d->store_lock);
	if (d->dir_error[0])
		json_array_append_new(errors,
				      json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "file",
						d->opts.config_dir, "line", 0, "column", 0,
						"object", "", "field", "", "message", d->dir_error,
						"text", d->dir_error));
	/* Where each VIP came from (ferry.io/vip: service/NAME): ferryctl services shows it. */
	vip_services = json_object();
	for (i = 0; vip_services && i < d->model.nservices; i++) {
		const struct ferry_model_service *ms = &d->model.services[i];
		char vip[FERRY_ADDR_STRLEN + 8];

		if (ms->service[0])
			json_object_set_new(vip_services,
					    ferry_vip__format(&ms->vip, vip, sizeof(vip)),
					    json_string(ms->service));
	}
	root = json_pack("{s:i, s:s, s:s, s:I, s:i, s:i, s:i, s:o, s:o*}", "pid", (int)getpid(),
			 "pin_path", d->opts.pin_path, "config_dir",
			 d->opts.config_dir ? d->opts.config_dir : "(kubernetes)", "last_sync_unix",
			 (json_int_t)now.tv_sec, "services", res ? (int)res->services : 0,
			 "sync_errors", res ? (int)res->errors : 0, "config_errors",
			 (int)d->config_errors, "errors", errors, "vip_services", vip_services);
	if (root && d->rebal) {
		struct ferry_rebal_stats rs;

		ferry_rebal__stats(d->rebal, &rs);
		json_object_set_new(
			root, "rebalance",
			json_pack("{s:b, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}",
				  "available", rs.available, "reason", rs.reason, "l7", rs.l7,
				  "pod_netns", rs.pod_netns, "rounds", (json_int_t)rs.rounds,
				  "destroyed", (json_int_t)rs.destroyed, "goaway",
				  (json_int_t)rs.goaway, "busy", (json_int_t)rs.busy, "failed",
				  (json_int_t)rs.failed, "expired", (json_int_t)rs.expired, "gone",
				  (json_int_t)rs.gone, "marked", (int)rs.marked));
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (root && !json_dump_file(root, tmp, JSON_INDENT(2)))
		rename(tmp, path);
	json_decref(root);
}

/* ----------------------------------------------------------- attaching */

static bool has_ifindex(const int *list, int n, int ifindex)
{
	for (int i = 0; i < n; i++)
		if (list[i] == ifindex)
			return true;
	return false;
}

static const char *why_text(__u32 why)
{
	switch (why) {
	case FERRY_LINK_WHY_FLAG:
		return "--attach says so";
	case FERRY_LINK_WHY_NATIVE:
		return "its driver runs XDP natively";
	case FERRY_LINK_WHY_NO_NATIVE:
		return "its driver has no native XDP (generic XDP is slower than TC)";
	case FERRY_LINK_WHY_VETH:
		return "a veth whose peer runs no XDP: skbs arrive, and XDP would copy them";
	case FERRY_LINK_WHY_VETH_PEER_XDP:
		return "a veth whose peer runs XDP: frames arrive as XDP frames";
	case FERRY_LINK_WHY_NO_FEATURES:
		return "the kernel reports no xdp-features (Linux < 6.3): XDP as before";
	default:
		return "";
	}
}

/*
 * XDP or TC for the forward program of an --iface, by what its driver does
 * (Cilium's rule): native XDP where frames arrive as XDP frames, TC on a
 * veth whose peer runs no XDP (the skb exists already; XDP on it would copy
 * every cloned skb and hand each frame to TC anyway).
 */
static bool choose_xdp(struct ferryd *d, const char *name, int ifindex, __u32 *why)
{
	struct ferry_nl_xdp_dev dev;

	if (d->opts.attach != FERRYD_ATTACH_AUTO) {
		*why = FERRY_LINK_WHY_FLAG;
		/*
		 * Said, not refused: a peer with tx checksumming off (a test bed
		 * modelling a wire) is fine, and ferryd cannot see the peer's
		 * settings from here.
		 */
		if (d->opts.attach == FERRYD_ATTACH_XDP && d->nl &&
		    !ferry_nl__xdp_dev(d->nl, ifindex, &dev) && dev.veth && !dev.peer_xdp)
			pr_warn("--iface %s: --attach xdp on a veth: what its peer's stack sends "
				"with checksum offload (a pod's or a namespace's default) reaches XDP "
				"with its checksum unfinished, which XDP cannot see, so the rewritten "
				"packets arrive with bad checksums and are dropped; --attach auto puts "
				"TC here (docs/datapath.md, \"Rewrite and checksums\")",
				name);
		return d->opts.attach == FERRYD_ATTACH_XDP;
	}
	if (!d->nl || ferry_nl__xdp_dev(d->nl, ifindex, &dev)) {
		*why = FERRY_LINK_WHY_NO_FEATURES;
		return true;
	}
	if (dev.veth) {
		*why = dev.peer_xdp ? FERRY_LINK_WHY_VETH_PEER_XDP : FERRY_LINK_WHY_VETH;
		return dev.peer_xdp;
	}
	if (!dev.features_known) {
		*why = FERRY_LINK_WHY_NO_FEATURES;
		return true;
	}
	*why = dev.features & FERRY_XDP_ACT_BASIC ? FERRY_LINK_WHY_NATIVE :
						    FERRY_LINK_WHY_NO_NATIVE;
	return dev.features & FERRY_XDP_ACT_BASIC;
}

static int attach_static(struct ferryd *d)
{
	int i, err, ifindex;
	__u32 why;
	bool xdp;

	for (i = 0; i < d->opts.nifaces; i++) {
		ifindex = if_nametoindex(d->opts.ifaces[i]);
		if (!ifindex) {
			pr_err("--iface %s: no such interface", d->opts.ifaces[i]);
			return -ENODEV;
		}
		xdp = choose_xdp(d, d->opts.ifaces[i], ifindex, &why);
		/* TC first: XDP hands frames it cannot redirect itself to it. */
		err = ferry_dp__attach(d->dp, ifindex, FERRY_HOOK_TC_FWD);
		if (!err && xdp)
			err = ferry_dp__attach(d->dp, ifindex, FERRY_HOOK_XDP_FWD);
		else if (!err)
			err = ferry_dp__detach_xdp(d->dp, ifindex);
		err = err ?: ferry_dp__link_reason(d->dp, ifindex, why);
		if (err)
			return err;
		pr_info("--iface %s: forward program at %s: %s", d->opts.ifaces[i],
			xdp ? "XDP (and TC ingress for its handoff)" : "TC ingress", why_text(why));
	}
	/* The flag replaces detection: what a previous ferryd found goes. */
	if (d->opts.ntx_ifaces) {
		err = ferry_dp__clear_tx_ports(d->dp);
		if (err)
			return err;
	}
	for (i = 0; i < d->opts.ntx_ifaces; i++) {
		ifindex = if_nametoindex(d->opts.tx_ifaces[i]);
		err = ifindex ? ferry_dp__add_tx_port(d->dp, ifindex, FERRY_TX_WHY_FLAG) : -ENODEV;
		if (err) {
			pr_err("--xdp-tx-iface %s: %s", d->opts.tx_ifaces[i], strerror(-err));
			return err;
		}
		pr_info("--xdp-tx-iface %s: XDP redirects straight to it", d->opts.tx_ifaces[i]);
	}
	for (i = 0; i < d->opts.nreply_ifaces; i++) {
		ifindex = if_nametoindex(d->opts.reply_ifaces[i]);
		if (!ifindex) {
			pr_err("--reply-iface %s: no such interface", d->opts.reply_ifaces[i]);
			return -ENODEV;
		}
		err = ferry_dp__attach(d->dp, ifindex, FERRY_HOOK_TC_REPLY_IN);
		if (err)
			return err;
		pr_info("--reply-iface %s: reply program attached (TC ingress)",
			d->opts.reply_ifaces[i]);
	}
	return 0;
}

/*
 * Egress found by itself: a device whose xdp-features have NDO_XMIT takes
 * XDP_REDIRECT frames (a NIC with ndo_xdp_xmit, a veth whose peer runs XDP
 * or GRO), so XDP redirects into it instead of handing the frame to TC.
 * Called for every device at start and on every netdev notification.
 * --xdp-tx-iface replaces this: then only the named devices are ports.
 */
static void on_xdp_features(void *ctx, int ifindex, __u64 features, bool removed)
{
	struct ferryd *d = ctx;
	char ifname[IF_NAMESIZE];
	bool want = !removed && (features & FERRY_XDP_ACT_NDO_XMIT), have;
	__u32 why = FERRY_TX_WHY_NONE;

	if (d->opts.ntx_ifaces)
		return;
	have = ferry_dp__is_tx_port(d->dp, ifindex, &why);
	/* A port a previous ferryd declared by flag is now this one's finding. */
	if (want == have && (!want || why == FERRY_TX_WHY_NDO_XMIT))
		return;
	if (!if_indextoname(ifindex, ifname))
		snprintf(ifname, sizeof(ifname), "if%d", ifindex);
	if (want) {
		if (!ferry_dp__add_tx_port(d->dp, ifindex, FERRY_TX_WHY_NDO_XMIT) && !have)
			pr_info("%s: takes XDP_REDIRECT frames (xdp-features ndo-xmit): XDP "
				"redirects into it",
				ifname);
		return;
	}
	if (!ferry_dp__del_tx_port(d->dp, ifindex) && !removed)
		pr_info("%s: no longer takes XDP_REDIRECT frames: XDP hands its packets to TC",
			ifname);
}

static void attach_tx_ports_auto(struct ferryd *d)
{
	if (d->opts.ntx_ifaces)
		return;
	if (!d->nl || !ferry_nl__has_xdp_features(d->nl)) {
		pr_info("the kernel reports no xdp-features (netdev netlink family, Linux 6.3+): "
			"XDP hands every forwarded packet to TC, which always delivers; "
			"--xdp-tx-iface declares an egress that takes XDP_REDIRECT");
		return;
	}
	if (ferry_nl__xdp_dump(d->nl))
		pr_warn("cannot read xdp-features: XDP hands forwarded packets to TC");
}

/* Without --reply-iface: the reply program goes where backends are routed. */
static void attach_reply_auto(struct ferryd *d)
{
	struct ferry_nl_route_query *q;
	size_t n = 0, i, j, k;
	char ifname[IF_NAMESIZE];

	if (d->opts.nreply_ifaces || !d->nl)
		return;
	for (i = 0; i < d->model.nservices; i++)
		for (j = 0; j < d->model.services[i].npredictors; j++)
			n += d->model.services[i].predictors[j].nbackends;
	if (!n)
		return;
	q = calloc(n, sizeof(*q));
	if (!q)
		return;
	n = 0;
	for (i = 0; i < d->model.nservices; i++) {
		for (j = 0; j < d->model.services[i].npredictors; j++) {
			const struct ferry_model_predictor *p = &d->model.services[i].predictors[j];

			for (k = 0; k < p->nbackends; k++) {
				q[n].family = p->backends[k].family;
				memcpy(q[n].addr, p->backends[k].addr, sizeof(q[n].addr));
				n++;
			}
		}
	}
	ferry_nl__route_ifindex_batch(d->nl, q, n);
	for (i = 0; i < n; i++) {
		if (q[i].err || q[i].ifindex <= 0 ||
		    has_ifindex(d->auto_reply, d->nauto_reply, q[i].ifindex))
			continue;
		if ((size_t)d->nauto_reply >= sizeof(d->auto_reply) / sizeof(d->auto_reply[0]))
			break;
		if (!if_indextoname(q[i].ifindex, ifname))
			snprintf(ifname, sizeof(ifname), "if%d", q[i].ifindex);
		/*
		 * A backend pod's own veth, on the policy-safe path: its replies go
		 * through the stack untranslated (conntrack and policy see the reply
		 * of the connection they saw) and the client pod's veth egress
		 * translates them. --pod-fast-path=peer attaches here itself.
		 */
		if (d->opts.pod_ifaces && ferry_nl__match(d->opts.pod_ifaces, ifname)) {
			d->auto_reply[d->nauto_reply++] = q[i].ifindex;
			continue;
		}
		if (ferry_dp__attach(d->dp, q[i].ifindex, FERRY_HOOK_TC_REPLY_IN))
			continue;
		d->auto_reply[d->nauto_reply++] = q[i].ifindex;
		pr_info("%s: reply program attached (TC ingress): backends are routed there",
			ifname);
	}
	free(q);
}

static void attach_pod(struct ferryd *d, int ifindex, const char *ifname)
{
	bool peer = d->opts.pod_path == FERRY_POD_PATH_PEER;
	int err;

	/* Marked first: the forward program must never see it as a gateway interface. */
	err = ferry_dp__mark_pod(d->dp, ifindex);
	err = err ?: ferry_dp__attach(d->dp, ifindex, FERRY_HOOK_TC_FWD);
	err = err ?: ferry_dp__attach(d->dp, ifindex, FERRY_HOOK_TC_REPLY_EG);
	/* The peer path also takes replies at the backend pod's veth, straight into the client. */
	if (!err && peer)
		err = ferry_dp__attach(d->dp, ifindex, FERRY_HOOK_TC_REPLY_IN);
	if (err)
		pr_warn("pod interface %s: cannot attach: %s", ifname, strerror(-err));
	else
		pr_info("pod interface %s: attached (TC ingress forward%s, TC egress reply)%s",
			ifname, peer ? " and reply" : "",
			peer ? "; --pod-fast-path=peer: redirects skip NetworkPolicy hooks" : "");
}

static void on_link(void *ctx, int ifindex, const char *ifname, bool up, bool removed)
{
	struct ferryd *d = ctx;

	if (removed) {
		d->routes_dirty = true;
		return;
	}
	if (d->opts.pod_ifaces && ferry_nl__match(d->opts.pod_ifaces, ifname))
		attach_pod(d, ifindex, ifname);
	(void)up;
}

static void on_route_change(void *ctx)
{
	struct ferryd *d = ctx;

	d->routes_dirty = true;
}

static int attach_existing_pods(void *ctx, int ifindex, const char *ifname, bool up)
{
	struct ferryd *d = ctx;

	if (ferry_nl__match(d->opts.pod_ifaces, ifname))
		attach_pod(d, ifindex, ifname);
	(void)up;
	return 0;
}

/* --------------------------------------------------------------- sync */

/*
 * Predictors with configured weight and no ready backend, for the metrics
 * thread: from the sync's mirror of what it wrote, not a snapshot of every
 * map (which costs tens of ms with thousands of deployments, at every edit).
 */
static void collect_no_ready(struct ferryd *d)
{
	size_t n = ferry_sync__no_ready(d->sync, NULL, 0);
	__u32 *ids = calloc(n ? n : 1, sizeof(*ids));

	if (!ids)
		return;
	n = ferry_sync__no_ready(d->sync, ids, n);
	pthread_mutex_lock(&d->lock);
	free(d->no_ready);
	d->no_ready = ids;
	d->nno_ready = n;
	pthread_mutex_unlock(&d->lock);
}

/* Errors about objects from the API server also go where kubectl users look: an Event. */
static void report_k8s_error(struct ferryd *d, const struct ferry_config_error *e)
{
	char kind[32], ns[64], name[256];

	if (!d->k8s || strcmp(e->file, "kubernetes") ||
	    sscanf(e->object, "%31s %63[^/]/%255s", kind, ns, name) != 3)
		return;
	ferry_k8s__report_error(d->k8s, kind, ns, name, e->message);
}

/*
 * A deployment waiting for a Service it names: logged by the store; in
 * cluster mode an Event too (rate-limited by the client), so that
 * `kubectl describe sdep` says why the VIP is not there yet.
 */
static void report_k8s_waiting(struct ferryd *d)
{
	char dep[512], svc[512], msg[1200];

	for (size_t i = 0; d->k8s && i < ferry_config_store__nwaiting(d->store); i++) {
		char *slash;

		if (ferry_config_store__waiting(d->store, i, dep, sizeof(dep), svc, sizeof(svc)))
			continue;
		slash = strchr(dep, '/');
		if (!slash)
			continue;
		*slash = '\0';
		snprintf(msg, sizeof(msg),
			 "ferry.io/vip names Service %s, which does not exist (yet): its VIPs are "
			 "added when it appears; create the Service or fix the name",
			 svc);
		ferry_k8s__report_error(d->k8s, "SeldonDeployment", dep, slash + 1, msg);
	}
}

/* --------------------------------------------------------- kubernetes */

static void poke(struct ferryd *d)
{
	__u64 one = 1;

	if (write(d->k8s_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_debug("eventfd: %s", strerror(errno));
}

static void k8s_upsert(json_t *object, void *ctx)
{
	struct ferryd *d = ctx;

	pthread_mutex_lock(&d->store_lock);
	ferry_config_store__put(d->store, object, "kubernetes");
	pthread_mutex_unlock(&d->store_lock);
	if (d->k8s_synced)
		poke(d);
}

static void k8s_delete(const char *kind, const char *ns, const char *name, void *ctx)
{
	struct ferryd *d = ctx;

	pthread_mutex_lock(&d->store_lock);
	ferry_config_store__delete(d->store, kind, ns, name);
	pthread_mutex_unlock(&d->store_lock);
	if (d->k8s_synced)
		poke(d);
}

static void k8s_synced(void *ctx)
{
	struct ferryd *d = ctx;

	/* Until the first full list, a partial view would delete what is not listed yet. */
	d->k8s_synced = true;
	poke(d);
}

static void k8s_error(int err, const char *message, void *ctx)
{
	struct ferryd *d = ctx;

	pr_err("kubernetes: %s (%s); exiting so that the pod restarts and shows why", message,
	       strerror(-err));
	/* The data plane keeps forwarding what it has; the loop exits non-zero. */
	d->k8s_failed = true;
	poke(d);
}

static bool error_seen(const struct ferryd *d, const char *line)
{
	size_t i;

	for (i = 0; i < d->nseen_errors; i++)
		if (d->seen_errors[i] && !strcmp(d->seen_errors[i], line))
			return true;
	return false;
}

static void free_seen_errors(struct ferryd *d)
{
	size_t i;

	for (i = 0; i < d->nseen_errors; i++)
		free(d->seen_errors[i]);
	free(d->seen_errors);
	d->seen_errors = NULL;
	d->nseen_errors = 0;
}

/* Re-reads the directory and applies it. Returns 0 when every manifest was accepted. */
/* ------------------------------------------------------------- canary */

static void canary_rows_update(struct ferryd *d)
{
	struct ferry_canary_metrics *rows;
	size_t n = ferry_canary_runner__metrics(d->canary, &rows);

	pthread_mutex_lock(&d->lock);
	free(d->canary_rows);
	d->canary_rows = rows;
	d->ncanary_rows = n;
	pthread_mutex_unlock(&d->lock);
}

/* A canary transition: an Event on the SeldonDeployment in --kubernetes mode. */
static void canary_event(void *ctx, const char *deployment, bool warning, const char *reason,
			 const char *message)
{
	struct ferryd *d = ctx;
	char ns[FERRY_NAME_LEN];
	char *slash;

	if (!d->k8s)
		return;
	snprintf(ns, sizeof(ns), "%s", deployment);
	slash = strchr(ns, '/');
	if (!slash)
		return;
	*slash = '\0';
	ferry_k8s__report_event(d->k8s, "SeldonDeployment", ns, slash + 1, warning, reason,
				message);
}

static void canary_sync(struct ferryd *d)
{
	if (!d->canary)
		return;
	pthread_mutex_lock(&d->canary_lock);
	ferry_canary_runner__sync(d->canary, d->sync, &d->model);
	pthread_mutex_unlock(&d->canary_lock);
	canary_rows_update(d);
}

static void canary_tick(struct ferryd *d)
{
	time_t now = time(NULL);

	if (!d->canary)
		return;
	pthread_mutex_lock(&d->canary_lock);
	if (d->cluster && d->k8s_synced)
		ferry_canary_cluster__elect(d->cluster, now);
	ferry_canary_runner__tick(d->canary, d->sync, now);
	if (d->cluster && d->k8s_synced)
		ferry_canary_cluster__exchange(d->cluster, d->canary, d->sync, now);
	pthread_mutex_unlock(&d->canary_lock);
	canary_rows_update(d);
}

/* /canary/window on the metrics thread: this node's last closed window, for the leader. */
static int canary_window(void *ctx, const char *deployment, char **buf, size_t *len)
{
	struct ferryd *d = ctx;
	struct ferry_canary_node_window *w = malloc(sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&d->canary_lock);
	err = ferry_canary_runner__last_window(d->canary, deployment, w);
	pthread_mutex_unlock(&d->canary_lock);
	*buf = err ? NULL : ferry_canary_node_window__json(w);
	free(w);
	if (err)
		return err;
	if (!*buf)
		return -ENOMEM;
	*len = strlen(*buf);
	return 0;
}

/* --kubernetes: the Lease and the published decisions (canary_cluster.h). */
static int canary_cluster_setup(struct ferryd *d)
{
	const char *port = d->opts.metrics_addr ? strrchr(d->opts.metrics_addr, ':') : NULL;
	const char *name = getenv("POD_NAME"), *ns = getenv("POD_NAMESPACE");

	if (!d->canary || !d->k8s)
		return 0;
	d->cluster = ferry_canary_cluster__new(&(struct ferry_canary_cluster_opts){
		.k8s = d->k8s,
		.identity = name && *name ? name : ferry_k8s__host(d->k8s),
		.namespace = ns && *ns ? ns : "ferry-system",
		.selector = getenv("FERRY_POD_SELECTOR"),
		.metrics_port = port ? atoi(port + 1) : 9477,
	});
	if (!d->cluster)
		return -ENOMEM;
	ferry_canary_runner__free(d->canary);
	d->canary = ferry_canary_runner__new(&(struct ferry_canary_runner_opts){
		.pin_path = d->opts.pin_path,
		.on_transition = canary_event,
		.ctx = d,
		.fresh = d->dp->created,
		.gather = ferry_canary_cluster__gather,
		.may_decide = ferry_canary_cluster__leading,
		.cluster_ctx = d->cluster,
	});
	return d->canary ? 0 : -errno;
}

static void edited_clear(struct ferryd *d)
{
	for (size_t i = 0; i < d->nedited; i++)
		free(d->edited[i]);
	free(d->edited);
	d->edited = NULL;
	d->nedited = 0;
}

/*
 * The directory cannot be read (err < 0; it is missing, or not a directory
 * any more) or can again (err == 0). While it cannot, the data plane keeps
 * the last state applied: a directory that is gone says nothing about the
 * deployments, unlike an empty one. The error counts as a config error
 * (metrics, status) and is counted in the total once per outage.
 */
static void set_dir_error(struct ferryd *d, int err)
{
	bool was = d->dir_error[0];

	if (!err) {
		if (was)
			pr_info("--config-dir %s: readable again", d->opts.config_dir);
		d->dir_error[0] = '\0';
		return;
	}
	snprintf(d->dir_error, sizeof(d->dir_error),
		 "--config-dir %s: %s; the last state applied stays in force until a directory "
		 "is there again (created or renamed into place), then it is read whole",
		 d->opts.config_dir, strerror(-err));
	pr_err("%s", d->dir_error);
	pthread_mutex_lock(&d->lock);
	d->config_errors = d->nseen_errors + 1;
	if (!was)
		d->config_errors_total++;
	pthread_mutex_unlock(&d->lock);
	write_status(d, NULL);
}

/*
 * Watches what --config-dir names now (inotify follows an inode; the path may
 * name another directory since: renamed away, removed, swapped). The next
 * load reads the whole directory. A missing directory is left to the load,
 * which reports it; the parent's watch says when it is back.
 */
static void watch_config_dir(struct ferryd *d)
{
	int wd;

	d->dir_replaced = false;
	d->reload_all = true;
	wd = inotify_add_watch(d->inotify_fd, d->opts.config_dir, CONFIG_DIR_EVENTS | IN_ONLYDIR);
	/* The same inode gives the same wd back; another one's events stop counting. */
	if (d->dir_wd >= 0 && wd != d->dir_wd)
		inotify_rm_watch(d->inotify_fd, d->dir_wd);
	d->dir_wd = wd;
	if (wd < 0)
		pr_debug("--config-dir %s: cannot watch: %s", d->opts.config_dir, strerror(errno));
}

/*
 * The files inotify named, else the whole directory (the first load, SIGHUP,
 * a name that may stand for many files). Returns the store's load result;
 * *partial: only the named files were read, so the model may be updated
 * rather than built again.
 */
static int load_config(struct ferryd *d, bool *partial)
{
	int rc = -EAGAIN;

	*partial = false;
	if (!d->reload_all)
		rc = ferry_config_store__load_files(d->store, d->opts.config_dir,
						    (const char *const *)d->edited, d->nedited);
	if (rc == -EAGAIN) {
		/* See exec_with_huge_pages(): glibc's default is 128 KB. */
		mallopt(M_TOP_PAD, 64 << 20);
		rc = ferry_config_store__load_dir(d->store, d->opts.config_dir);
		mallopt(M_TOP_PAD, 128 << 10);
	} else
		*partial = rc >= 0;
	if (rc >= 0) {
		d->reload_all = false;
		edited_clear(d);
	}
	return rc;
}

static int resync(struct ferryd *d)
{
	struct ferry_sync_result res = {};
	struct ferry_model model = {}, *want = &model;
	struct timespec t0, tm, t1;
	size_t i, nerr, nnew = 0;
	bool partial = false;
	char **seen;
	int err = -EAGAIN, rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&d->store_lock);
	if (d->opts.config_dir) {
		rc = load_config(d, &partial);
		if (rc < 0) {
			pthread_mutex_unlock(&d->store_lock);
			set_dir_error(d, rc);
			return rc;
		}
		set_dir_error(d, 0);
	}
	/* After an edit, the last model updated for the deployments it touches. */
	if (partial) {
		err = ferry_config_store__build_update(d->store, &d->model);
		if (!err)
			want = &d->model;
	}
	if (err)
		err = ferry_config_store__build(d->store, &model);
	if (err) {
		pthread_mutex_unlock(&d->store_lock);
		pr_err("cannot build the desired state: %s; the data plane keeps its current state",
		       strerror(-err));
		return err;
	}
	nerr = ferry_config_store__nerrors(d->store);
	seen = calloc(nerr ? nerr : 1, sizeof(*seen));
	for (i = 0; i < nerr; i++) {
		const struct ferry_config_error *e = ferry_config_store__error(d->store, i);
		char line[2048];

		ferry_config_error__format(e, line, sizeof(line));
		pr_err("%s", line);
		report_k8s_error(d, e);
		if (!error_seen(d, line))
			nnew++;
		if (seen)
			seen[i] = strdup(line);
	}
	report_k8s_waiting(d);
	pthread_mutex_unlock(&d->store_lock);
	free_seen_errors(d);
	if (seen) {
		d->seen_errors = seen;
		d->nseen_errors = nerr;
	}
	clock_gettime(CLOCK_MONOTONIC, &tm);
	err = ferry_sync__apply(d->sync, want, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (want == &model) {
		ferry_model__free(&d->model);
		d->model = model;
	}
	if (d->rebal) {
		ferry_rebal__clear_policies(d->rebal);
		for (i = 0; i < d->model.nservices; i++)
			ferry_rebal__set_policy(d->rebal, &d->model.services[i].vip,
						d->model.services[i].rebalance_off,
						d->model.services[i].rebalance_window_ns);
	}

	pthread_mutex_lock(&d->lock);
	d->config_errors = nerr + (d->dir_error[0] ? 1 : 0);
	d->config_errors_total += nnew;
	pthread_mutex_unlock(&d->lock);
	collect_no_ready(d);
	/* An edit that adds no backend adds no route (route changes come by netlink). */
	if (!partial || res.backends_added)
		attach_reply_auto(d);
	canary_sync(d);
	write_status(d, &res);
	pr_info("sync: %zu services, %zu tables swapped, +%zu/-%zu backends, %zu flows purged, "
		"%zu manifest errors, %zu apply errors in %.1f ms (manifests %.1f, kernel %.1f)",
		res.services, res.tables_swapped, res.backends_added, res.backends_removed,
		res.flows_purged, nerr, res.errors,
		(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
		(tm.tv_sec - t0.tv_sec) * 1e3 + (tm.tv_nsec - t0.tv_nsec) / 1e6,
		(t1.tv_sec - tm.tv_sec) * 1e3 + (t1.tv_nsec - tm.tv_nsec) / 1e6);
	if (err)
		return err;
	return nerr ? 1 : 0;
}

/* ------------------------------------------------------------ metrics */

static int produce_metrics(void *ctx, enum ferry_metrics_format format, char **buf, size_t *len)
{
	struct ferryd *d = ctx;
	struct ferry_metrics_opts opts = {
		.version = FERRY_VERSION,
		.buckets = d->opts.buckets.n ? &d->opts.buckets : NULL,
		.no_backend_histograms = d->opts.no_backend_histograms,
	};
	struct ferry_snapshot *snap;
	bool live;
	int err;

	pthread_mutex_lock(&d->lock);
	live = d->metrics_live;
	pthread_mutex_unlock(&d->lock);
	if (!live)
		return -EAGAIN;
	snap = ferry_snapshot__read(d->opts.pin_path);
	if (!snap)
		return -errno;
	pthread_mutex_lock(&d->lock);
	opts.config_errors = d->config_errors;
	opts.config_errors_total = d->config_errors_total;
	opts.no_ready_predictors = d->no_ready;
	opts.nno_ready_predictors = d->nno_ready;
	opts.rebalance = d->rebal ? &d->rebal_stats : NULL;
	opts.flow_gc = d->flow_gc_ran ? &d->flow_gc : NULL;
	opts.canary = d->canary_rows;
	opts.ncanary = d->ncanary_rows;
	err = ferry_metrics__render_format(snap, &opts, format, buf, len);
	pthread_mutex_unlock(&d->lock);
	ferry_snapshot__free(snap);
	return err;
}

/* --------------------------------------------------------------- loop */

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static void arm_ms(int tfd, long ms, bool periodic)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
	};

	if (periodic)
		its.it_interval = its.it_value;
	timerfd_settime(tfd, 0, &its, NULL);
}

static void heartbeat(struct ferryd *d)
{
	struct ferry_config cfg;
	struct timespec now;

	if (ferry_dp__config_read(d->dp, &cfg))
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	cfg.heartbeat_unix_ns = (__u64)now.tv_sec * 1000000000ULL + now.tv_nsec;
	cfg.ferryd_pid = getpid();
	ferry_dp__config_write(d->dp, &cfg);
	ferry_dp__clock_sync(d->dp);
}

/*
 * --config-dir as parent and name, for the parent's watch ("conf/" is conf
 * in "."). No name (/, ., ..): there is no parent to watch for it.
 */
static int split_config_path(struct ferryd *d)
{
	char *path = strdup(d->opts.config_dir), *slash;
	size_t n;

	if (!path)
		return -ENOMEM;
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	slash = strrchr(path, '/');
	if (!slash) {
		d->config_parent = strdup(".");
		d->config_base = strdup(path);
	} else {
		d->config_base = strdup(slash + 1);
		slash[slash == path ? 1 : 0] = '\0';
		d->config_parent = strdup(path);
	}
	free(path);
	if (!d->config_parent || !d->config_base)
		return -ENOMEM;
	if (!*d->config_base || !strcmp(d->config_base, ".") || !strcmp(d->config_base, "..")) {
		free(d->config_base);
		d->config_base = NULL;
	}
	return 0;
}

static int setup_loop(struct ferryd *d)
{
	sigset_t mask;
	int err;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	d->debounce_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	d->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->epfd < 0 || d->inotify_fd < 0 || d->debounce_fd < 0 || d->tick_fd < 0 ||
	    d->signal_fd < 0)
		return -errno;
	/*
	 * Editors save by rename (IN_MOVED_TO), 'kubectl get > file' truncates
	 * then writes (IN_MODIFY ... IN_CLOSE_WRITE): every event re-arms a
	 * short debounce, so a burst is read once, after it ends.
	 */
	if (d->opts.config_dir) {
		d->dir_wd = inotify_add_watch(d->inotify_fd, d->opts.config_dir,
					      CONFIG_DIR_EVENTS | IN_ONLYDIR);
		if (d->dir_wd < 0) {
			err = -errno;
			pr_err("--config-dir %s: cannot watch: %s", d->opts.config_dir,
			       strerror(errno));
			return err;
		}
		err = split_config_path(d);
		if (err)
			return err;
		/* Without it, a directory replaced under its name would go unnoticed. */
		d->parent_wd = d->config_base ? inotify_add_watch(d->inotify_fd, d->config_parent,
								  CONFIG_PARENT_EVENTS) :
						-1;
		if (d->config_base && d->parent_wd < 0)
			pr_warn("--config-dir %s: cannot watch its parent %s (%s): a directory "
				"renamed or created in its place is read on SIGHUP only",
				d->opts.config_dir, d->config_parent, strerror(errno));
	}
	err = epoll_add(d->epfd, d->inotify_fd);
	err = err ?: epoll_add(d->epfd, d->debounce_fd);
	err = err ?: epoll_add(d->epfd, d->tick_fd);
	err = err ?: epoll_add(d->epfd, d->signal_fd);
	if (!err && d->nl)
		err = epoll_add(d->epfd, ferry_nl__fd(d->nl));
	if (!err && d->nl && ferry_nl__xdp_fd(d->nl) >= 0)
		err = epoll_add(d->epfd, ferry_nl__xdp_fd(d->nl));
	if (!err && d->k8s_fd >= 0)
		err = epoll_add(d->epfd, d->k8s_fd);
	arm_ms(d->tick_fd, 1000, true);
	return err;
}

static void drain_fd(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void handle_signal(struct ferryd *d)
{
	struct signalfd_siginfo si;

	while (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			struct ferry_sync *fresh;

			pr_info("SIGHUP: re-reading %s and the pinned state",
				d->opts.config_dir ? d->opts.config_dir : "the manifests");
			fresh = ferry_sync__new(d->dp, &(struct ferry_sync_opts){
							       .table_size = d->opts.table_size });
			if (fresh) {
				ferry_sync__free(d->sync);
				d->sync = fresh;
			}
			d->reload_all = true;
			/* The path as given, whatever happened to the directory it named. */
			if (d->opts.config_dir)
				watch_config_dir(d);
			resync(d);
		} else if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
			/* Their default action is to exit: a stray kill must not end the control plane. */
			pr_info("signal %u (%s) from pid %u: ignored (SIGHUP re-reads, SIGTERM exits)",
				si.ssi_signo, si.ssi_signo == SIGUSR1 ? "SIGUSR1" : "SIGUSR2",
				si.ssi_pid);
		} else {
			pr_info("signal %u: exiting; the data plane stays attached and forwarding",
				si.ssi_signo);
			d->running = false;
		}
	}
}

/* Notes a file inotify named, once; on failure the whole directory is read instead. */
static void edited_add(struct ferryd *d, const char *name)
{
	char **more;

	for (size_t i = 0; i < d->nedited; i++)
		if (!strcmp(d->edited[i], name))
			return;
	more = realloc(d->edited, (d->nedited + 1) * sizeof(*more));
	if (!more) {
		d->reload_all = true;
		return;
	}
	d->edited = more;
	d->edited[d->nedited] = strdup(name);
	if (d->edited[d->nedited])
		d->nedited++;
	else
		d->reload_all = true;
}

enum config_event {
	CONFIG_NONE, /* only hidden files (a writer's temporary file): nothing to read */
	CONFIG_DONE, /* a write finished: read now */
	CONFIG_PARTIAL, /* a write in progress: wait for its close */
	CONFIG_GONE, /* a manifest deleted, the directory replaced: wait DEBOUNCE_GONE_MS */
};

/*
 * Drains inotify, noting the files named. A lost queue or a directory event
 * means every file is read again; so does a name starting with "..", which
 * ConfigMap volumes swap (..data) to replace every file at once. Any other
 * name that is not a manifest's (a writer's temporary file: .x.swp, sedXXXXXX,
 * x.yaml.tmp, x.yaml~) is skipped: a sync for it would find nothing to read
 * and delay the rename that follows it. The directory itself removed or
 * renamed (its own watch), or its name taken by another (the parent's watch),
 * marks it replaced: it is watched and read again by its path once quiet.
 */
static enum config_event read_inotify(struct ferryd *d, int fd)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	enum config_event what = CONFIG_NONE;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			enum config_event now;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				d->reload_all = true;
				what = what == CONFIG_NONE ? CONFIG_DONE : what;
				continue;
			}
			if (d->parent_wd >= 0 && ev->wd == d->parent_wd) {
				/* The parent: only the config directory's own name matters. */
				if (!ev->len || !d->config_base || strcmp(ev->name, d->config_base))
					continue;
				/* Watched at once: files copied into a new one re-arm the wait. */
				if (ev->mask & (IN_CREATE | IN_MOVED_TO))
					watch_config_dir(d);
				d->dir_replaced = true; /* read once it settles: config_changed() */
				what = CONFIG_GONE;
				continue;
			}
			if (ev->wd != d->dir_wd)
				continue; /* a directory no longer watched (renamed away) */
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				d->dir_replaced = true;
				what = CONFIG_GONE;
				continue;
			}
			if ((ev->mask & IN_ISDIR) || !ev->len || !strncmp(ev->name, "..", 2))
				d->reload_all = true;
			else if (!ferry_config__manifest_name(ev->name))
				continue;
			else
				edited_add(d, ev->name);
			if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
				now = CONFIG_DONE;
			else if ((ev->mask & (IN_DELETE | IN_MOVED_FROM)) &&
				 !(ev->mask & IN_ISDIR) && strncmp(ev->name, "..", 2))
				now = CONFIG_GONE; /* a manifest: maybe 'rm -rf' under way */
			else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
				now = CONFIG_DONE; /* a ConfigMap's old ..TIMESTAMP directory */
			else
				now = CONFIG_PARTIAL;
			/* The last event says whether a write is done; a deletion's wait stays. */
			if (what != CONFIG_GONE)
				what = now;
		}
	}
	/* While a replaced directory settles, every event waits with it. */
	if (d->dir_replaced && what != CONFIG_NONE)
		what = CONFIG_GONE;
	return what;
}

static void config_changed(struct ferryd *d)
{
	if (d->dir_replaced)
		watch_config_dir(d);
	resync(d);
	/* Ready once the API's first list has been applied too. */
	if (!d->opts.kubernetes || d->k8s_synced)
		ferry_metrics__set_ready(d->metrics, true);
}

/* Rebalancing's step; the status file is rewritten when its counters moved. */
static void rebalance_tick(struct ferryd *d)
{
	struct ferry_rebal_stats rs;
	struct timespec now;

	if (!d->rebal)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ferry_rebal__tick(d->rebal, (__u64)now.tv_sec * 1000000000ULL + (__u64)now.tv_nsec);
	ferry_rebal__stats(d->rebal, &rs);
	pthread_mutex_lock(&d->lock);
	if (memcmp(&rs, &d->rebal_stats, sizeof(rs))) {
		d->rebal_stats = rs;
		pthread_mutex_unlock(&d->lock);
		write_status(d, NULL);
		return;
	}
	pthread_mutex_unlock(&d->lock);
}

/* One flow GC pass, and what the metrics say of it. */
static void run_flow_gc(struct ferryd *d)
{
	struct ferry_gc_opts gc = gc_opts_of(&d->opts);
	struct ferry_gc_result res;
	struct timespec t0, t1;
	size_t n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	n = ferry_sync__gc_flows(d->sync, &gc, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (n)
		pr_debug("flow gc: %zu idle flows removed", n);
	pthread_mutex_lock(&d->lock);
	for (int t = 0; t < FERRY_FLOW_TABLES; t++) {
		d->flow_gc.entries[t] = res.seen[t];
		d->flow_gc.capacity[t] = res.capacity[t];
		d->flow_gc.removed_total[t] += res.removed[t];
	}
	d->flow_gc.last_pass_seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	d->flow_gc_ran = true;
	pthread_mutex_unlock(&d->lock);
}

static int run_loop(struct ferryd *d)
{
	struct epoll_event evs[8];
	int n, i;

	d->running = true;
	while (d->running) {
		n = epoll_wait(d->epfd, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == d->inotify_fd) {
				enum config_event what = read_inotify(d, fd);

				if (what == CONFIG_GONE) {
					arm_ms(d->debounce_fd, DEBOUNCE_GONE_MS, false);
				} else if (what == CONFIG_PARTIAL) {
					arm_ms(d->debounce_fd, DEBOUNCE_PARTIAL_MS, false);
				} else if (what == CONFIG_DONE) {
					arm_ms(d->debounce_fd, 0, false); /* disarmed */
					drain_fd(d->debounce_fd);
					config_changed(d);
				}
			} else if (fd == d->debounce_fd) {
				drain_fd(fd);
				config_changed(d);
			} else if (fd == d->tick_fd) {
				drain_fd(fd);
				heartbeat(d);
				rebalance_tick(d);
				canary_tick(d);
				if (++d->ticks % GC_EVERY_TICKS == 0)
					run_flow_gc(d);
				if (d->routes_dirty) {
					d->routes_dirty = false;
					ferry_nl__flush_cache(d->nl);
					attach_reply_auto(d);
				}
			} else if (fd == d->signal_fd) {
				handle_signal(d);
			} else if (fd == d->k8s_fd) {
				drain_fd(fd);
				if (d->k8s_failed)
					return -EACCES;
				d->reload_all = true; /* as before: the files are read whole too */
				arm_ms(d->debounce_fd, DEBOUNCE_MS, false);
			} else if (d->nl && fd == ferry_nl__fd(d->nl)) {
				ferry_nl__process(d->nl);
			} else if (d->nl && fd == ferry_nl__xdp_fd(d->nl)) {
				ferry_nl__xdp_process(d->nl);
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------- hash seed */

/*
 * The cluster's hash seed, before the data plane is touched (a wrong file is
 * a start error, not a half-configured node): from --hash-seed-file, else in
 * --kubernetes mode from the Secret (created if missing). Returns 0 with
 * *have false when this node has no cluster seed.
 */
static int load_hash_seed(struct ferryd *d, __u64 *seed, bool *have, char *source, size_t len)
{
	const char *ref = d->opts.hash_seed_secret, *slash = strchr(ref, '/');
	char why[1024], ns[256];
	const char *name = ref;
	void *bytes = NULL;
	size_t nbytes = 0;
	bool created;
	int err;

	*have = false;
	if (d->opts.hash_seed_file) {
		err = ferry_hash_seed__read_file(d->opts.hash_seed_file, seed, why, sizeof(why));
		if (err) {
			pr_err("%s", why);
			return err;
		}
		snprintf(source, len, "--hash-seed-file %s", d->opts.hash_seed_file);
		*have = true;
		return 0;
	}
	if (!d->k8s)
		return 0;
	if (slash) {
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - ref), ref);
		name = slash + 1;
	} else if (ferry_k8s__own_namespace(d->k8s)) {
		snprintf(ns, sizeof(ns), "%s", ferry_k8s__own_namespace(d->k8s));
	} else if (getenv("POD_NAMESPACE") && *getenv("POD_NAMESPACE")) {
		snprintf(ns, sizeof(ns), "%s", getenv("POD_NAMESPACE"));
	} else {
		/* Outside a pod (--kubeconfig): the namespace deploy/kubernetes uses. */
		snprintf(ns, sizeof(ns), "ferry-system");
	}
	err = ferry_k8s__shared_secret(d->k8s, ns, name, FERRYD_HASH_SEED_SECRET_KEY,
				       FERRY_HASH_SEED_NEW_BYTES, &bytes, &nbytes, &created);
	if (err)
		return err;
	*seed = ferry_hash_seed__derive(bytes, nbytes);
	memset(bytes, 0, nbytes);
	free(bytes);
	snprintf(source, len, "Secret %s/%s key %s%s", ns, name, FERRYD_HASH_SEED_SECRET_KEY,
		 created ? " (created by this node with a random seed)" : "");
	*have = true;
	return 0;
}

/*
 * Puts the cluster seed into the data plane. On adopted pins the seed they
 * hold stays only if it is the same; a different one (the file or Secret
 * changed, or the node was node-local before) takes over for new flows.
 */
static int apply_hash_seed(struct ferryd *d, bool have, __u64 seed, const char *source)
{
	__u32 want = ferry_hash_seed__fold32(seed), had;
	int err;

	if (!have) {
		pr_warn("hash seed: node-local (random, kept in the pins across restarts): nodes "
			"that share traffic (ECMP, route changes) pick different backends for the "
			"same connection; give every node the same --hash-seed-file PATH (or run "
			"with --kubernetes, which shares one through a Secret)");
		return 0;
	}
	err = ferry_dp__set_hash_seed(d->dp, want, &had);
	if (err) {
		pr_err("cannot write the hash seed to %s/%s: %s", d->opts.pin_path,
		       FERRY_MAP_CONFIG, strerror(-err));
		return err;
	}
	if (d->dp->created || had == want)
		pr_info("hash seed: the cluster's, from %s%s", source,
			d->dp->created ? "" : " (the same the pinned data plane used)");
	else
		pr_warn("hash seed: the cluster's from %s differs from the one the pinned data "
			"plane used: it applies to new connections from now on; open connections "
			"stay on their backends while their flow state lasts (a flush or eviction "
			"rehashes them with the new seed, and they may move)",
			source);
	return 0;
}

/*
 * glibc's malloc, tuned for a whole-directory load, which parses every
 * manifest and keeps the trees (~400 MB for 10,000 deployments) on two
 * threads. Two tunables, together: alone neither helps (docs/performance.md).
 * - glibc.malloc.hugetlb=1: the heap advised for transparent huge pages and
 *   grown in 2 MB steps, not page by page. glibc reads it once, at exec, so
 *   ferryd execs itself once with it added, before anything is opened; an
 *   environment that names it already (an operator's =0) is kept, and a
 *   failed exec runs untuned.
 * - M_TOP_PAD (mallopt(), set around the load only: load_config()): a new
 *   thread heap made writable whole, not by one mprotect() per page (25,000
 *   of them at 10,000 deployments). Left on, it costs a small node ~30 MB of
 *   resident memory.
 * Together they take the load of 10,000 deployments from ~2 s to ~0.8 s.
 */
static void exec_with_huge_pages(char **argv)
{
	static const char tunable[] = "glibc.malloc.hugetlb=";
	const char *was = getenv("GLIBC_TUNABLES");
	char want[1024];
	int n;

	if (was && strstr(was, tunable))
		return;
	n = snprintf(want, sizeof(want), "%s%s%s1", was ? was : "", was && *was ? ":" : "",
		     tunable);
	if (n < 0 || (size_t)n >= sizeof(want) || setenv("GLIBC_TUNABLES", want, 1))
		return;
	execv("/proc/self/exe", argv);
	if (was)
		setenv("GLIBC_TUNABLES", was, 1);
	else
		unsetenv("GLIBC_TUNABLES");
}

/* libbpf's messages go through our log; its kernel-message echo of an existing clsact is noise. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n;

	if (level == LIBBPF_DEBUG && ferry_log_level < FERRY_LOG_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (strstr(line, "Exclusivity flag on"))
		return 0;
	ferry_log(level == LIBBPF_WARN ? FERRY_LOG_WARN :
		  level == LIBBPF_INFO ? FERRY_LOG_INFO :
					 FERRY_LOG_DEBUG,
		  "libbpf: %s", line);
	return 0;
}

/*
 * Long on purpose: wiring in acquisition order with its goto ladder in reverse;
 * split, each resource would sit apart from its undo.
 */
static int adopt_owner(const struct ferry_svc_meta *meta, void *ctx)
{
	char key[sizeof(meta->deployment) + 1];

	snprintf(key, sizeof(key), "%.*s", (int)sizeof(meta->deployment), meta->deployment);
	return key[0] ? ferry_config_store__adopt_owner(ctx, &meta->vip, key) : 0;
}

int main(int argc, char **argv)
{
	struct ferryd d = { .epfd = -1,
			    .inotify_fd = -1,
			    .dir_wd = -1,
			    .parent_wd = -1,
			    .signal_fd = -1,
			    .debounce_fd = -1,
			    .tick_fd = -1,
			    .k8s_fd = -1,
			    .reload_all = true };
	char seed_source[PATH_MAX + 128] = "";
	bool have_seed = false;
	struct stat st;
	__u64 seed = 0;
	int err, rc = 1;

	sigset_t mask, blocked_only;
	bool fresh_unsynced = false;

	exec_with_huge_pages(argv);
	/*
	 * Blocked before any thread (metrics, Kubernetes) starts, so every thread
	 * inherits the mask and the signals reach only the loop's signalfd.
	 */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	/* Not in the mask --once unblocks: there they stay blocked, i.e. ignored. */
	sigemptyset(&blocked_only);
	sigaddset(&blocked_only, SIGUSR1);
	sigaddset(&blocked_only, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	pthread_sigmask(SIG_BLOCK, &blocked_only, NULL);
	setvbuf(stderr, NULL, _IOLBF, 0);
	libbpf_set_print(libbpf_print);
	pthread_mutex_init(&d.lock, NULL);
	pthread_mutex_init(&d.store_lock, NULL);
	pthread_mutex_init(&d.canary_lock, NULL);
	if (ferryd_opts__parse(argc, argv, &d.opts))
		return 2;
	/* --once starts no thread and no loop: Ctrl-C must simply work (SIGUSR1/2 stay blocked). */
	if (d.opts.once)
		pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	if (d.opts.config_dir && (stat(d.opts.config_dir, &st) || !S_ISDIR(st.st_mode))) {
		pr_err("--config-dir %s: not a directory", d.opts.config_dir);
		return 2;
	}

	if (ferry_caps__check())
		return 1;
	/*
	 * Bound before anything is opened or attached: a port in use is a start
	 * error that leaves no pins behind. /metrics answers 503 until start-up
	 * is done (produce_metrics), where it used to be bound.
	 */
	if (d.opts.metrics_addr && !d.opts.once) {
		d.metrics = ferry_metrics__serve(d.opts.metrics_addr, produce_metrics, &d);
		if (!d.metrics)
			goto out;
	}
	/* The client first: in cluster mode the hash seed comes from the API. */
	if (d.opts.kubernetes) {
		d.k8s_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		d.k8s = ferry_k8s__new(&(struct ferry_k8s_opts){
			.kubeconfig = d.opts.kubeconfig,
			.namespace = d.opts.k8s_namespace,
			.on_upsert = k8s_upsert,
			.on_delete = k8s_delete,
			.on_synced = k8s_synced,
			.on_error = k8s_error,
			.ctx = &d,
		});
		if (d.k8s_fd < 0 || !d.k8s) {
			pr_err("kubernetes: cannot set up the API client: %s", strerror(errno));
			goto out;
		}
	}
	if (load_hash_seed(&d, &seed, &have_seed, seed_source, sizeof(seed_source)))
		goto out;
	d.dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = d.opts.pin_path,
						       .pod_path = d.opts.pod_path,
						       .pods = d.opts.pod_ifaces != NULL });
	if (!d.dp)
		goto out;
	fresh_unsynced = d.dp->created;
	pr_info("data plane at %s (%s), kernel features:%s%s%s%s", d.opts.pin_path,
		d.dp->created ? "created" : "reused: connections continue",
		d.dp->features & FERRY_FEAT_TCX ? " tcx" : " clsact-only",
		d.dp->features & FERRY_FEAT_REDIRECT_NEIGH ? " redirect_neigh" : "",
		d.dp->features & FERRY_FEAT_REDIRECT_PEER ? " redirect_peer" : "",
		d.dp->features & FERRY_FEAT_XDP_META ? " xdp_meta" : "");
	if (apply_hash_seed(&d, have_seed, seed, seed_source))
		goto out;
	{
		struct ferry_config cfg;

		/* What the data plane itself enforces of the flow timeouts and the rate guard. */
		if (!ferry_dp__config_read(d.dp, &cfg)) {
			cfg.udp_timeout_s = d.opts.udp_s;
			cfg.new_flow_rate = d.opts.new_flow_rate;
			ferry_dp__config_write(d.dp, &cfg);
		}
	}
	d.sync =
		ferry_sync__new(d.dp, &(struct ferry_sync_opts){ .table_size = d.opts.table_size });
	/* After the data plane: the iterator shares its pinned maps. Never fatal. */
	if (!d.opts.once) {
		struct ferry_rebal *rebal = ferry_rebal__new(&(struct ferry_rebal_opts){
			.pin_path = d.opts.pin_path, .pod_netns = d.opts.rebalance_pod_netns });

		/* Under the lock: the metrics thread, started already, reads d.rebal. */
		pthread_mutex_lock(&d.lock);
		d.rebal = rebal;
		if (d.rebal)
			ferry_rebal__stats(d.rebal, &d.rebal_stats);
		pthread_mutex_unlock(&d.lock);
	}
	d.store = ferry_config_store__new();
	if (!d.sync || !d.store)
		goto out;
	/*
	 * Who holds each VIP in the data plane now (adopted pins, or those an ABI
	 * migration carried; none on a cold start), so that a contested one stays.
	 */
	if (ferry_sync__for_each_svc(d.sync, adopt_owner, d.store))
		goto out;
	d.canary = ferry_canary_runner__new(
		&(struct ferry_canary_runner_opts){ .pin_path = d.opts.pin_path,
						    .on_transition = canary_event,
						    .ctx = &d,
						    .fresh = d.dp->created });
	if (!d.canary)
		pr_warn("canary analysis unavailable: %s", strerror(errno));
	ferry_config_store__set_seldon(d.store, d.opts.seldon_servers, d.opts.kubernetes);
	d.nl = ferry_nl__new();
	if (!d.nl)
		pr_warn("netlink unavailable (%s): reply interfaces will not follow routes",
			strerror(errno));
	else
		ferry_nl__set_callbacks(
			d.nl,
			&(struct ferry_nl_callbacks){ .on_link = on_link,
						      .on_route_change = on_route_change,
						      .on_xdp_features = on_xdp_features },
			&d);

	err = attach_static(&d);
	if (err)
		goto out;
	attach_tx_ports_auto(&d);
	if (d.opts.pod_ifaces && d.nl)
		ferry_nl__for_each_link(d.nl, attach_existing_pods, &d);
	if (d.opts.host_clients) {
		err = ferry_dp__attach_cgroup(d.dp, d.opts.host_cgroup);
		if (err)
			goto out;
		pr_info("--host-clients: connect() hooks balance this namespace's own clients");
	}

	if (d.opts.kubernetes) {
		err = canary_cluster_setup(&d);
		if (err)
			pr_warn("canary analysis: cannot set up the cluster-wide decision: %s",
				strerror(-err));
	}

	/* From files now; from the API once its first list is complete (k8s_synced). */
	fresh_unsynced = false;
	if (d.opts.config_dir) {
		err = resync(&d);
		if (d.opts.once) {
			heartbeat(&d);
			rc = err ? 1 : 0;
			goto out;
		}
	}
	heartbeat(&d);
	if (d.k8s) {
		err = ferry_k8s__start(d.k8s);
		if (err) {
			pr_err("kubernetes: cannot start the watch: %s", strerror(-err));
			goto out;
		}
	}

	if (d.metrics) {
		pthread_mutex_lock(&d.lock);
		d.metrics_live = true;
		pthread_mutex_unlock(&d.lock);
		pr_info("metrics on http://%s/metrics", d.opts.metrics_addr);
		if (d.canary)
			ferry_metrics__set_window_handler(d.metrics, canary_window, &d);
		/* The directory was applied above; the Kubernetes source is not yet. */
		if (!d.opts.kubernetes)
			ferry_metrics__set_ready(d.metrics, true);
	}
	err = setup_loop(&d);
	if (err) {
		pr_err("cannot set up the event loop: %s", strerror(-err));
		goto out;
	}
	pr_info("watching %s", d.opts.config_dir ? d.opts.config_dir : "the Kubernetes API");
	rc = run_loop(&d) ? 1 : 0;
out:
	if (d.k8s)
		ferry_k8s__stop(d.k8s);
	ferry_k8s__free(d.k8s);
	ferry_metrics__stop(d.metrics);
	ferry_nl__free(d.nl);
	ferry_config_store__free(d.store);
	ferry_rebal__free(d.rebal);
	ferry_canary_runner__free(d.canary);
	ferry_canary_cluster__free(d.cluster);
	free(d.canary_rows);
	ferry_sync__free(d.sync);
	ferry_dp__close(d.dp);
	/*
	 * A start that failed before its first sync on pins it created itself
	 * takes them away again; adopted pins stay (they carry live connections).
	 */
	if (fresh_unsynced) {
		pr_info("start-up failed: removing the pins at %s this run created",
			d.opts.pin_path);
		ferry_dp__reset(d.opts.pin_path);
	}
	ferry_model__free(&d.model);
	edited_clear(&d);
	free(d.config_parent);
	free(d.config_base);
	free(d.no_ready);
	free_seen_errors(&d);
	ferry_hist__buckets_free(&d.opts.buckets);
	ferry_seldon_servers__free(d.opts.seldon_servers);
	return rc;
}
