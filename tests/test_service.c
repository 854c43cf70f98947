// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferry.io/vip: service/NAME (user/source/config_service.c, config_build.c):
 * ClusterIPs (v4, v6), ports by name and by targetPort number, a Service that
 * is missing, appears and is deleted, a port that maps to nothing, two
 * deployments naming one Service, headless, dual-stack over single-stack
 * endpoints, Services from the API.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "source/config.h"
#include "log.h"
#include "testing.h"

#define SUITE "service"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
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
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	remove(path);
}

/* A fresh store over a fresh directory. */
struct fixture {
	struct ferry_config_store *st;
	struct ferry_model m;
	char dir[64];
};

static bool fx_init(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/ferry-svc-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		fx->dir[0] = '\0';
		return false;
	}
	fx->st = ferry_config_store__new();
	return fx->st != NULL;
}

static void fx_fini(struct fixture *fx)
{
	ferry_model__free(&fx->m);
	ferry_config_store__free(fx->st);
	rm_rf(fx->dir);
}

/* Loads the directory and builds; returns the number of errors, or -1. */
static int fx_build(struct fixture *fx)
{
	int nerr = ferry_config_store__load_dir(fx->st, fx->dir);

	if (nerr < 0)
		return -1;
	ferry_model__free(&fx->m);
	if (ferry_config_store__build(fx->st, &fx->m))
		return -1;
	return (int)ferry_config_store__nerrors(fx->st);
}

static void print_errors(struct fixture *fx)
{
	char line[2048];

	for (size_t i = 0; i < ferry_config_store__nerrors(fx->st); i++) {
		ferry_config_error__format(ferry_config_store__error(fx->st, i), line,
					   sizeof(line));
		fprintf(stderr, "      error: %s\n", line);
	}
}

static const struct ferry_model_service *find_vip(const struct ferry_model *m, const char *addr,
						  __u16 port, __u8 proto)
{
	__be32 a[4] = {};
	__u8 fam = strchr(addr, ':') ? FERRY_AF_INET6 : FERRY_AF_INET;

	inet_pton(fam == FERRY_AF_INET6 ? AF_INET6 : AF_INET, addr, a);
	for (size_t i = 0; i < m->nservices; i++) {
		const struct ferry_model_service *s = &m->services[i];

		if (s->vip.family == fam && !memcmp(s->vip.addr, a, sizeof(a)) &&
		    ntohs(s->vip.port) == port && s->vip.proto == proto)
			return s;
	}
	return NULL;
}

/* The port of the first backend of predictor 0, or 0. */
static __u16 backend_port(const struct ferry_model_service *s)
{
	if (!s || !s->npredictors || !s->predictors[0].nbackends)
		return 0;
	return ntohs(s->predictors[0].backends[0].port);
}

/* clang-format off */
#define SDEP(name, vip)                                  \
	"apiVersion: machinelearning.seldon.io/v1\n"     \
	"kind: SeldonDeployment\n"                       \
	"metadata:\n"                                    \
	"  name: " name "\n"                             \
	"  namespace: models\n"                          \
	"  annotations:\n"                               \
	"    ferry.io/vip: " vip "\n"                    \
	"spec:\n"                                        \
	"  predictors:\n"                                \
	"  - name: main\n"                               \
	"    traffic: 80\n"                              \
	"    graph: {name: c, implementation: SKLEARN_SERVER, modelUri: gs://m/iris}\n" \
	"  - name: canary\n"                             \
	"    traffic: 20\n"                              \
	"    graph: {name: c, implementation: SKLEARN_SERVER, modelUri: gs://m/iris}\n"

#define SLICE(name, svc, type, addr)                 \
	"---\n"                                      \
	"apiVersion: discovery.k8s.io/v1\n"          \
	"kind: EndpointSlice\n"                      \
	"metadata:\n"                                \
	"  name: " name "\n"                         \
	"  namespace: models\n"                      \
	"  labels:\n"                                \
	"    kubernetes.io/service-name: " svc "\n"  \
	"addressType: " type "\n"                    \
	"endpoints:\n"                               \
	"- addresses: [\"" addr "\"]\n"              \
	"ports:\n"                                   \
	"- {name: http, port: 9000, protocol: TCP}\n"  \
	"- {name: grpc, port: 9500, protocol: TCP}\n"

