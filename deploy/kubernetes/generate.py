#!/usr/bin/env python3
"""Generate the Kubernetes manifests and kustomizations in this directory from one template.

    python deploy/kubernetes/generate.py            # rewrite the manifests
    python deploy/kubernetes/generate.py --check    # exit 1 if any is out of date
    python deploy/kubernetes/generate.py --rdma-resource rdma/rdma_shared_device_a \
        --out my-manifests/                         # the RDMA variants for your plugin

Every file is written from ``render_all()`` below; edit this file, not the YAML, then run
it and commit both. ``tests/deploy/test_kubernetes.py`` fails when they disagree. Exit
status: 0; 1 when ``--check`` finds a file out of date; 2 for a bad argument (an ``--out``
that is not a directory or cannot be written included) or an unreadable
``images/matrix.toml`` (the example overlay's pinned tag comes from it).

Each deployment is a directory that ``kubectl apply -k`` takes, holding its manifest and a
``kustomization.yaml`` that lists that manifest and ``../hf-cache``. Kustomize loads no
file from outside a kustomization's directory, but it does load another kustomization's
directory (docs/engines.md, "Kustomize"). For each engine (sglang, vllm):

- ``<engine>-1node/``: one 8-GPU node serving the FP8 checkpoint (a group of size 1);
- ``<engine>-2node/``: two 8-GPU nodes serving the BF16 checkpoint (a group of size 2);
- ``<engine>-2node-rdma/``: the same, for clusters with InfiniBand or RoCE: each pod
  also requests the RDMA device resource (``--rdma-resource``, default
  ``RDMA_RESOURCE``), which gives it the verbs devices, and the ``IPC_LOCK`` capability,
  which lets NCCL pin its RDMA buffers whatever the runtime's memlock limit (Kubernetes has
  no ulimit setting). Without the devices NCCL falls back to TCP sockets without an error,
  which the launcher's preflight refuses on hosts with HCAs (docs/engines.md, "Fabric");

each manifest holding a ``Service`` for the API, in front of the leader only, and the
``LeaderWorkerSet``. ``hf-cache/`` holds the weight cache that all of them mount.
``prefetch-<precision>/`` is a Job that fills that cache with the checkpoint, to run (and
wait for) before the LeaderWorkerSet; it lists ``../hf-cache`` too, so applying it and a
deployment applies the same claim twice, unchanged. ``example-overlay/`` is what a user's
own overlay looks like: a component that sets the image, namespace and storage class, used
by one kustomization for the prefetch Job and one for the deployment.

No manifest computes a rank or a leader: the LeaderWorkerSet controller gives every
container ``LWS_WORKER_INDEX``, ``LWS_GROUP_SIZE`` and ``LWS_LEADER_ADDRESS``, and the
launcher (``entrypoint/platforms.py``) reads them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

# The grace period the launcher's graceful stop is sized for (SHUTDOWN_TIMEOUT_S plus the
# engine's teardown): defined once, in the launcher's settings.
from entrypoint.settings import STOP_GRACE_PERIOD_S
from images.errors import UsageError
from images.matrix import load_matrix

HERE = Path(__file__).resolve().parent

# Placeholder registry: set the image in an overlay with kustomize's `images:` field (its
# transformer reaches the LeaderWorkerSet's containers without a `configurations:` entry:
# docs/engines.md, "Kustomize"), as example-overlay/ does, or write the one you push to
# (build.py --registry) here. Tags follow images/matrix.toml's scheme: `<engine>` moves with
# each release; `<engine>-<version>-<cuda>` is pinned and is what production should use.
IMAGE_REPOSITORY = "ghcr.io/your-org/longcat-deploy"

ENGINE_PORT = {"sglang": 30000, "vllm": 8000}  # the engines' default ports (docs/engines.md)
# Deployments the vendor guide describes: FP8 on one node, BF16 on two.
SHAPES = {1: "fp8", 2: "bf16"}

HF_HOME = "/root/.cache/huggingface"  # the images' HF_HOME (images/*/Dockerfile)
CACHE_CLAIM = "longcat-hf-cache"
CACHE_DIR = "hf-cache"  # the claim's kustomization, which every other one lists
CACHE_SIZE = "2Ti"  # FP8 (~560 GB) and BF16 (~1.1 TB) checkpoints side by side
HF_TOKEN_SECRET = "hf-token"
# The API key: a Secret with the key under API_KEY, mounted as a file that the launcher reads
# (API_KEY_FILE), so the key is in no container's environment (README, "Kubernetes").
API_KEY_SECRET = "longcat-api-key"
API_KEY_DIR = "/run/secrets/longcat-api-key"
SHM_SIZE = "32Gi"  # NCCL and the engines' shared-memory queues; Docker's 64 MiB breaks NCCL
GPUS_PER_NODE = 8
# The RDMA device resource of the RDMA variants. Device plugins name it differently: this is
# the example of Mellanox's k8s-rdma-shared-dev-plugin (rdma/ + its config's resourceName);
# the NVIDIA Network Operator's examples use rdma/rdma_shared_device_a (docs/engines.md,
# "Fabric"). One shared device gives a pod every HCA of the plugin's pool.
RDMA_RESOURCE = "rdma/hca_shared_devices_a"
RDMA_DEVICES_PER_POD = 1
# An extended resource name: a DNS subdomain prefix, "/", and a name (Kubernetes API
# conventions; kubectl refuses others).
_RESOURCE_NAME = re.compile(
    r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)

# Probes. A crash restarts the container at once whatever these say; they bound a *hang*.
# The startup budget covers fetching and loading the checkpoint: 240 x 30 s = 2 h.
STARTUP_PERIOD_S = 30
STARTUP_FAILURES = 240

# The prefetch Job (python -m entrypoint prefetch --verify): no GPU; a few cores for the
# transfers and the hashing. A failed run (a stall, an evicted pod) is retried, and resumes
# from the bytes already on the volume.
PREFETCH_REQUESTS = {"cpu": "2", "memory": "2Gi"}
PREFETCH_LIMITS = {"memory": "4Gi"}
PREFETCH_RETRIES = 6

# The example overlay (example-overlay/): what a user sets in one of their own. The values
# are examples; the tests check that each lands where it should.
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
EXAMPLE_ENGINE, EXAMPLE_NODES = "sglang", 2
EXAMPLE_NAMESPACE = "longcat"
EXAMPLE_IMAGE_REPOSITORY = "registry.example.com/ml/longcat-deploy"
# nfs-subdir-external-provisioner's default class: NFS, which offers ReadWriteMany.
EXAMPLE_STORAGE_CLASS = "nfs-client"

# LeaderWorkerSet's own labels on every pod (kubernetes-sigs/lws, leaderworkerset_types.go).
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


def name_of(engine: str, nodes: int) -> str:
    """The LeaderWorkerSet's name, e.g. ``longcat-sglang-2node``."""
    return f"longcat-{engine}-{nodes}node"


