// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kubernetes Events for invalid manifests: rate limited, queued by any thread,
 * posted by the loop.
 */
#include "source/k8s_internal.h"

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
	for (size_t i = 0; i < K8S_NRES; i++)
		if (!strcmp(kind, resource_types[i].kind))
			return resource_types[i].api_version;
	return "v1";
}

void post_free(struct k8s_post *post)
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
void start_posts(struct ferry_k8s *k8s)
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
bool post_done(struct ferry_k8s *k8s, CURL *easy, CURLcode rc)
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
void abort_posts(struct ferry_k8s *k8s)
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
			const char *type, const char *reason, const char *message, const char *uid)
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
		       "kind", kind, "namespace", ns, "name", name, "uid", uid, "reason", reason,
		       "message", message, "type", type, "source", "component", "ferryd", "host",
		       k8s->host, "firstTimestamp", stamp, "lastTimestamp", stamp, "count", 1,
		       "reportingComponent", "ferryd", "reportingInstance", k8s->host);
	if (!ev)
		return NULL;
	if (!*uid)
		json_object_del(json_object_get(ev, "involvedObject"), "uid");
	body = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	return body;
}

/* limited: rate-limited per object and message (invalid manifests); else every call posts. */
static int report(struct ferry_k8s *k8s, const char *kind, const char *ns, const char *name,
		  const char *type, const char *reason, const char *message, bool limited)
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
	/* An unlimited Event keeps its own key, so it never holds back a manifest error. */
	snprintf(post->key, sizeof(post->key), "%s/%s/%s%s%s", kind, ns, name, limited ? "" : "#",
		 limited ? "" : reason);
	snprintf(post->what, sizeof(post->what), "%s %s/%s", kind, ns, name);
	snprintf(post->ns, sizeof(post->ns), "%s", ns);
	snprintf(rkey, sizeof(rkey), "%s/%s", ns, name);

	pthread_mutex_lock(&k8s->lock);
	if (k8s->events_forbidden) {
		pthread_mutex_unlock(&k8s->lock);
		free(post);
		return -EACCES;
	}
	last = limited ? json_object_get(k8s->events, post->key) : NULL;
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
	for (size_t i = 0; i < K8S_NRES; i++) {
		if (strcmp(kind, k8s->res[i].kind))
			continue;
		entry = json_object_get(k8s->res[i].known, rkey);
		snprintf(uid, sizeof(uid), "%s",
			 json_string_value(json_object_get(entry, "uid")) ?: "");
	}
	post->body = event_body(k8s, kind, ns, name, type, reason, message, uid);
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

int ferry_k8s__report_error(struct ferry_k8s *k8s, const char *kind, const char *ns,
			    const char *name, const char *message)
{
	return report(k8s, kind, ns, name, "Warning", "FerryInvalidManifest", message, true);
}

int ferry_k8s__report_event(struct ferry_k8s *k8s, const char *kind, const char *ns,
			    const char *name, bool warning, const char *reason, const char *message)
{
	if (!reason)
		return -EINVAL;
	return report(k8s, kind, ns, name, warning ? "Warning" : "Normal", reason, message, false);
}
