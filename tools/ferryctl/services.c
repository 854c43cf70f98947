// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl services: VIPs (and the Service each came from), predictors (configured/effective weight), backends.
 */
#include "ferryctl.h"

/* ------------------------------------------------------------ services */

static const char *state_name(__u8 state, __u32 flags)
{
	if (flags & FERRY_BE_F_ADMIN_DRAIN)
		return "drained";
	switch (state) {
	case FERRY_BE_ACTIVE:
		return "active";
	case FERRY_BE_DRAINING:
		return "draining";
	case FERRY_BE_UNREADY:
		return "unready";
	default:
		return "unused";
	}
}

/* New connections per second per backend: two snapshots 1 s apart. */
static double rate_of(const struct ferry_snapshot *a, const struct ferry_snapshot *b, __u32 id,
		      double dt)
{
	const struct ferry_snap_backend *x = a ? ferry_snapshot__backend(a, id) : NULL;
	const struct ferry_snap_backend *y = ferry_snapshot__backend(b, id);

	if (!x || !y || dt <= 0)
		return 0;
	return (y->stats.new_flows - x->stats.new_flows) / dt;
}

/*
 * The Service each VIP came from (ferry.io/vip: service/NAME): the maps do
 * not hold it, ferryd's status file does ("vip_services"). NULL when there is
 * no status file (ferryd never ran here).
 */
static json_t *read_vip_services(struct ctl *c)
{
	char path[PATH_MAX];
	json_t *st, *vs = NULL;

	if (ferry_status__path(c->pin_path, path, sizeof(path)))
		return NULL;
	st = json_load_file(path, 0, NULL);
	if (st)
		vs = json_incref(json_object_get(st, "vip_services"));
	json_decref(st);
	return vs;
}

static json_t *services_json(const struct ferry_snapshot *prev, const struct ferry_snapshot *snap,
			     double dt, json_t *vip_services)
{
	json_t *arr = json_array();
	size_t i, j, k;
	char buf[FERRY_ADDR_STRLEN + 8];

	for (i = 0; i < snap->nservices; i++) {
		const struct ferry_snap_service *s = &snap->services[i];
		json_t *preds = json_array();

		for (j = 0; j < s->npredictors; j++) {
			const struct ferry_snap_predictor *p =
				ferry_snapshot__predictor(snap, s->predictor_ids[j]);
			json_t *bes = json_array();

			if (!p)
				continue;
			for (k = 0; k < snap->nbackends; k++) {
				const struct ferry_snap_backend *b = &snap->backends[k];

				if (b->backend.predictor_id != p->id)
					continue;
				json_array_append_new(
					bes,
					json_pack("{s:s, s:s, s:I, s:f}", "address",
						  ferry_addr__format(
							  b->backend.addr, b->backend.port,
							  b->backend.family, buf, sizeof(buf)),
						  "state",
						  state_name(b->backend.state, b->backend.flags),
						  "new_connections", (json_int_t)b->stats.new_flows,
						  "new_connections_per_s",
						  rate_of(prev, snap, b->id, dt)));
			}
			json_array_append_new(
				preds, json_pack("{s:s, s:f, s:f, s:o, s:o, s:b, s:I, s:o}", "name",
						 p->name, "weight_configured",
						 p->weight_configured / 1e4, "weight_effective",
						 p->weight_effective / 1e4, "weight_override",
						 p->flags & FERRY_PRED_F_OVERRIDE ?
							 json_real(p->weight_override / 1e4) :
							 json_null(),
						 "weight_canary",
						 p->flags & FERRY_PRED_F_CANARY ?
							 json_real(p->weight_canary / 1e4) :
							 json_null(),
						 "shadow", !!(p->flags & FERRY_PRED_F_SHADOW),
						 "new_connections", (json_int_t)p->stats.new_flows,
						 "backends", bes));
		}
		const char *from;

		ferry_vip__format(&s->vip, buf, sizeof(buf));
		from = json_string_value(json_object_get(vip_services, buf));
		json_array_append_new(
			arr,
			json_pack("{s:s, s:s, s:s?, s:s, s:i, s:o}", "vip", buf, "deployment",
				  s->deployment, "service", from, "affinity",
				  s->flags & FERRY_SVC_F_HASH_SRC_ADDR ? "client-ip" : "connection",
				  "table_size", (int)s->table_size, "predictors", preds));
	}
	return arr;
}

int cmd_services(struct ctl *c, int argc, char **argv)
{
	struct ferry_snapshot *a, *b;
	json_t *arr, *vip_services;
	size_t i, j, k;
	int rc;

	if (simple_args(argc, argv, 0,
			"Usage: ferryctl services [-j]\n"
			"Each VIP with its deployment and the Service it came from (service=-\n"
			"for a literal ADDR:PORT), predictors with configured and effective\n"
			"weight (and the canary analysis' weight or an override in force),\n"
			"backends with state and new connections/s (measured over one second).\n",
			&rc))
		return rc;
	a = read_snapshot(c);
	if (!a)
		return EXIT_FAIL;
	usleep(1000000);
	b = read_snapshot(c);
	if (!b) {
		ferry_snapshot__free(a);
		return EXIT_FAIL;
	}
	vip_services = read_vip_services(c);
	arr = services_json(a, b, 1.0, vip_services);
	json_decref(vip_services);
	if (c->json) {
		print_json(arr);
	} else {
		for (i = 0; i < json_array_size(arr); i++) {
			json_t *s = json_array_get(arr, i),
			       *preds = json_object_get(s, "predictors");

			const char *from = json_string_value(json_object_get(s, "service"));

			/* service=NS/NAME: the Service the VIP came from; service=- a literal VIP. */
			printf("%s  %s  service=%s  (affinity %s, %lld slots)\n",
			       json_string_value(json_object_get(s, "vip")),
			       json_string_value(json_object_get(s, "deployment")),
			       from ? from : "-", json_string_value(json_object_get(s, "affinity")),
			       (long long)json_integer_value(json_object_get(s, "table_size")));
			for (j = 0; j < json_array_size(preds); j++) {
				json_t *p = json_array_get(preds, j),
				       *bes = json_object_get(p, "backends");
				json_t *ov = json_object_get(p, "weight_override");
				json_t *cw = json_object_get(p, "weight_canary");
				char ovtext[48] = "", cwtext[48] = "";

				if (json_is_real(ov))
					snprintf(ovtext, sizeof(ovtext), "  OVERRIDE %.2f%%",
						 json_real_value(ov));
				/* The others share the rest by their configured weights. */
				if (json_is_real(cw))
					snprintf(cwtext, sizeof(cwtext), "  CANARY %.2f%%",
						 json_real_value(cw));
				printf("  %-20s configured %6.2f%%  effective %6.2f%%%s%s%s\n",
				       json_string_value(json_object_get(p, "name")),
				       json_real_value(json_object_get(p, "weight_configured")),
				       json_real_value(json_object_get(p, "weight_effective")),
				       cwtext, ovtext,
				       json_is_true(json_object_get(p, "shadow")) ?
					       "  (shadow: not routed)" :
					       "");
				for (k = 0; k < json_array_size(bes); k++) {
					json_t *be = json_array_get(bes, k);

					printf("    %-40s %-9s %8.1f new conn/s\n",
					       json_string_value(json_object_get(be, "address")),
					       json_string_value(json_object_get(be, "state")),
					       json_real_value(json_object_get(
						       be, "new_connections_per_s")));
				}
			}
		}
		if (!json_array_size(arr))
			printf("no services\n");
		json_decref(arr);
	}
	ferry_snapshot__free(a);
	ferry_snapshot__free(b);
	return EXIT_OK;
}
