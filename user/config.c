// SPDX-License-Identifier: GPL-2.0-only
/*
 * The manifest store (config.h): validates SeldonDeployment and EndpointSlice
 * objects the way Seldon's admission webhook does, then by ferry's own rules,
 * keeps the last good version of every object, and maps what is in force to
 * a struct ferry_model. docs/configuration.md is the user's view of this file.
 *
 * Validation runs in two stages. Rules about one object alone run when the
 * object comes in (__load_dir, __put), so a bad object never replaces a good
 * one. Rules that need other objects (a VIP claimed twice, a VIP whose family
 * no EndpointSlice serves) run in __build, which falls back to the version of
 * a deployment that the previous build used.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "manifest.h"
#include "seldon_webhook.h"

#define ANN_VIP "ferry.io/vip"
#define ANN_AFFINITY "ferry.io/affinity"
#define ANN_LATENCY_SAMPLE "ferry.io/latency-sample"
#define ANN_SVC_NAME "seldon.io/svc-name"
#define LABEL_SERVICE_NAME "kubernetes.io/service-name"

#define KIND_SDEP "SeldonDeployment"
#define KIND_SLICE "EndpointSlice"

/* Kubernetes names: 253 characters at most (DNS subdomain). */
#define K8S_NAME_LEN 256

enum obj_kind {
	OBJ_SDEP = 1,
	OBJ_SLICE,
};

struct sd_predictor {
	char name[FERRY_PRED_NAME_LEN];
	__u32 weight; /* ppm */
	bool shadow;
	char service[K8S_NAME_LEN]; /* EndpointSlices labelled with this service name */
};

struct sd_vip {
	struct ferry_vip vip;
	char text[64];
};

/* A validated SeldonDeployment; shared (refcounted) between an entry and its last build. */
struct sdep {
	int refcnt;
	char ns[K8S_NAME_LEN];
	char key[FERRY_NAME_LEN]; /* "namespace/name" */
	struct sd_vip *vips;
	size_t nvips;
	__u32 flags;
	__u32 sample_every;
	struct sd_predictor *preds;
	size_t npreds;
	bool has_shadow;
};

struct sl_port {
	char name[K8S_NAME_LEN];
	__u16 port;
	__u8 proto;
};

struct sl_endpoint {
	__be32 addr[4];
	__u8 state;
};

struct slice {
	char service[K8S_NAME_LEN];
	__u8 family;
	struct sl_port *ports;
	size_t nports;
	struct sl_endpoint *eps;
	size_t neps;
};

struct entry {
	enum obj_kind kind;
	char ns[K8S_NAME_LEN];
	char name[K8S_NAME_LEN];
	char key[2 * K8S_NAME_LEN + 32]; /* entry_key(): "Kind/namespace/name" */
	bool from_file;
	char source[256]; /* file path, or the origin given to __put */
	struct ferry_manifest *mf; /* NULL for objects from __put */
	json_t *obj;
	struct sdep *sd;
	struct slice *sl;
	struct sdep *built; /* the version the last __build put in force */
};

struct stored_error {
	struct ferry_config_error e;
	char key[2 * K8S_NAME_LEN + 32]; /* object key, for __put errors */
};

struct error_list {
	struct stored_error *v;
	size_t n, cap;
};

struct vip_owner {
	struct ferry_vip vip;
	char key[FERRY_NAME_LEN];
};

struct str_set {
	char **v;
	size_t n;
};

struct ferry_config_store {
	struct entry **entries;
	size_t nentries;
	struct error_list load_errs, put_errs, build_errs;
	struct vip_owner *owners; /* VIP -> deployment, as of the last build */
	size_t nowners;
	/* What has been logged, so that each condition is logged once per change. */
	struct str_set noted_novip, noted_shadow, noted_redist;
	/*
	 * Parsed files by path, with the stat that identifies their content:
	 * a sync after one edit re-parses one file, not the whole directory.
	 */
	struct parsed_file *parsed;
	size_t nparsed;
	unsigned int load_gen;
	/* Seldon's rules: seldon-config's servers (NULL: the Helm chart's), see __set_seldon. */
	const struct ferry_seldon_servers *seldon_servers;
	bool seldon_cluster_judged;
};

struct parsed_file {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	struct ferry_manifest *mf;
	unsigned int seen; /* load_gen of the last load that found the file */
};

/* Validation context: where the object came from, for errors. */
struct vctx {
	struct error_list *errs;
	const struct ferry_manifest *mf;
	const char *file;
	const char *errkey;
	char object[320];
	int nerrs;
	const struct ferry_seldon_servers *seldon_servers;
	bool seldon_cluster_judged; /* the object passed the cluster's own webhook */
};

/* ------------------------------------------------------------ helpers */

static int errs_push(struct error_list *l, const struct ferry_config_error *e, const char *key)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct stored_error *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].e = *e;
	snprintf(l->v[l->n].key, sizeof(l->v[l->n].key), "%s", key ? key : "");
	l->n++;
	return 0;
}

static void errs_clear(struct error_list *l)
{
	l->n = 0;
}

static void errs_drop_key(struct error_list *l, const char *key)
{
	size_t j = 0;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key))
			l->v[j++] = l->v[i];
	l->n = j;
}

static void verr(struct vctx *c, const json_t *parent, const char *key, const json_t *node,
		 const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * Records an error at a value: by parent and key when the value is a member
 * (or missing: then the parent's position), else by the node itself.
 */
static void verr(struct vctx *c, const json_t *parent, const char *key, const json_t *node,
		 const char *field, const char *fmt, ...)
{
	struct ferry_config_error e = {};
	va_list ap;

	snprintf(e.file, sizeof(e.file), "%s", c->file);
	snprintf(e.object, sizeof(e.object), "%s", c->object);
	snprintf(e.field, sizeof(e.field), "%s", field ? field : "");
	if (!ferry_manifest__pos(c->mf, parent, key, node, &e.line, &e.column) &&
	    !(node && ferry_manifest__pos(c->mf, NULL, NULL, node, &e.line, &e.column)) &&
	    !(parent && ferry_manifest__pos(c->mf, NULL, NULL, parent, &e.line, &e.column)))
		e.line = e.column = 0;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	c->nerrs++;
	if (errs_push(c->errs, &e, c->errkey))
		pr_err("out of memory recording a configuration error");
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a mapping";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* A member of parent that must be an object when present; NULL when absent or null. */
static json_t *get_object(struct vctx *c, json_t *parent, const char *key, const char *field)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_object(v)) {
		verr(c, parent, key, v, field, "expected a mapping, found %s", json_type_name(v));
		return NULL;
	}
	return v;
}

static const char *get_string(struct vctx *c, json_t *parent, const char *key, const char *field,
			      bool *bad)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		verr(c, parent, key, v, field, "expected a string, found %s: quote the value",
		     json_type_name(v));
		if (bad)
			*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

static int str_set_add(struct str_set *s, const char *v)
{
	char **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->v[s->n] = strdup(v);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

static bool str_set_has(const struct str_set *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return true;
	return false;
}

static void str_set_free(struct str_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static void sdep_put(struct sdep *sd)
{
	if (!sd || --sd->refcnt > 0)
		return;
	free(sd->vips);
	free(sd->preds);
	free(sd);
}

static struct sdep *sdep_get(struct sdep *sd)
{
	if (sd)
		sd->refcnt++;
	return sd;
}

static void slice_free(struct slice *sl)
{
	if (!sl)
		return;
	free(sl->ports);
	free(sl->eps);
	free(sl);
}

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	sdep_put(e->sd);
	sdep_put(e->built);
	slice_free(e->sl);
	json_decref(e->obj);
	ferry_manifest__put(e->mf);
	free(e);
}

static const char *kind_name(enum obj_kind kind)
{
	return kind == OBJ_SDEP ? KIND_SDEP : KIND_SLICE;
}

static void entry_key(enum obj_kind kind, const char *ns, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/%s", kind_name(kind), ns, name);
}

/* ------------------------------------------------------------------ VIPs */

static void vip_format(const struct ferry_vip *vip, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(vip->family == FERRY_AF_INET6 ? AF_INET6 : AF_INET, vip->addr, addr,
		  sizeof(addr));
	snprintf(buf, len, vip->family == FERRY_AF_INET6 ? "[%s]:%u%s" : "%s:%u%s", addr,
		 ntohs(vip->port), vip->proto == IPPROTO_UDP ? "/udp" : "");
}

static bool parse_port(const char *s, __u16 *port)
{
	unsigned long v;
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 6)
		return false;
	v = strtoul(s, &end, 10);
	if (v < 1 || v > 65535)
		return false;
	*port = (__u16)v;
	return true;
}

/*
 * Parses one "ADDR:PORT", "[ADDR6]:PORT", optionally followed by "/tcp" or
 * "/udp". On failure writes what is wrong and how to write it into why.
 */
static int parse_vip(const char *text, struct ferry_vip *vip, char *why, size_t whylen)
{
	char buf[128], *addr, *port, *proto;
	__u16 portnum;

	memset(vip, 0, sizeof(*vip));
	if (strlen(text) >= sizeof(buf)) {
		snprintf(why, whylen, "\"%.40s...\" is too long to be ADDR:PORT", text);
		return -EINVAL;
	}
	strcpy(buf, text);
	vip->proto = IPPROTO_TCP;
	proto = strrchr(buf, '/');
	if (proto) {
		*proto++ = '\0';
		if (!strcasecmp(proto, "udp")) {
			vip->proto = IPPROTO_UDP;
		} else if (strcasecmp(proto, "tcp")) {
			snprintf(why, whylen,
				 "\"%s\": unknown protocol \"%s\": write ADDR:PORT for TCP or "
				 "ADDR:PORT/udp for UDP",
				 text, proto);
			return -EINVAL;
		}
	}
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':') {
			snprintf(why, whylen,
				 "\"%s\" is not [ADDR]:PORT: an IPv6 VIP is written like "
				 "[2001:db8::10]:8000",
				 text);
			return -EINVAL;
		}
		*close = '\0';
		addr = buf + 1;
		port = close + 2;
		vip->family = FERRY_AF_INET6;
		if (inet_pton(AF_INET6, addr, vip->addr) != 1) {
			snprintf(why, whylen, "\"%s\": \"%s\" is not an IPv6 address", text, addr);
			return -EINVAL;
		}
	} else {
		char *colon = strchr(buf, ':');

		if (colon && strchr(colon + 1, ':')) {
			snprintf(why, whylen,
				 "\"%s\": an IPv6 VIP needs brackets around the address: write "
				 "[ADDR]:PORT, e.g. [2001:db8::10]:8000",
				 text);
			return -EINVAL;
		}
		if (!colon) {
			snprintf(why, whylen,
				 "\"%s\" has no port: write ADDR:PORT, e.g. 198.18.100.10:8000",
				 text);
			return -EINVAL;
		}
		*colon = '\0';
		addr = buf;
		port = colon + 1;
		vip->family = FERRY_AF_INET;
		if (inet_pton(AF_INET, addr, vip->addr) != 1) {
			snprintf(why, whylen,
				 "\"%s\": \"%s\" is not an IPv4 address: write ADDR:PORT, e.g. "
				 "198.18.100.10:8000",
				 text, addr);
			return -EINVAL;
		}
	}
	if (!parse_port(port, &portnum)) {
		snprintf(why, whylen, "\"%s\": port \"%s\" is not a number from 1 to 65535", text,
			 port);
		return -EINVAL;
	}
	vip->port = htons(portnum);
	return 0;
}

