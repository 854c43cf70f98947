// SPDX-License-Identifier: GPL-2.0-only
/*
 * Manifest store tests (user/config.h), unprivileged: the bad-manifest corpus
 * (each file names the error it must produce), the same deployment written
 * three ways, last-good semantics, weights, backend states, ports, IPv6.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"
#include "source/config.h"
#include "source/manifest.h"
#include "log.h"
#include "testing.h"

#define SUITE "config"

static char top[PATH_MAX / 2] = ".";

/* ----------------------------------------------------------- helpers */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool make_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/ferry-fc-XXXXXX");
	return mkdtemp(buf) != NULL;
}

static bool write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return false;
	fputs(text, f);
	return fclose(f) == 0;
}

static void remove_file(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	remove(path);
}

static char *read_text(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static void dump_errors(const struct ferry_config_store *st)
{
	char line[1600];

	for (size_t i = 0; i < ferry_config_store__nerrors(st); i++) {
		ferry_config_error__format(ferry_config_store__error(st, i), line, sizeof(line));
		fprintf(stderr, "      error: %s\n", line);
	}
}

static const struct ferry_model_service *find_service(const struct ferry_model *m,
						      const char *deployment, __u16 port)
{
	for (size_t i = 0; i < m->nservices; i++)
		if (!strcmp(m->services[i].deployment, deployment) &&
		    ntohs(m->services[i].vip.port) == port)
			return &m->services[i];
	return NULL;
}

static const struct ferry_model_predictor *find_pred(const struct ferry_model_service *s,
						     const char *name)
{
	for (size_t i = 0; s && i < s->npredictors; i++)
		if (!strcmp(s->predictors[i].name, name))
			return &s->predictors[i];
	return NULL;
}

static size_t count_state(const struct ferry_model_predictor *p, __u8 state)
{
	size_t n = 0;

	for (size_t i = 0; p && i < p->nbackends; i++)
		n += p->backends[i].state == state;
	return n;
}

static bool models_equal(const struct ferry_model *a, const struct ferry_model *b)
{
	if (!ASSERT_EQ(a->nservices, b->nservices, "nservices"))
		return false;
	for (size_t s = 0; s < a->nservices; s++) {
		const struct ferry_model_service *x = &a->services[s], *y = &b->services[s];

		if (!ASSERT_EQ(memcmp(&x->vip, &y->vip, sizeof(x->vip)), 0, "vip") ||
		    !ASSERT_STREQ(x->deployment, y->deployment, "deployment") ||
		    !ASSERT_EQ(x->flags, y->flags, "flags") ||
		    !ASSERT_EQ(x->sample_every, y->sample_every, "sample_every") ||
		    !ASSERT_EQ(x->table_size, y->table_size, "table_size") ||
		    !ASSERT_EQ(x->npredictors, y->npredictors, "npredictors"))
			return false;
		for (size_t p = 0; p < x->npredictors; p++) {
			const struct ferry_model_predictor *px = &x->predictors[p];
			const struct ferry_model_predictor *py = &y->predictors[p];

			if (!ASSERT_STREQ(px->name, py->name, "predictor name") ||
			    !ASSERT_EQ(px->weight_configured, py->weight_configured,
				       "configured") ||
			    !ASSERT_EQ(px->weight_effective, py->weight_effective, "effective") ||
			    !ASSERT_EQ(px->shadow, py->shadow, "shadow") ||
			    !ASSERT_EQ(px->nbackends, py->nbackends, "nbackends"))
				return false;
			for (size_t b = 0; b < px->nbackends; b++)
				if (!ASSERT_EQ(memcmp(&px->backends[b], &py->backends[b],
						      sizeof(px->backends[b])),
					       0, "backend"))
					return false;
		}
	}
	return true;
}

/* Loads one directory and builds; returns the load's error count, or -1 on failure. */
static int load_build(struct ferry_config_store *st, const char *dir, struct ferry_model *m)
{
	int nerr = ferry_config_store__load_dir(st, dir);

	if (nerr < 0) {
		fprintf(stderr, "    load_dir(%s): %s\n", dir, strerror(-nerr));
		return -1;
	}
	ferry_model__free(m);
	if (ferry_config_store__build(st, m)) {
		fprintf(stderr, "    build failed\n");
		return -1;
	}
	return nerr;
}

/* Writes text as the only manifest of a fresh directory, loads and builds it. */
static int load_text(struct ferry_config_store *st, char *dir, size_t dirlen, const char *text,
		     struct ferry_model *m)
{
	if (!dir[0] && !make_tmpdir(dir, dirlen))
		return -1;
	if (!write_file(dir, "test.yaml", text))
		return -1;
	return load_build(st, dir, m);
}

#define SDEP_HEAD(name, ann)                         \
	"apiVersion: machinelearning.seldon.io/v1\n" \
	"kind: SeldonDeployment\n"                   \
	"metadata:\n"                                \
	"  name: " name "\n"                         \
	"  namespace: models\n"                      \
	"  annotations:\n" ann "spec:\n"             \
	"  predictors:\n"

/* Seldon's webhook wants a graph whose unit can run: a prepackaged server and its model. */
#define GRAPH \
	"    graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: gs://m/iris}\n"

#define PRED(name, traffic)    \
	"  - name: " name "\n" \
	"    traffic: " #traffic "\n" GRAPH

#define SLICE_HEAD(name, svc, type)                 \
	"---\n"                                     \
	"apiVersion: discovery.k8s.io/v1\n"         \
	"kind: EndpointSlice\n"                     \
	"metadata:\n"                               \
	"  name: " name "\n"                        \
	"  namespace: models\n"                     \
	"  labels:\n"                               \
	"    kubernetes.io/service-name: " svc "\n" \
	"addressType: " type "\n"

#define PORTS_HTTP_GRPC     \
	"ports:\n"          \
	"- name: http\n"    \
	"  port: 9000\n"    \
	"  protocol: TCP\n" \
	"- name: grpc\n"    \
	"  port: 9500\n"    \
	"  protocol: TCP\n"

#define EP(addr, cond)   \
	"- addresses:\n" \
	"  - " addr "\n" cond

#define READY "  conditions:\n    ready: true\n"
#define UNREADY "  conditions:\n    ready: false\n"
#define TERMINATING "  conditions:\n    ready: false\n    terminating: true\n"
#define NIL_READY "  conditions: {}\n"

/*
 * Inline fixtures: one manifest fragment per line, so clang-format is kept
 * off them (it would wrap the string concatenations beyond reading).
 */
/* clang-format off */
#define VIP_IRIS "    ferry.io/vip: 198.18.100.10:8000\n"

/* Canary has no ready backend (one unready, one terminating). */
static const char canary_down[] =
	SDEP_HEAD("iris", VIP_IRIS)
	PRED("main", 90)
	PRED("canary", 10)
	SLICE_HEAD("m", "iris-main", "IPv4")
	"endpoints:\n"
	EP("198.18.1.11", READY)
	PORTS_HTTP_GRPC
	SLICE_HEAD("c", "iris-canary", "IPv4")
	"endpoints:\n"
	EP("198.18.2.21", UNREADY)
	EP("198.18.2.22", TERMINATING)
	PORTS_HTTP_GRPC;

#define THREE_PREDICTORS(c_traffic)                  \
	SDEP_HEAD("iris", VIP_IRIS)                  \
	PRED("a", 50)                                \
	PRED("b", 30)                                \
	PRED("c", c_traffic)                         \
	SLICE_HEAD("a", "iris-a", "IPv4")            \
	"endpoints:\n"                               \
	EP("198.18.1.11", READY)                     \
	PORTS_HTTP_GRPC                              \
	SLICE_HEAD("c", "iris-c", "IPv4")            \
	"endpoints:\n"                               \
	EP("198.18.3.11", READY)                     \
	PORTS_HTTP_GRPC

/* Predictor b has no slice at all. */
static const char three_predictors[] = THREE_PREDICTORS(20);
static const char traffic_101[] = THREE_PREDICTORS(21);

static const char shadow_and_zero[] =
	SDEP_HEAD("iris", VIP_IRIS)
	PRED("main", 100)
	PRED("idle", 0)
	"  - name: mirror\n"
	"    shadow: true\n"
	"    traffic: 100\n"
	GRAPH
	SLICE_HEAD("m", "iris-main", "IPv4")
	"endpoints:\n"
	EP("198.18.1.11", READY)
	PORTS_HTTP_GRPC
	SLICE_HEAD("i", "iris-idle", "IPv4")
	"endpoints:\n"
	EP("198.18.1.12", READY)
	PORTS_HTTP_GRPC
	SLICE_HEAD("s", "iris-mirror", "IPv4")
	"endpoints:\n"
	EP("198.18.1.13", READY)
	PORTS_HTTP_GRPC;

static const char backend_states[] =
	SDEP_HEAD("iris", VIP_IRIS)
	PRED("main", 100)
	SLICE_HEAD("m1", "iris-main", "IPv4")
	"endpoints:\n"
	EP("198.18.1.15", READY)
	EP("198.18.1.14", NIL_READY)
	"- addresses:\n"
	"  - 198.18.1.13\n"
	EP("198.18.1.12", UNREADY)
	EP("198.18.1.11", TERMINATING)
	PORTS_HTTP_GRPC
	/* The same pod in a second slice: one backend. */
	SLICE_HEAD("m2", "iris-main", "IPv4")
	"endpoints:\n"
	EP("198.18.1.15", READY)
	EP("198.18.1.16", READY)
	PORTS_HTTP_GRPC
	/* FQDN slices and other kinds are ignored. */
	SLICE_HEAD("m3", "iris-main", "FQDN")
	"endpoints:\n"
	EP("pod.example.org", READY)
	PORTS_HTTP_GRPC
	"---\n"
	"apiVersion: v1\n"
	"kind: ConfigMap\n"
	"metadata:\n"
	"  name: other\n"
	"data:\n"
	"  a: b\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Service\n"
	"metadata:\n"
	"  name: iris-main\n"
	"  namespace: models\n";

/* iris: annotations in metadata; wine: in spec. */
static const char affinity[] =
	SDEP_HEAD("iris", VIP_IRIS
		  "    ferry.io/affinity: client-ip\n"
		  "    ferry.io/latency-sample: \"0\"\n"
		  "    ferry.io/rebalance: \"off\"\n"
		  "    ferry.io/rebalance-window: 1m30.5s\n"
		  "    ferry.io/protocol: h2c\n")
	PRED("main", 100)
	"---\n"
	SDEP_HEAD("wine", "    x: y\n")
	PRED("main", 100)
	"  annotations:\n"
	"    ferry.io/vip: 198.18.100.20:8000\n"
	"    ferry.io/affinity: none\n"
	"    ferry.io/protocol: auto\n";

static const char ports[] =
	SDEP_HEAD("iris", "    ferry.io/vip: 198.18.100.10:8000, 198.18.100.10:5001,"
			  "198.18.100.10:9500, 198.18.100.10:53/udp\n")
	PRED("main", 100)
	SLICE_HEAD("m", "iris-main", "IPv4")
	"endpoints:\n"
	EP("198.18.1.11", READY)
	PORTS_HTTP_GRPC
	"- name: dns\n"
	"  port: 5353\n"
	"  protocol: UDP\n"
	/* A single port is used whatever its name; the service name from an annotation. */
	"---\n"
	SDEP_HEAD("solo", "    ferry.io/vip: 198.18.100.40:8000\n")
	"  - name: only\n"
	"    annotations:\n"
	"      seldon.io/svc-name: solo-svc\n"
	GRAPH
	SLICE_HEAD("s", "solo-svc", "IPv4")
	"endpoints:\n"
	EP("198.18.4.11", READY)
	"ports:\n"
	"- name: metrics\n"
	"  port: 6000\n";

static const char dual_stack[] =
	SDEP_HEAD("iris", "    ferry.io/vip: \"[2001:db8:100::10]:8000,198.18.100.10:8000\"\n")
	PRED("main", 100)
	SLICE_HEAD("m4", "iris-main", "IPv4")
	"endpoints:\n"
	EP("198.18.1.11", READY)
	PORTS_HTTP_GRPC
	SLICE_HEAD("m6", "iris-main", "IPv6")
	"endpoints:\n"
	EP("2001:db8:1::12", READY)
	EP("2001:db8:1::11", UNREADY)
	PORTS_HTTP_GRPC;

/* traffic on line 11, column 14 */
static const char quoted_traffic[] =
	SDEP_HEAD("iris", VIP_IRIS)
	"  - name: main\n"
	"    traffic: \"100\"\n"
	GRAPH;

static const char null_traffic[] =
	SDEP_HEAD("iris", VIP_IRIS)
	"  - name: main\n"
	"    traffic: ~\n"
	"    shadow: false\n"
	"    replicas: 0x2\n"
	GRAPH;

static const char quoted_bool[] =
	SDEP_HEAD("iris", VIP_IRIS)
	"  - name: main\n"
	"    shadow: \"false\"\n"
	GRAPH;
/* The deployment of test_last_good, with its two slices. */
#define IRIS(traffic_main, traffic_canary)               \
	SDEP_HEAD("iris", VIP_IRIS)                      \
	PRED("main", traffic_main)                       \
	PRED("canary", traffic_canary)                   \
	SLICE_HEAD("iris-main-a", "iris-main", "IPv4")   \
	"endpoints:\n"                                   \
	EP("198.18.1.11", READY)                         \
	PORTS_HTTP_GRPC                                  \
	SLICE_HEAD("iris-canary-a", "iris-canary", "IPv4") \
	"endpoints:\n"                                   \
	EP("198.18.2.21", READY)                         \
	PORTS_HTTP_GRPC

#define WINE(traffic, ann)                                              \
	SDEP_HEAD("wine", "    ferry.io/vip: 198.18.100.20:8000\n" ann) \
	PRED("main", traffic)
/* clang-format on */

/* ------------------------------------------------------------ corpus */

struct expectation {
	int line, column; /* 0: not checked */
	char object[320];
	char field[256];
	char message[512];
};

/* "[LINE:COL: ]OBJECT: FIELD: SUBSTRING", "-" for an empty object or field. */
static bool parse_expectation(const char *text, struct expectation *x)
{
	const char *p = text, *sep;
	int n = 0;

	memset(x, 0, sizeof(*x));
	if (sscanf(p, "%d:%d: %n", &x->line, &x->column, &n) == 2 && n > 0)
		p += n;
	else
		x->line = x->column = 0;
	sep = strstr(p, ": ");
	if (!sep)
		return false;
	snprintf(x->object, sizeof(x->object), "%.*s", (int)(sep - p), p);
	p = sep + 2;
	sep = strstr(p, ": ");
	if (!sep)
		return false;
	snprintf(x->field, sizeof(x->field), "%.*s", (int)(sep - p), p);
	snprintf(x->message, sizeof(x->message), "%s", sep + 2);
	x->message[strcspn(x->message, "\n")] = '\0';
	if (!strcmp(x->object, "-"))
		x->object[0] = '\0';
	if (!strcmp(x->field, "-"))
		x->field[0] = '\0';
	return x->message[0] != '\0';
}

static bool error_matches(const struct ferry_config_error *e, const struct expectation *x)
{
	return !strcmp(e->object, x->object) && !strcmp(e->field, x->field) &&
	       strstr(e->message, x->message) &&
	       (!x->line || (e->line == x->line && e->column == x->column));
}

static bool check_bad_file(const char *dir, const char *name)
{
	struct ferry_config_store *st = NULL;
	struct ferry_model m = {};
	char path[2 * PATH_MAX], tmp[64] = "", expect_path[2 * PATH_MAX];
	struct expectation x;
	char *text = NULL, *expect = NULL;
	bool ok = false, found = false;
	int nerr;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	text = read_text(path);
	if (!text)
		goto out;
	if (strstr(name, ".json")) {
		snprintf(expect_path, sizeof(expect_path), "%.*s.expect",
			 (int)(strlen(path) - strlen(".json")), path);
		expect = read_text(expect_path);
	} else if (!strncmp(text, "# expect: ", 10)) {
		expect = strdup(text + 10);
	}
	if (!expect || !parse_expectation(expect, &x)) {
		fprintf(stderr, "    %s: no usable expectation (# expect: or NAME.expect)\n", name);
		goto out;
	}
	if (!make_tmpdir(tmp, sizeof(tmp)) || !write_file(tmp, name, text))
		goto out;
	st = ferry_config_store__new();
	if (!st)
		goto out;
	nerr = load_build(st, tmp, &m);
	if (nerr < 0)
		goto out;
	if (getenv("FERRY_TEST_VERBOSE")) {
		fprintf(stderr, "    %s:\n", name);
		dump_errors(st);
	}
	for (size_t i = 0; i < ferry_config_store__nerrors(st) && !found; i++)
		found = error_matches(ferry_config_store__error(st, i), &x);
	if (!found) {
		fprintf(stderr, "    %s: expected [%d:%d] %s | %s | %s; got:\n", name, x.line,
			x.column, x.object, x.field, x.message);
		dump_errors(st);
		goto out;
	}
	/* The rejected deployment must not be in force (a bad slice may leave its deployment). */
	for (size_t i = 0; i < m.nservices; i++) {
		char obj[320];

		snprintf(obj, sizeof(obj), "SeldonDeployment %s", m.services[i].deployment);
		if (!strcmp(obj, x.object)) {
			fprintf(stderr, "    %s: %s rejected but in the model\n", name, obj);
			goto out;
		}
	}
	ok = true;
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(tmp);
	free(text);
	free(expect);
	return ok;
}

static void test_bad_corpus(void)
{
	char dir[PATH_MAX];
	struct dirent *de;
	size_t nfiles = 0, nbad = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tests/manifests/bad", top);
	d = opendir(dir);
	if (!ASSERT_TRUE(d != NULL, "open tests/manifests/bad"))
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (!(n > 5 && !strcmp(de->d_name + n - 5, ".yaml")) &&
		    !(n > 5 && !strcmp(de->d_name + n - 5, ".json")))
			continue;
		nfiles++;
		if (!check_bad_file(dir, de->d_name)) {
			nbad++;
			test__fail(__FILE__, __LINE__, de->d_name, "expected error not produced");
		}
	}
	closedir(d);
	ASSERT_GE(nfiles, 20, "corpus files");
	ASSERT_EQ(nbad, 0, "files without their expected error");
}