def labels(engine: str, nodes: int, component: str) -> dict:
    """Recommended Kubernetes labels (app.kubernetes.io/*) for one deployment."""
    return {
        "app.kubernetes.io/name": "longcat-flash",
        "app.kubernetes.io/instance": name_of(engine, nodes),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "longcat-deploy",
    }


def http_probe(period_s: int, timeout_s: int, failures: int) -> dict:
    """``GET /health`` on the container's ``http`` port."""
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": timeout_s,
        "failureThreshold": failures,
    }


def probes(engine: str, leader: bool) -> dict:
    """The probes of one pod, by role (docs/engines.md, "Node roles").

    - The leader serves the API: startup (load budget), readiness (the Service sends
      traffic only to a ready leader) and liveness on ``/health``. SGLang's ``/health``
      answers 503 while loading, then runs a one-token generation; vLLM's starts after
      the weights are loaded.
    - SGLang workers answer ``/health`` only: startup and liveness, never readiness.
    - vLLM workers are headless and serve no HTTP: no probe. Their process is the
      container's, so a crash ends the container and LeaderWorkerSet recreates the group.
    """
    if not leader and engine == "vllm":
        return {}
    found = {
        "startupProbe": http_probe(STARTUP_PERIOD_S, 10, STARTUP_FAILURES),
        # 10 x 30 s of failures before a restart: a restart reloads 560 GB or more.
        "livenessProbe": http_probe(30, 30, 10),
    }
    if leader:
        found["readinessProbe"] = http_probe(15, 30, 3)
    return found