static int vip_cmp(const struct ferry_vip *a, const struct ferry_vip *b)
{
	int r;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	r = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (r)
		return r;
	if (a->port != b->port)
		return ntohs(a->port) < ntohs(b->port) ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}

/* ------------------------------------------------- SeldonDeployment rules */

/*
 * An annotation may sit in metadata.annotations or spec.annotations (Seldon
 * reads both). Returns the value (NULL when absent) and where it was found.
 */
static const char *get_annotation(struct vctx *c, json_t *md_ann, json_t *spec_ann,
				  const char *name, json_t **where, char *field, size_t fieldlen,
				  bool *bad)
{
	char md_field[256], spec_field[256];
	const char *md_val, *spec_val;

	snprintf(md_field, sizeof(md_field), "metadata.annotations[\"%s\"]", name);
	snprintf(spec_field, sizeof(spec_field), "spec.annotations[\"%s\"]", name);
	md_val = md_ann ? get_string(c, md_ann, name, md_field, bad) : NULL;
	spec_val = spec_ann ? get_string(c, spec_ann, name, spec_field, bad) : NULL;
	if (md_val && spec_val && strcmp(md_val, spec_val)) {
		verr(c, spec_ann, name, NULL, spec_field,
		     "\"%s\" differs from metadata.annotations[\"%s\"] (\"%s\"): keep one of them",
		     spec_val, name, md_val);
		*bad = true;
		return NULL;
	}
	if (md_val) {
		*where = md_ann;
		snprintf(field, fieldlen, "%s", md_field);
		return md_val;
	}
	if (spec_val) {
		*where = spec_ann;
		snprintf(field, fieldlen, "%s", spec_field);
		return spec_val;
	}
	return NULL;
}

static int parse_vip_list(struct vctx *c, const char *value, json_t *where, const char *field,
			  struct sdep *sd)
{
	char *copy, *tok, *save = NULL;
	int bad = 0;

	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct sd_vip *v;
		char why[256];
		char *end;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*tok)
			continue;
		v = realloc(sd->vips, (sd->nvips + 1) * sizeof(*v));
		if (!v) {
			free(copy);
			return -ENOMEM;
		}
		sd->vips = v;
		v = &sd->vips[sd->nvips];
		if (parse_vip(tok, &v->vip, why, sizeof(why))) {
			verr(c, where, ANN_VIP, NULL, field, "%s", why);
			bad = 1;
			continue;
		}
		vip_format(&v->vip, v->text, sizeof(v->text));
		for (size_t i = 0; i < sd->nvips; i++) {
			if (!vip_cmp(&sd->vips[i].vip, &v->vip)) {
				verr(c, where, ANN_VIP, NULL, field,
				     "VIP %s is listed twice: list it once", v->text);
				bad = 1;
			}
		}
		sd->nvips++;
	}
	if (!sd->nvips && !bad) {
		verr(c, where, ANN_VIP, NULL, field,
		     "no VIP in \"%s\": write ADDR:PORT[,ADDR:PORT...], e.g. 198.18.100.10:8000, "
		     "or remove the annotation",
		     value);
		bad = 1;
	}
	free(copy);
	return bad ? -EINVAL : 0;
}

static void seldon_report(void *arg, const struct ferry_config_error *err)
{
	struct vctx *c = arg;

	c->nerrs++;
	if (errs_push(c->errs, err, c->errkey))
		pr_err("out of memory recording a configuration error");
}

