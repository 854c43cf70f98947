// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Kubernetes client (user/k8s.c) against a fake API server
 * (tests/k8s_apiserver.py) over real HTTPS: paged lists, watch streams,
 * bookmarks, 410 Gone, dropped connections, authentication and Events.
 * Unprivileged. Needs python3 and openssl; SKIPs loudly without them.
 *
 * Each test starts its own server on 127.0.0.1 (the server picks a free
 * port and writes it to a file) and scripts it through its /_control
 * endpoint. Everything lives in one temporary directory, removed on every
 * exit path (atexit, and SIGINT/SIGTERM); the server dies with the test
 * (PR_SET_PDEATHSIG) even if the test crashes.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "source/k8s.h"
#include "log.h"
#include "testing.h"

#define SUITE "k8s"
#define TOKEN "fk-token-3f9a1c"
#define WAIT_S 20 /* a deadline for failure, not a timing assertion */

static char tmpdir[64]; /* /tmp/fk-k8s-XXXXXX */
static char server_script[PATH_MAX];
static pid_t server_pid;
static int server_port;
static const char *server_host = "127.0.0.1"; /* as in a URL: "[::1]" for IPv6 */
static const char *skip_reason;

/* --- environment ----------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void stop_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = 0;
	}
}

static void cleanup(void)
{
	stop_server();
	if (tmpdir[0]) {
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		tmpdir[0] = '\0';
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		fprintf(stderr, "    command failed (%d): %s\n", rc, cmd);
	return rc;
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static char *slurp(const char *name)
{
	char path[PATH_MAX], *data = NULL;
	size_t len = 0;
	FILE *f;

	path_in(path, sizeof(path), name);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	if (getdelim(&data, &len, '\0', f) < 0) {
		free(data);
		data = NULL;
	}
	fclose(f);
	return data;
}

static int write_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	path_in(path, sizeof(path), name);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

/* Finds tests/k8s_apiserver.py: $FERRY_TOP, else up from the binary. */
static int find_script(void)
{
	char exe[PATH_MAX - 64], *slash;
	const char *top = getenv("FERRY_TOP");
	ssize_t n;

	if (top) {
		snprintf(server_script, sizeof(server_script), "%s/tests/k8s_apiserver.py", top);
		return access(server_script, R_OK) ? -ENOENT : 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	while ((slash = strrchr(exe, '/'))) {
		*slash = '\0';
		snprintf(server_script, sizeof(server_script), "%s/tests/k8s_apiserver.py", exe);
		if (!access(server_script, R_OK))
			return 0;
	}
	return -ENOENT;
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate. */
static int make_pki(void)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

	if (write_file("san.ext", "subjectAltName=IP:127.0.0.1,IP:::1\n"))
		return -EIO;
	if (sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 -subj /CN=fk-test-ca 2>/dev/null",
	       tmpdir, ec) ||
	    sh("cd %s && openssl req %s -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null",
	       tmpdir, ec) ||
	    sh("cd %s && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null",
	       tmpdir) ||
	    sh("cd %s && openssl req %s -keyout client.key -out client.csr -subj /CN=fk-client 2>/dev/null",
	       tmpdir, ec) ||
	    sh("cd %s && openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 2>/dev/null",
	       tmpdir) ||
	    sh("cd %s && for f in ca.crt client.crt client.key; do openssl base64 -A -in $f -out $f.b64; done",
	       tmpdir))
		return -EIO;
	return 0;
}

static int setup_env(void)
{
	if (system("command -v python3 >/dev/null 2>&1")) {
		skip_reason = "python3 is not installed (the fake API server needs it)";
		return 0;
	}
	if (system("command -v openssl >/dev/null 2>&1")) {
		skip_reason = "openssl is not installed (the test PKI needs it)";
		return 0;
	}
	if (find_script()) {
		skip_reason = "tests/k8s_apiserver.py not found (set FERRY_TOP)";
		return 0;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fk-k8s-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = '\0';
		return -errno;
	}
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	return make_pki();
}

/*
 * Starts the server on host (127.0.0.1 or ::1) with a scenario (JSON text);
 * returns 0 or -errno.
 */
