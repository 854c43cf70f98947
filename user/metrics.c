// SPDX-License-Identifier: GPL-2.0-only
/*
 * Prometheus text format 0.0.4 for a ferry snapshot, and the HTTP endpoint
 * that serves it. Every series is keyed by deployment, predictor, backend or
 * VIP; nothing is keyed by a client address, so cardinality follows the
 * configuration, not the traffic.
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
#include "metrics.h"

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

static void render_services(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;
	FILE *f = c->f;

	family(f, "ferry_table_generation", "gauge",
	       "Lookup-table swaps of a service since it was created.");
	for (size_t i = 0; i < snap->nservices; i++)
		fprintf(f, "ferry_table_generation{%s} %llu\n", c->svc_labels[i],
			(unsigned long long)snap->services[i].table_generation);
	family(f, "ferry_service_no_backend_drops_total", "counter",
	       "Packets to a VIP dropped because its table had no backend.");
	for (size_t i = 0; i < snap->nservices; i++)
		fprintf(f, "ferry_service_no_backend_drops_total{%s} %llu\n", c->svc_labels[i],
			(unsigned long long)snap->services[i].stats.no_backend);
	family(f, "ferry_service_fragment_drops_total", "counter",
	       "IP fragments to a VIP address, dropped (ferry cannot route them by port).");
	for (size_t i = 0; i < snap->nservices; i++)
		fprintf(f, "ferry_service_fragment_drops_total{%s} %llu\n", c->svc_labels[i],
			(unsigned long long)snap->services[i].stats.fragments);
}

static bool no_ready(const struct ferry_metrics_opts *o, __u32 id)
{
	for (size_t i = 0; i < o->nno_ready_predictors; i++)
		if (o->no_ready_predictors[i] == id)
			return true;
	return false;
}

static void render_predictors(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;
	const struct ferry_snap_predictor *p = snap->predictors;
	static const char *const states[3] = { "ready", "draining", "unready" };
	FILE *f = c->f;

	family(f, "ferry_predictor_weight_configured", "gauge",
	       "Share of new connections the manifest asks for (0..1).");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_predictor_weight_configured{%s} %.6f\n", c->pred_labels[i],
			ppm_ratio(p[i].weight_configured));
	family(f, "ferry_predictor_weight_effective", "gauge",
	       "Share of new connections the lookup table gives (0..1), after moving the "
	       "share of predictors with no ready backend and any override.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_predictor_weight_effective{%s} %.6f\n", c->pred_labels[i],
			ppm_ratio(p[i].weight_effective));
	family(f, "ferry_predictor_weight_override_active", "gauge",
	       "1 while a ferryctl weight override is in force for the predictor.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_predictor_weight_override_active{%s} %d\n", c->pred_labels[i],
			!!(p[i].flags & FERRY_PRED_F_OVERRIDE));
	family(f, "ferry_predictor_weight_override", "gauge",
	       "The ferryctl override weight (0..1); present only while it is in force.");
	for (size_t i = 0; i < snap->npredictors; i++)
		if (p[i].flags & FERRY_PRED_F_OVERRIDE)
			fprintf(f, "ferry_predictor_weight_override{%s} %.6f\n", c->pred_labels[i],
				ppm_ratio(p[i].weight_override));
	family(f, "ferry_predictor_shadow", "gauge",
	       "1 for a shadow predictor: accepted but never routed to.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_predictor_shadow{%s} %d\n", c->pred_labels[i],
			!!(p[i].flags & FERRY_PRED_F_SHADOW));
	family(f, "ferry_predictor_no_ready_backend", "gauge",
	       "1 when ferryd sees no ready backend for the predictor (its share moved).");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_predictor_no_ready_backend{%s} %d\n", c->pred_labels[i],
			no_ready(c->opts, p[i].id));
	family(f, "ferry_backends", "gauge", "Backends of a predictor, by state.");
	for (size_t i = 0; i < snap->npredictors; i++)
		for (int s = 0; s < 3; s++)
			fprintf(f, "ferry_backends{%s,state=\"%s\"} %u\n", c->pred_labels[i],
				states[s], c->be_states[i][s]);

	family(f, "ferry_new_connections_total", "counter",
	       "Connections (flows) ferry placed on the predictor's backends.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_new_connections_total{%s} %llu\n", c->pred_labels[i],
			(unsigned long long)p[i].stats.new_flows);
	family(f, "ferry_packets_total", "counter",
	       "Packets translated, forward (client to backend) and reply.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f,
			"ferry_packets_total{%s,direction=\"forward\"} %llu\n"
			"ferry_packets_total{%s,direction=\"reply\"} %llu\n",
			c->pred_labels[i], (unsigned long long)p[i].stats.fwd_packets,
			c->pred_labels[i], (unsigned long long)p[i].stats.rev_packets);
	family(f, "ferry_bytes_total", "counter",
	       "Bytes translated (IP packet length), forward and reply.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f,
			"ferry_bytes_total{%s,direction=\"forward\"} %llu\n"
			"ferry_bytes_total{%s,direction=\"reply\"} %llu\n",
			c->pred_labels[i], (unsigned long long)p[i].stats.fwd_bytes,
			c->pred_labels[i], (unsigned long long)p[i].stats.rev_bytes);
	family(f, "ferry_backend_resets_total", "counter",
	       "TCP resets sent by the predictor's backends.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_backend_resets_total{%s} %llu\n", c->pred_labels[i],
			(unsigned long long)p[i].stats.resets);
	family(f, "ferry_syn_timeouts_total", "counter",
	       "Connection attempts whose SYN was retransmitted before any SYN-ACK came back.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_syn_timeouts_total{%s} %llu\n", c->pred_labels[i],
			(unsigned long long)p[i].stats.syn_timeouts);
	family(f, "ferry_flow_misses_total", "counter",
	       "TCP packets with no flow entry that were hashed to a backend again.");
	for (size_t i = 0; i < snap->npredictors; i++)
		fprintf(f, "ferry_flow_misses_total{%s} %llu\n", c->pred_labels[i],
			(unsigned long long)p[i].stats.flow_misses);
	family(f, "ferry_http_responses_total", "counter",
	       "Responses by HTTP status class seen in clear-text HTTP/1.x replies "
	       "(unknown: TLS, HTTP/2, gRPC, or not parsable).");
	for (size_t i = 0; i < snap->npredictors; i++)
		for (int k = 0; k < FERRY_HTTP_CLASSES; k++)
			fprintf(f, "ferry_http_responses_total{%s,class=\"%s\"} %llu\n",
				c->pred_labels[i], http_class_names[k],
				(unsigned long long)p[i].stats.http[k]);

	family(f, "ferry_request_duration_seconds", "histogram",
	       "Sampled time from a request's first byte to the response's first byte.");
	for (size_t i = 0; i < snap->npredictors; i++)
		put_hist(f, "ferry_request_duration_seconds", c->pred_labels[i],
			 ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST,
					      p[i].id),
			 c->buckets, c->cum);
	family(f, "ferry_connect_duration_seconds", "histogram",
	       "Sampled time from a client's SYN to the backend's SYN-ACK.");
	for (size_t i = 0; i < snap->npredictors; i++)
		put_hist(f, "ferry_connect_duration_seconds", c->pred_labels[i],
			 ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_CONNECT,
					      p[i].id),
			 c->buckets, c->cum);
}

static void render_backends(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;
	const struct ferry_snap_backend *b = snap->backends;
	FILE *f = c->f;

	family(f, "ferry_backend_new_connections_total", "counter",
	       "Connections ferry placed on the backend.");
	for (size_t i = 0; i < snap->nbackends; i++)
		fprintf(f, "ferry_backend_new_connections_total{%s} %llu\n", c->be_labels[i],
			(unsigned long long)b[i].stats.new_flows);
	family(f, "ferry_backend_http_responses_total", "counter",
	       "Responses by HTTP status class from the backend (see ferry_http_responses_total).");
	for (size_t i = 0; i < snap->nbackends; i++)
		for (int k = 0; k < FERRY_HTTP_CLASSES; k++)
			fprintf(f, "ferry_backend_http_responses_total{%s,class=\"%s\"} %llu\n",
				c->be_labels[i], http_class_names[k],
				(unsigned long long)b[i].stats.http[k]);
	if (c->opts->no_backend_histograms)
		return;
	family(f, "ferry_backend_request_duration_seconds", "histogram",
	       "Sampled request latency per backend (see ferry_request_duration_seconds).");
	for (size_t i = 0; i < snap->nbackends; i++) {
		const struct ferry_hist *h =
			ferry_snapshot__hist(snap, FERRY_HIST_BACKEND, FERRY_LAT_REQUEST, b[i].id);

		if (h)
			put_hist(f, "ferry_backend_request_duration_seconds", c->be_labels[i], h,
				 c->buckets, c->cum);
	}
	family(f, "ferry_backend_connect_duration_seconds", "histogram",
	       "Sampled connect latency per backend (see ferry_connect_duration_seconds).");
	for (size_t i = 0; i < snap->nbackends; i++) {
		const struct ferry_hist *h =
			ferry_snapshot__hist(snap, FERRY_HIST_BACKEND, FERRY_LAT_CONNECT, b[i].id);

		if (h)
			put_hist(f, "ferry_backend_connect_duration_seconds", c->be_labels[i], h,
				 c->buckets, c->cum);
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
	render_services(&c);
	render_predictors(&c);
	render_backends(&c);
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

/* ---------------------------------------------------------------- server */

