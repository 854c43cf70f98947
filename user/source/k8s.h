/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferryd's Kubernetes source: lists and watches SeldonDeployments
 * (machinelearning.seldon.io/v1), EndpointSlices (discovery.k8s.io/v1) and
 * Services (v1, for ferry.io/vip: service/NAME)
 * and hands every change to callbacks, which ferryd wires to its manifest
 * store (user/config.h). It also posts Kubernetes Events for manifests that
 * fail validation, so `kubectl describe sdep NAME` shows why ferry ignores it.
 *
 * One loop drives the three resources over libcurl's multi interface: list (paged
 * with limit/continue), then watch from the list's resourceVersion. A watch
 * that ends cleanly is resumed from the last resourceVersion seen (events or
 * bookmarks); a dropped connection or a 5xx is retried with capped,
 * jittered exponential backoff; 410 Gone (HTTP or an ERROR event) re-lists
 * and delivers deletes for the objects that vanished meanwhile. The whole
 * state is also re-listed every resync period.
 *
 * Nothing here touches BPF.
 */
#ifndef FERRY_K8S_H
#define FERRY_K8S_H

#include <stdbool.h>
#include <jansson.h>

struct ferry_k8s;

struct ferry_k8s_opts {
	/* A kubeconfig file, or NULL for in-cluster configuration (the
	 * ServiceAccount token and CA, KUBERNETES_SERVICE_HOST/PORT). */
	const char *kubeconfig;
	/* Watch one namespace, or NULL for all namespaces. */
	const char *namespace;
	/* Full re-list every resync_sec seconds; 0 means 600. */
	unsigned int resync_sec;
	/* timeoutSeconds of each watch request; 0 means 300. */
	unsigned int watch_timeout_sec;
	/* Items per list page (limit=); 0 means 500. */
	unsigned int page_limit;
	/* Reconnect backoff: doubles from min to max, with jitter; 0 means
	 * 200 ms and 30000 ms. */
	unsigned int backoff_min_ms;
	unsigned int backoff_max_ms;
	/* Events: at most one per object per event_interval_sec (0: 60), and
	 * the same message again only after event_repeat_sec (0: 3600, the
	 * API server's default Event TTL, so the warning stays visible). */
	unsigned int event_interval_sec;
	unsigned int event_repeat_sec;
	/* In-cluster files; NULL means /var/run/secrets/kubernetes.io/serviceaccount.
	 * Tests point it at a temporary directory. */
	const char *serviceaccount_dir;

	/*
	 * Callbacks, all called on the thread that runs ferry_k8s__run (the
	 * client's own thread after ferry_k8s__start), never concurrently and
	 * never from inside libcurl. An object is a borrowed reference, valid
	 * during the call: json_incref it to keep it. kind and apiVersion are
	 * always set, even where the API server leaves them out of list items.
	 */
	/* An object was added or changed (or is still there after a re-list). */
	void (*on_upsert)(json_t *object, void *ctx);
	/* An object was deleted, or vanished between two lists. */
	void (*on_delete)(const char *kind, const char *ns, const char *name, void *ctx);
	/* All resources are listed: after the first list and after each
	 * re-list; a consumer can rebuild its state here. */
	void (*on_synced)(void *ctx);
	/* Optional: the loop stopped for good (err is a negative errno,
	 * message says why and what to do). */
	void (*on_error)(int err, const char *message, void *ctx);
	void *ctx;
};

/*
 * Reads the configuration (kubeconfig or in-cluster). Returns NULL and sets
 * errno on error, after logging what is wrong and where (file:line:col and
 * field for a kubeconfig).
 */
struct ferry_k8s *ferry_k8s__new(const struct ferry_k8s_opts *opts);
/* Stops the client if started, then frees it. */
void ferry_k8s__free(struct ferry_k8s *k8s);

/*
 * Runs the list/watch loop on the calling thread until ferry_k8s__stop or a
 * fatal error. Fatal: 401 or 403 before the first complete list (a wrong
 * token or missing RBAC is a deployment error; later ones are retried, since
 * a rotated token or a restarted API server recovers). Returns 0 when
 * stopped, or a negative errno (-EACCES for 401/403).
 */
