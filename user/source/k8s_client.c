// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Kubernetes client's plumbing (see k8s.h): buffers, errors, request setup
 * shared by list, watch and Events, and the client's life cycle.
 */
#include "source/k8s_internal.h"

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int buf_append(struct k8s_buf *b, const void *p, size_t n)
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

void buf_free(struct k8s_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void set_error(struct ferry_k8s *k8s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&k8s->lock);
	va_start(ap, fmt);
	vsnprintf(k8s->error, sizeof(k8s->error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&k8s->lock);
}

/* Reads a small file whole, without trailing whitespace (token, namespace). */
char *read_small_file(const char *path)
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
int base64_decode(const char *in, struct k8s_buf *out)
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
int setup_request(struct ferry_k8s *k8s, CURL *easy, const char *url, struct curl_slist **headers)
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
void status_message(const struct k8s_buf *body, char *out, size_t len)
{
	json_t *status;

	snprintf(out, len, "%s", body->len ? body->data : "(empty body)");
	status = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
	if (json_is_string(json_object_get(status, "message")))
		snprintf(out, len, "%s", json_string_value(json_object_get(status, "message")));
	json_decref(status);
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
	for (size_t i = 0; i < K8S_NRES; i++) {
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
	for (size_t i = 0; i < K8S_NRES; i++) {
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

/* --- one-off requests (canary coordination) ------------------------------ */

static size_t collect_answer(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct k8s_buf *b = userdata;
	size_t n = size * nmemb;

	if (b->len + n > K8S_MAX_BODY || buf_append(b, ptr, n))
		return 0;
	return n;
}

int ferry_k8s__request(struct ferry_k8s *k8s, const char *method, const char *path,
		       const char *body, long *status, char **answer)
{
	struct curl_slist *headers = NULL;
	struct k8s_buf out = {};
	CURL *easy;
	char *url;
	CURLcode rc;
	int err;

	*status = 0;
	*answer = NULL;
	easy = curl_easy_init();
	if (!easy)
		return -ENOMEM;
	if (asprintf(&url, "%s%s", k8s->auth.server, path) < 0) {
		curl_easy_cleanup(easy);
		return -ENOMEM;
	}
	err = setup_request(k8s, easy, url, &headers);
	free(url);
	if (err)
		goto out;
	if (body) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	/* Short: the canary's coordination runs on ferryd's loop between windows. */
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect_answer);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);
	rc = curl_easy_perform(easy);
	if (rc != CURLE_OK) {
		err = -EIO;
		goto out;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	if (buf_append(&out, "", 1)) {
		err = -ENOMEM;
		goto out;
	}
	*answer = out.data;
	out.data = NULL;
out:
	buf_free(&out);
	curl_slist_free_all(headers);
	curl_easy_cleanup(easy);
	return err;
}

const char *ferry_k8s__host(const struct ferry_k8s *k8s)
{
	return k8s->host;
}
