// SPDX-License-Identifier: GPL-2.0-only
/*
 * Prometheus text format 0.0.4 for a ferry snapshot (metrics_server.c serves
 * it over HTTP). Every series is keyed by deployment, predictor, backend or
 * VIP; nothing is keyed by a client address, so cardinality follows the
 * configuration, not the traffic. The per-service, per-predictor and
 * per-backend families are the table `families[]`: a new metric is one entry.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "telemetry/metrics.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

/* ---------------------------------------------------------------- labels */

/* Writes v as a label value: backslash, double quote and newline escaped. */
static void put_escaped(FILE *f, const char *v)
{
	for (; *v; v++) {
		switch (*v) {
		case '\\':
			fputs("\\\\", f);
			break;
		case '"':
			fputs("\\\"", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		default:
			fputc(*v, f);
		}
	}
}

static void put_label(FILE *f, bool *first, const char *name, const char *value)
{
	fprintf(f, "%s%s=\"", *first ? "" : ",", name);
	put_escaped(f, value);
	fputc('"', f);
	*first = false;
}

/* Builds "namespace=...,deployment_name=...,vip=..." for a service (may be NULL). */
static char *service_labels(const struct ferry_snap_service *s)
{
	char ns[FERRY_NAME_LEN] = "", vip[FERRY_ADDR_STRLEN] = "", *buf = NULL;
	const char *name = "", *slash;
	bool first = true;
	size_t len;
	FILE *f;

	if (s) {
		slash = strchr(s->deployment, '/');
		if (slash) {
			snprintf(ns, sizeof(ns), "%.*s", (int)(slash - s->deployment),
				 s->deployment);
			name = slash + 1;
		} else {
			name = s->deployment;
		}
		ferry_addr__format(s->vip.addr, s->vip.port, s->vip.family, vip, sizeof(vip));
	}
	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	put_label(f, &first, "namespace", ns);
	put_label(f, &first, "deployment_name", name);
	put_label(f, &first, "vip", vip);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static char *append_label(const char *base, const char *name, const char *value)
{
	char *buf = NULL;
	bool first = !base[0];
	size_t len;
	FILE *f;

	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs(base, f);
	put_label(f, &first, name, value);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ------------------------------------------------------------- families */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_le(char *buf, size_t len, double le)
{
	/* %.15g: 0.1 prints as "0.1", not as its binary approximation */
	snprintf(buf, len, "%.15g", le);
}

static const struct ferry_hist zero_hist;

static void put_hist(FILE *f, const char *name, const char *labels, const struct ferry_hist *h,
		     const struct ferry_hist_buckets *b, __u64 *cum)
{
	char le[32];
	__u64 total;

	if (!h)
		h = &zero_hist;
	ferry_hist__rebucket(h, b, cum, &total);
	for (size_t k = 0; k < b->n; k++) {
		put_le(le, sizeof(le), b->le[k]);
		fprintf(f, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le,
			(unsigned long long)cum[k]);
	}
	fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)total);
	fprintf(f, "%s_sum{%s} %.17g\n", name, labels, (double)h->sum_ns / 1e9);
	/* the bucket total, not h->count: Prometheus wants _count == +Inf bucket */
	fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)total);
}

static const char *const http_class_names[FERRY_HTTP_CLASSES] = {
	[FERRY_HTTP_1XX] = "1xx", [FERRY_HTTP_2XX] = "2xx", [FERRY_HTTP_3XX] = "3xx",
	[FERRY_HTTP_4XX] = "4xx", [FERRY_HTTP_5XX] = "5xx", [FERRY_HTTP_UNKNOWN] = "unknown",
};

static double ppm_ratio(__u32 ppm)
{
	return (double)ppm / FERRY_WEIGHT_ONE;
}

struct render_ctx {
	FILE *f;
	const struct ferry_snapshot *snap;
	const struct ferry_metrics_opts *opts;
	const struct ferry_hist_buckets *buckets;
	__u64 *cum;
	char **svc_labels; /* per service */
	char **pred_labels; /* per predictor: service labels + predictor_name */
	char **be_labels; /* per backend: predictor labels + backend */
	__u32 (*be_states)[3]; /* per predictor: ready, draining, unready */
};