/* Both predictors, IPv4 only. */
#define SLICES_V4                                             \
	SLICE("m4", "iris-main", "IPv4", "10.1.0.11")    \
	SLICE("c4", "iris-canary", "IPv4", "10.1.0.21")

#define SLICES_V6                                             \
	SLICE("m6", "iris-main", "IPv6", "fd00:1::11")   \
	SLICE("c6", "iris-canary", "IPv6", "fd00:1::21")

#define SERVICE_HEAD(name)                  \
	"apiVersion: v1\n"                  \
	"kind: Service\n"                   \
	"metadata:\n"                       \
	"  name: " name "\n"                \
	"  namespace: models\n"             \
	"spec:\n"

/* Dual stack; a named port (http -> 9000) and a numbered one (80 -> targetPort 9500). */
static const char svc_dual[] =
	SERVICE_HEAD("iris")
	"  type: NodePort\n"
	"  clusterIP: 10.96.0.10\n"
	"  clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n"
	"  sessionAffinity: ClientIP\n"
	"  ports:\n"
	"  - {name: http, port: 8000, targetPort: 8000, nodePort: 30080}\n"
	"  - {name: web, port: 80, targetPort: 9500}\n"
	"  - {name: dns, port: 53, protocol: UDP, targetPort: 9000}\n"
	"  - {name: assoc, port: 36412, protocol: SCTP}\n";

static const char svc_v4[] =
	SERVICE_HEAD("iris")
	"  clusterIP: 10.96.0.10\n"
	"  ports:\n"
	"  - {name: http, port: 8000}\n";

static const char svc_v4_8080[] =
	SERVICE_HEAD("iris")
	"  clusterIP: 10.96.0.10\n"
	"  ports:\n"
	"  - {name: http, port: 8080}\n";

static const char svc_nomatch[] =
	SERVICE_HEAD("iris")
	"  clusterIP: 10.96.0.10\n"
	"  ports:\n"
	"  - {name: http, port: 8000}\n"
	"  - {name: metrics, port: 9100}\n";

static const char svc_headless[] =
	SERVICE_HEAD("iris")
	"  clusterIP: None\n"
	"  ports:\n"
	"  - {name: http, port: 8000}\n";

static const char svc_named_target[] =
	SERVICE_HEAD("iris")
	"  clusterIP: 10.96.0.10\n"
	"  ports:\n"
	"  - {name: api, port: 8000, targetPort: grpc}\n";
/* clang-format on */

static void test_cluster_ips_and_ports(void)
{
	const struct ferry_model_service *s;
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_dual), "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml",
				    SDEP("iris", "service/iris") SLICES_V4 SLICES_V6),
			 "write"))
		goto out;
	/* The UDP port maps to no UDP slice port: an error per address and slice. */
	if (!ASSERT_EQ(fx_build(&fx), 4, "the UDP port's errors only"))
		print_errors(&fx);
	/* 2 addresses x 3 ports (SCTP is not balanced). */
	ASSERT_EQ(fx.m.nservices, 6, "VIPs");
	s = find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP);
	if (ASSERT_TRUE(s, "v4 http")) {
		ASSERT_EQ(backend_port(s), 9000, "by name: http");
		ASSERT_STREQ(s->service, "models/iris", "source Service");
		ASSERT_STREQ(s->deployment, "models/iris", "deployment");
		ASSERT_TRUE(s->flags & FERRY_SVC_F_HASH_SRC_ADDR, "ClientIP -> client-ip");
		ASSERT_EQ(s->npredictors, 2, "predictors");
		ASSERT_EQ(s->predictors[0].weight_effective, 800000, "80%");
	}
	s = find_vip(&fx.m, "fd00:96::10", 8000, IPPROTO_TCP);
	if (ASSERT_TRUE(s, "v6 http")) {
		ASSERT_EQ(backend_port(s), 9000, "v6 by name");
		ASSERT_EQ(s->predictors[0].backends[0].family, FERRY_AF_INET6, "v6 backends");
	}
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 80, IPPROTO_TCP)), 9500,
		  "by targetPort number");
	ASSERT_EQ(backend_port(find_vip(&fx.m, "fd00:96::10", 80, IPPROTO_TCP)), 9500,
		  "v6 by targetPort number");
	/* UDP: the slices have no UDP port, so the VIP exists without backends. */
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 53, IPPROTO_UDP)), 0, "UDP VIP");
	ASSERT_FALSE(find_vip(&fx.m, "10.96.0.10", 30080, IPPROTO_TCP), "no NodePort VIP");
