/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Seldon Core's admission rules for SeldonDeployments, so that a manifest
 * ferry reads from a file gets the verdict the cluster would give it: the
 * structural rules of the CRD (required fields, field types) and every rule
 * of the v1 validating webhook, as of Seldon Core v1.18.2, the last v1
 * release. The webhook is registered for v1 and the API server converts
 * v1alpha2 and v1alpha3 objects to v1 for it, so one set of rules serves all
 * three versions.
 *
 * Ferry's own restrictions (what ferry cannot balance) are not here: they
 * are the config layer's (user/source/config_sdep.c).
 */
#ifndef FERRY_SELDON_WEBHOOK_H
#define FERRY_SELDON_WEBHOOK_H

#include <stdbool.h>
#include <jansson.h>

#include "source/config_error.h"
#include "source/manifest.h"

/*
 * The prepackaged model servers a cluster's seldon-config ConfigMap knows
 * (its data.predictor_servers): a graph unit that names one of them as its
 * implementation and brings no container image of its own needs an entry.
 */
struct ferry_seldon_servers;

/* The servers of Seldon's Helm chart (v1.18.2 values.yaml). NULL and errno on failure. */
struct ferry_seldon_servers *ferry_seldon_servers__defaults(void);
/*
 * Reads the seldon-config ConfigMap (YAML or JSON, as kubectl prints it).
 * Returns NULL and fills *err when the file cannot be read or is not such a
 * ConfigMap; errno is then EINVAL, ENOMEM or the read error.
 */
struct ferry_seldon_servers *ferry_seldon_servers__load(const char *path,
							struct ferry_config_error *err);
void ferry_seldon_servers__free(struct ferry_seldon_servers *servers);
bool ferry_seldon_servers__has(const struct ferry_seldon_servers *servers, const char *name);

struct ferry_seldon_input {
	json_t *sdep; /* the whole SeldonDeployment object */
	/* Where it came from, for errors: mf may be NULL (no positions). */
	const struct ferry_manifest *mf;
	const char *file;
	const char *object; /* "SeldonDeployment namespace/name" */
	/* seldon-config's servers; NULL: the Helm chart's defaults. */
	const struct ferry_seldon_servers *servers;
	/*
	 * The cluster's own webhook admitted the object (--kubernetes): rules
	 * that depend on the cluster's configuration are not judged again.
	 */
	bool cluster_judged;
	/* Called once per error; the error is only valid during the call. */
	void (*report)(void *arg, const struct ferry_config_error *err);
	void *arg;
};

/*
 * Judges one SeldonDeployment. Returns the number of errors reported (0:
 * Seldon admits it), or -ENOMEM.
 */
int ferry_seldon_webhook__check(const struct ferry_seldon_input *in);

#endif /* FERRY_SELDON_WEBHOOK_H */
