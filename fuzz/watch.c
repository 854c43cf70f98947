// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: the Kubernetes watch-stream decoder. The input is cut into
 * chunks (a length byte before each, as HTTP chunks cut a stream anywhere,
 * mid-event included) and fed to a client's SeldonDeployment or
 * EndpointSlice watch; decoded objects go on to a manifest store, as ferryd
 * wires it, which validates them and builds a model after every chunk.
 */
#include <errno.h>

#include "source/config.h"
#include "source/k8s.h"
#include "log.h"
#include "model.h"
#include "fuzz.h"

static struct ferry_k8s *k8s;
static struct ferry_config_store *store;

static void on_upsert(json_t *object, void *ctx)
{
	/* The client promises kind and apiVersion on every object. */
	if (!json_is_string(json_object_get(object, "kind")) ||
	    !json_is_string(json_object_get(object, "apiVersion")))
		abort();
	ferry_config_store__put(store, object, "kubernetes");
}

static void on_delete(const char *kind, const char *ns, const char *name, void *ctx)
{
	if (!kind || !ns || !name)
		abort();
	ferry_config_store__delete(store, kind, ns, name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_dir_make();
	char path[128];
	struct ferry_k8s_opts opts = { .on_upsert = on_upsert, .on_delete = on_delete };
	static const char kc[] = "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
				 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
				 "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
				 "users: [{name: u, user: {token: t}}]\n";

	ferry_log_level = FERRY_LOG_ERROR;
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	fuzz_write(path, kc, sizeof(kc) - 1);
	opts.kubeconfig = path;
	k8s = ferry_k8s__new(&opts);
	if (!k8s)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_model model = {};
	int resource;

	if (size < 1)
		return 0;
	/* A fresh store per input: inputs stay independent of each other. */
	store = ferry_config_store__new();
	if (!store)
		return 0;
	resource = data[0] % 3; /* SeldonDeployments, EndpointSlices, Services */
	data++;
	size--;
	while (size) {
		/* Chunk length 0 means "the rest". */
		size_t n = data[0] ? data[0] : size - 1, taken;

		data++;
		size--;
		if (n > size)
			n = size;
		taken = ferry_k8s__feed_watch(k8s, resource, (const char *)data, n);
		if (taken > n)
			abort();
		data += n;
		size -= n;
		if (!ferry_config_store__build(store, &model))
			ferry_model__free(&model);
	}
	/* End of stream: the partial line is dropped with the connection. */
	ferry_k8s__feed_watch(k8s, resource, "\n", 1);
	ferry_config_store__free(store);
	store = NULL;
	return 0;
}
