// SPDX-License-Identifier: GPL-2.0-only
/*
 * SeldonDeployment rules: the admission webhook's checks, then ferry's own
 * (annotations, traffic, shadows), into a struct sdep.
 */
#include "source/config_internal.h"

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

/* traffic: a whole number from 0 to 100; *set false when absent or null. */
static bool parse_traffic(struct vctx *c, json_t *pred, const char *field, long long *traffic,
			  bool *set)
{
	json_t *v = json_object_get(pred, "traffic");

	*set = false;
	*traffic = 0;
	if (!v || json_is_null(v))
		return true;
	if (json_is_integer(v)) {
		*traffic = json_integer_value(v);
	} else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
		   fabs(json_real_value(v)) < 1e9) {
		*traffic = (long long)json_real_value(v);
	} else {
		verr(c, pred, "traffic", v, field,
		     "expected a whole number from 0 to 100 (percent of new connections), "
		     "found %s%s%s",
		     json_type_name(v), json_is_string(v) ? " " : "",
		     json_is_string(v) ? json_string_value(v) : "");
		return false;
	}
	if (*traffic < 0 || *traffic > 100) {
		verr(c, pred, "traffic", v, field,
		     "traffic is %lld; it must be from 0 to 100 (percent of new connections)",
		     *traffic);
		return false;
	}
	*set = true;
	return true;
}

/*
 * Long on purpose: the admission webhook's rules in document order, each a few lines
 * with its error; as separate functions each would need the whole context.
 */
