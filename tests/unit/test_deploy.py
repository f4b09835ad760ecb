"""The deployment files parse, and their pieces fit each other and the code: ports, probe
paths, CLI arguments, config files, metric names, signals."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import config
from gateway.cli import _parser
from gateway.metrics import Metrics
from gateway.server.handlers import routes

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai-0123456789",
    "MOCK_UPSTREAM_KEY": "sk-test-mock-0123456789",
    "GATEWAY_ADMIN_TOKEN": "admin-token-0123456789abcdef",
    "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
}


def serve_args(argv: list[str]) -> Any:
    """``gateway serve ...`` as the CLI parses it (a bad flag fails the test)."""
    assert argv[0].endswith("gateway"), argv
    args = _parser().parse_args(argv[1:])
    assert args.command == "serve"
    return args


def health_paths() -> set[str]:
    return {path for path, methods in routes_table().items() if "GET" in methods}


def routes_table() -> dict[str, dict[str, Any]]:
    class _H:  # routes() only reads the handler attributes
        def __getattr__(self, name: str) -> Any:
            return name

    return routes(_H())  # type: ignore[arg-type]


# -- Dockerfile ---------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_non_root_and_healthchecked() -> None:
    lines = dockerfile()
    stages = [rest for word, rest in lines if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build")
    assert any(word == "COPY" and rest.startswith("--from=build") for word, rest in lines)
    user = [rest for word, rest in lines if word == "USER"]
    assert user and user[-1] not in ("root", "0")
    expose = [int(rest) for word, rest in lines if word == "EXPOSE"]
    cmd = serve_args(json.loads(next(rest for word, rest in lines if word == "CMD")))
    assert expose == [cmd.port] == [8080]
    assert cmd.host == "0.0.0.0"
    health = next(rest for word, rest in lines if word == "HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", health)
    assert url is not None and int(url.group(1)) == cmd.port and url.group(2) in health_paths()


# -- docker compose -------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data["services"]


def test_compose_gateway_config_ports_and_upstream_fit() -> None:
    services = compose()
    assert {"gateway", "redis", "prometheus", "mock"} <= set(services)
    gw = services["gateway"]
    args = serve_args(gw["command"])
    mount = next(v for v in gw["volumes"] if v.split(":")[1] == args.config)
    cfg = config.load(DEPLOY / mount.split(":")[0].removeprefix("./"), env={**SECRETS, **gw["environment"]})
    assert [int(p.split(":")[1]) for p in gw["ports"]] == [cfg.server.port]
    assert cfg.server.host == "0.0.0.0"
    assert cfg.store.redis_url == "redis://redis:6379/0"  # GATEWAY_REDIS_URL from the environment
    # The upstream is the compose mock, on the port its command gives, with the key it requires.
    mock_argv = services["mock"]["command"]
    mock_port = mock_argv[mock_argv.index("--port") + 1]
    (provider,) = cfg.providers.values()
    assert provider.base_url == f"http://mock:{mock_port}/v1"
    mock_key = mock_argv[mock_argv.index("--api-key") + 1]
    assert provider.keys[0].value == mock_key == gw["environment"]["MOCK_UPSTREAM_KEY"]
    assert _parser().parse_args(mock_argv[1:]).command == "mock"
    assert "redis" in gw["environment"]["GATEWAY_REDIS_URL"] and "redis" in services


def test_prometheus_scrapes_the_gateway_and_loads_the_rules() -> None:
    services = compose()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "gateway")
    assert job["metrics_path"] in health_paths() | {"/metrics"} and "/metrics" in routes_table()
    cfg = config.load(DEPLOY / "compose" / "gateway.yaml", env=SECRETS)
    assert job["static_configs"][0]["targets"] == [f"gateway:{cfg.server.port}"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    for rule_file in prom["rule_files"]:
        assert (DEPLOY / mounted[rule_file].removeprefix("./")).is_file()


def exported_names() -> set[str]:
    names = set()
    for family in Metrics().collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def test_rules_use_only_metrics_the_gateway_exports() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    exported = exported_names()
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert ("record" in rule) != ("alert" in rule)
            used |= set(re.findall(r"\bgateway_[a-z0-9_]+", rule["expr"]))
            used_recordings = set(re.findall(r"\bgateway:[a-z0-9_:]+", rule["expr"]))
            assert used_recordings <= recorded, used_recordings - recorded
    assert used and used <= exported, used - exported


# -- Kubernetes -----------------------------------------------------------------


def k8s() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "gateway.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_k8s_manifests_fit_each_other_and_the_code(tmp_path: Path) -> None:
    objs = k8s()
    assert set(objs) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    deploy = objs["Deployment"]
    pod = deploy["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    args = serve_args(container["args"])
    mount = next(m for m in container["volumeMounts"] if args.config.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    cm = objs["ConfigMap"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    env_names = {e["name"] for e in container["env"]}
    written = tmp_path / Path(args.config).name
    written.write_text(cm["data"][written.name])
    cfg = config.load(written, env={n: SECRETS[n] for n in env_names})
    (port,) = container["ports"]
    assert port["containerPort"] == cfg.server.port and cfg.server.host == "0.0.0.0"
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] in health_paths() and ready["port"] == port["name"]
    assert container["livenessProbe"].get("httpGet", {}).get("path") != "/health"  # 503 while draining
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > sleep + cfg.server.shutdown_grace_s
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = pod["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"] == labels
    svc = objs["Service"]
    assert svc["spec"]["selector"] == labels and svc["spec"]["ports"][0]["targetPort"] == port["name"]
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes_table()
    assert int(annotations["prometheus.io/port"]) == cfg.server.port


# -- systemd ----------------------------------------------------------------------


def test_systemd_unit_starts_reloads_and_stops_the_gateway() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "gateway.service")
    service = unit["Service"]
    args = serve_args(shlex.split(service["ExecStart"]))
    assert args.config == "/etc/gateway/gateway.yaml"
    assert service["ExecReload"].endswith("kill -HUP $MAINPID")
    assert service["KillSignal"] == "SIGTERM" and service["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("name", ["gateway.example.yaml", "compose/gateway.yaml"])
def test_example_configs_load(name: str) -> None:
    more = {"GATEWAY_OPS_TOKEN": "ops-token-0123456789abcdef", "TEAM_A_KEY": "sk-bf-team-a-0123456789abcdef"}
    env = {**SECRETS, **more, "OPENAI_BATCH_KEY": "sk-test-batch-0123456789", "GROQ_API_KEY": "gsk-x"}
    config.load(DEPLOY / name, env=env)


def test_example_config_shows_every_setting() -> None:
    """Every field of every config section appears in the annotated example (commented
    out or not), so an operator finds each setting there."""
    text = (DEPLOY / "gateway.example.yaml").read_text()
    sections = {
        "server": config.ServerConfig,
        "auth": config.AuthConfig,
        "store": config.StoreConfig,
        "jobs": config.JobsConfig,
        "logs": config.LogsConfig,
        "providers.*": config.ProviderConfig,
        "timeouts": config.TimeoutConfig,
        "retries": config.RetryConfig,
        "limits": config.LimitConfig,
        "mock": config.MockConfig,
        "keys": config.KeyConfig,
        "virtual_keys": config.VirtualKeyConfig,
        "prices": config.PriceConfig,
        "cache": config.CacheConfig,
        "cache.providers.*": config.CacheRuleConfig,
    }
    missing = [
        f"{section}.{field}"
        for section, struct in sections.items()
        for field in struct.__struct_fields__
        if not re.search(rf"(^|[\s{{,#-]){field}:", text, re.M)
    ]
    top = [f for f in config.GatewayConfig.__struct_fields__ if not re.search(rf"^#? ?{f}:", text, re.M)]
    assert not missing and not top, f"not in deploy/gateway.example.yaml: {missing + top}"