static int start_server_on(const char *host, const char *scenario)
{
	char scen[PATH_MAX], port_file[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	char *port;

	path_in(scen, sizeof(scen), "scenario.json");
	path_in(port_file, sizeof(port_file), "port");
	path_in(cert, sizeof(cert), "server.crt");
	path_in(key, sizeof(key), "server.key");
	path_in(ca, sizeof(ca), "ca.crt");
	unlink(port_file);
	server_host = strchr(host, ':') ? "[::1]" : "127.0.0.1";
	if (write_file("scenario.json", scenario))
		return -EIO;
	server_pid = fork();
	if (server_pid < 0)
		return -errno;
	if (!server_pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* stdout is for PASS/FAIL lines only. */
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execlp("python3", "python3", server_script, "--cert", cert, "--key", key,
		       "--client-ca", ca, "--token", TOKEN, "--port-file", port_file, "--scenario",
		       scen, "--host", host, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < WAIT_S * 50; i++) {
		if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
			server_pid = 0;
			fprintf(stderr, "    the fake API server exited at start\n");
			return -ECHILD;
		}
		port = slurp("port");
		if (port) {
			server_port = atoi(port);
			free(port);
			return server_port > 0 ? 0 : -EINVAL;
		}
		usleep(20000);
	}
	stop_server();
	return -ETIMEDOUT;
}

static int start_server(const char *scenario)
{
	return start_server_on("127.0.0.1", scenario);
}

enum kc_auth { KC_TOKEN, KC_BAD_TOKEN, KC_CLIENT_CERT };

static int write_kubeconfig(const char *name, enum kc_auth auth)
{
	char *ca = slurp("ca.crt.b64"), *crt = slurp("client.crt.b64"),
	     *key = slurp("client.key.b64"), *text = NULL, user[8192];
	int err = -ENOMEM;

	if (!ca || !crt || !key)
		goto out;
	if (auth == KC_CLIENT_CERT)
		snprintf(user, sizeof(user),
			 "    client-certificate-data: %s\n    client-key-data: %s\n", crt, key);
	else
		snprintf(user, sizeof(user), "    token: %s\n",
			 auth == KC_TOKEN ? TOKEN : "fk-wrong-token");
	if (asprintf(&text,
		     "apiVersion: v1\n"
		     "kind: Config\n"
		     "current-context: fk\n"
		     "clusters:\n"
		     "- name: other\n"
		     "  cluster:\n"
		     "    server: https://198.18.0.1:6443\n"
		     "- name: fake\n"
		     "  cluster:\n"
		     "    server: https://127.0.0.1:%d/\n"
		     "    certificate-authority-data: %s\n"
		     "contexts:\n"
		     "- name: fk\n"
		     "  context:\n"
		     "    cluster: fake\n"
		     "    user: ferryd\n"
		     "users:\n"
		     "- name: ferryd\n"
		     "  user:\n"
		     "%s",
		     server_port, ca, user) < 0) {
		text = NULL;
		goto out;
	}
	err = write_file(name, text);
out:
	free(ca);
	free(crt);
	free(key);
	free(text);
	return err;
}

/* --- the server's control endpoint -------------------------------------- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FILE *f = userdata;

	return fwrite(ptr, size, nmemb, f);
}

/* POSTs {"ops": ops} (ops: JSON array text) or GETs the state when ops is NULL. */
static json_t *control(const char *ops)
{
	char url[128], ca[PATH_MAX], *answer = NULL, *body = NULL;
	struct curl_slist *h = NULL;
	size_t answer_len = 0;
	json_t *out = NULL;
	long status = 0;
	FILE *f;
	CURL *c;

	c = curl_easy_init();
	f = open_memstream(&answer, &answer_len);
	if (!c || !f)
		goto out;
	snprintf(url, sizeof(url), "https://%s:%d/_control", server_host, server_port);
	path_in(ca, sizeof(ca), "ca.crt");
	h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (ops) {
		if (asprintf(&body, "{\"ops\": %s}", ops) < 0) {
			body = NULL;
			goto out;
		}
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	if (curl_easy_perform(c) != CURLE_OK)
		goto out;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	fclose(f);
	f = NULL;
	if (status == 200)
		out = json_loads(answer, 0, NULL);
	else
		fprintf(stderr, "    control: HTTP %ld: %s\n", status, answer);
out:
	if (f)
		fclose(f);
	curl_slist_free_all(h);
	if (c)
		curl_easy_cleanup(c);
	free(answer);
	free(body);
	return out;
}

static bool ctl(const char *ops)
{
	json_t *r = control(ops);

	json_decref(r);
	return ASSERT_TRUE(r != NULL, "control request");
}

/*
 * Requests the server saw for resource (list or watch); *last (NULL or a
 * reference, released here) gets the last one.
 */
static int count_requests(const char *resource, bool watch, json_t **last)
{
	json_t *state = control(NULL), *req;
	int n = 0;
	size_t i;

	if (last) {
		json_decref(*last);
		*last = NULL;
	}
	json_array_foreach(json_object_get(state, "requests"), i, req) {
		if (strcmp(json_string_value(json_object_get(req, "resource")) ?: "", resource) ||
		    json_is_true(json_object_get(req, "watch")) != watch)
			continue;
		n++;
		if (last) {
			json_decref(*last);
			*last = json_incref(req);
		}
	}
	json_decref(state);
	return n;
}

static int bookmarks_sent(const char *resource)
{
	json_t *state = control(NULL);
	int n = (int)json_integer_value(
		json_object_get(json_object_get(state, "bookmarks_sent"), resource));

	json_decref(state);
	return n;
}

/* --- what the client delivers -------------------------------------------- */

struct recorder {
	pthread_mutex_t lock;
	json_t *log; /* "U Kind ns/name rv" / "D Kind ns/name" */
	int synced;
	int nerr;
};

static struct recorder rec = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void rec_add(const char *line)
{
	pthread_mutex_lock(&rec.lock);
	json_array_append_new(rec.log, json_string(line));
	pthread_mutex_unlock(&rec.lock);
}

static void on_upsert(json_t *obj, void *ctx)
{
	json_t *meta = json_object_get(obj, "metadata");
	char line[512];

	snprintf(line, sizeof(line), "U %s %s/%s %s %s",
		 json_string_value(json_object_get(obj, "kind")) ?: "(no kind)",
		 json_string_value(json_object_get(meta, "namespace")) ?: "",
		 json_string_value(json_object_get(meta, "name")) ?: "",
		 json_string_value(json_object_get(meta, "resourceVersion")) ?: "",
		 json_string_value(json_object_get(obj, "apiVersion")) ?: "(no apiVersion)");
	rec_add(line);
}

static void on_delete(const char *kind, const char *ns, const char *name, void *ctx)
{
	char line[512];

	snprintf(line, sizeof(line), "D %s %s/%s", kind, ns, name);
	rec_add(line);
}

static void on_synced(void *ctx)
{
	pthread_mutex_lock(&rec.lock);
	rec.synced++;
	pthread_mutex_unlock(&rec.lock);
}

static void on_error(int err, const char *msg, void *ctx)
{
	pthread_mutex_lock(&rec.lock);
	rec.nerr++;
	pthread_mutex_unlock(&rec.lock);
}

static void rec_reset(void)
{
	pthread_mutex_lock(&rec.lock);
	json_decref(rec.log);
	rec.log = json_array();
	rec.synced = 0;
	rec.nerr = 0;
	pthread_mutex_unlock(&rec.lock);
}

static int rec_synced(void)
{
	int n;

	pthread_mutex_lock(&rec.lock);
	n = rec.synced;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

/* The number of entries starting with prefix. */
static int rec_count(const char *prefix)
{
	size_t i, n = 0;
	json_t *s;

	pthread_mutex_lock(&rec.lock);
	json_array_foreach(rec.log, i, s) {
		if (!strncmp(json_string_value(s), prefix, strlen(prefix)))
			n++;
	}
	pthread_mutex_unlock(&rec.lock);
	return (int)n;
}

/* The entries containing needle, joined by "|", to compare orders. */
static char *rec_join(const char *needle)
{
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);
	json_t *s;

	pthread_mutex_lock(&rec.lock);
	json_array_foreach(rec.log, i, s) {
		const char *line = json_string_value(s);

		if (strstr(line, needle))
			fprintf(f, "%s|", line);
	}
	pthread_mutex_unlock(&rec.lock);
	fclose(f);
	return out;
}

static void dump_log(void)
{
	char *all = rec_join("");

	fprintf(stderr, "    delivered: %s (synced %d)\n", all, rec_synced());
	free(all);
}

#define WAIT_FOR(cond)                                         \
	({                                                     \
		bool __ok = false;                             \
		for (int __i = 0; __i < WAIT_S * 100; __i++) { \
			if (cond) {                            \
				__ok = true;                   \
				break;                         \
			}                                      \
			usleep(10000);                         \
		}                                              \
		if (!__ok)                                     \
			dump_log();                            \
		ASSERT_TRUE(__ok, "waited for " #cond);        \
	})

/* --- fixtures -------------------------------------------------------------- */

#define SD(name) \
	"{\"metadata\": {\"namespace\": \"default\", \"name\": \"" name "\"}, \"spec\": {}}"
#define ES(name)                                                                            \
	"{\"metadata\": {\"namespace\": \"default\", \"name\": \"" name "\", "              \
	"\"labels\": {\"kubernetes.io/service-name\": \"m\"}}, \"addressType\": \"IPv4\", " \
	"\"endpoints\": []}"

static const char *scenario_small = "{\"objects\": {\"seldondeployments\": [" SD("sd-a") ", " SD(
	"sd-b") ", " SD("sd-c") "],"
				" \"endpointslices\": [" ES("es-1") "]}}";

static struct ferry_k8s_opts base_opts(const char *kubeconfig)
{
	return (struct ferry_k8s_opts){
		.kubeconfig = kubeconfig,
		.backoff_min_ms = 50,
		.backoff_max_ms = 1000,
		.on_upsert = on_upsert,
		.on_delete = on_delete,
		.on_synced = on_synced,
		.on_error = on_error,
	};
}

/* Server with scenario, kubeconfig, client started and synced once. */
static struct ferry_k8s *fixture(const char *scenario, struct ferry_k8s_opts *opts)
{
	char kc[PATH_MAX];
	struct ferry_k8s *k8s;

	rec_reset();
	if (skip_reason) {
		test__skip("%s", skip_reason);
		return NULL;
	}
	if (!ASSERT_OK(start_server(scenario), "start the fake API server"))
		return NULL;
	path_in(kc, sizeof(kc), "kubeconfig");
	if (!ASSERT_OK(write_kubeconfig("kubeconfig", KC_TOKEN), "kubeconfig"))
		return NULL;
	opts->kubeconfig = kc;
	k8s = ferry_k8s__new(opts);
	if (!ASSERT_TRUE(k8s != NULL, "ferry_k8s__new"))
		return NULL;
	if (!ASSERT_OK(ferry_k8s__start(k8s), "start") || !WAIT_FOR(rec_synced() >= 1)) {
		ferry_k8s__free(k8s);
		return NULL;
	}
	return k8s;
}

static void teardown(struct ferry_k8s *k8s)
{
	if (k8s)
		ASSERT_OK(ferry_k8s__stop(k8s), "stop returns what run returned");
	ferry_k8s__free(k8s);
	stop_server();
}

/* --- tests ------------------------------------------------------------------- */

static void test_initial_list_paged(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s;
	json_t *last = NULL;
	char *slices = NULL;

	opts.page_limit = 2;
	k8s = fixture(
		"{\"objects\": {\"seldondeployments\": [" SD("sd-a") ", " SD("sd-b") ", " SD(
			"sd-c") ", " SD("sd-d") ", " SD("sd-e") "],"
								" \"endpointslices\": [" ES("es-1") ", " ES(
									"es-2") ", " ES("es-3") "]}}",
		&opts);
	if (!k8s)
		goto out;
	ASSERT_EQ(rec_synced(), 1, "one on_synced after both lists");
	ASSERT_EQ(rec_count("U SeldonDeployment default/"), 5, "every SeldonDeployment");
	ASSERT_EQ(rec_count("U EndpointSlice default/"), 3, "every EndpointSlice");
	ASSERT_EQ(rec_count("D "), 0, "no deletes");
	/* 5 objects at limit=2: pages of 2, 2, 1; the last two with continue. */
	ASSERT_EQ(count_requests("seldondeployments", false, &last), 3, "three pages");
	ASSERT_STREQ(json_string_value(json_object_get(last, "cont")), "4:9",
		     "last page continues from the token");
	ASSERT_EQ(json_integer_value(json_object_get(last, "limit")), 2, "limit= sent");
	ASSERT_EQ(count_requests("endpointslices", false, NULL), 2, "two pages");
	/* List items of built-in types lack kind/apiVersion: the client adds them. */
	slices = rec_join("U EndpointSlice");
	ASSERT_STRSTR(slices, "discovery.k8s.io/v1", "apiVersion filled in");
	WAIT_FOR(count_requests("seldondeployments", true, &last) == 1);
	ASSERT_STREQ(json_string_value(json_object_get(last, "rv")), "9",
		     "watch from the list's resourceVersion");
	ASSERT_STREQ(json_string_value(json_object_get(last, "bookmarks")), "true",
		     "allowWatchBookmarks");
out:
	free(slices);
	json_decref(last);
	teardown(k8s);
}

#define SVC(name)                                                                         \
	"{\"metadata\": {\"namespace\": \"default\", \"name\": \"" name "\"}, \"spec\": " \
	"{\"clusterIP\": \"10.96.0.10\", \"ports\": [{\"name\": \"http\", \"port\": 8000}]}}"

/* Services (ferry.io/vip: service/NAME): listed from the core group, then watched. */
static void test_services_list_watch(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s;
	json_t *last = NULL;
	char *got = NULL;

	k8s = fixture("{\"objects\": {\"seldondeployments\": [" SD("sd-a") "],"
									   " \"services\": [" SVC(
										   "iris") "]}}",
		      &opts);
	if (!k8s)
		goto out;
	ASSERT_EQ(rec_count("U Service default/iris"), 1, "listed");
	ASSERT_EQ(count_requests("services", false, NULL), 1, "one list of /api/v1/services");
	got = rec_join("U Service ");
	/* The core group's apiVersion is "v1", filled in for list items. */
	ASSERT_STRSTR(got, "U Service default/iris 3 v1|", "kind and apiVersion filled in");
	free(got);
	got = NULL;
	if (!WAIT_FOR(count_requests("services", true, &last) == 1))
		goto out;
	if (!ctl("[{\"op\": \"put\", \"resource\": \"services\", \"object\": " SVC(
		    "new") "},"
			   " {\"op\": \"delete\", \"resource\": \"services\", \"namespace\": "
			   "\"default\", \"name\": \"iris\"}]") ||
	    !WAIT_FOR(rec_count("D Service default/iris") == 1))
		goto out;
	ASSERT_EQ(rec_count("U Service default/new"), 1, "ADDED through the watch");
out:
	free(got);
	json_decref(last);
	teardown(k8s);
}

static void test_watch_events_in_order(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);
	char *got = NULL, ops[8192];
	int base;

	if (!k8s)
		goto out;
	WAIT_FOR(count_requests("seldondeployments", true, NULL) == 1);
	base = rec_count("");
	if (!ctl("[{\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
		    "sd-a") "},"
			    " {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
				    "sd-new") "},"
					      " {\"op\": \"delete\", \"resource\": \"seldondeployments\", \"namespace\": \"default\", \"name\": \"sd-b\"},"
					      " {\"op\": \"put\", \"resource\": \"endpointslices\", \"object\": " ES(
						      "es-1") "}]"))
		goto out;
	if (!WAIT_FOR(rec_count("") == base + 4))
		goto out;
	/* Resource versions 6, 7, 8 in the order the server wrote them (the
	 * two resources are separate streams: no order between them). */
	got = rec_join(" SeldonDeployment ");
	ASSERT_STRSTR(got,
		      "U SeldonDeployment default/sd-a 6 machinelearning.seldon.io/v1|"
		      "U SeldonDeployment default/sd-new 7 machinelearning.seldon.io/v1|"
		      "D SeldonDeployment default/sd-b|",
		      "SeldonDeployment events in order");
	free(got);
	got = rec_join(" EndpointSlice ");
	ASSERT_STRSTR(got, "U EndpointSlice default/es-1 9 discovery.k8s.io/v1|",
		      "EndpointSlice event");
	free(got);
	got = NULL;

	/* A burst: twenty changes of one object arrive in order, none lost. */
	ops[0] = '\0';
	strcat(ops, "[");
	for (int i = 0; i < 20; i++)
		strcat(ops,
		       i ? ", {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
				   "sd-burst") "}" :
			   "{\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
				   "sd-burst") "}");
	strcat(ops, "]");
	if (!ctl(ops) || !WAIT_FOR(rec_count("U SeldonDeployment default/sd-burst") == 20))
		goto out;
	got = rec_join("U SeldonDeployment default/sd-burst");
	ASSERT_STRSTR(
		got,
		"sd-burst 10 machinelearning.seldon.io/v1|U SeldonDeployment default/sd-burst 11 ",
		"burst starts in order");
	ASSERT_STRSTR(got, "sd-burst 29 machinelearning.seldon.io/v1|", "burst ends with the last");
	ASSERT_EQ(rec_synced(), 1, "no re-list");
