// SPDX-License-Identifier: GPL-2.0-only
/*
 * Prometheus text format 0.0.4 and the protobuf exposition for a ferry
 * snapshot (metrics_server.c serves them over HTTP and negotiates which). Every series is keyed by deployment, predictor, backend or
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

#include "io/prometheus/client/metrics.pb-c.h"
#include "log.h"
#include "telemetry/metrics.h"
#include "kernel/rebalance.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

/* ---------------------------------------------------------------- labels */

/* One label of a sample; values point into the snapshot or a row's own storage. */
struct label {
	const char *name;
	const char *value;
};

/* Service labels, then predictor_name, then backend: at most 5 per row. */
#define ROW_LABELS 5

struct row_labels {
	size_t n;
	struct label l[ROW_LABELS + 1]; /* + the family's extra label */
	char ns[FERRY_NAME_LEN];
	char vip[FERRY_ADDR_STRLEN];
	char backend[FERRY_ADDR_STRLEN];
};

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

/* "a=\"x\",b=\"y\"" for a label list, escaped. */
static void put_labels(FILE *f, const struct label *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s%s=\"", i ? "," : "", l[i].name);
		put_escaped(f, l[i].value);
		fputc('"', f);
	}
}

/* Fills namespace, deployment_name and vip for a service (may be NULL: empty values). */
static void service_labels(struct row_labels *r, const struct ferry_snap_service *s)
{
	const char *name = "", *slash;

	r->ns[0] = r->vip[0] = '\0';
	if (s) {
		slash = strchr(s->deployment, '/');
		if (slash) {
			snprintf(r->ns, sizeof(r->ns), "%.*s", (int)(slash - s->deployment),
				 s->deployment);
			name = slash + 1;
		} else {
			name = s->deployment;
		}
		ferry_addr__format(s->vip.addr, s->vip.port, s->vip.family, r->vip, sizeof(r->vip));
	}
	r->l[0] = (struct label){ "namespace", r->ns };
	r->l[1] = (struct label){ "deployment_name", name };
	r->l[2] = (struct label){ "vip", r->vip };
	r->n = 3;
}

static void append_label(struct row_labels *r, const char *name, const char *value)
{
	r->l[r->n++] = (struct label){ name, value };
}

/* ------------------------------------------------------------- families */

enum family_type { TYPE_GAUGE, TYPE_COUNTER, TYPE_HISTOGRAM };

static const char *const family_type_names[] = {
	[TYPE_GAUGE] = "gauge",
	[TYPE_COUNTER] = "counter",
	[TYPE_HISTOGRAM] = "histogram",
};

/* How a sample prints in text: an integer ("%llu"), a 0..1 ratio ("%.6f"), a time ("%.9f"). */
enum value_kind { VALUE_INT, VALUE_RATIO, VALUE_TIME };

struct sample_value {
	enum value_kind kind;
	__u64 u; /* VALUE_INT */
	double d; /* the others */
};

struct render_ctx;

/*
 * An exposition format: the node-wide families and the families[] table are
 * walked once, and each writer turns the calls into its own bytes. Text 0.0.4
 * writes as it goes; protobuf collects a family's metrics and writes the
 * family at family_end.
 */
struct metrics_writer {
	void (*family)(struct render_ctx *c, const char *name, enum family_type type,
		       const char *help);
	void (*sample)(struct render_ctx *c, const struct label *l, size_t n,
		       struct sample_value v);
	/* h NULL: an empty histogram */
	void (*hist)(struct render_ctx *c, const struct label *l, size_t n,
		     const struct ferry_hist *h);
	void (*family_end)(struct render_ctx *c);
};

struct pb_family;

struct render_ctx {
	FILE *f;
	const struct metrics_writer *w;
	const struct ferry_snapshot *snap;
	const struct ferry_metrics_opts *opts;
	const struct ferry_hist_buckets *buckets;
	__u64 *cum;
	struct ferry_hist_native *native; /* protobuf: scratch for one histogram */
	struct pb_family *pb; /* protobuf: the family being collected */
	int err; /* protobuf: first allocation or packing error */
	const char *name; /* the family being written */
	struct row_labels *svc_labels; /* per service */
	struct row_labels *pred_labels; /* per predictor: service labels + predictor_name */
	struct row_labels *be_labels; /* per backend: predictor labels + backend */
	__u32 (*be_states)[3]; /* per predictor: ready, draining, unready */
};

static void emit_family(struct render_ctx *c, const char *name, enum family_type type,
			const char *help)
{
	c->name = name;
	c->w->family(c, name, type, help);
}

static void emit_end(struct render_ctx *c)
{
	if (c->w->family_end)
		c->w->family_end(c);
}

static void emit_int(struct render_ctx *c, const struct label *l, size_t n, __u64 v)
{
	c->w->sample(c, l, n, (struct sample_value){ .kind = VALUE_INT, .u = v });
}

static void emit_double(struct render_ctx *c, const struct label *l, size_t n, enum value_kind kind,
			double v)
{
	c->w->sample(c, l, n, (struct sample_value){ .kind = kind, .d = v });
}

/* ------------------------------------------------------ text format 0.0.4 */

static void text_family(struct render_ctx *c, const char *name, enum family_type type,
			const char *help)
{
	fprintf(c->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, family_type_names[type]);
}

static void text_sample(struct render_ctx *c, const struct label *l, size_t n,
			struct sample_value v)
{
	FILE *f = c->f;

	fputs(c->name, f);
	if (n) {
		fputc('{', f);
		put_labels(f, l, n);
		fputc('}', f);
	}
	if (v.kind == VALUE_INT)
		fprintf(f, " %llu\n", (unsigned long long)v.u);
	else if (v.kind == VALUE_RATIO)
		fprintf(f, " %.6f\n", v.d);
	else
		fprintf(f, " %.9f\n", v.d);
}