/* Validates a SeldonDeployment; *out is a new sdep when it passes. Returns 0 or -EINVAL/-ENOMEM. */
static int parse_sdep(struct vctx *c, json_t *obj, const char *ns, struct sdep **out)
{
	struct ferry_seldon_input seldon = { .sdep = obj,
					     .mf = c->mf,
					     .file = c->file,
					     .object = c->object,
					     .servers = c->seldon_servers,
					     .cluster_judged = c->seldon_cluster_judged,
					     .report = seldon_report,
					     .arg = c };
	json_t *md, *spec, *md_ann, *spec_ann, *preds, *where;
	const char *name, *value;
	size_t nmain = 0;
	char field[256];
	int nerrs = c->nerrs; /* any error recorded below rejects the object */
	struct sdep *sd;
	bool bad = false;
	int err;

	*out = NULL;
	/* Seldon's rules first: what the cluster would refuse, ferry refuses. */
	err = ferry_seldon_webhook__check(&seldon);
	if (err < 0)
		return err;
	if (err > 0)
		return -EINVAL;
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->refcnt = 1;
	sd->sample_every = 1;
	md = json_object_get(obj, "metadata");
	name = json_string_value(json_object_get(md, "name"));
	snprintf(sd->ns, sizeof(sd->ns), "%s", ns);
	if ((size_t)snprintf(sd->key, sizeof(sd->key), "%s/%s", ns, name) >= sizeof(sd->key)) {
		verr(c, md, "name", NULL, "metadata.name",
		     "ferry cannot balance it: namespace/name is longer than the %d characters "
		     "ferry keeps: use a shorter name",
		     FERRY_NAME_LEN - 1);
		bad = true;
	}
	md_ann = get_object(c, md, "annotations", "metadata.annotations");
	/* The webhook checked spec's structure: predictors, names, traffic, shadows. */
	spec = json_object_get(obj, "spec");
	spec_ann = get_object(c, spec, "annotations", "spec.annotations");
	preds = json_object_get(spec, "predictors");
	if (json_array_size(preds) > FERRY_MAX_SVC_PREDICTORS) {
		verr(c, spec, "predictors", preds, "spec.predictors",
		     "ferry cannot balance %zu predictors: it balances at most %d per deployment: "
		     "remove some",
		     json_array_size(preds), FERRY_MAX_SVC_PREDICTORS);
		goto err_invalid;
	}
	sd->preds = calloc(json_array_size(preds), sizeof(*sd->preds));
	if (!sd->preds)
		goto err_nomem;
	sd->npreds = json_array_size(preds);
	for (size_t i = 0; i < sd->npreds; i++)
		nmain += !json_is_true(json_object_get(json_array_get(preds, i), "shadow"));
	for (size_t i = 0; i < sd->npreds; i++) {
		struct sd_predictor *p = &sd->preds[i];
		json_t *pred = json_array_get(preds, i), *pann, *traffic;
		const char *pname, *svc = NULL;
		long long t;

		pname = json_string_value(json_object_get(pred, "name"));
		if (strlen(pname) >= sizeof(p->name)) {
			snprintf(field, sizeof(field), "spec.predictors[%zu].name", i);
			verr(c, pred, "name", NULL, field,
			     "ferry cannot balance a predictor name of %zu characters: it keeps at "
			     "most %zu: shorten it",
			     strlen(pname), sizeof(p->name) - 1);
			bad = true;
			continue;
		}
		strcpy(p->name, pname);
		p->shadow = json_is_true(json_object_get(pred, "shadow"));
		sd->has_shadow |= p->shadow;
		/*
		 * The only non-shadow predictor takes every connection whatever its
		 * traffic says (Seldon accepts 0, 150 or -5 there); between several,
		 * traffic is a share that Seldon makes sum to 100.
		 */
		traffic = json_object_get(pred, "traffic");
		t = json_is_real(traffic) ? (long long)json_real_value(traffic) :
					    json_integer_value(traffic);
		if (p->shadow) {
			p->weight = 0;
		} else if (nmain == 1) {
			p->weight = FERRY_WEIGHT_ONE;
		} else if (t < 0 || t > 100) {
			snprintf(field, sizeof(field), "spec.predictors[%zu].traffic", i);
			verr(c, pred, "traffic", NULL, field,
			     "ferry cannot balance traffic %lld: a predictor's share of new "
			     "connections must be from 0 to 100 percent (Seldon accepts this sum "
			     "to 100 only through %s): make every traffic 0 to 100",
			     t, t < 0 ? "a negative share" : "a share above 100");
			bad = true;
		} else {
			p->weight = (__u32)t * 10000;
		}

		snprintf(field, sizeof(field), "spec.predictors[%zu].annotations", i);
		pann = get_object(c, pred, "annotations", field);
		if (pann) {
			snprintf(field, sizeof(field), "spec.predictors[%zu].annotations[\"%s\"]",
				 i, ANN_SVC_NAME);
			svc = get_string(c, pann, ANN_SVC_NAME, field, &bad);
		}
		if (svc && *svc)
			snprintf(p->service, sizeof(p->service), "%s", svc);
		else
			snprintf(p->service, sizeof(p->service), "%s-%s", name, p->name);
	}
	if (bad)
		goto err_invalid;

	/* ferry's annotations. */
	value = get_annotation(c, md_ann, spec_ann, ANN_VIP, &where, field, sizeof(field), &bad);
	if (value) {
		err = parse_vip_list(c, value, where, field, sd);
		if (err == -ENOMEM)
			goto err_nomem;
		if (err)
			bad = true;
	}
	value = get_annotation(c, md_ann, spec_ann, ANN_AFFINITY, &where, field, sizeof(field),
			       &bad);
	if (value) {
		if (!strcmp(value, "client-ip")) {
			sd->flags |= FERRY_SVC_F_HASH_SRC_ADDR;
		} else if (strcmp(value, "none")) {
			verr(c, where, ANN_AFFINITY, NULL, field,
			     "unknown affinity \"%s\": use client-ip (every connection of a client "
			     "address goes to the same backend) or none",
			     value);
			bad = true;
		}
	}
	value = get_annotation(c, md_ann, spec_ann, ANN_LATENCY_SAMPLE, &where, field,
			       sizeof(field), &bad);
	if (value) {
		unsigned long long n;
		char *end;

		errno = 0;
		n = strtoull(value, &end, 10);
		if (!*value || *end || errno || n > UINT32_MAX || value[0] == '-') {
			verr(c, where, ANN_LATENCY_SAMPLE, NULL, field,
			     "\"%s\" is not a whole number: use 0 (off), 1 (every connection) or "
			     "N (one connection in N)",
			     value);
			bad = true;
		} else {
			sd->sample_every = (__u32)n;
		}
	}
	if (bad || c->nerrs != nerrs)
		goto err_invalid;
	*out = sd;
	return 0;

err_nomem:
	sdep_put(sd);
	return -ENOMEM;
err_invalid:
	sdep_put(sd);
	return -EINVAL;
}

/* ---------------------------------------------------- EndpointSlice rules */

/* Returns 0 with *out (NULL when the slice is of no interest: FQDN, no service), or -errno. */
static int parse_slice(struct vctx *c, json_t *obj, struct slice **out)
{
	json_t *md, *labels, *ports, *eps;
	const char *svc, *atype;
	int nerrs = c->nerrs; /* any error recorded below rejects the object */
	struct slice *sl;
	bool bad = false;
	char field[128];

	*out = NULL;
	md = json_object_get(obj, "metadata");
	labels = get_object(c, md, "labels", "metadata.labels");
	svc = labels ? get_string(c, labels, LABEL_SERVICE_NAME,
				  "metadata.labels[\"" LABEL_SERVICE_NAME "\"]", &bad) :
		       NULL;
	if (bad || c->nerrs != nerrs)
		return -EINVAL;
	if (!svc) {
		pr_debug("%s: %s: no label %s: not a service's slice, ignored", c->file, c->object,
			 LABEL_SERVICE_NAME);
		return 0;
	}
	atype = get_string(c, obj, "addressType", "addressType", &bad);
	if (bad)
		return -EINVAL;
	if (atype && !strcmp(atype, "FQDN")) {
		pr_debug("%s: %s: addressType FQDN, ignored", c->file, c->object);
		return 0;
	}
	if (!atype || (strcmp(atype, "IPv4") && strcmp(atype, "IPv6"))) {
		verr(c, obj, atype ? "addressType" : NULL, obj, "addressType",
		     "expected IPv4, IPv6 or FQDN, found %s", atype ? atype : "nothing");
		return -EINVAL;
	}
	sl = calloc(1, sizeof(*sl));
	if (!sl)
		return -ENOMEM;
	snprintf(sl->service, sizeof(sl->service), "%s", svc);
	sl->family = atype[3] == '6' ? FERRY_AF_INET6 : FERRY_AF_INET;

	ports = json_object_get(obj, "ports");
	if (ports && !json_is_null(ports) && !json_is_array(ports)) {
		verr(c, obj, "ports", ports, "ports", "expected a list, found %s",
		     json_type_name(ports));
		goto err_invalid;
	}
	sl->ports = calloc(json_array_size(ports) + 1, sizeof(*sl->ports));
	if (!sl->ports)
		goto err_nomem;
	for (size_t i = 0; i < json_array_size(ports); i++) {
		json_t *p = json_array_get(ports, i), *num;
		struct sl_port *sp = &sl->ports[sl->nports];
		const char *pname, *proto;

		snprintf(field, sizeof(field), "ports[%zu]", i);
		if (!json_is_object(p)) {
			verr(c, NULL, NULL, p, field, "expected a mapping, found %s",
			     json_type_name(p));
			bad = true;
			continue;
		}
		snprintf(field, sizeof(field), "ports[%zu].name", i);
		pname = get_string(c, p, "name", field, &bad);
		snprintf(field, sizeof(field), "ports[%zu].protocol", i);
		proto = get_string(c, p, "protocol", field, &bad);
		snprintf(field, sizeof(field), "ports[%zu].port", i);
		num = json_object_get(p, "port");
		if (!num || json_is_null(num))
			continue; /* Kubernetes: no port number means "all ports"; nothing to pick */
		if (!json_is_integer(num) || json_integer_value(num) < 1 ||
		    json_integer_value(num) > 65535) {
			verr(c, p, "port", num, field, "expected a port number from 1 to 65535");
			bad = true;
			continue;
		}
		if (proto && strcmp(proto, "TCP") && strcmp(proto, "UDP"))
			continue; /* SCTP: not balanced */
		snprintf(sp->name, sizeof(sp->name), "%s", pname ? pname : "");
		sp->port = (__u16)json_integer_value(num);
		sp->proto = proto && !strcmp(proto, "UDP") ? IPPROTO_UDP : IPPROTO_TCP;
		sl->nports++;
	}

	eps = json_object_get(obj, "endpoints");
	if (eps && !json_is_null(eps) && !json_is_array(eps)) {
		verr(c, obj, "endpoints", eps, "endpoints", "expected a list, found %s",
		     json_type_name(eps));
		goto err_invalid;
	}
	sl->eps = calloc(json_array_size(eps) + 1, sizeof(*sl->eps));
	if (!sl->eps)
		goto err_nomem;
	for (size_t i = 0; i < json_array_size(eps); i++) {
		json_t *ep = json_array_get(eps, i), *addrs, *cond, *ready, *term;
		struct sl_endpoint *se = &sl->eps[sl->neps];
		const char *addr;

		snprintf(field, sizeof(field), "endpoints[%zu]", i);
		if (!json_is_object(ep)) {
			verr(c, NULL, NULL, ep, field, "expected a mapping, found %s",
			     json_type_name(ep));
			bad = true;
			continue;
		}
		snprintf(field, sizeof(field), "endpoints[%zu].addresses", i);
		addrs = json_object_get(ep, "addresses");
		if (!json_is_array(addrs) || !json_array_size(addrs)) {
			verr(c, ep, addrs ? "addresses" : NULL, ep, field,
			     "expected a list with at least one address");
			bad = true;
			continue;
		}
		/* Kubernetes: the addresses are fungible and consumers may use only the first. */
		snprintf(field, sizeof(field), "endpoints[%zu].addresses[0]", i);
		addr = json_string_value(json_array_get(addrs, 0));
		if (!addr || inet_pton(sl->family == FERRY_AF_INET6 ? AF_INET6 : AF_INET, addr,
				       se->addr) != 1) {
			verr(c, NULL, NULL, json_array_get(addrs, 0), field,
			     "\"%s\" is not an %s address (the slice's addressType)",
			     addr ? addr : "(not a string)", atype);
			bad = true;
			continue;
		}
		snprintf(field, sizeof(field), "endpoints[%zu].conditions", i);
		cond = get_object(c, ep, "conditions", field);
		ready = json_object_get(cond, "ready");
		term = json_object_get(cond, "terminating");
		if ((ready && !json_is_null(ready) && !json_is_boolean(ready)) ||
		    (term && !json_is_null(term) && !json_is_boolean(term))) {
			verr(c, ep, "conditions", cond, field,
			     "ready and terminating must be true, false or unset");
			bad = true;
			continue;
		}
		/* Kubernetes: ready unset means ready; terminating unset means not terminating. */
		if (json_is_true(term))
			se->state = FERRY_BE_DRAINING;
		else if (json_is_false(ready))
			se->state = FERRY_BE_UNREADY;
		else
			se->state = FERRY_BE_ACTIVE;
		sl->neps++;
	}
	if (bad || c->nerrs != nerrs)
		goto err_invalid;
	*out = sl;
	return 0;

err_nomem:
	slice_free(sl);
	return -ENOMEM;
err_invalid:
	slice_free(sl);
	return -EINVAL;
}