out:
	free(got);
	teardown(k8s);
}

static void test_bookmark_moves_resource_version(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);
	json_t *r = NULL, *last = NULL;
	int before, sd_before;

	if (!k8s)
		goto out;
	WAIT_FOR(count_requests("seldondeployments", true, NULL) == 1);
	/* Another kind's changes move the shared version (5 -> 7); the
	 * bookmark tells the quiet SeldonDeployment watch about it. */
	before = rec_count("");
	sd_before = rec_count("U SeldonDeployment");
	r = control("[{\"op\": \"put\", \"resource\": \"endpointslices\", \"object\": " ES(
		"es-1") "},"
			" {\"op\": \"bump\"},"
			" {\"op\": \"bookmark\", \"resource\": \"seldondeployments\"}]");
	if (!ASSERT_TRUE(r != NULL, "control") ||
	    !ASSERT_EQ(json_integer_value(json_object_get(r, "rv")), 7, "version after bump"))
		goto out;
	if (!WAIT_FOR(rec_count("") == before + 1))
		goto out;
	/* Once the server has written the bookmark, the cut below comes after
	 * it on the same TCP stream, so the client parses the bookmark first;
	 * the reconnect must then resume from the bookmark's version. */
	if (!WAIT_FOR(bookmarks_sent("seldondeployments") == 1))
		goto out;
	if (!ctl("[{\"op\": \"drop\", \"resource\": \"seldondeployments\"}]"))
		goto out;
	if (!WAIT_FOR(count_requests("seldondeployments", true, &last) == 2))
		goto out;
	ASSERT_STREQ(json_string_value(json_object_get(last, "rv")), "7",
		     "reconnect resumes from the bookmark's resourceVersion");
	ASSERT_EQ(rec_count("U SeldonDeployment"), sd_before, "a bookmark is not an object");
	ASSERT_EQ(count_requests("seldondeployments", false, NULL), 1, "no re-list");