/* Validates a SeldonDeployment; *out is a new sdep when it passes. Returns 0 or -EINVAL/-ENOMEM. */
int parse_sdep(struct vctx *c, json_t *obj, const char *ns, struct sdep **out)
{
	json_t *md, *spec, *md_ann, *spec_ann, *preds, *where;
	const char *name, *value;
	long long traffic_sum = 0;
	size_t nmain = 0, last_main = 0;
	char field[256];
	int nerrs = c->nerrs; /* any error recorded below rejects the object */
	struct sdep *sd;
	bool bad = false;
	int err;

	*out = NULL;
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
		     "namespace/name is longer than %d characters: use a shorter name",
		     FERRY_NAME_LEN - 1);
		bad = true;
	}
	md_ann = get_object(c, md, "annotations", "metadata.annotations");
	spec = json_object_get(obj, "spec");
	if (!json_is_object(spec)) {
		verr(c, obj, spec ? "spec" : NULL, spec, "spec",
		     "expected a mapping with predictors: add spec.predictors");
		goto err_invalid;
	}
	spec_ann = get_object(c, spec, "annotations", "spec.annotations");

	/* Seldon's webhook rules. */
	preds = json_object_get(spec, "predictors");
	if (preds && !json_is_array(preds) && !json_is_null(preds)) {
		verr(c, spec, "predictors", preds, "spec.predictors",
		     "expected a list of predictors, found %s", json_type_name(preds));
		goto err_invalid;
	}
	if (!json_array_size(preds)) {
		verr(c, spec, preds ? "predictors" : NULL, preds, "spec.predictors",
		     "no predictors: a SeldonDeployment needs at least one predictor");
		goto err_invalid;
	}
	if (json_array_size(preds) > FERRY_MAX_SVC_PREDICTORS) {
		verr(c, spec, "predictors", preds, "spec.predictors",
		     "%zu predictors; ferry balances at most %d per deployment: remove some",
		     json_array_size(preds), FERRY_MAX_SVC_PREDICTORS);
		goto err_invalid;
	}
	sd->preds = calloc(json_array_size(preds), sizeof(*sd->preds));
	if (!sd->preds)
		goto err_nomem;
	sd->npreds = json_array_size(preds);
	for (size_t i = 0; i < sd->npreds; i++) {
		struct sd_predictor *p = &sd->preds[i];
		json_t *pred = json_array_get(preds, i), *v, *pann;
		const char *pname, *svc = NULL;
		long long traffic;
		bool set;

		if (!json_is_object(pred)) {
			snprintf(field, sizeof(field), "spec.predictors[%zu]", i);
			verr(c, NULL, NULL, pred, field, "expected a mapping, found %s",
			     json_type_name(pred));
			bad = true;
			continue;
		}
		snprintf(field, sizeof(field), "spec.predictors[%zu].name", i);
		v = json_object_get(pred, "name");
		pname = get_string(c, pred, "name", field, &bad);
		if (!pname || !*pname) {
			if (!v || json_is_null(v) || json_is_string(v))
				verr(c, pred, pname ? "name" : NULL, pred, field,
				     "every predictor needs a name: add name: ...");
			bad = true;
		} else if (strlen(pname) >= sizeof(p->name)) {
			verr(c, pred, "name", NULL, field,
			     "predictor name is %zu characters; ferry keeps at most %zu: shorten it",
			     strlen(pname), sizeof(p->name) - 1);
			bad = true;
		} else {
			strcpy(p->name, pname);
			for (size_t j = 0; j < i; j++) {
				if (!strcmp(sd->preds[j].name, pname)) {
					verr(c, pred, "name", NULL, field,
					     "predictor name \"%s\" is also used by "
					     "spec.predictors[%zu]: predictor names must be "
					     "unique, rename one",
					     pname, j);
					bad = true;
				}
			}
		}

		snprintf(field, sizeof(field), "spec.predictors[%zu].shadow", i);
		v = json_object_get(pred, "shadow");
		if (v && !json_is_null(v) && !json_is_boolean(v)) {
			verr(c, pred, "shadow", v, field, "expected true or false, found %s",
			     json_type_name(v));
			bad = true;
		}
		p->shadow = json_is_true(v);
		if (p->shadow && sd->has_shadow) {
			verr(c, pred, "shadow", v, field,
			     "a second shadow predictor: Seldon allows at most one, set shadow: "
			     "false on one of them");
			bad = true;
		}
		sd->has_shadow |= p->shadow;

		snprintf(field, sizeof(field), "spec.predictors[%zu].traffic", i);
		if (!parse_traffic(c, pred, field, &traffic, &set))
			bad = true;
		p->weight = (__u32)traffic * 10000;
		if (!p->shadow) {
			nmain++;
			last_main = i;
			traffic_sum += traffic;
		}

		snprintf(field, sizeof(field), "spec.predictors[%zu].replicas", i);
		v = json_object_get(pred, "replicas");
		if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0)) {
			verr(c, pred, "replicas", v, field,
			     "expected a whole number of pods (0 or more), found %s",
			     json_type_name(v));
			bad = true;
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
	if (!nmain) {
		verr(c, spec, "predictors", preds, "spec.predictors",
		     "the only predictor is a shadow: a shadow mirrors a main predictor, add one "
		     "with shadow: false");
		goto err_invalid;
	}
	if (nmain == 1) {
		struct sd_predictor *p = &sd->preds[last_main];
		json_t *pred = json_array_get(preds, last_main);

		if (traffic_sum != 0 && traffic_sum != 100) {
			snprintf(field, sizeof(field), "spec.predictors[%zu].traffic", last_main);
			verr(c, pred, "traffic", NULL, field,
			     "traffic is %lld but \"%s\" is the only predictor, so it takes all "
			     "traffic: set traffic to 100 or remove it",
			     traffic_sum, p->name);
			goto err_invalid;
		}
		p->weight = FERRY_WEIGHT_ONE;
	} else if (traffic_sum != 100) {
		json_t *pred = json_array_get(preds, last_main);

		snprintf(field, sizeof(field), "spec.predictors[%zu].traffic", last_main);
		verr(c, pred, json_object_get(pred, "traffic") ? "traffic" : NULL, pred, field,
		     "traffic values of the %zu predictors sum to %lld; they must sum to exactly "
		     "100: %s one of them",
		     nmain, traffic_sum, traffic_sum > 100 ? "lower" : "raise");
		goto err_invalid;
	}
	for (size_t i = 0; i < sd->npreds; i++)
		if (sd->preds[i].shadow)
			sd->preds[i].weight = 0;

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
	*out = sd;
	return 0;

err_nomem:
	sdep_put(sd);
	return -ENOMEM;
err_invalid:
	sdep_put(sd);
	return -EINVAL;
}
