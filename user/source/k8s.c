// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kubernetes list+watch client for ferryd (see k8s.h): configuration from a
 * kubeconfig (libyaml) or the in-cluster ServiceAccount, one libcurl multi
 * loop for both resources, newline-delimited watch events parsed with
 * jansson as they stream in, and rate-limited Events for invalid manifests.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <yaml.h>

#include "source/k8s.h"
#include "log.h"

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* A list page of 500 large SeldonDeployments stays far below this; the cap
 * only stops a broken server from eating memory. */
#define K8S_MAX_BODY (64u << 20)
#define K8S_MAX_LINE (16u << 20)
#define K8S_MAX_ERR_BODY 4096
#define K8S_LIST_TIMEOUT_S 60
/* The server ends a watch after timeoutSeconds; this client-side cap on top
 * catches a connection that died without a FIN or RST. */
#define K8S_WATCH_GRACE_S 30
#define K8S_EVENT_TIMEOUT_S 5

struct k8s_buf {
	char *data;
	size_t len, cap;
};

enum k8s_phase { PHASE_LIST, PHASE_WATCH };

struct k8s_resource {
	struct ferry_k8s *k8s;
	const char *kind, *api_version, *api_path, *plural;
	enum k8s_phase phase; /* what runs now, or next when idle */
	bool active; /* a transfer is in the multi handle */
	uint64_t start_at; /* when idle: start the next transfer then (ms) */
	uint64_t started; /* when the current transfer started (ms) */
	unsigned int backoff_ms; /* 0 after a success */
	char rv[64]; /* resourceVersion to watch from */
	char *cont; /* continue token of the list in progress */
	json_t *items; /* items of the list in progress */
	json_t *known; /* "ns/name" -> {"ns","name","uid"}: what callers have */
	json_t *pending; /* watch events parsed, not yet delivered */
	bool synced; /* listed completely at least once */
	bool gone; /* the watch got an ERROR event with code 410 */
	bool bad_event; /* the watch got an event it could not parse */
	unsigned int nevents; /* events received by the current watch */
	long status; /* HTTP status of the current transfer, once known */
	CURL *easy;
	struct curl_slist *headers;
	struct k8s_buf body; /* list body, error body, or the watch's partial line */
};

/* One Event on its way: queued by any thread, posted by the loop. */
struct k8s_post {
	struct k8s_post *next;
	char key[600]; /* the rate-limit entry, forgotten if the post fails */
	char what[600]; /* "Kind ns/name", for logs */
	char ns[256];
	char *body;
	CURL *easy;
	struct curl_slist *headers;
	struct k8s_buf answer;
};

/* Events waiting while the API server is unreachable are capped, oldest kept. */
#define K8S_MAX_QUEUED_POSTS 256

struct k8s_auth {
	char *server; /* "https://host:port[/prefix]", no trailing slash */
	char *token; /* static bearer token, or NULL */
	char *token_file; /* re-read for each request (bound tokens rotate) */
	char *ca_file, *cert_file, *key_file;
	struct k8s_buf ca, cert, key; /* decoded *-data blobs */
	bool insecure;
	char source[PATH_MAX + 64]; /* where the configuration came from, for errors */
};

struct ferry_k8s {
	struct ferry_k8s_opts opts;
	char *namespace;
	char *own_namespace; /* in-cluster: where ferryd runs (for logs) */
	struct k8s_auth auth;
	struct k8s_resource res[2];
	CURLM *multi;
	atomic_bool stop;
	bool thread_started;
	pthread_t thread;
	int run_err;
	uint64_t resync_at;
	unsigned int seed; /* jitter */
	pthread_mutex_t lock; /* error, events*, posts_queued, res[].known */
	char error[1024];
	json_t *events; /* "kind/ns/name" -> {"t": seconds, "msg": message} */
	bool events_forbidden;
	struct k8s_post *posts_queued; /* under lock: Events to post, oldest first */
	unsigned int nposts_queued;
	struct k8s_post *posts_active; /* loop thread only: Events being posted */
	char host[256];
};

