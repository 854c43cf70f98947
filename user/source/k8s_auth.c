// SPDX-License-Identifier: GPL-2.0-only
/*
 * Where the API server is and how to authenticate: a kubeconfig (libyaml)
 * or the in-cluster ServiceAccount.
 */
#include "source/k8s_internal.h"

/* --- kubeconfig ------------------------------------------------------- */

struct kubeconfig {
	const char *path;
	yaml_document_t doc;
};

static yaml_node_t *yaml_get(struct kubeconfig *kc, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *pair;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(&kc->doc, pair->key);

		if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
			return yaml_document_get_node(&kc->doc, pair->value);
	}
	return NULL;
}

static const char *yaml_str(yaml_node_t *node)
{
	if (!node || node->type != YAML_SCALAR_NODE || !node->data.scalar.length)
		return NULL;
	return (const char *)node->data.scalar.value;
}

/* The entry of list_key (clusters, users, contexts) called name, or NULL. */
static yaml_node_t *yaml_named(struct kubeconfig *kc, const char *list_key, const char *name)
{
	yaml_node_t *list = yaml_get(kc, yaml_document_get_root_node(&kc->doc), list_key);
	yaml_node_item_t *item;

	if (!list || list->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (item = list->data.sequence.items.start; item < list->data.sequence.items.top; item++) {
		yaml_node_t *entry = yaml_document_get_node(&kc->doc, *item);
		const char *n = yaml_str(yaml_get(kc, entry, "name"));

		if (n && !strcmp(n, name))
			return entry;
	}
	return NULL;
}

static void kc_err(struct kubeconfig *kc, yaml_node_t *node, const char *field, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));
static void kc_err(struct kubeconfig *kc, yaml_node_t *node, const char *field, const char *fmt,
		   ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (node)
		pr_err("%s:%zu:%zu: %s: %s", kc->path, node->start_mark.line + 1,
		       node->start_mark.column + 1, field, msg);
	else
		pr_err("%s: %s: %s", kc->path, field, msg);
}

/* A path relative to the kubeconfig's directory, as kubectl resolves it. */
static char *kc_path(struct kubeconfig *kc, const char *p)
{
	const char *slash = strrchr(kc->path, '/');
	char *out;

	if (p[0] == '/' || !slash)
		return strdup(p);
	if (asprintf(&out, "%.*s/%s", (int)(slash - kc->path), kc->path, p) < 0)
		return NULL;
	return out;
}

/* Loads field (a path) or field-data (base64) of node into *file or *blob. */
static int kc_file_or_data(struct kubeconfig *kc, yaml_node_t *node, const char *field,
			   const char *where, char **file, struct k8s_buf *blob)
{
	char data_field[64];
	yaml_node_t *n;

	snprintf(data_field, sizeof(data_field), "%s-data", field);
	n = yaml_get(kc, node, data_field);
	if (yaml_str(n)) {
		if (base64_decode(yaml_str(n), blob)) {
			kc_err(kc, n, data_field,
			       "%s: expected base64 of a PEM file; fix: encode it with `base64 -w0 FILE`",
			       where);
			return -EINVAL;
		}
		return 0;
	}
	n = yaml_get(kc, node, field);
	if (yaml_str(n)) {
		*file = kc_path(kc, yaml_str(n));
		if (!*file)
			return -ENOMEM;
		if (access(*file, R_OK)) {
			kc_err(kc, n, field, "%s: cannot read %s: %s", where, *file,
			       strerror(errno));
			return -ENOENT;
		}
	}
	return 0;
}

/*
 * Long on purpose: walks a kubeconfig (current context, cluster, user) in order,
 * with an error naming each field it cannot use.
 */