out:
	fx_fini(&fx);
}

static void test_named_target_port(void)
{
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_named_target), "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/iris") SLICES_V4),
			 "write"))
		goto out;
	if (!ASSERT_EQ(fx_build(&fx), 0, "no errors"))
		print_errors(&fx);
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP)), 9500,
		  "targetPort: grpc -> the slice port named grpc");
out:
	fx_fini(&fx);
}

/* Missing at first: accepted, no VIP; appears: balanced; changes; deleted: gone. */
static void test_missing_appears_changes_deleted(void)
{
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml",
				    SDEP("iris", "service/iris, 198.18.100.10:8000") SLICES_V4),
			 "write"))
		goto out;
	if (!ASSERT_EQ(fx_build(&fx), 0, "missing Service is no error"))
		print_errors(&fx);
	ASSERT_EQ(fx.m.nservices, 1, "only the literal VIP");
	ASSERT_STREQ(fx.m.services[0].service, "", "literal: no Service");

	ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_v4), "write");
	ASSERT_EQ(fx_build(&fx), 0, "appears");
	ASSERT_EQ(fx.m.nservices, 2, "literal + Service VIP");
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP)), 9000,
		  "balanced once it appears");

	ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_v4_8080), "write");
	ASSERT_EQ(fx_build(&fx), 0, "port changed");
	ASSERT_FALSE(find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP), "old port gone");
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 8080, IPPROTO_TCP)), 9000,
		  "new port, by name");

	remove_file(fx.dir, "svc.yaml");
	ASSERT_EQ(fx_build(&fx), 0, "deleted");
	ASSERT_EQ(fx.m.nservices, 1, "Service VIPs removed, literal stays");
	ASSERT_TRUE(find_vip(&fx.m, "198.18.100.10", 8000, IPPROTO_TCP), "literal");
out:
	fx_fini(&fx);
}

static void test_port_without_match(void)
{
	const struct ferry_config_error *e = NULL;
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_nomatch), "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/iris") SLICES_V4),
			 "write"))
		goto out;
	/* One error per predictor slice: main and canary. */
	ASSERT_EQ(fx_build(&fx), 2, "errors");
	for (size_t i = 0; i < ferry_config_store__nerrors(fx.st); i++)
		if (!strcmp(ferry_config_store__error(fx.st, i)->object, "Service models/iris"))
			e = ferry_config_store__error(fx.st, i);
	if (ASSERT_TRUE(e, "error on the Service")) {
		ASSERT_STRSTR(e->message, "port 9100", "names the port");
		ASSERT_STRSTR(e->message, "\"metrics\"", "names the port's name");
		ASSERT_STRSTR(e->message, "models/iris", "names the Service");
		ASSERT_STRSTR(e->message, "set its targetPort", "says the fix");
		ASSERT_STREQ(e->field, "spec.ports", "field");
		ASSERT_TRUE(e->line > 0, "has a line");
	}
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP)), 9000,
		  "the matching port is balanced");
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 9100, IPPROTO_TCP)), 0,
		  "the unmatched port has no backend");
out:
	fx_fini(&fx);
}

static void test_two_deployments_one_service(void)
{
	const struct ferry_config_error *e;
	const struct ferry_model_service *s;
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_v4), "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "b.yaml", SDEP("iris-b", "service/iris") SLICES_V4),
			 "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "a.yaml", SDEP("iris-a", "service/iris")), "write"))
		goto out;
	ASSERT_EQ(fx_build(&fx), 1, "one error");
	s = find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP);
	if (ASSERT_TRUE(s, "VIP"))
		ASSERT_STREQ(s->deployment, "models/iris-a", "first by name wins");
	e = ferry_config_store__error(fx.st, 0);
	if (ASSERT_TRUE(e, "error")) {
		ASSERT_STREQ(e->object, "SeldonDeployment models/iris-b", "the other is rejected");
		ASSERT_STRSTR(e->message, "already used by SeldonDeployment models/iris-a",
			      "names the owner");
	}
	/* The owner keeps it even when a name that sorts first claims it later. */
	ASSERT_TRUE(write_file(fx.dir, "0.yaml", SDEP("iris-0", "service/iris")), "write");
	ASSERT_EQ(fx_build(&fx), 2, "two errors");
	s = find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP);
	if (ASSERT_TRUE(s, "VIP"))
		ASSERT_STREQ(s->deployment, "models/iris-a", "the owner keeps it");
