// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cluster hash seed from a Secret (k8s.h, ferry_k8s__shared_secret):
 * read it, or create it with random bytes when it is missing. Every ferryd
 * of the cluster races to create the same Secret; the API server lets one
 * create win and answers the others 409 Conflict, so they read the winner's.
 * Blocking requests on the caller's thread: ferryd needs the seed before it
 * balances anything, and the watch thread has not started yet.
 */
#include <sys/random.h>

#include "source/k8s_internal.h"

/* Attempts over roughly a minute (API server restarting, node just booted). */
#define SECRET_ATTEMPTS 8
#define SECRET_TIMEOUT_S 10

static size_t keep_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct k8s_buf *b = userdata;
	size_t n = size * nmemb;

	if (b->len + n > K8S_MAX_ERR_BODY * 16 || buf_append(b, ptr, n))
		return 0; /* a Secret is small: anything bigger is not ours */
	return n;
}

/* One request; body NULL is a GET. Returns the HTTP status, or a negative errno. */
static long secret_request(struct ferry_k8s *k8s, const char *url, const char *body,
			   struct k8s_buf *answer)
{
	struct curl_slist *headers = NULL;
	CURL *easy = curl_easy_init();
	long status = 0;
	CURLcode rc;
	int err;

	if (!easy)
		return -ENOMEM;
	buf_free(answer);
	err = setup_request(k8s, easy, url, &headers);
	if (err)
		goto out_cleanup;
	if (body) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(easy, CURLOPT_TIMEOUT, (long)SECRET_TIMEOUT_S);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, answer);
	rc = curl_easy_perform(easy);
	if (rc != CURLE_OK) {
		set_error(k8s, "kubernetes: %s: %s", url, curl_easy_strerror(rc));
		err = -ECONNREFUSED;
		goto out_cleanup;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
out_cleanup:
	curl_slist_free_all(headers);
	curl_easy_cleanup(easy);
	return err ? err : status;
}

/* data[key] of a Secret, base64-decoded. 0, or -ENODATA when absent or empty. */
static int secret_value(const struct k8s_buf *answer, const char *key, struct k8s_buf *out)
{
	json_t *secret, *value;
	int err = -ENODATA;

	secret = json_loadb(answer->data, answer->len, 0, NULL);
	value = json_object_get(json_object_get(secret, "data"), key);
	if (json_is_string(value) && json_string_length(value) &&
	    !base64_decode(json_string_value(value), out))
		err = 0;
	json_decref(secret);
	return err;
}

static char *base64_encode(const unsigned char *in, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned int v = (unsigned int)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned int)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*p++ = alphabet[(v >> 18) & 63];
		*p++ = alphabet[(v >> 12) & 63];
		*p++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*p++ = i + 2 < len ? alphabet[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

/* The Secret ferryd creates: random bytes under key, labelled as ferry's. */
static char *new_secret_body(const char *ns, const char *name, const char *key, size_t nbytes)
{
	unsigned char random[64];
	json_t *secret;
	char *b64, *body;

	if (nbytes > sizeof(random))
		nbytes = sizeof(random);
	if (getrandom(random, nbytes, 0) != (ssize_t)nbytes)
		return NULL;
	b64 = base64_encode(random, nbytes);
	memset(random, 0, sizeof(random));
	if (!b64)
		return NULL;
	secret = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:{s:s}}, s:s, s:{s:s}}", "apiVersion",
			   "v1", "kind", "Secret", "metadata", "name", name, "namespace", ns,
			   "labels", "app.kubernetes.io/part-of", "ferry", "annotations",
			   "ferry.io/purpose",
			   "the cluster's flow hash seed: the same on every node; "
			   "changing it moves connections whose flow state is lost",
			   "type", "Opaque", "data", key, b64);
	body = secret ? json_dumps(secret, JSON_COMPACT) : NULL;
	json_decref(secret);
	free(b64);
	return body;
}

int ferry_k8s__shared_secret(struct ferry_k8s *k8s, const char *ns, const char *name,
			     const char *key, size_t create_bytes, void **bytes, size_t *len,
			     bool *created)
{
	char *get_url = NULL, *post_url = NULL, *body = NULL, msg[512];
	struct k8s_buf answer = {}, value = {};
	unsigned int delay_ms = 500, conflicts = 0;
	const char *doing;
	int err = -ETIMEDOUT;
	long status;

	*created = false;
	if (asprintf(&get_url, "%s/api/v1/namespaces/%s/secrets/%s", k8s->auth.server, ns, name) <
		    0 ||
	    asprintf(&post_url, "%s/api/v1/namespaces/%s/secrets", k8s->auth.server, ns) < 0) {
		err = -ENOMEM;
		goto out_free;
	}
	for (int attempt = 0; attempt < SECRET_ATTEMPTS; attempt++) {
		if (attempt) {
			usleep(delay_ms * 1000);
			delay_ms = delay_ms * 2 > 8000 ? 8000 : delay_ms * 2;
		}
		doing = "reading";
		status = secret_request(k8s, get_url, NULL, &answer);
		if (status == 404) {
			doing = "creating";
			/* Missing: create it; another node may be doing the same right now. */
			free(body);
			body = new_secret_body(ns, name, key, create_bytes);
			if (!body) {
				err = -ENOMEM;
				goto out_free;
			}
			status = secret_request(k8s, post_url, body, &answer);
			if (status == 201 || status == 200) {
				*created = true;
			} else if (status == 409 && conflicts++ < SECRET_ATTEMPTS) {
				/* Another node won the race: its Secret is the cluster's. */
				pr_info("kubernetes: Secret %s/%s was created by another node "
					"meanwhile; using its seed",
					ns, name);
				attempt--; /* the read that follows is not a failure */
				delay_ms = 100;
				continue;
			}
		}
		if (status == 200 || status == 201) {
			err = secret_value(&answer, key, &value);
			if (err) {
				pr_err("kubernetes: Secret %s/%s has no non-empty base64 key '%s'; "
				       "fix: add it (e.g. 'kubectl -n %s create secret generic %s "
				       "--from-file=%s=<(head -c 32 /dev/urandom)' after deleting it), "
				       "or delete the Secret and ferryd creates a random one",
				       ns, name, key, ns, name, key);
				goto out_free;
			}
			*bytes = value.data;
			*len = value.len;
			value.data = NULL;
			err = 0;
			goto out_free;
		}
		if (status == 401 || status == 403) {
			status_message(&answer, msg, sizeof(msg));
			pr_err("kubernetes: %s Secret %s/%s: %ld %s; fix: grant ferryd's "
			       "ServiceAccount 'get' on that Secret (resourceNames) and 'create' on "
			       "secrets in %s (deploy/kubernetes/rbac.yaml)",
			       doing, ns, name, status, msg, ns);
			err = -EACCES;
			goto out_free;
		}
		if (status > 0) {
			status_message(&answer, msg, sizeof(msg));
			pr_warn("kubernetes: Secret %s/%s: HTTP %ld %s; retrying", ns, name, status,
				msg);
		} else {
			pr_warn("kubernetes: Secret %s/%s: %s; retrying", ns, name,
				ferry_k8s__error(k8s));
		}
	}
	pr_err("kubernetes: cannot read or create Secret %s/%s after %d attempts; is the API "
	       "server reachable?",
	       ns, name, SECRET_ATTEMPTS);
out_free:
	buf_free(&answer);
	buf_free(&value);
	free(body);
	free(get_url);
	free(post_url);
	return err;
}

const char *ferry_k8s__own_namespace(const struct ferry_k8s *k8s)
{
	return k8s->own_namespace;
}
