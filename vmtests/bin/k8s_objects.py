# SPDX-License-Identifier: GPL-2.0-only
"""Kubernetes objects as the API server returns them (JSON), for the scenarios
that serve them through the fake API server (tests/k8s_apiserver.py). Imported
by their inline Python, which vmtests/lib/k8s.sh's fe_k8s_py runs with this
folder on the path. Standard library only.
"""

# A predictor's graph: the model the stand-in servers pretend to serve.
GRAPH = {"name": "model", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/iris"}


def endpoint_slice(name, service, addrs):
    """An IPv4 EndpointSlice of namespace models for service: port http
    9000/TCP, every address ready."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "models",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9000, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addrs]}