out:
	fx_fini(&fx);
}

static void test_headless(void)
{
	const struct ferry_config_error *e;
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_headless), "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/iris") SLICES_V4),
			 "write"))
		goto out;
	ASSERT_EQ(fx_build(&fx), 1, "an error");
	ASSERT_EQ(fx.m.nservices, 0, "no VIP");
	e = ferry_config_store__error(fx.st, 0);
	if (ASSERT_TRUE(e, "error")) {
		ASSERT_STREQ(e->object, "SeldonDeployment models/iris", "object");
		ASSERT_STRSTR(e->message, "headless", "says why");
		ASSERT_STREQ(e->field, "metadata.annotations[\"ferry.io/vip\"]", "field");
	}
	/* A headless Service nobody names is none of ferry's business. */
	remove_file(fx.dir, "sdep.yaml");
	ASSERT_EQ(fx_build(&fx), 0, "unnamed headless Service: no error");
out:
	fx_fini(&fx);
}

/* Dual-stack Service, IPv4-only endpoints: the IPv6 ClusterIP is skipped (a warning). */
static void test_dual_stack_single_stack_endpoints(void)
{
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "svc.yaml", svc_dual), "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/iris") SLICES_V4),
			 "write"))
		goto out;
	/* The UDP port's errors (main, canary); the IPv6 address is a warning only. */
	ASSERT_EQ(fx_build(&fx), 2, "only the UDP port's errors");
	ASSERT_TRUE(find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP), "IPv4 VIP");
	ASSERT_FALSE(find_vip(&fx.m, "fd00:96::10", 8000, IPPROTO_TCP), "no IPv6 VIP");
	ASSERT_EQ(fx.m.nservices, 3, "IPv4 x 3 ports");
out:
	fx_fini(&fx);
}

static void test_bad_references(void)
{
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/Iris_1")), "write"))
		goto out;
	ASSERT_EQ(fx_build(&fx), 1, "not a Service name");
	if (ASSERT_EQ(ferry_config_store__nerrors(fx.st), 1, "error"))
		ASSERT_STRSTR(ferry_config_store__error(fx.st, 0)->message, "is not a Service name",
			      "says why");
	ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/iris, service/iris")),
		    "write");
	ASSERT_EQ(fx_build(&fx), 1, "listed twice");
out:
	fx_fini(&fx);
}

/* From the API: put, then delete; the model follows. */
static void test_api_put_delete(void)
{
	json_t *svc = NULL, *sdep = NULL, *slice = NULL;
	struct ferry_config_store *st = ferry_config_store__new();
	struct ferry_model m = {};
	json_error_t jerr;

	svc = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":"
			 "\"iris\",\"namespace\":\"models\"},\"spec\":{\"clusterIP\":"
			 "\"10.96.0.10\",\"clusterIPs\":[\"10.96.0.10\"],\"ports\":[{\"name\":"
			 "\"http\",\"port\":8000,\"protocol\":\"TCP\",\"targetPort\":8000}]}}",
			 0, &jerr);
	sdep = json_loads(
		"{\"apiVersion\":\"machinelearning.seldon.io/v1\",\"kind\":\"SeldonDeployment\","
		"\"metadata\":{\"name\":\"iris\",\"namespace\":\"models\",\"annotations\":"
		"{\"ferry.io/vip\":\"service/iris\"}},\"spec\":{\"predictors\":[{\"name\":"
		"\"main\",\"traffic\":100,\"graph\":{\"name\":\"m\",\"implementation\":"
		"\"SKLEARN_SERVER\",\"modelUri\":\"gs://m\"}}]}}",
		0, &jerr);
	slice = json_loads(
		"{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
		"\"metadata\":{\"name\":\"m-1\",\"namespace\":\"models\",\"labels\":"
		"{\"kubernetes.io/service-name\":\"iris-main\"}},\"addressType\":\"IPv4\","
		"\"endpoints\":[{\"addresses\":[\"10.1.0.11\"]}],\"ports\":[{\"name\":\"http\","
		"\"port\":9000,\"protocol\":\"TCP\"}]}",
		0, &jerr);
	if (!ASSERT_TRUE(st && svc && sdep && slice, "setup"))
		goto out;
	ASSERT_OK(ferry_config_store__put(st, sdep, "kubernetes"), "put sdep");
	ASSERT_OK(ferry_config_store__put(st, slice, "kubernetes"), "put slice");
	if (ASSERT_OK(ferry_config_store__build(st, &m), "build"))
		ASSERT_EQ(m.nservices, 0, "waiting for the Service");
	ASSERT_OK(ferry_config_store__put(st, svc, "kubernetes"), "put Service");
	ferry_model__free(&m);
	if (ASSERT_OK(ferry_config_store__build(st, &m), "build") &&
	    ASSERT_EQ(m.nservices, 1, "balanced")) {
		ASSERT_EQ(backend_port(&m.services[0]), 9000, "backend port");
		ASSERT_STREQ(m.services[0].service, "models/iris", "source");
	}
	ASSERT_OK(ferry_config_store__delete(st, "Service", "models", "iris"), "delete");
	ferry_model__free(&m);
	if (ASSERT_OK(ferry_config_store__build(st, &m), "build"))
		ASSERT_EQ(m.nservices, 0, "Service deleted: VIP removed");
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no errors");
out:
	ferry_model__free(&m);
	json_decref(svc);
	json_decref(sdep);
	json_decref(slice);
	ferry_config_store__free(st);
}

