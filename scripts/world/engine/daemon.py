"""The simulated daemon's semantics: containers, networks, volumes, images and execs on the world's state, failing as dockerd does.

Each operation works on a WorldState read and written under the state lock by the API layer
(api.py) and raises EngineError(status, message) with the daemon's status and wording, which the
CLIs print as `Error response from daemon: <message>`. Sources: the Engine API reference
(docs.docker.com/reference/api/engine/version/v1.51/) and moby's daemon (daemon/create.go,
start.go, delete.go, rename.go, network.go, container/state.go, restartmanager).

Chosen behaviours, each a consequence of a world where no time passes by itself:
- A main process that fails at start fails at once; under a restart policy that restarts it the
  container is `restarting`, and every observation of the engine (an API request, a page request
  through Caddy) lets the restart manager try again with what the container sees then.
- A healthcheck reports `healthy` as soon as the process runs (the modelled images are healthy
  whenever they run); while a container crash-loops its health stays `starting`, as moby resets it
  on every start.
- A single-file bind mount is bound to the file's inode when the container starts (the daemon holds
  it open), so an edit in place shows at once, a file replaced by rename does not until a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import posixpath
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scripts.world.images import catalogue
from scripts.world.images.base import Behaviour, Crashed, ImageConfig, NotStarted, Output, Running, unmodelled
from scripts.world.state import LOST, Container, Endpoint, EngineState, Exec, Image, Json, Mount, Network, RunState, Volume, WorldState, with_run
from scripts.world.state import lookup as dns_lookup

NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
RESTARTING_POLICIES = ("always", "unless-stopped")
BUILTIN_NETWORKS = (("bridge", "bridge", "172.17.0.0/16"), ("host", "host", ""), ("none", "null", ""))
RUNC = (
    "failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: "
    "unable to start container process: error during container init: {}: unknown"
)
IN_USE = 'Conflict. The container name "/{}" is already in use by container "{}". You have to remove (or rename) that container to be able to reuse that name.'


class EngineError(Exception):
    """A daemon error: the HTTP status and the message the CLIs print."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_modelled(what: str) -> EngineError:
    return EngineError(501, f"{what} is not modelled in this world (scripts/world/engine)")


def now() -> float:
    return time.time()


def new_id() -> str:
    return secrets.token_hex(32)


def image_id(reference: str) -> str:
    """A stable image ID per modelled image (the same pull always gives the same image)."""
    return "sha256:" + hashlib.sha256(catalogue.familiar(reference).encode()).hexdigest()


def image_config_json(config: ImageConfig) -> dict[str, Json]:
    """An ImageConfig as the Engine API's image Config."""
    doc: dict[str, Json] = {
        "Env": list(config.env),
        "Cmd": list(config.cmd) or None,
        "Entrypoint": list(config.entrypoint) or None,
        "WorkingDir": config.working_dir,
        "User": config.user,
        "ExposedPorts": {p: {} for p in config.exposed_ports} or None,
        "Labels": None,
        "StopSignal": config.stop_signal or None,
    }
    if config.healthcheck:
        doc["Healthcheck"] = {"Test": list(config.healthcheck)}
    return doc


# ---------------------------------------------------------------------------------------------
# A container's filesystem, as its processes see it
# ---------------------------------------------------------------------------------------------


class Held:
    """Files the daemon holds open for single-file bind mounts, per (container id, target): the inode
    the container was given at its start (Mount.inode). Lives as long as the engine process; after a
    snapshot is restored, `rebind` opens the restored files (a new process's fds, new inodes)."""

    def __init__(self) -> None:
        self.fds: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def bind(self, container_id: str, target: str, path: Path) -> int:
        """Hold the file at `path` for the container's `target`; its inode, or 0 when it cannot be opened."""
        with self.lock:
            self._close(container_id, target)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return 0
            self.fds[(container_id, target)] = fd
            return os.fstat(fd).st_ino

    def read(self, container_id: str, mount: Mount) -> str | None:
        """The content of the inode the mount was given (mount.inode); None when this engine holds no such file."""
        with self.lock:
            fd = self.fds.get((container_id, mount.target))
            if fd is None or mount.inode <= 0 or os.fstat(fd).st_ino != mount.inode:
                return None
            size = os.fstat(fd).st_size
            return os.pread(fd, size, 0).decode(errors="replace")

    def release(self, container_id: str) -> None:
        with self.lock:
            for key in [k for k in self.fds if k[0] == container_id]:
                os.close(self.fds.pop(key))

    def release_all(self) -> None:
        with self.lock:
            for key in list(self.fds):
                os.close(self.fds.pop(key))

    def _close(self, container_id: str, target: str) -> None:
        old = self.fds.pop((container_id, target), None)
        if old is not None:
            os.close(old)