/* -------------------------------------------------------- good corpus */

static bool load_good(const char *sub, struct ferry_model *m)
{
	struct ferry_config_store *st = ferry_config_store__new();
	char dir[PATH_MAX];
	int nerr;
	bool ok;

	snprintf(dir, sizeof(dir), "%s/%s", top, sub);
	nerr = st ? load_build(st, dir, m) : -1;
	ok = ASSERT_EQ(nerr, 0, sub) && ASSERT_EQ(ferry_config_store__nerrors(st), 0, sub);
	if (!ok)
		dump_errors(st);
	ferry_config_store__free(st);
	return ok;
}

static void test_good_formats_identical(void)
{
	struct ferry_model yaml = {}, json = {}, list = {}, typed = {}, ex = {};
	const struct ferry_model_service *s;
	const struct ferry_model_predictor *main_p, *canary;
	char addr[INET_ADDRSTRLEN];

	if (!load_good("tests/manifests/good/multidoc", &yaml) ||
	    !load_good("tests/manifests/good/json", &json) ||
	    !load_good("tests/manifests/good/list", &list) ||
	    !load_good("tests/manifests/good/typed-list", &typed) ||
	    !load_good("examples/seldon", &ex))
		goto out;
	if (!ASSERT_EQ(yaml.nservices, 1, "services"))
		goto out;
	s = &yaml.services[0];
	inet_ntop(AF_INET, s->vip.addr, addr, sizeof(addr));
	ASSERT_STREQ(addr, "198.18.100.10", "vip addr");
	ASSERT_EQ(ntohs(s->vip.port), 8000, "vip port");
	ASSERT_EQ(s->vip.proto, IPPROTO_TCP, "vip proto");
	ASSERT_EQ(s->vip.family, FERRY_AF_INET, "vip family");
	ASSERT_STREQ(s->deployment, "models/iris", "deployment");
	ASSERT_EQ(s->flags, 0, "flags");
	ASSERT_EQ(s->sample_every, 1, "sample_every default");
	if (!ASSERT_EQ(s->npredictors, 2, "predictors"))
		goto out;
	main_p = &s->predictors[0];
	canary = &s->predictors[1];
	ASSERT_STREQ(main_p->name, "main", "manifest order");
	ASSERT_STREQ(canary->name, "canary", "manifest order");
	ASSERT_EQ(main_p->weight_configured, 900000, "main configured");
	ASSERT_EQ(main_p->weight_effective, 900000, "main effective");
	ASSERT_EQ(canary->weight_configured, 100000, "canary configured");
	ASSERT_EQ(canary->weight_effective, 100000, "canary effective");
	if (ASSERT_EQ(main_p->nbackends, 2, "main backends")) {
		inet_ntop(AF_INET, main_p->backends[0].addr, addr, sizeof(addr));
		ASSERT_STREQ(addr, "198.18.1.11", "sorted first");
		ASSERT_EQ(ntohs(main_p->backends[0].port), 8000, "http port");
		ASSERT_EQ(main_p->backends[1].state, FERRY_BE_ACTIVE, "ready");
	}
	ASSERT_EQ(canary->nbackends, 1, "canary backends");
	models_equal(&yaml, &json);
	models_equal(&yaml, &list);
	models_equal(&yaml, &typed);
	models_equal(&yaml, &ex);
out:
	ferry_model__free(&yaml);
	ferry_model__free(&json);
	ferry_model__free(&list);
	ferry_model__free(&typed);
	ferry_model__free(&ex);
}

