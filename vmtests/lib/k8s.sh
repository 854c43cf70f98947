# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# The fake Kubernetes API server (tests/k8s_apiserver.py) for the scenarios
# that run ferryd --kubernetes: a CA and a server certificate for 127.0.0.1,
# the server in the node namespace on the node's loopback, a kubeconfig with
# a bearer token, and its /_control endpoint (state and operations). Sourced
# after topo.sh, never run.

# fe_k8s_start TOKEN SCENARIO_JSON: PKI in $FE_RUN/pki, the server started
# with that scenario, $FE_RUN/kubeconfig written. Sets FE_K8S_PKI, FE_K8S_TOKEN
# and FE_K8S_PORT.
fe_k8s_start() {
	local ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

	FE_K8S_TOKEN=$1
	FE_K8S_PKI=$FE_RUN/pki
	mkdir -p "$FE_K8S_PKI"
	echo "subjectAltName=IP:127.0.0.1" >"$FE_K8S_PKI/san.ext"
	# shellcheck disable=SC2086
	(cd "$FE_K8S_PKI" && openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=fe-ca &&
		openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1 &&
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out server.crt -days 2 -extfile san.ext) >/dev/null 2>&1 || fe_fail "openssl PKI"

	# The API server runs in the node namespace, on the node's loopback.
	ip netns exec "$FE_NODE" "$FE_PY" "$FE_TOP/tests/k8s_apiserver.py" \
		--cert "$FE_K8S_PKI/server.crt" --key "$FE_K8S_PKI/server.key" --token "$FE_K8S_TOKEN" \
		--port-file "$FE_RUN/port" --scenario "$2" >>"$FE_RUN/apiserver.log" 2>&1 &
	FE_PIDS+=($!)
	fe_wait 10 test -s "$FE_RUN/port" || fe_fail "the fake API server did not start"
	FE_K8S_PORT=$(cat "$FE_RUN/port")
	cat >"$FE_RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: fe
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:$FE_K8S_PORT
    certificate-authority: $FE_K8S_PKI/ca.crt
contexts:
- name: fe
  context:
    cluster: fake
    user: ferryd
users:
- name: ferryd
  user:
    token: $FE_K8S_TOKEN
EOF
}

# fe_k8s_control [CURL ARGS...]: the server's /_control (GET: its state as
# JSON on stdout; with -d JSON and a JSON Content-Type: runs those ops).
fe_k8s_control() {
	fe_ns "$FE_NODE" curl -sf --max-time 5 --cacert "$FE_K8S_PKI/ca.crt" \
		-H "Authorization: Bearer $FE_K8S_TOKEN" "$@" "https://127.0.0.1:$FE_K8S_PORT/_control"
}

# fe_k8s_ferryd LOG [NAME=VALUE...] -- ARGS...: ferryd --kubernetes with the
# kubeconfig, in the node namespace, in the background, its output appended
# to LOG, with those environment variables (the downward API's POD_NAME and
# the like). Its pid in FE_LAST_PID (and FE_PIDS, for the cleanup).
fe_k8s_ferryd() {
	local log=$1 vars=()

	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		vars+=("$1")
		shift
	done
	shift
	nsenter --net="/run/netns/$FE_NODE" env "${vars[@]}" "$FERRY_BUILD/ferryd" --kubernetes \
		--kubeconfig "$FE_RUN/kubeconfig" "$@" >>"$log" 2>&1 &
	# shellcheck disable=SC2034 # read by the scenarios
	FE_LAST_PID=$!
	FE_PIDS+=($!)
}

# fe_k8s_py ARGS...: Python with vmtests/bin on its path, for the objects of
# vmtests/bin/k8s_objects.py.
fe_k8s_py() {
	PYTHONPATH="$FE_BIN${PYTHONPATH:+:$PYTHONPATH}" "$FE_PY" "$@"
}
