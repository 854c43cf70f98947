// SPDX-License-Identifier: GPL-2.0-only
/*
 * Seldon Core v1.18.2's admission rules for SeldonDeployments (see
 * seldon_webhook.h): the CRD's structural schema first, then the validating
 * webhook's rules, every error reported (the webhook, too, lists them all).
 * docs/configuration.md lists the rules; tests/test_seldon.c holds one case
 * per rule with the Seldon source line it comes from.
 *
 * The webhook validates the object as submitted (Seldon 1.18 has no
 * mutating webhook: defaults are applied later by the controller), so
 * nothing here assumes a default.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "source/config_internal.h" /* json_type_name(), shared with the config rules */
#include "source/seldon_webhook.h"

#define RELEASE "Seldon Core v1.18.2"

/*
 * The CRD's schema spells out graph.children ten levels deep and no deeper;
 * the API server prunes fields the schema does not know, so units below
 * that depth never reach the webhook.
 */
#define CRD_GRAPH_DEPTH 10

#define ANN_SVC_NAME "seldon.io/svc-name"
#define ANN_NO_ENGINE "seldon.io/no-engine"

struct ferry_seldon_servers {
	json_t *names; /* server name -> its protocols (only the keys matter) */
};

/* values.yaml of the seldon-core-operator chart, v1.18.2: predictor_servers. */
static const char *const helm_servers[] = {
	"MLFLOW_SERVER", "SKLEARN_SERVER",     "TENSORFLOW_SERVER", "XGBOOST_SERVER",
	"TRITON_SERVER", "HUGGINGFACE_SERVER", "TEMPO_SERVER",
};

struct ferry_seldon_servers *ferry_seldon_servers__defaults(void)
{
	struct ferry_seldon_servers *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->names = json_object();
	if (!s->names)
		goto err_free;
	for (size_t i = 0; i < sizeof(helm_servers) / sizeof(helm_servers[0]); i++)
		if (json_object_set_new(s->names, helm_servers[i], json_object()))
			goto err_free;
	return s;

err_free:
	ferry_seldon_servers__free(s);
	errno = ENOMEM;
	return NULL;
}

static void load_error(struct ferry_config_error *err, const char *path, int line, int column,
		       const char *field, const char *msg)
{
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", path);
	err->line = line;
	err->column = column;
	snprintf(err->field, sizeof(err->field), "%s", field);
	snprintf(err->message, sizeof(err->message), "%s", msg);
}

struct ferry_seldon_servers *ferry_seldon_servers__load(const char *path,
							struct ferry_config_error *err)
{
	struct ferry_seldon_servers *s = NULL;
	struct ferry_manifest *mf;
	json_t *data = NULL, *text, *names;
	json_error_t jerr;
	int line = 0, column = 0;