out:
	json_decref(r);
	json_decref(last);
	teardown(k8s);
}

static void gone_relist(bool as_http)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);
	char *got = NULL;

	if (!k8s)
		goto out;
	WAIT_FOR(count_requests("seldondeployments", true, NULL) == 1);
	/* sd-c vanishes and history is compacted: its DELETED event is gone
	 * for good, so only the re-list can tell. */
	if (as_http) {
		if (!ctl("[{\"op\": \"set\", \"key\": \"gone_as\", \"value\": \"http\"},"
			 " {\"op\": \"delete\", \"resource\": \"seldondeployments\", \"namespace\": \"default\", \"name\": \"sd-c\"},"
			 " {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
				 "sd-d") "},"
					 " {\"op\": \"compact\", \"resource\": \"seldondeployments\"},"
					 " {\"op\": \"drop\", \"resource\": \"seldondeployments\"}]"))
			goto out;
	} else {
		if (!ctl("[{\"op\": \"delete\", \"resource\": \"seldondeployments\", \"namespace\": \"default\", \"name\": \"sd-c\"},"
			 " {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
				 "sd-d") "},"
					 " {\"op\": \"compact\", \"resource\": \"seldondeployments\"}]"))
			goto out;
	}
	if (!WAIT_FOR(rec_synced() == 2))
		goto out;
	ASSERT_EQ(rec_count("D SeldonDeployment default/sd-c"), 1,
		  "delete for the vanished object");
	ASSERT_EQ(rec_count("D "), 1, "nothing else deleted");
	ASSERT_EQ(rec_count("U SeldonDeployment default/sd-d"), 1, "new object from the re-list");
	ASSERT_EQ(rec_count("U SeldonDeployment default/sd-a"), 2, "listed twice");
	ASSERT_EQ(count_requests("seldondeployments", false, NULL), 2, "re-listed once");
	ASSERT_EQ(count_requests("endpointslices", false, NULL), 1, "other resource untouched");
	got = rec_join(" SeldonDeployment ");
	/* The delete comes with the re-list: after the first sync's objects. */
	ASSERT_STRSTR(got, "|D SeldonDeployment default/sd-c|U SeldonDeployment default/sd-a",
		      "deletes before the re-listed objects");
	/* And the client watches again afterwards. */
	WAIT_FOR(count_requests("seldondeployments", true, NULL) >= (as_http ? 3 : 2));
	if (!ctl("[{\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
		    "sd-e") "}]"))
		goto out;
	WAIT_FOR(rec_count("U SeldonDeployment default/sd-e") == 1);