static const struct {
	const char *kind, *api_version, *api_path, *plural;
} resource_types[2] = {
	{ "SeldonDeployment", "machinelearning.seldon.io/v1", "/apis/machinelearning.seldon.io/v1",
	  "seldondeployments" },
	{ "EndpointSlice", "discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1", "endpointslices" },
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int buf_append(struct k8s_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *data;

		while (cap < b->len + n + 1)
			cap *= 2;
		data = realloc(b->data, cap);
		if (!data)
			return -ENOMEM;
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static void buf_free(struct k8s_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void set_error(struct ferry_k8s *k8s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct ferry_k8s *k8s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&k8s->lock);
	va_start(ap, fmt);
	vsnprintf(k8s->error, sizeof(k8s->error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&k8s->lock);
}

/* Reads a small file whole, without trailing whitespace (token, namespace). */
static char *read_small_file(const char *path)
{
	struct k8s_buf b = {};
	char chunk[4096];
	size_t n;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + n > (1u << 20) || buf_append(&b, chunk, n)) {
			fclose(f);
			buf_free(&b);
			errno = EFBIG;
			return NULL;
		}
	}
	fclose(f);
	if (!b.data && buf_append(&b, "", 0))
		return NULL;
	while (b.len && strchr(" \t\r\n", b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	return b.data;
}

/*
 * Standard base64 (RFC 4648) as kubeconfig's *-data fields use it. None of
 * the libraries ferry links exposes a decoder (libcurl's is internal), and
 * pulling in libcrypto for twenty lines is not worth a new dependency.
 */
static int base64_decode(const char *in, struct k8s_buf *out)
{
	unsigned int acc = 0, nbits = 0;

	for (; *in; in++) {
		const char *alphabet =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		const char *p;
		char byte;

		if (strchr(" \t\r\n", *in))
			continue;
		if (*in == '=')
			break;
		p = strchr(alphabet, *in);
		if (!p)
			return -EINVAL;
		acc = (acc << 6) | (unsigned int)(p - alphabet);
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			byte = (char)((acc >> nbits) & 0xff);
			if (buf_append(out, &byte, 1))
				return -ENOMEM;
		}
	}
	return out->len ? 0 : -EINVAL;
}

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

static int load_kubeconfig(struct ferry_k8s *k8s, const char *path)
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

static int load_in_cluster(struct ferry_k8s *k8s)
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

/* --- requests ------------------------------------------------------------ */

static void set_blob(CURL *easy, CURLoption opt, struct k8s_buf *b)
{
	struct curl_blob blob = { .data = b->data, .len = b->len, .flags = CURL_BLOB_COPY };

	curl_easy_setopt(easy, opt, &blob);
}

/*
 * The options every request shares: URL, authentication, TLS. *headers must
 * outlive the transfer. Returns 0 or a negative errno (token unreadable).
 */
static int setup_request(struct ferry_k8s *k8s, CURL *easy, const char *url,
			 struct curl_slist **headers)
{
	struct k8s_auth *auth = &k8s->auth;
	char *token = auth->token, *line = NULL;
	struct curl_slist *h = NULL;
	int err = 0;

	if (auth->token_file) {
		token = read_small_file(auth->token_file);
		if (!token) {
			err = -errno;
			set_error(k8s, "kubernetes: cannot read token %s: %s", auth->token_file,
				  strerror(errno));
			return err;
		}
	}
	h = curl_slist_append(h, "Accept: application/json");
	if (token && *token) {
		if (asprintf(&line, "Authorization: Bearer %s", token) < 0)
			line = NULL;
		if (line)
			h = curl_slist_append(h, line);
		free(line);
	}
	if (token != auth->token)
		free(token);
	*headers = h;

	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "ferryd");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https,http");
	if (auth->ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, auth->ca_file);
	if (auth->ca.len)
		set_blob(easy, CURLOPT_CAINFO_BLOB, &auth->ca);
	if (auth->cert_file)
		curl_easy_setopt(easy, CURLOPT_SSLCERT, auth->cert_file);
	if (auth->cert.len)
		set_blob(easy, CURLOPT_SSLCERT_BLOB, &auth->cert);
	if (auth->key_file)
		curl_easy_setopt(easy, CURLOPT_SSLKEY, auth->key_file);
	if (auth->key.len)
		set_blob(easy, CURLOPT_SSLKEY_BLOB, &auth->key);
	if (auth->insecure) {
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return 0;
}

/* The "message" of a Kubernetes Status body, or the body itself. */
static void status_message(const struct k8s_buf *body, char *out, size_t len)
{
	json_t *status;

	snprintf(out, len, "%s", body->len ? body->data : "(empty body)");
	status = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
	if (json_is_string(json_object_get(status, "message")))
		snprintf(out, len, "%s", json_string_value(json_object_get(status, "message")));
	json_decref(status);
}

/* --- list and watch ------------------------------------------------------ */

static int object_key(json_t *obj, char *key, size_t len, const char **ns, const char **name)
{
	json_t *meta = json_object_get(obj, "metadata");

	*ns = json_string_value(json_object_get(meta, "namespace")) ?: "";
	*name = json_string_value(json_object_get(meta, "name"));
	if (!*name)
		return -EINVAL;
	snprintf(key, len, "%s/%s", *ns, *name);
	return 0;
}

/* List items come without kind and apiVersion for built-in types. */
static void fill_type(struct k8s_resource *res, json_t *obj)
{
	if (!json_is_string(json_object_get(obj, "kind")))
		json_object_set_new(obj, "kind", json_string(res->kind));
	if (!json_is_string(json_object_get(obj, "apiVersion")))
		json_object_set_new(obj, "apiVersion", json_string(res->api_version));
}

static void set_rv(struct k8s_resource *res, json_t *obj)
{
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	if (rv && *rv)
		snprintf(res->rv, sizeof(res->rv), "%s", rv);
}

static json_t *known_entry(json_t *obj, const char *ns, const char *name)
{
	const char *uid =
		json_string_value(json_object_get(json_object_get(obj, "metadata"), "uid"));

	return json_pack("{s:s, s:s, s:s}", "ns", ns, "name", name, "uid", uid ?: "");
}

static void backoff(struct k8s_resource *res)
{
	const struct ferry_k8s_opts *o = &res->k8s->opts;
	unsigned int cur, delay;

	cur = res->backoff_ms ? res->backoff_ms * 2 : o->backoff_min_ms;
	if (cur > o->backoff_max_ms)
		cur = o->backoff_max_ms;
	res->backoff_ms = cur;
	/*
	 * Equal jitter: half the nominal wait is fixed, half random, so a
	 * fleet of ferryd pods that lost the API server together does not
	 * reconnect in lockstep, while no wait collapses to nothing.
	 */
	delay = cur / 2 + (unsigned int)(rand_r(&res->k8s->seed) % (cur / 2 + 1));
	res->start_at = now_ms() + delay;
}

static void restart_list(struct k8s_resource *res)
{
	json_array_clear(res->items);
	free(res->cont);
	res->cont = NULL;
	res->phase = PHASE_LIST;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata);

static int start_transfer(struct k8s_resource *res)
{
	struct ferry_k8s *k8s = res->k8s;
	char *url = NULL, *query = NULL, *cont = NULL;
	char ns_path[320] = "";
	int err;

	if (k8s->namespace)
		snprintf(ns_path, sizeof(ns_path), "/namespaces/%s", k8s->namespace);
	if (res->phase == PHASE_LIST) {
		if (res->cont) {
			cont = curl_easy_escape(res->easy, res->cont, 0);
			if (!cont)
				return -ENOMEM;
		}
		err = asprintf(&query, "limit=%u%s%s", k8s->opts.page_limit,
			       cont ? "&continue=" : "", cont ?: "");
		curl_free(cont);
	} else {
		err = asprintf(
			&query,
			"watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u",
			res->rv, k8s->opts.watch_timeout_sec);
	}
	if (err < 0)
		return -ENOMEM;
	err = asprintf(&url, "%s%s%s/%s?%s", k8s->auth.server, res->api_path, ns_path, res->plural,
		       query);
	free(query);
	if (err < 0)
		return -ENOMEM;

	curl_easy_reset(res->easy);
	err = setup_request(k8s, res->easy, url, &res->headers);
	free(url);
	if (err)
		return err;
	curl_easy_setopt(res->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(res->easy, CURLOPT_WRITEDATA, res);
	curl_easy_setopt(res->easy, CURLOPT_PRIVATE, res);
	curl_easy_setopt(res->easy, CURLOPT_TIMEOUT,
			 res->phase == PHASE_LIST ?
				 (long)K8S_LIST_TIMEOUT_S :
				 (long)(k8s->opts.watch_timeout_sec + K8S_WATCH_GRACE_S));
	res->body.len = 0;
	res->status = 0;
	res->gone = false;
	res->bad_event = false;
	res->nevents = 0;
	res->started = now_ms();
	if (curl_multi_add_handle(k8s->multi, res->easy) != CURLM_OK) {
		curl_slist_free_all(res->headers);
		res->headers = NULL;
		return -ENOMEM;
	}
	res->active = true;
	pr_debug("kubernetes: %s %s from resourceVersion \"%s\"",
		 res->phase == PHASE_LIST ? "listing" : "watching", res->plural, res->rv);
	return 0;
}

static void end_transfer(struct k8s_resource *res)
{
	if (!res->active)
		return;
	curl_multi_remove_handle(res->k8s->multi, res->easy);
	curl_slist_free_all(res->headers);
	res->headers = NULL;
	res->active = false;
}

/* One line of a watch stream: {"type": ..., "object": {...}}. */
static int parse_watch_line(struct k8s_resource *res, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *ev, *obj;
	const char *type;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return 0;
	ev = json_loadb(line, len, 0, &jerr);
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!ev || !type || !json_is_object(obj)) {
		pr_warn("kubernetes: watch %s: cannot parse event (%s); reconnecting", res->plural,
			ev ? "expected {\"type\": ..., \"object\": {...}}" : jerr.text);
		json_decref(ev);
		res->bad_event = true;
		return -EBADMSG;
	}
	res->nevents++;
	if (!strcmp(type, "ERROR")) {
		long long code = json_integer_value(json_object_get(obj, "code"));
		const char *msg = json_string_value(json_object_get(obj, "message")) ?: "";

		json_decref(ev);
		if (code == 410) {
			res->gone = true;
			return -ESTALE;
		}
		pr_warn("kubernetes: watch %s: ERROR event %lld: %s; reconnecting", res->plural,
			code, msg);
		res->bad_event = true;
		return -EPROTO;
	}
	if (!strcmp(type, "BOOKMARK")) {
		/* Only the resourceVersion matters: it moves the resume point
		 * forward so a reconnect does not hit 410 on a quiet resource. */
		set_rv(res, obj);
		json_decref(ev);
		return 0;
	}
	if (strcmp(type, "ADDED") && strcmp(type, "MODIFIED") && strcmp(type, "DELETED")) {
		pr_warn("kubernetes: watch %s: ignoring event type \"%s\"", res->plural, type);
		json_decref(ev);
		return 0;
	}
	/* Delivered after curl returns, so callbacks never run inside libcurl. */
	json_array_append_new(res->pending, ev);
	return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct k8s_resource *res = userdata;
	size_t n = size * nmemb, start = 0, i;

	if (!res->status)
		curl_easy_getinfo(res->easy, CURLINFO_RESPONSE_CODE, &res->status);
	if (res->status != 200) {
		/* An error body (a Status): keep the start for the message. */
		if (res->body.len < K8S_MAX_ERR_BODY)
			buf_append(&res->body, ptr,
				   n < K8S_MAX_ERR_BODY - res->body.len ?
					   n :
					   K8S_MAX_ERR_BODY - res->body.len);
		return n;
	}
	if (res->phase == PHASE_LIST) {
		if (res->body.len + n > K8S_MAX_BODY || buf_append(&res->body, ptr, n))
			return 0;
		return n;
	}
	/* Watch: chunks do not align with events; keep the partial line. */
	if (res->body.len + n > K8S_MAX_LINE || buf_append(&res->body, ptr, n)) {
		pr_warn("kubernetes: watch %s: event larger than %u bytes", res->plural,
			K8S_MAX_LINE);
		res->bad_event = true;
		return 0;
	}
	for (i = res->body.len - n; i < res->body.len; i++) {
		if (res->body.data[i] != '\n')
			continue;
		if (parse_watch_line(res, res->body.data + start, i - start))
			return 0; /* aborts the transfer; watch_done decides what next */
		start = i + 1;
	}
	memmove(res->body.data, res->body.data + start, res->body.len - start);
	res->body.len -= start;
	return n;
}

static void maybe_synced(struct ferry_k8s *k8s)
{
	for (size_t i = 0; i < 2; i++)
		if (!k8s->res[i].synced || k8s->res[i].phase != PHASE_WATCH)
			return;
	pr_debug("kubernetes: synced");
	if (k8s->opts.on_synced)
		k8s->opts.on_synced(k8s->opts.ctx);
}

static void deliver_pending(struct k8s_resource *res)
{
	const struct ferry_k8s_opts *o = &res->k8s->opts;
	size_t i;
	json_t *ev;

	json_array_foreach(res->pending, i, ev) {
		const char *type = json_string_value(json_object_get(ev, "type"));
		json_t *obj = json_object_get(ev, "object");
		const char *ns, *name;
		char key[512];

		set_rv(res, obj);
		if (object_key(obj, key, sizeof(key), &ns, &name)) {
			pr_warn("kubernetes: watch %s: %s event without metadata.name, ignored",
				res->plural, type);
			continue;
		}
		fill_type(res, obj);
		pthread_mutex_lock(&res->k8s->lock);
		if (!strcmp(type, "DELETED"))
			json_object_del(res->known, key);
		else
			json_object_set_new(res->known, key, known_entry(obj, ns, name));
		pthread_mutex_unlock(&res->k8s->lock);
		if (!strcmp(type, "DELETED")) {
			if (o->on_delete)
				o->on_delete(res->kind, ns, name, o->ctx);
		} else {
			if (o->on_upsert)
				o->on_upsert(obj, o->ctx);
		}
	}
	json_array_clear(res->pending);
}

/* The list is complete: deletes for what vanished, then every object. */
static void finish_list(struct k8s_resource *res)
{
	const struct ferry_k8s_opts *o = &res->k8s->opts;
	json_t *fresh = json_object(), *obj, *entry;
	const char *key;
	size_t i;

	if (!fresh)
		return;
	json_array_foreach(res->items, i, obj) {
		const char *ns, *name;
		char k[512];

		if (object_key(obj, k, sizeof(k), &ns, &name))
			continue;
		json_object_set_new(fresh, k, known_entry(obj, ns, name));
	}
	/* Deletes first, so that a VIP moving from a deleted object to a new
	 * one is never claimed twice in the consumer's store. */
	json_object_foreach(res->known, key, entry) {
		if (json_object_get(fresh, key) || !o->on_delete)
			continue;
		o->on_delete(res->kind, json_string_value(json_object_get(entry, "ns")),
			     json_string_value(json_object_get(entry, "name")), o->ctx);
	}
	/* report_error reads uids from known on other threads. */
	pthread_mutex_lock(&res->k8s->lock);
	json_decref(res->known);
	res->known = fresh;
	pthread_mutex_unlock(&res->k8s->lock);
	json_array_foreach(res->items, i, obj) {
		if (json_object_get(json_object_get(obj, "metadata"), "name") && o->on_upsert)
			o->on_upsert(obj, o->ctx);
	}
	pr_info("kubernetes: listed %zu %s at resourceVersion %s", json_array_size(res->items),
		res->plural, res->rv);
	restart_list(res);
	res->synced = true;
	res->backoff_ms = 0;
	res->phase = PHASE_WATCH;
	res->start_at = now_ms();
	maybe_synced(res->k8s);
}

static void fatal(struct ferry_k8s *k8s, int err)
{
	k8s->run_err = err;
	atomic_store(&k8s->stop, true);
}

/* A non-200 answer to a list or watch. */
static void http_failure(struct k8s_resource *res, long status)
{
	struct ferry_k8s *k8s = res->k8s;
	char msg[512];

	status_message(&res->body, msg, sizeof(msg));
	switch (status) {
	case 401:
		set_error(
			k8s,
			"kubernetes: HTTP 401 Unauthorized from %s for %s: the bearer token (%s) was rejected: %s; fix: give ferryd a valid ServiceAccount token",
			k8s->auth.server, res->plural, k8s->auth.source, msg);
		break;
	case 403:
		set_error(
			k8s,
			"kubernetes: HTTP 403 Forbidden: %s may not %s %s.%s: %s; fix: apply deploy/kubernetes/rbac.yaml (get, list, watch)",
			k8s->auth.source, res->phase == PHASE_LIST ? "list" : "watch", res->plural,
			strchr(res->api_version, '/') ? res->api_version : "core", msg);
		break;
	case 404:
		set_error(
			k8s,
			"kubernetes: HTTP 404 for %s%s/%s: %s; is the CRD installed (Seldon Core v1)? retrying",
			k8s->auth.server, res->api_path, res->plural, msg);
		break;
	default:
		set_error(k8s, "kubernetes: HTTP %ld for %s: %s; retrying", status, res->plural,
			  msg);
	}
	if ((status == 401 || status == 403) && !res->synced) {
		pr_err("%s", ferry_k8s__error(k8s));
		fatal(k8s, -EACCES);
		return;
	}
	pr_warn("%s", ferry_k8s__error(k8s));
	if (res->phase == PHASE_LIST)
		restart_list(res);
	backoff(res);
	/* API Priority and Fairness (429) and an overloaded server (503) say
	 * when to come back; wait at least that long, at most 5 minutes. */
	if (status == 429 || status == 503) {
		curl_off_t after = 0;

		if (curl_easy_getinfo(res->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK &&
		    after > 0) {
			uint64_t at = now_ms() + (uint64_t)(after > 300 ? 300 : after) * 1000;

			if (at > res->start_at)
				res->start_at = at;
		}
	}
}

static void list_done(struct k8s_resource *res, CURLcode rc)
{
	json_t *list, *items, *obj, *meta;
	json_error_t jerr;
	const char *cont;
	size_t i;

	if (rc != CURLE_OK) {
		set_error(res->k8s, "kubernetes: list %s: %s", res->plural, curl_easy_strerror(rc));
		pr_warn("%s; retrying", ferry_k8s__error(res->k8s));
		restart_list(res);
		backoff(res);
		return;
	}
	if (res->status == 410) {
		/* The continue token expired: start over, as client-go does. */
		pr_info("kubernetes: list %s: continue token expired, listing again", res->plural);
		restart_list(res);
		backoff(res);
		return;
	}
	if (res->status != 200) {
		http_failure(res, res->status);
		return;
	}
	list = json_loadb(res->body.data ?: "", res->body.len, 0, &jerr);
	items = json_object_get(list, "items");
	meta = json_object_get(list, "metadata");
	if (!list || !(json_is_array(items) || json_is_null(items) || !items)) {
		pr_warn("kubernetes: list %s: cannot parse the answer (%s); retrying", res->plural,
			list ? "expected items: [...]" : jerr.text);
		json_decref(list);
		restart_list(res);
		backoff(res);
		return;
	}
	json_array_foreach(items, i, obj) {
		fill_type(res, obj);
		json_array_append(res->items, obj);
	}
	cont = json_string_value(json_object_get(meta, "continue"));
	free(res->cont);
	res->cont = cont && *cont ? strdup(cont) : NULL;
	if (res->cont) {
		res->start_at = now_ms();
	} else {
		set_rv(res, list);
		finish_list(res);
	}
	json_decref(list);
}

static void watch_done(struct k8s_resource *res, CURLcode rc)
{
	uint64_t lasted = now_ms() - res->started;

	if (res->gone || res->status == 410) {
		pr_info("kubernetes: watch %s: resourceVersion %s expired (410 Gone); re-listing",
			res->plural, res->rv);
		restart_list(res);
		res->start_at = now_ms();
		return;
	}
	if (res->status && res->status != 200) {
		http_failure(res, res->status);
		return;
	}
	if (rc == CURLE_OK && !res->bad_event) {
		/* The server ended the watch (timeoutSeconds): resume at once,
		 * unless it keeps closing empty watches right away. */
		if (!res->nevents && lasted < 1000) {
			backoff(res);
		} else {
			res->backoff_ms = 0;
			res->start_at = now_ms();
		}
		return;
	}
	backoff(res);
	set_error(res->k8s, "kubernetes: watch %s dropped: %s", res->plural,
		  res->bad_event ? "bad event" : curl_easy_strerror(rc));
	pr_warn("%s; resuming from resourceVersion %s in about %u ms", ferry_k8s__error(res->k8s),
		res->rv, res->backoff_ms);
}

static void resync(struct ferry_k8s *k8s)
{
	for (size_t i = 0; i < 2; i++) {
		struct k8s_resource *res = &k8s->res[i];

		if (res->phase != PHASE_WATCH)
			continue;
		end_transfer(res);
		deliver_pending(res);
		restart_list(res);
		res->start_at = now_ms();
	}
	pr_debug("kubernetes: periodic resync");
}

static void start_posts(struct ferry_k8s *k8s);
static bool post_done(struct ferry_k8s *k8s, CURL *easy, CURLcode rc);
static void abort_posts(struct ferry_k8s *k8s);

int ferry_k8s__run(struct ferry_k8s *k8s)
{
	uint64_t now = now_ms();
	CURLMsg *msg;
	int running, left;

	k8s->run_err = 0;
	k8s->resync_at = now + (uint64_t)k8s->opts.resync_sec * 1000;
	for (size_t i = 0; i < 2; i++) {
		restart_list(&k8s->res[i]);
		k8s->res[i].start_at = now;
	}
	while (!atomic_load(&k8s->stop)) {
		uint64_t next;
		int timeout;

		now = now_ms();
		if (now >= k8s->resync_at) {
			resync(k8s);
			k8s->resync_at = now + (uint64_t)k8s->opts.resync_sec * 1000;
		}
		for (size_t i = 0; i < 2; i++) {
			struct k8s_resource *res = &k8s->res[i];
			int err;

			if (res->active || res->start_at > now)
				continue;
			err = start_transfer(res);
			if (err) {
				pr_warn("kubernetes: %s: cannot start a request: %s; retrying",
					res->plural, strerror(-err));
				backoff(res);
			}
		}
		start_posts(k8s);
		curl_multi_perform(k8s->multi, &running);
		for (size_t i = 0; i < 2; i++)
			deliver_pending(&k8s->res[i]);
		while ((msg = curl_multi_info_read(k8s->multi, &left))) {
			struct k8s_resource *res;
			CURLcode rc = msg->data.result;
			char *priv = NULL;

			if (msg->msg != CURLMSG_DONE || post_done(k8s, msg->easy_handle, rc))
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			res = (struct k8s_resource *)priv;
			if (!res->status)
				curl_easy_getinfo(res->easy, CURLINFO_RESPONSE_CODE, &res->status);
			end_transfer(res);
			if (res->phase == PHASE_LIST)
				list_done(res, rc);
			else
				watch_done(res, rc);
		}
		if (atomic_load(&k8s->stop))
			break;
		next = k8s->resync_at;
		for (size_t i = 0; i < 2; i++)
			if (!k8s->res[i].active && k8s->res[i].start_at < next)
				next = k8s->res[i].start_at;
		now = now_ms();
		timeout = next <= now ? 0 : next - now > 1000 ? 1000 : (int)(next - now);
		if (timeout)
			curl_multi_poll(k8s->multi, NULL, 0, timeout, NULL);
	}
	for (size_t i = 0; i < 2; i++) {
		end_transfer(&k8s->res[i]);
		json_array_clear(k8s->res[i].pending);
	}
	abort_posts(k8s);
	atomic_store(&k8s->stop, false);
	if (k8s->run_err && k8s->opts.on_error)
		k8s->opts.on_error(k8s->run_err, ferry_k8s__error(k8s), k8s->opts.ctx);
	return k8s->run_err;
}

static void *run_thread(void *arg)
{
	ferry_k8s__run(arg);
	return NULL;
}

int ferry_k8s__start(struct ferry_k8s *k8s)
{
	int err;

	if (k8s->thread_started)
		return -EBUSY;
	err = pthread_create(&k8s->thread, NULL, run_thread, k8s);
	if (err)
		return -err;
	k8s->thread_started = true;
	return 0;
}

int ferry_k8s__stop(struct ferry_k8s *k8s)
{
	atomic_store(&k8s->stop, true);
	curl_multi_wakeup(k8s->multi);
	if (!k8s->thread_started)
		return 0;
	pthread_join(k8s->thread, NULL);
	k8s->thread_started = false;
	atomic_store(&k8s->stop, false);
	return k8s->run_err;
}

const char *ferry_k8s__error(struct ferry_k8s *k8s)
{
	return k8s->error;
}

/* --- Events -------------------------------------------------------------- */

static size_t keep_answer(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct k8s_buf *b = userdata;
	size_t n = size * nmemb;

	if (b->len < K8S_MAX_ERR_BODY)
		buf_append(b, ptr, n < K8S_MAX_ERR_BODY - b->len ? n : K8S_MAX_ERR_BODY - b->len);
	return n;
}

static const char *involved_api_version(const char *kind)
{
	for (size_t i = 0; i < 2; i++)
		if (!strcmp(kind, resource_types[i].kind))
			return resource_types[i].api_version;
	return "v1";
}

static void post_free(struct k8s_post *post)
{
	curl_slist_free_all(post->headers);
	if (post->easy)
		curl_easy_cleanup(post->easy);
	buf_free(&post->answer);
	free(post->body);
	free(post);
}

/* A failed post must not hold back the next report for the object. */
static void forget_report(struct ferry_k8s *k8s, const char *key)
{
	pthread_mutex_lock(&k8s->lock);
	json_object_del(k8s->events, key);
	pthread_mutex_unlock(&k8s->lock);
}

/* Loop thread: moves queued Events into the multi handle. */
static void start_posts(struct ferry_k8s *k8s)
{
	struct k8s_post *queue, *post;
	char *url;

	pthread_mutex_lock(&k8s->lock);
	queue = k8s->posts_queued;
	k8s->posts_queued = NULL;
	k8s->nposts_queued = 0;
	pthread_mutex_unlock(&k8s->lock);

	while ((post = queue)) {
		queue = post->next;
		post->easy = curl_easy_init();
		if (!post->easy || asprintf(&url, "%s/api/v1/namespaces/%s/events",
					    k8s->auth.server, post->ns) < 0)
			goto err_free;
		if (setup_request(k8s, post->easy, url, &post->headers)) {
			free(url);
			goto err_free;
		}
		free(url);
		post->headers = curl_slist_append(post->headers, "Content-Type: application/json");
		curl_easy_setopt(post->easy, CURLOPT_HTTPHEADER, post->headers);
		curl_easy_setopt(post->easy, CURLOPT_POSTFIELDS, post->body);
		curl_easy_setopt(post->easy, CURLOPT_TIMEOUT, (long)K8S_EVENT_TIMEOUT_S);
		curl_easy_setopt(post->easy, CURLOPT_WRITEFUNCTION, keep_answer);
		curl_easy_setopt(post->easy, CURLOPT_WRITEDATA, &post->answer);
		curl_easy_setopt(post->easy, CURLOPT_PRIVATE, post);
		if (curl_multi_add_handle(k8s->multi, post->easy) != CURLM_OK)
			goto err_free;
		post->next = k8s->posts_active;
		k8s->posts_active = post;
		continue;
err_free:
		pr_warn("kubernetes: cannot post an Event for %s: out of memory or token unreadable",
			post->what);
		forget_report(k8s, post->key);
		post_free(post);
	}
}

/* Loop thread: if easy is an Event's, finishes it and returns true. */
static bool post_done(struct ferry_k8s *k8s, CURL *easy, CURLcode rc)
{
	struct k8s_post **pp, *post;
	long status = 0;
	char msg[512];

	for (pp = &k8s->posts_active; *pp && (*pp)->easy != easy; pp = &(*pp)->next)
		;
	post = *pp;
	if (!post)
		return false;
	*pp = post->next;
	curl_multi_remove_handle(k8s->multi, easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	status_message(&post->answer, msg, sizeof(msg));
	if (rc != CURLE_OK) {
		pr_warn("kubernetes: cannot post an Event for %s: %s", post->what,
			curl_easy_strerror(rc));
		forget_report(k8s, post->key);
	} else if (status == 403) {
		bool first;

		pthread_mutex_lock(&k8s->lock);
		first = !k8s->events_forbidden;
		k8s->events_forbidden = true;
		pthread_mutex_unlock(&k8s->lock);
		if (first)
			pr_warn("kubernetes: may not create Events in namespace %s (HTTP 403: %s); validation errors are only logged from now on; fix: grant create on events (deploy/kubernetes/rbac.yaml)",
				post->ns, msg);
	} else if (status != 200 && status != 201) {
		pr_warn("kubernetes: Event for %s rejected: HTTP %ld: %s", post->what, status, msg);
		forget_report(k8s, post->key);
	} else {
		pr_debug("kubernetes: posted an Event for %s", post->what);
	}
	post_free(post);
	return true;
}

/* Loop thread, on exit: Events in flight are dropped (still queued ones wait
 * for the next run). */
static void abort_posts(struct ferry_k8s *k8s)
{
	struct k8s_post *post;

	while ((post = k8s->posts_active)) {
		k8s->posts_active = post->next;
		curl_multi_remove_handle(k8s->multi, post->easy);
		forget_report(k8s, post->key);
		post_free(post);
	}
}

static char *event_body(struct ferry_k8s *k8s, const char *kind, const char *ns, const char *name,
			const char *message, const char *uid)
{
	char stamp[32], ev_name[300], *body;
	struct timespec ts;
	struct tm tm;
	json_t *ev;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* Unique like client-go's: object name plus a nanosecond stamp. */
	snprintf(ev_name, sizeof(ev_name), "%.220s.%llx", name,
		 (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec);
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s,"
		       " s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", ev_name,
		       "namespace", ns, "involvedObject", "apiVersion", involved_api_version(kind),
		       "kind", kind, "namespace", ns, "name", name, "uid", uid, "reason",
		       "FerryInvalidManifest", "message", message, "type", "Warning", "source",
		       "component", "ferryd", "host", k8s->host, "firstTimestamp", stamp,
		       "lastTimestamp", stamp, "count", 1, "reportingComponent", "ferryd",
		       "reportingInstance", k8s->host);
	if (!ev)
		return NULL;
	if (!*uid)
		json_object_del(json_object_get(ev, "involvedObject"), "uid");
	body = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	return body;
}

int ferry_k8s__report_error(struct ferry_k8s *k8s, const char *kind, const char *ns,
			    const char *name, const char *message)
{
	char uid[64] = "", rkey[512];
	struct k8s_post *post, **tail;
	time_t now = time(NULL);
	json_t *last, *entry;

	if (!kind || !ns || !*ns || !name || !message)
		return -EINVAL;
	post = calloc(1, sizeof(*post));
	if (!post)
		return -ENOMEM;
	snprintf(post->key, sizeof(post->key), "%s/%s/%s", kind, ns, name);
	snprintf(post->what, sizeof(post->what), "%s %s/%s", kind, ns, name);
	snprintf(post->ns, sizeof(post->ns), "%s", ns);
	snprintf(rkey, sizeof(rkey), "%s/%s", ns, name);

	pthread_mutex_lock(&k8s->lock);
	if (k8s->events_forbidden) {
		pthread_mutex_unlock(&k8s->lock);
		free(post);
		return -EACCES;
	}
	last = json_object_get(k8s->events, post->key);
	if (last) {
		json_int_t t = json_integer_value(json_object_get(last, "t"));
		const char *msg = json_string_value(json_object_get(last, "msg")) ?: "";

		if (now - t < (json_int_t)k8s->opts.event_interval_sec ||
		    (!strcmp(msg, message) && now - t < (json_int_t)k8s->opts.event_repeat_sec)) {
			pthread_mutex_unlock(&k8s->lock);
			free(post);
			return -EALREADY;
		}
	}
	if (k8s->nposts_queued >= K8S_MAX_QUEUED_POSTS) {
		pthread_mutex_unlock(&k8s->lock);
		free(post);
		return -EBUSY;
	}
	/* One entry per object ever reported: forget the expired ones now and
	 * then, so that a churn of short-lived objects does not grow this. */
	if (json_object_size(k8s->events) >= 1024) {
		const char *k;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(k8s->events, tmp, k, v)
		{
			if (now - json_integer_value(json_object_get(v, "t")) >=
			    (json_int_t)k8s->opts.event_repeat_sec)
				json_object_del(k8s->events, k);
		}
	}
	/* Recorded now, so the next report is suppressed even before the
	 * post is done; forgotten again if the post fails. */
	json_object_set_new(k8s->events, post->key,
			    json_pack("{s:I, s:s}", "t", (json_int_t)now, "msg", message));
	/* The uid makes `kubectl describe` match the Event to the object. */
	for (size_t i = 0; i < 2; i++) {
		if (strcmp(kind, k8s->res[i].kind))
			continue;
		entry = json_object_get(k8s->res[i].known, rkey);
		snprintf(uid, sizeof(uid), "%s",
			 json_string_value(json_object_get(entry, "uid")) ?: "");
	}
	post->body = event_body(k8s, kind, ns, name, message, uid);
	if (!post->body) {
		json_object_del(k8s->events, post->key);
		pthread_mutex_unlock(&k8s->lock);
		free(post);
		return -ENOMEM;
	}
	for (tail = &k8s->posts_queued; *tail; tail = &(*tail)->next)
		;
	*tail = post;
	k8s->nposts_queued++;
	pthread_mutex_unlock(&k8s->lock);
	curl_multi_wakeup(k8s->multi);
	return 0;
}

/* --- life cycle ---------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct ferry_k8s *ferry_k8s__new(const struct ferry_k8s_opts *opts)
{
	struct ferry_k8s *k8s;
	int err;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		errno = ENOMEM;
		return NULL;
	}
	k8s = calloc(1, sizeof(*k8s));
	if (!k8s) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&k8s->lock, NULL);
	k8s->opts = *opts;
	k8s->opts.kubeconfig = NULL;
	k8s->opts.namespace = NULL;
	k8s->opts.serviceaccount_dir = NULL;
	if (!k8s->opts.resync_sec)
		k8s->opts.resync_sec = 600;
	if (!k8s->opts.watch_timeout_sec)
		k8s->opts.watch_timeout_sec = 300;
	if (!k8s->opts.page_limit)
		k8s->opts.page_limit = 500;
	if (!k8s->opts.backoff_min_ms)
		k8s->opts.backoff_min_ms = 200;
	if (!k8s->opts.backoff_max_ms)
		k8s->opts.backoff_max_ms = 30000;
	if (k8s->opts.backoff_max_ms < k8s->opts.backoff_min_ms)
		k8s->opts.backoff_max_ms = k8s->opts.backoff_min_ms;
	if (!k8s->opts.event_interval_sec)
		k8s->opts.event_interval_sec = 60;
	if (!k8s->opts.event_repeat_sec)
		k8s->opts.event_repeat_sec = 3600;
	k8s->seed = (unsigned int)now_ms() ^ (unsigned int)getpid();
	if (getenv("NODE_NAME"))
		snprintf(k8s->host, sizeof(k8s->host), "%s", getenv("NODE_NAME"));
	else if (gethostname(k8s->host, sizeof(k8s->host) - 1))
		snprintf(k8s->host, sizeof(k8s->host), "unknown");

	if (opts->namespace && *opts->namespace) {
		k8s->namespace = strdup(opts->namespace);
		if (!k8s->namespace) {
			err = -ENOMEM;
			goto err_free;
		}
	}
	if (opts->kubeconfig) {
		err = load_kubeconfig(k8s, opts->kubeconfig);
	} else {
		k8s->opts.serviceaccount_dir = opts->serviceaccount_dir;
		err = load_in_cluster(k8s);
		k8s->opts.serviceaccount_dir = NULL;
	}
	if (err)
		goto err_free;
	if (k8s->auth.insecure)
		pr_warn("kubernetes: %s sets insecure-skip-tls-verify: the API server's identity is not checked",
			k8s->auth.source);

	k8s->events = json_object();
	k8s->multi = curl_multi_init();
	if (!k8s->events || !k8s->multi) {
		err = -ENOMEM;
		goto err_free;
	}
	for (size_t i = 0; i < 2; i++) {
		struct k8s_resource *res = &k8s->res[i];

		res->k8s = k8s;
		res->kind = resource_types[i].kind;
		res->api_version = resource_types[i].api_version;
		res->api_path = resource_types[i].api_path;
		res->plural = resource_types[i].plural;
		res->items = json_array();
		res->known = json_object();
		res->pending = json_array();
		res->easy = curl_easy_init();
		if (!res->items || !res->known || !res->pending || !res->easy) {
			err = -ENOMEM;
			goto err_free;
		}
	}
	pr_info("kubernetes: API server %s (%s%s%s), watching %s", k8s->auth.server,
		k8s->auth.source, k8s->own_namespace ? ", pod namespace " : "",
		k8s->own_namespace ?: "", k8s->namespace ? k8s->namespace : "all namespaces");
	return k8s;

err_free:
	ferry_k8s__free(k8s);
	errno = -err;
	return NULL;
}

void ferry_k8s__free(struct ferry_k8s *k8s)
{
	if (!k8s)
		return;
	if (k8s->thread_started)
		ferry_k8s__stop(k8s);
	for (size_t i = 0; i < 2; i++) {
		struct k8s_resource *res = &k8s->res[i];

		if (k8s->multi)
			end_transfer(res);
		if (res->easy)
			curl_easy_cleanup(res->easy);
		json_decref(res->items);
		json_decref(res->known);
		json_decref(res->pending);
		free(res->cont);
		buf_free(&res->body);
	}
	while (k8s->posts_queued) {
		struct k8s_post *post = k8s->posts_queued;

		k8s->posts_queued = post->next;
		post_free(post);
	}
	if (k8s->multi)
		curl_multi_cleanup(k8s->multi);
	json_decref(k8s->events);
	free(k8s->auth.server);
	free(k8s->auth.token);
	free(k8s->auth.token_file);
	free(k8s->auth.ca_file);
	free(k8s->auth.cert_file);
	free(k8s->auth.key_file);
	buf_free(&k8s->auth.ca);
	buf_free(&k8s->auth.cert);
	buf_free(&k8s->auth.key);
	free(k8s->namespace);
	free(k8s->own_namespace);
	pthread_mutex_destroy(&k8s->lock);
	free(k8s);
}
