// SPDX-License-Identifier: GPL-2.0-only
/*
 * Cross-object rules and the mapping from objects in force to a struct
 * ferry_model: VIP claims, slice ports, backends, weights, change notes.
 */
#include "source/config_internal.h"
#include "weights.h"

/* ----------------------------------------------------------------- build */

struct build_state {
	struct ferry_config_store *store;
	struct entry **slices;
	size_t nslices;
	struct entry **services; /* Service objects, for service/NAME VIPs */
	size_t nservices;
	struct vip_owner *claims; /* VIPs of the deployments in force: the next build's owners */
	size_t nclaims;
	struct str_set novip, shadow, redist;
	struct str_set waitsvc, nolabel, family; /* see struct ferry_config_store */
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

/*
 * Where a deployment's VIP annotation is, for an error about it. Found on
 * first use only: the entry's trees were shed after validation, and finding
 * it reads the file again (a full build of 10,000 error-free deployments
 * read all 10,000 again when this was done up front).
 */
struct vip_site {
	struct entry *e;
	json_t *parent;
	char field[256];
	bool known;
};

static json_t *vip_where(struct vip_site *site)
{
	json_t *obj, *md_ann;

	if (site->known)
		return site->parent;
	site->known = true;
	obj = entry_obj(site->e);
	md_ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	if (json_object_get(md_ann, ANN_VIP)) {
		site->parent = md_ann;
		snprintf(site->field, sizeof(site->field), "metadata.annotations[\"%s\"]", ANN_VIP);
	} else {
		site->parent = json_object_get(json_object_get(obj, "spec"), "annotations");
		snprintf(site->field, sizeof(site->field), "spec.annotations[\"%s\"]", ANN_VIP);
	}
	return site->parent;
}

/* verr() about site's VIP annotation: vip_where() fills site->field before verr() reads it. */
#define vip_err(c, site, ...) verr(c, vip_where(site), ANN_VIP, NULL, (site)->field, __VA_ARGS__)

/*
 * A VIP of one family whose predictors' slices are all of the other family
 * is a mistake, not a wait: reject that version. report: record errors.
 */
static bool sdep_fits_slices(struct build_state *bs, struct entry *e, struct sdep *sd, bool report)
{
	struct vctx c = { .errs = &bs->store->build_errs, .mf = e->mf, .file = e->source };
	struct vip_site site = { .e = e };
	bool ok = true;

	snprintf(c.object, sizeof(c.object), "%s %s", KIND_SDEP, sd->key);
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
				vip_err(&c, &site,
					"VIP %s is %s but the EndpointSlices of service %s (predictor %s) "
					"are %s only: use an %s VIP or publish %s endpoints",
					vip->text, fam, pred->service, pred->name, other, other,
					fam);
			ok = false;
		}
	}
	return ok;
}

static struct entry *find_service(struct build_state *bs, const char *ns, const char *name)
{
	for (size_t i = 0; i < bs->nservices; i++)
		if (!strcmp(bs->services[i]->ns, ns) && !strcmp(bs->services[i]->name, name))
			return bs->services[i];
	return NULL;
}

/* Has a predictor of sd slices, all of them of the family other than fam? */
static bool family_unserved(struct build_state *bs, const struct sdep *sd, __u8 fam)
{
	for (size_t p = 0; p < sd->npreds; p++) {
		size_t same = 0, other = 0;

		for (size_t s = slices_first(bs, sd->ns, sd->preds[p].service);
		     s < bs->nslices && !slice_cmp(bs->slices[s], sd->ns, sd->preds[p].service);
		     s++) {
			if (bs->slices[s]->sl->family == fam)
				same++;
			else
				other++;
		}
		if (other && !same)
			return true;
	}
	return false;
}

static void *dup_array(const void *v, size_t n, size_t size)
{
	void *d = calloc(n + 1, size);

	if (d && n)
		memcpy(d, v, n * size);
	return d;
}