@dataclass(slots=True)
class ContainerBox:
    """A container as its processes see it (scripts.world.images.base.Box)."""

    daemon: Daemon
    world: WorldState
    container: Container

    @property
    def engine(self) -> EngineState:
        return self.world.engine

    @property
    def apps(self) -> dict[str, Any]:
        return self.world.apps

    @property
    def world_dir(self) -> Path:
        return self.daemon.world_dir

    def locate(self, path: str) -> tuple[Path, Mount | None]:
        """The host file behind `path`: through the deepest mount that covers it, else the container's own layer."""
        path = posixpath.normpath(path)
        for mount in sorted(self.container.mounts, key=lambda m: len(m.target), reverse=True):
            if path == mount.target or path.startswith(mount.target.rstrip("/") + "/"):
                rest = path[len(mount.target) :].lstrip("/")
                base = Path(mount.source) if mount.type == "bind" else self.daemon.volume_dir(mount.source)
                return (base / rest if rest else base), mount
        return self.daemon.layer_dir(self.container.id) / path.lstrip("/"), None

    def read(self, path: str) -> str | None:
        host, mount = self.locate(path)
        if mount is not None and mount.inode != 0 and posixpath.normpath(path) == mount.target:
            held = self.daemon.held.read(self.container.id, mount)
            # Not held: a snapshot was restored in which the inode had no path any more; what the
            # process read at its start is all that is left of it.
            return held if held is not None else self.container.files.get(mount.target)
        if host.is_file():
            return host.read_text(errors="replace")
        if mount is None:
            return self.daemon.behaviour_of(self.container).files().get(posixpath.normpath(path))
        return None

    def write(self, path: str, text: str) -> None:
        host, mount = self.locate(path)
        if mount is not None and mount.read_only:
            raise OSError(f"{path}: Read-only file system")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(text)

    def resolve(self, name: str) -> Container | None:
        found = dns_lookup(self.engine, self.container, name)
        return found[0] if found else None

    def data_identity(self, path: str) -> str:
        _, mount = self.locate(path)
        if mount is None:
            return f"layer:{self.container.id}"
        if mount.type == "volume":
            volume = self.engine.volumes.get(mount.source)
            return f"volume:{mount.source}:{volume.incarnation if volume else ''}"
        return f"bind:{mount.source}"


# ---------------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------------