out:
	free(got);
	teardown(k8s);
}

static void test_gone_event_relists(void)
{
	gone_relist(false);
}

static void test_gone_http_relists(void)
{
	gone_relist(true);
}

static void test_dropped_watch_resumes(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);
	json_t *last = NULL;

	if (!k8s)
		goto out;
	WAIT_FOR(count_requests("seldondeployments", true, NULL) == 1);
	/* Cut the stream mid-chunk, then change things while the client is
	 * away: the reconnect must replay them from the last version. */
	if (!ctl("[{\"op\": \"drop\", \"resource\": \"seldondeployments\"},"
		 " {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
			 "sd-x") "},"
				 " {\"op\": \"delete\", \"resource\": \"seldondeployments\", \"namespace\": \"default\", \"name\": \"sd-a\"}]"))
		goto out;
	if (!WAIT_FOR(rec_count("D SeldonDeployment default/sd-a") == 1))
		goto out;
	ASSERT_EQ(rec_count("U SeldonDeployment default/sd-x"), 1, "replayed exactly once");
	ASSERT_EQ(count_requests("seldondeployments", true, &last), 2, "one reconnect");
	ASSERT_STREQ(json_string_value(json_object_get(last, "rv")), "5",
		     "resumed from the last version seen");
	ASSERT_EQ(count_requests("seldondeployments", false, NULL), 1, "no re-list");
	ASSERT_EQ(rec_synced(), 1, "no second sync");
	/* Cut again twice in a row (backoff grows); still nothing lost. */
	if (!ctl("[{\"op\": \"drop\", \"resource\": \"seldondeployments\"}]") ||
	    !WAIT_FOR(count_requests("seldondeployments", true, NULL) == 3) ||
	    !ctl("[{\"op\": \"drop\", \"resource\": \"seldondeployments\"},"
		 " {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
			 "sd-y") "}]"))
		goto out;
	WAIT_FOR(rec_count("U SeldonDeployment default/sd-y") == 1);
out:
	json_decref(last);
	teardown(k8s);
}

static void test_watch_timeout_resumes(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s;

	opts.watch_timeout_sec = 1;
	k8s = fixture(scenario_small, &opts);
	if (!k8s)
		goto out;
	/* The server ends each watch after timeoutSeconds=1; the client
	 * resumes without re-listing. */
	if (!WAIT_FOR(count_requests("endpointslices", true, NULL) >= 3))
		goto out;
	ASSERT_EQ(count_requests("endpointslices", false, NULL), 1, "no re-list");
	if (ctl("[{\"op\": \"put\", \"resource\": \"endpointslices\", \"object\": " ES("es-9") "}]"))
		WAIT_FOR(rec_count("U EndpointSlice default/es-9") == 1);
out:
	teardown(k8s);
}

static void test_resync_relists(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s;
	int lists;

	opts.resync_sec = 1;
	k8s = fixture(scenario_small, &opts);
	if (!k8s)
		goto out;
	/* A delete the watch never reports (a lost event): the periodic
	 * re-list finds it, once. */
	if (!ctl("[{\"op\": \"delete\", \"resource\": \"seldondeployments\","
		 " \"namespace\": \"default\", \"name\": \"sd-c\", \"silent\": true}]"))
		goto out;
	if (!WAIT_FOR(rec_count("D SeldonDeployment default/sd-c") == 1))
		goto out;
	/* One more complete resync after the one that found it. */
	lists = count_requests("seldondeployments", false, NULL);
	if (!WAIT_FOR(count_requests("seldondeployments", false, NULL) > lists) ||
	    !WAIT_FOR(rec_synced() >= 3))
		goto out;
	ASSERT_EQ(rec_count("D SeldonDeployment default/sd-c"), 1, "deleted once, not per resync");
	ASSERT_EQ(rec_count("D "), 1, "nothing else vanished");
	ASSERT_GE(count_requests("endpointslices", false, NULL), 3, "both re-listed");
	ASSERT_GE(rec_count("U SeldonDeployment default/sd-a"), 3, "objects delivered again");
out:
	teardown(k8s);
}