int ferry_k8s__run(struct ferry_k8s *k8s);
/* Runs ferry_k8s__run on a new thread; callbacks then run on that thread. */
int ferry_k8s__start(struct ferry_k8s *k8s);
/* Stops the loop (from any thread, also from a callback when not started
 * with __start). When started with __start, joins the thread and returns
 * what ferry_k8s__run returned; otherwise returns 0. */
int ferry_k8s__stop(struct ferry_k8s *k8s);

/* The last error the client hit, or "" (for logs and tests: the loop thread
 * may overwrite it while it is read). */
const char *ferry_k8s__error(struct ferry_k8s *k8s);

/*
 * Reports a Warning Event (reason FerryInvalidManifest, source ferryd) about
 * the object kind ns/name, e.g. kind "SeldonDeployment". Thread-safe and
 * non-blocking: the Event is queued and posted by the client's loop (so only
 * while ferry_k8s__run runs). Rate-limited per object. Returns 0 when
 * queued; -EALREADY when suppressed (within event_interval_sec of the last
 * Event for the same object, or the same message within event_repeat_sec);
 * -EACCES once the API server has refused an Event with 403 (RBAC; logged
 * once, then no more Events are attempted); -EBUSY when 256 Events already
 * wait (API server unreachable); or another negative errno.
 */
int ferry_k8s__report_error(struct ferry_k8s *k8s, const char *kind, const char *ns,
			    const char *name, const char *message);

/*
 * A secret shared by every node (the cluster hash seed): data[key] of the
 * Secret ns/name, base64-decoded into *bytes (malloc'd, *len bytes). When the
 * Secret does not exist it is created with create_bytes random bytes
 * (*created = true); when another client created it first (409 Conflict) the
 * winner's is read, so every node ends up with the same bytes. Blocking, on
 * the caller's thread; call it before ferry_k8s__start. Retries unreachable
 * or failing API servers for about a minute. Returns 0, -EACCES (401/403:
 * RBAC), -ENODATA (the Secret has no such key), or another negative errno;
 * logs what is wrong and the fix.
 */
int ferry_k8s__shared_secret(struct ferry_k8s *k8s, const char *ns, const char *name,
			     const char *key, size_t create_bytes, void **bytes, size_t *len,
			     bool *created);

/* The namespace ferryd runs in (in-cluster: the ServiceAccount's), or NULL. */
const char *ferry_k8s__own_namespace(const struct ferry_k8s *k8s);

/*
 * Posts an Event of type Normal (Warning with warning) and the given reason
 * about kind ns/name, e.g. a canary transition. Queued like report_error but
 * not rate limited: each call is one transition. Same returns.
 */
int ferry_k8s__report_event(struct ferry_k8s *k8s, const char *kind, const char *ns,
			    const char *name, bool warning, const char *reason,
			    const char *message);

/*
 * One synchronous request to the API server (path like "/api/v1/..."; body
 * JSON or NULL), with ferryd's credentials and a 2 s timeout: for the canary
 * coordination (Lease, ConfigMap, pods). Thread-safe. 0 with *status and a
 * malloc'd NUL-terminated *answer, or a negative errno (-EIO: no answer).
 */
int ferry_k8s__request(struct ferry_k8s *k8s, const char *method, const char *path,
		       const char *body, long *status, char **answer);

/* The identity Events report (NODE_NAME, else the host name). */
const char *ferry_k8s__host(const struct ferry_k8s *k8s);

/*
 * For fuzzing and tests: hands len bytes of a watch stream of resource
 * 0 (SeldonDeployments), 1 (EndpointSlices) or 2 (Services) to the stream decoder as if
 * they came from an HTTP 200 watch, then delivers the events decoded so far
 * to the callbacks. Returns len, or less when the watch would be dropped (a
 * bad or ERROR event); the next call then starts a fresh stream.
 */
size_t ferry_k8s__feed_watch(struct ferry_k8s *k8s, int resource, const char *data, size_t len);

#endif /* FERRY_K8S_H */