def pod_template(engine: str, nodes: int, leader: bool, rdma_resource: str | None = None) -> dict:
    """The leader's or the workers' pod template; with ``rdma_resource``, the RDMA variant's."""
    role = "leader" if leader else "worker"
    env = [
        {"name": "ENGINE", "value": engine},
        {"name": "PRECISION", "value": SHAPES[nodes]},
        {"name": "MTP", "value": "0"},
        {"name": "HF_HOME", "value": HF_HOME},
        # optional: the default checkpoints are public; create the Secret for a private
        # MODEL or higher Hub rate limits (README, "Kubernetes").
        {
            "name": "HF_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": HF_TOKEN_SECRET, "key": "HF_TOKEN", "optional": True}
            },
        },
        {"name": "VARIANT", "value": "chat"},
        {"name": "API_KEY_FILE", "value": f"{API_KEY_DIR}/API_KEY"},
    ]
    container = {
        "name": "engine",
        "image": f"{IMAGE_REPOSITORY}:{engine}",
        "env": env,
    }
    if leader or engine == "sglang":  # a vLLM worker is headless: it listens on no port
        container["ports"] = [
            {"name": "http", "containerPort": ENGINE_PORT[engine], "protocol": "TCP"}
        ]
    limits: dict = {GPU_RESOURCE: GPUS_PER_NODE}
    if rdma_resource:
        limits[rdma_resource] = RDMA_DEVICES_PER_POD
        # NCCL pins its RDMA buffers; the runtime's default memlock limit is small.
        container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    container.update(
        {
            "resources": {"limits": limits},
            "volumeMounts": [
                {"name": "dshm", "mountPath": "/dev/shm"},
                {"name": "hf-cache", "mountPath": HF_HOME},
                {"name": "api-key", "mountPath": API_KEY_DIR, "readOnly": True},
            ],
            **probes(engine, leader),
        }
    )
    metadata: dict = {"labels": {**labels(engine, nodes, role)}}
    if leader:  # the node that serves the API serves its metrics (docs/engines.md)
        metadata["annotations"] = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(ENGINE_PORT[engine]),
            "prometheus.io/path": "/metrics",
        }
    return {
        "metadata": metadata,
        "spec": {
            # Service links would put e.g. VLLM_PORT=tcp://... into the environment when a
            # Service named "vllm" exists in the namespace, which vLLM refuses to parse.
            "enableServiceLinks": False,
            # SIGTERM, then this long for in-flight requests (SHUTDOWN_TIMEOUT_S) and the
            # engine's teardown, then SIGKILL.
            "terminationGracePeriodSeconds": STOP_GRACE_PERIOD_S,
            "containers": [container],
            "volumes": [
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
                {"name": "hf-cache", "persistentVolumeClaim": {"claimName": CACHE_CLAIM}},
                # Required: the pods wait until the Secret exists, rather than serve an
                # open API.
                {"name": "api-key", "secret": {"secretName": API_KEY_SECRET}},
            ],
        },
    }


def leader_worker_set(engine: str, nodes: int, rdma_resource: str | None = None) -> dict:
    """The LeaderWorkerSet: one group of ``nodes`` pods, the leader being rank 0."""
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name_of(engine, nodes), "labels": labels(engine, nodes, "server")},
        "spec": {
            "replicas": 1,
            # LeaderCreated: workers start with the leader. LeaderReady would deadlock, since
            # the leader is ready only once every worker has joined.
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": nodes,
                # One engine spans the group: when any pod restarts, restart them all.
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": pod_template(engine, nodes, True, rdma_resource),
                # Required by the API; with size 1 it creates no pod.
                "workerTemplate": pod_template(engine, nodes, False, rdma_resource),
            },
        },
    }


