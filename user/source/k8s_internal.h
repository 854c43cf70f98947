/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kubernetes list+watch client for ferryd (see k8s.h): configuration from a
 * kubeconfig (libyaml) or the in-cluster ServiceAccount, one libcurl multi
 * loop for both resources, newline-delimited watch events parsed with
 * jansson as they stream in, and rate-limited Events for invalid manifests.
 *
 * Private to user/source/k8s_*.c: the client state and the helpers its files
 * share. k8s_auth.c (kubeconfig, in-cluster), k8s_watch.c (list and watch),
 * k8s_events.c (Events), k8s_client.c (requests, buffers, life cycle).
 */
#ifndef FERRY_K8S_INTERNAL_H
#define FERRY_K8S_INTERNAL_H

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

/* Resources listed and watched: SeldonDeployments, EndpointSlices, Services. */
#define K8S_NRES 3

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
	struct k8s_resource res[K8S_NRES];
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
} resource_types[K8S_NRES] = {
	{ "SeldonDeployment", "machinelearning.seldon.io/v1", "/apis/machinelearning.seldon.io/v1",
	  "seldondeployments" },
	{ "EndpointSlice", "discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1", "endpointslices" },
	/* For ferry.io/vip: service/NAME (RBAC: get, list, watch on services, nothing more). */
	{ "Service", "v1", "/api/v1", "services" },
};

uint64_t now_ms(void);
int buf_append(struct k8s_buf *b, const void *p, size_t n);
void buf_free(struct k8s_buf *b);
void set_error(struct ferry_k8s *k8s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *read_small_file(const char *path);
int base64_decode(const char *in, struct k8s_buf *out);
int setup_request(struct ferry_k8s *k8s, CURL *easy, const char *url, struct curl_slist **headers);
void status_message(const struct k8s_buf *body, char *out, size_t len);
int load_kubeconfig(struct ferry_k8s *k8s, const char *path);
int load_in_cluster(struct ferry_k8s *k8s);
void end_transfer(struct k8s_resource *res);
void post_free(struct k8s_post *post);
void start_posts(struct ferry_k8s *k8s);
bool post_done(struct ferry_k8s *k8s, CURL *easy, CURLcode rc);
void abort_posts(struct ferry_k8s *k8s);

#endif /* FERRY_K8S_INTERNAL_H */