	mf = ferry_manifest__load(path, err);
	if (!mf)
		return NULL;
	for (size_t i = 0; i < ferry_manifest__ndocs(mf) && !data; i++) {
		json_t *doc = ferry_manifest__doc(mf, i);
		const char *kind = json_string_value(json_object_get(doc, "kind"));

		if (kind && !strcmp(kind, "ConfigMap"))
			data = json_object_get(doc, "data");
		if (kind && !strcmp(kind, "ConfigMap") && !json_is_object(data)) {
			load_error(err, path, 0, 0, "data",
				   "a ConfigMap without data: give seldon-config as kubectl -n "
				   "seldon-system get configmap seldon-config -o yaml prints it");
			goto err_invalid;
		}
	}
	if (!data) {
		load_error(err, path, 0, 0, "",
			   "no ConfigMap in the file: give seldon-config as kubectl -n "
			   "seldon-system get configmap seldon-config -o yaml prints it");
		goto err_invalid;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto err_nomem;
	text = json_object_get(data, "predictor_servers");
	if (!text) {
		/* Seldon's operator reads a missing key as "no servers": so does ferry. */
		pr_warn("%s: no data.predictor_servers: every prepackaged server needs its own "
			"container image",
			path);
		s->names = json_object();
		if (!s->names)
			goto err_nomem;
		ferry_manifest__put(mf);
		return s;
	}
	ferry_manifest__pos(mf, data, "predictor_servers", NULL, &line, &column);
	if (!json_is_string(text)) {
		load_error(err, path, line, column, "data.predictor_servers",
			   "expected a string holding JSON (ConfigMap data are strings)");
		goto err_invalid;
	}
	names = json_loads(json_string_value(text), 0, &jerr);
	if (!json_is_object(names)) {
		char msg[512];

		snprintf(msg, sizeof(msg),
			 "not a JSON object of servers (%s): write {\"SKLEARN_SERVER\": "
			 "{\"protocols\": {...}}, ...}",
			 names ? "a JSON value of another type" : jerr.text);
		json_decref(names);
		load_error(err, path, line, column, "data.predictor_servers", msg);
		goto err_invalid;
	}
	s->names = names;
	ferry_manifest__put(mf);
	return s;

err_nomem:
	ferry_seldon_servers__free(s);
	ferry_manifest__put(mf);
	errno = ENOMEM;
	return NULL;
err_invalid:
	ferry_seldon_servers__free(s);
	ferry_manifest__put(mf);
	errno = EINVAL;
	return NULL;
}

void ferry_seldon_servers__free(struct ferry_seldon_servers *servers)
{
	if (!servers)
		return;
	json_decref(servers->names);
	free(servers);
}

bool ferry_seldon_servers__has(const struct ferry_seldon_servers *servers, const char *name)
{
	return servers && json_object_get(servers->names, name) != NULL;
}

/* ------------------------------------------------------------ judging */

struct judge {
	const struct ferry_seldon_input *in;
	const struct ferry_seldon_servers *servers;
	const char *protocol;
	json_t *transports; /* endpoint.type values found in the graphs (a set) */
	int nerrs;
	bool nomem;
	/*
	 * The API server checks the schema before it calls the webhook: when
	 * the schema fails, the webhook's rules never run, so their errors
	 * wait here and are dropped (they would judge fields of the wrong type).
	 */
	bool in_schema;
	int nschema;
	struct ferry_config_error *held;
	size_t nheld;
};

static void judge_err(struct judge *j, const json_t *parent, const char *key, const json_t *node,
		      const char *field, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Reports at the value (by parent and key), else at the node, else at the parent. */
static void judge_err(struct judge *j, const json_t *parent, const char *key, const json_t *node,
		      const char *field, const char *fmt, ...)
{
	const struct ferry_manifest *mf = j->in->mf;
	struct ferry_config_error e = {}, *held;
	va_list ap;

	snprintf(e.file, sizeof(e.file), "%s", j->in->file ? j->in->file : "");
	snprintf(e.object, sizeof(e.object), "%s", j->in->object ? j->in->object : "");
	snprintf(e.field, sizeof(e.field), "%s", field);
	if (!(key && ferry_manifest__pos(mf, parent, key, NULL, &e.line, &e.column)) &&
	    !(node && ferry_manifest__pos(mf, NULL, NULL, node, &e.line, &e.column)) &&
	    !(parent && ferry_manifest__pos(mf, NULL, NULL, parent, &e.line, &e.column)))
		e.line = e.column = 0;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	if (j->in_schema) {
		j->nschema++;
		j->nerrs++;
		j->in->report(j->in->arg, &e);
		return;
	}
	held = realloc(j->held, (j->nheld + 1) * sizeof(*held));
	if (!held) {
		j->nomem = true;
		return;
	}
	j->held = held;
	j->held[j->nheld++] = e;
}

/* An error of the CRD's schema: reported at once, and it silences the webhook's. */
#define schema_err(j, ...)                   \
	do {                                 \
		bool __was = (j)->in_schema; \
		(j)->in_schema = true;       \
		judge_err((j), __VA_ARGS__); \
		(j)->in_schema = __was;      \
	} while (0)

enum want { W_STRING, W_OBJECT, W_ARRAY, W_BOOL, W_INT32 };

static const char *const want_name[] = {
	[W_STRING] = "a string",
	[W_OBJECT] = "a mapping",
	[W_ARRAY] = "a list",
	[W_BOOL] = "true or false",
	[W_INT32] = "a whole number from -2147483648 to 2147483647",
};

static bool is_int32(const json_t *v, int32_t *out)
{
	double d;

	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);

		if (n < INT32_MIN || n > INT32_MAX)
			return false;
		*out = (int32_t)n;
		return true;
	}
	/* The API server reads JSON numbers as float64 and takes 50.0 as an integer. */
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	if (d != floor(d) || d < INT32_MIN || d > INT32_MAX)
		return false;
	*out = (int32_t)d;
	return true;
}

/*
 * A member of parent checked against the CRD's type for it. Returns it, or
 * NULL when absent, null (the API server drops nulls in fields that are not
 * nullable) or of the wrong type (reported). *bad is set on a wrong type.
 */