/* --------------------------------------------------------------- objects */

static bool sdep_api_version(const char *v)
{
	return v && (!strcmp(v, "machinelearning.seldon.io/v1") ||
		     !strcmp(v, "machinelearning.seldon.io/v1alpha2") ||
		     !strcmp(v, "machinelearning.seldon.io/v1alpha3"));
}

/*
 * Validates one object. Returns 1 with *out set, 0 when the object is of no
 * interest (ignored), -EINVAL when rejected (errors recorded; *key set when
 * the object could be named), or -ENOMEM.
 */
static int object_parse(struct vctx *c, json_t *obj, const char *kind, const char *api_version,
			struct entry **out, char *key, size_t keylen)
{
	const char *name, *ns;
	enum obj_kind k;
	struct entry *e;
	json_t *md;
	int err;

	*out = NULL;
	key[0] = '\0';
	if (kind && !strcmp(kind, KIND_SDEP) && sdep_api_version(api_version)) {
		k = OBJ_SDEP;
	} else if (kind && !strcmp(kind, KIND_SLICE) && api_version &&
		   !strcmp(api_version, "discovery.k8s.io/v1")) {
		k = OBJ_SLICE;
	} else {
		pr_debug("%s: %s %s: not an object ferry reads, ignored", c->file,
			 api_version ? api_version : "(no apiVersion)", kind ? kind : "(no kind)");
		return 0;
	}
	md = json_object_get(obj, "metadata");
	ns = json_string_value(json_object_get(md, "namespace"));
	if (!ns || !*ns)
		ns = "default";
	name = json_string_value(json_object_get(md, "name"));
	if (!name || !*name) {
		snprintf(c->object, sizeof(c->object), "%.20s %.63s/(no name)", kind, ns);
		verr(c, md, md && json_object_get(md, "name") ? "name" : NULL, md ? md : obj,
		     "metadata.name", "every object needs a name: add metadata.name");
		return -EINVAL;
	}
	if (strlen(name) >= K8S_NAME_LEN || strlen(ns) >= K8S_NAME_LEN) {
		snprintf(c->object, sizeof(c->object), "%s %.100s/%.100s", kind, ns, name);
		verr(c, md, "name", NULL, "metadata.name",
		     "longer than Kubernetes allows (253 characters)");
		return -EINVAL;
	}
	snprintf(c->object, sizeof(c->object), "%.20s %.63s/%.230s", kind, ns, name);
	entry_key(k, ns, name, key, keylen);
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->kind = k;
	snprintf(e->ns, sizeof(e->ns), "%s", ns);
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->source, sizeof(e->source), "%s", c->file);
	if (k == OBJ_SDEP)
		err = parse_sdep(c, obj, ns, &e->sd);
	else
		err = parse_slice(c, obj, &e->sl);
	if (err || (k == OBJ_SLICE && !e->sl)) {
		free(e);
		return err;
	}
	e->obj = json_incref(obj);
	*out = e;
	return 1;
}

static struct entry *find_entry(struct entry **v, size_t n, const char *key, bool want_file,
				bool any_origin)
{
	for (size_t i = 0; i < n; i++) {
		if (!v[i] || (!any_origin && v[i]->from_file != want_file))
			continue;
		if (!strcmp(v[i]->key, key))
			return v[i];
	}
	return NULL;
}

static int entries_push(struct entry ***v, size_t *n, struct entry *e)
{
	struct entry **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	(*v)[(*n)++] = e;
	return 0;
}

/* ----------------------------------------------------------------- store */

struct ferry_config_store *ferry_config_store__new(void)
{
	return calloc(1, sizeof(struct ferry_config_store));
}

void ferry_config_store__free(struct ferry_config_store *store)
{
	if (!store)
		return;
	for (size_t i = 0; i < store->nentries; i++)
		entry_free(store->entries[i]);
	free(store->entries);
	free(store->load_errs.v);
	free(store->put_errs.v);
	free(store->build_errs.v);
	free(store->owners);
	str_set_free(&store->noted_novip);
	str_set_free(&store->noted_shadow);
	str_set_free(&store->noted_redist);
	for (size_t i = 0; i < store->nparsed; i++) {
		free(store->parsed[i].path);
		ferry_manifest__put(store->parsed[i].mf);
	}
	free(store->parsed);
	free(store);
}

