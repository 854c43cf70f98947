// SPDX-License-Identifier: GPL-2.0-only
/*
 * EndpointSlice rules: ports and ready endpoints of the slices a predictor uses.
 */
#include "source/config_internal.h"

/* ---------------------------------------------------- EndpointSlice rules */

/*
 * Long on purpose: the EndpointSlice fields in document order, each with its error.
 */
/* Returns 0 with *out (NULL when the slice is of no interest: FQDN, no service), or -errno. */
int parse_slice(struct vctx *c, json_t *obj, struct slice **out)
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
		struct sl_port *sp = &sl->ports[sl->nports];
		struct k8s_port kp;
		int ret;

		ret = read_k8s_port(c, json_array_get(ports, i), "ports", i, true, &kp);
		if (ret <= 0) {
			bad |= ret < 0;
			continue;
		}
		snprintf(sp->name, sizeof(sp->name), "%s", kp.name ? kp.name : "");
		sp->port = kp.port;
		sp->proto = kp.proto;
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

		/* field: formatted for an error only (20,000 slices in a large first load) */
		if (!json_is_object(ep)) {
			snprintf(field, sizeof(field), "endpoints[%zu]", i);
			verr(c, NULL, NULL, ep, field, "expected a mapping, found %s",
			     json_type_name(ep));
			bad = true;
			continue;
		}
		addrs = json_object_get(ep, "addresses");
		if (!json_is_array(addrs) || !json_array_size(addrs)) {
			snprintf(field, sizeof(field), "endpoints[%zu].addresses", i);
			verr(c, ep, addrs ? "addresses" : NULL, ep, field,
			     "expected a list with at least one address");
			bad = true;
			continue;
		}
		/* Kubernetes: the addresses are fungible and consumers may use only the first. */
		addr = json_string_value(json_array_get(addrs, 0));
		if (!addr || inet_pton(sl->family == FERRY_AF_INET6 ? AF_INET6 : AF_INET, addr,
				       se->addr) != 1) {
			snprintf(field, sizeof(field), "endpoints[%zu].addresses[0]", i);
			verr(c, NULL, NULL, json_array_get(addrs, 0), field,
			     "\"%s\" is not an %s address (the slice's addressType)",
			     addr ? addr : "(not a string)", atype);
			bad = true;
			continue;
		}
		cond = json_object_get(ep, "conditions");
		if (cond && !json_is_object(cond)) {
			snprintf(field, sizeof(field), "endpoints[%zu].conditions", i);
			cond = get_object(c, ep, "conditions", field); /* the error, unless null */
		}
		ready = json_object_get(cond, "ready");
		term = json_object_get(cond, "terminating");
		if ((ready && !json_is_null(ready) && !json_is_boolean(ready)) ||
		    (term && !json_is_null(term) && !json_is_boolean(term))) {
			snprintf(field, sizeof(field), "endpoints[%zu].conditions", i);
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