static json_t *member(struct judge *j, json_t *parent, const char *key, enum want want,
		      const char *field, bool *bad)
{
	json_t *v = json_object_get(parent, key);
	int32_t n;
	bool ok;

	if (!v || json_is_null(v))
		return NULL;
	switch (want) {
	case W_STRING:
		ok = json_is_string(v);
		break;
	case W_OBJECT:
		ok = json_is_object(v);
		break;
	case W_ARRAY:
		ok = json_is_array(v);
		break;
	case W_BOOL:
		ok = json_is_boolean(v);
		break;
	default:
		ok = is_int32(v, &n);
		break;
	}
	if (ok)
		return v;
	if (want == W_INT32 &&
	    (json_is_integer(v) ||
	     (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))) {
		/* A whole number, only too large: "found an integer" would not say what is wrong. */
		char num[32];

		if (json_is_integer(v))
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else
			snprintf(num, sizeof(num), "%g", json_real_value(v));
		schema_err(j, parent, key, v, field,
			   "%s is out of range: expected a whole number from -2147483648 to "
			   "2147483647 (the SeldonDeployment CRD's schema; the API server refuses "
			   "the object): write a number in that range",
			   num);
		if (bad)
			*bad = true;
		return NULL;
	}
	schema_err(j, parent, key, v, field,
		   "expected %s, found %s%s%s%s (the SeldonDeployment CRD's schema; the API "
		   "server refuses the object): %s",
		   want_name[want], json_type_name(v), json_is_string(v) ? " \"" : "",
		   json_is_string(v) ? json_string_value(v) : "", json_is_string(v) ? "\"" : "",
		   want == W_STRING ? "quote the value" :
		   want == W_INT32  ? "write a whole number, unquoted" :
		   want == W_BOOL   ? "write true or false, unquoted" :
				      "fix the value's type");
	if (bad)
		*bad = true;
	return NULL;
}

/* A required member (the CRD's "required"): reported at the parent when missing. */
static json_t *required(struct judge *j, json_t *parent, const char *key, enum want want,
			const char *field, const char *what, bool *bad)
{
	json_t *v = member(j, parent, key, want, field, bad);

	if (!v && !(json_object_get(parent, key) && !json_is_null(json_object_get(parent, key)))) {
		schema_err(j, parent, NULL, parent, field,
			   "%s has no %s: the SeldonDeployment CRD's schema requires it (the API "
			   "server refuses the object): add %s",
			   what, key, key);
		if (bad)
			*bad = true;
	}
	return v;
}

static const char *string_of(struct judge *j, json_t *parent, const char *key, const char *field)
{
	return json_string_value(member(j, parent, key, W_STRING, field, NULL));
}

static json_t *indexed(json_t *array, size_t i, char *field, size_t len, const char *base)
{
	/* A path too long for the buffer is cut: the error's field is 255 characters anyway. */
	if (snprintf(field, len, "%s[%zu]", base, i) >= (int)len)
		field[len - 1] = '\0';
	return json_array_get(array, i);
}

static int32_t traffic_of(json_t *pred)
{
	int32_t n = 0;

	is_int32(json_object_get(pred, "traffic"), &n);
	return n;
}

/* ------------------------------------------------------ CRD structure */

static void check_env(struct judge *j, json_t *env, const char *base)
{
	char field[256];

	for (size_t i = 0; i < json_array_size(env); i++) {
		json_t *var = indexed(env, i, field, sizeof(field), base);
		char sub[300];

		if (!json_is_object(var)) {
			schema_err(j, NULL, NULL, var, field,
				   "expected a mapping (name, value), found %s (the "
				   "SeldonDeployment CRD's schema): fix the list item",
				   json_type_name(var));
			continue;
		}
		snprintf(sub, sizeof(sub), "%s.name", field);
		required(j, var, "name", W_STRING, sub, field, NULL);
		snprintf(sub, sizeof(sub), "%s.value", field);
		member(j, var, "value", W_STRING, sub, NULL);
	}
}