static void put_le(char *buf, size_t len, double le)
{
	/* %.15g: 0.1 prints as "0.1", not as its binary approximation */
	snprintf(buf, len, "%.15g", le);
}

static const struct ferry_hist zero_hist;

static void text_hist(struct render_ctx *c, const struct label *l, size_t n,
		      const struct ferry_hist *h)
{
	const struct ferry_hist_buckets *b = c->buckets;
	const char *name = c->name;
	char le[32], *labels = NULL;
	size_t labels_len;
	__u64 total;
	FILE *f = c->f, *lf;

	if (!h)
		h = &zero_hist;
	lf = open_memstream(&labels, &labels_len);
	if (!lf) {
		c->err = -ENOMEM;
		return;
	}
	put_labels(lf, l, n);
	if (fclose(lf)) {
		free(labels);
		c->err = -ENOMEM;
		return;
	}
	ferry_hist__rebucket(h, b, c->cum, &total);
	for (size_t k = 0; k < b->n; k++) {
		put_le(le, sizeof(le), b->le[k]);
		fprintf(f, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le,
			(unsigned long long)c->cum[k]);
	}
	fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)total);
	fprintf(f, "%s_sum{%s} %.17g\n", name, labels, (double)h->sum_ns / 1e9);
	/* the bucket total, not h->count: Prometheus wants _count == +Inf bucket */
	fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)total);
	free(labels);
}

static const struct metrics_writer text_writer = {
	.family = text_family,
	.sample = text_sample,
	.hist = text_hist,
};

/* ------------------------------------------------------------- protobuf */

/*
 * The delimited protobuf exposition (io.prometheus.client.MetricFamily, each
 * message preceded by its length as a varint), packed by protobuf-c from the
 * code protoc-c generates from proto/io/prometheus/client/metrics.proto.
 * Histograms carry both the classic `le` buckets and the native schema-4
 * buckets (ferry_hist__native): a scraper with native histograms takes
 * those, any other one the classic buckets.
 */
#define PB_LABELS (ROW_LABELS + 2)

/* One Metric with everything it points to, freed as one. */
struct pb_metric {
	Io__Prometheus__Client__Metric m;
	Io__Prometheus__Client__LabelPair label[PB_LABELS];
	Io__Prometheus__Client__LabelPair *label_ptr[PB_LABELS];
	Io__Prometheus__Client__Gauge gauge;
	Io__Prometheus__Client__Counter counter;
	Io__Prometheus__Client__Histogram hist;
	Io__Prometheus__Client__Bucket *bucket;
	Io__Prometheus__Client__Bucket **bucket_ptr;
	Io__Prometheus__Client__BucketSpan *span;
	Io__Prometheus__Client__BucketSpan **span_ptr;
	int64_t *delta;
};

struct pb_family {
	Io__Prometheus__Client__MetricFamily mf;
	enum family_type type;
	size_t n, cap;
	Io__Prometheus__Client__Metric **metric;
};

static void pb_metric_free(struct pb_metric *pm)
{
	if (!pm)
		return;
	free(pm->bucket);
	free(pm->bucket_ptr);
	free(pm->span);
	free(pm->span_ptr);
	free(pm->delta);
	free(pm);
}

static void pb_family_clear(struct pb_family *fam)
{
	for (size_t i = 0; i < fam->n; i++)
		pb_metric_free((struct pb_metric *)fam->metric[i]);
	free(fam->metric);
	memset(fam, 0, sizeof(*fam));
}

static void pb_family(struct render_ctx *c, const char *name, enum family_type type,
		      const char *help)
{
	static const Io__Prometheus__Client__MetricType types[] = {
		[TYPE_GAUGE] = IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE,
		[TYPE_COUNTER] = IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER,
		[TYPE_HISTOGRAM] = IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM,
	};
	struct pb_family *fam = c->pb;

	pb_family_clear(fam);
	io__prometheus__client__metric_family__init(&fam->mf);
	/* protobuf-c wants char *; the strings outlive the family's packing */
	fam->mf.name = (char *)name;
	fam->mf.help = (char *)help;
	fam->mf.has_type = true;
	fam->mf.type = types[type];
	fam->type = type;
}

/* A new Metric with labels l, appended to the family; NULL on ENOMEM (c->err set). */
static struct pb_metric *pb_metric_new(struct render_ctx *c, const struct label *l, size_t n)
{
	struct pb_family *fam = c->pb;
	struct pb_metric *pm;

	if (c->err)
		return NULL;
	if (fam->n == fam->cap) {
		size_t cap = fam->cap ? fam->cap * 2 : 16;
		Io__Prometheus__Client__Metric **grown;

		grown = realloc(fam->metric, cap * sizeof(*grown));
		if (!grown)
			goto err_nomem;
		fam->metric = grown;
		fam->cap = cap;
	}
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		goto err_nomem;
	io__prometheus__client__metric__init(&pm->m);
	if (n > PB_LABELS)
		n = PB_LABELS;
	for (size_t i = 0; i < n; i++) {
		io__prometheus__client__label_pair__init(&pm->label[i]);
		pm->label[i].name = (char *)l[i].name;
		pm->label[i].value = (char *)l[i].value;
		pm->label_ptr[i] = &pm->label[i];
	}
	pm->m.n_label = n;
	pm->m.label = pm->label_ptr;
	fam->metric[fam->n++] = &pm->m;
	return pm;

err_nomem:
	c->err = -ENOMEM;
	return NULL;
}

