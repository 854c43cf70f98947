// SPDX-License-Identifier: GPL-2.0-only
/*
 * Canary analysis over several nodes (canary_cluster.h): the Lease, the
 * gathering of the other nodes' windows, the published decisions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "canary/canary_cluster.h"
#include "log.h"

#define ELECT_EVERY_S 2
#define PEERS_EVERY_S 10
#define PUBLISH_EVERY_S 10
#define GATHER_WAIT_MS 1500

struct peer {
	char name[256];
	char url[320]; /* http://IP:PORT */
};

struct ferry_canary_cluster {
	struct ferry_canary_cluster_opts opts;
	char identity[256], ns[256], selector[256];
	bool leading;
	time_t last_elect, last_renewed, peers_at, published_at;
	char *published; /* the ConfigMap data last written */
	struct peer *peers;
	size_t npeers;
};

struct ferry_canary_cluster *ferry_canary_cluster__new(const struct ferry_canary_cluster_opts *opts)
{
	struct ferry_canary_cluster *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->opts = *opts;
	snprintf(c->identity, sizeof(c->identity), "%s", opts->identity);
	snprintf(c->ns, sizeof(c->ns), "%s", opts->namespace);
	snprintf(c->selector, sizeof(c->selector), "%s",
		 opts->selector ? opts->selector : FERRY_CANARY_POD_SELECTOR);
	return c;
}

void ferry_canary_cluster__free(struct ferry_canary_cluster *c)
{
	if (!c)
		return;
	free(c->published);
	free(c->peers);
	free(c);
}

/* ----------------------------------------------------------------- Lease */

static void rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
}

static time_t parse_time(const char *s)
{
	struct tm tm = {};

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

static json_t *lease_body(const struct ferry_canary_cluster *c, time_t now, json_t *old)
{
	json_t *spec = json_object_get(old, "spec");
	const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
	json_int_t transitions = json_integer_value(json_object_get(spec, "leaseTransitions"));
	char stamp[40], acquired[64];
	json_t *body;

	rfc3339(now, stamp, sizeof(stamp));
	snprintf(acquired, sizeof(acquired), "%s",
		 holder && !strcmp(holder, c->identity) &&
				 json_string_value(json_object_get(spec, "acquireTime")) ?
			 json_string_value(json_object_get(spec, "acquireTime")) :
			 stamp);
	if (!holder || strcmp(holder, c->identity))
		transitions += old ? 1 : 0;
	body = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s, s:I}}", "apiVersion",
			 "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
			 FERRY_CANARY_LEASE, "namespace", c->ns, "spec", "holderIdentity",
			 c->identity, "leaseDurationSeconds", FERRY_CANARY_LEASE_S, "acquireTime",
			 acquired, "renewTime", stamp, "leaseTransitions", transitions);
	/* The version read: a concurrent writer makes this update fail with 409. */
	if (body &&
	    json_is_string(json_object_get(json_object_get(old, "metadata"), "resourceVersion")))
		json_object_set(json_object_get(body, "metadata"), "resourceVersion",
				json_object_get(json_object_get(old, "metadata"),
						"resourceVersion"));
	return body;
}

/* One attempt to hold the Lease: true when this node holds it now. */
static bool try_lease(struct ferry_canary_cluster *c, time_t now)
{
	char path[600], *answer = NULL, *text = NULL;
	json_t *old = NULL, *body = NULL;
	bool held = false;
	long status;

	snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", c->ns,
		 FERRY_CANARY_LEASE);
	if (ferry_k8s__request(c->opts.k8s, "GET", path, NULL, &status, &answer))
		return false;
	if (status == 200) {
		json_t *spec;
		const char *holder;
		time_t renewed;
		json_int_t dur;

		old = json_loads(answer, 0, NULL);
		spec = json_object_get(old, "spec");
		holder = json_string_value(json_object_get(spec, "holderIdentity"));
		renewed = parse_time(json_string_value(json_object_get(spec, "renewTime")));
		dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
		if (holder && *holder && strcmp(holder, c->identity) && renewed + dur >= now)
			goto out; /* someone else's, and alive */
	} else if (status != 404) {
		pr_debug("canary: Lease %s/%s: HTTP %ld", c->ns, FERRY_CANARY_LEASE, status);
		goto out;
	}
	body = lease_body(c, now, old);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!text)
		goto out;
	free(answer);
	answer = NULL;
	if (status == 404) {
		snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases",
			 c->ns);
		if (!ferry_k8s__request(c->opts.k8s, "POST", path, text, &status, &answer))
			held = status == 200 || status == 201;
	} else if (!ferry_k8s__request(c->opts.k8s, "PUT", path, text, &status, &answer)) {
		held = status == 200;
	}
	if (!held && status != 409)
		pr_warn("canary: cannot write Lease %s/%s: HTTP %ld (RBAC: deploy/kubernetes/rbac.yaml)",
			c->ns, FERRY_CANARY_LEASE, status);
