// SPDX-License-Identifier: GPL-2.0-only
/*
 * Seldon's admission rules (user/seldon_webhook.h), verdict for verdict: a
 * table of SeldonDeployments, each with the verdict Seldon Core v1.18.2
 * gives it and the line of Seldon's source that verdict comes from (Seldon's
 * own webhook tests first, then one case per rule and edge they leave out).
 * Each case is judged by the webhook module alone and by the whole store, as
 * v1, v1alpha2 and v1alpha3: what Seldon refuses, ferry refuses naming the
 * field; what Seldon admits, ferry admits, unless ferry cannot balance it
 * (then the error says so first).
 *
 * Paths are in SeldonIO/seldon-core at tag v1.18.2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source/config.h"
#include "log.h"
#include "source/manifest.h"
#include "source/seldon_webhook.h"
#include "testing.h"

#define SUITE "seldon"

#define WH "operator/apis/machinelearning.seldon.io/v1/seldondeployment_webhook.go:"
#define WT "operator/apis/machinelearning.seldon.io/v1/seldondeployment_webhook_test.go:"
#define CRD                                           \
	"helm-charts/seldon-core-operator/templates/" \
	"customresourcedefinition_v1_seldondeployments.machinelearning.seldon.io.yaml:"
#define VALUES "helm-charts/seldon-core-operator/values.yaml:"

enum verdict {
	ACCEPTS, /* Seldon admits it and ferry balances it */
	REJECTS, /* Seldon refuses it: so does ferry */
	FERRY_CANNOT, /* Seldon admits it; ferry cannot balance it */
};

enum {
	F_CUSTOM = 1, /* judged against custom_config (below), not the Helm chart's servers */
	F_CLUSTER = 2, /* --kubernetes: the cluster's webhook judged it */
};

struct seldon_case {
	const char *name;
	enum verdict verdict;
	const char *source; /* where Seldon's verdict comes from */
	const char *field; /* REJECTS: the field an error must name */
	const char *spec; /* the YAML under "spec:"; NULL: no spec at all */
	unsigned int flags;
};

/* clang-format off */
#define CONTAINERS(names)                                  \
	"    componentSpecs:\n"                               \
	"    - spec:\n"                                       \
	"        containers: [" names "]\n"
#define C(n) "{name: " n ", image: seldonio/mock_classifier:1.0}"
#define MODEL_PRED(pname, extra)                           \
	"  - name: " pname "\n" extra                          \
	CONTAINERS(C("classifier"))                            \
	"    graph: {name: classifier}\n"
#define SK_GRAPH "    graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: gs://m}\n"
#define SK_PRED(pname, extra) "  - name: " pname "\n" extra SK_GRAPH
#define TF_GRAPH(uri) "    graph: {name: classifier, implementation: TENSORFLOW_SERVER" uri "}\n"
#define SERVER(impl, uri) \
	"  predictors:\n  - name: p1\n    graph: {name: classifier, implementation: " impl uri "}\n"
#define URI ", modelUri: gs://m"

/*
 * seldon-config with the servers Seldon's own webhook tests configure
 * (seldondeployment_webhook_test.go:109): CUSTOM_SERVER, and no
 * HUGGINGFACE_SERVER, TEMPO_SERVER.
 */
static const char custom_config[] =
	"apiVersion: v1\n"
	"kind: ConfigMap\n"
	"metadata: {name: seldon-config, namespace: seldon-system}\n"
	"data:\n"
	"  credentials: '{}'\n"
	"  predictor_servers: '{\"TENSORFLOW_SERVER\": {\"protocols\": {\"tensorflow\": "
	"{\"image\": \"tensorflow/serving\", \"defaultImageVersion\": \"2.1.0\"}}}, "
	"\"SKLEARN_SERVER\": {\"protocols\": {\"seldon\": {\"image\": \"s\"}}}, "
	"\"XGBOOST_SERVER\": {\"protocols\": {\"seldon\": {\"image\": \"x\"}}}, "
	"\"MLFLOW_SERVER\": {\"protocols\": {\"seldon\": {\"image\": \"m\"}}}, "
	"\"TRITON_SERVER\": {\"protocols\": {\"kfserving\": {\"image\": \"t\"}}}, "
	"\"CUSTOM_SERVER\": {\"protocols\": {\"seldon\": {\"image\": \"custom\", "
	"\"defaultImageVersion\": \"0.1\"}}}}'\n";

