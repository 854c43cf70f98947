// SPDX-License-Identifier: GPL-2.0-only
/*
 * Service (v1) rules: the ClusterIPs and ports a `ferry.io/vip: service/NAME`
 * entry takes. Every Service of the cluster passes through here, and most
 * are none of ferry's business, so the shapes ferry cannot balance (headless,
 * ExternalName, no ClusterIP yet) are recorded, not rejected: they are errors
 * only for a deployment that names the Service (config_build.c).
 */
#include "source/config_internal.h"

static int parse_cluster_ips(struct vctx *c, json_t *spec, struct k8s_svc *svc)
{
	json_t *ips = json_object_get(spec, "clusterIPs"), *one;
	const char *field = "spec.clusterIPs";
	size_t n;

	if (!ips || json_is_null(ips) || (json_is_array(ips) && !json_array_size(ips))) {
		one = json_object_get(spec, "clusterIP");
		if (!one || json_is_null(one))
			return 0;
		ips = one;
		field = "spec.clusterIP";
	}
	n = json_is_array(ips) ? json_array_size(ips) : 1;
	svc->ips = calloc(n + 1, sizeof(*svc->ips));
	if (!svc->ips)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_is_array(ips) ? json_array_get(ips, i) : ips;
		const char *text = json_string_value(v);
		struct svc_ip *ip = &svc->ips[svc->nips];
		char f[64];

		snprintf(f, sizeof(f), json_is_array(ips) ? "%s[%zu]" : "%s", field, i);
		if (text && (!strcmp(text, "None") || !*text)) {
			svc->headless = !*text ? svc->headless : true;
			continue;
		}
		if (text && inet_pton(AF_INET, text, ip->addr) == 1) {
			ip->family = FERRY_AF_INET;
		} else if (text && inet_pton(AF_INET6, text, ip->addr) == 1) {
			ip->family = FERRY_AF_INET6;
		} else {
			verr(c, NULL, NULL, v, f,
			     "\"%s\" is not an IPv4 or IPv6 address: write the address, \"None\" "
			     "(headless) or leave it out",
			     text ? text : json_type_name(v));
			return -EINVAL;
		}
		svc->nips++;
	}
	return 0;
}

static int parse_ports(struct vctx *c, json_t *spec, struct k8s_svc *svc)
{
	json_t *ports = json_object_get(spec, "ports");
	bool bad = false;

	if (ports && !json_is_null(ports) && !json_is_array(ports)) {
		verr(c, spec, "ports", ports, "spec.ports", "expected a list, found %s",
		     json_type_name(ports));
		return -EINVAL;
	}
	svc->ports = calloc(json_array_size(ports) + 1, sizeof(*svc->ports));
	if (!svc->ports)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(ports); i++) {
		json_t *p = json_array_get(ports, i), *target;
		struct svc_port *sp = &svc->ports[svc->nports];
		struct k8s_port kp;
		char field[64];
		int ret;

		ret = read_k8s_port(c, p, "spec.ports", i, false, &kp);
		if (ret <= 0) {
			bad |= ret < 0;
			continue;
		}
		snprintf(field, sizeof(field), "spec.ports[%zu].targetPort", i);
		target = json_object_get(p, "targetPort");
		if (json_is_integer(target) && json_integer_value(target) >= 1 &&
		    json_integer_value(target) <= 65535) {
			sp->target_port = (__u16)json_integer_value(target);
		} else if (json_is_string(target) && *json_string_value(target)) {
			const char *t = json_string_value(target);
			char *end;
			long v = strtol(t, &end, 10);

			/* kubectl's YAML may quote a number: "8000" is the number. */
			if (!*end && v >= 1 && v <= 65535)
				sp->target_port = (__u16)v;
			else
				snprintf(sp->target_name, sizeof(sp->target_name), "%s", t);
		} else if (!target || json_is_null(target)) {
			sp->target_port = kp.port; /* Kubernetes' default */
		} else {
			verr(c, p, "targetPort", target, field,
			     "expected a port number or a port name, found %s",
			     json_type_name(target));
			bad = true;
			continue;
		}
		snprintf(sp->name, sizeof(sp->name), "%s", kp.name ? kp.name : "");
		sp->port = kp.port;
		sp->proto = kp.proto;
		svc->nports++;
	}
	return bad ? -EINVAL : 0;
}

/* Returns 0 with *out, or -EINVAL (errors recorded) / -ENOMEM. */
int parse_service(struct vctx *c, json_t *obj, struct k8s_svc **out)
{
	json_t *spec, *labels;
	const char *type, *affinity;
	int nerrs = c->nerrs;
	struct k8s_svc *svc;
	bool bad = false;
	int err;

	*out = NULL;
	spec = get_object(c, obj, "spec", "spec");
	labels = get_object(c, json_object_get(obj, "metadata"), "labels", "metadata.labels");
	if (c->nerrs != nerrs)
		return -EINVAL;
	type = spec ? get_string(c, spec, "type", "spec.type", &bad) : NULL;
	affinity = spec ? get_string(c, spec, "sessionAffinity", "spec.sessionAffinity", &bad) :
			  NULL;
	if (bad)
		return -EINVAL;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	snprintf(svc->type, sizeof(svc->type), "%s", type ? type : "ClusterIP");
	svc->client_ip = affinity && !strcmp(affinity, "ClientIP");
	svc->proxy_label = json_object_get(labels, LABEL_SERVICE_PROXY_NAME) != NULL;
	err = parse_cluster_ips(c, spec, svc);
	err = err ?: parse_ports(c, spec, svc);
	if (err) {
		k8s_svc_free(svc);
		return err;
	}
	*out = svc;
	return 0;
}