/* Predictor-level structure that the graph rules do not walk. */
static void check_predictor_schema(struct judge *j, json_t *pred, const char *base)
{
	json_t *ann, *specs, *orch, *expl, *v;
	char field[256], sub[300];
	const char *key;

	snprintf(field, sizeof(field), "%s.replicas", base);
	member(j, pred, "replicas", W_INT32, field, NULL);
	snprintf(field, sizeof(field), "%s.annotations", base);
	ann = member(j, pred, "annotations", W_OBJECT, field, NULL);
	json_object_foreach(ann, key, v) {
		snprintf(sub, sizeof(sub), "%s[\"%s\"]", field, key);
		if (!json_is_null(v) && !json_is_string(v))
			member(j, ann, key, W_STRING, sub, NULL);
	}
	snprintf(field, sizeof(field), "%s.componentSpecs", base);
	specs = member(j, pred, "componentSpecs", W_ARRAY, field, NULL);
	for (size_t i = 0; i < json_array_size(specs); i++) {
		char cs[280];
		json_t *cspec = indexed(specs, i, cs, sizeof(cs), field), *pod, *containers;

		if (!json_is_object(cspec)) {
			schema_err(j, NULL, NULL, cspec, cs,
				   "expected a mapping (metadata, spec), found %s (the "
				   "SeldonDeployment CRD's schema): fix the list item",
				   json_type_name(cspec));
			continue;
		}
		snprintf(sub, sizeof(sub), "%s.spec", cs);
		pod = member(j, cspec, "spec", W_OBJECT, sub, NULL);
		if (!pod)
			continue;
		snprintf(sub, sizeof(sub), "%s.spec.containers", cs);
		containers = required(j, pod, "containers", W_ARRAY, sub, "a pod spec", NULL);
		for (size_t k = 0; k < json_array_size(containers); k++) {
			char cf[300], nf[320];
			json_t *c = indexed(containers, k, cf, sizeof(cf), sub);

			if (!json_is_object(c)) {
				schema_err(j, NULL, NULL, c, cf,
					   "expected a container (a mapping), found %s (the "
					   "SeldonDeployment CRD's schema): fix the list item",
					   json_type_name(c));
				continue;
			}
			snprintf(nf, sizeof(nf), "%s.name", cf);
			required(j, c, "name", W_STRING, nf, "a container", NULL);
			snprintf(nf, sizeof(nf), "%s.image", cf);
			member(j, c, "image", W_STRING, nf, NULL);
		}
	}
	snprintf(field, sizeof(field), "%s.svcOrchSpec", base);
	orch = member(j, pred, "svcOrchSpec", W_OBJECT, field, NULL);
	if (orch) {
		snprintf(sub, sizeof(sub), "%s.env", field);
		check_env(j, member(j, orch, "env", W_ARRAY, sub, NULL), sub);
	}
	snprintf(field, sizeof(field), "%s.explainer", base);
	expl = member(j, pred, "explainer", W_OBJECT, field, NULL);
	if (expl) {
		json_t *cspec;

		snprintf(sub, sizeof(sub), "%s.containerSpec", field);
		cspec = member(j, expl, "containerSpec", W_OBJECT, sub, NULL);
		if (cspec) {
			char nf[320];

			snprintf(nf, sizeof(nf), "%s.name", sub);
			required(j, cspec, "name", W_STRING, nf, "explainer.containerSpec", NULL);
		}
	}
}

/* ------------------------------------------------------- graph rules */

/* The container a unit runs: one of the predictor's containers with the unit's name. */
static json_t *unit_container(json_t *pred, const char *name)
{
	json_t *specs = json_object_get(pred, "componentSpecs");

	for (size_t i = 0; i < json_array_size(specs); i++) {
		json_t *containers = json_object_get(
			json_object_get(json_array_get(specs, i), "spec"), "containers");

		for (size_t k = 0; k < json_array_size(containers); k++) {
			json_t *c = json_array_get(containers, k);
			const char *cname = json_string_value(json_object_get(c, "name"));

			if (cname && !strcmp(cname, name))
				return c;
		}
	}
	return NULL;
}

/* Implementations Seldon runs itself, in the engine (not prepackaged servers). */
static bool builtin_implementation(const char *impl)
{
	return !strcmp(impl, "SIMPLE_MODEL") || !strcmp(impl, "SIMPLE_ROUTER") ||
	       !strcmp(impl, "RANDOM_ABTEST") || !strcmp(impl, "AVERAGE_COMBINER") ||
	       !strcmp(impl, "UNKNOWN_IMPLEMENTATION");
}

/* Servers that speak Seldon's or the v2 protocol, not TensorFlow Serving's. */
static bool refuses_tensorflow(const char *impl)
{
	return !strcmp(impl, "SKLEARN_SERVER") || !strcmp(impl, "XGBOOST_SERVER") ||
	       !strcmp(impl, "MLFLOW_SERVER") || !strcmp(impl, "HUGGINGFACE_SERVER");
}