static void render_node(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;
	const struct ferry_metrics_opts *o = c->opts;
	FILE *f = c->f;
	bool first;

	family(f, "ferry_build_info", "gauge", "Ferry build; the value is always 1.");
	fputs("ferry_build_info{", f);
	first = true;
	put_label(f, &first, "version", o->version ? o->version : FERRY_VERSION);
	fprintf(f, ",abi=\"%d\"} 1\n", FERRY_ABI_VERSION);

	family(f, "ferry_config_errors", "gauge",
	       "Manifests ferryd rejects in its current configuration.");
	fprintf(f, "ferry_config_errors %u\n", o->config_errors);
	family(f, "ferry_config_errors_total", "counter",
	       "Manifest rejections since ferryd started.");
	fprintf(f, "ferry_config_errors_total %llu\n", (unsigned long long)o->config_errors_total);

	if (snap->has_config) {
		family(f, "ferry_last_sync_timestamp_seconds", "gauge",
		       "Wall-clock time of the last successful map sync.");
		fprintf(f, "ferry_last_sync_timestamp_seconds %.9f\n",
			(double)snap->config.sync_unix_ns / 1e9);
		family(f, "ferry_heartbeat_timestamp_seconds", "gauge",
		       "Wall-clock time ferryd last marked itself alive in the maps.");
		fprintf(f, "ferry_heartbeat_timestamp_seconds %.9f\n",
			(double)snap->config.heartbeat_unix_ns / 1e9);
		family(f, "ferry_sync_generation", "gauge",
		       "Number of successful map syncs (bumped by each).");
		fprintf(f, "ferry_sync_generation %llu\n",
			(unsigned long long)snap->config.generation);
	}

	family(f, "ferry_program_attached", "gauge",
	       "1 for each ferry program attached to an interface, by hook and attach mode.");
	for (size_t i = 0; i < snap->nlinks; i++) {
		const struct ferry_link *l = &snap->links[i].link;
		const char *tc_mode = (l->hooks & FERRY_LINK_TCX) ? "tcx" : "tc";
		static const struct {
			__u32 bit;
			const char *hook;
			bool tc;
			const char *mode;
		} hooks[] = {
			{ FERRY_LINK_XDP_NATIVE, "xdp", false, "native" },
			{ FERRY_LINK_XDP_GENERIC, "xdp", false, "generic" },
			{ FERRY_LINK_TC_FWD, "tc_forward", true, NULL },
			{ FERRY_LINK_TC_REPLY_IN, "tc_reply_ingress", true, NULL },
			{ FERRY_LINK_TC_REPLY_EG, "tc_reply_egress", true, NULL },
		};

		for (size_t h = 0; h < sizeof(hooks) / sizeof(hooks[0]); h++) {
			if (!(l->hooks & hooks[h].bit))
				continue;
			fputs("ferry_program_attached{", f);
			first = true;
			put_label(f, &first, "ifname", l->ifname);
			put_label(f, &first, "hook", hooks[h].hook);
			put_label(f, &first, "mode", hooks[h].tc ? tc_mode : hooks[h].mode);
			fputs("} 1\n", f);
		}
	}

	family(f, "ferry_drops_total", "counter",
	       "Packets the data plane dropped, by reason (node-wide).");
	for (unsigned int i = 0; i < FERRY_CTR_MAX; i++)
		if (ferry_counter__is_drop(i))
			fprintf(f, "ferry_drops_total{reason=\"%s\"} %llu\n",
				ferry_counter__name(i), (unsigned long long)snap->counters[i]);
	family(f, "ferry_datapath_events_total", "counter",
	       "Data plane events that are not drops, by event (node-wide).");
	for (unsigned int i = 0; i < FERRY_CTR_MAX; i++)
		if (!ferry_counter__is_drop(i))
			fprintf(f, "ferry_datapath_events_total{event=\"%s\"} %llu\n",
				ferry_counter__name(i), (unsigned long long)snap->counters[i]);
}

static bool no_ready(const struct ferry_metrics_opts *o, __u32 id)
{
	for (size_t i = 0; i < o->nno_ready_predictors; i++)
		if (o->no_ready_predictors[i] == id)
			return true;
	return false;
}

