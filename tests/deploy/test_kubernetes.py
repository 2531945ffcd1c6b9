"""deploy/k8s and deploy/kserve, checked offline against Kubernetes' own OpenAPI schemas (bundled
with kubernetes-validate, strict: unknown fields fail), plus the wiring between the manifests and
the server: probes on /readyz and /healthz, the grace period covering preStop + the server's drain,
the HPA aiming at the Deployment. The KServe CRD has no bundled schema: its predictor containers
are validated against Kubernetes' Container schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
KSERVE = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
KSERVE_GRPC = ROOT / "deploy" / "kserve" / "inferenceservice-grpc.yaml"
KUBERNETES_VERSIONS = ["1.29", "1.37"]  # the oldest version still common in managed clusters, and the newest bundled

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (test extra)")


def documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def by_kind() -> dict[str, dict]:
    return {document["kind"]: document for path in K8S for document in documents(path)}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_manifests_match_kubernetes_schemas_strictly(path, version):
    for document in documents(path):
        kubernetes_validate.validate(document, version, strict=True)


def test_a_manifest_with_a_typo_fails_validation():
    deployment = by_kind()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37", strict=True)


def server_flags(container: dict) -> dict[str, str]:
    return dict(argument.lstrip("-").split("=", 1) for argument in container.get("args", []))


def test_probes_and_grace_period_match_the_servers_drain():
    pod = by_kind()["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # Readiness through grpc.health.v1 (the same condition as /readyz), liveness through /healthz.
    assert container["readinessProbe"]["grpc"] == {"port": 8500, "service": "tensorflow.serving.PredictionService"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"] == [{"name": "http", "containerPort": 8501, "protocol": "TCP"},
                                  {"name": "grpc", "containerPort": 8500, "protocol": "TCP"}]
    assert {env["name"]: env["value"] for env in container["env"]} == {"MODEL_NAME": "chnsenticorp", "MODEL_BASE_PATH": "/models"}
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    flags = server_flags(container)
    drain = float(command[1]) + float(flags.get("shutdown_delay_seconds", 0)) + float(flags["drain_seconds"])
    assert pod["terminationGracePeriodSeconds"] >= drain + 1
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001


def test_service_and_autoscaler_point_at_the_deployment():
    kinds = by_kind()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = kinds["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"] == [
        {"name": "http", "port": 8501, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 8500, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
    ]
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", kinds["Deployment"]["metadata"]["name"])
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    claim = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == kinds["PersistentVolumeClaim"]["metadata"]["name"]


def validate_container(container: dict, version: str = "1.37") -> None:
    """Kubernetes' strict Container schema, as kubernetes-validate loads a resource's."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    schema = utils.schema_contents(f"{folder}/container-v1.json", version)
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(container)


def test_kserve_predictor_is_our_image_speaking_v1_on_its_port():
    [service] = documents(KSERVE)
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    predictor = service["spec"]["predictor"]
    assert set(predictor) <= {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containers"}
    [container] = predictor["containers"]
    validate_container(container)
    assert container["name"] == "kserve-container"
    flags = server_flags(container)
    port = int(flags["rest_api_port"])
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    # KServe's storage initializer downloads STORAGE_URI to /mnt/models; V1 serves /v1/models/<name>.
    assert flags["model_base_path"] == "/mnt/models"
    assert flags["model_name"] == service["metadata"]["name"]


def test_kserve_container_with_a_typo_fails_validation():
    import jsonschema

    [service] = documents(KSERVE)
    container = dict(service["spec"]["predictor"]["containers"][0], imagePulPolicy="Always")
    with pytest.raises(jsonschema.ValidationError):
        validate_container(container)


def test_kserve_grpc_predictor_serves_and_probes_the_grpc_port():
    [service] = documents(KSERVE_GRPC)
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    [container] = service["spec"]["predictor"]["containers"]
    validate_container(container)
    flags = server_flags(container)
    port = int(flags["port"])
    # KServe routes HTTP/2 (gRPC) to a container port named h2c.
    assert container["ports"] == [{"name": "h2c", "containerPort": port, "protocol": "TCP"}]
    assert container["readinessProbe"]["grpc"] == {"port": port, "service": "tensorflow.serving.PredictionService"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": int(flags["rest_api_port"])}
    assert flags["model_base_path"] == "/mnt/models"