/* Checks one graph unit and its children; returns the number of units (pruning applied). */
static size_t check_unit(struct judge *j, json_t *pred, const char *pred_field, json_t *unit,
			 const char *field, int depth)
{
	json_t *methods, *endpoint, *logger, *children, *params, *container;
	const char *name, *type, *impl, *uri;
	char sub[512];
	size_t nunits = 1;
	bool bad = false;

	if (!json_is_object(unit)) {
		schema_err(j, NULL, NULL, unit, field,
			   "expected a graph unit (a mapping with a name), found %s (the "
			   "SeldonDeployment CRD's schema): fix it",
			   json_type_name(unit));
		return 1;
	}
	snprintf(sub, sizeof(sub), "%s.name", field);
	name = json_string_value(required(j, unit, "name", W_STRING, sub, field, &bad));
	snprintf(sub, sizeof(sub), "%s.type", field);
	type = string_of(j, unit, "type", sub);
	snprintf(sub, sizeof(sub), "%s.implementation", field);
	impl = string_of(j, unit, "implementation", sub);
	snprintf(sub, sizeof(sub), "%s.modelUri", field);
	uri = string_of(j, unit, "modelUri", sub);
	snprintf(sub, sizeof(sub), "%s.methods", field);
	methods = member(j, unit, "methods", W_ARRAY, sub, &bad);
	for (size_t i = 0; i < json_array_size(methods); i++) {
		char mf[540];

		if (!json_is_string(json_array_get(methods, i))) {
			snprintf(mf, sizeof(mf), "%s[%zu]", sub, i);
			schema_err(j, NULL, NULL, json_array_get(methods, i), mf,
				   "expected a method name (a string), found %s (the "
				   "SeldonDeployment CRD's schema): e.g. "
				   "TRANSFORM_INPUT",
				   json_type_name(json_array_get(methods, i)));
		}
	}
	snprintf(sub, sizeof(sub), "%s.endpoint", field);
	endpoint = member(j, unit, "endpoint", W_OBJECT, sub, &bad);
	if (endpoint) {
		char ef[540];
		const char *etype;
		static const char *const ports[] = { "service_port", "httpPort", "grpcPort" };

		snprintf(ef, sizeof(ef), "%s.endpoint.type", field);
		etype = string_of(j, endpoint, "type", ef);
		if (etype && *etype && json_object_set_new(j->transports, etype, json_true()))
			j->nomem = true;
		snprintf(ef, sizeof(ef), "%s.endpoint.service_host", field);
		member(j, endpoint, "service_host", W_STRING, ef, NULL);
		for (size_t i = 0; i < 3; i++) {
			snprintf(ef, sizeof(ef), "%s.endpoint.%s", field, ports[i]);
			member(j, endpoint, ports[i], W_INT32, ef, NULL);
		}
	}
	snprintf(sub, sizeof(sub), "%s.logger", field);
	logger = member(j, unit, "logger", W_OBJECT, sub, &bad);
	snprintf(sub, sizeof(sub), "%s.parameters", field);
	params = member(j, unit, "parameters", W_ARRAY, sub, NULL);
	for (size_t i = 0; i < json_array_size(params); i++) {
		static const char *const keys[] = { "name", "type", "value" };
		char pf[540], kf[560];
		json_t *p = indexed(params, i, pf, sizeof(pf), sub);

		if (!json_is_object(p)) {
			schema_err(j, NULL, NULL, p, pf,
				   "expected a parameter (name, type, value), found %s (the "
				   "SeldonDeployment CRD's schema): fix it",
				   json_type_name(p));
			continue;
		}
		for (size_t k = 0; k < 3; k++) {
			snprintf(kf, sizeof(kf), "%s.%s", pf, keys[k]);
			required(j, p, keys[k], W_STRING, kf, pf, NULL);
		}
	}

	/* The webhook's unit rules: seldondeployment_webhook.go, checkPredictiveUnits. */
	if (name && (!impl || !strcmp(impl, "UNKNOWN_IMPLEMENTATION"))) {
		if (!unit_container(pred, name))
			judge_err(
				j, unit, "name", NULL, field,
				"graph unit \"%s\" has no implementation and %s.componentSpecs has "
				"no container named \"%s\" (%s webhook: such a unit runs the "
				"container of its name): add the container, or set implementation "
				"to a prepackaged server",
				name, pred_field, name, RELEASE);
		if (type && !strcmp(type, "UNKNOWN_TYPE") && !json_array_size(methods))
			judge_err(j, unit, "type", NULL, field,
				  "graph unit \"%s\" is of type UNKNOWN_TYPE and lists no methods "
				  "(%s webhook: Seldon cannot tell what to call): set type (MODEL, "
				  "ROUTER, COMBINER, TRANSFORMER, OUTPUT_TRANSFORMER) or list its "
				  "methods",
				  name, RELEASE);
	} else if (name && impl && *impl && !builtin_implementation(impl)) {
		/* A prepackaged server. */
		if ((!uri || !*uri) && strcmp(impl, "HUGGINGFACE_SERVER"))
			judge_err(j, unit, uri ? "modelUri" : NULL, unit, field,
				  "graph unit \"%s\" runs the prepackaged server %s without "
				  "modelUri (%s webhook: only HUGGINGFACE_SERVER can load a model "
				  "without one): add modelUri: where the model is stored",
				  name, impl, RELEASE);
		if (j->protocol && !strcmp(j->protocol, "tensorflow") && refuses_tensorflow(impl))
			judge_err(j, unit, "implementation", NULL, field,
				  "%s does not speak spec.protocol tensorflow (%s webhook: only "
				  "TENSORFLOW_SERVER and servers outside the SKLEARN, XGBOOST, "
				  "MLFLOW and HUGGINGFACE ones do): use protocol seldon or v2, or "
				  "TENSORFLOW_SERVER",
				  impl, RELEASE);
		container = unit_container(pred, name);
		if (!j->in->cluster_judged &&
		    !json_string_length(json_object_get(container, "image")) &&
		    !ferry_seldon_servers__has(j->servers, impl))
			judge_err(
				j, unit, "implementation", NULL, field,
				"graph unit \"%s\" has no container image and seldon-config knows "
				"no server %s (%s webhook, against the %s predictor_servers): "
				"name a known server, add a container \"%s\" with an image, or "
				"give ferryd --seldon-config with the cluster's ConfigMap",
				name, impl, RELEASE,
				j->in->servers ? "--seldon-config" : "Helm chart's default", name);
	}
	if (logger && !json_string_length(json_object_get(logger, "mode")))
		judge_err(j, unit, "logger", NULL, field,
			  "graph unit \"%s\" has a logger without mode (%s webhook): set "
			  "logger.mode to all, request or response",
			  name ? name : "", RELEASE);

	if (depth >= CRD_GRAPH_DEPTH)
		return nunits; /* children pruned by the API server, whatever they hold */
	snprintf(sub, sizeof(sub), "%s.children", field);
	children = member(j, unit, "children", W_ARRAY, sub, NULL);
	for (size_t i = 0; i < json_array_size(children); i++) {
		char cf[540];

		snprintf(cf, sizeof(cf), "%s[%zu]", sub, i);
		nunits +=
			check_unit(j, pred, pred_field, json_array_get(children, i), cf, depth + 1);
	}
	return nunits;
}

