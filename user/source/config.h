/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Manifests in, desired state out. A store holds the Kubernetes objects
 * ferry cares about (SeldonDeployment, EndpointSlice, Service), from files or from the
 * Kubernetes API, validates each the way Seldon's admission webhook does (and
 * then by ferry's own rules), and builds a struct ferry_model from them.
 *
 * An object that fails to parse or validate is rejected alone: the last good
 * version of the same object (kind, namespace, name) stays in force, and
 * every other object is used.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "model.h"
#include "source/config_error.h"

struct ferry_config_store;

struct ferry_config_store *ferry_config_store__new(void);
void ferry_config_store__free(struct ferry_config_store *store);

/*
 * Whether a directory entry's name is a manifest's: *.yaml, *.yml or *.json,
 * not hidden. The one rule for what __load_dir reads and what an edit is.
 */
bool ferry_config__manifest_name(const char *name);

/*
 * Re-reads every *.yaml, *.yml and *.json file in dir (not recursive) and
 * replaces the objects that came from files. Returns the number of errors
 * found (0 when all is well), or a negative errno when dir cannot be read.
 */
int ferry_config_store__load_dir(struct ferry_config_store *store, const char *dir);

/*
 * Re-reads only the named files of dir (names as inotify gives them: a file
 * written, created, renamed in or out, or deleted) and replaces the objects
 * that came from them; every other file's objects and errors stay as they
 * are. The same rules as __load_dir: a file that does not parse, or an object
 * rejected, keeps the last good version. Returns the number of errors in
 * force (0 when all is well), -EAGAIN when only a whole-directory load gives
 * the same result (an object defined in two files, objects from the API,
 * nothing loaded yet, a name that is not a manifest but may stand for many,
 * such as ConfigMap's ..data): call __load_dir. Other negative errnos leave
 * the store as it was.
 */
int ferry_config_store__load_files(struct ferry_config_store *store, const char *dir,
				   const char *const *names, size_t n);

/*
 * Puts one object (a decoded Kubernetes object) from a non-file source such
 * as the Kubernetes API; origin names the source in errors. The store takes
 * its own reference. Returns 0, or a negative errno (-EINVAL when the object
 * is rejected; the error is recorded).
 */
int ferry_config_store__put(struct ferry_config_store *store, json_t *object, const char *origin);

struct ferry_seldon_servers;

/*
 * How Seldon's rules are judged (user/seldon_webhook.h): servers is the
 * cluster's seldon-config (NULL: the defaults of Seldon's Helm chart; the
 * store does not own it, it must outlive the store), and cluster_judged says
 * that objects given to __put passed the cluster's own admission webhook, so
 * rules that depend on the cluster's configuration are not judged again for
 * them. Objects read from files are always judged in full.
 */
void ferry_config_store__set_seldon(struct ferry_config_store *store,
				    const struct ferry_seldon_servers *servers,
				    bool cluster_judged);

/* Removes an object put by __put. Returns 0 or -ENOENT. */
int ferry_config_store__delete(struct ferry_config_store *store, const char *kind,
			       const char *namespace, const char *name);

/*
 * Before the first build of a ferryd that adopted a running data plane:
 * deployment ("namespace/name") holds vip there (its pinned ferry_svc_meta).
 * When two deployments claim vip, the build keeps it with that one, as with
 * the owner of a previous build, instead of the first by name: a restart must
 * not move a contested VIP and reset its connections. Returns 0 or -ENOMEM.
 */
int ferry_config_store__adopt_owner(struct ferry_config_store *store, const struct ferry_vip *vip,
				    const char *deployment);

/*
 * Builds the desired state from every object in force (validated, mapped,
 * weights redistributed). Cross-object rules (a VIP claimed twice) reject an
 * object here. Returns 0 or a negative errno; *model must be freed with
 * ferry_model__free.
 */
int ferry_config_store__build(struct ferry_config_store *store, struct ferry_model *model);

/*
 * After __load_files: updates *model, the model of the last build, for the
 * deployments the loaded files touch (their own objects, the EndpointSlices
 * of their predictors, the Services they name) and leaves every other
 * service of it as it is. The result equals what __build gives. Returns 0,
 * -EAGAIN when only a full __build gives the same result (anything but
 * __load_files since the last build, a build with errors, a change that
 * raises one, a VIP another deployment held, many deployments touched):
 * *model is then as it was. -ENOMEM leaves *model as it was too.
 */
int ferry_config_store__build_update(struct ferry_config_store *store, struct ferry_model *model);

/*
 * Deployments that name a Service (ferry.io/vip: service/NAME) that does not
 * exist, as of the last __build: accepted, balanced once it appears. Fills
 * deployment ("namespace/name") and service ("namespace/name") of entry i.
 * Returns 0, or -ENOENT past the end.
 */
size_t ferry_config_store__nwaiting(const struct ferry_config_store *store);
int ferry_config_store__waiting(const struct ferry_config_store *store, size_t i, char *deployment,
				size_t dlen, char *service, size_t slen);

/* The errors of the last __load_dir, __put and __build calls, in order. */
size_t ferry_config_store__nerrors(const struct ferry_config_store *store);
const struct ferry_config_error *ferry_config_store__error(const struct ferry_config_store *store,
							   size_t i);

#endif /* FERRY_CONFIG_H */