def api_service(engine: str, nodes: int) -> dict:
    """A ClusterIP Service for the OpenAI-compatible API, selecting the leader pod only."""
    port = ENGINE_PORT[engine]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{name_of(engine, nodes)}-api",
            "labels": labels(engine, nodes, "api"),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {LWS_NAME_LABEL: name_of(engine, nodes), LWS_INDEX_LABEL: "0"},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def prefetch_job(precision: str) -> dict:
    """A Job that fills the cache volume with ``precision``'s checkpoint, then exits.

    It runs the launcher's ``prefetch --verify`` (README, "Commands") from the same image,
    with the same ``PRECISION``, ``HF_HOME`` and token Secret as the deployments: the
    LeaderWorkerSet started after it finds the cache complete and does not wait on the
    Hub. Either engine's image holds the launcher; the SGLang one is used here.
    """
    name = f"longcat-prefetch-{precision}"
    job_labels = {
        "app.kubernetes.io/name": "longcat-flash",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "prefetch",
        "app.kubernetes.io/part-of": "longcat-deploy",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": job_labels},
        "spec": {
            "backoffLimit": PREFETCH_RETRIES,
            "template": {
                "metadata": {"labels": dict(job_labels)},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "enableServiceLinks": False,
                    "containers": [
                        {
                            "name": "prefetch",
                            "image": f"{IMAGE_REPOSITORY}:sglang",
                            # The image's entrypoint is the launcher: these are its arguments.
                            "args": ["prefetch", "--verify"],
                            "env": [
                                {"name": "PRECISION", "value": precision},
                                {"name": "VARIANT", "value": "chat"},
                                {"name": "HF_HOME", "value": HF_HOME},
                                {
                                    "name": "HF_TOKEN",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": HF_TOKEN_SECRET,
                                            "key": "HF_TOKEN",
                                            "optional": True,
                                        }
                                    },
                                },
                            ],
                            "resources": {
                                "requests": dict(PREFETCH_REQUESTS),
                                "limits": dict(PREFETCH_LIMITS),
                            },
                            "volumeMounts": [{"name": "hf-cache", "mountPath": HF_HOME}],
                        }
                    ],
                    "volumes": [
                        {"name": "hf-cache", "persistentVolumeClaim": {"claimName": CACHE_CLAIM}}
                    ],
                },
            },
        },
    }