/* ---------------------------------------------------- predictor rules */

static bool has_env(json_t *env, const char *name)
{
	for (size_t i = 0; i < json_array_size(env); i++)
		if (!strcmp(json_string_value(json_object_get(json_array_get(env, i), "name")) ?:
												 "",
			    name))
			return true;
	return false;
}

static void check_kafka(struct judge *j, json_t *pred, const char *pf)
{
	static const char *const vars[] = { "KAFKA_BROKER", "KAFKA_INPUT_TOPIC",
					    "KAFKA_OUTPUT_TOPIC" };
	json_t *env = json_object_get(json_object_get(pred, "svcOrchSpec"), "env");
	char field[300], missing[128] = "";
	size_t found = 0;

	/* Seldon counts entries with one of the three names, so a repeated name counts twice. */
	for (size_t i = 0; i < json_array_size(env); i++) {
		const char *n = json_string_value(json_object_get(json_array_get(env, i), "name"));

		for (size_t k = 0; n && k < 3; k++)
			found += !strcmp(n, vars[k]);
	}
	if (json_array_size(env) && found >= 3)
		return;
	for (size_t k = 0; k < 3; k++)
		if (!has_env(env, vars[k]))
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
				 "%s%s", missing[0] ? ", " : "", vars[k]);
	snprintf(field, sizeof(field), "%s.svcOrchSpec.env", pf);
	judge_err(j, pred, NULL, pred, field,
		  "spec.serverType is kafka but the predictor's service orchestrator lacks "
		  "environment variables (%s webhook: it needs KAFKA_BROKER, "
		  "KAFKA_INPUT_TOPIC and KAFKA_OUTPUT_TOPIC)%s%s: add them",
		  RELEASE, missing[0] ? "; missing: " : "", missing);
}