static bool same_file(const struct parsed_file *pf, const struct stat *st)
{
	return pf->dev == st->st_dev && pf->ino == st->st_ino && pf->size == st->st_size &&
	       pf->mtime.tv_sec == st->st_mtim.tv_sec && pf->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       pf->ctime.tv_sec == st->st_ctim.tv_sec && pf->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* The file's parsed manifest, from the cache when its stat is unchanged. */
static struct ferry_manifest *parse_cached(struct ferry_config_store *store, const char *path,
					   struct ferry_config_error *perr)
{
	struct parsed_file *pf = NULL;
	struct ferry_manifest *mf;
	struct stat st;
	size_t i;

	if (stat(path, &st))
		return ferry_manifest__load(path, perr);
	for (i = 0; i < store->nparsed && !pf; i++)
		if (!strcmp(store->parsed[i].path, path))
			pf = &store->parsed[i];
	if (pf && same_file(pf, &st)) {
		pf->seen = store->load_gen;
		return ferry_manifest__get(pf->mf);
	}
	mf = ferry_manifest__load(path, perr);
	if (!mf)
		return NULL;
	if (!pf) {
		struct parsed_file *more =
			realloc(store->parsed, (store->nparsed + 1) * sizeof(*more));

		if (!more)
			return mf; /* not cached: parsed again next time */
		store->parsed = more;
		pf = &store->parsed[store->nparsed];
		memset(pf, 0, sizeof(*pf));
		pf->path = strdup(path);
		if (!pf->path)
			return mf;
		store->nparsed++;
	}
	ferry_manifest__put(pf->mf);
	pf->mf = ferry_manifest__get(mf);
	pf->dev = st.st_dev;
	pf->ino = st.st_ino;
	pf->size = st.st_size;
	pf->mtime = st.st_mtim;
	pf->ctime = st.st_ctim;
	pf->seen = store->load_gen;
	return mf;
}

/* Forgets files the last load did not find (deleted, or no longer parsing). */
static void prune_parsed(struct ferry_config_store *store)
{
	size_t i, k = 0;

	for (i = 0; i < store->nparsed; i++) {
		if (store->parsed[i].seen == store->load_gen) {
			store->parsed[k++] = store->parsed[i];
			continue;
		}
		free(store->parsed[i].path);
		ferry_manifest__put(store->parsed[i].mf);
	}
	store->nparsed = k;
}

static bool manifest_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.') /* ConfigMap volumes keep ..data and friends beside the files */
		return false;
	return (n > 5 && !strcmp(name + n - 5, ".yaml")) ||
	       (n > 4 && !strcmp(name + n - 4, ".yml")) ||
	       (n > 5 && !strcmp(name + n - 5, ".json"));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct load_state {
	struct ferry_config_store *store;
	struct entry **fresh; /* file objects read by this load */
	size_t nfresh;
	json_t *index; /* entry key -> index in fresh, so that lookups stay O(1) */
	struct str_set rejected; /* keys of objects rejected by this load */
	struct str_set failed_files; /* files that did not parse */
};

static struct entry *fresh_find(const struct load_state *ls, const char *key)
{
	json_t *i = json_object_get(ls->index, key);

	return i ? ls->fresh[json_integer_value(i)] : NULL;
}

static int load_object(struct load_state *ls, struct ferry_manifest *mf, json_t *obj,
		       const char *kind, const char *api_version)
{
	struct vctx c = { .errs = &ls->store->load_errs,
			  .mf = mf,
			  .file = ferry_manifest__name(mf),
			  .seldon_servers = ls->store->seldon_servers };
	char key[2 * K8S_NAME_LEN + 32];
	struct entry *e, *other;
	int ret;

	ret = object_parse(&c, obj, kind, api_version, &e, key, sizeof(key));
	if (ret == -EINVAL && key[0])
		return str_set_add(&ls->rejected, key);
	if (ret <= 0)
		return ret == -ENOMEM ? ret : 0;
	e->from_file = true;
	e->mf = ferry_manifest__get(mf);
	other = fresh_find(ls, key);
	if (!other)
		other = find_entry(ls->store->entries, ls->store->nentries, key, false, false);
	if (other) {
		verr(&c, NULL, NULL, obj, "",
		     "defined again: %s already defines this object; the first one is used, "
		     "delete one of them",
		     other->source);
		entry_free(e);
		return 0;
	}
	if (json_object_set_new(ls->index, key, json_integer((json_int_t)ls->nfresh)) ||
	    entries_push(&ls->fresh, &ls->nfresh, e)) {
		entry_free(e);
		return -ENOMEM;
	}
	return 0;
}

static int load_file(struct load_state *ls, const char *path)
{
	struct ferry_config_error perr;
	struct ferry_manifest *mf;
	int ret = 0;

	mf = parse_cached(ls->store, path, &perr);
	if (!mf) {
		if (errno == ENOMEM)
			return -ENOMEM;
		if (errs_push(&ls->store->load_errs, &perr, NULL))
			return -ENOMEM;
		return str_set_add(&ls->failed_files, path);
	}
	if (!ferry_manifest__ndocs(mf)) {
		/*
		 * An empty file is a write in progress ('kubectl get -o yaml > f'
		 * truncates first): keep what the file held until it has content or
		 * is deleted, rather than delete its deployments and their flows.
		 */
		pr_info("%s: empty; keeping its objects as they were until it is written or removed",
			path);
		ferry_manifest__put(mf);
		return str_set_add(&ls->failed_files, path);
	}
	for (size_t d = 0; d < ferry_manifest__ndocs(mf) && !ret; d++) {
		json_t *doc = ferry_manifest__doc(mf, d), *items;
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		const char *apiv = json_string_value(json_object_get(doc, "apiVersion"));
		size_t klen = kind ? strlen(kind) : 0;

		if (!json_is_object(doc)) {
			struct vctx c = { .errs = &ls->store->load_errs, .mf = mf, .file = path };

			verr(&c, NULL, NULL, doc, "",
			     "expected a Kubernetes object (a mapping with apiVersion and kind), "
			     "found %s",
			     json_type_name(doc));
			continue;
		}
		items = json_object_get(doc, "items");
		if (klen >= 4 && !strcmp(kind + klen - 4, "List") && json_is_array(items)) {
			/* kubectl get -o yaml: kind List; typed lists (FooList) may omit item kinds. */
			char item_kind[128] = "";

			if (klen > 4 && klen - 4 < sizeof(item_kind))
				snprintf(item_kind, sizeof(item_kind), "%.*s", (int)(klen - 4),
					 kind);
			for (size_t i = 0; i < json_array_size(items) && !ret; i++) {
				json_t *item = json_array_get(items, i);
				const char *ik = json_string_value(json_object_get(item, "kind"));
				const char *ia =
					json_string_value(json_object_get(item, "apiVersion"));

				if (!json_is_object(item))
					continue;
				ret = load_object(ls, mf, item, ik ? ik : item_kind,
						  ia ? ia : apiv);
			}
			continue;
		}
		ret = load_object(ls, mf, doc, kind, apiv);
	}
	ferry_manifest__put(mf);
	return ret;
}

int ferry_config_store__load_dir(struct ferry_config_store *store, const char *dir)
{
	struct load_state ls = { .store = store };
	struct entry **keep = NULL;
	size_t nkeep = 0, nnames = 0;
	bool *moved = NULL;
	char **names = NULL;
	struct dirent *de;
	DIR *d;
	int ret = 0;

	errs_clear(&store->load_errs);
	d = opendir(dir);
	if (!d)
		return -errno;
	store->load_gen++;
	ls.index = json_object();
	if (!ls.index) {
		closedir(d);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		char **nn;

		if (!manifest_name_ok(de->d_name))
			continue;
		nn = realloc(names, (nnames + 1) * sizeof(*nn));
		if (!nn) {
			ret = -ENOMEM;
			break;
		}
		names = nn;
		if (asprintf(&names[nnames], "%s/%s", dir, de->d_name) < 0) {
			ret = -ENOMEM;
			break;
		}
		nnames++;
	}
	closedir(d);
	if (ret)
		goto out_free_names;
	if (nnames)
		qsort(names, nnames, sizeof(*names), cmp_str);

	for (size_t i = 0; i < nnames; i++) {
		struct stat st;

		if (stat(names[i], &st) || !S_ISREG(st.st_mode))
			continue;
		if (!st.st_size) {
			/* A write in progress: see load_file(). */
			pr_info("%s: empty; keeping its objects as they were until it is written "
				"or removed",
				names[i]);
			ret = str_set_add(&ls.failed_files, names[i]);
			if (ret)
				goto out_free_fresh;
			continue;
		}
		ret = load_file(&ls, names[i]);
		if (ret)
			goto out_free_fresh;
	}

	/*
	 * The new set: API objects, every file object read now, and the old
	 * version of each object that was rejected now or whose file did not
	 * parse (the last good version stays in force). Objects of files that
	 * are gone are dropped. Built aside so that ENOMEM leaves the store as
	 * it was.
	 */
	moved = calloc(store->nentries + 1, sizeof(*moved));
	if (!moved)
		goto err_nomem;
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *old = store->entries[i];
		struct entry *fresh;

		if (!old->from_file) {
			moved[i] = true;
			continue;
		}
		fresh = fresh_find(&ls, old->key);
		if (fresh) {
			fresh->built = sdep_get(old->built);
			continue;
		}
		if (str_set_has(&ls.rejected, old->key) ||
		    str_set_has(&ls.failed_files, old->source)) {
			pr_warn("%s: %s %s/%s: keeping the last good version", old->source,
				kind_name(old->kind), old->ns, old->name);
			moved[i] = true;
		}
	}
	for (size_t i = 0; i < store->nentries; i++)
		if (moved[i] && entries_push(&keep, &nkeep, store->entries[i]))
			goto err_nomem;
	for (size_t i = 0; i < ls.nfresh; i++)
		if (entries_push(&keep, &nkeep, ls.fresh[i]))
			goto err_nomem;
	for (size_t i = 0; i < store->nentries; i++)
		if (!moved[i])
			entry_free(store->entries[i]);
	free(store->entries);
	store->entries = keep;
	store->nentries = nkeep;
	ls.nfresh = 0; /* now owned by the store */
	keep = NULL;
	ret = (int)store->load_errs.n;
	goto out_free_fresh;

err_nomem:
	ret = -ENOMEM;
out_free_fresh:
	free(moved);
	free(keep);
	for (size_t i = 0; i < ls.nfresh; i++)
		entry_free(ls.fresh[i]);
	free(ls.fresh);
	json_decref(ls.index);
	str_set_free(&ls.rejected);
	str_set_free(&ls.failed_files);
out_free_names:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (ret >= 0)
		prune_parsed(store);
	return ret;
}