/*
 * The per-service, per-predictor and per-backend families, described once.
 *
 * A family is one entry: name, type, help, which rows it has (scope: the
 * row's labels are built once per render in build_labels), an optional extra
 * label with a fixed list of values (direction, class, state), and how to
 * read a value from the snapshot. Nothing here is text-format specific:
 * render_family() writes the Prometheus text format from it, and another
 * writer (protobuf, native histograms) would walk the same table. A new label
 * on every row of a scope (protocol) is one change in service_labels().
 */
enum family_scope { SCOPE_SERVICE, SCOPE_PREDICTOR, SCOPE_BACKEND };

/* How a sample prints: an integer ("%llu"), or a 0..1 ratio ("%.6f"). */
enum value_kind { VALUE_INT, VALUE_RATIO };

struct metric_family {
	const char *name;
	const char *type; /* "gauge", "counter" or "histogram" */
	const char *help;
	enum family_scope scope;
	const char *label; /* extra label, or NULL */
	const char *const *label_values; /* its values, in output order */
	size_t nlabel_values;
	enum value_kind kind;
	/* the sample of row i for extra label value k (k is 0 without a label) */
	double (*ratio)(const struct render_ctx *c, size_t i);
	__u64 (*value)(const struct render_ctx *c, size_t i, size_t k);
	/* histograms: the histogram of row i; NULL prints an empty one */
	const struct ferry_hist *(*hist)(const struct render_ctx *c, size_t i);
	/* NULL: every row has a sample; else rows where it returns false have none */
	bool (*present)(const struct render_ctx *c, size_t i);
	/* NULL: always rendered; else the whole family is left out when false */
	bool (*enabled)(const struct render_ctx *c);
};

#define PRED(i) (&c->snap->predictors[i])
#define SVC(i) (&c->snap->services[i])
#define BE(i) (&c->snap->backends[i])

static __u64 svc_table_generation(const struct render_ctx *c, size_t i, size_t k)
{
	return SVC(i)->table_generation;
}

static __u64 svc_no_backend(const struct render_ctx *c, size_t i, size_t k)
{
	return SVC(i)->stats.no_backend;
}

static __u64 svc_fragments(const struct render_ctx *c, size_t i, size_t k)
{
	return SVC(i)->stats.fragments;
}

static double pred_weight_configured(const struct render_ctx *c, size_t i)
{
	return ppm_ratio(PRED(i)->weight_configured);
}

static double pred_weight_effective(const struct render_ctx *c, size_t i)
{
	return ppm_ratio(PRED(i)->weight_effective);
}

static double pred_weight_override(const struct render_ctx *c, size_t i)
{
	return ppm_ratio(PRED(i)->weight_override);
}

static bool pred_override_on(const struct render_ctx *c, size_t i)
{
	return PRED(i)->flags & FERRY_PRED_F_OVERRIDE;
}

static __u64 pred_override_active(const struct render_ctx *c, size_t i, size_t k)
{
	return pred_override_on(c, i);
}

static __u64 pred_shadow(const struct render_ctx *c, size_t i, size_t k)
{
	return !!(PRED(i)->flags & FERRY_PRED_F_SHADOW);
}

static __u64 pred_no_ready(const struct render_ctx *c, size_t i, size_t k)
{
	return no_ready(c->opts, PRED(i)->id);
}

static const char *const backend_states[3] = { "ready", "draining", "unready" };

static __u64 pred_backends(const struct render_ctx *c, size_t i, size_t k)
{
	return c->be_states[i][k];
}

static __u64 pred_new_flows(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.new_flows;
}

static const char *const directions[2] = { "forward", "reply" };

static __u64 pred_packets(const struct render_ctx *c, size_t i, size_t k)
{
	return k ? PRED(i)->stats.rev_packets : PRED(i)->stats.fwd_packets;
}

static __u64 pred_bytes(const struct render_ctx *c, size_t i, size_t k)
{
	return k ? PRED(i)->stats.rev_bytes : PRED(i)->stats.fwd_bytes;
}

static __u64 pred_resets(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.resets;
}

static __u64 pred_syn_timeouts(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.syn_timeouts;
}

static __u64 pred_flow_misses(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.flow_misses;
}

static __u64 pred_http(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.http[k];
}