static void test_bad_token_is_fatal(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = NULL;
	char kc[PATH_MAX];

	rec_reset();
	if (skip_reason) {
		test__skip("%s", skip_reason);
		return;
	}
	if (!ASSERT_OK(start_server(scenario_small), "start the fake API server"))
		return;
	path_in(kc, sizeof(kc), "kubeconfig-bad");
	if (!ASSERT_OK(write_kubeconfig("kubeconfig-bad", KC_BAD_TOKEN), "kubeconfig"))
		goto out;
	opts.kubeconfig = kc;
	k8s = ferry_k8s__new(&opts);
	if (!ASSERT_TRUE(k8s != NULL, "ferry_k8s__new"))
		goto out;
	/* On this thread: returns instead of retrying forever. */
	ASSERT_EQ(ferry_k8s__run(k8s), -EACCES, "401 before the first sync is fatal");
	ASSERT_STRSTR(ferry_k8s__error(k8s), "401 Unauthorized", "error names the status");
	ASSERT_STRSTR(ferry_k8s__error(k8s), "bearer token", "error names the token");
	ASSERT_STRSTR(ferry_k8s__error(k8s), kc, "error names the kubeconfig");
	ASSERT_EQ(rec_count(""), 0, "nothing delivered");
	ASSERT_EQ(rec_synced(), 0, "never synced");
	ASSERT_EQ(rec.nerr, 1, "on_error called once");
out:
	ferry_k8s__free(k8s);
	stop_server();
}

static void test_client_certificate(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = NULL;
	char kc[PATH_MAX];

	rec_reset();
	if (skip_reason) {
		test__skip("%s", skip_reason);
		return;
	}
	if (!ASSERT_OK(start_server(scenario_small), "start the fake API server"))
		return;
	/* client-certificate-data/client-key-data, no token: the blobs reach
	 * libcurl and the server authenticates the certificate. */
	path_in(kc, sizeof(kc), "kubeconfig-cert");
	if (!ASSERT_OK(write_kubeconfig("kubeconfig-cert", KC_CLIENT_CERT), "kubeconfig"))
		goto out;
	opts.kubeconfig = kc;
	k8s = ferry_k8s__new(&opts);
	if (!ASSERT_TRUE(k8s != NULL, "ferry_k8s__new") ||
	    !ASSERT_OK(ferry_k8s__start(k8s), "start"))
		goto out;
	if (WAIT_FOR(rec_synced() == 1))
		ASSERT_EQ(rec_count("U "), 4, "all objects");
	ASSERT_OK(ferry_k8s__stop(k8s), "stop");
out:
	ferry_k8s__free(k8s);
	stop_server();
}

/* host: the server's address as KUBERNETES_SERVICE_HOST has it. */
static void in_cluster(const char *host)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = NULL;
	char sa[PATH_MAX], port[16];

	rec_reset();
	if (skip_reason) {
		test__skip("%s", skip_reason);
		return;
	}
	if (strchr(host, ':') && access("/proc/net/if_inet6", F_OK)) {
		test__skip("no IPv6 on this machine (/proc/net/if_inet6 missing)");
		return;
	}
	if (!ASSERT_OK(start_server_on(host, scenario_small), "start the fake API server"))
		return;
	path_in(sa, sizeof(sa), "sa");
	if (!ASSERT_OK(
		    sh("mkdir -p %s && cp %s/ca.crt %s/ca.crt && printf '%s\\n' > %s/token && printf ferry-system > %s/namespace",
		       sa, tmpdir, sa, TOKEN, sa, sa),
		    "ServiceAccount directory"))
		goto out;
	snprintf(port, sizeof(port), "%d", server_port);
	/* An IPv6 host comes without brackets; the client adds them. */
	setenv("KUBERNETES_SERVICE_HOST", host, 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
	opts.serviceaccount_dir = sa;
	opts.namespace = "default";
	k8s = ferry_k8s__new(&opts);
	if (!ASSERT_TRUE(k8s != NULL, "ferry_k8s__new") ||
	    !ASSERT_OK(ferry_k8s__start(k8s), "start"))
		goto out;
	if (WAIT_FOR(rec_synced() == 1)) {
		json_t *last = NULL;

		ASSERT_EQ(rec_count("U "), 4, "all objects");
		count_requests("seldondeployments", false, &last);
		ASSERT_STREQ(json_string_value(json_object_get(last, "namespace")), "default",
			     "namespaced path");
		json_decref(last);
	}
	ASSERT_OK(ferry_k8s__stop(k8s), "stop");
	ferry_k8s__free(k8s);
	k8s = NULL;

	/* Without the environment: a clear refusal, not a crash. */
	unsetenv("KUBERNETES_SERVICE_HOST");
	k8s = ferry_k8s__new(&opts);
	ASSERT_TRUE(k8s == NULL && errno == ENOENT, "in-cluster without KUBERNETES_SERVICE_HOST");
out:
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	ferry_k8s__free(k8s);
	stop_server();
}

static void test_in_cluster(void)
{
	in_cluster("127.0.0.1");
}

static void test_in_cluster_ipv6(void)
{
	in_cluster("::1");
}

static void test_list_5xx_retried(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s;

	/* The first two lists of SeldonDeployments fail with 503. */
	k8s = fixture(
		"{\"objects\": {\"seldondeployments\": [" SD("sd-a") ", " SD(
			"sd-b") "]},"
				" \"ops\": [{\"op\": \"fail\", \"resource\": \"seldondeployments\","
				" \"status\": 503, \"count\": 2}]}",
		&opts);
	if (!k8s)
		goto out;
	ASSERT_EQ(count_requests("seldondeployments", false, NULL), 3, "two retries, then success");
	ASSERT_EQ(rec_count("U SeldonDeployment"), 2, "each object once");
	ASSERT_EQ(rec_synced(), 1, "synced once");
	ASSERT_STRSTR(ferry_k8s__error(k8s), "HTTP 503", "last error kept");
out:
	teardown(k8s);
}

static void test_watch_5xx_retried(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);
	json_t *last = NULL;

	if (!k8s)
		goto out;
	WAIT_FOR(count_requests("seldondeployments", true, NULL) == 1);
	/* Cut the watch; the next two watch requests get 500; meanwhile an
	 * object arrives. The client backs off, resumes and gets it. */
	if (!ctl("[{\"op\": \"fail\", \"resource\": \"seldondeployments\", \"status\": 500,"
		 " \"count\": 2},"
		 " {\"op\": \"drop\", \"resource\": \"seldondeployments\"},"
		 " {\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
			 "sd-x") "}]"))
		goto out;
	if (!WAIT_FOR(rec_count("U SeldonDeployment default/sd-x") == 1))
		goto out;
	ASSERT_EQ(count_requests("seldondeployments", true, &last), 4,
		  "first watch, two failures, success");
	ASSERT_STREQ(json_string_value(json_object_get(last, "rv")), "5",
		     "resumed from the last version, not re-listed");
	ASSERT_EQ(count_requests("seldondeployments", false, NULL), 1, "no re-list");
