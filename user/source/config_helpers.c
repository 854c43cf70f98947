// SPDX-License-Identifier: GPL-2.0-only
/*
 * Small helpers shared by the config rules: error lists, typed JSON
 * members, string sets, reference counts of validated objects.
 */
#include "source/config_internal.h"

/* ------------------------------------------------------------ helpers */

int errs_push(struct error_list *l, const struct ferry_config_error *e, const char *key)
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

void errs_clear(struct error_list *l)
{
	l->n = 0;
}

void errs_drop_key(struct error_list *l, const char *key)
{
	size_t j = 0;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key))
			l->v[j++] = l->v[i];
	l->n = j;
}

const char *json_type_name(const json_t *v)
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
json_t *get_object(struct vctx *c, json_t *parent, const char *key, const char *field)
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

const char *get_string(struct vctx *c, json_t *parent, const char *key, const char *field,
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

/*
 * Service spec.ports[i] and EndpointSlice ports[i] share their name, protocol and port
 * fields and Kubernetes' rules for them; PREFIX names the list in errors. Returns 1 for a
 * TCP or UDP port, 0 for an entry ferry does not balance (SCTP, or no number where
 * NUMBER_OPTIONAL: a slice's "all ports"), -EINVAL when the entry is malformed (recorded).
 */
int read_k8s_port(struct vctx *c, json_t *p, const char *prefix, size_t i, bool number_optional,
		  struct k8s_port *out)
{
	const char *proto;
	bool bad = false;
	char field[64];
	json_t *num;

	snprintf(field, sizeof(field), "%s[%zu]", prefix, i);
	if (!json_is_object(p)) {
		verr(c, NULL, NULL, p, field, "expected a mapping, found %s", json_type_name(p));
		return -EINVAL;
	}
	snprintf(field, sizeof(field), "%s[%zu].name", prefix, i);
	out->name = get_string(c, p, "name", field, &bad);
	snprintf(field, sizeof(field), "%s[%zu].protocol", prefix, i);
	proto = get_string(c, p, "protocol", field, &bad);
	snprintf(field, sizeof(field), "%s[%zu].port", prefix, i);
	num = json_object_get(p, "port");
	if ((!num || json_is_null(num)) && number_optional)
		return bad ? -EINVAL : 0;
	if (!json_is_integer(num) || json_integer_value(num) < 1 ||
	    json_integer_value(num) > 65535) {
		if (num)
			verr(c, p, "port", num, field, "expected a port number from 1 to 65535");
		else
			verr(c, p, NULL, p, field, "expected a port number from 1 to 65535");
		return -EINVAL;
	}
	if (bad)
		return -EINVAL;
	out->port = (__u16)json_integer_value(num);
	out->proto = proto && !strcmp(proto, "UDP") ? IPPROTO_UDP : IPPROTO_TCP;
	return !proto || !strcmp(proto, "TCP") || !strcmp(proto, "UDP");
}

int str_set_add(struct str_set *s, const char *v)
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

bool str_set_has(const struct str_set *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return true;
	return false;
}

void str_set_free(struct str_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void sdep_put(struct sdep *sd)
{
	if (!sd || --sd->refcnt > 0)
		return;
	free(sd->vips);
	free(sd->svcs);
	free(sd->preds);
	free(sd);
}

struct sdep *sdep_get(struct sdep *sd)
{
	if (sd)
		sd->refcnt++;
	return sd;
}

void slice_free(struct slice *sl)
{
	if (!sl)
		return;
	free(sl->ports);
	free(sl->eps);
	free(sl);
}

void k8s_svc_free(struct k8s_svc *svc)
{
	if (!svc)
		return;
	free(svc->ips);
	free(svc->ports);
	free(svc);
}

void entry_free(struct entry *e)
{
	if (!e)
		return;
	sdep_put(e->sd);
	sdep_put(e->built);
	slice_free(e->sl);
	k8s_svc_free(e->svc);
	json_decref(e->obj);
	ferry_manifest__put(e->mf);
	free(e);
}

/* e's object; a file's object whose tree was shed is read again (a cache: not a change). */
json_t *entry_obj(const struct entry *e)
{
	struct entry *w = (struct entry *)e;
	json_t *doc;

	if (e->obj || !e->mf)
		return e->obj;
	doc = ferry_manifest__doc(e->mf, e->doc);
	if (e->item != ENTRY_DOC)
		doc = json_array_get(json_object_get(doc, "items"), e->item);
	w->obj = json_incref(doc);
	return w->obj;
}

const char *kind_name(enum obj_kind kind)
{
	return kind == OBJ_SDEP ? KIND_SDEP : kind == OBJ_SLICE ? KIND_SLICE : KIND_SERVICE;
}

void entry_key(enum obj_kind kind, const char *ns, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/%s", kind_name(kind), ns, name);
}