struct ferry_metrics_server {
	struct MHD_Daemon *daemon;
	ferry_metrics_produce_fn produce;
	void *ctx;
	int port;
	volatile bool ready; /* /readyz: the first sync of every source is done */
};

void ferry_metrics__set_ready(struct ferry_metrics_server *srv, bool ready)
{
	/* Read by the HTTP server's thread (TSan found the plain store racing). */
	if (srv)
		__atomic_store_n(&srv->ready, ready, __ATOMIC_RELEASE);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **req_cls)
{
	struct ferry_metrics_server *srv = cls;
	static const char text[] = "text/plain; charset=utf-8";
	char *body = NULL;
	size_t len = 0;
	int err;

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n", 19,
			     MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/healthz"))
		return reply(conn, MHD_HTTP_OK, text, "ok\n", 3, MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/readyz"))
		return __atomic_load_n(&srv->ready, __ATOMIC_ACQUIRE) ?
			       reply(conn, MHD_HTTP_OK, text, "ready\n", 6,
					  MHD_RESPMEM_PERSISTENT) :
				    reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text,
					  "not synced yet\n", 15, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, text, "not found: try /metrics\n", 24,
			     MHD_RESPMEM_PERSISTENT);
	err = srv->produce(srv->ctx, &body, &len);
	if (err) {
		free(body);
		pr_warn("/metrics: cannot read ferry's maps: %s", strerror(-err));
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text,
			     "cannot read ferry's maps; see ferryd's log\n", 43,
			     MHD_RESPMEM_PERSISTENT);
	}
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
		     MHD_RESPMEM_MUST_FREE);
}