void ferry_config_store__set_seldon(struct ferry_config_store *store,
				    const struct ferry_seldon_servers *servers, bool cluster_judged)
{
	store->seldon_servers = servers;
	store->seldon_cluster_judged = cluster_judged;
}

int ferry_config_store__put(struct ferry_config_store *store, json_t *object, const char *origin)
{
	const char *kind = json_string_value(json_object_get(object, "kind"));
	const char *apiv = json_string_value(json_object_get(object, "apiVersion"));
	/* The object's key is known only after parsing: errors go to a scratch list first. */
	struct error_list scratch = {};
	struct vctx c = { .errs = &scratch,
			  .file = origin ? origin : "kubernetes",
			  .seldon_servers = store->seldon_servers,
			  .seldon_cluster_judged = store->seldon_cluster_judged };
	char key[2 * K8S_NAME_LEN + 32];
	struct entry *e = NULL;
	int ret;

	if (!json_is_object(object))
		return -EINVAL;
	errs_drop_key(&store->put_errs, ""); /* errors of objects that had no name */
	ret = object_parse(&c, object, kind, apiv, &e, key, sizeof(key));
	if (key[0])
		errs_drop_key(&store->put_errs, key);
	for (size_t i = 0; i < scratch.n; i++) {
		if (errs_push(&store->put_errs, &scratch.v[i].e, key)) {
			ret = -ENOMEM;
			break;
		}
	}
	free(scratch.v);
	if (ret <= 0) {
		entry_free(e);
		return ret;
	}
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *old = store->entries[i];

		if (strcmp(old->key, key))
			continue;
		e->built = sdep_get(old->built);
		entry_free(old);
		store->entries[i] = e;
		return 0;
	}
	ret = entries_push(&store->entries, &store->nentries, e);
	if (ret)
		entry_free(e);
	return ret;
}

int ferry_config_store__delete(struct ferry_config_store *store, const char *kind,
			       const char *namespace, const char *name)
{
	char key[2 * K8S_NAME_LEN + 32];
	enum obj_kind k;

	if (!strcmp(kind, KIND_SDEP))
		k = OBJ_SDEP;
	else if (!strcmp(kind, KIND_SLICE))
		k = OBJ_SLICE;
	else
		return -ENOENT;
	entry_key(k, namespace && *namespace ? namespace : "default", name, key, sizeof(key));
	errs_drop_key(&store->put_errs, key);
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *e = store->entries[i];

		if (e->from_file || strcmp(e->key, key))
			continue;
		entry_free(e);
		memmove(&store->entries[i], &store->entries[i + 1],
			(store->nentries - i - 1) * sizeof(*store->entries));
		store->nentries--;
		return 0;
	}
	return -ENOENT;
}

/* ----------------------------------------------------------------- build */

struct build_state {
	struct ferry_config_store *store;
	struct entry **slices;
	size_t nslices;
	struct vip_owner *claims; /* VIPs of the deployments in force: the next build's owners */
	size_t nclaims;
	struct str_set novip, shadow, redist;
};

static int cmp_entry_by_key(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	int r = strcmp(x->ns, y->ns);

	return r ? r : strcmp(x->name, y->name);
}

/* Slices are sorted by namespace, service name, name: a service's slices are a run. */
static int slice_cmp(const struct entry *se, const char *ns, const char *service)
{
	int r = strcmp(se->ns, ns);

	return r ? r : strcmp(se->sl->service, service);
}

static int cmp_slice_entries(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	int r = slice_cmp(x, y->ns, y->sl->service);

	return r ? r : strcmp(x->name, y->name);
}