class Daemon:
    """The engine's operations. Stateless between requests except for the held bind-mount files."""

    def __init__(self, world_dir: Path) -> None:
        self.world_dir = world_dir
        self.held = Held()

    # -- places ------------------------------------------------------------------------------------

    def volume_dir(self, name: str) -> Path:
        return self.world_dir / "volumes" / name / "_data"

    def layer_dir(self, container_id: str) -> Path:
        return self.world_dir / "containers" / container_id / "layer"

    def log_path(self, name: str) -> Path:
        """A container's log: one file per container name (the fakes append to it as the container's processes)."""
        return self.world_dir / "log" / f"{name}.log"

    def append_log(self, name: str, lines: Sequence[str]) -> None:
        if not lines:
            return
        path = self.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write("".join(line + "\n" for line in lines))

    def behaviour_of(self, container: Container) -> Behaviour:
        found = catalogue.behaviour(container.image)
        if found is None:
            raise not_modelled(f"image {container.image}")
        return found

    # -- lookups -------------------------------------------------------------------------------------

    def ensure_builtin(self, engine: EngineState) -> None:
        """The networks every daemon has from its first start: bridge, host, none."""
        for name, driver, subnet in BUILTIN_NETWORKS:
            if engine.network_named(name) is None:
                gateway = str(next(ipaddress.ip_network(subnet).hosts())) if subnet else ""
                net = Network(id=new_id(), name=name, created=now(), subnet=subnet, gateway=gateway, driver=driver)
                engine.networks[net.id] = net

    def container(self, engine: EngineState, ref: str) -> Container:
        """By full ID, by name (with or without its slash), then by a unique ID prefix; else 404."""
        name = ref.lstrip("/")
        if ref in engine.containers:
            return engine.containers[ref]
        found = engine.container_named(name)
        if found is not None:
            return found
        matches = [c for c in engine.containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise EngineError(400, f"multiple IDs found with provided prefix: {ref}")
        raise EngineError(404, f"No such container: {ref}")

    def network(self, engine: EngineState, ref: str) -> Network:
        if ref in engine.networks:
            return engine.networks[ref]
        found = engine.network_named(ref)
        if found is not None:
            return found
        matches = [n for n in engine.networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise EngineError(404, f"network {ref} not found")

    def image(self, engine: EngineState, ref: str) -> Image:
        if ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{12,64}", ref):
            digest = ref.removeprefix("sha256:")
            for img in engine.images.values():
                if img.id.removeprefix("sha256:").startswith(digest):
                    return img
        familiar = catalogue.familiar(ref)
        for img in engine.images.values():
            if familiar in img.tags:
                return img
        raise EngineError(404, f"No such image: {ref}")

    # -- images ----------------------------------------------------------------------------------------

    def pull(self, engine: EngineState, from_image: str, tag: str) -> list[dict[str, Json]]:
        """POST /images/create: the progress messages of a pull; a modelled image is always up to date offline."""
        reference = f"{from_image}:{tag}" if tag and "@" not in from_image else from_image
        familiar = catalogue.familiar(reference)
        behaviour = catalogue.behaviour(familiar)
        if behaviour is None or behaviour.repository in catalogue.BUILT:
            repository = familiar.rpartition(":")[0]
            raise EngineError(
                404,
                f"pull access denied for {repository}, repository does not exist or may require 'docker login': "
                f"the image {familiar} is not modelled in this world (modelled: {', '.join(catalogue.modelled())})",
            )
        digest = "sha256:" + hashlib.sha256(("digest:" + familiar).encode()).hexdigest()
        have = any(familiar in img.tags for img in engine.images.values())
        self.store_image(engine, familiar, behaviour)
        tag_text = familiar.rpartition(":")[2]
        messages: list[dict[str, Json]] = [{"status": f"Pulling from {self.repository_path(familiar)}", "id": tag_text}]
        if not have:
            layer = digest.removeprefix("sha256:")[:12]
            messages += [
                {"status": "Pulling fs layer", "progressDetail": {}, "id": layer},
                {"status": "Download complete", "progressDetail": {}, "id": layer},
                {"status": "Pull complete", "progressDetail": {}, "id": layer},
            ]
        messages += [
            {"status": f"Digest: {digest}"},
            {"status": f"Status: {'Image is up to date' if have else 'Downloaded newer image'} for {familiar}"},
        ]
        return messages

    @staticmethod
    def repository_path(familiar: str) -> str:
        repository = familiar.rpartition(":")[0]
        return repository if "/" in repository else f"library/{repository}"

    def store_image(self, engine: EngineState, familiar: str, behaviour: Behaviour) -> Image:
        iid = image_id(familiar)
        existing = engine.images.get(iid)
        if existing is not None:
            return existing
        img = Image(id=iid, tags=(familiar,), created=now() - 30 * 86400, config=image_config_json(behaviour.config))
        engine.images[iid] = img
        return img

    # -- containers: create ----------------------------------------------------------------------------

    def create(self, world: WorldState, name: str, body: Mapping[str, Json]) -> Container:
        engine = world.engine
        if name and not NAME_PATTERN.match(name):
            raise EngineError(400, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        name = name.lstrip("/") or f"world_{secrets.token_hex(4)}"
        clash = engine.container_named(name)
        if clash is not None:
            raise EngineError(
                409,
                IN_USE.format(name, clash.id),
            )
        reference = str(body.get("Image") or "")
        img = self.image(engine, reference)
        cid = new_id()
        host_config = dict(body.get("HostConfig") or {})
        config = self.merged_config(cid, body, img)
        mounts = self.mounts(world, host_config, name)
        container = Container(
            id=cid, name=name, created=now(), image=reference, image_id=img.id, config=config, host_config=host_config, mounts=mounts,
            run=RunState(health="starting" if self.has_healthcheck(config) else None),
        )  # fmt: skip
        requested = dict((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        mode = str(host_config.get("NetworkMode") or "default")
        if not requested and mode not in ("host", "none") and not mode.startswith("container:"):
            requested = {"bridge" if mode == "default" else mode: {}}
        for net_ref, settings in requested.items():
            net = self.network(engine, net_ref)
            container = self.attach(engine, container, net, tuple((settings or {}).get("Aliases") or ()))
        engine.put(container)
        return container

    @staticmethod
    def has_healthcheck(config: Mapping[str, Json]) -> bool:
        test = (config.get("Healthcheck") or {}).get("Test") or []
        return bool(test) and test[0] != "NONE"

    def merged_config(self, cid: str, body: Mapping[str, Json], img: Image) -> dict[str, Json]:
        """The request's Config over the image's (moby daemon/create.go: merge with the image config)."""
        base = img.config
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        env: dict[str, str] = {}
        for item in [*(base.get("Env") or []), *(config.get("Env") or [])]:
            key, _, value = str(item).partition("=")
            env[key] = value
        config["Env"] = [f"{k}={v}" for k, v in env.items()]
        if config.get("Entrypoint") is None:
            config["Entrypoint"] = base.get("Entrypoint")
            if not config.get("Cmd"):
                config["Cmd"] = base.get("Cmd")
        for key in ("WorkingDir", "User", "StopSignal"):
            if not config.get(key):
                config[key] = base.get(key) or ("" if key != "StopSignal" else None)
        if not (config.get("Healthcheck") or {}).get("Test") and base.get("Healthcheck"):
            config["Healthcheck"] = base["Healthcheck"]
        config["ExposedPorts"] = {**(base.get("ExposedPorts") or {}), **(config.get("ExposedPorts") or {})} or None
        config["Labels"] = {**(base.get("Labels") or {}), **(config.get("Labels") or {})}
        config["Hostname"] = config.get("Hostname") or cid[:12]
        return config

    def mounts(self, world: WorldState, host_config: Mapping[str, Json], name: str) -> tuple[Mount, ...]:
        """HostConfig.Binds and HostConfig.Mounts; named volumes are created on first use, as dockerd does."""
        found: list[Mount] = []
        for bind in host_config.get("Binds") or []:
            parts = str(bind).split(":")
            if len(parts) < 2:
                raise EngineError(400, f"invalid volume specification: '{bind}'")
            source, target, opts = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
            read_only = "ro" in opts.split(",")
            if source.startswith("/"):
                if not os.path.lexists(source):
                    os.makedirs(source, exist_ok=True)  # -v creates a missing source as a directory
                found.append(Mount("bind", source, target, read_only))
            else:
                self.volume_create(world.engine, source, {}, {})
                found.append(Mount("volume", source, target, read_only))
        for spec in host_config.get("Mounts") or []:
            kind, source, target = spec.get("Type"), str(spec.get("Source") or ""), str(spec.get("Target") or "")
            read_only = bool(spec.get("ReadOnly"))
            if kind == "bind":
                if not os.path.lexists(source):
                    if not (spec.get("BindOptions") or {}).get("CreateMountpoint"):
                        raise EngineError(400, f'invalid mount config for type "bind": bind source path does not exist: {source}')
                    os.makedirs(source, exist_ok=True)
                found.append(Mount("bind", source, target, read_only))
            elif kind == "volume":
                source = source or new_id()
                labels = dict((spec.get("VolumeOptions") or {}).get("Labels") or {})
                self.volume_create(world.engine, source, labels, {})
                found.append(Mount("volume", source, target, read_only))
            else:
                raise not_modelled(f"a mount of type {kind!r} (container {name})")
        return tuple(found)

    # -- networks: endpoints ---------------------------------------------------------------------------

    def attach(self, engine: EngineState, container: Container, net: Network, aliases: tuple[str, ...]) -> Container:
        if net.driver in ("host", "null"):
            raise not_modelled(f"the {net.name} network")
        used = {e.ip for c in engine.containers.values() for e in c.endpoints.values() if e.network_id == net.id}
        used |= {e.ip for e in container.endpoints.values() if e.network_id == net.id}
        hosts = ipaddress.ip_network(net.subnet).hosts()
        next(hosts)  # the gateway
        ip = next(str(h) for h in hosts if str(h) not in used)
        mac = "02:42:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
        endpoint = Endpoint(network_id=net.id, endpoint_id=new_id(), ip=ip, mac=mac, aliases=aliases)
        return replace(container, endpoints={**container.endpoints, net.name: endpoint})

    # -- containers: run -------------------------------------------------------------------------------

    def start(self, world: WorldState, container: Container) -> Container:
        """POST /containers/{id}/start: set up the mounts and run the image's main process."""
        if container.run.status == "running":
            raise EngineError(304, "")
        mounts: list[Mount] = []
        for mount in container.mounts:
            if mount.type == "bind" and Path(mount.source).is_file():
                mount = replace(mount, inode=self.held.bind(container.id, mount.target, Path(mount.source)))
            elif mount.type == "volume":
                self.volume_dir(mount.source).mkdir(parents=True, exist_ok=True)
            mounts.append(mount)
        container = world.engine.put(replace(container, mounts=tuple(mounts)))
        behaviour = self.behaviour_of(container)
        argv = tuple(str(a) for a in [*(container.config.get("Entrypoint") or []), *(container.config.get("Cmd") or [])])
        box = ContainerBox(self, world, container)
        outcome = behaviour.start(box, argv)
        healthcheck = self.has_healthcheck(container.config)
        if isinstance(outcome, NotStarted):
            message = RUNC.format(outcome.message)
            world.engine.put(with_run(container, status="exited", exit_code=outcome.exit_code, error=message, pid=0, finished_at=now()))
            raise EngineError(400, message)
        if isinstance(outcome, Running):
            self.append_log(container.name, outcome.log)
            return world.engine.put(
                replace(
                    container,
                    run=RunState(status="running", pid=secrets.randbelow(30000) + 1000, started_at=now(), health="healthy" if healthcheck else None),
                    files=dict(outcome.files),
                    routes=dict(outcome.routes),
                )
            )
        assert isinstance(outcome, Crashed)
        self.append_log(container.name, outcome.log)
        policy = container.restart_policy
        restarts = policy in RESTARTING_POLICIES or (policy == "on-failure" and outcome.exit_code != 0)
        started = now()
        run = RunState(
            status="restarting" if restarts else "exited", exit_code=outcome.exit_code, started_at=started, finished_at=started,
            health="starting" if healthcheck else None,
        )  # fmt: skip
        return world.engine.put(replace(container, run=run, restart_count=container.restart_count + (1 if restarts else 0), files={}, routes={}))

    def restored(self, world: WorldState, paths: Mapping[int, str]) -> int:
        """A snapshot of a world was unpacked into this one: hold the restored files of the single-file
        bind mounts. `paths` maps each inode the snapshot's files had to the file's path; a mount's inode
        found there is held again at that path (a file moved after the container started included), one
        that had no path any more is LOST. Returns how many files are held."""
        self.held.release_all()  # this world's own files, replaced by the snapshot's
        held = 0
        for container in list(world.engine.containers.values()):
            mounts: list[Mount] = []
            for mount in container.mounts:
                if mount.inode > 0:
                    path = paths.get(mount.inode)
                    if path is None:
                        mount = replace(mount, inode=LOST)
                    elif container.run.status in ("running", "restarting"):
                        mount = replace(mount, inode=self.held.bind(container.id, mount.target, Path(path)) or LOST)
                        held += mount.inode > 0
                    else:
                        mount = replace(mount, inode=os.stat(path).st_ino)  # bound again at its next start anyway
                mounts.append(mount)
            world.engine.put(replace(container, mounts=tuple(mounts)))
        return held

    def refresh(self, world: WorldState) -> None:
        """Let time pass: the restart manager retries every crash-looping container with what it sees now."""
        for container in list(world.engine.containers.values()):
            if container.run.status == "restarting":
                with contextlib.suppress(EngineError):
                    self.start(world, container)

    def stop(self, world: WorldState, container: Container, signal_exit: int = 0) -> Container:
        if container.run.status not in ("running", "restarting"):
            raise EngineError(304, "")
        self.held.release(container.id)
        return world.engine.put(with_run(container, status="exited", exit_code=signal_exit, pid=0, finished_at=now()))

    def kill(self, world: WorldState, container: Container, ref: str) -> Container:
        if container.run.status != "running":
            raise EngineError(409, f"Cannot kill container: {ref}: container {container.id} is not running")
        return self.stop(world, container, 137)

    def remove(self, world: WorldState, container: Container, force: bool, volumes: bool) -> None:
        if container.run.status in ("running", "restarting") and not force:
            raise EngineError(409, f'cannot remove container "/{container.name}": container is running: stop the container before removing or force remove')
        self.held.release(container.id)
        del world.engine.containers[container.id]
        self.log_path(container.name).unlink(missing_ok=True)
        shutil.rmtree(self.world_dir / "containers" / container.id, ignore_errors=True)
        if volumes:
            for mount in container.mounts:
                anonymous = mount.type == "volume" and re.fullmatch(r"[0-9a-f]{64}", mount.source)
                if anonymous and not self.volume_users(world.engine, mount.source):
                    self.volume_remove(world.engine, mount.source, force=False)

    def rename(self, world: WorldState, container: Container, new_name: str) -> None:
        new_name = new_name.lstrip("/")
        if not NAME_PATTERN.match(new_name):
            raise EngineError(400, f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        clash = world.engine.container_named(new_name)
        if clash is not None:
            raise EngineError(
                409,
                IN_USE.format(new_name, clash.id),
            )
        old_log = self.log_path(container.name)
        if old_log.exists():
            old_log.replace(self.log_path(new_name))
        world.engine.put(replace(container, name=new_name))

    # -- networks ----------------------------------------------------------------------------------------

    def network_create(self, engine: EngineState, body: Mapping[str, Json]) -> Network:
        name = str(body.get("Name") or "")
        if not name:
            raise EngineError(400, "network name must be specified")
        if engine.network_named(name) is not None:
            raise EngineError(409, f"network with name {name} already exists")
        driver = str(body.get("Driver") or "bridge")
        if driver != "bridge":
            raise not_modelled(f"the {driver} network driver")
        taken = {n.subnet for n in engine.networks.values()}
        subnet = next(s for s in (f"172.{i}.0.0/16" for i in range(18, 32)) if s not in taken)
        net = Network(
            id=new_id(), name=name, created=now(), subnet=subnet, gateway=subnet.replace("0.0/16", "0.1"), driver=driver,
            attachable=bool(body.get("Attachable")), internal=bool(body.get("Internal")),
            labels=dict(body.get("Labels") or {}), options=dict(body.get("Options") or {}),
        )  # fmt: skip
        engine.networks[net.id] = net
        return net

    def endpoints_on(self, engine: EngineState, net: Network, running_only: bool = True) -> list[Container]:
        """Containers with an active endpoint on `net` (a stopped container's endpoints are released)."""
        return [c for c in engine.containers.values() if net.name in c.endpoints and (c.run.status == "running" or not running_only)]

    def connect(self, engine: EngineState, net: Network, container: Container, aliases: tuple[str, ...]) -> None:
        if net.name in container.endpoints:
            raise EngineError(403, f"endpoint with name {container.name} already exists in network {net.name}")
        engine.put(self.attach(engine, container, net, aliases))

    def disconnect(self, engine: EngineState, net: Network, container: Container) -> None:
        if net.name not in container.endpoints:
            raise EngineError(403, f"container {container.id} is not connected to network {net.name}")
        endpoints = {k: v for k, v in container.endpoints.items() if k != net.name}
        engine.put(replace(container, endpoints=endpoints))

    def network_remove(self, engine: EngineState, net: Network) -> None:
        if net.name in ("bridge", "host", "none"):
            raise EngineError(403, f"{net.name} is a pre-defined network and cannot be removed")
        users = self.endpoints_on(engine, net, running_only=False)
        if users:
            active = ", ".join(f'name:"{c.name}" id:"{c.endpoints[net.name].endpoint_id[:12]}"' for c in users)
            raise EngineError(403, f"error while removing network: network {net.name} has active endpoints ({active})")
        del engine.networks[net.id]

    # -- volumes -----------------------------------------------------------------------------------------

    def volume_create(self, engine: EngineState, name: str, labels: Mapping[str, str], options: Mapping[str, str]) -> Volume:
        existing = engine.volumes.get(name)
        if existing is not None:
            return existing
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
            raise EngineError(400, f'create {name}: "{name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed.')
        data = self.volume_dir(name)
        data.mkdir(parents=True, exist_ok=True)
        volume = Volume(name=name, created=now(), data=str(data), incarnation=str(uuid.uuid4()), labels=dict(labels), options=dict(options))
        engine.volumes[name] = volume
        return volume

    def volume_users(self, engine: EngineState, name: str) -> list[Container]:
        return [c for c in engine.containers.values() if any(m.type == "volume" and m.source == name for m in c.mounts)]

    def volume_remove(self, engine: EngineState, name: str, force: bool) -> None:
        if name not in engine.volumes:
            if force:
                return
            raise EngineError(404, f"get {name}: no such volume")
        users = self.volume_users(engine, name)
        if users:
            raise EngineError(409, f"remove {name}: volume is in use - [{', '.join(c.id for c in users)}]")
        del engine.volumes[name]
        shutil.rmtree(self.volume_dir(name).parent, ignore_errors=True)

    # -- exec --------------------------------------------------------------------------------------------

    def exec_create(self, engine: EngineState, container: Container, body: Mapping[str, Json]) -> Exec:
        if container.run.status == "restarting":
            raise EngineError(409, f"Container {container.id} is restarting, wait until the container is running")
        if container.run.status != "running":
            raise EngineError(409, f"container {container.id} is not running")
        cmd = tuple(str(a) for a in body.get("Cmd") or ())
        if not cmd:
            raise EngineError(400, "No exec command specified")
        run = Exec(
            id=new_id(), container_id=container.id, cmd=cmd, env=tuple(str(e) for e in body.get("Env") or ()),
            user=str(body.get("User") or ""), working_dir=str(body.get("WorkingDir") or ""), tty=bool(body.get("Tty")),
            attach_stdin=bool(body.get("AttachStdin")),
        )  # fmt: skip
        engine.execs[run.id] = run
        return run

    def exec_program(self, engine: EngineState, run: Exec) -> tuple[Container, Any]:
        """The exec's container and the image's program for its command (None: not modelled)."""
        container = engine.containers.get(run.container_id)
        if container is None:
            raise EngineError(404, f"No such container: {run.container_id}")
        if not container.running:
            raise EngineError(409, f"container {container.id} is not running")
        return container, self.behaviour_of(container).program(run.cmd)

    def exec_run(self, world: WorldState, run: Exec, stdin: bytes) -> Output:
        """Run the exec's command in its container (the program's effects land in the state)."""
        container, program = self.exec_program(world.engine, run)
        if program is None:
            output = unmodelled(f"{' '.join(run.cmd)!r} in {container.name} ({container.image})")
        else:
            env = container.env
            for item in run.env:
                key, _, value = item.partition("=")
                env[key] = value
            output = program.run(ContainerBox(self, world, container), env, stdin)
        if output.routes is not None:
            world.engine.put(replace(container, routes=dict(output.routes)))
        world.engine.execs[run.id] = replace(run, running=False, exit_code=output.exit_code)
        return output