/* A JSON file that starts with a UTF-8 byte order mark reads as the same file without it. */
static void test_json_bom(void)
{
	static const char *const names[] = { "iris.json", "iris-endpointslices.json" };
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model plain = {}, bom = {};
	char dir[64] = "", path[PATH_MAX], *text = NULL, *with_bom = NULL;

	if (!ASSERT_TRUE(st, "store") || !load_good("tests/manifests/good/json", &plain) ||
	    !ASSERT_TRUE(make_tmpdir(dir, sizeof(dir)), "tmpdir"))
		goto out;
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/tests/manifests/good/json/%s", top, names[i]);
		free(text);
		text = read_text(path);
		free(with_bom);
		with_bom = NULL;
		if (!ASSERT_TRUE(text && asprintf(&with_bom, "\xef\xbb\xbf%s", text) > 0, "read") ||
		    !ASSERT_TRUE(write_file(dir, names[i], with_bom), "write"))
			goto out;
	}
	if (!ASSERT_EQ(load_build(st, dir, &bom), 0, "JSON with a BOM loads")) {
		dump_errors(st);
		goto out;
	}
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no errors");
	models_equal(&plain, &bom);
out:
	free(text);
	free(with_bom);
	ferry_model__free(&plain);
	ferry_model__free(&bom);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* ---------------------------------------------------------- last good */

static void test_last_good(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {}, before = {};
	const struct ferry_model_service *s;
	char dir[64] = "";
	int nerr;

	if (!ASSERT_TRUE(st && make_tmpdir(dir, sizeof(dir)), "setup"))
		goto out;
	if (!ASSERT_TRUE(write_file(dir, "iris.yaml", IRIS(90, 10)) &&
				 write_file(dir, "wine.yaml", WINE(100, "")),
			 "write"))
		goto out;
	if (!ASSERT_EQ(load_build(st, dir, &before), 0, "good load"))
		goto out;
	ASSERT_EQ(before.nservices, 2, "two deployments");

	/* A bad version: the good one stays, the error names the file and field. */
	write_file(dir, "iris.yaml", IRIS(90, 20));
	write_file(dir, "wine.yaml", WINE(0, "    ferry.io/latency-sample: \"7\"\n"));
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 1, "one error");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "recorded")) {
		const struct ferry_config_error *e = ferry_config_store__error(st, 0);

		ASSERT_STRSTR(e->file, "iris.yaml", "file");
		ASSERT_STREQ(e->field, "spec.predictors[1].traffic", "field");
		ASSERT_STRSTR(e->message, "sums to 110", "message");
		ASSERT_GE(e->line, 1, "line");
	}
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris still in force"))
		ASSERT_EQ(find_pred(s, "canary")->weight_configured, 100000, "old weight");
	ASSERT_TRUE(find_service(&m, "models/wine", 8000) != NULL, "wine applied");

	/* A file that does not parse: its objects stay as they were. */
	write_file(dir, "iris.yaml", "apiVersion: [\n");
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 1, "parse error");
	ASSERT_TRUE(find_service(&m, "models/iris", 8000) != NULL, "iris kept on parse error");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "recorded")) {
		ASSERT_EQ(ferry_config_store__error(st, 0)->line, 2, "parser line");
		ASSERT_STREQ(ferry_config_store__error(st, 0)->object, "", "no object");
	}

	/* Fixed: the new version is in force. */
	write_file(dir, "iris.yaml", IRIS(80, 20));
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 0, "fixed");
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris"))
		ASSERT_EQ(find_pred(s, "canary")->weight_configured, 200000, "new weight");
	s = find_service(&m, "models/wine", 8000);
	if (ASSERT_TRUE(s != NULL, "wine"))
		ASSERT_EQ(s->sample_every, 7, "wine's change applied");

	/*
	 * Truncated to nothing ('kubectl get -o yaml > f' truncates first): a
	 * write in progress, not a deletion; nothing changes, no error.
	 */
	write_file(dir, "iris.yaml", "");
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 0, "empty file: no error");
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris kept while its file is empty"))
		ASSERT_EQ(find_pred(s, "canary")->weight_configured, 200000, "weight kept");
	write_file(dir, "iris.yaml", "# being written\n");
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 0, "comment-only file: no error");
	ASSERT_TRUE(find_service(&m, "models/iris", 8000) != NULL, "iris kept (comment only)");

	/* A file that disappears takes its objects with it. */
	remove_file(dir, "iris.yaml");
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 0, "removed");
	ASSERT_EQ(m.nservices, 1, "only wine");
	ASSERT_TRUE(find_service(&m, "models/iris", 8000) == NULL, "iris gone");
out:
	ferry_model__free(&m);
	ferry_model__free(&before);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* clang-format off */
#define IRIS_SDEP(traffic_main, traffic_canary) \
	SDEP_HEAD("iris", VIP_IRIS)             \
	PRED("main", traffic_main)              \
	PRED("canary", traffic_canary)
#define IRIS_MAIN_SLICE(eps) \
	SLICE_HEAD("iris-main-a", "iris-main", "IPv4") "endpoints:\n" eps PORTS_HTTP_GRPC
#define IRIS_CANARY_SLICE \
	SLICE_HEAD("iris-canary-a", "iris-canary", "IPv4") "endpoints:\n" EP("198.18.2.21", READY) PORTS_HTTP_GRPC
#define WINE_SLICE \
	SLICE_HEAD("wine-main-a", "wine-main", "IPv4") "endpoints:\n" EP("198.18.3.31", READY) PORTS_HTTP_GRPC
/* clang-format on */

/*
 * A FIFO named like a manifest is no manifest: skipped with a warning on the
 * first load, a reload and an edit, never opened (an open would wait for a
 * writer for ever). The load runs in a child so that a hang fails the test.
 */