def cache_claim() -> dict:
    """The weight cache shared by every pod: ReadWriteMany, so two nodes can mount it."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": CACHE_CLAIM,
            "labels": {
                "app.kubernetes.io/name": "longcat-flash",
                "app.kubernetes.io/component": "weights",
                "app.kubernetes.io/part-of": "longcat-deploy",
            },
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": CACHE_SIZE}},
        },
    }


def header(lines: list[str]) -> str:
    """A comment block: what the file deploys, and that it is generated."""
    text = ["# Generated by deploy/kubernetes/generate.py: edit that, run it, commit both."]
    text += [f"# {line}" if line else "#" for line in lines]
    return "\n".join(text) + "\n"


def dump(header_text: str, documents: list[dict]) -> str:
    """Render documents as one multi-document YAML file, in the order given."""
    body = "---\n".join(
        yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=100) for d in documents
    )
    return header_text + "---\n" + body


def kustomization(header_text: str, fields: dict, kind: str = "Kustomization") -> str:
    """A ``kustomization.yaml``: ``fields`` (resources, components, images, ...) in the order
    given, after the apiVersion and kind. ``kind`` is ``Kustomization`` or ``Component``
    (whose apiVersion is still v1alpha1 in kustomize v5)."""
    api = KUSTOMIZE_API if kind == "Kustomization" else "kustomize.config.k8s.io/v1alpha1"
    document = {"apiVersion": api, "kind": kind, **fields}
    return header_text + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, width=100
    )


def pinned_tag(engine: str) -> str:
    """The pinned tag of ``engine``'s image on its default CUDA variant, e.g.
    ``sglang-0.5.23-cu130`` (images/matrix.toml: ``[tags].full``, the first variant).

    Raises:
        images.errors.UsageError: the matrix is missing or lacks a key.
    """
    matrix = load_matrix()
    spec = matrix["engines"][engine]
    return matrix["tags"]["full"].format(
        engine=engine, version=spec["version"], cuda=spec["variants"][0]["cuda"]
    )


def example_overlay() -> dict[str, str]:
    """``{path: content}`` of example-overlay/: the settings a user changes, in one component
    that both the prefetch Job's and the deployment's kustomization use, so the two apply
    the same claim, in the same namespace."""
    deployment = f"{EXAMPLE_ENGINE}-{EXAMPLE_NODES}node"
    precision = SHAPES[EXAMPLE_NODES]
    job = f"longcat-prefetch-{precision}"
    ns = EXAMPLE_NAMESPACE
    root = "example-overlay"
    bases = (
        "Point resources at deploy/kubernetes/<directory> of your clone, or at a remote base",
        "(https://github.com/ORG/REPO//deploy/kubernetes/<directory>?ref=TAG).",
    )
    return {
        f"{root}/settings/kustomization.yaml": kustomization(
            header(
                [
                    "An example of your own overlay's settings, as a kustomize component that the",
                    "prefetch and serve kustomizations beside it both use: the image, the",
                    "namespace and the cache's storage class. Copy example-overlay/ out of the",
                    "repository and change the values; the namespace is not created for you:",
                    f"  kubectl create namespace {ns}",
                    f'and the Secrets (README, "Kubernetes") go in it: kubectl -n {ns} create secret ...',
                    "newTag replaces every container's tag, the prefetch Job's included: for a vLLM",
                    "deployment give the vllm tag (either image holds the launcher the Job runs).",
                ]
            ),
            {
                "namespace": ns,
                # Every container of the LeaderWorkerSet's leader and worker templates and of
                # the Job, whatever the tag they had (docs/engines.md, "Kustomize").
                "images": [
                    {
                        "name": IMAGE_REPOSITORY,
                        "newName": EXAMPLE_IMAGE_REPOSITORY,
                        "newTag": pinned_tag(EXAMPLE_ENGINE),
                    }
                ],
                "patches": [{"path": "storage-class.yaml"}],
            },
            kind="Component",
        ),
        f"{root}/settings/storage-class.yaml": dump(
            header(
                [
                    "The weight cache's storage class: one that offers ReadWriteMany for two-node",
                    "groups (ReadWriteOnce is enough for one node). A claim's spec cannot change",
                    'once it exists (docs/engines.md, "Kustomize"): set it before the first apply.',
                ]
            ),
            [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": CACHE_CLAIM},
                    "spec": {"storageClassName": EXAMPLE_STORAGE_CLASS},
                }
            ],
        ),
        f"{root}/prefetch/kustomization.yaml": kustomization(
            header(
                [
                    f"Step 1: fill the weight cache with the {precision.upper()} checkpoint.",
                    f"  kubectl apply -k deploy/kubernetes/{root}/prefetch",
                    f"  kubectl -n {ns} wait --for=condition=complete job/{job} --timeout=24h",
                    *bases,
                ]
            ),
            {"resources": [f"../../prefetch-{precision}"], "components": ["../settings"]},
        ),
        f"{root}/serve/kustomization.yaml": kustomization(
            header(
                [
                    f"Step 2: serve it ({deployment}); the cache's claim is the one step 1 applied.",
                    f"  kubectl apply -k deploy/kubernetes/{root}/serve",
                    *bases,
                ]
            ),
            {"resources": [f"../../{deployment}"], "components": ["../settings"]},
        ),
    }


def render_all(rdma_resource: str = RDMA_RESOURCE) -> dict[str, str]:
    """Return ``{path: content}`` for every generated file.

    Args:
        rdma_resource: the RDMA device resource the ``-rdma`` variants request.

    Returns:
        Paths relative to the output directory, with ``/`` between directory and file, e.g.
        ``sglang-2node/kustomization.yaml``.
    """
    cache = f"../{CACHE_DIR}"
    files = {
        f"{CACHE_DIR}/hf-cache-pvc.yaml": dump(
            header(
                [
                    f"The weight cache ({CACHE_SIZE}), mounted at HF_HOME={HF_HOME} by every pod.",
                    "ReadWriteMany lets both nodes of a group share one copy; a single node also",
                    "works with ReadWriteOnce. Set spec.storageClassName to a class that offers it",
                    "(in your overlay: example-overlay/settings/storage-class.yaml).",
                ]
            ),
            [cache_claim()],
        ),
        f"{CACHE_DIR}/kustomization.yaml": kustomization(
            header(
                [
                    "The weight cache's claim, which every deployment and prefetch Job lists.",
                ]
            ),
            {"resources": ["hf-cache-pvc.yaml"]},
        ),
    }
    for precision in SHAPES.values():
        job = f"longcat-prefetch-{precision}"
        directory = f"prefetch-{precision}"
        apply = [
            f"  kubectl apply -k deploy/kubernetes/{directory}",
            f"  kubectl wait --for=condition=complete job/{job} --timeout=24h",
        ]
        files[f"{directory}/{directory}.yaml"] = dump(
            header(
                [
                    f"Fills the weight cache ({cache}) with the {precision.upper()} checkpoint,",
                    "verifies it against the Hub, then exits. Run it before the LeaderWorkerSet:",
                    *apply,
                    'Several Jobs or pods on the same volume download once (README, "Before launch").',
                ]
            ),
            [prefetch_job(precision)],
        )
        files[f"{directory}/kustomization.yaml"] = kustomization(
            header(
                [
                    f"The {precision.upper()} prefetch Job and the weight cache it fills ({cache}):",
                    *apply,
                    "Deployments list the same claim: applying one after this leaves it unchanged.",
                ]
            ),
            {"resources": [cache, f"{directory}.yaml"]},
        )
    for engine in ENGINE_PORT:
        for nodes, precision in SHAPES.items():
            name = name_of(engine, nodes)
            what = "one node, 8 GPUs" if nodes == 1 else f"{nodes} nodes x 8 GPUs"
            directory = f"{engine}-{nodes}node"
            files[f"{directory}/{directory}.yaml"] = dump(
                header(
                    [
                        f"LongCat-Flash ({precision.upper()}) on {engine}, {what}.",
                        f"API: Service {name}-api, port {ENGINE_PORT[engine]} (OpenAI-compatible).",
                        f"Needs: the LeaderWorkerSet controller, {cache}, a Secret",
                        f"{API_KEY_SECRET} with key API_KEY (the key clients send), and optionally",
                        f"a Secret {HF_TOKEN_SECRET} with key HF_TOKEN.",
                        "Metrics: GET /metrics on the leader's http port (prometheus.io annotations).",
                        f"Image: {IMAGE_REPOSITORY} is a placeholder: set yours in an overlay.",
                    ]
                ),
                [api_service(engine, nodes), leader_worker_set(engine, nodes)],
            )
            files[f"{directory}/kustomization.yaml"] = kustomization(
                header(
                    [
                        f"LongCat-Flash ({precision.upper()}) on {engine}, {what}: the API Service and",
                        f"the LeaderWorkerSet ({directory}.yaml), and the weight cache ({cache}).",
                        f"  kubectl apply -k deploy/kubernetes/{directory}",
                        "Set the image, namespace or storage class in an overlay of your own",
                        "(../example-overlay), not here.",
                    ]
                ),
                {"resources": [cache, f"{directory}.yaml"]},
            )
            if nodes < 2:
                continue
            rdma = f"{directory}-rdma"
            files[f"{rdma}/{rdma}.yaml"] = dump(
                header(
                    [
                        f"LongCat-Flash ({precision.upper()}) on {engine}, {what}, over RDMA",
                        "(InfiniBand or RoCE): the same deployment as "
                        f"{directory}/, whose place it takes,",
                        f"plus the RDMA device resource {rdma_resource} and the IPC_LOCK capability.",
                        f"API: Service {name}-api, port {ENGINE_PORT[engine]} (OpenAI-compatible).",
                        f"Needs: the LeaderWorkerSet controller, {cache}, an RDMA device",
                        f"plugin offering {rdma_resource} (another name: python",
                        "deploy/kubernetes/generate.py --rdma-resource NAME --out DIR), and optionally",
                        f"a Secret {HF_TOKEN_SECRET} with key HF_TOKEN.",
                        f"Image: {IMAGE_REPOSITORY} is a placeholder: set yours in an overlay.",
                    ]
                ),
                [api_service(engine, nodes), leader_worker_set(engine, nodes, rdma_resource)],
            )
            files[f"{rdma}/kustomization.yaml"] = kustomization(
                header(
                    [
                        f"LongCat-Flash ({precision.upper()}) on {engine}, {what}, over RDMA:",
                        f"{directory}/ plus the RDMA device resource and IPC_LOCK ({rdma}.yaml),",
                        f"and the weight cache ({cache}). Same names as {directory}/, whose place it",
                        "takes.",
                        f"  kubectl apply -k deploy/kubernetes/{rdma}",
                        "Set the image, namespace or storage class in an overlay of your own",
                        "(../example-overlay), not here.",
                    ]
                ),
                {"resources": [cache, f"{rdma}.yaml"]},
            )
    files.update(example_overlay())
    return files


# The GPUs' extended resource, as NVIDIA's device plugin names it (k8s-device-plugin).
GPU_RESOURCE = "nvidia.com/gpu"


def resource_name(text: str) -> str:
    """argparse type: a Kubernetes extended resource name such as ``rdma/hca_shared_devices_a``;
    not ``GPU_RESOURCE``, which each pod already requests (``GPUS_PER_NODE``): as the RDMA
    resource it would replace that request with one device."""
    if not _RESOURCE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an extended resource name (DOMAIN/NAME, e.g. {RDMA_RESOURCE})"
        )
    if text == GPU_RESOURCE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is the GPUs' resource, which each pod already requests "
            f"({GPUS_PER_NODE}); give the RDMA device plugin's resource, e.g. {RDMA_RESOURCE}"
        )
    return text


def out_directory(text: str) -> Path:
    """argparse type for ``--out``: a directory, or a path where one can be made.

    Refused (``argparse.ArgumentTypeError``, exit status 2): a blank path (``Path("")`` is
    the current directory, where every manifest directory would land unasked), and a path
    that is, or lies below, something other than a directory (a file, ``/dev/full``): the
    writes would end in ``NotADirectoryError``.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "a blank path is no directory; give one, e.g. --out my-manifests/"
        )
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == path else f" (it lies below {str(existing)!r})"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a directory{where}; give a directory, or one to create"
        )
    return path