static const struct seldon_case cases[] = {
	/* ------------------------------------------- Seldon's own tests */
	{ "protocol_transport_servertype_valid", ACCEPTS, WT "21", NULL,
	  "  serverType: rpc\n  protocol: tensorflow\n  transport: grpc\n  predictors:\n"
	  MODEL_PRED("p1", "") },
	{ "graph_without_type", ACCEPTS, WT "54", NULL,
	  "  predictors:\n" MODEL_PRED("p1", "") },
	{ "bad_protocol", REJECTS, WT "178; " WH "238", "spec.protocol",
	  "  protocol: abc\n  predictors:\n" MODEL_PRED("p1", "") },
	{ "bad_transport", REJECTS, WT "214; " WH "243", "spec.transport",
	  "  transport: abc\n  predictors:\n" MODEL_PRED("p1", "") },
	{ "bad_server_type", REJECTS, WT "252; " WH "248", "spec.serverType",
	  "  serverType: abc\n  predictors:\n" MODEL_PRED("p1", "") },
	{ "mixed_endpoint_types", REJECTS, WT "288; " WH "284", "spec.predictors",
	  "  transport: rest\n  predictors:\n  - name: p1\n"
	  CONTAINERS(C("classifier") ", " C("classifier2"))
	  "    graph:\n      name: classifier\n      type: MODEL\n      endpoint: {type: GRPC}\n"
	  "      children:\n      - {name: classifier2, type: MODEL, endpoint: {type: REST}}\n" },
	{ "endpoint_type_against_transport", REJECTS, WT "342; " WH "287", "spec.transport",
	  "  transport: rest\n  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, type: MODEL, endpoint: {type: GRPC}}\n" },
	{ "single_model", ACCEPTS, WT "918", NULL, "  predictors:\n" MODEL_PRED("p1", "") },
	{ "graph_without_name", REJECTS, WT "948; " CRD "6556", "spec.predictors[0].graph.name",
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier")) "    graph: {}\n" },
	{ "no_engine_multi_unit_graph", REJECTS, WT "981; " WH "269",
	  "spec.predictors[0].annotations[\"seldon.io/no-engine\"]",
	  "  predictors:\n  - name: p1\n    annotations: {seldon.io/no-engine: \"true\"}\n"
	  CONTAINERS(C("classifier") ", " C("classifier2"))
	  "    graph: {name: classifier, children: [{name: classifier2}]}\n" },
	{ "duplicate_predictor_name", REJECTS, WT "1032; " WH "275", "spec.predictors[1].name",
	  "  predictors:\n" MODEL_PRED("p1", "    traffic: 50\n")
	  MODEL_PRED("p1", "    traffic: 50\n") },
	{ "traffic_unset_two_predictors", REJECTS, WT "1087; " WH "156",
	  "spec.predictors[1].traffic",
	  "  predictors:\n" MODEL_PRED("p1", "") MODEL_PRED("p2", "") },
	/* Seldon's test skips the schema; the API server requires graph.name first. */
	{ "abtest_root_without_name", REJECTS, WT "1140; " CRD "6556",
	  "spec.predictors[0].graph.name",
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier1") ", " C("classifier2"))
	  "    graph: {implementation: RANDOM_ABTEST, children: [{name: classifier1}, "
	  "{name: classifier2}]}\n" },
	{ "abtest_root_empty_name", ACCEPTS, WT "1140; " WH "97", NULL,
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier1") ", " C("classifier2"))
	  "    graph: {name: \"\", implementation: RANDOM_ABTEST, children: [{name: classifier1}, "
	  "{name: classifier2}]}\n" },
	{ "tensorflow_protocol_sklearn", REJECTS, WT "1188; " WH "105", "spec.predictors[0].graph",
	  "  protocol: tensorflow\n" SERVER("SKLEARN_SERVER", URI), F_CUSTOM },
	{ "tensorflow_protocol_tfserver", ACCEPTS, WT "1217", NULL,
	  "  protocol: tensorflow\n" SERVER("TENSORFLOW_SERVER", URI), F_CUSTOM },
	{ "kfserving_protocol", ACCEPTS, WT "1241", NULL,
	  "  protocol: kfserving\n" SERVER("TENSORFLOW_SERVER", URI), F_CUSTOM },
	{ "v2_protocol", ACCEPTS, WT "1264", NULL,
	  "  protocol: v2\n" SERVER("TENSORFLOW_SERVER", URI), F_CUSTOM },
	{ "predictor_without_graph", REJECTS, WT "1288; " CRD "6693", "spec.predictors[0].graph",
	  "  transport: grpc\n  predictors:\n  - name: p1\n" },
	{ "only_predictor_is_shadow", REJECTS, WT "1306; " WH "228", "spec.predictors[0].shadow",
	  "  transport: grpc\n  predictors:\n  - name: p1\n    shadow: true\n"
	  TF_GRAPH(URI), F_CUSTOM },
	{ "no_predictors", REJECTS, WT "1333; " WH "259", "spec.predictors",
	  "  transport: grpc\n  predictors: []\n" },
	{ "two_shadows", REJECTS, WT "1347; " WH "145", "spec.predictors[2].shadow",
	  "  protocol: tensorflow\n  predictors:\n  - name: p1\n" TF_GRAPH(URI)
	  "  - name: p2\n    shadow: true\n" TF_GRAPH(URI)
	  "  - name: p3\n    shadow: true\n" TF_GRAPH(URI), F_CUSTOM },
	{ "shadow_traffic_101", REJECTS, WT "1389; " WH "148", "spec.predictors[1].traffic",
	  "  protocol: tensorflow\n  predictors:\n  - name: p1\n    traffic: 100\n" TF_GRAPH(URI)
	  "  - name: p2\n    shadow: true\n    traffic: 101\n" TF_GRAPH(URI), F_CUSTOM },
	{ "two_prepackaged_two_pods", ACCEPTS, WT "1423; " WH "109", NULL,
	  "  predictors:\n  - name: p1\n"
	  "    componentSpecs:\n"
	  "    - spec: {containers: [" C("classifier") "]}\n"
	  "    - spec: {containers: [{name: classifier2}]}\n"
	  "    graph:\n      name: classifier\n      implementation: TENSORFLOW_SERVER\n"
	  "      modelUri: s3://mybucket/model\n      children:\n"
	  "      - {name: classifier2, implementation: TENSORFLOW_SERVER, "
	  "modelUri: s3://mybucket/model}\n", F_CUSTOM },
	{ "svc_name_duplicate", REJECTS, WT "1479; " WH "193",
	  "spec.predictors[1].annotations[\"seldon.io/svc-name\"]",
	  "  transport: grpc\n  predictors:\n"
	  "  - name: p1\n    annotations: {seldon.io/svc-name: svc1}\n    traffic: 50\n"
	  TF_GRAPH(URI)
	  "  - name: p2\n    annotations: {seldon.io/svc-name: svc1}\n    traffic: 50\n"
	  TF_GRAPH(URI), F_CUSTOM },
	{ "svc_name_distinct", ACCEPTS, WT "1521", NULL,
	  "  transport: grpc\n  predictors:\n"
	  "  - name: p1\n    annotations: {seldon.io/svc-name: svc1}\n    traffic: 50\n"
	  TF_GRAPH(URI)
	  "  - name: p2\n    annotations: {seldon.io/svc-name: svc2}\n    traffic: 50\n"
	  TF_GRAPH(URI), F_CUSTOM },

	/* ------------------------------- rules Seldon's tests leave out */
	{ "protocol_upper_case", REJECTS, WH "238", "spec.protocol",
	  "  protocol: V2\n  predictors:\n" MODEL_PRED("p1", "") },
	{ "transport_rest", ACCEPTS, WH "243", NULL,
	  "  transport: rest\n  predictors:\n" MODEL_PRED("p1", "") },
	{ "kafka_without_env", REJECTS, WH "206", "spec.predictors[0].svcOrchSpec.env",
	  "  serverType: kafka\n  predictors:\n" MODEL_PRED("p1", "") },
	{ "kafka_two_of_three", REJECTS, WH "217", "spec.predictors[0].svcOrchSpec.env",
	  "  serverType: kafka\n  predictors:\n"
	  MODEL_PRED("p1", "    svcOrchSpec: {env: [{name: KAFKA_BROKER, value: b}, "
			   "{name: KAFKA_INPUT_TOPIC, value: i}]}\n") },
	{ "kafka_all_three", ACCEPTS, WH "211", NULL,
	  "  serverType: kafka\n  predictors:\n"
	  MODEL_PRED("p1", "    svcOrchSpec: {env: [{name: KAFKA_BROKER, value: b}, "
			   "{name: KAFKA_INPUT_TOPIC, value: i}, "
			   "{name: KAFKA_OUTPUT_TOPIC, value: o}]}\n") },
	/* Seldon counts entries with one of the names, not distinct names. */
	{ "kafka_one_name_thrice", ACCEPTS, WH "213", NULL,
	  "  serverType: kafka\n  predictors:\n"
	  MODEL_PRED("p1", "    svcOrchSpec: {env: [{name: KAFKA_BROKER}, {name: KAFKA_BROKER}, "
			   "{name: KAFKA_BROKER}]}\n") },
	{ "unit_without_container", REJECTS, WH "89", "spec.predictors[0].graph",
	  "  predictors:\n  - name: p1\n    graph: {name: classifier}\n" },
	{ "child_without_container", REJECTS, WH "130", "spec.predictors[0].graph.children[0]",
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, children: [{name: missing}]}\n" },
	{ "container_of_other_predictor", REJECTS, WH "57", "spec.predictors[1].graph",
	  "  predictors:\n" MODEL_PRED("p1", "    traffic: 50\n")
	  "  - name: p2\n    traffic: 50\n    graph: {name: classifier}\n" },
	{ "unknown_implementation_needs_container", REJECTS, WH "87", "spec.predictors[0].graph",
	  "  predictors:\n  - name: p1\n"
	  "    graph: {name: classifier, implementation: UNKNOWN_IMPLEMENTATION}\n" },
	{ "builtin_implementation_no_container", ACCEPTS, WH "97", NULL,
	  "  predictors:\n  - name: p1\n    graph: {name: classifier, implementation: SIMPLE_MODEL}\n" },
	/* An empty implementation is neither unset nor a prepackaged server: no unit rule. */
	{ "empty_implementation", ACCEPTS, WH "87, prepack.go IsPrepack", NULL,
	  "  predictors:\n  - name: p1\n    graph: {name: classifier, implementation: \"\"}\n" },
	{ "unknown_type_without_methods", REJECTS, WH "93", "spec.predictors[0].graph",
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, type: UNKNOWN_TYPE}\n" },
	{ "unknown_type_empty_methods", REJECTS, WH "93", "spec.predictors[0].graph",
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, type: UNKNOWN_TYPE, methods: []}\n" },
	{ "unknown_type_with_methods", ACCEPTS, WH "93", NULL,
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, type: UNKNOWN_TYPE, methods: [TRANSFORM_INPUT]}\n" },
	{ "prepackaged_without_model_uri", REJECTS, WH "99", "spec.predictors[0].graph",
	  SERVER("SKLEARN_SERVER", "") },
	{ "huggingface_without_model_uri", ACCEPTS, WH "99; " VALUES "168", NULL,
	  SERVER("HUGGINGFACE_SERVER", "") },
	{ "huggingface_tensorflow_protocol", REJECTS, WH "105", "spec.predictors[0].graph",
	  "  protocol: tensorflow\n" SERVER("HUGGINGFACE_SERVER", "") },
	{ "xgboost_tensorflow_protocol", REJECTS, WH "105", "spec.predictors[0].graph",
	  "  protocol: tensorflow\n" SERVER("XGBOOST_SERVER", URI) },
	{ "mlflow_tensorflow_protocol", REJECTS, WH "105", "spec.predictors[0].graph",
	  "  protocol: tensorflow\n" SERVER("MLFLOW_SERVER", URI) },
	{ "triton_tensorflow_protocol", ACCEPTS, WH "105; " VALUES "163", NULL,
	  "  protocol: tensorflow\n" SERVER("TRITON_SERVER", URI) },
	{ "helm_default_servers", ACCEPTS, VALUES "130", NULL,
	  "  predictors:\n"
	  "  - name: p1\n    traffic: 20\n    graph: {name: a, implementation: MLFLOW_SERVER" URI "}\n"
	  "  - name: p2\n    traffic: 20\n    graph: {name: a, implementation: XGBOOST_SERVER" URI "}\n"
	  "  - name: p3\n    traffic: 20\n    graph: {name: a, implementation: TRITON_SERVER" URI "}\n"
	  "  - name: p4\n    traffic: 20\n    graph: {name: a, implementation: TEMPO_SERVER" URI "}\n"
	  "  - name: p5\n    traffic: 20\n    graph: {name: a, implementation: SKLEARN_SERVER" URI "}\n" },
	{ "server_not_in_seldon_config", REJECTS, WH "117; " VALUES "130", "spec.predictors[0].graph",
	  SERVER("MY_SERVER", URI) },
	{ "server_with_own_image", ACCEPTS, WH "109", NULL,
	  "  predictors:\n  - name: p1\n    componentSpecs: [{spec: {containers: [{name: classifier, "
	  "image: me/server:1}]}}]\n"
	  "    graph: {name: classifier, implementation: MY_SERVER" URI "}\n" },
	{ "server_container_without_image", REJECTS, WH "109", "spec.predictors[0].graph",
	  "  predictors:\n  - name: p1\n    componentSpecs: [{spec: {containers: [{name: classifier}]}}]\n"
	  "    graph: {name: classifier, implementation: MY_SERVER" URI "}\n" },
	{ "server_in_custom_seldon_config", ACCEPTS, WH "117; " WT "167", NULL,
	  SERVER("CUSTOM_SERVER", URI), F_CUSTOM },
	{ "helm_server_missing_from_custom_config", REJECTS, WH "117", "spec.predictors[0].graph",
	  SERVER("HUGGINGFACE_SERVER", ""), F_CUSTOM },
	{ "cluster_already_judged_servers", ACCEPTS, WH "111 (the cluster's ConfigMap)", NULL,
	  SERVER("MY_SERVER", URI), F_CLUSTER },
	{ "cluster_judged_still_needs_model_uri", REJECTS, WH "99", "spec.predictors[0].graph",
	  SERVER("MY_SERVER", ""), F_CLUSTER },
	{ "logger_without_mode", REJECTS, WH "125", "spec.predictors[0].graph",
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, logger: {url: http://log}}\n" },
	{ "logger_with_mode", ACCEPTS, WH "125", NULL,
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, logger: {mode: all}}\n" },
	{ "no_engine_single_unit", ACCEPTS, WH "270", NULL,
	  "  predictors:\n"
	  MODEL_PRED("p1", "    annotations: {seldon.io/no-engine: \"false\"}\n") },
	{ "endpoint_type_matches_transport", ACCEPTS, WH "289", NULL,
	  "  transport: grpc\n  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, endpoint: {type: GRPC}}\n" },
	{ "endpoint_type_without_transport", ACCEPTS, WH "287", NULL,
	  "  predictors:\n  - name: p1\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, endpoint: {type: REST}}\n" },
	{ "endpoint_types_across_predictors", REJECTS, WH "267", "spec.predictors",
	  "  predictors:\n"
	  "  - name: p1\n    traffic: 50\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, endpoint: {type: REST}}\n"
	  "  - name: p2\n    traffic: 50\n" CONTAINERS(C("classifier"))
	  "    graph: {name: classifier, endpoint: {type: GRPC}}\n" },
	{ "single_predictor_traffic_50", REJECTS, WH "159", "spec.predictors[0].traffic",
	  "  predictors:\n" SK_PRED("p1", "    traffic: 50\n") },
	{ "single_predictor_traffic_150", ACCEPTS, WH "159", NULL,
	  "  predictors:\n" SK_PRED("p1", "    traffic: 150\n") },
	{ "single_predictor_traffic_0", ACCEPTS, WH "159", NULL,
	  "  predictors:\n" SK_PRED("p1", "    traffic: 0\n") },
	{ "single_predictor_traffic_negative", ACCEPTS, WH "159", NULL,
	  "  predictors:\n" SK_PRED("p1", "    traffic: -5\n") },
	/* Seldon's single-predictor rule counts the shadow: one main beside it is not checked. */
	{ "main_50_beside_shadow", ACCEPTS, WH "156, 159", NULL,
	  "  predictors:\n" SK_PRED("main", "    traffic: 50\n")
	  SK_PRED("mirror", "    shadow: true\n") },
	{ "two_shadows_no_main", REJECTS, WH "145", "spec.predictors[1].shadow",
	  "  predictors:\n" SK_PRED("a", "    shadow: true\n") SK_PRED("b", "    shadow: true\n") },
	{ "two_mains_60_40", ACCEPTS, WH "156", NULL,
	  "  predictors:\n" SK_PRED("a", "    traffic: 60\n") SK_PRED("b", "    traffic: 40\n") },
	{ "two_mains_sum_110", REJECTS, WH "156", "spec.predictors[1].traffic",
	  "  predictors:\n" SK_PRED("a", "    traffic: 60\n") SK_PRED("b", "    traffic: 50\n") },
	{ "negative_share", FERRY_CANNOT, WH "156 (sums to 100)", NULL,
	  "  predictors:\n" SK_PRED("a", "    traffic: 110\n") SK_PRED("b", "    traffic: -10\n") },
	/* Seldon sums in int32: these wrap around to 100. */
	{ "int32_wraparound", FERRY_CANNOT, WH "152 (int32 sum)", NULL,
	  "  predictors:\n" SK_PRED("a", "    traffic: 2147483647\n")
	  SK_PRED("b", "    traffic: 2147483647\n") SK_PRED("c", "    traffic: 102\n") },
	{ "empty_predictor_name", ACCEPTS, CRD "6693 (present, may be empty)", NULL,
	  "  predictors:\n" SK_PRED("\"\"", "") },
	{ "empty_predictor_names_twice", REJECTS, WH "275", "spec.predictors[1].name",
	  "  predictors:\n" SK_PRED("\"\"", "    traffic: 50\n") SK_PRED("\"\"", "    traffic: 50\n") },
	{ "svc_name_empty_twice", REJECTS, WH "192",
	  "spec.predictors[1].annotations[\"seldon.io/svc-name\"]",
	  "  predictors:\n" SK_PRED("a", "    traffic: 50\n    annotations: {seldon.io/svc-name: \"\"}\n")
	  SK_PRED("b", "    traffic: 50\n    annotations: {seldon.io/svc-name: \"\"}\n") },
	{ "negative_replicas", ACCEPTS, CRD "6689 (no minimum)", NULL,
	  "  predictors:\n" SK_PRED("a", "    replicas: -1\n") },
	{ "predictor_name_too_long_for_ferry", FERRY_CANNOT, CRD "6693", NULL,
	  "  predictors:\n"
	  SK_PRED("p123456789012345678901234567890123456789012345678901234567890123", "") },

	/* ----------------------------------------- the CRD's structure */
	{ "no_spec", REJECTS, WH "259", "spec", NULL },
	{ "spec_without_predictors", REJECTS, CRD "6707", "spec.predictors", "  replicas: 1\n" },
	{ "predictor_without_name", REJECTS, CRD "6694", "spec.predictors[0].name",
	  "  predictors:\n  - traffic: 100\n" SK_GRAPH },
	{ "container_without_name", REJECTS, CRD "4988 (Container requires name)",
	  "spec.predictors[0].componentSpecs[0].spec.containers[0].name",
	  "  predictors:\n  - name: p1\n    componentSpecs: [{spec: {containers: [{image: x}]}}]\n"
	  SK_GRAPH },
	{ "pod_spec_without_containers", REJECTS, CRD "4988",
	  "spec.predictors[0].componentSpecs[0].spec.containers",
	  "  predictors:\n  - name: p1\n    componentSpecs: [{spec: {nodeName: n}}]\n" SK_GRAPH },
	{ "component_spec_null", REJECTS, CRD "63 (items are objects)",
	  "spec.predictors[0].componentSpecs[0]",
	  "  predictors:\n  - name: p1\n    componentSpecs: [~]\n" SK_GRAPH },
	{ "traffic_quoted", REJECTS, CRD "6689", "spec.predictors[0].traffic",
	  "  predictors:\n" SK_PRED("p1", "    traffic: \"100\"\n") },
	{ "traffic_beyond_int32", REJECTS, CRD "6690 (format int32)", "spec.predictors[1].traffic",
	  "  predictors:\n" SK_PRED("a", "    traffic: 60\n")
	  SK_PRED("b", "    traffic: 10000000000\n") },
	{ "traffic_whole_float", ACCEPTS, CRD "6689", NULL,
	  "  predictors:\n" SK_PRED("a", "    traffic: 60.0\n") SK_PRED("b", "    traffic: 40\n") },
	{ "shadow_quoted", REJECTS, CRD "6571", "spec.predictors[1].shadow",
	  "  predictors:\n" SK_PRED("a", "") SK_PRED("b", "    shadow: \"true\"\n") },
	{ "parameter_without_value", REJECTS, CRD "6545",
	  "spec.predictors[0].graph.parameters[0].value",
	  "  predictors:\n  - name: p1\n    graph: {name: c, implementation: SKLEARN_SERVER" URI
	  ", parameters: [{name: x, type: INT}]}\n" },
	{ "env_without_name", REJECTS, CRD "6660", "spec.predictors[0].svcOrchSpec.env[0].name",
	  "  predictors:\n" SK_PRED("p1", "    svcOrchSpec: {env: [{value: v}]}\n") },
	{ "null_traffic_is_unset", ACCEPTS, CRD "6689 (nulls pruned)", NULL,
	  "  predictors:\n" SK_PRED("p1", "    traffic: ~\n") },
};
/* clang-format on */

struct collected {
	struct ferry_config_error errs[32];
	size_t n;
};

static void collect(void *arg, const struct ferry_config_error *err)
{
	struct collected *c = arg;

	if (c->n < sizeof(c->errs) / sizeof(c->errs[0]))
		c->errs[c->n] = *err;
	c->n++;
}

static char *case_text(const char *api_version, const char *spec)
{
	char *text;

	if (asprintf(&text,
		     "apiVersion: machinelearning.seldon.io/%s\n"
		     "kind: SeldonDeployment\n"
		     "metadata:\n"
		     "  name: mydep\n"
		     "  namespace: default\n"
		     "%s%s",
		     api_version, spec ? "spec:\n" : "", spec ? spec : "") < 0)
		return NULL;
	return text;
}

static struct ferry_seldon_servers *custom_servers(void)
{
	char path[] = "/tmp/ferry-seldon-config-XXXXXX";
	struct ferry_seldon_servers *s = NULL;
	struct ferry_config_error err;
	FILE *f;
	int fd;

	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	if (f) {
		fputs(custom_config, f);
		if (!fclose(f))
			s = ferry_seldon_servers__load(path, &err);
	} else {
		close(fd);
	}
	unlink(path);
	return s;
}

static bool has_field(const struct collected *c, const char *field)
{
	for (size_t i = 0; i < c->n && i < 32; i++)
		if (!strcmp(c->errs[i].field, field))
			return true;
	return false;
}

static void dump(const char *what, const struct collected *c)
{
	char line[1600];

	for (size_t i = 0; i < c->n && i < 32; i++) {
		ferry_config_error__format(&c->errs[i], line, sizeof(line));
		fprintf(stderr, "      %s: %s\n", what, line);
	}
}

/* The webhook module alone, on the parsed manifest (with positions). */
static bool judge_alone(const struct seldon_case *tc, const struct ferry_seldon_servers *servers)
{
	struct ferry_config_error perr;
	struct ferry_manifest *mf = NULL;
	struct collected got = {};
	char *text = case_text("v1", tc->spec);
	bool ok = false;
	int n;

	if (!ASSERT_TRUE(text, "text"))
		goto out;
	mf = ferry_manifest__parse(text, strlen(text), "case.yaml", false, &perr);
	if (!ASSERT_TRUE(mf && ferry_manifest__ndocs(mf) == 1, tc->name))
		goto out;
	n = ferry_seldon_webhook__check(&(struct ferry_seldon_input){
		.sdep = ferry_manifest__doc(mf, 0),
		.mf = mf,
		.file = "case.yaml",
		.object = "SeldonDeployment default/mydep",
		.servers = tc->flags & F_CUSTOM ? servers : NULL,
		.cluster_judged = tc->flags & F_CLUSTER,
		.report = collect,
		.arg = &got,
	});
	if (!ASSERT_EQ(n, (long long)got.n, "return value counts the reports"))
		goto out;
	if (tc->verdict != REJECTS) {
		ok = ASSERT_EQ(n, 0, tc->name);
		goto out;
	}
	if (!ASSERT_GE(n, 1, tc->name) || !ASSERT_TRUE(has_field(&got, tc->field), tc->field))
		goto out;
	for (size_t i = 0; i < got.n && i < 32; i++) {
		const struct ferry_config_error *e = &got.errs[i];

		/* Each error points at the text, cites the rule's origin and says what to do. */
		if (!ASSERT_GE(e->line, 1, "line") ||
		    !ASSERT_TRUE(strstr(e->message, "v1.18.2") || strstr(e->message, "CRD"),
				 "rule cited") ||
		    !ASSERT_STREQ(e->object, "SeldonDeployment default/mydep", "object"))
			goto out;
	}
	ok = true;
out:
	if (!ok || getenv("FERRY_TEST_VERBOSE"))
		dump(tc->name, &got);
	ferry_manifest__put(mf);
	free(text);
	return ok;
}

/* The whole store (ferry's own restrictions included), as each served version. */
static bool judge_in_store(const struct seldon_case *tc, const struct ferry_seldon_servers *servers)
{
	static const char *const versions[] = { "v1", "v1alpha2", "v1alpha3" };
	bool ok = true;

	for (size_t v = 0; v < 3 && ok; v++) {
		struct ferry_config_store *st = ferry_config_store__new();
		struct ferry_config_error perr;
		struct ferry_manifest *mf = NULL;
		struct collected got = {};
		char *text = case_text(versions[v], tc->spec);
		int ret;

		ok = false;
		if (!ASSERT_TRUE(st && text, "setup"))
			goto next;
		mf = ferry_manifest__parse(text, strlen(text), "case.yaml", false, &perr);
		if (!ASSERT_TRUE(mf, "parse"))
			goto next;
		ferry_config_store__set_seldon(st, tc->flags & F_CUSTOM ? servers : NULL,
					       tc->flags & F_CLUSTER);
		ret = ferry_config_store__put(st, ferry_manifest__doc(mf, 0), "kubernetes");
		for (size_t i = 0; i < ferry_config_store__nerrors(st); i++)
			collect(&got, ferry_config_store__error(st, i));
		switch (tc->verdict) {
		case ACCEPTS:
			ok = ASSERT_EQ(ret, 0, versions[v]) && ASSERT_EQ(got.n, 0, "errors");
			break;
		case REJECTS:
			ok = ASSERT_EQ(ret, -EINVAL, versions[v]) &&
			     ASSERT_TRUE(has_field(&got, tc->field), tc->field);
			break;
		case FERRY_CANNOT:
			ok = ASSERT_EQ(ret, -EINVAL, versions[v]) &&
			     ASSERT_GE(got.n, 1, "errors") &&
			     ASSERT_TRUE(!strncmp(got.errs[0].message, "ferry cannot balance", 20),
					 "starts with \"ferry cannot balance\"");
			break;
		}
next:
		if (!ok)
			dump(versions[v], &got);
		ferry_manifest__put(mf);
		ferry_config_store__free(st);
		free(text);
	}
	return ok;
}

static void test_verdicts(void)
{
	struct ferry_seldon_servers *servers = custom_servers();
	size_t nbad = 0, nreject = 0, naccept = 0;

	if (!ASSERT_TRUE(servers, "custom seldon-config"))
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct seldon_case *tc = &cases[i];
		bool alone = judge_alone(tc, servers), store = judge_in_store(tc, servers);

		if (!alone || !store) {
			nbad++;
			fprintf(stderr, "    case %s (Seldon %s, %s): %s%s\n", tc->name,
				tc->verdict == REJECTS ? "rejects" : "accepts", tc->source,
				alone ? "" : "webhook module disagrees ",
				store ? "" : "store disagrees");
		}
		nreject += tc->verdict == REJECTS;
		naccept += tc->verdict != REJECTS;
	}
	ferry_seldon_servers__free(servers);
	fprintf(stderr, "    %zu cases: Seldon rejects %zu, accepts %zu\n",
		sizeof(cases) / sizeof(cases[0]), nreject, naccept);
	ASSERT_GE(sizeof(cases) / sizeof(cases[0]), 50, "cases");
	ASSERT_EQ(nbad, 0, "cases where ferry's verdict differs");
}

/* Builds a deployment of n predictors whose traffic sums to 100. */
static char *many_predictors(size_t n)
{
	size_t len = 0;
	char *spec = NULL, *text;
	FILE *f = open_memstream(&spec, &len);

	if (!f)
		return NULL;
	fputs("  predictors:\n", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  - name: p%zu\n    traffic: %zu\n%s", i,
			i ? 100 / n : 100 - (n - 1) * (100 / n), SK_GRAPH);
	fclose(f);
	text = spec;
	return text;
}

/* Seldon has no limit on predictors; ferry balances at most FERRY_MAX_SVC_PREDICTORS. */
static void test_predictor_limit(void)
{
	struct seldon_case tc = { "max_predictors", ACCEPTS, WH "259", NULL, NULL };
	char *at_max = many_predictors(FERRY_MAX_SVC_PREDICTORS);
	char *over = many_predictors(FERRY_MAX_SVC_PREDICTORS + 1);

	if (!ASSERT_TRUE(at_max && over, "specs"))
		goto out;
	tc.spec = at_max;
	ASSERT_TRUE(judge_alone(&tc, NULL) && judge_in_store(&tc, NULL), "at the limit");
	tc.spec = over;
	tc.verdict = FERRY_CANNOT;
	ASSERT_TRUE(judge_alone(&tc, NULL) && judge_in_store(&tc, NULL), "one over");
out:
	free(at_max);
	free(over);
}

/* A chain of units u0..u11 (u0 the graph); every unit but u<missing> has a container. */
static char *deep_graph(int missing)
{
	size_t len = 0;
	char *spec = NULL;
	FILE *f = open_memstream(&spec, &len);

	if (!f)
		return NULL;
	fputs("  predictors:\n  - name: p1\n    componentSpecs: [{spec: {containers: [", f);
	for (int d = 0; d <= 11; d++)
		if (d != missing)
			fprintf(f, "%s{name: u%d, image: i}", d ? ", " : "", d);
	fputs("]}}]\n    graph: ", f);
	for (int d = 0; d < 11; d++)
		fprintf(f, "{name: u%d, children: [", d);
	fputs("{name: u11}", f);
	for (int d = 0; d < 11; d++)
		fputs("]}", f);
	fputs("\n", f);
	fclose(f);
	return spec;
}

/*
 * The CRD spells graph.children out ten levels deep: the API server prunes
 * deeper units, so a unit at depth 11 without a container is never seen,
 * while one at depth 10 is.
 */
static void test_graph_depth(void)
{
	struct seldon_case tc = { "graph_depth_11", ACCEPTS, CRD "5835 (children to depth 10)",
				  NULL, NULL };
	char field[256] = "spec.predictors[0].graph";
	char *at11 = deep_graph(11), *at10 = deep_graph(10);

	if (!ASSERT_TRUE(at11 && at10, "specs"))
		goto out;
	tc.spec = at11;
	ASSERT_TRUE(judge_alone(&tc, NULL) && judge_in_store(&tc, NULL), "depth 11 pruned");
	for (int d = 0; d < 10; d++)
		strcat(field, ".children[0]");
	tc.name = "graph_depth_10";
	tc.spec = at10;
	tc.verdict = REJECTS;
	tc.source = WH "89";
	tc.field = field;
	ASSERT_TRUE(judge_alone(&tc, NULL) && judge_in_store(&tc, NULL), "depth 10 judged");
out:
	free(at11);
	free(at10);
}

static void test_servers(void)
{
	struct ferry_seldon_servers *def = ferry_seldon_servers__defaults(), *custom = NULL, *bad;
	static const char *const helm[] = { "MLFLOW_SERVER",	 "SKLEARN_SERVER",
					    "TENSORFLOW_SERVER", "XGBOOST_SERVER",
					    "TRITON_SERVER",	 "HUGGINGFACE_SERVER",
					    "TEMPO_SERVER" };
	struct ferry_config_error err;
	char path[] = "/tmp/ferry-seldon-bad-XXXXXX";
	int fd;

	if (!ASSERT_TRUE(def, "defaults"))
		return;
	for (size_t i = 0; i < 7; i++)
		ASSERT_TRUE(ferry_seldon_servers__has(def, helm[i]), helm[i]);
	ASSERT_FALSE(ferry_seldon_servers__has(def, "MY_SERVER"), "not a Helm server");
	custom = custom_servers();
	if (!ASSERT_TRUE(custom, "load"))
		goto out;
	ASSERT_TRUE(ferry_seldon_servers__has(custom, "CUSTOM_SERVER"), "custom server");
	ASSERT_TRUE(ferry_seldon_servers__has(custom, "TENSORFLOW_SERVER"), "listed");
	ASSERT_FALSE(ferry_seldon_servers__has(custom, "HUGGINGFACE_SERVER"),
		     "replaced, not merged");

	/* predictor_servers that is not JSON: refused with its position. */
	fd = mkstemp(path);
	if (!ASSERT_GE(fd, 0, "mkstemp"))
		goto out;
	if (write(fd, "kind: ConfigMap\ndata:\n  predictor_servers: '{nope'\n", 51) != 51)
		test__fail(__FILE__, __LINE__, "write", "short write");
	close(fd);
	errno = 0;
	bad = ferry_seldon_servers__load(path, &err);
	ASSERT_TRUE(!bad && errno == EINVAL, "bad JSON refused");
	ASSERT_STREQ(err.field, "data.predictor_servers", "field");
	ASSERT_EQ(err.line, 3, "line");
	ferry_seldon_servers__free(bad);
	unlink(path);
out:
	ferry_seldon_servers__free(def);
	ferry_seldon_servers__free(custom);
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	ferry_log_level = getenv("FERRY_LOG_DEBUG") ? FERRY_LOG_DEBUG : FERRY_LOG_ERROR;

	RUN_TEST(SUITE, test_verdicts);
	RUN_TEST(SUITE, test_predictor_limit);
	RUN_TEST(SUITE, test_graph_depth);
	RUN_TEST(SUITE, test_servers);
	return test__summary();
}