static void test_fifo_skipped(void)
{
	char dir[64] = "", path[PATH_MAX];
	int status = -1;
	pid_t pid;

	if (!ASSERT_TRUE(make_tmpdir(dir, sizeof(dir)), "tmpdir") ||
	    !ASSERT_TRUE(write_file(dir, "wine.yaml", WINE(100, "") WINE_SLICE), "write"))
		goto out;
	snprintf(path, sizeof(path), "%s/pipe.yaml", dir);
	if (!ASSERT_EQ(mkfifo(path, 0600), 0, "mkfifo"))
		goto out;
	pid = fork();
	if (!ASSERT_GE(pid, 0, "fork"))
		goto out;
	if (!pid) {
		struct ferry_config_store *st = ferry_config_store__new();
		struct ferry_model m = {};
		bool ok;

		ok = st && load_build(st, dir, &m) == 0 && m.nservices == 1 &&
		     load_build(st, dir, &m) == 0 && m.nservices == 1 &&
		     ferry_config_store__load_files(st, dir, (const char *[]){ "pipe.yaml" }, 1) ==
			     0 &&
		     !ferry_config_store__build(st, &m) && m.nservices == 1 &&
		     !ferry_config_store__nerrors(st);
		_exit(ok ? 0 : 1);
	}
	for (int i = 0; i < 100 && !waitpid(pid, &status, WNOHANG); i++)
		usleep(100 * 1000);
	if (!ASSERT_TRUE(WIFEXITED(status) || WIFSIGNALED(status), "load returns (no hang)")) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		goto out;
	}
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "the FIFO skipped, the other file loaded, no error");
out:
	rm_rf(dir);
}

/* The error a load must give for an unreadable iris.yaml, and the deployment kept. */
static void check_unreadable(struct ferry_config_store *st, const struct ferry_model *m, int nerr,
			     const char *what, const char *why)
{
	const struct ferry_config_error *e;

	ASSERT_EQ(nerr, 1, what);
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, what)) {
		e = ferry_config_store__error(st, 0);
		ASSERT_STRSTR(e->file, "iris.yaml", "the error names the file");
		ASSERT_STRSTR(e->message, "cannot read", "message");
		ASSERT_STRSTR(e->message, why, "the errno's text");
	}
	ASSERT_TRUE(find_service(m, "models/iris", 8000) != NULL, "last good version in force");
	ASSERT_TRUE(find_service(m, "models/wine", 8000) != NULL, "other file untouched");
}

/*
 * A manifest that is there but cannot be read (a link that loops or points
 * nowhere) is an error that keeps its objects, on a full load and on an
 * edit; only the name's removal removes them.
 */