static int note_add(struct str_set *set, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int note_add(struct str_set *set, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return str_set_has(set, text) ? 0 : str_set_add(set, text);
}

/* Adds one VIP of Service svc (at ip, port) to x; a VIP listed twice is an error. */
static int add_svc_vip(struct vctx *c, struct vip_site *site, struct sdep *x, const char *service,
		       const struct k8s_svc *svc, const struct svc_ip *ip,
		       const struct svc_port *port)
{
	struct sd_vip *nv, *v;

	nv = realloc(x->vips, (x->nvips + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	x->vips = nv;
	v = &nv[x->nvips];
	memset(v, 0, sizeof(*v));
	v->vip.family = ip->family;
	memcpy(v->vip.addr, ip->addr, sizeof(v->vip.addr));
	v->vip.port = htons(port->port);
	v->vip.proto = port->proto;
	ferry_vip__format(&v->vip, v->text, sizeof(v->text));
	snprintf(v->service, sizeof(v->service), "%s", service);
	snprintf(v->port_name, sizeof(v->port_name), "%s", port->name);
	snprintf(v->target_name, sizeof(v->target_name), "%s", port->target_name);
	v->target_port = port->target_port;
	v->flags = svc->client_ip ? FERRY_SVC_F_HASH_SRC_ADDR : 0;
	for (size_t i = 0; i < x->nvips; i++) {
		if (vip_cmp(&x->vips[i].vip, &v->vip))
			continue;
		vip_err(c, site, "VIP %s is listed twice (%s%s%s and Service %s): list it once",
			v->text, x->vips[i].service[0] ? "Service " : "literal ",
			x->vips[i].service[0] ? x->vips[i].service : "ADDR:PORT", "", service);
		return -EINVAL;
	}
	x->nvips++;
	return 0;
}

/*
 * Long on purpose: one Service's shapes, each with its error.
 * The version of deployment e to build: sd with its service/NAME entries
 * resolved against the Services in force, as a copy (*out); sd itself (a new
 * reference) when it names no Service. A Service that does not exist (yet)
 * adds no VIP and is noted; a Service ferry cannot take rejects the version.
 * Returns 0, -EINVAL (errors recorded) or -ENOMEM.
 */
static int expand_services(struct build_state *bs, struct entry *e, struct sdep *sd,
			   struct sdep **out)
{
	struct vctx c = { .errs = &bs->store->build_errs, .mf = e->mf, .file = e->source };
	struct vip_site site = { .e = e };
	struct sdep *x;
	bool bad = false;
	int err = 0;

	*out = NULL;
	if (!sd->nsvcs || sd->expanded) {
		*out = sdep_get(sd);
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	*x = *sd;
	x->refcnt = 1;
	x->expanded = true;
	x->preds = dup_array(sd->preds, sd->npreds, sizeof(*sd->preds));
	x->svcs = dup_array(sd->svcs, sd->nsvcs, sizeof(*sd->svcs));
	x->vips = dup_array(sd->vips, sd->nvips, sizeof(*sd->vips));
	if (!x->preds || !x->svcs || !x->vips) {
		err = -ENOMEM;
		goto err_put;
	}
	snprintf(c.object, sizeof(c.object), "%s %s", KIND_SDEP, sd->key);
	for (size_t r = 0; r < sd->nsvcs; r++) {
		const char *name = sd->svcs[r].name;
		struct entry *se = find_service(bs, sd->ns, name);
		const struct k8s_svc *svc = se ? se->svc : NULL;

		if (!svc) {
			err = note_add(&bs->waitsvc, "%s|%s/%s", sd->key, sd->ns, name);
			if (err)
				goto err_put;
			continue;
		}
		if (svc->headless) {
			vip_err(&c, &site,
				"Service %s/%s is headless (clusterIP: None): it has no address to "
				"balance; remove clusterIP: None from the Service, or use a literal "
				"ADDR:PORT VIP",
				sd->ns, name);
			bad = true;
			continue;
		}
		if (!strcmp(svc->type, "ExternalName") || !svc->nips) {
			vip_err(&c, &site,
				"Service %s/%s has no ClusterIP%s: give it spec.clusterIP (in a "
				"manifest file, write the address), or use a literal ADDR:PORT VIP",
				sd->ns, name,
				!strcmp(svc->type, "ExternalName") ? " (type ExternalName)" : "");
			bad = true;
			continue;
		}
		if (!svc->nports) {
			vip_err(&c, &site,
				"Service %s/%s has no TCP or UDP port: add one to its spec.ports",
				sd->ns, name);
			bad = true;
			continue;
		}
		if (!se->from_file && !svc->proxy_label &&
		    (err = note_add(&bs->nolabel, "%s/%s", sd->ns, name)))
			goto err_put;
		for (size_t i = 0; i < svc->nips; i++) {
			char addr[INET6_ADDRSTRLEN];

			/* A dual-stack Service over single-stack predictors: that family is skipped. */
			if (family_unserved(bs, sd, svc->ips[i].family)) {
				inet_ntop(svc->ips[i].family == FERRY_AF_INET6 ? AF_INET6 : AF_INET,
					  svc->ips[i].addr, addr, sizeof(addr));
				err = note_add(
					&bs->family, "%s|%s/%s|%s|%s", sd->key, sd->ns, name, addr,
					svc->ips[i].family == FERRY_AF_INET6 ? "IPv6" : "IPv4");
				if (err)
					goto err_put;
				continue;
			}
			for (size_t p = 0; p < svc->nports; p++) {
				err = add_svc_vip(&c, &site, x, name, svc, &svc->ips[i],
						  &svc->ports[p]);
				if (err == -EINVAL) {
					bad = true;
					err = 0;
				} else if (err) {
					goto err_put;
				}
			}
		}
	}
	if (bad) {
		sdep_put(x);
		return -EINVAL;
	}
	*out = x;
	return 0;

err_put:
	sdep_put(x);
	return err;
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

/* The Service a VIP of sd came from, or NULL for a literal one. */
static const char *vip_service(const struct sdep *sd, const struct ferry_vip *vip)
{
	for (size_t v = 0; v < sd->nvips; v++)
		if (!vip_cmp(&sd->vips[v].vip, vip))
			return sd->vips[v].service[0] ? sd->vips[v].service : NULL;
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
			struct sdep **cur, struct sdep **cand, struct sdep **used)
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
			struct vip_site site = { .e = e };
			char text[64];

			if (k == w)
				continue;
			lost[i] = true;
			if (cand[i] != cur[i])
				continue; /* an older version: its newer one was reported already */
			snprintf(c.object, sizeof(c.object), "%s %s", KIND_SDEP, cand[i]->key);
			ferry_vip__format(&claims[k].vip, text, sizeof(text));
			if (vip_service(cand[i], &claims[k].vip) ||
			    vip_service(cand[claims[w].dep], &claims[k].vip))
				/* Two deployments naming one Service: the same rule, said so. */
				vip_err(&c, &site,
					"VIP %s is already used by SeldonDeployment %s (a VIP taken "
					"from a Service counts as that deployment's own): give this "
					"deployment another VIP or Service, or remove it from %s",
					text, winner, winner);
			else
				vip_err(&c, &site,
					"VIP %s is already used by SeldonDeployment %s: give this "
					"deployment another VIP or remove it from %s",
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

/*
 * The slice port for a VIP taken from a Service port: the one with the same
 * name (Seldon names its ports http and grpc), else the targetPort: by name
 * when it is a name, by number when it is a number.
 */
static const struct sl_port *pick_svc_port(const struct slice *sl, const struct sd_vip *v)
{
	for (size_t i = 0; v->port_name[0] && i < sl->nports; i++)
		if (sl->ports[i].proto == v->vip.proto && !strcmp(sl->ports[i].name, v->port_name))
			return &sl->ports[i];
	for (size_t i = 0; i < sl->nports; i++) {
		if (sl->ports[i].proto != v->vip.proto)
			continue;
		if (v->target_name[0] ? !strcmp(sl->ports[i].name, v->target_name) :
					sl->ports[i].port == v->target_port)
			return &sl->ports[i];
	}
	return NULL;
}

/* A Service port that maps to no port of a predictor's slice: said on the Service. */
static void svc_port_error(struct build_state *bs, const struct sdep *sd, const struct sd_vip *v,
			   const struct sd_predictor *pred, const struct entry *se)
{
	struct entry *svc = find_service(bs, sd->ns, v->service);
	const struct entry *at = svc ? svc : se;
	struct vctx c = { .errs = &bs->store->build_errs, .mf = at->mf, .file = at->source };
	json_t *obj = entry_obj(at);
	json_t *ports = json_object_get(json_object_get(obj, "spec"), "ports");
	char target[K8S_NAME_LEN + 16];

	if (v->target_name[0])
		snprintf(target, sizeof(target), "\"%s\"", v->target_name);
	else
		snprintf(target, sizeof(target), "%u", v->target_port);
	snprintf(c.object, sizeof(c.object), "%s %.63s/%.230s", svc ? KIND_SERVICE : KIND_SLICE,
		 at->ns, at->name);
	verr(&c, svc ? json_object_get(obj, "spec") : obj, "ports", svc ? ports : NULL,
	     svc ? "spec.ports" : "ports",
	     "Service %s/%s port %u%s%s%s (VIP %s of SeldonDeployment %s) maps to no port of "
	     "predictor %s's endpoints (EndpointSlice %s): no %s port named \"%s\" nor with "
	     "targetPort %s; name the Service port like the predictor's port (http or grpc) or "
	     "set its targetPort to the predictor's port number; this slice's endpoints are not "
	     "used",
	     sd->ns, v->service, ntohs(v->vip.port), v->port_name[0] ? " (\"" : "", v->port_name,
	     v->port_name[0] ? "\")" : "", v->text, sd->key, pred->name, se->name,
	     v->vip.proto == IPPROTO_UDP ? "UDP" : "TCP", v->port_name, target);
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
		port = vip->service[0] ? pick_svc_port(sl, vip) : pick_port(sl, &vip->vip);
		if (!port && vip->service[0]) {
			svc_port_error(bs, sd, vip, pred, se);
			continue;
		}
		if (!port) {
			struct vctx c = { .errs = &bs->store->build_errs,
					  .mf = se->mf,
					  .file = se->source };

			snprintf(c.object, sizeof(c.object), "%s %.63s/%.230s", KIND_SLICE, se->ns,
				 se->name);
			if (ntohs(vip->vip.port) == 8000 || ntohs(vip->vip.port) == 5001)
				verr(&c, entry_obj(se), "ports", NULL, "ports",
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
				verr(&c, entry_obj(se), "ports", NULL, "ports",
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
 * Effective weights for the model (what ferryd reports), from the one owner
 * of the rule (user/weights.c, the same call the sync layer makes with the
 * operator's overrides), plus a note for each predictor whose share moves
 * because it has no active backend.
 */
static int redistribute(struct build_state *bs, const struct sdep *sd,
			struct ferry_model_service *svc)
{
	struct ferry_weight_in in[FERRY_MAX_SVC_PREDICTORS] = {};
	__u32 out[FERRY_MAX_SVC_PREDICTORS];
	size_t n = svc->npredictors < FERRY_MAX_SVC_PREDICTORS ? svc->npredictors :
								 FERRY_MAX_SVC_PREDICTORS;
	size_t nactive = 0;

	for (size_t p = 0; p < n; p++) {
		const struct ferry_model_predictor *mp = &svc->predictors[p];

		in[p].configured = mp->weight_configured;
		in[p].flags = mp->shadow ? FERRY_PRED_F_SHADOW : 0;
		for (size_t b = 0; b < mp->nbackends; b++)
			in[p].ready += mp->backends[b].state == FERRY_BE_ACTIVE;
		nactive += in[p].ready && !mp->shadow;
	}
	ferry_weights__effective(in, n, out);
	for (size_t p = 0; p < svc->npredictors; p++) {
		struct ferry_model_predictor *mp = &svc->predictors[p];
		char key[FERRY_NAME_LEN + FERRY_PRED_NAME_LEN + 16];

		mp->weight_effective = p < n ? out[p] : 0;
		if (mp->shadow || (p < n && in[p].ready) || !mp->weight_configured)
			continue;
		/* "|" then what happens to its share: 'R' redistributed, 'D' dropped (none active). */
		snprintf(key, sizeof(key), "%s predictor %s|%c", sd->key, mp->name,
			 nactive ? 'R' : 'D');
		if (!str_set_has(&bs->redist, key) && str_set_add(&bs->redist, key))
			return -ENOMEM;
	}
	return 0;
}

static int build_service(struct build_state *bs, const struct sdep *sd, const struct sd_vip *vip,
			 struct ferry_model_service *svc)
{
	static __u64 build_gen;
	int err;

	memset(svc, 0, sizeof(*svc));
	svc->build_gen = __atomic_add_fetch(&build_gen, 1, __ATOMIC_RELAXED);
	svc->vip = vip->vip;
	snprintf(svc->deployment, sizeof(svc->deployment), "%s", sd->key);
	svc->flags = sd->flags | vip->flags;
	if (vip->service[0])
		snprintf(svc->service, sizeof(svc->service), "%.63s/%.63s", sd->ns, vip->service);
	svc->sample_every = sd->sample_every;
	svc->rebalance_off = sd->rebalance_off;
	svc->rebalance_window_ns = sd->rebalance_window_ns;
	svc->canary = sd->canary;
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

/* Splits a note "a|b|..." into at most n fields (pointers into buf). */
static size_t note_split(const char *note, char *buf, size_t len, char **f, size_t n)
{
	size_t k = 0;

	snprintf(buf, len, "%s", note);
	f[k++] = buf;
	for (char *p = buf; *p && k < n; p++) {
		if (*p == '|') {
			*p = '\0';
			f[k++] = p + 1;
		}
	}
	return k;
}

/* Services named but missing, unlabelled, or of a family without endpoints: once per change. */
static void note_service_changes(struct ferry_config_store *store, struct build_state *bs)
{
	char buf[1024], *f[5];

	for (size_t i = 0; i < bs->waitsvc.n; i++) {
		if (str_set_has(&store->noted_waitsvc, bs->waitsvc.v[i]) ||
		    note_split(bs->waitsvc.v[i], buf, sizeof(buf), f, 2) != 2)
			continue;
		pr_warn("SeldonDeployment %s: Service %s does not exist (yet): its VIPs are added "
			"when it appears",
			f[0], f[1]);
	}
	for (size_t i = 0; i < store->noted_waitsvc.n; i++) {
		if (str_set_has(&bs->waitsvc, store->noted_waitsvc.v[i]) ||
		    note_split(store->noted_waitsvc.v[i], buf, sizeof(buf), f, 2) != 2)
			continue;
		char *slash = strchr(f[1], '/');
		bool found;

		if (!slash)
			continue;
		*slash = '\0';
		found = find_service(bs, f[1], slash + 1) != NULL;
		*slash = '/';
		pr_info("SeldonDeployment %s: Service %s %s", f[0], f[1],
			found ? "appeared: its VIPs are balanced" : "is no longer named");
	}
	for (size_t i = 0; i < bs->nolabel.n; i++)
		if (!str_set_has(&store->noted_nolabel, bs->nolabel.v[i]))
			pr_warn("Service %s: no label %s: kube-proxy (or Cilium) also serves its "
				"ClusterIP, and may take a connection before ferry sees it; label it "
				"%s=ferry (docs/kubernetes.md)",
				bs->nolabel.v[i], LABEL_SERVICE_PROXY_NAME,
				LABEL_SERVICE_PROXY_NAME);
	for (size_t i = 0; i < bs->family.n; i++) {
		if (str_set_has(&store->noted_family, bs->family.v[i]) ||
		    note_split(bs->family.v[i], buf, sizeof(buf), f, 4) != 4)
			continue;
		pr_warn("SeldonDeployment %s: Service %s's ClusterIP %s is %s but the predictors' "
			"EndpointSlices are not: that address is not balanced by ferry; publish %s "
			"endpoints or make the Service single-stack",
			f[0], f[1], f[2], f[3], f[3]);
	}
	str_set_free(&store->noted_waitsvc);
	str_set_free(&store->noted_nolabel);
	str_set_free(&store->noted_family);
	store->noted_waitsvc = bs->waitsvc;
	store->noted_nolabel = bs->nolabel;
	store->noted_family = bs->family;
	memset(&bs->waitsvc, 0, sizeof(bs->waitsvc));
	memset(&bs->nolabel, 0, sizeof(bs->nolabel));
	memset(&bs->family, 0, sizeof(bs->family));
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
				"predictor: new connections to the VIP are refused (TCP RST, "
				"ICMP port unreachable for UDP)",
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
	note_service_changes(store, bs);
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

int ferry_config_store__adopt_owner(struct ferry_config_store *store, const struct ferry_vip *vip,
				    const char *deployment)
{
	struct vip_owner *owners;

	if (vip_prev_owner(store, vip))
		return 0;
	owners = realloc(store->owners, (store->nowners + 1) * sizeof(*owners));
	if (!owners)
		return -ENOMEM;
	store->owners = owners;
	memset(&owners[store->nowners], 0, sizeof(*owners));
	owners[store->nowners].vip = *vip;
	snprintf(owners[store->nowners].key, sizeof(owners->key), "%s", deployment);
	store->nowners++;
	return 0;
}

int ferry_config_store__build(struct ferry_config_store *store, struct ferry_model *model)
{
	struct build_state bs = { .store = store };
	struct entry **deps = NULL;
	struct sdep **used = NULL, **cand = NULL, **cur = NULL;
	size_t ndeps = 0, nsvc = 0;
	int err = 0;

	memset(model, 0, sizeof(*model));
	errs_clear(&store->build_errs);
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *e = store->entries[i];

		if (e->kind == OBJ_SLICE)
			err = entries_push(&bs.slices, &bs.nslices, e);
		else if (e->kind == OBJ_SERVICE)
			err = entries_push(&bs.services, &bs.nservices, e);
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
	cur = calloc(ndeps + 1, sizeof(*cur));
	if (!cand || !cur) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < ndeps; i++) {
		struct entry *e = deps[i];

		/* cur[i]: the newest version, its Services resolved (NULL: rejected). */
		err = expand_services(&bs, e, e->sd, &cur[i]);
		if (err == -ENOMEM)
			goto out_free;
		err = 0;
		if (cur[i] && sdep_fits_slices(&bs, e, cur[i], true)) {
			cand[i] = cur[i];
		} else if (e->built && e->built != e->sd &&
			   sdep_fits_slices(&bs, e, e->built, false)) {
			pr_warn("%s: SeldonDeployment %s: rejected; keeping the version in force",
				e->source, e->sd->key);
			cand[i] = e->built;
		}
	}
	err = resolve_vips(&bs, deps, ndeps, cur, cand, used);
	if (err)
		goto out_free;
	for (size_t i = 0; i < ndeps; i++) {
		struct sdep *sd = used[i];

		if (!sd)
			continue;
		if (!sd->nvips) {
			if (sd->nsvcs)
				continue; /* its Services are missing or unserved: noted */
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
	store->built = true;
	store->dirty_all = false;
	str_set_free(&store->dirty_deps);
	str_set_free(&store->dirty_refs);

out_free:
	if (err)
		ferry_model__free(model);
	for (size_t i = 0; cur && i < ndeps; i++)
		sdep_put(cur[i]);
	free(cur);
	free(used);
	free(cand);
	free(deps);
	free(bs.slices);
	free(bs.services);
	free(bs.claims);
	str_set_free(&bs.novip);
	str_set_free(&bs.shadow);
	str_set_free(&bs.redist);
	str_set_free(&bs.waitsvc);
	str_set_free(&bs.nolabel);
	str_set_free(&bs.family);
	return err;
}

/* ------------------------------------------------------- partial build */

static void model_service_free(struct ferry_model_service *svc)
{
	for (size_t p = 0; p < svc->npredictors; p++)
		free(svc->predictors[p].backends);
	free(svc->predictors);
	memset(svc, 0, sizeof(*svc));
}

/* Is note (config_build.c's "KEY", "KEY|..." or "KEY predictor ...") about a deployment in keys? */
static bool note_of_any(const char *note, const struct str_set *keys)
{
	for (size_t i = 0; i < keys->n; i++) {
		size_t n = strlen(keys->v[i]);

		if (!strncmp(note, keys->v[i], n) &&
		    (note[n] == '\0' || note[n] == '|' || note[n] == ' '))
			return true;
	}
	return false;
}

/* into = the store's notes not about keys, then this build's (into's own, moved). */
static int notes_merge(const struct str_set *old, const struct str_set *keys, struct str_set *into)
{
	struct str_set merged = {};

	for (size_t i = 0; i < old->n; i++)
		if (!note_of_any(old->v[i], keys) && str_set_add(&merged, old->v[i]))
			goto err_nomem;
	for (size_t i = 0; i < into->n; i++)
		if (!str_set_has(&merged, into->v[i]) && str_set_add(&merged, into->v[i]))
			goto err_nomem;
	str_set_free(into);
	*into = merged;
	return 0;

err_nomem:
	str_set_free(&merged);
	return -ENOMEM;
}

static bool refs_dirty(const struct ferry_config_store *store, const struct sdep *sd)
{
	char ref[2 * K8S_NAME_LEN + 2];

	if (!store->dirty_refs.n)
		return false; /* an edit of deployments alone (a weight change) */
	for (size_t p = 0; p < sd->npreds; p++) {
		snprintf(ref, sizeof(ref), "%s/%s", sd->ns, sd->preds[p].service);
		if (str_set_has(&store->dirty_refs, ref))
			return true;
	}
	for (size_t r = 0; r < sd->nsvcs; r++) {
		snprintf(ref, sizeof(ref), "%s/%s", sd->ns, sd->svcs[r].name);
		if (str_set_has(&store->dirty_refs, ref))
			return true;
	}
	return false;
}

static bool hash_in(const __u64 *v, size_t n, __u64 h)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == h)
			return true;
	return false;
}

/* More deployments than this in one update: the full build costs about the same. */
#define BUILD_UPDATE_MAX 64

/*
 * Long on purpose: the partial twin of __build (which deployments, their
 * versions, the checks that send it back to a full build, then one commit),
 * in one place so that the order of its commit stays visible.
 */
int ferry_config_store__build_update(struct ferry_config_store *store, struct ferry_model *model)
{
	struct build_state bs = { .store = store };
	struct entry **deps = NULL;
	struct str_set keys = {};
	struct sdep **cur = NULL;
	struct ferry_model_service *add = NULL, *next = NULL;
	const struct entry_sum *sums;
	struct vip_owner *owners = NULL;
	size_t ndeps = 0, nadd = 0, nnext = 0, nowners = 0, nwant = 0, npreds = 0;
	__u64 *want = NULL;
	int err = 0;

	if (store->dirty_all || !store->built || store->build_errs.n || store->noted_nolabel.n)
		return -EAGAIN;
	if (!store->dirty_deps.n && !store->dirty_refs.n)
		return 0;
	for (size_t i = 0; i < store->dirty_deps.n; i++)
		if ((err = str_set_add(&keys, store->dirty_deps.v[i])))
			goto out_free;
	/* With the store's sums, an entry is read only when its hash says it may be wanted. */
	sums = store->sums;
	want = calloc(store->dirty_deps.n + 1, sizeof(*want));
	if (!want) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < store->dirty_deps.n; i++)
		want[nwant++] = ferry_fnv1a_str(store->dirty_deps.v[i]);
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *e = store->entries[i];
		enum obj_kind kind = sums ? sums[i].kind : e->kind;
		/* refs_dirty() needs the deployment itself when references changed */
		bool maybe = !sums || store->dirty_refs.n || hash_in(want, nwant, sums[i].ref_hash);

		if (kind == OBJ_SERVICE) {
			err = entries_push(&bs.services, &bs.nservices, e);
		} else if (kind == OBJ_SDEP && maybe &&
			   (str_set_has(&store->dirty_deps, e->sd->key) ||
			    refs_dirty(store, e->sd))) {
			err = entries_push(&deps, &ndeps, e);
			if (!err && !str_set_has(&keys, e->sd->key))
				err = str_set_add(&keys, e->sd->key);
		}
		if (err)
			goto out_free;
	}
	if (keys.n > BUILD_UPDATE_MAX) {
		err = -EAGAIN;
		goto out_free;
	}
	/* The slices of the touched deployments' predictors: all the rules below look at. */
	nwant = 0;
	for (size_t d = 0; d < ndeps; d++)
		npreds += deps[d]->sd->npreds;
	free(want);
	want = calloc(npreds + 1, sizeof(*want));
	if (!want) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t d = 0; d < ndeps; d++) {
		for (size_t p = 0; p < deps[d]->sd->npreds; p++) {
			char ref[2 * K8S_NAME_LEN + 2];

			snprintf(ref, sizeof(ref), "%s/%s", deps[d]->sd->ns,
				 deps[d]->sd->preds[p].service);
			want[nwant++] = ferry_fnv1a_str(ref);
		}
	}
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *se = store->entries[i];
		bool wanted = false;

		if (sums ? sums[i].kind != OBJ_SLICE || !hash_in(want, nwant, sums[i].ref_hash) :
			   se->kind != OBJ_SLICE)
			continue;
		for (size_t d = 0; d < ndeps && !wanted; d++)
			for (size_t p = 0; p < deps[d]->sd->npreds && !wanted; p++)
				wanted = !strcmp(se->ns, deps[d]->sd->ns) &&
					 !strcmp(se->sl->service, deps[d]->sd->preds[p].service);
		if (wanted && (err = entries_push(&bs.slices, &bs.nslices, se)))
			goto out_free;
	}
	if (ndeps)
		qsort(deps, ndeps, sizeof(*deps), cmp_entry_by_key);
	if (bs.nslices)
		qsort(bs.slices, bs.nslices, sizeof(*bs.slices), cmp_slice_entries);

	/* Each version must pass as it is, and its VIPs be free: anything else is a full build's. */
	cur = calloc(ndeps + 1, sizeof(*cur));
	if (!cur) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < ndeps; i++) {
		err = expand_services(&bs, deps[i], deps[i]->sd, &cur[i]);
		if (err == -EINVAL || (!err && !sdep_fits_slices(&bs, deps[i], cur[i], true)))
			err = -EAGAIN;
		if (err)
			goto out_free;
		for (size_t v = 0; v < cur[i]->nvips; v++) {
			const char *owner = vip_prev_owner(store, &cur[i]->vips[v].vip);

			if (owner && !str_set_has(&keys, owner)) {
				err = -EAGAIN;
				goto out_free;
			}
			for (size_t j = 0; j < i; j++)
				for (size_t w = 0; w < cur[j]->nvips; w++)
					if (!vip_cmp(&cur[j]->vips[w].vip, &cur[i]->vips[v].vip)) {
						err = -EAGAIN;
						goto out_free;
					}
			nadd++;
		}
	}

	add = calloc(nadd + 1, sizeof(*add));
	if (!add) {
		err = -ENOMEM;
		goto out_free;
	}
	nadd = 0;
	for (size_t i = 0; i < ndeps; i++) {
		struct sdep *sd = cur[i];

		if (!sd->nvips) {
			if (!sd->nsvcs && (err = str_set_add(&bs.novip, sd->key)))
				goto out_free;
			continue;
		}
		if (sd->has_shadow && (err = str_set_add(&bs.shadow, sd->key)))
			goto out_free;
		for (size_t v = 0; v < sd->nvips; v++) {
			err = build_service(&bs, sd, &sd->vips[v], &add[nadd++]);
			if (err)
				goto out_free;
		}
	}
	if (store->build_errs.n || bs.nolabel.n) {
		err = -EAGAIN;
		goto out_free;
	}

	/* Everything that can fail, aside: the next model, owners and notes. */
	next = calloc(model->nservices + nadd + 1, sizeof(*next));
	owners = calloc(store->nowners + nadd + 1, sizeof(*owners));
	if (!next || !owners) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < store->nowners; i++)
		if (!str_set_has(&keys, store->owners[i].key))
			owners[nowners++] = store->owners[i];
	for (size_t i = 0; i < nadd; i++) {
		owners[nowners].vip = add[i].vip;
		snprintf(owners[nowners].key, sizeof(owners->key), "%s", add[i].deployment);
		nowners++;
	}
	err = notes_merge(&store->noted_novip, &keys, &bs.novip);
	err = err ?: notes_merge(&store->noted_shadow, &keys, &bs.shadow);
	err = err ?: notes_merge(&store->noted_redist, &keys, &bs.redist);
	err = err ?: notes_merge(&store->noted_waitsvc, &keys, &bs.waitsvc);
	err = err ?: notes_merge(&store->noted_family, &keys, &bs.family);
	if (err)
		goto out_free;

	/* Commit: the kept services are in order already; the few new ones are merged in. */
	if (nadd)
		qsort(add, nadd, sizeof(*add), cmp_service);
	for (size_t i = 0, a = 0; i < model->nservices || a < nadd;) {
		struct ferry_model_service *old = i < model->nservices ? &model->services[i] : NULL;

		if (old && str_set_has(&keys, old->deployment)) {
			model_service_free(old);
			i++;
		} else if (old && (a == nadd || cmp_service(old, &add[a]) < 0)) {
			next[nnext++] = *old;
			i++;
		} else {
			next[nnext++] = add[a++];
		}
	}
	nadd = 0;
	free(model->services);
	model->services = next;
	model->nservices = nnext;
	next = NULL;
	free(store->owners);
	store->owners = owners;
	store->nowners = nowners;
	owners = NULL;
	for (size_t i = 0; i < ndeps; i++) {
		if (cur[i] == deps[i]->built)
			continue;
		sdep_put(deps[i]->built);
		deps[i]->built = sdep_get(cur[i]);
	}
	note_changes(store, &bs);
	str_set_free(&store->dirty_deps);
	str_set_free(&store->dirty_refs);

out_free:
	if (err)
		store->build_errs.n = 0; /* it had none; a full build says it again */
	for (size_t i = 0; i < nadd; i++)
		model_service_free(&add[i]);
	free(add);
	free(next);
	free(owners);
	for (size_t i = 0; cur && i < ndeps; i++)
		sdep_put(cur[i]);
	free(cur);
	free(deps);
	free(want);
	free(bs.slices);
	free(bs.services);
	str_set_free(&keys);
	str_set_free(&bs.novip);
	str_set_free(&bs.shadow);
	str_set_free(&bs.redist);
	str_set_free(&bs.waitsvc);
	str_set_free(&bs.nolabel);
	str_set_free(&bs.family);
	return err;
}