static void pb_sample(struct render_ctx *c, const struct label *l, size_t n, struct sample_value v)
{
	struct pb_metric *pm = pb_metric_new(c, l, n);
	double value = v.kind == VALUE_INT ? (double)v.u : v.d;

	if (!pm)
		return;
	if (c->pb->type == TYPE_COUNTER) {
		io__prometheus__client__counter__init(&pm->counter);
		pm->counter.has_value = true;
		pm->counter.value = value;
		pm->m.counter = &pm->counter;
	} else {
		io__prometheus__client__gauge__init(&pm->gauge);
		pm->gauge.has_value = true;
		pm->gauge.value = value;
		pm->m.gauge = &pm->gauge;
	}
}

static void pb_hist(struct render_ctx *c, const struct label *l, size_t n,
		    const struct ferry_hist *h)
{
	const struct ferry_hist_buckets *b = c->buckets;
	struct ferry_hist_native *nat = c->native;
	struct pb_metric *pm = pb_metric_new(c, l, n);
	Io__Prometheus__Client__Histogram *ph;
	__u64 total, prev = 0;

	if (!pm)
		return;
	ph = &pm->hist;
	io__prometheus__client__histogram__init(ph);
	pm->m.histogram = ph;
	ferry_hist__native(h, nat);
	ferry_hist__rebucket(h ? h : &zero_hist, b, c->cum, &total);
	pm->bucket = calloc(b->n, sizeof(*pm->bucket));
	pm->bucket_ptr = calloc(b->n, sizeof(*pm->bucket_ptr));
	pm->span = calloc(nat->nspans + 1, sizeof(*pm->span));
	pm->span_ptr = calloc(nat->nspans + 1, sizeof(*pm->span_ptr));
	pm->delta = calloc(nat->n + 1, sizeof(*pm->delta));
	if (!pm->bucket || !pm->bucket_ptr || !pm->span || !pm->span_ptr || !pm->delta) {
		c->err = -ENOMEM;
		return;
	}
	/* the bucket total, as the text format's _count: it equals the buckets' sum */
	ph->has_sample_count = true;
	ph->sample_count = total;
	ph->has_sample_sum = true;
	ph->sample_sum = nat->sum;
	for (size_t k = 0; k < b->n; k++) {
		io__prometheus__client__bucket__init(&pm->bucket[k]);
		pm->bucket[k].has_cumulative_count = true;
		pm->bucket[k].cumulative_count = c->cum[k];
		pm->bucket[k].has_upper_bound = true;
		pm->bucket[k].upper_bound = b->le[k];
		pm->bucket_ptr[k] = &pm->bucket[k];
	}
	ph->n_bucket = b->n;
	ph->bucket = pm->bucket_ptr;

	ph->has_schema = true;
	ph->schema = FERRY_HIST_NATIVE_SCHEMA;
	/* a zero threshold above 0 also marks the histogram native when it is empty */
	ph->has_zero_threshold = true;
	ph->zero_threshold = nat->zero_threshold;
	ph->has_zero_count = true;
	ph->zero_count = nat->zero_count;
	for (size_t k = 0; k < nat->nspans; k++) {
		io__prometheus__client__bucket_span__init(&pm->span[k]);
		pm->span[k].has_offset = true;
		pm->span[k].offset = nat->span[k].offset;
		pm->span[k].has_length = true;
		pm->span[k].length = nat->span[k].length;
		pm->span_ptr[k] = &pm->span[k];
	}
	ph->n_positive_span = nat->nspans;
	ph->positive_span = pm->span_ptr;
	/* each bucket as the difference to the one listed before it */
	for (size_t k = 0; k < nat->n; k++) {
		pm->delta[k] = (int64_t)(nat->bucket[k] - prev);
		prev = nat->bucket[k];
	}
	ph->n_positive_delta = nat->n;
	ph->positive_delta = pm->delta;
}

static void put_varint(FILE *f, size_t v)
{
	while (v >= 0x80) {
		fputc((int)(v & 0x7f) | 0x80, f);
		v >>= 7;
	}
	fputc((int)v, f);
}

/* Packs the collected family, length-delimited; a family without metrics is left out. */
static void pb_family_end(struct render_ctx *c)
{
	struct pb_family *fam = c->pb;
	uint8_t *packed;
	size_t size;

	if (c->err || !fam->n)
		goto out_clear;
	fam->mf.n_metric = fam->n;
	fam->mf.metric = fam->metric;
	size = io__prometheus__client__metric_family__get_packed_size(&fam->mf);
	packed = malloc(size ? size : 1);
	if (!packed) {
		c->err = -ENOMEM;
		goto out_clear;
	}
	if (io__prometheus__client__metric_family__pack(&fam->mf, packed) != size) {
		c->err = -EIO;
	} else {
		put_varint(c->f, size);
		fwrite(packed, 1, size, c->f);
	}
	free(packed);
out_clear:
	pb_family_clear(fam);
}

static const struct metrics_writer pb_writer = {
	.family = pb_family,
	.sample = pb_sample,
	.hist = pb_hist,
	.family_end = pb_family_end,
};

static const char *const http_class_names[FERRY_HTTP_CLASSES] = {
	[FERRY_HTTP_1XX] = "1xx", [FERRY_HTTP_2XX] = "2xx", [FERRY_HTTP_3XX] = "3xx",
	[FERRY_HTTP_4XX] = "4xx", [FERRY_HTTP_5XX] = "5xx", [FERRY_HTTP_UNKNOWN] = "unknown",
};

static double ppm_ratio(__u32 ppm)
{
	return (double)ppm / FERRY_WEIGHT_ONE;
}