static void test_unreadable_keeps_last_good(void)
{
	static const char *const iris[] = { "iris.yaml" };
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {};
	char dir[64] = "", path[PATH_MAX];
	int nerr;

	if (!ASSERT_TRUE(st && make_tmpdir(dir, sizeof(dir)), "setup") ||
	    !ASSERT_TRUE(write_file(dir, "iris.yaml",
				    IRIS_SDEP(90, 10) IRIS_MAIN_SLICE(EP("198.18.1.11", READY))
					    IRIS_CANARY_SLICE) &&
				 write_file(dir, "wine.yaml", WINE(100, "") WINE_SLICE),
			 "write") ||
	    !ASSERT_EQ(load_build(st, dir, &m), 0, "good load") ||
	    !ASSERT_EQ(m.nservices, 2, "two deployments"))
		goto out;
	snprintf(path, sizeof(path), "%s/iris.yaml", dir);

	/* A link to itself: ELOOP. */
	remove(path);
	if (!ASSERT_EQ(symlink("iris.yaml", path), 0, "symlink"))
		goto out;
	nerr = load_build(st, dir, &m);
	check_unreadable(st, &m, nerr, "loop, full load", "symbolic links");
	nerr = ferry_config_store__load_files(st, dir, (const char *const *)iris, 1);
	ferry_model__free(&m);
	if (nerr >= 0 && !ferry_config_store__build(st, &m))
		check_unreadable(st, &m, nerr, "loop, edit", "symbolic links");
	else
		ASSERT_GE(nerr, 0, "loop, edit");

	/* A dangling link: ENOENT through the link, but the name is there. */
	remove(path);
	if (!ASSERT_EQ(symlink("gone.yaml", path), 0, "symlink"))
		goto out;
	nerr = ferry_config_store__load_files(st, dir, (const char *const *)iris, 1);
	ferry_model__free(&m);
	if (nerr >= 0 && !ferry_config_store__build(st, &m))
		check_unreadable(st, &m, nerr, "dangling, edit", "No such file");
	else
		ASSERT_GE(nerr, 0, "dangling, edit");
	nerr = load_build(st, dir, &m);
	check_unreadable(st, &m, nerr, "dangling, full load", "No such file");

	/* Gone: now its objects go, without an error. */
	remove(path);
	ASSERT_EQ(load_build(st, dir, &m), 0, "removed");
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no error");
	ASSERT_TRUE(!find_service(&m, "models/iris", 8000), "removed with its file");
	ASSERT_TRUE(find_service(&m, "models/wine", 8000) != NULL, "other file untouched");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/*
 * One edit through the inotify path (__load_files, __build_update) checked
 * against a second store that reads the whole directory and builds it all
 * (what ferryd did before): the same model, the same errors. want_partial:
 * the edit must take the incremental path (1), must not (0), or either (-1).
 */
static bool edit_matches(struct ferry_config_store *st, struct ferry_model *m,
			 struct ferry_config_store *full, struct ferry_model *fm, const char *dir,
			 const char *name, int want_partial, const char *what)
{
	const char *names[] = { name };
	bool partial = true, ok = true;
	int nerr, nfull, err;

	nerr = ferry_config_store__load_files(st, dir, names, 1);
	if (nerr == -EAGAIN) {
		partial = false;
		nerr = ferry_config_store__load_dir(st, dir);
	}
	if (!ASSERT_GE(nerr, 0, what))
		return false;
	err = ferry_config_store__build_update(st, m);
	if (err == -EAGAIN) {
		partial = false;
		ferry_model__free(m);
		err = ferry_config_store__build(st, m);
	}
	if (!ASSERT_OK(err, what))
		return false;
	nfull = load_build(full, dir, fm);
	if (want_partial >= 0 && !ASSERT_EQ(partial, (bool)want_partial, what))
		ok = false;
	if (!ASSERT_EQ(nerr, nfull, what) ||
	    !ASSERT_EQ(ferry_config_store__nerrors(st), ferry_config_store__nerrors(full), what))
		return false;
	for (size_t i = 0; i < ferry_config_store__nerrors(st); i++) {
		const struct ferry_config_error *a = ferry_config_store__error(st, i);
		const struct ferry_config_error *b = ferry_config_store__error(full, i);

		if (!ASSERT_STREQ(a->file, b->file, what) ||
		    !ASSERT_STREQ(a->message, b->message, what) ||
		    !ASSERT_EQ(a->line, b->line, what))
			return false;
	}
	if (!models_equal(m, fm)) {
		fprintf(stderr, "    %s: models differ\n", what);
		return false;
	}
	return ok;
}

/* The inotify path: one file read, the model updated in place, the same result as a full load. */
static void test_incremental_edits(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_config_store *full = ferry_config_store__new();
	struct ferry_model m = {}, fm = {};
	const char *names[] = { "..data" };
	const struct ferry_model_service *s;
	char dir[64] = "";

	if (!ASSERT_TRUE(st && full && make_tmpdir(dir, sizeof(dir)), "setup"))
		goto out;
	if (!ASSERT_TRUE(write_file(dir, "iris.yaml", IRIS_SDEP(90, 10)) &&
				 write_file(dir, "iris-main.yaml",
					    IRIS_MAIN_SLICE(EP("198.18.1.11", READY))) &&
				 write_file(dir, "iris-canary.yaml", IRIS_CANARY_SLICE) &&
				 write_file(dir, "wine.yaml", WINE(100, "")) &&
				 write_file(dir, "wine-main.yaml", WINE_SLICE),
			 "write"))
		goto out;
	/* Nothing loaded yet: only a whole-directory load knows the rest. */
	ASSERT_EQ(ferry_config_store__load_files(st, dir, (const char *[]){ "iris.yaml" }, 1),
		  -EAGAIN, "first load is whole");
	if (!ASSERT_EQ(load_build(st, dir, &m), 0, "first load") ||
	    !ASSERT_EQ(m.nservices, 2, "two deployments"))
		goto out;

	write_file(dir, "iris.yaml", IRIS_SDEP(80, 20));
	if (!edit_matches(st, &m, full, &fm, dir, "iris.yaml", 1, "weight edit"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris"))
		ASSERT_EQ(find_pred(s, "canary")->weight_configured, 200000, "new weight");

	/* An EndpointSlice in another file than its deployment: the deployment follows it. */
	write_file(dir, "iris-main.yaml",
		   IRIS_MAIN_SLICE(EP("198.18.1.11", READY) EP("198.18.1.12", READY)));
	if (!edit_matches(st, &m, full, &fm, dir, "iris-main.yaml", 1, "slice edit"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris"))
		ASSERT_EQ(find_pred(s, "main")->nbackends, 2, "backend added");

	/* Deleted, then renamed in under another name. */
	remove_file(dir, "iris-canary.yaml");
	if (!edit_matches(st, &m, full, &fm, dir, "iris-canary.yaml", 1, "slice deleted"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris"))
		ASSERT_EQ(find_pred(s, "canary")->nbackends, 0, "canary has no backend");
	write_file(dir, "iris-canary-2.yaml", IRIS_CANARY_SLICE);
	if (!edit_matches(st, &m, full, &fm, dir, "iris-canary-2.yaml", 1, "slice renamed in"))
		goto out;

	/* A bad version: the last good one stays, the error names the file; then fixed. */
	write_file(dir, "iris.yaml", IRIS_SDEP(90, 20));
	if (!edit_matches(st, &m, full, &fm, dir, "iris.yaml", 1, "bad edit"))
		goto out;
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "one error"))
		ASSERT_STRSTR(ferry_config_store__error(st, 0)->file, "iris.yaml", "error's file");
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris kept"))
		ASSERT_EQ(find_pred(s, "canary")->weight_configured, 200000, "last good weight");
	/* Another file's edit keeps iris.yaml's error. */
	write_file(dir, "wine.yaml", WINE(100, "    ferry.io/latency-sample: \"7\"\n"));
	if (!edit_matches(st, &m, full, &fm, dir, "wine.yaml", 1, "edit beside an error"))
		goto out;
	write_file(dir, "iris.yaml", "apiVersion: [\n");
	if (!edit_matches(st, &m, full, &fm, dir, "iris.yaml", 1, "parse error"))
		goto out;
	write_file(dir, "iris.yaml", IRIS_SDEP(70, 30));
	if (!edit_matches(st, &m, full, &fm, dir, "iris.yaml", 1, "fixed"))
		goto out;

	/* A VIP another deployment holds: the full build judges (and rejects the newcomer). */
	write_file(dir, "rose.yaml", SDEP_HEAD("rose", VIP_IRIS) PRED("main", 100));
	if (!edit_matches(st, &m, full, &fm, dir, "rose.yaml", 0, "VIP clash"))
		goto out;
	remove_file(dir, "rose.yaml");
	if (!edit_matches(st, &m, full, &fm, dir, "rose.yaml", -1, "clash removed"))
		goto out;

	/* An object defined in two files: which one wins depends on all names. */
	write_file(dir, "a-dup.yaml", WINE(100, ""));
	if (!edit_matches(st, &m, full, &fm, dir, "a-dup.yaml", 0, "defined twice"))
		goto out;
	remove_file(dir, "a-dup.yaml");
	if (!edit_matches(st, &m, full, &fm, dir, "a-dup.yaml", 0, "duplicate removed"))
		goto out;
	if (!edit_matches(st, &m, full, &fm, dir, "wine.yaml", 1, "incremental again"))
		goto out;

	/* Deployment deleted: its service leaves the model. */
	remove_file(dir, "wine.yaml");
	if (!edit_matches(st, &m, full, &fm, dir, "wine.yaml", 1, "deployment deleted"))
		goto out;
	ASSERT_TRUE(find_service(&m, "models/wine", 8000) == NULL, "wine gone");

	/* ConfigMap volumes swap ..data: every file may have changed. */
	ASSERT_EQ(ferry_config_store__load_files(st, dir, names, 1), -EAGAIN, "..data");

	/* An object from the API could clash with any file's: whole loads until it is gone. */
	{
		json_t *api = json_loads(
			"{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
			"\"metadata\":{\"name\":\"api-1\",\"namespace\":\"models\","
			"\"labels\":{\"kubernetes.io/service-name\":\"other\"}},"
			"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"198.18.9.9\"]}],"
			"\"ports\":[{\"name\":\"http\",\"port\":8000,\"protocol\":\"TCP\"}]}",
			0, NULL);

		if (ASSERT_TRUE(api, "API object") &&
		    ASSERT_OK(ferry_config_store__put(st, api, "kubernetes"), "put")) {
			ASSERT_EQ(ferry_config_store__load_files(
					  st, dir, (const char *[]){ "iris.yaml" }, 1),
				  -EAGAIN, "API object in the store");
			ASSERT_OK(ferry_config_store__delete(st, "EndpointSlice", "models",
							     "api-1"),
				  "delete");
			ASSERT_GE(ferry_config_store__load_files(
					  st, dir, (const char *[]){ "iris.yaml" }, 1),
				  0, "none left: the edit path again");
		}
		json_decref(api);
	}
out:
	ferry_model__free(&m);
	ferry_model__free(&fm);
	ferry_config_store__free(st);
	ferry_config_store__free(full);
	rm_rf(dir);
}

/*
 * A first load of many files stats, parses and validates them on two threads
 * (parse_ahead); what comes out is in name order all the same: the errors
 * (an object defined twice, found on the store's thread, between the
 * validation errors of the objects around it), and the model.
 */
#define D40                                                                              \
	SDEP_HEAD("e1", "    ferry.io/vip: 198.18.100.201:8000\n")                       \
	PRED("main", 90)                                                                 \
	"---\n"                                                                          \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                         \
	"metadata:\n  name: d00-main-a\n  namespace: models\n"                           \
	"  labels:\n    kubernetes.io/service-name: d00-main\n"                          \
	"addressType: IPv4\nendpoints:\n- addresses: [\"198.18.7.1\"]\n---\n" SDEP_HEAD( \
		"e3", "    ferry.io/vip: 198.18.100.203:8000\n") PRED("main", 80)

#define D41                                                             \
	SDEP_HEAD("d41", "    ferry.io/vip: \"[2001:db8::41]:8000\"\n") \
	PRED("main", 100)                                               \
	"---\n"                                                         \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"        \
	"metadata:\n  name: d41-main-a\n  namespace: models\n"          \
	"  labels:\n    kubernetes.io/service-name: d41-main\n"         \
	"addressType: IPv4\nendpoints:\n- addresses: [\"198.18.7.41\"]\n"

static void test_many_files(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {};
	char dir[64] = "", name[64], text[2048];
	unsigned long reads;
	int nerr;

	if (!ASSERT_TRUE(st && make_tmpdir(dir, sizeof(dir)), "setup"))
		goto out;
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "d%02d.yaml", i);
		snprintf(text, sizeof(text),
			 "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\n"
			 "metadata:\n  name: d%02d\n  namespace: models\n  annotations:\n"
			 "    ferry.io/vip: 198.18.100.%d:8000\nspec:\n  predictors:\n"
			 "  - name: main\n    traffic: %d\n" GRAPH,
			 i, i + 1, i == 7 ? 90 : 100);
		if (i == 23)
			snprintf(text, sizeof(text), "apiVersion: [\n");
		if (!ASSERT_TRUE(write_file(dir, name, text), "write deployment"))
			goto out;
		snprintf(name, sizeof(name), "d%02d-main.yaml", i);
		snprintf(text, sizeof(text),
			 "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
			 "  name: d%02d-main-a\n  namespace: models\n  labels:\n"
			 "    kubernetes.io/service-name: d%02d-main\naddressType: IPv4\n"
			 "endpoints:\n- addresses: [\"198.18.7.%d\"]\nports:\n- name: http\n"
			 "  port: 9000\n  protocol: TCP\n",
			 i, i, i + 1);
		if (!ASSERT_TRUE(write_file(dir, name, text), "write slice"))
			goto out;
	}
	/* Three objects: invalid, defined before (d00-main.yaml), invalid. */
	if (!ASSERT_TRUE(write_file(dir, "d40.yaml", D40), "write d40"))
		goto out;
	/* Valid alone, refused by the build: an IPv6 VIP over IPv4 endpoints (d00's). */
	if (!ASSERT_TRUE(write_file(dir, "d41.yaml", D41), "write d41"))
		goto out;
	reads = ferry_manifest__reads_again();
	nerr = load_build(st, dir, &m);
	ASSERT_EQ(nerr, 5, "five errors loading");
	/*
	 * A validated file's trees are shed; the build reads a file again only
	 * for an error about it (d41), not each of the 38 good deployments
	 * (it did, to find where their VIP annotation was: 38 reads).
	 */
	ASSERT_EQ(ferry_manifest__reads_again() - reads, 1, "files read again");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 6, "and one building")) {
		ASSERT_STRSTR(ferry_config_store__error(st, 0)->file, "d07.yaml", "first by name");
		ASSERT_STRSTR(ferry_config_store__error(st, 1)->file, "d23.yaml", "second by name");
		ASSERT_EQ(ferry_config_store__error(st, 1)->line, 2, "parser line");
		ASSERT_STRSTR(ferry_config_store__error(st, 2)->object, "models/e1", "d40: e1");
		ASSERT_STRSTR(ferry_config_store__error(st, 3)->message, "defined again",
			      "d40: then the object defined twice");
		ASSERT_STRSTR(ferry_config_store__error(st, 3)->object, "models/d00-main-a",
			      "d40: named");
		ASSERT_STRSTR(ferry_config_store__error(st, 4)->object, "models/e3", "d40: e3");
		ASSERT_STRSTR(ferry_config_store__error(st, 5)->message, "IPv4 only", "d41");
		ASSERT_EQ(ferry_config_store__error(st, 5)->line, 7, "d41: the annotation's line");
	}
	ASSERT_EQ(m.nservices, 38, "the good deployments");
	if (ASSERT_TRUE(find_service(&m, "models/d39", 8000) != NULL, "the last one"))
		ASSERT_EQ(find_service(&m, "models/d39", 8000)->predictors[0].nbackends, 1,
			  "with its slice");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* Duplicate VIP: the deployment in force keeps it even when the newcomer sorts first. */
static void test_duplicate_vip_keeps_owner(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {};
	char dir[64] = "";

	if (!ASSERT_TRUE(st && make_tmpdir(dir, sizeof(dir)), "setup"))
		goto out;
	write_file(dir, "z.yaml",
		   SDEP_HEAD("zeta", "    ferry.io/vip: 198.18.100.30:8000\n") PRED("main", 100));
	if (!ASSERT_EQ(load_build(st, dir, &m), 0, "zeta alone"))
		goto out;
	write_file(dir, "a.yaml",
		   SDEP_HEAD("alpha", "    ferry.io/vip: 198.18.100.30:8000\n") PRED("main", 100));
	load_build(st, dir, &m);
	ASSERT_TRUE(find_service(&m, "models/zeta", 8000) != NULL, "zeta keeps the VIP");
	ASSERT_TRUE(find_service(&m, "models/alpha", 8000) == NULL, "alpha rejected");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "one error")) {
		const struct ferry_config_error *e = ferry_config_store__error(st, 0);

		ASSERT_STREQ(e->object, "SeldonDeployment models/alpha", "object");
		ASSERT_STRSTR(e->message, "already used by SeldonDeployment models/zeta",
			      "message");
		ASSERT_EQ(e->line, 7, "line of the annotation");
	}

	/* zeta moves onto a VIP that beta holds: rejected, zeta's version in force stays. */
	remove_file(dir, "a.yaml");
	write_file(dir, "b.yaml",
		   SDEP_HEAD("beta", "    ferry.io/vip: 198.18.100.50:8000\n") PRED("main", 100));
	if (!ASSERT_EQ(load_build(st, dir, &m), 0, "beta"))
		goto out;
	write_file(dir, "z.yaml",
		   SDEP_HEAD("zeta", "    ferry.io/vip: 198.18.100.50:8000\n") PRED("main", 100));
	load_build(st, dir, &m);
	ASSERT_EQ(ferry_config_store__nerrors(st), 1, "zeta rejected");
	ASSERT_TRUE(find_service(&m, "models/beta", 8000) != NULL, "beta keeps its VIP");
	if (ASSERT_EQ(m.nservices, 2, "both in force")) {
		const struct ferry_model_service *s = find_service(&m, "models/zeta", 8000);
		char addr[INET_ADDRSTRLEN];

		if (ASSERT_TRUE(s != NULL, "zeta")) {
			inet_ntop(AF_INET, s->vip.addr, addr, sizeof(addr));
			ASSERT_STREQ(addr, "198.18.100.30", "zeta's last good VIP");
		}
	}
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/*
 * A restart that adopts a running data plane: the deployment holding a VIP
 * there (its pinned ferry_svc_meta, given to adopt_owner) keeps it against a
 * claimant that sorts first. Without it the first build of the new ferryd
 * gave the VIP to alpha and reset zeta's connections.
 */
static void test_adopted_vip_owner(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {};
	struct ferry_vip vip;
	char dir[64] = "", why[128];

	if (!ASSERT_TRUE(st && make_tmpdir(dir, sizeof(dir)), "setup") ||
	    !ASSERT_EQ(ferry_vip__parse("198.18.100.30:8000", &vip, why, sizeof(why)), 0, "vip"))
		goto out;
	write_file(dir, "a.yaml",
		   SDEP_HEAD("alpha", "    ferry.io/vip: 198.18.100.30:8000\n") PRED("main", 100));
	write_file(dir, "z.yaml",
		   SDEP_HEAD("zeta", "    ferry.io/vip: 198.18.100.30:8000\n") PRED("main", 100));
	ASSERT_EQ(ferry_config_store__adopt_owner(st, &vip, "models/zeta"), 0, "adopt");
	ASSERT_EQ(ferry_config_store__adopt_owner(st, &vip, "models/alpha"), 0,
		  "a second claim on an adopted VIP is ignored");
	load_build(st, dir, &m);
	ASSERT_TRUE(find_service(&m, "models/zeta", 8000) != NULL, "zeta keeps the VIP");
	ASSERT_TRUE(find_service(&m, "models/alpha", 8000) == NULL, "alpha rejected");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "one error"))
		ASSERT_STRSTR(ferry_config_store__error(st, 0)->message,
			      "already used by SeldonDeployment models/zeta", "alpha's error");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* ------------------------------------------------------------ weights */

static void test_redistribution(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	char dir[64] = "";

	/* Canary has no ready backend: main takes 100%. */
	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir), canary_down, &m), 0, "load"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (!ASSERT_TRUE(s != NULL, "service"))
		goto out;
	ASSERT_EQ(find_pred(s, "main")->weight_effective, 1000000, "main takes all");
	ASSERT_EQ(find_pred(s, "canary")->weight_effective, 0, "canary none");
	ASSERT_EQ(find_pred(s, "canary")->weight_configured, 100000, "canary configured kept");

	/* Three predictors 50/30/20, the 30 one down: 50 and 20 share in proportion. */
	if (!ASSERT_EQ(load_text(st, dir, sizeof(dir), traffic_101, &m), 1, "sum 101 rejected"))
		goto out;
	if (!ASSERT_EQ(load_text(st, dir, sizeof(dir), three_predictors, &m), 0, "three"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (!ASSERT_TRUE(s != NULL, "service"))
		goto out;
	/* 50/70 and 20/70 of a million: 714285.7 and 285714.3, rounding fixed on the largest. */
	ASSERT_EQ(find_pred(s, "a")->weight_effective, 714286, "a");
	ASSERT_EQ(find_pred(s, "b")->weight_effective, 0, "b");
	ASSERT_EQ(find_pred(s, "c")->weight_effective, 285714, "c");
	ASSERT_EQ(find_pred(s, "a")->weight_effective + find_pred(s, "c")->weight_effective,
		  FERRY_WEIGHT_ONE, "sum");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

static void test_shadow_and_explicit_zero(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	char dir[64] = "";

	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir), shadow_and_zero, &m), 0, "load"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (!ASSERT_TRUE(s != NULL, "service") || !ASSERT_EQ(s->npredictors, 3, "kept"))
		goto out;
	ASSERT_EQ(find_pred(s, "main")->weight_effective, 1000000, "main");
	ASSERT_EQ(find_pred(s, "idle")->weight_configured, 0, "explicit 0");
	ASSERT_EQ(find_pred(s, "idle")->weight_effective, 0, "explicit 0 stays 0");
	ASSERT_TRUE(find_pred(s, "mirror")->shadow, "shadow flag");
	ASSERT_EQ(find_pred(s, "mirror")->weight_configured, 0, "shadow weight");
	ASSERT_EQ(find_pred(s, "mirror")->weight_effective, 0, "shadow never routed");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* ------------------------------------------------------ backend states */

static void test_backend_states(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_predictor *p;
	struct ferry_model m = {};
	char dir[64] = "";

	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir), backend_states, &m), 0, "load") ||
	    !ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no errors") ||
	    !ASSERT_EQ(m.nservices, 1, "service"))
		goto out;
	p = find_pred(&m.services[0], "main");
	if (!ASSERT_TRUE(p != NULL, "main") || !ASSERT_EQ(p->nbackends, 6, "deduplicated"))
		goto out;
	/* Sorted by address: .11 terminating, .12 unready, .13/.14 nil ready, .15, .16. */
	ASSERT_EQ(p->backends[0].state, FERRY_BE_DRAINING, "terminating -> draining");
	ASSERT_EQ(p->backends[1].state, FERRY_BE_UNREADY, "ready false -> unready");
	ASSERT_EQ(p->backends[2].state, FERRY_BE_ACTIVE, "no conditions -> active");
	ASSERT_EQ(p->backends[3].state, FERRY_BE_ACTIVE, "nil ready -> active");
	ASSERT_EQ(count_state(p, FERRY_BE_ACTIVE), 4, "active");
	for (size_t i = 1; i < p->nbackends; i++)
		ASSERT_TRUE(memcmp(p->backends[i - 1].addr, p->backends[i].addr, 4) < 0, "sorted");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* -------------------------------------------------- annotations, ports */