static const struct ferry_hist *pred_request_hist(const struct render_ctx *c, size_t i)
{
	return ferry_snapshot__hist(c->snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, PRED(i)->id);
}

static const struct ferry_hist *pred_connect_hist(const struct render_ctx *c, size_t i)
{
	return ferry_snapshot__hist(c->snap, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT, PRED(i)->id);
}

static __u64 be_new_flows(const struct render_ctx *c, size_t i, size_t k)
{
	return BE(i)->stats.new_flows;
}

static __u64 be_http(const struct render_ctx *c, size_t i, size_t k)
{
	return BE(i)->stats.http[k];
}

static bool be_histograms(const struct render_ctx *c)
{
	return !c->opts->no_backend_histograms;
}

static const struct ferry_hist *be_request_hist(const struct render_ctx *c, size_t i)
{
	return ferry_snapshot__hist(c->snap, FERRY_HIST_BACKEND, FERRY_LAT_REQUEST, BE(i)->id);
}

static bool be_has_request_hist(const struct render_ctx *c, size_t i)
{
	return be_request_hist(c, i);
}

static const struct ferry_hist *be_connect_hist(const struct render_ctx *c, size_t i)
{
	return ferry_snapshot__hist(c->snap, FERRY_HIST_BACKEND, FERRY_LAT_CONNECT, BE(i)->id);
}

static bool be_has_connect_hist(const struct render_ctx *c, size_t i)
{
	return be_connect_hist(c, i);
}

#define LABEL(name, values) \
	.label = name, .label_values = values, .nlabel_values = sizeof(values) / sizeof(values[0])

/* In output order; docs/metrics.md describes each family for users. */
static const struct metric_family families[] = {
	{ "ferry_table_generation", "gauge",
	  "Lookup-table swaps of a service since it was created.", SCOPE_SERVICE,
	  .value = svc_table_generation },
	{ "ferry_service_no_backend_drops_total", "counter",
	  "Packets to a VIP dropped because its table had no backend.", SCOPE_SERVICE,
	  .value = svc_no_backend },
	{ "ferry_service_fragment_drops_total", "counter",
	  "IP fragments to a VIP address, dropped (ferry cannot route them by port).",
	  SCOPE_SERVICE, .value = svc_fragments },

	{ "ferry_predictor_weight_configured", "gauge",
	  "Share of new connections the manifest asks for (0..1).", SCOPE_PREDICTOR,
	  .kind = VALUE_RATIO, .ratio = pred_weight_configured },
	{ "ferry_predictor_weight_effective", "gauge",
	  "Share of new connections the lookup table gives (0..1), after moving the "
	  "share of predictors with no ready backend and any override.",
	  SCOPE_PREDICTOR, .kind = VALUE_RATIO, .ratio = pred_weight_effective },
	{ "ferry_predictor_weight_override_active", "gauge",
	  "1 while a ferryctl weight override is in force for the predictor.", SCOPE_PREDICTOR,
	  .value = pred_override_active },
	{ "ferry_predictor_weight_override", "gauge",
	  "The ferryctl override weight (0..1); present only while it is in force.",
	  SCOPE_PREDICTOR, .kind = VALUE_RATIO, .ratio = pred_weight_override,
	  .present = pred_override_on },
	{ "ferry_predictor_shadow", "gauge",
	  "1 for a shadow predictor: accepted but never routed to.", SCOPE_PREDICTOR,
	  .value = pred_shadow },
	{ "ferry_predictor_no_ready_backend", "gauge",
	  "1 when ferryd sees no ready backend for the predictor (its share moved).",
	  SCOPE_PREDICTOR, .value = pred_no_ready },
	{ "ferry_backends", "gauge", "Backends of a predictor, by state.", SCOPE_PREDICTOR,
	  LABEL("state", backend_states), .value = pred_backends },

	{ "ferry_new_connections_total", "counter",
	  "Connections (flows) ferry placed on the predictor's backends.", SCOPE_PREDICTOR,
	  .value = pred_new_flows },
	{ "ferry_packets_total", "counter",
	  "Packets translated, forward (client to backend) and reply.", SCOPE_PREDICTOR,
	  LABEL("direction", directions), .value = pred_packets },
	{ "ferry_bytes_total", "counter", "Bytes translated (IP packet length), forward and reply.",
	  SCOPE_PREDICTOR, LABEL("direction", directions), .value = pred_bytes },
	{ "ferry_backend_resets_total", "counter", "TCP resets sent by the predictor's backends.",
	  SCOPE_PREDICTOR, .value = pred_resets },
	{ "ferry_syn_timeouts_total", "counter",
	  "Connection attempts whose SYN was retransmitted before any SYN-ACK came back.",
	  SCOPE_PREDICTOR, .value = pred_syn_timeouts },
	{ "ferry_flow_misses_total", "counter",
	  "TCP packets with no flow entry that were hashed to a backend again.", SCOPE_PREDICTOR,
	  .value = pred_flow_misses },
	{ "ferry_http_responses_total", "counter",
	  "Responses by HTTP status class seen in clear-text HTTP/1.x replies "
	  "(unknown: TLS, HTTP/2, gRPC, or not parsable).",
	  SCOPE_PREDICTOR, LABEL("class", http_class_names), .value = pred_http },

	{ "ferry_request_duration_seconds", "histogram",
	  "Sampled time from a request's first byte to the response's first byte.", SCOPE_PREDICTOR,
	  .hist = pred_request_hist },
	{ "ferry_connect_duration_seconds", "histogram",
	  "Sampled time from a client's SYN to the backend's SYN-ACK.", SCOPE_PREDICTOR,
	  .hist = pred_connect_hist },

	{ "ferry_backend_new_connections_total", "counter",
	  "Connections ferry placed on the backend.", SCOPE_BACKEND, .value = be_new_flows },
	{ "ferry_backend_http_responses_total", "counter",
	  "Responses by HTTP status class from the backend (see ferry_http_responses_total).",
	  SCOPE_BACKEND, LABEL("class", http_class_names), .value = be_http },
	{ "ferry_backend_request_duration_seconds", "histogram",
	  "Sampled request latency per backend (see ferry_request_duration_seconds).",
	  SCOPE_BACKEND, .hist = be_request_hist, .present = be_has_request_hist,
	  .enabled = be_histograms },
	{ "ferry_backend_connect_duration_seconds", "histogram",
	  "Sampled connect latency per backend (see ferry_connect_duration_seconds).",
	  SCOPE_BACKEND, .hist = be_connect_hist, .present = be_has_connect_hist,
	  .enabled = be_histograms },
};