/* Index of the first slice of (ns, service), or where it would be. */
static size_t slices_first(const struct build_state *bs, const char *ns, const char *service)
{
	size_t lo = 0, hi = bs->nslices;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (slice_cmp(bs->slices[mid], ns, service) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void vip_field(struct entry *e, json_t **parent, char *field, size_t len)
{
	json_t *md_ann = json_object_get(json_object_get(e->obj, "metadata"), "annotations");

	if (json_object_get(md_ann, ANN_VIP)) {
		*parent = md_ann;
		snprintf(field, len, "metadata.annotations[\"%s\"]", ANN_VIP);
	} else {
		*parent = json_object_get(json_object_get(e->obj, "spec"), "annotations");
		snprintf(field, len, "spec.annotations[\"%s\"]", ANN_VIP);
	}
}

/*
 * A VIP of one family whose predictors' slices are all of the other family
 * is a mistake, not a wait: reject that version. report: record errors.
 */
static bool sdep_fits_slices(struct build_state *bs, struct entry *e, struct sdep *sd, bool report)
{
	struct vctx c = { .errs = &bs->store->build_errs, .mf = e->mf, .file = e->source };
	char field[256];
	json_t *where;
	bool ok = true;

	snprintf(c.object, sizeof(c.object), "%s %s", KIND_SDEP, sd->key);
	vip_field(e, &where, field, sizeof(field));
	for (size_t v = 0; v < sd->nvips; v++) {
		const struct sd_vip *vip = &sd->vips[v];
		const char *fam = vip->vip.family == FERRY_AF_INET6 ? "IPv6" : "IPv4";
		const char *other = vip->vip.family == FERRY_AF_INET6 ? "IPv4" : "IPv6";

		for (size_t p = 0; p < sd->npreds; p++) {
			const struct sd_predictor *pred = &sd->preds[p];
			size_t same = 0, otherfam = 0;

			for (size_t s = slices_first(bs, sd->ns, pred->service);
			     s < bs->nslices && !slice_cmp(bs->slices[s], sd->ns, pred->service);
			     s++) {
				if (bs->slices[s]->sl->family == vip->vip.family)
					same++;
				else
					otherfam++;
			}
			if (!otherfam || same)
				continue;
			if (report)
				verr(&c, where, ANN_VIP, NULL, field,
				     "VIP %s is %s but the EndpointSlices of service %s (predictor %s) "
				     "are %s only: use an %s VIP or publish %s endpoints",
				     vip->text, fam, pred->service, pred->name, other, other, fam);
			ok = false;
		}
	}
	return ok;
}

struct vip_claim {
	struct ferry_vip vip;
	size_t dep; /* index into the sorted deployments */
};

static int cmp_claim(const void *a, const void *b)
{
	const struct vip_claim *x = a, *y = b;
	int r = vip_cmp(&x->vip, &y->vip);

	if (r)
		return r;
	return x->dep < y->dep ? -1 : x->dep > y->dep;
}

static const char *vip_prev_owner(const struct ferry_config_store *store,
				  const struct ferry_vip *vip)
{
	for (size_t i = 0; i < store->nowners; i++)
		if (!vip_cmp(&store->owners[i].vip, vip))
			return store->owners[i].key;
	return NULL;
}

/* Is vip claimed by a deployment other than dep that keeps its version? */
static bool vip_taken(const struct vip_claim *claims, size_t nclaims, const bool *lost,
		      const struct ferry_vip *vip, size_t dep)
{
	for (size_t k = 0; k < nclaims; k++)
		if (!vip_cmp(&claims[k].vip, vip) && claims[k].dep != dep && !lost[claims[k].dep])
			return true;
	return false;
}

/*
 * A VIP claimed by several deployments goes to the one that held it at the
 * last build, else to the first by namespace/name; every other claimant is
 * rejected and falls back to the version of the last build when that one
 * still fits. cand[i] is each deployment's candidate version; fills used[].
 */
static int resolve_vips(struct build_state *bs, struct entry **deps, size_t ndeps,
			struct sdep **cand, struct sdep **used)
{
	struct vip_claim *claims = NULL;
	size_t nclaims = 0, cap = 0;
	bool *lost;

	lost = calloc(ndeps + 1, sizeof(*lost));
	if (!lost)
		return -ENOMEM;
	for (size_t i = 0; i < ndeps; i++) {
		for (size_t v = 0; cand[i] && v < cand[i]->nvips; v++) {
			if (nclaims == cap) {
				struct vip_claim *nc;

				cap = cap ? cap * 2 : 64;
				nc = realloc(claims, cap * sizeof(*nc));
				if (!nc) {
					free(claims);
					free(lost);
					return -ENOMEM;
				}
				claims = nc;
			}
			claims[nclaims].vip = cand[i]->vips[v].vip;
			claims[nclaims].dep = i;
			nclaims++;
		}
	}
	if (nclaims)
		qsort(claims, nclaims, sizeof(*claims), cmp_claim);

	for (size_t a = 0, b; a < nclaims; a = b) {
		const char *owner = vip_prev_owner(bs->store, &claims[a].vip);
		size_t w = a;

		for (b = a + 1; b < nclaims && !vip_cmp(&claims[a].vip, &claims[b].vip); b++)
			;
		for (size_t k = a; owner && k < b; k++) {
			if (!strcmp(cand[claims[k].dep]->key, owner)) {
				w = k;
				break;
			}
		}
		for (size_t k = a; k < b; k++) {
			size_t i = claims[k].dep;
			struct entry *e = deps[i];
			struct vctx c = { .errs = &bs->store->build_errs,
					  .mf = e->mf,
					  .file = e->source };
			const char *winner = cand[claims[w].dep]->key;
			char field[256], text[64];
			json_t *where;

			if (k == w)
				continue;
			lost[i] = true;
			if (cand[i] != e->sd)
				continue; /* an older version: its newer one was reported already */
			snprintf(c.object, sizeof(c.object), "%s %s", KIND_SDEP, cand[i]->key);
			vip_field(e, &where, field, sizeof(field));
			vip_format(&claims[k].vip, text, sizeof(text));
			verr(&c, where, ANN_VIP, NULL, field,
			     "VIP %s is already used by SeldonDeployment %s: give this deployment "
			     "another VIP or remove it from %s",
			     text, winner, winner);
		}
	}

	for (size_t i = 0; i < ndeps; i++) {
		struct sdep *fb = deps[i]->built;
		bool free_vips = true;

		if (!cand[i])
			continue;
		if (!lost[i]) {
			used[i] = cand[i];
			continue;
		}
		if (!fb || fb == cand[i] || !sdep_fits_slices(bs, deps[i], fb, false))
			continue;
		for (size_t v = 0; v < fb->nvips && free_vips; v++)
			free_vips = !vip_taken(claims, nclaims, lost, &fb->vips[v].vip, i);
		if (free_vips) {
			pr_warn("%s: SeldonDeployment %s: rejected; keeping the version in force",
				deps[i]->source, fb->key);
			used[i] = fb;
		}
	}
	free(claims);
	free(lost);
	return 0;
}

/* The slice port for a VIP: by name (http/grpc), the only one, or the same number. */
static const struct sl_port *pick_port(const struct slice *sl, const struct ferry_vip *vip)
{
	const char *want = ntohs(vip->port) == 8000 ? "http" :
			   ntohs(vip->port) == 5001 ? "grpc" :
						      NULL;
	const struct sl_port *only = NULL;
	size_t n = 0;

	for (size_t i = 0; i < sl->nports; i++) {
		if (sl->ports[i].proto != vip->proto)
			continue;
		if (want && !strcmp(sl->ports[i].name, want))
			return &sl->ports[i];
		only = &sl->ports[i];
		n++;
	}
	if (n == 1)
		return only;
	for (size_t i = 0; i < sl->nports; i++)
		if (sl->ports[i].proto == vip->proto && sl->ports[i].port == ntohs(vip->port))
			return &sl->ports[i];
	return NULL;
}

static int cmp_backend(const void *a, const void *b)
{
	const struct ferry_model_backend *x = a, *y = b;
	int r;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	r = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (r)
		return r;
	if (x->port != y->port)
		return ntohs(x->port) < ntohs(y->port) ? -1 : 1;
	return 0;
}

static int gather_backends(struct build_state *bs, const struct sdep *sd, const struct sd_vip *vip,
			   const struct sd_predictor *pred, struct ferry_model_predictor *mp)
{
	size_t cap = 0, n = 0;

	for (size_t s = slices_first(bs, sd->ns, pred->service);
	     s < bs->nslices && !slice_cmp(bs->slices[s], sd->ns, pred->service); s++) {
		struct entry *se = bs->slices[s];
		const struct slice *sl = se->sl;
		const struct sl_port *port;

		if (sl->family != vip->vip.family || !sl->neps)
			continue;
		port = pick_port(sl, &vip->vip);
		if (!port) {
			struct vctx c = { .errs = &bs->store->build_errs,
					  .mf = se->mf,
					  .file = se->source };

			snprintf(c.object, sizeof(c.object), "%s %.63s/%.230s", KIND_SLICE, se->ns,
				 se->name);
			if (ntohs(vip->vip.port) == 8000 || ntohs(vip->vip.port) == 5001)
				verr(&c, se->obj, "ports", NULL, "ports",
				     "no port for VIP %s of SeldonDeployment %s (predictor %s): "
				     "name a port %s (Seldon's port for %u), keep a single %s "
				     "port, or add one numbered %u; this slice's endpoints are not "
				     "used",
				     vip->text, sd->key, pred->name,
				     ntohs(vip->vip.port) == 5001 ? "grpc" : "http",
				     ntohs(vip->vip.port),
				     vip->vip.proto == IPPROTO_UDP ? "UDP" : "TCP",
				     ntohs(vip->vip.port));
			else
				/* Names pick a port only for Seldon's own 8000 (http) and 5001 (grpc). */
				verr(&c, se->obj, "ports", NULL, "ports",
				     "no port for VIP %s of SeldonDeployment %s (predictor %s): a "
				     "VIP on port %u needs the slice to have a single %s port, or "
				     "one numbered %u (port names choose only for VIP ports 8000 "
				     "and 5001); this slice's endpoints are not used",
				     vip->text, sd->key, pred->name, ntohs(vip->vip.port),
				     vip->vip.proto == IPPROTO_UDP ? "UDP" : "TCP",
				     ntohs(vip->vip.port));
			continue;
		}
		if (n + sl->neps > cap) {
			struct ferry_model_backend *nb;

			cap = (n + sl->neps) * 2;
			nb = realloc(mp->backends, cap * sizeof(*nb));
			if (!nb)
				return -ENOMEM;
			mp->backends = nb;
		}
		for (size_t i = 0; i < sl->neps; i++) {
			struct ferry_model_backend *b = &mp->backends[n++];

			memset(b, 0, sizeof(*b));
			b->family = sl->family;
			b->state = sl->eps[i].state;
			b->port = htons(port->port);
			memcpy(b->addr, sl->eps[i].addr, sizeof(b->addr));
		}
	}
	if (!n)
		return 0;
	qsort(mp->backends, n, sizeof(*mp->backends), cmp_backend);
	/* The same address:port in two slices is one backend; the most available state wins. */
	mp->nbackends = 0;
	for (size_t i = 0; i < n; i++) {
		struct ferry_model_backend *last =
			mp->nbackends ? &mp->backends[mp->nbackends - 1] : NULL;

		if (last && !cmp_backend(last, &mp->backends[i])) {
			if (mp->backends[i].state < last->state)
				last->state = mp->backends[i].state;
			continue;
		}
		mp->backends[mp->nbackends++] = mp->backends[i];
	}
	return 0;
}

/*
 * A predictor with weight and no active backend gives its share to the
 * others in proportion to their weights; the sum is FERRY_WEIGHT_ONE, the
 * rounding difference going to the largest.
 */
static int redistribute(struct build_state *bs, const struct sdep *sd,
			struct ferry_model_service *svc)
{
	__u64 sum = 0;
	size_t nactive = 0, largest = 0;
	__u32 total = 0;
	bool *active;

	active = calloc(svc->npredictors + 1, sizeof(*active));
	if (!active)
		return -ENOMEM;
	for (size_t p = 0; p < svc->npredictors; p++) {
		struct ferry_model_predictor *mp = &svc->predictors[p];

		mp->weight_effective = 0;
		if (mp->shadow)
			continue;
		for (size_t b = 0; b < mp->nbackends && !active[p]; b++)
			active[p] = mp->backends[b].state == FERRY_BE_ACTIVE;
		if (active[p]) {
			nactive++;
			sum += mp->weight_configured;
		}
	}
	for (size_t p = 0; p < svc->npredictors; p++) {
		struct ferry_model_predictor *mp = &svc->predictors[p];
		char key[FERRY_NAME_LEN + FERRY_PRED_NAME_LEN + 16];

		if (mp->shadow || active[p] || !mp->weight_configured)
			continue;
		/* "|" then what happens to its share: 'R' redistributed, 'D' dropped (none active). */
		snprintf(key, sizeof(key), "%s predictor %s|%c", sd->key, mp->name,
			 nactive ? 'R' : 'D');
		if (!str_set_has(&bs->redist, key) && str_set_add(&bs->redist, key)) {
			free(active);
			return -ENOMEM;
		}
	}
	for (size_t p = 0; nactive && p < svc->npredictors; p++) {
		struct ferry_model_predictor *mp = &svc->predictors[p];

		if (!active[p])
			continue;
		/* Active predictors all at 0 (explicit): split evenly rather than drop all. */
		mp->weight_effective =
			sum ? (__u32)((__u64)mp->weight_configured * FERRY_WEIGHT_ONE / sum) :
			      FERRY_WEIGHT_ONE / (__u32)nactive;
		total += mp->weight_effective;
		if (mp->weight_effective > svc->predictors[largest].weight_effective ||
		    !active[largest])
			largest = p;
	}
	if (nactive)
		svc->predictors[largest].weight_effective += FERRY_WEIGHT_ONE - total;
	free(active);
	return 0;
}

static int build_service(struct build_state *bs, const struct sdep *sd, const struct sd_vip *vip,
			 struct ferry_model_service *svc)
{
	int err;

	memset(svc, 0, sizeof(*svc));
	svc->vip = vip->vip;
	snprintf(svc->deployment, sizeof(svc->deployment), "%s", sd->key);
	svc->flags = sd->flags;
	svc->sample_every = sd->sample_every;
	svc->predictors = calloc(sd->npreds, sizeof(*svc->predictors));
	if (!svc->predictors)
		return -ENOMEM;
	svc->npredictors = sd->npreds;
	for (size_t p = 0; p < sd->npreds; p++) {
		struct ferry_model_predictor *mp = &svc->predictors[p];

		snprintf(mp->name, sizeof(mp->name), "%s", sd->preds[p].name);
		mp->weight_configured = sd->preds[p].weight;
		mp->shadow = sd->preds[p].shadow;
		err = gather_backends(bs, sd, vip, &sd->preds[p], mp);
		if (err)
			return err;
	}
	return redistribute(bs, sd, svc);
}

static int cmp_service(const void *a, const void *b)
{
	const struct ferry_model_service *x = a, *y = b;
	int r = vip_cmp(&x->vip, &y->vip);

	return r ? r : strcmp(x->deployment, y->deployment);
}

/* Logs what changed since the last build, once per change. */
static void note_changes(struct ferry_config_store *store, struct build_state *bs)
{
	for (size_t i = 0; i < bs->novip.n; i++)
		if (!str_set_has(&store->noted_novip, bs->novip.v[i]))
			pr_info("SeldonDeployment %s: no %s annotation: not balanced by ferry",
				bs->novip.v[i], ANN_VIP);
	for (size_t i = 0; i < bs->shadow.n; i++)
		if (!str_set_has(&store->noted_shadow, bs->shadow.v[i]))
			pr_warn("SeldonDeployment %s: shadow predictor accepted but not served: an "
				"L4 balancer cannot mirror a TCP stream",
				bs->shadow.v[i]);
	for (size_t i = 0; i < bs->redist.n; i++) {
		const char *v = bs->redist.v[i];
		int len = (int)(strrchr(v, '|') - v);

		if (str_set_has(&store->noted_redist, v))
			continue;
		if (v[len + 1] == 'R')
			pr_warn("SeldonDeployment %.*s has no ready backend; its traffic goes to the "
				"other predictors in proportion to their weights",
				len, v);
		else
			pr_warn("SeldonDeployment %.*s has no ready backend, nor has any other "
				"predictor: new connections to the VIP are dropped",
				len, v);
	}
	for (size_t i = 0; i < store->noted_redist.n; i++) {
		const char *v = store->noted_redist.v[i];
		int len = (int)(strrchr(v, '|') - v);
		bool still = false;

		for (size_t j = 0; j < bs->redist.n && !still; j++)
			still = !strncmp(bs->redist.v[j], v, (size_t)len + 1);
		if (!still)
			pr_info("SeldonDeployment %.*s has a ready backend again; it gets its "
				"configured traffic",
				len, v);
	}
	str_set_free(&store->noted_novip);
	str_set_free(&store->noted_shadow);
	str_set_free(&store->noted_redist);
	store->noted_novip = bs->novip;
	store->noted_shadow = bs->shadow;
	store->noted_redist = bs->redist;
	memset(&bs->novip, 0, sizeof(bs->novip));
	memset(&bs->shadow, 0, sizeof(bs->shadow));
	memset(&bs->redist, 0, sizeof(bs->redist));
}

int ferry_config_store__build(struct ferry_config_store *store, struct ferry_model *model)
{
	struct build_state bs = { .store = store };
	struct entry **deps = NULL;
	struct sdep **used = NULL, **cand = NULL;
	size_t ndeps = 0, nsvc = 0;
	int err = 0;

	memset(model, 0, sizeof(*model));
	errs_clear(&store->build_errs);
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *e = store->entries[i];

		if (e->kind == OBJ_SLICE)
			err = entries_push(&bs.slices, &bs.nslices, e);
		else
			err = entries_push(&deps, &ndeps, e);
		if (err)
			goto out_free;
	}
	if (ndeps)
		qsort(deps, ndeps, sizeof(*deps), cmp_entry_by_key);
	if (bs.nslices)
		qsort(bs.slices, bs.nslices, sizeof(*bs.slices), cmp_slice_entries);
	used = calloc(ndeps + 1, sizeof(*used));
	if (!used) {
		err = -ENOMEM;
		goto out_free;
	}

	/* The version of each deployment in force: slices first, then VIP ownership. */
	cand = calloc(ndeps + 1, sizeof(*cand));
	if (!cand) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < ndeps; i++) {
		struct entry *e = deps[i];

		if (sdep_fits_slices(&bs, e, e->sd, true)) {
			cand[i] = e->sd;
		} else if (e->built && e->built != e->sd &&
			   sdep_fits_slices(&bs, e, e->built, false)) {
			pr_warn("%s: SeldonDeployment %s: rejected; keeping the version in force",
				e->source, e->sd->key);
			cand[i] = e->built;
		}
	}
	err = resolve_vips(&bs, deps, ndeps, cand, used);
	if (err)
		goto out_free;
	for (size_t i = 0; i < ndeps; i++) {
		struct sdep *sd = used[i];

		if (!sd)
			continue;
		if (!sd->nvips) {
			err = str_set_add(&bs.novip, sd->key);
			if (err)
				goto out_free;
			continue;
		}
		if (sd->has_shadow && (err = str_set_add(&bs.shadow, sd->key)))
			goto out_free;
		for (size_t v = 0; v < sd->nvips; v++) {
			struct vip_owner *nc = realloc(bs.claims, (bs.nclaims + 1) * sizeof(*nc));

			if (!nc) {
				err = -ENOMEM;
				goto out_free;
			}
			bs.claims = nc;
			nc[bs.nclaims].vip = sd->vips[v].vip;
			snprintf(nc[bs.nclaims].key, sizeof(nc->key), "%s", sd->key);
			bs.nclaims++;
			nsvc++;
		}
	}

	model->services = calloc(nsvc + 1, sizeof(*model->services));
	if (!model->services) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < ndeps; i++) {
		for (size_t v = 0; used[i] && v < used[i]->nvips; v++) {
			err = build_service(&bs, used[i], &used[i]->vips[v],
					    &model->services[model->nservices++]);
			if (err)
				goto out_free;
		}
	}
	qsort(model->services, model->nservices, sizeof(*model->services), cmp_service);

	/* Commit: this build's VIP owners and versions are what the next build defends. */
	free(store->owners);
	store->owners = bs.claims;
	store->nowners = bs.nclaims;
	bs.claims = NULL;
	for (size_t i = 0; i < ndeps; i++) {
		if (!used[i] || used[i] == deps[i]->built)
			continue;
		sdep_put(deps[i]->built);
		deps[i]->built = sdep_get(used[i]);
	}
	note_changes(store, &bs);