static void test_affinity_and_sampling(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	char dir[64] = "";

	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir), affinity, &m), 0, "load"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "iris")) {
		ASSERT_EQ(s->flags, FERRY_SVC_F_HASH_SRC_ADDR | FERRY_SVC_F_PROTO_H2C,
			  "client-ip, h2c");
		ASSERT_EQ(s->sample_every, 0, "sampling off");
		ASSERT_TRUE(s->rebalance_off, "rebalance off");
		ASSERT_EQ(s->rebalance_window_ns, 90500000000ULL, "window 1m30.5s");
	}
	s = find_service(&m, "models/wine", 8000);
	if (ASSERT_TRUE(s != NULL, "wine (VIP from spec.annotations)")) {
		ASSERT_EQ(s->flags, 0, "none, auto");
		ASSERT_EQ(s->sample_every, 1, "default");
		ASSERT_FALSE(s->rebalance_off, "rebalance idle by default");
		ASSERT_EQ(s->rebalance_window_ns, 30000000000ULL, "window 30s by default");
	}
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* ferry.io/canary-*: parsed into the model; a bad value names the field and keeps the good version. */
#define CANARY_SDEP(extra)                                                          \
	SDEP_HEAD("iris", VIP_IRIS "    ferry.io/canary: auto\n"                    \
				   "    ferry.io/canary-steps: \"10, 25,50,100\"\n" \
				   "    ferry.io/canary-interval: 2m\n" extra)      \
	PRED("main", 90) PRED("canary", 10)