/* examples/seldon/service/: the example loads without an error and is balanced. */
static void test_example(void)
{
	struct ferry_config_store *st = ferry_config_store__new();
	const struct ferry_model_service *s;
	const char *top = getenv("FERRY_TOP");
	struct ferry_model m = {};
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/examples/seldon/service", top ? top : ".");
	if (!ASSERT_TRUE(st, "store") ||
	    !ASSERT_EQ(ferry_config_store__load_dir(st, dir), 0, dir) ||
	    !ASSERT_OK(ferry_config_store__build(st, &m), "build"))
		goto out;
	ASSERT_EQ(ferry_config_store__nerrors(st), 0, "no errors");
	ASSERT_EQ(m.nservices, 2, "http and grpc");
	s = find_vip(&m, "10.96.120.15", 8000, IPPROTO_TCP);
	if (ASSERT_TRUE(s, "http VIP")) {
		ASSERT_STREQ(s->service, "models/iris", "from the Service");
		ASSERT_EQ(s->npredictors, 2, "main and canary");
		ASSERT_EQ(backend_port(s), 8000, "targetPort http: the slice port named http");
	}
	ASSERT_EQ(backend_port(find_vip(&m, "10.96.120.15", 5001, IPPROTO_TCP)), 5001, "grpc");
out:
	ferry_model__free(&m);
	ferry_config_store__free(st);
}

/* kubectl get svc -o yaml: a ServiceList whose items omit kind and apiVersion. */
static void test_service_list(void)
{
	struct fixture fx;

	if (!ASSERT_TRUE(fx_init(&fx), "fixture") ||
	    !ASSERT_TRUE(
		    write_file(
			    fx.dir, "svc.yaml",
			    "apiVersion: v1\n"
			    "kind: ServiceList\n"
			    "items:\n"
			    "- metadata: {name: iris, namespace: models}\n"
			    "  spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 8000}]}\n"),
		    "write") ||
	    !ASSERT_TRUE(write_file(fx.dir, "sdep.yaml", SDEP("iris", "service/iris") SLICES_V4),
			 "write"))
		goto out;
	ASSERT_EQ(fx_build(&fx), 0, "no errors");
	ASSERT_EQ(backend_port(find_vip(&fx.m, "10.96.0.10", 8000, IPPROTO_TCP)), 9000,
		  "a Service from a typed list");
out:
	fx_fini(&fx);
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	ferry_log_level = getenv("FERRY_LOG_DEBUG") ? FERRY_LOG_DEBUG : FERRY_LOG_ERROR;

	RUN_TEST(SUITE, test_cluster_ips_and_ports);
	RUN_TEST(SUITE, test_named_target_port);
	RUN_TEST(SUITE, test_missing_appears_changes_deleted);
	RUN_TEST(SUITE, test_port_without_match);
	RUN_TEST(SUITE, test_two_deployments_one_service);
	RUN_TEST(SUITE, test_headless);
	RUN_TEST(SUITE, test_dual_stack_single_stack_endpoints);
	RUN_TEST(SUITE, test_bad_references);
	RUN_TEST(SUITE, test_api_put_delete);
	RUN_TEST(SUITE, test_example);
	RUN_TEST(SUITE, test_service_list);
	return test__summary();
}
