// SPDX-License-Identifier: GPL-2.0-only
/*
 * List and watch: one libcurl multi loop for both resources, newline-delimited
 * watch events parsed with jansson as they stream in, backoff and resync.
 */
#include "source/k8s_internal.h"

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

void end_transfer(struct k8s_resource *res)
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
	for (size_t i = 0; i < K8S_NRES; i++)
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

size_t ferry_k8s__feed_watch(struct ferry_k8s *k8s, int resource, const char *data, size_t len)
{
	struct k8s_resource *res = &k8s->res[(unsigned int)resource % K8S_NRES];
	size_t n;

	res->status = 200;
	res->phase = PHASE_WATCH;
	n = on_body((char *)data, 1, len, res);
	deliver_pending(res);
	if (n != len) /* what start_transfer resets for the next watch */
		res->body.len = 0;
	return n;
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
	for (size_t i = 0; i < K8S_NRES; i++) {
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

int ferry_k8s__run(struct ferry_k8s *k8s)
{
	uint64_t now = now_ms();
	CURLMsg *msg;
	int running, left;

	k8s->run_err = 0;
	k8s->resync_at = now + (uint64_t)k8s->opts.resync_sec * 1000;
	for (size_t i = 0; i < K8S_NRES; i++) {
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
		for (size_t i = 0; i < K8S_NRES; i++) {
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
		for (size_t i = 0; i < K8S_NRES; i++)
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
		for (size_t i = 0; i < K8S_NRES; i++)
			if (!k8s->res[i].active && k8s->res[i].start_at < next)
				next = k8s->res[i].start_at;
		now = now_ms();
		timeout = next <= now ? 0 : next - now > 1000 ? 1000 : (int)(next - now);
		if (timeout)
			curl_multi_poll(k8s->multi, NULL, 0, timeout, NULL);
	}
	for (size_t i = 0; i < K8S_NRES; i++) {
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