/* seldondeployment_webhook.go, checkTraffic. */
static void check_traffic(struct judge *j, json_t *spec, json_t *preds)
{
	size_t n = json_array_size(preds), shadows = 0;
	uint32_t sum = 0; /* Seldon sums in int32: wraps */
	int32_t total;
	char field[128];

	for (size_t i = 0; i < n; i++) {
		json_t *pred = json_array_get(preds, i);
		int32_t traffic = traffic_of(pred);

		if (!json_is_true(json_object_get(pred, "shadow"))) {
			sum += (uint32_t)traffic;
			continue;
		}
		if (++shadows > 1) {
			snprintf(field, sizeof(field), "spec.predictors[%zu].shadow", i);
			judge_err(j, pred, "shadow", NULL, field,
				  "a second shadow predictor (%s webhook: at most one shadow per "
				  "deployment): set shadow: false on one of them or remove it",
				  RELEASE);
		}
		if (traffic < 0 || traffic > 100) {
			snprintf(field, sizeof(field), "spec.predictors[%zu].traffic", i);
			judge_err(j, pred, "traffic", NULL, field,
				  "the shadow's traffic is %d (%s webhook: a shadow's traffic must "
				  "be from 0 to 100): set it from 0 to 100 or remove it",
				  traffic, RELEASE);
		}
	}
	total = (int32_t)sum;
	if (total != 100 && n - shadows > 1) {
		json_t *last = NULL;
		size_t li = 0;

		for (size_t i = 0; i < n; i++)
			if (!json_is_true(json_object_get(json_array_get(preds, i), "shadow")))
				last = json_array_get(preds, li = i);
		snprintf(field, sizeof(field), "spec.predictors[%zu].traffic", li);
		judge_err(j, last, json_object_get(last, "traffic") ? "traffic" : NULL, last, field,
			  "the traffic of the %zu non-shadow predictors sums to %d (%s webhook: "
			  "with several predictors it must sum to exactly 100): %s",
			  n - shadows, total, RELEASE,
			  total > 100 ? "lower one of them" : "raise one of them");
	}
	if (total > 0 && total < 100 && n == 1) {
		json_t *pred = json_array_get(preds, 0);

		judge_err(j, pred, "traffic", NULL, "spec.predictors[0].traffic",
			  "traffic is %d but this is the only predictor (%s webhook: a single "
			  "predictor's traffic, when set, must be 100): set traffic to 100 or "
			  "remove it",
			  total, RELEASE);
	}
	(void)spec;
}