def main(argv: list[str] | None = None) -> int:
    """Write (or, ``--check``, compare) every file of ``render_all()`` under ``--out``.

    Returns:
        The exit status: 0; 1 when ``--check`` finds a file out of date; 2 for a bad
        argument, an ``--out`` that cannot be written (one line naming it, no
        traceback) or an unreadable ``images/matrix.toml``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file differs from the output",
    )
    parser.add_argument(
        "--out",
        type=out_directory,
        default=HERE,
        help="directory to write to or check (default: this one)",
    )
    parser.add_argument(
        "--rdma-resource",
        type=resource_name,
        default=RDMA_RESOURCE,
        help="the RDMA device resource the -rdma variants request, as your "
        f"device plugin names it (default: {RDMA_RESOURCE})",
    )
    args = parser.parse_args(argv)
    try:
        files = render_all(args.rdma_resource)
    except UsageError as exc:  # images/matrix.toml missing or incomplete
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    try:
        for relative, content in files.items():
            path = args.out / relative
            current = path.read_text() if path.exists() else None
            if current == content:
                continue
            stale.append(relative)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
    except OSError as exc:  # a directory that cannot be made or written: /proc/x, read-only
        print(
            f"error: --out {str(args.out)!r} cannot be written: {exc.filename or relative}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if args.check and stale:
        print(
            "out of date (run python deploy/kubernetes/generate.py): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
