// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferry's SeldonDeployment annotations (annotations.h), one entry each: the
 * name, its parser (which writes the value into struct sdep), and the two
 * columns docs/configuration.md shows for it (tests/test_annotations.c
 * checks that table against this one).
 */
#include "source/annotations.h"
#include "source/config_internal.h"

/* A Service name is a DNS label: a-z, 0-9 and '-', 63 at most, a letter first. */
static bool dns_label(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > 63 || !(name[0] >= 'a' && name[0] <= 'z') || name[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-'))
			return false;
	return true;
}

/* service/NAME: recorded now, resolved against the Service at each build. */
static int parse_svc_ref(struct vctx *c, const char *name, json_t *where, const char *field,
			 struct sdep *sd)
{
	struct sd_svc_ref *r;

	if (!dns_label(name)) {
		verr(c, where, ANN_VIP, NULL, field,
		     "\"%s%s\": \"%s\" is not a Service name (lower-case letters, digits and "
		     "'-', a letter first, 63 at most): write service/NAME with the name of a "
		     "Service in this deployment's namespace",
		     VIP_SERVICE_PREFIX, name, name);
		errno = EINVAL;
		return -EINVAL;
	}
	for (size_t i = 0; i < sd->nsvcs; i++) {
		if (!strcmp(sd->svcs[i].name, name)) {
			verr(c, where, ANN_VIP, NULL, field, "%s%s is listed twice: list it once",
			     VIP_SERVICE_PREFIX, name);
			errno = EINVAL;
			return -EINVAL;
		}
	}
	r = realloc(sd->svcs, (sd->nsvcs + 1) * sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		return -ENOMEM;
	}
	sd->svcs = r;
	snprintf(r[sd->nsvcs].name, sizeof(r->name), "%s", name);
	sd->nsvcs++;
	return 0;
}

static int parse_ann_vip(struct vctx *c, const char *value, json_t *where, const char *field,
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
		if (!strncmp(tok, VIP_SERVICE_PREFIX, strlen(VIP_SERVICE_PREFIX))) {
			if (parse_svc_ref(c, tok + strlen(VIP_SERVICE_PREFIX), where, field, sd)) {
				bad = 1;
				if (errno == ENOMEM) {
					free(copy);
					return -ENOMEM;
				}
			}
			continue;
		}
		v = realloc(sd->vips, (sd->nvips + 1) * sizeof(*v));
		if (!v) {
			free(copy);
			return -ENOMEM;
		}
		sd->vips = v;
		v = &sd->vips[sd->nvips];
		memset(v, 0, sizeof(*v));
		if (ferry_vip__parse(tok, &v->vip, why, sizeof(why))) {
			verr(c, where, ANN_VIP, NULL, field, "%s", why);
			bad = 1;
			continue;
		}
		ferry_vip__format(&v->vip, v->text, sizeof(v->text));
		for (size_t i = 0; i < sd->nvips; i++) {
			if (!vip_cmp(&sd->vips[i].vip, &v->vip)) {
				verr(c, where, ANN_VIP, NULL, field,
				     "VIP %s is listed twice: list it once", v->text);
				bad = 1;
			}
		}
		sd->nvips++;
	}
	if (!sd->nvips && !sd->nsvcs && !bad) {
		verr(c, where, ANN_VIP, NULL, field,
		     "no VIP in \"%s\": write ADDR:PORT[,ADDR:PORT...] or service/NAME, e.g. "
		     "198.18.100.10:8000 or service/iris, or remove the annotation",
		     value);
		bad = 1;
	}
	free(copy);
	return bad ? -EINVAL : 0;
}

static int parse_ann_affinity(struct vctx *c, const char *value, json_t *where, const char *field,
			      struct sdep *sd)
{
	if (!strcmp(value, "client-ip")) {
		sd->flags |= FERRY_SVC_F_HASH_SRC_ADDR;
	} else if (strcmp(value, "none")) {
		verr(c, where, ANN_AFFINITY, NULL, field,
		     "unknown affinity \"%s\": use client-ip (every connection of a client "
		     "address goes to the same backend) or none",
		     value);
		return -EINVAL;
	}
	return 0;
}

static int parse_ann_latency_sample(struct vctx *c, const char *value, json_t *where,
				    const char *field, struct sdep *sd)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(value, &end, 10);
	if (!*value || *end || errno || n > UINT32_MAX || value[0] == '-') {
		verr(c, where, ANN_LATENCY_SAMPLE, NULL, field,
		     "\"%s\" is not a whole number: use 0 (off), 1 (every connection) or "
		     "N (one connection in N)",
		     value);
		return -EINVAL;
	}
	sd->sample_every = (__u32)n;
	return 0;
}

static int parse_ann_protocol(struct vctx *c, const char *value, json_t *where, const char *field,
			      struct sdep *sd)
{
	sd->flags &= ~(FERRY_SVC_F_PROTO_HTTP1 | FERRY_SVC_F_PROTO_H2C);
	if (!strcmp(value, "http1")) {
		sd->flags |= FERRY_SVC_F_PROTO_HTTP1;
	} else if (!strcmp(value, "h2c")) {
		sd->flags |= FERRY_SVC_F_PROTO_H2C;
	} else if (strcmp(value, "auto")) {
		verr(c, where, ANN_PROTOCOL, NULL, field,
		     "unknown protocol \"%s\": use auto (HTTP/2 recognised by its connection "
		     "preface), http1 or h2c (gRPC and other clear-text HTTP/2)",
		     value);
		return -EINVAL;
	}
	return 0;
}

/* In the order they are read (and errors reported). */
const struct ferry_annotation ferry_annotations[] = {
	{ ANN_VIP, "`ADDR:PORT`, `[ADDR]:PORT`, `/udp` suffix, `service/NAME`, comma separated",
	  "the deployment's VIPs, one service each (see VIPs above); `service/NAME` takes every "
	  "ClusterIP and port of Service NAME (see VIPs from a Service)",
	  parse_ann_vip },
	{ ANN_AFFINITY, "`client-ip`, `none` (default)",
	  "`client-ip` sets `FERRY_SVC_F_HASH_SRC_ADDR`: every connection from one client "
	  "address goes to the same backend",
	  parse_ann_affinity },
	{ ANN_LATENCY_SAMPLE, "`0` off, `1` every connection (default), `N` one connection in N",
	  "`sample_every`", parse_ann_latency_sample },
	{ ANN_PROTOCOL, "`auto` (default), `http1`, `h2c`",
	  "how the kernel reads requests: `auto` recognises HTTP/2 by the client's connection "
	  "preface and HTTP/1.x by its request line; `http1` (`FERRY_SVC_F_PROTO_HTTP1`) and "
	  "`h2c` (`FERRY_SVC_F_PROTO_H2C`) skip the guess (see docs/metrics.md, Requests)",
	  parse_ann_protocol },
};

const size_t ferry_nannotations = sizeof(ferry_annotations) / sizeof(ferry_annotations[0]);