out:
	free(text);
	free(answer);
	json_decref(body);
	json_decref(old);
	return held;
}

void ferry_canary_cluster__elect(struct ferry_canary_cluster *c, time_t now)
{
	bool was = c->leading;

	if (now - c->last_elect < ELECT_EVERY_S)
		return;
	c->last_elect = now;
	if (try_lease(c, now))
		c->last_renewed = now;
	/* Without a renewal for a lease's length another node may hold it: stop deciding. */
	c->leading = c->last_renewed && now - c->last_renewed < FERRY_CANARY_LEASE_S;
	if (c->leading != was)
		pr_info("canary: this node (%s) %s the decisions (Lease %s/%s)", c->identity,
			c->leading ? "now makes" : "no longer makes", c->ns, FERRY_CANARY_LEASE);
}

bool ferry_canary_cluster__leading(void *cluster)
{
	return ((struct ferry_canary_cluster *)cluster)->leading;
}

/* ----------------------------------------------------------------- peers */

static void refresh_peers(struct ferry_canary_cluster *c, time_t now)
{
	char path[800], *answer = NULL, *sel;
	json_t *list, *item;
	CURL *easy;
	size_t i;
	long status;

	if (c->peers_at && now - c->peers_at < PEERS_EVERY_S)
		return;
	c->peers_at = now;
	easy = curl_easy_init();
	sel = easy ? curl_easy_escape(easy, c->selector, 0) : NULL;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=%s", c->ns,
		 sel ? sel : "");
	curl_free(sel);
	if (easy)
		curl_easy_cleanup(easy);
	if (ferry_k8s__request(c->opts.k8s, "GET", path, NULL, &status, &answer) || status != 200) {
		pr_warn("canary: cannot list ferryd's pods in %s (HTTP %ld): deciding from the "
			"nodes known so far",
			c->ns, status);
		free(answer);
		return;
	}
	list = json_loads(answer, 0, NULL);
	free(answer);
	free(c->peers);
	c->peers = calloc(json_array_size(json_object_get(list, "items")) + 1, sizeof(*c->peers));
	c->npeers = 0;
	json_array_foreach(json_object_get(list, "items"), i, item) {
		const char *name = json_string_value(
			json_object_get(json_object_get(item, "metadata"), "name"));
		const char *ip = json_string_value(
			json_object_get(json_object_get(item, "status"), "podIP"));
		int port = c->opts.metrics_port;
		json_t *ct, *p;
		size_t k, m;

		if (!c->peers || !name || !ip || !strcmp(name, c->identity))
			continue;
		json_array_foreach(json_object_get(json_object_get(item, "spec"), "containers"), k,
				   ct) {
			json_array_foreach(json_object_get(ct, "ports"), m, p) {
				const char *pn = json_string_value(json_object_get(p, "name"));

				if (pn && !strcmp(pn, "metrics"))
					port = (int)json_integer_value(
						json_object_get(p, "containerPort"));
			}
		}
		snprintf(c->peers[c->npeers].name, sizeof(c->peers[0].name), "%s", name);
		snprintf(c->peers[c->npeers].url, sizeof(c->peers[0].url),
			 strchr(ip, ':') ? "http://[%s]:%d" : "http://%s:%d", ip, port);
		c->npeers++;
	}
	json_decref(list);
}

static size_t keep(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	json_t *buf = userdata;
	size_t n = size * nmemb;
	const char *have = json_string_value(buf);
	char *joined;

	if (strlen(have) + n > (1u << 20) || asprintf(&joined, "%s%.*s", have, (int)n, ptr) < 0)
		return 0;
	json_string_set(buf, joined);
	free(joined);
	return n;
}

/* One peer's window `window`, waiting for it to close. 0, or -EAGAIN. */
static int fetch_window(const struct peer *p, const char *deployment, __u64 window,
			struct ferry_canary_node_window *out)
{
	struct timespec start, t;
	char url[1024];
	CURL *easy;
	char *dep;
	int err = -EAGAIN;

	easy = curl_easy_init();
	if (!easy)
		return -ENOMEM;
	dep = curl_easy_escape(easy, deployment, 0);
	snprintf(url, sizeof(url), "%s/canary/window?deployment=%s", p->url, dep ? dep : "");
	curl_free(dep);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		json_t *buf = json_string("");
		long status = 0;

		curl_easy_setopt(easy, CURLOPT_URL, url);
		curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 500L);
		curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 1000L);
		curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep);
		curl_easy_setopt(easy, CURLOPT_WRITEDATA, buf);
		if (curl_easy_perform(easy) == CURLE_OK)
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200 &&
		    !ferry_canary_node_window__parse(json_string_value(buf), out)) {
			if (out->window == window)
				err = 0;
			else if (out->window > window)
				err = -ESTALE;
		}
		json_decref(buf);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (err != -EAGAIN ||
		    (t.tv_sec - start.tv_sec) * 1000 + (t.tv_nsec - start.tv_nsec) / 1000000 >
			    GATHER_WAIT_MS)
			break;
		/* The node has not cut this window yet (its tick comes up to 1 s later). */
		nanosleep(&(struct timespec){ .tv_nsec = 200 * 1000 * 1000 }, NULL);
	}
	curl_easy_cleanup(easy);
	return err;
}