int ferry_seldon_webhook__check(const struct ferry_seldon_input *in)
{
	struct ferry_seldon_servers *defaults = NULL;
	struct judge j = { .in = in };
	json_t *obj = in->sdep, *spec, *preds, *names, *svc_names;
	const char *transport, *server_type;
	bool bad = false;
	int ret;

	j.servers = in->servers;
	if (!j.servers && !in->cluster_judged) {
		defaults = ferry_seldon_servers__defaults();
		if (!defaults)
			return -ENOMEM;
		j.servers = defaults;
	}
	j.transports = json_object();
	names = json_object();
	svc_names = json_object();
	if (!j.transports || !names || !svc_names) {
		ret = -ENOMEM;
		goto out;
	}

	spec = member(&j, obj, "spec", W_OBJECT, "spec", &bad);
	if (!spec) {
		if (!bad)
			judge_err(&j, obj, NULL, obj, "spec",
				  "no spec (%s webhook: a deployment needs predictors): add "
				  "spec.predictors",
				  RELEASE);
		goto done;
	}
	j.protocol = string_of(&j, spec, "protocol", "spec.protocol");
	transport = string_of(&j, spec, "transport", "spec.transport");
	server_type = string_of(&j, spec, "serverType", "spec.serverType");
	member(&j, spec, "replicas", W_INT32, "spec.replicas", NULL);
	member(&j, spec, "annotations", W_OBJECT, "spec.annotations", NULL);
	if (j.protocol && *j.protocol && strcmp(j.protocol, "seldon") &&
	    strcmp(j.protocol, "tensorflow") && strcmp(j.protocol, "kfserving") &&
	    strcmp(j.protocol, "v2"))
		judge_err(&j, spec, "protocol", NULL, "spec.protocol",
			  "unknown protocol \"%s\" (%s webhook): use seldon, tensorflow, "
			  "kfserving or v2 (lower case), or remove it",
			  j.protocol, RELEASE);
	if (transport && *transport && strcmp(transport, "rest") && strcmp(transport, "grpc"))
		judge_err(&j, spec, "transport", NULL, "spec.transport",
			  "unknown transport \"%s\" (%s webhook): use rest or grpc (lower case), "
			  "or remove it",
			  transport, RELEASE);
	if (server_type && *server_type && strcmp(server_type, "rpc") &&
	    strcmp(server_type, "kafka"))
		judge_err(&j, spec, "serverType", NULL, "spec.serverType",
			  "unknown serverType \"%s\" (%s webhook): use rpc or kafka, or remove it",
			  server_type, RELEASE);

	preds = required(&j, spec, "predictors", W_ARRAY, "spec.predictors", "spec", &bad);
	if (!preds)
		goto done;
	if (!json_array_size(preds)) {
		judge_err(&j, spec, "predictors", NULL, "spec.predictors",
			  "no predictors (%s webhook: a deployment needs at least one): add a "
			  "predictor with a name and a graph",
			  RELEASE);
		goto done;
	}
	for (size_t i = 0; i < json_array_size(preds); i++) {
		json_t *pred = json_array_get(preds, i), *graph, *ann;
		const char *name, *svc;
		char pf[64], field[128];
		size_t nunits = 0;

		snprintf(pf, sizeof(pf), "spec.predictors[%zu]", i);
		if (!json_is_object(pred)) {
			schema_err(
				&j, NULL, NULL, pred, pf,
				"expected a predictor (a mapping with name and graph), found %s (the "
				"SeldonDeployment CRD's schema): "
				"fix the list item",
				json_type_name(pred));
			continue;
		}
		snprintf(field, sizeof(field), "%s.name", pf);
		name = json_string_value(required(&j, pred, "name", W_STRING, field, pf, NULL));
		snprintf(field, sizeof(field), "%s.traffic", pf);
		member(&j, pred, "traffic", W_INT32, field, NULL);
		snprintf(field, sizeof(field), "%s.shadow", pf);
		member(&j, pred, "shadow", W_BOOL, field, NULL);
		check_predictor_schema(&j, pred, pf);

		if (name && json_object_get(names, name)) {
			snprintf(field, sizeof(field), "%s.name", pf);
			judge_err(&j, pred, "name", NULL, field,
				  "predictor name \"%s\" is also used by spec.predictors[%lld] (%s "
				  "webhook: predictor names must be unique): rename one",
				  name, json_integer_value(json_object_get(names, name)), RELEASE);
		} else if (name && json_object_set_new(names, name, json_integer((json_int_t)i))) {
			ret = -ENOMEM;
			goto out;
		}
		ann = json_object_get(pred, "annotations");
		svc = json_is_object(ann) ? json_string_value(json_object_get(ann, ANN_SVC_NAME)) :
					    NULL;
		if (svc && json_object_get(svc_names, svc)) {
			snprintf(field, sizeof(field), "%s.annotations[\"%s\"]", pf, ANN_SVC_NAME);
			judge_err(
				&j, ann, ANN_SVC_NAME, NULL, field,
				"service name \"%s\" is also claimed by spec.predictors[%lld] (%s "
				"webhook: each predictor needs its own service): change one",
				svc, json_integer_value(json_object_get(svc_names, svc)), RELEASE);
		} else if (svc &&
			   json_object_set_new(svc_names, svc, json_integer((json_int_t)i))) {
			ret = -ENOMEM;
			goto out;
		}
		if (server_type && !strcmp(server_type, "kafka"))
			check_kafka(&j, pred, pf);

		snprintf(field, sizeof(field), "%s.graph", pf);
		graph = required(&j, pred, "graph", W_OBJECT, field, pf, NULL);
		if (graph)
			nunits = check_unit(&j, pred, pf, graph, field, 0);
		if (json_is_object(ann) && json_object_get(ann, ANN_NO_ENGINE) && nunits > 1) {
			snprintf(field, sizeof(field), "%s.annotations[\"%s\"]", pf, ANN_NO_ENGINE);
			judge_err(&j, ann, ANN_NO_ENGINE, NULL, field,
				  "the graph has %zu units (%s webhook: a predictor without the "
				  "engine serves a single-unit graph only): remove the annotation "
				  "or reduce the graph to one unit",
				  nunits, RELEASE);
		}
	}
	if (json_array_size(preds) == 1 &&
	    json_is_true(json_object_get(json_array_get(preds, 0), "shadow")))
		judge_err(&j, json_array_get(preds, 0), "shadow", NULL, "spec.predictors[0].shadow",
			  "the only predictor is a shadow (%s webhook: a shadow mirrors another "
			  "predictor): add a predictor with shadow: false, or set this one's "
			  "shadow to false",
			  RELEASE);
	if (json_object_size(j.transports) > 1) {
		judge_err(&j, spec, NULL, spec, "spec.predictors",
			  "the graphs mix endpoint types (%s webhook: one endpoint.type per "
			  "deployment): remove the graphs' endpoint.type and set spec.transport",
			  RELEASE);
	} else if (json_object_size(j.transports) == 1 && transport && *transport) {
		const char *etype = json_object_iter_key(json_object_iter(j.transports));

		if ((!strcmp(etype, "REST") && strcmp(transport, "rest")) ||
		    (!strcmp(etype, "GRPC") && strcmp(transport, "grpc")))
			judge_err(&j, spec, "transport", NULL, "spec.transport",
				  "spec.transport is %s but a graph's endpoint.type is %s (%s "
				  "webhook: the two must agree): remove the graphs' endpoint.type "
				  "and keep spec.transport",
				  transport, etype, RELEASE);
	}
	check_traffic(&j, spec, preds);
done:
	for (size_t i = 0; i < j.nheld && !j.nschema; i++) {
		j.nerrs++;
		in->report(in->arg, &j.held[i]);
	}
	ret = j.nomem ? -ENOMEM : j.nerrs;
out:
	free(j.held);
	json_decref(j.transports);
	json_decref(names);
	json_decref(svc_names);
	ferry_seldon_servers__free(defaults);
	return ret;
}