/* Rebalancing (ferryd only): whether it works here, and what it did. */
static void render_rebalance(struct render_ctx *c)
{
	const struct ferry_rebal_stats *rs = c->opts->rebalance;
	const struct {
		const char *outcome;
		__u64 n;
	} outcomes[] = {
		{ "destroyed", rs ? rs->destroyed : 0 }, { "busy", rs ? rs->busy : 0 },
		{ "failed", rs ? rs->failed : 0 },	 { "expired", rs ? rs->expired : 0 },
		{ "gone", rs ? rs->gone : 0 },		 { "goaway", rs ? rs->goaway : 0 },
	};
	struct label l[1];

	if (!rs)
		return;
	emit_family(c, "ferry_rebalance_available", TYPE_GAUGE,
		    "1 when this kernel can end idle connections after a weight change "
		    "(bpf_sock_destroy, Linux 6.5+); 0: rebalancing unavailable.");
	emit_int(c, NULL, 0, rs->available);
	emit_end(c);
	emit_family(c, "ferry_rebalance_rounds_total", TYPE_COUNTER,
		    "Rebalances started: a service's shares or backends changed.");
	emit_int(c, NULL, 0, rs->rounds);
	emit_end(c);
	emit_family(
		c, "ferry_rebalance_connections_total", TYPE_COUNTER,
		"Connections marked to end by rebalancing, by outcome: destroyed (ended idle with "
		"an abort), goaway (told with an HTTP/2 GOAWAY first: into an idle connection, "
		"or appended to a response of a busy one), busy (a pass found it busy and left "
		"it), failed, expired (never idle or told in its round), gone (closed by the "
		"client first).");
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		l[0] = (struct label){ "outcome", outcomes[i].outcome };
		emit_int(c, l, 1, outcomes[i].n);
	}
	emit_end(c);
	emit_family(c, "ferry_rebalance_marked_connections", TYPE_GAUGE,
		    "Connections marked to end when idle, now.");
	emit_int(c, NULL, 0, rs->marked);
	emit_end(c);
}

/* One family with a sample per flow table (label table="confirmed|embryonic"). */
static void emit_per_table(struct render_ctx *c, const char *name, enum family_type type,
			   const char *help, const __u64 *v)
{
	static const char *const tables[FERRY_FLOW_TABLES] = {
		[FERRY_FLOWS_CONFIRMED] = "confirmed",
		[FERRY_FLOWS_EMBRYONIC] = "embryonic",
	};
	struct label l[1];

	emit_family(c, name, type, help);
	for (int t = 0; t < FERRY_FLOW_TABLES; t++) {
		l[0] = (struct label){ "table", tables[t] };
		emit_int(c, l, 1, v[t]);
	}
	emit_end(c);
}

/* ferryd's flow GC: how full the flow tables are, and what the GC takes out of them. */
static void render_flow_gc(struct render_ctx *c)
{
	const struct ferry_flow_gc_stats *g = c->opts->flow_gc;

	if (!g)
		return;
	emit_per_table(c, "ferry_flow_entries", TYPE_GAUGE,
		       "Connections in each flow table, as ferryd's last flow GC pass (every 10 s) "
		       "counted them before removing idle ones.",
		       g->entries);
	emit_per_table(c, "ferry_flow_capacity", TYPE_GAUGE,
		       "Size of each flow table: a full table evicts its least recently used "
		       "connection for a new one.",
		       g->capacity);
	emit_per_table(c, "ferry_flow_gc_removed_total", TYPE_COUNTER,
		       "Connections ferryd's flow GC removed (idle or closed past their timeout).",
		       g->removed_total);
	emit_family(c, "ferry_flow_gc_duration_seconds", TYPE_GAUGE,
		    "Wall time of ferryd's last flow GC pass.");
	emit_double(c, NULL, 0, VALUE_TIME, g->last_pass_seconds);
	emit_end(c);
}

/* Canary analysis (docs/canary.md): only while some deployment has it. */
static void render_canary(struct render_ctx *c)
{
	const struct ferry_metrics_opts *o = c->opts;
	struct label l[3];

	if (!o->ncanary)
		return;
	emit_family(c, "ferry_canary_state", TYPE_GAUGE,
		    "1 for the state the deployment's canary analysis is in, 0 for the others.");
	for (size_t i = 0; i < o->ncanary; i++) {
		l[0] = (struct label){ "deployment", o->canary[i].deployment };
		for (int s = FERRY_CANARY_S_PROGRESSING; s <= FERRY_CANARY_S_INCONCLUSIVE; s++) {
			l[1] = (struct label){ "state", ferry_canary_state__name(s) };
			emit_int(c, l, 2, o->canary[i].state == (enum ferry_canary_state)s);
		}
	}
	emit_end(c);
	emit_family(c, "ferry_canary_step", TYPE_GAUGE,
		    "The canary's step (1..n) in ferry.io/canary-steps; 0 without steps.");
	for (size_t i = 0; i < o->ncanary; i++) {
		l[0] = (struct label){ "deployment", o->canary[i].deployment };
		emit_int(c, l, 1, o->canary[i].step);
	}
	emit_end(c);
	emit_family(c, "ferry_canary_decisions_total", TYPE_COUNTER,
		    "Canary windows judged (decision pass, fail, inconclusive) and SRE commands "
		    "(pause, resume, abort, promote; reason manual), by reason.");
	for (size_t i = 0; i < o->ncanary; i++) {
		const struct ferry_canary_metrics *m = &o->canary[i];

		l[0] = (struct label){ "deployment", m->deployment };
		for (int v = 0; v < 3; v++) {
			for (int r = 0; r < FERRY_CANARY_R_MAX; r++) {
				if (!m->decisions[v][r])
					continue;
				l[1] = (struct label){ "decision", ferry_canary_verdict__name(v) };
				l[2] = (struct label){ "reason", ferry_canary_reason__name(r) };
				emit_int(c, l, 3, m->decisions[v][r]);
			}
		}
		for (int k = FERRY_CANARY_CMD_PAUSE; k <= FERRY_CANARY_CMD_PROMOTE; k++) {
			if (!m->commands[k])
				continue;
			l[1] = (struct label){ "decision", ferry_canary_command__name(k) };
			l[2] = (struct label){ "reason", "manual" };
			emit_int(c, l, 3, m->commands[k]);
		}
	}
	emit_end(c);
}

