"""The Engine API's JSON shapes (v1.51 schema) for the world's records: inspect and list documents, filters, status texts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from scripts.world.state import Container, EngineState, Image, Network, Volume

Json = Any
ZERO_TIME = "0001-01-01T00:00:00Z"


def iso(t: float) -> str:
    """RFC 3339 with nanoseconds, as Go's time.RFC3339Nano prints UTC."""
    if not t:
        return ZERO_TIME
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{round((t % 1) * 1e9) % 1_000_000_000:09d}Z"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which `docker ps` uses for STATUS and CREATED."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    return f"{hours // (24 * 7)} weeks"


def status_text(c: Container) -> str:
    """The Status column: `Up 2 hours (healthy)`, `Restarting (1) 3 seconds ago`, `Exited (0) ...`, `Created`."""
    run = c.run
    if run.status == "running":
        health = {"healthy": " (healthy)", "unhealthy": " (unhealthy)", "starting": " (health: starting)"}.get(run.health or "", "")
        return f"Up {human_duration(time.time() - run.started_at)}{health}"
    if run.status == "restarting":
        return f"Restarting ({run.exit_code}) {human_duration(time.time() - run.finished_at)} ago"
    if run.status == "created":
        return "Created"
    return f"Exited ({run.exit_code}) {human_duration(time.time() - run.finished_at)} ago"


def command(c: Container) -> str:
    return " ".join(str(a) for a in [*(c.config.get("Entrypoint") or []), *(c.config.get("Cmd") or [])])


def endpoint_doc(engine: EngineState, c: Container, name: str) -> dict[str, Json]:
    e = c.endpoints[name]
    net = engine.networks.get(e.network_id)
    active = c.run.status == "running"
    return {
        "IPAMConfig": None, "Links": None, "Aliases": list(e.aliases) or None, "MacAddress": e.mac if active else "",
        "DriverOpts": None, "GwPriority": 0, "NetworkID": e.network_id, "EndpointID": e.endpoint_id if active else "",
        "Gateway": (net.gateway if net else "") if active else "", "IPAddress": e.ip if active else "", "IPPrefixLen": 16 if active else 0,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": [c.name, c.id[:12], *e.aliases] if active else None,
    }  # fmt: skip


def mount_doc(engine: EngineState, c: Container) -> list[dict[str, Json]]:
    docs = []
    for m in c.mounts:
        doc: dict[str, Json] = {
            "Type": m.type,
            "Source": m.source,
            "Destination": m.target,
            "Mode": "ro" if m.read_only else "",
            "RW": not m.read_only,
            "Propagation": "rprivate" if m.type == "bind" else "",
        }
        if m.type == "volume":
            doc |= {"Name": m.source, "Source": f"/var/lib/docker/volumes/{m.source}/_data", "Driver": "local", "Mode": "z"}
        docs.append(doc)
    return docs


def ports(c: Container) -> list[dict[str, Json]]:
    """Summary Ports: published bindings while running, else nothing."""
    out: list[dict[str, Json]] = []
    if c.run.status != "running":
        return out
    for spec, bindings in sorted((c.host_config.get("PortBindings") or {}).items()):
        private, _, proto = spec.partition("/")
        out.extend(
            {"IP": ip, "PrivatePort": int(private), "PublicPort": int(b.get("HostPort") or private), "Type": proto or "tcp"}
            for b in bindings or []
            for ip in ("0.0.0.0", "::")
        )
    return out


def container_summary(engine: EngineState, c: Container) -> dict[str, Json]:
    """GET /containers/json: one row."""
    return {
        "Id": c.id, "Names": [f"/{c.name}"], "Image": c.image, "ImageID": c.image_id, "Command": command(c),
        "Created": int(c.created), "Ports": ports(c), "Labels": dict(c.labels), "State": c.run.status, "Status": status_text(c),
        "HostConfig": {"NetworkMode": str(c.host_config.get("NetworkMode") or "default")},
        "NetworkSettings": {"Networks": {n: endpoint_doc(engine, c, n) for n in c.endpoints}},
        "Mounts": mount_doc(engine, c),
    }  # fmt: skip


