// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: the manifest reader and validator. The input is one manifest
 * file (a YAML stream, or JSON when it starts with '{' or '['), read the way
 * ferryd reads --config-dir: parsed with positions, split into documents and
 * List items, validated, then built into a model. JSON objects also go
 * through ferry_config_store__put, the path the Kubernetes source uses.
 */
#include <errno.h>
#include <jansson.h>

#include "source/config.h"
#include "log.h"
#include "model.h"
#include "fuzz.h"

static char yaml_path[128], json_path[128], dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(dir, sizeof(dir), "%s", fuzz_dir_make());
	snprintf(yaml_path, sizeof(yaml_path), "%s/m.yaml", dir);
	snprintf(json_path, sizeof(json_path), "%s/m.json", dir);
	ferry_log_level = FERRY_LOG_ERROR;
	return 0;
}

/* Lines in the current input, for checking the positions errors point at. */
static int nlines;

static void check_errors(const struct ferry_config_store *store)
{
	char line[2048];

	for (size_t i = 0; i < ferry_config_store__nerrors(store); i++) {
		const struct ferry_config_error *e = ferry_config_store__error(store, i);

		/* Every rejection says what is wrong, and where, inside the file. */
		if (!e || !e->message[0] || e->line < 0 || e->column < 0 ||
		    (strstr(e->file, dir) && e->line > nlines + 1))
			abort();
		ferry_config_error__format(e, line, sizeof(line));
	}
}

static void build(struct ferry_config_store *store)
{
	struct ferry_model model = {};

	if (!ferry_config_store__build(store, &model))
		ferry_model__free(&model);
	check_errors(store);
}

/* Objects as the Kubernetes source hands them over: one by one, List items unwrapped. */
static void put_json(struct ferry_config_store *store, const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, 0, NULL), *items, *item;
	size_t i;

	if (!root)
		return;
	items = json_object_get(root, "items");
	if (json_is_array(items)) {
		json_array_foreach(items, i, item)
			ferry_config_store__put(store, item, "kubernetes");
	} else {
		ferry_config_store__put(store, root, "kubernetes");
	}
	build(store);
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_config_store *store;
	size_t i = 0;
	bool json;
	int n;

	nlines = 1;
	for (size_t k = 0; k < size; k++)
		nlines += data[k] == '\n' || data[k] == '\r';
	while (i < size && strchr(" \t\r\n", data[i]))
		i++;
	json = i < size && (data[i] == '{' || data[i] == '[');
	unlink(json ? yaml_path : json_path);
	fuzz_write(json ? json_path : yaml_path, data, size);

	store = ferry_config_store__new();
	if (!store)
		return 0;
	n = ferry_config_store__load_dir(store, dir);
	if (n < 0 && n != -ENOMEM)
		abort(); /* the directory is there and readable */
	check_errors(store);
	build(store);
	if (json)
		put_json(store, data, size);
	ferry_config_store__free(store);
	return 0;
}