#undef LABEL
#undef PRED
#undef SVC
#undef BE

/* One family in the Prometheus text format. */
static void render_family(struct render_ctx *c, const struct metric_family *m)
{
	const struct ferry_snapshot *snap = c->snap;
	size_t nrows = m->scope == SCOPE_SERVICE   ? snap->nservices :
		       m->scope == SCOPE_PREDICTOR ? snap->npredictors :
						     snap->nbackends;
	char **labels = m->scope == SCOPE_SERVICE   ? c->svc_labels :
			m->scope == SCOPE_PREDICTOR ? c->pred_labels :
						      c->be_labels;
	size_t nk = m->label ? m->nlabel_values : 1;
	FILE *f = c->f;

	if (m->enabled && !m->enabled(c))
		return;
	family(f, m->name, m->type, m->help);
	for (size_t i = 0; i < nrows; i++) {
		if (m->present && !m->present(c, i))
			continue;
		if (m->hist) {
			put_hist(f, m->name, labels[i], m->hist(c, i), c->buckets, c->cum);
			continue;
		}
		for (size_t k = 0; k < nk; k++) {
			fprintf(f, "%s{%s", m->name, labels[i]);
			if (m->label)
				fprintf(f, ",%s=\"%s\"", m->label, m->label_values[k]);
			if (m->kind == VALUE_RATIO)
				fprintf(f, "} %.6f\n", m->ratio(c, i));
			else
				fprintf(f, "} %llu\n", (unsigned long long)m->value(c, i, k));
		}
	}
}

static void free_labels(char **labels, size_t n)
{
	if (!labels)
		return;
	for (size_t i = 0; i < n; i++)
		free(labels[i]);
	free(labels);
}