static void render_node(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;
	const struct ferry_metrics_opts *o = c->opts;
	struct label l[3];
	char abi[16];

	snprintf(abi, sizeof(abi), "%d", FERRY_ABI_VERSION);
	emit_family(c, "ferry_build_info", TYPE_GAUGE, "Ferry build; the value is always 1.");
	l[0] = (struct label){ "version", o->version ? o->version : FERRY_VERSION };
	l[1] = (struct label){ "abi", abi };
	emit_int(c, l, 2, 1);
	emit_end(c);

	emit_family(c, "ferry_config_errors", TYPE_GAUGE,
		    "Manifests ferryd rejects in its current configuration.");
	emit_int(c, NULL, 0, o->config_errors);
	emit_end(c);
	emit_family(c, "ferry_config_errors_total", TYPE_COUNTER,
		    "Manifest rejections since ferryd started.");
	emit_int(c, NULL, 0, o->config_errors_total);
	emit_end(c);

	if (snap->has_config) {
		emit_family(c, "ferry_last_sync_timestamp_seconds", TYPE_GAUGE,
			    "Wall-clock time of the last successful map sync.");
		emit_double(c, NULL, 0, VALUE_TIME, (double)snap->config.sync_unix_ns / 1e9);
		emit_end(c);
		emit_family(c, "ferry_heartbeat_timestamp_seconds", TYPE_GAUGE,
			    "Wall-clock time ferryd last marked itself alive in the maps.");
		emit_double(c, NULL, 0, VALUE_TIME, (double)snap->config.heartbeat_unix_ns / 1e9);
		emit_end(c);
		emit_family(c, "ferry_sync_generation", TYPE_GAUGE,
			    "Number of successful map syncs (bumped by each).");
		emit_int(c, NULL, 0, snap->config.generation);
		emit_end(c);
	}

	emit_family(c, "ferry_program_attached", TYPE_GAUGE,
		    "1 for each ferry program attached to an interface, by hook and attach mode.");
	for (size_t i = 0; i < snap->nlinks; i++) {
		const struct ferry_link *lk = &snap->links[i].link;
		const char *tc_mode = (lk->hooks & FERRY_LINK_TCX) ? "tcx" : "tc";
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
			if (!(lk->hooks & hooks[h].bit))
				continue;
			l[0] = (struct label){ "ifname", lk->ifname };
			l[1] = (struct label){ "hook", hooks[h].hook };
			l[2] = (struct label){ "mode", hooks[h].tc ? tc_mode : hooks[h].mode };
			emit_int(c, l, 3, 1);
		}
	}
	emit_end(c);

	render_canary(c);

	emit_family(c, "ferry_drops_total", TYPE_COUNTER,
		    "Packets the data plane dropped, by reason (node-wide).");
	for (unsigned int i = 0; i < FERRY_CTR_MAX; i++) {
		if (!ferry_counter__is_drop(i))
			continue;
		l[0] = (struct label){ "reason", ferry_counter__name(i) };
		emit_int(c, l, 1, snap->counters[i]);
	}
	emit_end(c);
	emit_family(c, "ferry_datapath_events_total", TYPE_COUNTER,
		    "Data plane events that are not drops, by event (node-wide).");
	for (unsigned int i = 0; i < FERRY_CTR_MAX; i++) {
		if (ferry_counter__is_drop(i))
			continue;
		l[0] = (struct label){ "event", ferry_counter__name(i) };
		emit_int(c, l, 1, snap->counters[i]);
	}
	emit_end(c);
	render_rebalance(c);
	render_flow_gc(c);
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
 * read a value from the snapshot. Nothing here is format specific:
 * render_family() walks it through a struct metrics_writer, the text format
 * 0.0.4 or protobuf (histograms as native and classic buckets at once). A new
 * label on every row of a scope (protocol) is one change in service_labels().
 */
enum family_scope { SCOPE_SERVICE, SCOPE_PREDICTOR, SCOPE_BACKEND };