out:
	json_decref(last);
	teardown(k8s);
}

static void test_kubeconfig_errors(void)
{
	static const struct {
		const char *text;
		int err;
	} cases[] = {
		{ "apiVersion: v1\nkind: Config\nclusters: []\n", EINVAL }, /* no current-context */
		{ "current-context: x\ncontexts:\n- name: x\n  context: {cluster: nope, user: u}\n",
		  EINVAL },
		{ "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		  "clusters:\n- name: c\n  cluster: {server: 'https://198.18.0.1'}\n"
		  "users:\n- name: u\n  user:\n    exec: {command: aws}\n",
		  EOPNOTSUPP },
		{ "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		  "clusters:\n- name: c\n  cluster: {server: 'https://198.18.0.1', certificate-authority-data: '!!'}\n",
		  EINVAL },
		{ "current-context: [unclosed\n", EINVAL },
	};
	struct ferry_k8s_opts opts = base_opts(NULL);
	char kc[PATH_MAX];

	if (skip_reason) {
		test__skip("%s", skip_reason);
		return;
	}
	path_in(kc, sizeof(kc), "kubeconfig-broken");
	opts.kubeconfig = kc;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ferry_k8s *k8s;

		if (!ASSERT_OK(write_file("kubeconfig-broken", cases[i].text), "write"))
			return;
		errno = 0;
		k8s = ferry_k8s__new(&opts);
		if (!ASSERT_TRUE(k8s == NULL, "rejected")) {
			fprintf(stderr, "    case %zu\n", i);
			ferry_k8s__free(k8s);
			continue;
		}
		if (!ASSERT_EQ(errno, cases[i].err, "errno"))
			fprintf(stderr, "    case %zu\n", i);
	}
}

static void test_events_rate_limited(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);
	json_t *state = NULL, *ev;

	if (!k8s)
		goto out;
	ASSERT_OK(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-a",
					  "spec.predictors[0].traffic: sums to 90"),
		  "first Event queued");
	ASSERT_EQ(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-a",
					  "spec.predictors[0].traffic: sums to 90"),
		  -EALREADY, "same message suppressed");
	ASSERT_EQ(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-a",
					  "spec.predictors[1].name: duplicate"),
		  -EALREADY, "another message within the minute suppressed");
	ASSERT_OK(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-b",
					  "spec.predictors[0].traffic: sums to 90"),
		  "another object has its own window");
	/* Posted by the client's loop; the two may arrive in either order. */
	if (!WAIT_FOR(count_requests("events", false, NULL) == 2))
		goto out;
	state = control(NULL);
	if (!ASSERT_EQ(json_array_size(json_object_get(state, "events")), 2, "two Events posted"))
		goto out;
	ev = json_array_get(json_object_get(state, "events"), 0);
	if (strcmp(json_string_value(json_object_get(json_object_get(ev, "involvedObject"), "name")) ?:
			   "",
		   "sd-a"))
		ev = json_array_get(json_object_get(state, "events"), 1);
	ASSERT_STREQ(json_string_value(json_object_get(ev, "reason")), "FerryInvalidManifest",
		     "reason");
	ASSERT_STREQ(json_string_value(json_object_get(ev, "type")), "Warning", "type");
	ASSERT_STREQ(json_string_value(json_object_get(ev, "message")),
		     "spec.predictors[0].traffic: sums to 90", "message");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(ev, "source"), "component")),
		     "ferryd", "source.component");
	ev = json_object_get(ev, "involvedObject");
	ASSERT_STREQ(json_string_value(json_object_get(ev, "kind")), "SeldonDeployment", "kind");
	ASSERT_STREQ(json_string_value(json_object_get(ev, "apiVersion")),
		     "machinelearning.seldon.io/v1", "apiVersion");
	ASSERT_STREQ(json_string_value(json_object_get(ev, "namespace")), "default", "namespace");
	ASSERT_STREQ(json_string_value(json_object_get(ev, "name")), "sd-a", "name");
	/* sd-a was the first object the server created. */
	ASSERT_STREQ(json_string_value(json_object_get(ev, "uid")), "uid-1",
		     "uid from the watch cache");
out:
	json_decref(state);
	teardown(k8s);
}

static void test_events_forbidden(void)
{
	struct ferry_k8s_opts opts = base_opts(NULL);
	struct ferry_k8s *k8s = fixture(scenario_small, &opts);

	if (!k8s || !ctl("[{\"op\": \"set\", \"key\": \"events_forbidden\", \"value\": true}]"))
		goto out;
	ASSERT_OK(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-a", "bad"),
		  "queued");
	/* Until the 403 is back, the same object is rate-limited (no new post);
	 * then every report says -EACCES. */
	WAIT_FOR(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-a", "bad") ==
		 -EACCES);
	ASSERT_EQ(ferry_k8s__report_error(k8s, "SeldonDeployment", "default", "sd-b", "bad"),
		  -EACCES, "another object: still forbidden");
	ASSERT_EQ(count_requests("events", false, NULL), 1, "after a 403 the client stops asking");
	/* The watch is not affected. */
	if (ctl("[{\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": " SD(
		    "sd-z") "}]"))
		WAIT_FOR(rec_count("U SeldonDeployment default/sd-z") == 1);
out:
	teardown(k8s);
}

/* --- the cluster hash seed Secret --------------------------------------------- */

struct seed_node {
	struct ferry_k8s *k8s;
	const char *name;
	void *bytes;
	size_t len;
	bool created;
	int err;
};

static void *seed_node_run(void *arg)
{
	struct seed_node *n = arg;

	n->err = ferry_k8s__shared_secret(n->k8s, "ferry-system", n->name, "seed", 32, &n->bytes,
					  &n->len, &n->created);
	return NULL;
}