int load_kubeconfig(struct ferry_k8s *k8s, const char *path)
{
	struct kubeconfig kc = { .path = path };
	struct k8s_auth *auth = &k8s->auth;
	yaml_node_t *root, *ctx, *cluster, *user, *n;
	const char *cur, *cluster_name, *user_name, *server;
	yaml_parser_t parser;
	int err = -EINVAL;
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		err = -errno;
		pr_err("%s: cannot open kubeconfig: %s; fix: pass --kubeconfig with a readable file, or run in a cluster",
		       path, strerror(errno));
		return err;
	}
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &kc.doc)) {
		pr_err("%s:%zu:%zu: kubeconfig is not valid YAML: %s", path,
		       parser.problem_mark.line + 1, parser.problem_mark.column + 1,
		       parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		fclose(f);
		return -EINVAL;
	}
	yaml_parser_delete(&parser);
	fclose(f);

	root = yaml_document_get_root_node(&kc.doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		kc_err(&kc, root, "(top level)",
		       "expected a kubeconfig mapping (apiVersion: v1, kind: Config)");
		goto out_doc;
	}
	cur = yaml_str(yaml_get(&kc, root, "current-context"));
	if (!cur) {
		kc_err(&kc, root, "current-context",
		       "missing; fix: `kubectl config use-context NAME --kubeconfig %s`", path);
		goto out_doc;
	}
	ctx = yaml_get(&kc, yaml_named(&kc, "contexts", cur), "context");
	if (!ctx) {
		kc_err(&kc, yaml_get(&kc, root, "current-context"), "current-context",
		       "no entry \"%s\" under contexts (with a context: mapping)", cur);
		goto out_doc;
	}
	cluster_name = yaml_str(yaml_get(&kc, ctx, "cluster"));
	user_name = yaml_str(yaml_get(&kc, ctx, "user"));
	if (!cluster_name) {
		kc_err(&kc, ctx, "contexts[].context.cluster", "missing in context \"%s\"", cur);
		goto out_doc;
	}
	cluster = yaml_get(&kc, yaml_named(&kc, "clusters", cluster_name), "cluster");
	if (!cluster) {
		kc_err(&kc, yaml_get(&kc, ctx, "cluster"), "contexts[].context.cluster",
		       "no entry \"%s\" under clusters (with a cluster: mapping)", cluster_name);
		goto out_doc;
	}
	n = yaml_get(&kc, cluster, "server");
	server = yaml_str(n);
	if (!server || (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))) {
		kc_err(&kc, n ? n : cluster, "clusters[].cluster.server",
		       "expected a URL such as https://203.0.113.1:6443 in cluster \"%s\"",
		       cluster_name);
		goto out_doc;
	}
	auth->server = strdup(server);
	if (!auth->server) {
		err = -ENOMEM;
		goto out_doc;
	}
	while (strlen(auth->server) && auth->server[strlen(auth->server) - 1] == '/')
		auth->server[strlen(auth->server) - 1] = '\0';
	err = kc_file_or_data(&kc, cluster, "certificate-authority", cluster_name, &auth->ca_file,
			      &auth->ca);
	if (err)
		goto out_doc;
	n = yaml_get(&kc, cluster, "insecure-skip-tls-verify");
	auth->insecure = yaml_str(n) && !strcmp(yaml_str(n), "true");

	user = user_name ? yaml_get(&kc, yaml_named(&kc, "users", user_name), "user") : NULL;
	if (user_name && !user) {
		kc_err(&kc, yaml_get(&kc, ctx, "user"), "contexts[].context.user",
		       "no entry \"%s\" under users (with a user: mapping)", user_name);
		err = -EINVAL;
		goto out_doc;
	}
	if (user) {
		if (yaml_get(&kc, user, "exec") || yaml_get(&kc, user, "auth-provider")) {
			kc_err(&kc, user, "users[].user.exec",
			       "credential plugins are not supported by ferryd; fix: use a ServiceAccount token (token: or tokenFile:) or a client certificate");
			err = -EOPNOTSUPP;
			goto out_doc;
		}
		if (yaml_str(yaml_get(&kc, user, "token"))) {
			auth->token = strdup(yaml_str(yaml_get(&kc, user, "token")));
			if (!auth->token) {
				err = -ENOMEM;
				goto out_doc;
			}
		} else if (yaml_str(yaml_get(&kc, user, "tokenFile"))) {
			auth->token_file = kc_path(&kc, yaml_str(yaml_get(&kc, user, "tokenFile")));
			if (!auth->token_file) {
				err = -ENOMEM;
				goto out_doc;
			}
		}
		err = kc_file_or_data(&kc, user, "client-certificate", user_name, &auth->cert_file,
				      &auth->cert);
		if (!err)
			err = kc_file_or_data(&kc, user, "client-key", user_name, &auth->key_file,
					      &auth->key);
		if (err)
			goto out_doc;
		if (!!(auth->cert_file || auth->cert.len) != !!(auth->key_file || auth->key.len)) {
			kc_err(&kc, user, "users[].user.client-key",
			       "user \"%s\" has a client certificate without a key or a key without a certificate; fix: set both",
			       user_name);
			err = -EINVAL;
			goto out_doc;
		}
	}
	snprintf(auth->source, sizeof(auth->source), "kubeconfig %s, user \"%s\"", path,
		 user_name ? user_name : "(none)");
	err = 0;
out_doc:
	yaml_document_delete(&kc.doc);
	return err;
}

int load_in_cluster(struct ferry_k8s *k8s)
{
	const char *dir = k8s->opts.serviceaccount_dir ?: K8S_SA_DIR;
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct k8s_auth *auth = &k8s->auth;
	char *token, *path;
	int n;

	if (!host || !*host || !port || !*port) {
		pr_err("kubernetes: not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; fix: pass --kubeconfig FILE");
		return -ENOENT;
	}
	/* An IPv6 service address (single-stack IPv6 clusters) needs brackets. */
	n = asprintf(&auth->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port);
	if (n < 0)
		return -ENOMEM;
	if (asprintf(&auth->token_file, "%s/token", dir) < 0 ||
	    asprintf(&auth->ca_file, "%s/ca.crt", dir) < 0)
		return -ENOMEM;
	token = read_small_file(auth->token_file);
	if (!token) {
		n = -errno;
		pr_err("kubernetes: cannot read the ServiceAccount token %s: %s; fix: set automountServiceAccountToken: true on the pod",
		       auth->token_file, strerror(errno));
		return n;
	}
	free(token);
	if (access(auth->ca_file, R_OK)) {
		n = -errno;
		pr_err("kubernetes: cannot read the cluster CA %s: %s", auth->ca_file,
		       strerror(errno));
		return n;
	}
	if (asprintf(&path, "%s/namespace", dir) < 0)
		return -ENOMEM;
	k8s->own_namespace = read_small_file(path);
	free(path);
	snprintf(auth->source, sizeof(auth->source), "ServiceAccount token %s", auth->token_file);
	return 0;
}