static void test_canary_annotations(void)
{
	static const struct {
		const char *ann, *field, *message;
	} bad[] = {
		{ "    ferry.io/canary-interval: 2h\n", "ferry.io/canary-interval", "1s to 1h" },
		{ "    ferry.io/canary-interval: 0s\n", "ferry.io/canary-interval", "1s to 1h" },
		{ "    ferry.io/canary-max-error-rate: \"1.5\"\n", "ferry.io/canary-max-error-rate",
		  "out of range" },
		{ "    ferry.io/canary-failures: \"0\"\n", "ferry.io/canary-failures", "1 to 100" },
		{ "    ferry.io/canary-predictor: v9\n", "ferry.io/canary-predictor",
		  "no predictor \"v9\"" },
		{ "    ferry.io/canary-predictor: main\n    ferry.io/baseline-predictor: main\n",
		  "ferry.io/baseline-predictor", "both the canary and the baseline" },
		{ "    ferry.io/canary-significance: \"0\"\n", "ferry.io/canary-significance",
		  "out of range" },
		{ "    ferry.io/canary-min-effect: \"0.9\"\n", "ferry.io/canary-min-effect",
		  "out of range" },
	};
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	char dir[64] = "";
	__u64 fp;

	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir),
				 CANARY_SDEP("    ferry.io/canary-min-requests: \"50\"\n"), &m),
		       0, "load"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (!ASSERT_TRUE(s != NULL, "iris"))
		goto out;
	ASSERT_TRUE(s->canary.enabled, "enabled");
	ASSERT_STREQ(s->canary.canary, "canary", "canary: smallest share");
	ASSERT_STREQ(s->canary.baseline, "main", "baseline: largest");
	ASSERT_EQ(s->canary.nsteps, 4, "steps");
	ASSERT_EQ(s->canary.steps[1], 250000, "25%");
	ASSERT_EQ(s->canary.interval_s, 120, "2m");
	ASSERT_EQ(s->canary.min_requests, 50, "min-requests");
	ASSERT_EQ(s->canary.failures, 2, "default failures");
	fp = s->canary.fingerprint;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[4096];
		const struct ferry_config_error *e;

		/* The same deployment with one bad annotation more. */
		snprintf(text, sizeof(text),
			 "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\n"
			 "metadata:\n  name: iris\n  namespace: models\n  annotations:\n" VIP_IRIS
			 "    ferry.io/canary: auto\n%sspec:\n  predictors:\n" PRED("main", 90)
				 PRED("canary", 10),
			 bad[i].ann);
		ferry_model__free(&m);
		if (!ASSERT_EQ(load_text(st, dir, sizeof(dir), text, &m), 1, bad[i].field))
			continue;
		e = ferry_config_store__error(st, 0);
		ASSERT_STRSTR(e->field, bad[i].field, "field named");
		ASSERT_STRSTR(e->message, bad[i].message, bad[i].field);
		s = find_service(&m, "models/iris", 8000);
		if (ASSERT_TRUE(s != NULL, "the good version stays"))
			ASSERT_EQ(s->canary.interval_s, 120, "its canary settings too");
	}
	/* New traffic: a new fingerprint (a new rollout). */
	ferry_model__free(&m);
	if (ASSERT_EQ(load_text(st, dir, sizeof(dir),
				SDEP_HEAD("iris", VIP_IRIS "    ferry.io/canary: auto\n")
					PRED("main", 80) PRED("canary", 20),
				&m),
		      0, "new traffic")) {
		s = find_service(&m, "models/iris", 8000);
		if (ASSERT_TRUE(s != NULL, "iris"))
			ASSERT_NEQ(s->canary.fingerprint, fp, "fingerprint changed");
	}
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

static void test_port_selection(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_predictor *p;
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	char dir[64] = "";

	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir), ports, &m), 0, "load"))
		goto out;
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no errors");
	s = find_service(&m, "models/iris", 8000);
	p = find_pred(s, "main");
	if (ASSERT_TRUE(p && p->nbackends == 1, "http"))
		ASSERT_EQ(ntohs(p->backends[0].port), 9000, "VIP 8000 -> port named http");
	p = find_pred(find_service(&m, "models/iris", 5001), "main");
	if (ASSERT_TRUE(p && p->nbackends == 1, "grpc"))
		ASSERT_EQ(ntohs(p->backends[0].port), 9500, "VIP 5001 -> port named grpc");
	p = find_pred(find_service(&m, "models/iris", 9500), "main");
	if (ASSERT_TRUE(p && p->nbackends == 1, "by number"))
		ASSERT_EQ(ntohs(p->backends[0].port), 9500, "VIP 9500 -> port 9500");
	s = find_service(&m, "models/iris", 53);
	if (ASSERT_TRUE(s != NULL, "udp")) {
		ASSERT_EQ(s->vip.proto, IPPROTO_UDP, "udp VIP");
		p = find_pred(s, "main");
		if (ASSERT_TRUE(p && p->nbackends == 1, "udp backend"))
			ASSERT_EQ(ntohs(p->backends[0].port), 5353, "the only UDP port");
	}
	p = find_pred(find_service(&m, "models/solo", 8000), "only");
	if (ASSERT_TRUE(p && p->nbackends == 1, "single port, svc-name annotation"))
		ASSERT_EQ(ntohs(p->backends[0].port), 6000, "single port");
	/* Deterministic order: by VIP (port 53 < 5001 < 8000 < 9500), then .40. */
	if (ASSERT_EQ(m.nservices, 5, "services")) {
		ASSERT_EQ(ntohs(m.services[0].vip.port), 53, "order");
		ASSERT_EQ(ntohs(m.services[1].vip.port), 5001, "order");
		ASSERT_EQ(ntohs(m.services[2].vip.port), 8000, "order");
		ASSERT_EQ(ntohs(m.services[3].vip.port), 9500, "order");
		ASSERT_STREQ(m.services[4].deployment, "models/solo", "order");
	}
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

static void test_ipv6(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_predictor *p;
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	char dir[64] = "", addr[INET6_ADDRSTRLEN];

	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(load_text(st, dir, sizeof(dir), dual_stack, &m), 0, "load") ||
	    !ASSERT_EQ(m.nservices, 2, "dual stack"))
		goto out;
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no errors");
	s = &m.services[1]; /* IPv6 sorts after IPv4 */
	ASSERT_EQ(s->vip.family, FERRY_AF_INET6, "v6 VIP");
	inet_ntop(AF_INET6, s->vip.addr, addr, sizeof(addr));
	ASSERT_STREQ(addr, "2001:db8:100::10", "v6 addr");
	p = find_pred(s, "main");
	if (ASSERT_TRUE(p && p->nbackends == 2, "only IPv6 slices")) {
		inet_ntop(AF_INET6, p->backends[0].addr, addr, sizeof(addr));
		ASSERT_STREQ(addr, "2001:db8:1::11", "sorted");
		ASSERT_EQ(p->backends[0].family, FERRY_AF_INET6, "family");
		ASSERT_EQ(p->backends[0].state, FERRY_BE_UNREADY, "unready");
	}
	p = find_pred(&m.services[0], "main");
	ASSERT_TRUE(p && p->nbackends == 1 && p->backends[0].family == FERRY_AF_INET, "v4 side");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* YAML typing the kubectl way: quoted numbers are strings, ~ is null. */
static void test_yaml_typing(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {};
	char dir[64] = "";

	if (!ASSERT_TRUE(st, "store"))
		goto out;
	ASSERT_EQ(load_text(st, dir, sizeof(dir), quoted_traffic, &m), 1,
		  "quoted traffic is a string");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "error")) {
		const struct ferry_config_error *e = ferry_config_store__error(st, 0);

		ASSERT_EQ(e->line, 11, "line");
		ASSERT_EQ(e->column, 14, "column");
	}
	ASSERT_EQ(load_text(st, dir, sizeof(dir), null_traffic, &m), 0,
		  "null traffic, hex replicas");
	ASSERT_EQ(m.nservices, 1, "in force");
	ASSERT_EQ(load_text(st, dir, sizeof(dir), quoted_bool, &m), 1, "quoted bool is a string");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/*
 * A misspelt ferry.io/ annotation is a warning naming the file, the object,
 * the key and the closest known name; the deployment is still applied, and
 * other prefixes stay silent.
 */