/*
 * Two nodes start at once and find no Secret: one creates it, the other reads
 * the same bytes (after a 409 if they raced). A node whose create loses
 * (scripted race) uses the winner's seed; a Secret without the key and
 * missing RBAC are errors.
 */
static void test_hash_seed_secret(void)
{
	struct seed_node a = { .name = "ferry-hash-seed" }, b = { .name = "ferry-hash-seed" };
	struct seed_node c = { .name = "raced" }, d = { .name = "no-key" };
	struct ferry_k8s_opts opts = base_opts(NULL);
	char kc[PATH_MAX];
	pthread_t ta, tb;
	json_t *state = NULL;

	if (skip_reason) {
		test__skip("%s", skip_reason);
		return;
	}
	if (!ASSERT_OK(start_server("{}"), "start the fake API server"))
		return;
	path_in(kc, sizeof(kc), "kubeconfig");
	if (!ASSERT_OK(write_kubeconfig("kubeconfig", KC_TOKEN), "kubeconfig"))
		goto out;
	opts.kubeconfig = kc;
	a.k8s = ferry_k8s__new(&opts);
	b.k8s = ferry_k8s__new(&opts);
	if (!ASSERT_TRUE(a.k8s && b.k8s, "ferry_k8s__new"))
		goto out;
	pthread_create(&ta, NULL, seed_node_run, &a);
	pthread_create(&tb, NULL, seed_node_run, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	if (!ASSERT_OK(a.err, "node a") || !ASSERT_OK(b.err, "node b"))
		goto out;
	ASSERT_EQ(a.len, 32, "32 random bytes");
	ASSERT_TRUE(a.len == b.len && !memcmp(a.bytes, b.bytes, a.len), "both nodes, one seed");
	ASSERT_EQ(a.created + b.created, 1, "exactly one node created the Secret");
	state = control(NULL);
	ASSERT_EQ(json_object_size(json_object_get(state, "secrets")), 1, "one Secret");
	ASSERT_STREQ(json_string_value(json_object_get(
			     json_object_get(json_object_get(json_object_get(state, "secrets"),
							     "ferry-system/ferry-hash-seed"),
					     "metadata"),
			     "namespace")),
		     "ferry-system", "in ferry's namespace");

	/* A restart reads it back. */
	free(a.bytes);
	a.bytes = NULL;
	if (!ASSERT_OK(ferry_k8s__shared_secret(a.k8s, "ferry-system", "ferry-hash-seed", "seed",
						32, &a.bytes, &a.len, &a.created),
		       "again"))
		goto out;
	ASSERT_FALSE(a.created, "not created twice");
	ASSERT_TRUE(a.len == b.len && !memcmp(a.bytes, b.bytes, a.len), "the same after restart");

	/* The create loses to another node's (409): the winner's bytes ("winner"). */
	c.k8s = a.k8s;
	if (!ctl("[{\"op\": \"set\", \"key\": \"secret_race\", \"value\": "
		 "{\"data\": {\"seed\": \"d2lubmVy\"}}}]"))
		goto out;
	seed_node_run(&c);
	if (ASSERT_OK(c.err, "raced"))
		ASSERT_TRUE(c.len == 6 && !memcmp(c.bytes, "winner", 6) && !c.created,
			    "the winner's seed after 409");

	/* A Secret without the key is an error, not a silent new seed. */
	d.k8s = a.k8s;
	if (!ctl("[{\"op\": \"put_secret\", \"object\": {\"metadata\": {\"namespace\": "
		 "\"ferry-system\", \"name\": \"no-key\"}, \"data\": {\"other\": \"eA==\"}}}]"))
		goto out;
	seed_node_run(&d);
	ASSERT_EQ(d.err, -ENODATA, "no key 'seed'");

	if (!ctl("[{\"op\": \"set\", \"key\": \"secrets_forbidden\", \"value\": true}]"))
		goto out;
	d.name = "ferry-hash-seed";
	seed_node_run(&d);
	ASSERT_EQ(d.err, -EACCES, "RBAC refuses");
out:
	json_decref(state);
	free(a.bytes);
	free(b.bytes);
	free(c.bytes);
	free(d.bytes);
	ferry_k8s__free(a.k8s);
	ferry_k8s__free(b.k8s);
	stop_server();
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	ferry_log_level = getenv("FERRY_K8S_DEBUG") ? FERRY_LOG_DEBUG : FERRY_LOG_WARN;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rec.log = json_array();
	if (setup_env()) {
		fprintf(stderr, "test_k8s: cannot set up the test PKI in %s\n", tmpdir);
		printf("FAIL %s/setup\n", SUITE);
		cleanup();
		return 1;
	}
	if (skip_reason)
		fprintf(stderr, "test_k8s: SKIPPING every test: %s\n", skip_reason);

	RUN_TEST(SUITE, test_initial_list_paged);
	RUN_TEST(SUITE, test_watch_events_in_order);
	RUN_TEST(SUITE, test_services_list_watch);
	RUN_TEST(SUITE, test_bookmark_moves_resource_version);
	RUN_TEST(SUITE, test_gone_event_relists);
	RUN_TEST(SUITE, test_gone_http_relists);
	RUN_TEST(SUITE, test_dropped_watch_resumes);
	RUN_TEST(SUITE, test_watch_timeout_resumes);
	RUN_TEST(SUITE, test_resync_relists);
	RUN_TEST(SUITE, test_bad_token_is_fatal);
	RUN_TEST(SUITE, test_client_certificate);
	RUN_TEST(SUITE, test_in_cluster);
	RUN_TEST(SUITE, test_in_cluster_ipv6);
	RUN_TEST(SUITE, test_list_5xx_retried);
	RUN_TEST(SUITE, test_watch_5xx_retried);
	RUN_TEST(SUITE, test_kubeconfig_errors);
	RUN_TEST(SUITE, test_events_rate_limited);
	RUN_TEST(SUITE, test_events_forbidden);
	RUN_TEST(SUITE, test_hash_seed_secret);

	cleanup();
	json_decref(rec.log);
	curl_global_cleanup();
	return test__summary();
}