struct metric_family {
	const char *name;
	enum family_type type;
	const char *help;
	enum family_scope scope;
	const char *label; /* extra label, or NULL */
	const char *const *label_values; /* its values, in output order */
	size_t nlabel_values;
	enum value_kind kind;
	/* the sample of row i for extra label value k (k is 0 without a label) */
	double (*ratio)(const struct render_ctx *c, size_t i);
	__u64 (*value)(const struct render_ctx *c, size_t i, size_t k);
	/*
	 * histograms: the histogram of row i for extra label value k; only those that
	 * exist are printed, and when none does, an empty one for k = 0 unless
	 * hist_skip_missing (backends print only what exists)
	 */
	const struct ferry_hist *(*hist)(const struct render_ctx *c, size_t i, size_t k);
	/* NULL: the empty one is for k = 0; else for the k it returns */
	size_t (*hist_placeholder)(const struct render_ctx *c, size_t i);
	bool hist_skip_missing;
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

static double pred_weight_canary(const struct render_ctx *c, size_t i)
{
	return ppm_ratio(PRED(i)->weight_canary);
}

static bool pred_canary_on(const struct render_ctx *c, size_t i)
{
	return PRED(i)->flags & FERRY_PRED_F_CANARY;
}

static __u64 pred_canary_active(const struct render_ctx *c, size_t i, size_t k)
{
	return pred_canary_on(c, i);
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

/* The protocol label: enum ferry_l7_proto's values, in its order. */
static const char *const protocols[FERRY_L7_PROTOS] = { "unknown", "http1", "h2c" };

static const struct ferry_hist *pred_request_hist(const struct render_ctx *c, size_t i, size_t k)
{
	return ferry_snapshot__hist_proto(c->snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, k,
					  PRED(i)->id);
}

/*
 * A predictor's empty latency histogram before its first request carries the
 * protocol its service declares (ferry.io/protocol), so that the series its
 * requests fill exists from the start: rate() over a window that opens
 * before them then counts them all, where a series born with its first
 * requests loses those before its first scrape (a new canary's first ones).
 * Without a declared protocol (auto) it is "unknown".
 */
static size_t pred_hist_placeholder(const struct render_ctx *c, size_t i)
{
	const struct ferry_snap_service *s = ferry_snapshot__service(c->snap, PRED(i)->svc_id);

	if (s && (s->flags & FERRY_SVC_F_PROTO_H2C))
		return FERRY_L7_H2C;
	if (s && (s->flags & FERRY_SVC_F_PROTO_HTTP1))
		return FERRY_L7_HTTP1;
	return FERRY_L7_UNKNOWN;
}

static __u64 pred_requests(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.requests[k];
}

static __u64 pred_h2_resets(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.h2_resets;
}

static __u64 pred_l7_unsync(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.l7_unsync;
}

static __u64 pred_streams_skipped(const struct render_ctx *c, size_t i, size_t k)
{
	return PRED(i)->stats.streams_skipped;
}

static const struct ferry_hist *pred_connect_hist(const struct render_ctx *c, size_t i, size_t k)
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

static __u64 be_requests(const struct render_ctx *c, size_t i, size_t k)
{
	return BE(i)->stats.requests[k];
}

static const struct ferry_hist *be_request_hist(const struct render_ctx *c, size_t i, size_t k)
{
	return ferry_snapshot__hist_proto(c->snap, FERRY_HIST_BACKEND, FERRY_LAT_REQUEST, k,
					  BE(i)->id);
}

static bool be_has_request_hist(const struct render_ctx *c, size_t i)
{
	for (size_t k = 0; k < FERRY_L7_PROTOS; k++)
		if (be_request_hist(c, i, k))
			return true;
	return false;
}

static const struct ferry_hist *be_connect_hist(const struct render_ctx *c, size_t i, size_t k)
{
	return ferry_snapshot__hist(c->snap, FERRY_HIST_BACKEND, FERRY_LAT_CONNECT, BE(i)->id);
}

static bool be_has_connect_hist(const struct render_ctx *c, size_t i)
{
	return be_connect_hist(c, i, 0);
}

#define LABEL(name, values) \
	.label = name, .label_values = values, .nlabel_values = sizeof(values) / sizeof(values[0])

/* In output order; docs/metrics.md describes each family for users. */
static const struct metric_family families[] = {
	{ "ferry_table_generation", TYPE_GAUGE,
	  "Lookup-table swaps of a service since it was created.", SCOPE_SERVICE,
	  .value = svc_table_generation },
	{ "ferry_service_no_backend_drops_total", TYPE_COUNTER,
	  "Packets to a VIP dropped because its table had no backend.", SCOPE_SERVICE,
	  .value = svc_no_backend },
	{ "ferry_service_fragment_drops_total", TYPE_COUNTER,
	  "IP fragments to a VIP address, dropped (ferry cannot route them by port).",
	  SCOPE_SERVICE, .value = svc_fragments },

	{ "ferry_predictor_weight_configured", TYPE_GAUGE,
	  "Share of new connections the manifest asks for (0..1).", SCOPE_PREDICTOR,
	  .kind = VALUE_RATIO, .ratio = pred_weight_configured },
	{ "ferry_predictor_weight_effective", TYPE_GAUGE,
	  "Share of new connections the lookup table gives (0..1), after moving the "
	  "share of predictors with no ready backend and any override.",
	  SCOPE_PREDICTOR, .kind = VALUE_RATIO, .ratio = pred_weight_effective },
	{ "ferry_predictor_weight_override_active", TYPE_GAUGE,
	  "1 while a ferryctl weight override is in force for the predictor.", SCOPE_PREDICTOR,
	  .value = pred_override_active },
	{ "ferry_predictor_weight_override", TYPE_GAUGE,
	  "The ferryctl override weight (0..1); present only while it is in force.",
	  SCOPE_PREDICTOR, .kind = VALUE_RATIO, .ratio = pred_weight_override,
	  .present = pred_override_on },
	{ "ferry_predictor_weight_canary_active", TYPE_GAUGE,
	  "1 while the canary analysis' weight (ferry.io/canary: auto) is in force for "
	  "the predictor; an override wins over it.",
	  SCOPE_PREDICTOR, .value = pred_canary_active },
	{ "ferry_predictor_weight_canary", TYPE_GAUGE,
	  "The canary analysis' weight (0..1): its step, 1 promoted, 0 rolled back; "
	  "present only while it is in force.",
	  SCOPE_PREDICTOR, .kind = VALUE_RATIO, .ratio = pred_weight_canary,
	  .present = pred_canary_on },
	{ "ferry_predictor_shadow", TYPE_GAUGE,
	  "1 for a shadow predictor: accepted but never routed to.", SCOPE_PREDICTOR,
	  .value = pred_shadow },
	{ "ferry_predictor_no_ready_backend", TYPE_GAUGE,
	  "1 when ferryd sees no ready backend for the predictor (its share moved).",
	  SCOPE_PREDICTOR, .value = pred_no_ready },
	{ "ferry_backends", TYPE_GAUGE, "Backends of a predictor, by state.", SCOPE_PREDICTOR,
	  LABEL("state", backend_states), .value = pred_backends },

	{ "ferry_new_connections_total", TYPE_COUNTER,
	  "Connections (flows) ferry placed on the predictor's backends.", SCOPE_PREDICTOR,
	  .value = pred_new_flows },
	{ "ferry_packets_total", TYPE_COUNTER,
	  "Packets translated, forward (client to backend) and reply.", SCOPE_PREDICTOR,
	  LABEL("direction", directions), .value = pred_packets },
	{ "ferry_bytes_total", TYPE_COUNTER,
	  "Bytes translated (IP packet length), forward and reply.", SCOPE_PREDICTOR,
	  LABEL("direction", directions), .value = pred_bytes },
	{ "ferry_backend_resets_total", TYPE_COUNTER,
	  "TCP resets sent by the predictor's backends.", SCOPE_PREDICTOR, .value = pred_resets },
	{ "ferry_syn_timeouts_total", TYPE_COUNTER,
	  "Connection attempts whose SYN was retransmitted before any SYN-ACK came back.",
	  SCOPE_PREDICTOR, .value = pred_syn_timeouts },
	{ "ferry_flow_misses_total", TYPE_COUNTER,
	  "TCP packets with no flow entry that were hashed to a backend again.", SCOPE_PREDICTOR,
	  .value = pred_flow_misses },
	{ "ferry_http_responses_total", TYPE_COUNTER,
	  "Final responses by HTTP status class seen in clear-text HTTP/1.x replies "
	  "(unknown: exchanges on flows that are not HTTP, such as TLS). HTTP/2 and gRPC "
	  "are not classified: see ferry_requests_total.",
	  SCOPE_PREDICTOR, LABEL("class", http_class_names), .value = pred_http },
	{ "ferry_requests_total", TYPE_COUNTER,
	  "Requests sent to the predictor's backends: HTTP/1.x requests, HTTP/2 streams "
	  "(h2c, gRPC calls), and exchanges on flows of no known protocol (unknown).",
	  SCOPE_PREDICTOR, LABEL("protocol", protocols), .value = pred_requests },
	{ "ferry_h2_stream_resets_total", TYPE_COUNTER,
	  "HTTP/2 streams reset by the predictor's backends (RST_STREAM frames).", SCOPE_PREDICTOR,
	  .value = pred_h2_resets },
	{ "ferry_h2_unsynchronized_flows_total", TYPE_COUNTER,
	  "HTTP/2 flows whose frame layer ferry lost (a gap in the segments it saw); "
	  "their later requests are not counted or timed.",
	  SCOPE_PREDICTOR, .value = pred_l7_unsync },
	{ "ferry_h2_streams_untimed_total", TYPE_COUNTER,
	  "HTTP/2 streams counted but not timed: more were in flight on their connection "
	  "than the kernel tracks (8).",
	  SCOPE_PREDICTOR, .value = pred_streams_skipped },

	{ "ferry_request_duration_seconds", TYPE_HISTOGRAM,
	  "Sampled time from a request's first byte (HTTP/2: its HEADERS frame) to the "
	  "first byte of its response (HTTP/2: the response HEADERS), by protocol.",
	  SCOPE_PREDICTOR, LABEL("protocol", protocols), .hist = pred_request_hist,
	  .hist_placeholder = pred_hist_placeholder },
	{ "ferry_connect_duration_seconds", TYPE_HISTOGRAM,
	  "Sampled time from a client's SYN to the backend's SYN-ACK.", SCOPE_PREDICTOR,
	  .hist = pred_connect_hist },

	{ "ferry_backend_new_connections_total", TYPE_COUNTER,
	  "Connections ferry placed on the backend.", SCOPE_BACKEND, .value = be_new_flows },
	{ "ferry_backend_http_responses_total", TYPE_COUNTER,
	  "Responses by HTTP status class from the backend (see ferry_http_responses_total).",
	  SCOPE_BACKEND, LABEL("class", http_class_names), .value = be_http },
	{ "ferry_backend_requests_total", TYPE_COUNTER,
	  "Requests sent to the backend by protocol (see ferry_requests_total).", SCOPE_BACKEND,
	  LABEL("protocol", protocols), .value = be_requests },
	{ "ferry_backend_request_duration_seconds", TYPE_HISTOGRAM,
	  "Sampled request latency per backend (see ferry_request_duration_seconds).",
	  SCOPE_BACKEND, LABEL("protocol", protocols), .hist = be_request_hist,
	  .hist_skip_missing = true, .present = be_has_request_hist, .enabled = be_histograms },
	{ "ferry_backend_connect_duration_seconds", TYPE_HISTOGRAM,
	  "Sampled connect latency per backend (see ferry_connect_duration_seconds).",
	  SCOPE_BACKEND, .hist = be_connect_hist, .present = be_has_connect_hist,
	  .enabled = be_histograms },
};

#undef LABEL
#undef PRED
#undef SVC
#undef BE

/* One family of the table, through the context's writer. */
static void render_family(struct render_ctx *c, const struct metric_family *m)
{
	const struct ferry_snapshot *snap = c->snap;
	size_t nrows = m->scope == SCOPE_SERVICE   ? snap->nservices :
		       m->scope == SCOPE_PREDICTOR ? snap->npredictors :
						     snap->nbackends;
	struct row_labels *labels = m->scope == SCOPE_SERVICE	? c->svc_labels :
				    m->scope == SCOPE_PREDICTOR ? c->pred_labels :
								  c->be_labels;
	size_t nk = m->label ? m->nlabel_values : 1;

	if (m->enabled && !m->enabled(c))
		return;
	emit_family(c, m->name, m->type, m->help);
	for (size_t i = 0; i < nrows; i++) {
		struct row_labels *r = &labels[i];

		if (m->present && !m->present(c, i))
			continue;
		if (m->hist) {
			size_t shown = 0,
			       placeholder = m->hist_placeholder ? m->hist_placeholder(c, i) : 0;

			for (size_t k = 0; k < nk; k++) {
				const struct ferry_hist *h = m->hist(c, i, k);
				size_t n = r->n;

				if (!h && (shown || k + 1 < nk || m->hist_skip_missing))
					continue;
				if (m->label)
					r->l[n++] = (struct label){
						m->label, m->label_values[h ? k : placeholder]
					};
				c->w->hist(c, r->l, n, h);
				shown++;
			}
			continue;
		}
		for (size_t k = 0; k < nk; k++) {
			size_t n = r->n;

			/* the extra label goes in the spare slot after the row's own */
			if (m->label)
				r->l[n++] = (struct label){ m->label, m->label_values[k] };
			if (m->kind == VALUE_RATIO)
				emit_double(c, r->l, n, VALUE_RATIO, m->ratio(c, i));
			else
				emit_int(c, r->l, n, m->value(c, i, k));
		}
	}
	emit_end(c);
}

/* Labels for every service, predictor and backend, built once per render. */
static int build_labels(struct render_ctx *c)
{
	const struct ferry_snapshot *snap = c->snap;

	c->svc_labels = calloc(snap->nservices + 1, sizeof(*c->svc_labels));
	c->pred_labels = calloc(snap->npredictors + 1, sizeof(*c->pred_labels));
	c->be_labels = calloc(snap->nbackends + 1, sizeof(*c->be_labels));
	c->be_states = calloc(snap->npredictors + 1, sizeof(*c->be_states));
	if (!c->svc_labels || !c->pred_labels || !c->be_labels || !c->be_states)
		return -ENOMEM;
	for (size_t i = 0; i < snap->nservices; i++)
		service_labels(&c->svc_labels[i], &snap->services[i]);
	for (size_t i = 0; i < snap->npredictors; i++) {
		const struct ferry_snap_predictor *p = &snap->predictors[i];

		service_labels(&c->pred_labels[i], ferry_snapshot__service(snap, p->svc_id));
		append_label(&c->pred_labels[i], "predictor_name", p->name);
	}
	for (size_t i = 0; i < snap->nbackends; i++) {
		const struct ferry_snap_backend *b = &snap->backends[i];
		const struct ferry_snap_predictor *p =
			ferry_snapshot__predictor(snap, b->backend.predictor_id);
		struct row_labels *r = &c->be_labels[i];

		if (p) {
			size_t pi = p - snap->predictors;

			service_labels(r, ferry_snapshot__service(snap, p->svc_id));
			append_label(r, "predictor_name", p->name);
			if (b->backend.state == FERRY_BE_ACTIVE)
				c->be_states[pi][0]++;
			else if (b->backend.state == FERRY_BE_DRAINING)
				c->be_states[pi][1]++;
			else
				c->be_states[pi][2]++;
		} else {
			/* a backend whose predictor metadata is missing: keep its service */
			service_labels(r, ferry_snapshot__service(snap, b->backend.svc_id));
			append_label(r, "predictor_name", "");
		}
		ferry_addr__format(b->backend.addr, b->backend.port, b->backend.family, r->backend,
				   sizeof(r->backend));
		append_label(r, "backend", r->backend);
	}
	return 0;
}

int ferry_metrics__render_format(const struct ferry_snapshot *snap,
				 const struct ferry_metrics_opts *opts,
				 enum ferry_metrics_format format, char **buf, size_t *len)
{
	static const struct ferry_metrics_opts no_opts;
	struct render_ctx c = { .snap = snap, .opts = opts ? opts : &no_opts };
	int err;

	*buf = NULL;
	*len = 0;
	c.w = format == FERRY_METRICS_PROTOBUF ? &pb_writer : &text_writer;
	c.buckets = c.opts->buckets ? c.opts->buckets : ferry_hist__default_buckets();
	c.cum = calloc(c.buckets->n + 1, sizeof(*c.cum));
	if (!c.cum)
		return -ENOMEM;
	if (format == FERRY_METRICS_PROTOBUF) {
		c.native = malloc(sizeof(*c.native));
		c.pb = calloc(1, sizeof(*c.pb));
		if (!c.native || !c.pb) {
			err = -ENOMEM;
			goto out_free_labels;
		}
	}
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
	err = c.err;
	if (ferror(c.f) && !err)
		err = -ENOMEM;
	if (fclose(c.f) && !err)
		err = -ENOMEM;
	if (err) {
		free(*buf);
		*buf = NULL;
		*len = 0;
	}
out_free_labels:
	free(c.svc_labels);
	free(c.pred_labels);
	free(c.be_labels);
	free(c.be_states);
	if (c.pb)
		pb_family_clear(c.pb);
	free(c.pb);
	free(c.native);
	free(c.cum);
	return err;
}

int ferry_metrics__render(const struct ferry_snapshot *snap, const struct ferry_metrics_opts *opts,
			  char **buf, size_t *len)
{
	return ferry_metrics__render_format(snap, opts, FERRY_METRICS_TEXT, buf, len);
}

int ferry_metrics__produce(void *source, enum ferry_metrics_format format, char **buf, size_t *len)
{
	struct ferry_metrics_source *src = source;
	struct ferry_snapshot *snap;
	int err;

	snap = ferry_snapshot__read(src->pin_path);
	if (!snap)
		return -errno;
	if (src->lock)
		pthread_mutex_lock(src->lock);
	err = ferry_metrics__render_format(snap, &src->opts, format, buf, len);
	if (src->lock)
		pthread_mutex_unlock(src->lock);
	ferry_snapshot__free(snap);
	return err;
}