static void test_unknown_annotation_warned(void)
{
	/* clang-format off */
	static const char typo[] =
		"apiVersion: machinelearning.seldon.io/v1\n"
		"kind: SeldonDeployment\n"
		"metadata:\n"
		"  name: iris\n"
		"  namespace: models\n"
		"  annotations:\n"
		VIP_IRIS
		"    ferry.io/affinty: client-ip\n"
		"    example.com/affinty: x\n"
		"spec:\n"
		"  annotations:\n"
		"    ferry.io/zzz-unheard-of: \"1\"\n"
		"  predictors:\n"
		PRED("main", 100)
		SLICE_HEAD("m", "iris-main", "IPv4")
		"endpoints:\n"
		EP("198.18.1.11", READY)
		PORTS_HTTP_GRPC;
	/* clang-format on */
	struct ferry_config_store *st = ferry_config_store__new();
	enum ferry_log_level level = ferry_log_level;
	struct ferry_model m = {};
	char dir[64] = "", log[] = "/tmp/ferry-fc-log-XXXXXX", *text = NULL;
	int fd = -1, saved = -1, nerr;

	if (!ASSERT_TRUE(st, "store"))
		goto out;
	fd = mkstemp(log);
	fflush(stderr);
	saved = dup(2);
	if (!ASSERT_TRUE(fd >= 0 && saved >= 0 && dup2(fd, 2) == 2, "capture stderr"))
		goto out;
	ferry_log_level = FERRY_LOG_WARN;
	nerr = load_text(st, dir, sizeof(dir), typo, &m);
	ferry_log_level = level;
	fflush(stderr);
	dup2(saved, 2);
	text = read_text(log);
	ASSERT_EQ(nerr, 0, "a warning, not an error");
	ASSERT_TRUE(find_service(&m, "models/iris", 8000) != NULL, "applied");
	if (!ASSERT_TRUE(text != NULL, "log"))
		goto out;
	ASSERT_STRSTR(text, "test.yaml:", "names the file");
	ASSERT_STRSTR(text,
		      "SeldonDeployment models/iris: metadata.annotations[\"ferry.io/affinty\"]",
		      "names the object and the key");
	ASSERT_STRSTR(text, "did you mean ferry.io/affinity?", "the closest match");
	ASSERT_STRSTR(text, "spec.annotations[\"ferry.io/zzz-unheard-of\"]",
		      "spec.annotations too");
	ASSERT_STRSTR(text, "ferry reads ferry.io/vip, ferry.io/affinity",
		      "no close match: the list");
	ASSERT_TRUE(!strstr(text, "example.com"), "other prefixes not judged");
out:
	ferry_log_level = level;
	if (saved >= 0) {
		dup2(saved, 2);
		close(saved);
	}
	if (fd >= 0) {
		close(fd);
		unlink(log);
	}
	free(text);
	ferry_model__free(&m);
	ferry_config_store__free(st);
	rm_rf(dir);
}

/* ---------------------------------------------------------- API objects */

static void test_put_delete(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	json_t *good = NULL, *bad = NULL, *slice = NULL;
	const struct ferry_model_service *s;
	struct ferry_model m = {};
	json_error_t jerr;

	good = json_loads(
		"{\"apiVersion\":\"machinelearning.seldon.io/v1alpha2\","
		"\"kind\":\"SeldonDeployment\",\"metadata\":{\"name\":\"iris\","
		"\"namespace\":\"models\",\"annotations\":{\"ferry.io/vip\":"
		"\"198.18.100.10:8000\"}},\"spec\":{\"predictors\":["
		"{\"name\":\"main\",\"traffic\":70,\"graph\":{\"name\":\"m\",\"implementation\":\"SKLEARN_SERVER\",\"modelUri\":\"gs://m\"}},"
		"{\"name\":\"canary\",\"traffic\":30,\"graph\":{\"name\":\"m\",\"implementation\":\"SKLEARN_SERVER\",\"modelUri\":\"gs://m\"}}]}}",
		0, &jerr);
	bad = json_loads(
		"{\"apiVersion\":\"machinelearning.seldon.io/v1\","
		"\"kind\":\"SeldonDeployment\",\"metadata\":{\"name\":\"iris\","
		"\"namespace\":\"models\"},\"spec\":{\"predictors\":["
		"{\"name\":\"main\",\"traffic\":70,\"graph\":{\"name\":\"m\",\"implementation\":\"SKLEARN_SERVER\",\"modelUri\":\"gs://m\"}},"
		"{\"name\":\"canary\",\"traffic\":-30,\"graph\":{\"name\":\"m\",\"implementation\":\"SKLEARN_SERVER\",\"modelUri\":\"gs://m\"}}]}}",
		0, &jerr);
	slice = json_loads(
		"{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
		"\"metadata\":{\"name\":\"iris-main-1\",\"namespace\":\"models\","
		"\"labels\":{\"kubernetes.io/service-name\":\"iris-main\"}},"
		"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"198.18.1.11\"],"
		"\"conditions\":{\"ready\":null}}],"
		"\"ports\":[{\"name\":\"http\",\"port\":8000,\"protocol\":\"TCP\"}]}",
		0, &jerr);
	if (!ASSERT_TRUE(st && good && bad && slice, "setup"))
		goto out;
	ASSERT_OK(ferry_config_store__put(st, good, "kubernetes"), "put good");
	ASSERT_OK(ferry_config_store__put(st, slice, "kubernetes"), "put slice");
	ASSERT_EQ(ferry_config_store__put(st, bad, "kubernetes"), -EINVAL, "put bad");
	if (ASSERT_EQ(ferry_config_store__nerrors(st), 1, "error recorded")) {
		const struct ferry_config_error *e = ferry_config_store__error(st, 0);

		ASSERT_STREQ(e->file, "kubernetes", "origin");
		ASSERT_EQ(e->line, 0, "no line");
		ASSERT_STREQ(e->object, "SeldonDeployment models/iris", "object");
		ASSERT_STREQ(e->field, "spec.predictors[1].traffic", "field");
	}
	if (!ASSERT_OK(ferry_config_store__build(st, &m), "build"))
		goto out;
	s = find_service(&m, "models/iris", 8000);
	if (ASSERT_TRUE(s != NULL, "good version in force")) {
		ASSERT_EQ(find_pred(s, "main")->weight_effective, 1000000, "canary has no slice");
		ASSERT_EQ(find_pred(s, "main")->nbackends, 1, "slice from the API, nil ready");
		ASSERT_EQ(find_pred(s, "main")->backends[0].state, FERRY_BE_ACTIVE, "nil ready");
	}
	ASSERT_OK(ferry_config_store__delete(st, "SeldonDeployment", "models", "iris"), "delete");
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "errors of a deleted object go");
	ASSERT_EQ(ferry_config_store__delete(st, "SeldonDeployment", "models", "iris"), -ENOENT,
		  "delete again");
	ferry_model__free(&m);
	if (ASSERT_OK(ferry_config_store__build(st, &m), "build"))
		ASSERT_EQ(m.nservices, 0, "gone");
out:
	ferry_model__free(&m);
	json_decref(good);
	json_decref(bad);
	json_decref(slice);
	ferry_config_store__free(st);
}

static void test_error_format(void)
{
	struct ferry_config_error e = { .file = "x.yaml",
					.line = 3,
					.column = 5,
					.object = "SeldonDeployment a/b",
					.field = "spec",
					.message = "bad" };
	char buf[1600];

	ferry_config_error__format(&e, buf, sizeof(buf));
	ASSERT_STREQ(buf, "x.yaml:3:5: SeldonDeployment a/b: spec: bad", "full");
	e.line = e.column = 0;
	e.object[0] = e.field[0] = '\0';
	ferry_config_error__format(&e, buf, sizeof(buf));
	ASSERT_STREQ(buf, "x.yaml: bad", "short");
}

int main(int argc, char **argv)
{
	const char *env = getenv("FERRY_TOP");

	test__main_init(argc, argv);
	if (env)
		snprintf(top, sizeof(top), "%s", env);
	if (!getenv("FERRY_LOG_DEBUG"))
		ferry_log_level = FERRY_LOG_ERROR;
	else
		ferry_log_level = FERRY_LOG_DEBUG;

	RUN_TEST(SUITE, test_bad_corpus);
	RUN_TEST(SUITE, test_good_formats_identical);
	RUN_TEST(SUITE, test_json_bom);
	RUN_TEST(SUITE, test_last_good);
	RUN_TEST(SUITE, test_fifo_skipped);
	RUN_TEST(SUITE, test_unreadable_keeps_last_good);
	RUN_TEST(SUITE, test_incremental_edits);
	RUN_TEST(SUITE, test_many_files);
	RUN_TEST(SUITE, test_duplicate_vip_keeps_owner);
	RUN_TEST(SUITE, test_adopted_vip_owner);
	RUN_TEST(SUITE, test_redistribution);
	RUN_TEST(SUITE, test_shadow_and_explicit_zero);
	RUN_TEST(SUITE, test_backend_states);
	RUN_TEST(SUITE, test_affinity_and_sampling);
	RUN_TEST(SUITE, test_canary_annotations);
	RUN_TEST(SUITE, test_port_selection);
	RUN_TEST(SUITE, test_ipv6);
	RUN_TEST(SUITE, test_yaml_typing);
	RUN_TEST(SUITE, test_unknown_annotation_warned);
	RUN_TEST(SUITE, test_put_delete);
	RUN_TEST(SUITE, test_error_format);
	return test__summary();
}