int ferry_canary_cluster__gather(void *cluster, const char *deployment, __u64 window,
				 struct ferry_canary_node_window *merged)
{
	struct ferry_canary_cluster *c = cluster;
	struct ferry_canary_node_window *w;
	size_t got = 0;

	refresh_peers(c, time(NULL));
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < c->npeers; i++) {
		if (fetch_window(&c->peers[i], deployment, window, w)) {
			pr_warn("canary %s: no window %llu from %s (%s): judged without it",
				deployment, (unsigned long long)window, c->peers[i].name,
				c->peers[i].url);
			continue;
		}
		ferry_canary_counts__merge(&merged->canary, &w->canary);
		ferry_canary_counts__merge(&merged->baseline, &w->baseline);
		merged->http_unknown += w->http_unknown;
		got++;
	}
	free(w);
	pr_debug("canary %s: window %llu merged from this node and %zu of %zu others", deployment,
		 (unsigned long long)window, got, c->npeers);
	return got == c->npeers ? 0 : -EAGAIN;
}

/* -------------------------------------------------------------- decisions */

/* ConfigMap keys allow [-._a-zA-Z0-9]: "ns/name" becomes "ns.name" (a namespace has no dot). */
static void cm_key(const char *deployment, char *buf, size_t len)
{
	snprintf(buf, len, "%s", deployment);
	for (char *p = buf; *p; p++)
		if (*p == '/')
			*p = '.';
}

static void publish(struct ferry_canary_cluster *c, struct ferry_canary_runner *r, time_t now)
{
	struct ferry_canary_decision *ds;
	size_t n = ferry_canary_runner__decisions(r, &ds);
	char path[600], key[FERRY_NAME_LEN], *data_text, *body_text, *answer = NULL;
	json_t *data = json_object(), *body;
	long status = 0;

	for (size_t i = 0; i < n; i++) {
		json_t *d = ferry_canary_decision__json(&ds[i]);
		char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

		cm_key(ds[i].deployment, key, sizeof(key));
		if (text)
			json_object_set_new(data, key, json_string(text));
		free(text);
		json_decref(d);
	}
	free(ds);
	data_text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (!data_text || (c->published && !strcmp(c->published, data_text) &&
			   now - c->published_at < PUBLISH_EVERY_S)) {
		free(data_text);
		json_decref(data);
		return;
	}
	body = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:o}", "apiVersion", "v1", "kind",
			 "ConfigMap", "metadata", "name", FERRY_CANARY_CONFIGMAP, "namespace",
			 c->ns, "annotations", "ferry.io/canary-leader", c->identity, "data", data);
	body_text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", c->ns,
		 FERRY_CANARY_CONFIGMAP);
	if (body_text &&
	    !ferry_k8s__request(c->opts.k8s, "PUT", path, body_text, &status, &answer) &&
	    status == 404) {
		free(answer);
		answer = NULL;
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", c->ns);
		ferry_k8s__request(c->opts.k8s, "POST", path, body_text, &status, &answer);
	}
	if (status == 200 || status == 201) {
		free(c->published);
		c->published = data_text;
		data_text = NULL;
		c->published_at = now;
	} else {
		pr_warn("canary: cannot publish the decisions in ConfigMap %s/%s: HTTP %ld", c->ns,
			FERRY_CANARY_CONFIGMAP, status);
	}
	free(answer);
	free(body_text);
	free(data_text);
	json_decref(body);
}

static void follow(struct ferry_canary_cluster *c, struct ferry_canary_runner *r,
		   struct ferry_sync *sync)
{
	char path[600], *answer = NULL;
	const char *key;
	json_t *cm, *v;
	long status;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", c->ns,
		 FERRY_CANARY_CONFIGMAP);
	if (ferry_k8s__request(c->opts.k8s, "GET", path, NULL, &status, &answer) || status != 200) {
		/* No decision to read: the weights last applied stay. */
		free(answer);
		return;
	}
	cm = json_loads(answer, 0, NULL);
	free(answer);
	json_object_foreach(json_object_get(cm, "data"), key, v) {
		struct ferry_canary_decision d;
		json_t *o = json_loads(json_string_value(v) ?: "", 0, NULL);

		if (!ferry_canary_decision__parse(o, &d))
			ferry_canary_runner__apply_decision(r, sync, &d);
		json_decref(o);
	}
	json_decref(cm);
}

void ferry_canary_cluster__exchange(struct ferry_canary_cluster *c, struct ferry_canary_runner *r,
				    struct ferry_sync *sync, time_t now)
{
	if (c->leading)
		publish(c, r, now);
	else
		follow(c, r, sync);
}