/* Label strings for every service, predictor and backend, built once per render. */
static int build_labels(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;
	char *empty;

	c->svc_labels = calloc(snap->nservices + 1, sizeof(char *));
	c->pred_labels = calloc(snap->npredictors + 1, sizeof(char *));
	c->be_labels = calloc(snap->nbackends + 1, sizeof(char *));
	c->be_states = calloc(snap->npredictors + 1, sizeof(*c->be_states));
	if (!c->svc_labels || !c->pred_labels || !c->be_labels || !c->be_states)
		return -ENOMEM;
	for (size_t i = 0; i < snap->nservices; i++) {
		c->svc_labels[i] = service_labels(&snap->services[i]);
		if (!c->svc_labels[i])
			return -ENOMEM;
	}
	for (size_t i = 0; i < snap->npredictors; i++) {
		const struct ferry_snap_predictor *p = &snap->predictors[i];
		const struct ferry_snap_service *s = ferry_snapshot__service(snap, p->svc_id);

		empty = service_labels(s);
		if (!empty)
			return -ENOMEM;
		c->pred_labels[i] = append_label(empty, "predictor_name", p->name);
		free(empty);
		if (!c->pred_labels[i])
			return -ENOMEM;
	}
	for (size_t i = 0; i < snap->nbackends; i++) {
		const struct ferry_snap_backend *b = &snap->backends[i];
		const struct ferry_snap_predictor *p =
			ferry_snapshot__predictor(snap, b->backend.predictor_id);
		char addr[FERRY_ADDR_STRLEN], *base;

		ferry_addr__format(b->backend.addr, b->backend.port, b->backend.family, addr,
				   sizeof(addr));
		if (p) {
			size_t pi = p - snap->predictors;

			base = c->pred_labels[pi];
			if (b->backend.state == FERRY_BE_ACTIVE)
				c->be_states[pi][0]++;
			else if (b->backend.state == FERRY_BE_DRAINING)
				c->be_states[pi][1]++;
			else
				c->be_states[pi][2]++;
			c->be_labels[i] = append_label(base, "backend", addr);
		} else {
			/* a backend whose predictor metadata is missing: keep its service */
			empty = service_labels(ferry_snapshot__service(snap, b->backend.svc_id));
			if (!empty)
				return -ENOMEM;
			base = append_label(empty, "predictor_name", "");
			free(empty);
			if (!base)
				return -ENOMEM;
			c->be_labels[i] = append_label(base, "backend", addr);
			free(base);
		}
		if (!c->be_labels[i])
			return -ENOMEM;
	}
	return 0;
}

int ferry_metrics__render(const struct ferry_snapshot *snap, const struct ferry_metrics_opts *opts,
			  char **buf, size_t *len)
{
	static const struct ferry_metrics_opts no_opts;
	struct render_ctx c = { .snap = snap, .opts = opts ? opts : &no_opts };
	int err;

	*buf = NULL;
	*len = 0;
	c.buckets = c.opts->buckets ? c.opts->buckets : ferry_hist__default_buckets();
	c.cum = calloc(c.buckets->n + 1, sizeof(*c.cum));
	if (!c.cum)
		return -ENOMEM;
	err = build_labels(&c);
	if (err)
		goto out_free_labels;
	c.f = open_memstream(buf, len);
	if (!c.f) {
		err = -errno;
		goto out_free_labels;
	}
	render_node(&c);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		render_family(&c, &families[i]);
	if (ferror(c.f))
		err = -ENOMEM;
	if (fclose(c.f) && !err)
		err = -ENOMEM;
	if (err) {
		free(*buf);
		*buf = NULL;
		*len = 0;
	}
out_free_labels:
	free_labels(c.svc_labels, snap->nservices);
	free_labels(c.pred_labels, snap->npredictors);
	free_labels(c.be_labels, snap->nbackends);
	free(c.be_states);
	free(c.cum);
	return err;
}

int ferry_metrics__produce(void *source, char **buf, size_t *len)
{
	struct ferry_metrics_source *src = source;
	struct ferry_snapshot *snap;
	int err;

	snap = ferry_snapshot__read(src->pin_path);
	if (!snap)
		return -errno;
	if (src->lock)
		pthread_mutex_lock(src->lock);
	err = ferry_metrics__render(snap, &src->opts, buf, len);
	if (src->lock)
		pthread_mutex_unlock(src->lock);
	ferry_snapshot__free(snap);
	return err;
}
