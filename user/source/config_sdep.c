// SPDX-License-Identifier: GPL-2.0-only
/*
 * SeldonDeployment rules: the admission webhook's checks, then ferry's own
 * (annotations, traffic, shadows), into a struct sdep.
 */
#include "source/config_internal.h"
#include "source/seldon_webhook.h"

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

static void seldon_report(void *arg, const struct ferry_config_error *err)
{
	struct vctx *c = arg;

	c->nerrs++;
	if (errs_push(c->errs, err, c->errkey))
		pr_err("out of memory recording a configuration error");
}

/*
 * Long on purpose: Seldon's rules first (source/seldon_webhook.c), then
 * ferry's own restrictions per predictor, each a few lines with its error; as
 * separate functions each would need the whole context.
 */
/*
 * ferry.io/canary: auto without names: the canary is the smallest share above 0,
 * the baseline the largest other (first in spec order on a tie). Resolved from
 * the manifest, whose traffic analysis never changes, so they stay fixed while
 * the steps move the real split. The fingerprint (FNV-1a over the predictors'
 * JSON, keys sorted) changes with a new model version or new traffic: a new rollout.
 */
static void canary_resolve(struct sdep *sd, json_t *preds)
{
	struct ferry_canary_config *cc = &sd->canary;
	const struct sd_predictor *best = NULL;
	char *text;

	for (size_t k = 0; !cc->canary[0] && k < sd->npreds; k++) {
		const struct sd_predictor *q = &sd->preds[k];

		if (!q->shadow && q->weight && strcmp(q->name, cc->baseline) &&
		    (!best || q->weight < best->weight))
			best = q;
	}
	if (best)
		snprintf(cc->canary, sizeof(cc->canary), "%s", best->name);
	best = NULL;
	for (size_t k = 0; !cc->baseline[0] && k < sd->npreds; k++) {
		const struct sd_predictor *q = &sd->preds[k];

		if (!q->shadow && strcmp(q->name, cc->canary) &&
		    (!best || q->weight > best->weight))
			best = q;
	}
	if (best)
		snprintf(cc->baseline, sizeof(cc->baseline), "%s", best->name);
	text = json_dumps(preds, JSON_COMPACT | JSON_SORT_KEYS);
	cc->fingerprint = ferry_fnv1a_str(text ? text : "");
	free(text);
}

/* Validates a SeldonDeployment; *out is a new sdep when it passes. Returns 0 or -EINVAL/-ENOMEM. */
int parse_sdep(struct vctx *c, json_t *obj, const char *ns, struct sdep **out)
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
	sd->rebalance_window_ns = FERRY_REBALANCE_WINDOW_DEFAULT_NS;
	ferry_canary_config__defaults(&sd->canary);
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
	warn_unknown_annotations(c, md_ann, "metadata.annotations");
	/* The webhook checked spec's structure: predictors, names, traffic, shadows. */
	spec = json_object_get(obj, "spec");
	spec_ann = get_object(c, spec, "annotations", "spec.annotations");
	warn_unknown_annotations(c, spec_ann, "spec.annotations");
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

	/* ferry's annotations: one entry each in ferry_annotations[] (config_annotations.c). */
	for (size_t i = 0; i < ferry_nannotations; i++) {
		const struct ferry_annotation *a = &ferry_annotations[i];

		value = get_annotation(c, md_ann, spec_ann, a->name, &where, field, sizeof(field),
				       &bad);
		if (!value)
			continue;
		err = a->parse(c, value, where, field, sd);
		if (err == -ENOMEM)
			goto err_nomem;
		if (err)
			bad = true;
	}
	if (bad || c->nerrs != nerrs)
		goto err_invalid;
	if (sd->canary.enabled)
		canary_resolve(sd, preds);
	*out = sd;
	return 0;

err_nomem:
	sdep_put(sd);
	return -ENOMEM;
err_invalid:
	sdep_put(sd);
	return -EINVAL;
}