#define ADDR_HINT "expected HOST:PORT such as 127.0.0.1:9090, [::1]:9090 or :9090"

/* Parses addr into a bound, listening socket. */
static int listen_on(const char *addr, int *fd_out, int *family_out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	char host[256], *end;
	const char *port_str, *colon;
	unsigned long port;
	int fd = -1, one = 1, zero = 0, err;

	if (!addr || !*addr) {
		pr_err("--metrics-addr: empty address; " ADDR_HINT);
		return -EINVAL;
	}
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof(host)) {
			pr_err("--metrics-addr %s: bad IPv6 literal; " ADDR_HINT, addr);
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(close - addr - 1), addr + 1);
		port_str = close + 2;
		hints.ai_flags |= AI_NUMERICHOST;
		hints.ai_family = AF_INET6;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
			pr_err("--metrics-addr %s: no port; " ADDR_HINT, addr);
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
		if (strchr(host, ':')) {
			pr_err("--metrics-addr %s: IPv6 addresses need brackets; " ADDR_HINT, addr);
			return -EINVAL;
		}
		port_str = colon + 1;
	}
	errno = 0;
	port = strtoul(port_str, &end, 10);
	if (!*port_str || *end || errno || port > 65535) {
		pr_err("--metrics-addr %s: port \"%s\" is not a number in 0..65535; " ADDR_HINT,
		       addr, port_str);
		return -EINVAL;
	}
	if (!host[0]) {
		/* ":PORT": every address, IPv6 and IPv4 alike */
		snprintf(host, sizeof(host), "::");
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	}
retry_v4:
	err = getaddrinfo(host, port_str, &hints, &ai);
	if (err) {
		pr_err("--metrics-addr %s: cannot resolve \"%s\": %s; " ADDR_HINT, addr, host,
		       gai_strerror(err));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 && errno == EAFNOSUPPORT && !strcmp(host, "::")) {
		/* ":PORT" on a host without IPv6: every IPv4 address instead */
		freeaddrinfo(ai);
		ai = NULL;
		snprintf(host, sizeof(host), "0.0.0.0");
		hints.ai_family = AF_INET;
		goto retry_v4;
	}
	if (fd < 0) {
		err = -errno;
		pr_err("--metrics-addr %s: cannot create a socket: %s", addr, strerror(-err));
		goto out_free_ai;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6 && !strcmp(host, "::"))
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
		err = -errno;
		pr_err("--metrics-addr %s: cannot listen: %s (choose a free port or a local "
		       "address)",
		       addr, strerror(-err));
		goto out_close;
	}
	*fd_out = fd;
	*family_out = ai->ai_family;
	freeaddrinfo(ai);
	return 0;

out_close:
	close(fd);
out_free_ai:
	freeaddrinfo(ai);
	return err;
}

struct ferry_metrics_server *ferry_metrics__serve(const char *addr, ferry_metrics_produce_fn fn,
						  void *ctx)
{
	struct ferry_metrics_server *srv;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int fd = -1, family = 0, err;

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		errno = ENOMEM;
		return NULL;
	}
	srv->produce = fn;
	srv->ctx = ctx;
	err = listen_on(addr, &fd, &family);
	if (err)
		goto err_free;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen)) {
		err = -errno;
		goto err_close;
	}
	srv->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
					       ((struct sockaddr_in *)&ss)->sin_port);
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* MHD owns fd from here and closes it in MHD_stop_daemon */
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle_request, srv,
				       MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
				       (unsigned int)10, MHD_OPTION_END);
	if (!srv->daemon) {
		err = -EIO;
		pr_err("--metrics-addr %s: cannot start the HTTP server", addr);
		goto err_close;
	}
	return srv;

err_close:
	close(fd);
err_free:
	free(srv);
	errno = -err;
	return NULL;
}

int ferry_metrics__port(const struct ferry_metrics_server *srv)
{
	return srv ? srv->port : -1;
}

void ferry_metrics__stop(struct ferry_metrics_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