def container_inspect(engine: EngineState, c: Container) -> dict[str, Json]:
    """GET /containers/{id}/json."""
    run = c.run
    state: dict[str, Json] = {
        "Status": run.status, "Running": run.status in ("running", "restarting"), "Paused": False,
        "Restarting": run.status == "restarting", "OOMKilled": False, "Dead": run.status == "dead", "Pid": run.pid,
        "ExitCode": run.exit_code, "Error": run.error, "StartedAt": iso(run.started_at), "FinishedAt": iso(run.finished_at),
    }  # fmt: skip
    if run.health is not None:
        state["Health"] = {"Status": run.health, "FailingStreak": 0, "Log": []}
    argv = [*(c.config.get("Entrypoint") or []), *(c.config.get("Cmd") or [])]
    return {
        "Id": c.id, "Created": iso(c.created), "Path": argv[0] if argv else "", "Args": argv[1:], "State": state,
        "Image": c.image_id, "ResolvConfPath": f"/var/lib/docker/containers/{c.id}/resolv.conf",
        "HostnamePath": f"/var/lib/docker/containers/{c.id}/hostname", "HostsPath": f"/var/lib/docker/containers/{c.id}/hosts",
        "LogPath": f"/var/lib/docker/containers/{c.id}/{c.id}-json.log", "Name": f"/{c.name}", "RestartCount": c.restart_count,
        "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": {"NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, **c.host_config},
        "GraphDriver": {"Data": None, "Name": "overlay2"}, "Mounts": mount_doc(engine, c), "Config": dict(c.config),
        "NetworkSettings": {
            "Bridge": "", "SandboxID": c.id[::-1] if run.status == "running" else "", "SandboxKey": "", "Ports": {},
            "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {n: endpoint_doc(engine, c, n) for n in c.endpoints},
        },
    }  # fmt: skip


def network_inspect(engine: EngineState, net: Network) -> dict[str, Json]:
    """GET /networks/{id}: Containers lists the active endpoints (running containers)."""
    members = {
        c.id: {
            "Name": c.name,
            "EndpointID": c.endpoints[net.name].endpoint_id,
            "MacAddress": c.endpoints[net.name].mac,
            "IPv4Address": f"{c.endpoints[net.name].ip}/16",
            "IPv6Address": "",
        }
        for c in engine.containers.values()
        if net.name in c.endpoints and c.run.status == "running"
    }
    ipam_config = [{"Subnet": net.subnet, "Gateway": net.gateway}] if net.subnet else []
    return {
        "Name": net.name, "Id": net.id, "Created": iso(net.created), "Scope": "local", "Driver": net.driver, "EnableIPv4": True,
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": ipam_config}, "Internal": net.internal,
        "Attachable": net.attachable, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": members, "Options": dict(net.options), "Labels": dict(net.labels),
    }  # fmt: skip


def network_summary(engine: EngineState, net: Network) -> dict[str, Json]:
    doc = network_inspect(engine, net)
    doc["Containers"] = {}
    return doc


def volume_doc(v: Volume) -> dict[str, Json]:
    return {
        "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v.created)), "Driver": v.driver, "Labels": dict(v.labels),
        "Mountpoint": f"/var/lib/docker/volumes/{v.name}/_data", "Name": v.name, "Options": dict(v.options) or None, "Scope": "local",
    }  # fmt: skip


def image_inspect(img: Image) -> dict[str, Json]:
    repos = sorted({t.rpartition(":")[0] for t in img.tags})
    return {
        "Id": img.id, "RepoTags": list(img.tags), "RepoDigests": [f"{r}@sha256:{img.id[7:][::-1]}" for r in repos], "Parent": "", "Comment": "",
        "Created": iso(img.created), "DockerVersion": "", "Author": "", "Config": dict(img.config), "Architecture": "amd64", "Os": "linux",
        "Size": 0, "GraphDriver": {"Data": None, "Name": "overlay2"}, "RootFS": {"Type": "layers", "Layers": []}, "Metadata": {"LastTagTime": ZERO_TIME},
    }  # fmt: skip


def image_summary(img: Image) -> dict[str, Json]:
    return {
        "Id": img.id, "ParentId": "", "RepoTags": list(img.tags), "RepoDigests": image_inspect(img)["RepoDigests"], "Created": int(img.created),
        "Size": 0, "SharedSize": -1, "Labels": None, "Containers": -1,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Filters (?filters={"label":{"a=b":true}} or the old list form)
# ---------------------------------------------------------------------------------------------


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    if not raw:
        return {}
    data = json.loads(raw)
    return {k: list(v) if isinstance(v, list) else [key for key, on in v.items() if on] for k, v in data.items()}


def label_match(labels: Mapping[str, str], wanted: list[str]) -> bool:
    for spec in wanted:
        key, eq, value = spec.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def container_matches(engine: EngineState, c: Container, filters: Mapping[str, list[str]]) -> bool:
    """The daemon's container filters; every key must match one of its values (labels: all of them)."""
    checks: dict[str, Callable[[list[str]], bool]] = {
        "label": lambda vs: label_match(c.labels, vs),
        "name": lambda vs: any(re.search(v, f"/{c.name}") for v in vs),
        "id": lambda vs: any(c.id.startswith(v) for v in vs),
        "status": lambda vs: c.run.status in vs,
        "network": lambda vs: any(v in c.endpoints or any(e.network_id.startswith(v) for e in c.endpoints.values()) for v in vs),
        "ancestor": lambda vs: any(v in (c.image, c.image_id) for v in vs),
        "health": lambda vs: (c.run.health or "none") in vs,
        "volume": lambda vs: any(m.source == v or m.target == v for m in c.mounts for v in vs),
    }
    for key, values in filters.items():
        if key not in checks:
            raise ValueError(f"invalid filter '{key}'")
        if not checks[key](values):
            return False
    return True


def network_matches(net: Network, filters: Mapping[str, list[str]]) -> bool:
    checks: dict[str, Callable[[list[str]], bool]] = {
        "label": lambda vs: label_match(net.labels, vs),
        "name": lambda vs: any(re.search(v, net.name) for v in vs),
        "id": lambda vs: any(net.id.startswith(v) for v in vs),
        "driver": lambda vs: net.driver in vs,
        "scope": lambda vs: "local" in vs,
        "type": lambda vs: ("builtin" if net.name in ("bridge", "host", "none") else "custom") in vs,
        "dangling": lambda vs: True,
    }
    for key, values in filters.items():
        if key not in checks:
            raise ValueError(f"invalid filter '{key}'")
        if not checks[key](values):
            return False
    return True


def volume_matches(v: Volume, filters: Mapping[str, list[str]]) -> bool:
    checks: dict[str, Callable[[list[str]], bool]] = {
        "label": lambda vs: label_match(v.labels, vs),
        "name": lambda vs: any(re.search(x, v.name) for x in vs),
        "driver": lambda vs: v.driver in vs,
        "dangling": lambda vs: True,
    }
    for key, values in filters.items():
        if key not in checks:
            raise ValueError(f"invalid filter '{key}'")
        if not checks[key](values):
            return False
    return True