out_free:
	if (err)
		ferry_model__free(model);
	free(used);
	free(cand);
	free(deps);
	free(bs.slices);
	free(bs.claims);
	str_set_free(&bs.novip);
	str_set_free(&bs.shadow);
	str_set_free(&bs.redist);
	return err;
}

/* ---------------------------------------------------------------- errors */

size_t ferry_config_store__nerrors(const struct ferry_config_store *store)
{
	return store->load_errs.n + store->put_errs.n + store->build_errs.n;
}

const struct ferry_config_error *ferry_config_store__error(const struct ferry_config_store *store,
							   size_t i)
{
	if (i < store->load_errs.n)
		return &store->load_errs.v[i].e;
	i -= store->load_errs.n;
	if (i < store->put_errs.n)
		return &store->put_errs.v[i].e;
	i -= store->put_errs.n;
	if (i < store->build_errs.n)
		return &store->build_errs.v[i].e;
	return NULL;
}

void ferry_config_error__format(const struct ferry_config_error *err, char *buf, size_t len)
{
	size_t off = 0;

#define APPEND(...)                                                                    \
	do {                                                                           \
		int __n = snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__); \
		if (__n > 0)                                                           \
			off += (size_t)__n;                                            \
	} while (0)
	if (!len)
		return;
	buf[0] = '\0';
	APPEND("%s", err->file);
	if (err->line > 0) {
		APPEND(":%d", err->line);
		if (err->column > 0)
			APPEND(":%d", err->column);
	}
	if (err->object[0])
		APPEND(": %s", err->object);
	if (err->field[0])
		APPEND(": %s", err->field);
	APPEND(": %s", err->message);
#undef APPEND
}
