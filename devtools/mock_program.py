"""Run the real `__main__.py` under Pulumi mocks and record what it registers and exports:
the unit tier's runner and the bench's, one and the same.

Mocks are installed before the program is executed (preview=False so outputs resolve), and
the program is executed afresh for every run, as the engine would. The mocks stand for the
live server too: namespaces, policies and auth mounts that exist, and the stack's last outputs.
"""

import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from devtools.project_copy import PROJECT_DIR
from nomad_vault_setup import preflight, standalone, token_access
from nomad_vault_setup.server_kind import VaultServer

MAIN = PROJECT_DIR / "__main__.py"
MOCK_ACCESSOR = "auth_jwt_0a1b2c3d"
# The server the program talks to under mocks (its kind decides the job-ID risks).
OPENBAO = VaultServer("openbao", "2.7.2", "cluster-unit")
# The `vault_server` output a run of the program on OPENBAO records.
ON_OPENBAO = {"cluster_id": "cluster-unit", "namespace": ""}


@dataclass
class Registered:
    """One resource the program registered: its type, logical name and inputs (camelCase)."""

    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Options:
    """The resource options the engine was sent for one resource."""

    parent: str
    delete_before_replace: bool
    protect: bool
    aliases: tuple[str, ...] = ()  # the names of its alias specs


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """Also remembers each registration's options (mocks see only type, name and inputs)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, Options] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.options[request.name] = Options(
            request.parent,
            request.deleteBeforeReplace,
            request.protect,
            tuple(alias.spec.name for alias in request.aliases),
        )
        return super().RegisterResource(request)


def _unchanged(value: str) -> str:
    return value


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as state, add the outputs Vault computes, and remember every resource.

    `stored_policy_name` / `stored_namespace_path` let a test make a resource's output differ
    from its input, to prove that a consumer reads the output (and so waits for it).
    """

    stored_policy_name: Callable[[str], str] = _unchanged
    stored_namespace_path: Callable[[str], str] = _unchanged
    resources: list[Registered] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        if args.typ == "pulumi:pulumi:StackReference":  # the stack's own last outputs
            return args.inputs["name"], {"outputs": self.previous_outputs}
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        state = dict(args.inputs)
        if args.typ == "vault:jwt/authBackend:AuthBackend":
            state["accessor"] = MOCK_ACCESSOR
        if args.typ == "vault:index/policy:Policy":
            state["name"] = self.stored_policy_name(args.inputs["name"])
        if args.typ == "vault:index/namespace:Namespace":
            state["path"] = self.stored_namespace_path(args.inputs["path"])
        return f"{args.name}-id", state

    existing_namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    previous_outputs: dict[str, Any] = field(default_factory=dict)
    existing_policies: dict[str, str] = field(default_factory=dict)
    existing_auth_mounts: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        """The live server, as the `existing_*` fields say: namespaces (path -> custom
        metadata), policies (name -> text) and auth mounts (path -> accessor)."""
        self.calls.append((args.token, dict(args.args)))
        if args.token == "vault:index/getNamespaces:getNamespaces":
            return {"paths": list(self.existing_namespaces)}
        if args.token == "vault:index/getNamespace:getNamespace":
            path = args.args["path"]
            return {"path": path, "customMetadata": self.existing_namespaces[path]}
        if args.token == "vault:generic/getSecret:getSecret":
            return self._read(args.args["path"])
        return {}

    def _read(self, path: str) -> dict | tuple[dict, list[tuple[str, str]]]:
        """A generic read, failing as the provider does where Vault has nothing."""
        kind, _, name = path.rpartition("/")
        data: dict[str, str] | None = None
        if kind == "sys/policies/acl" and name in self.existing_policies:
            data = {"name": name, "policy": self.existing_policies[name]}
        if kind == "sys/auth" and name in self.existing_auth_mounts:
            data = {"type": "jwt", "accessor": self.existing_auth_mounts[name]}
        if name == "config" and kind.removeprefix("auth/") in self.existing_auth_mounts:
            data = {"jwks_url": "http://127.0.0.1:4646/.well-known/jwks.json"}
        if data is None:
            return {}, [("path", f'no secret found at "{path}"')]
        return {"path": path, "dataJson": json.dumps(data)}


@dataclass
class ProgramRun:
    """What one run of the program left behind."""

    resources: list[Registered]
    exports: dict[str, Any]
    options: dict[str, Options] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [resource for resource in self.resources if resource.typ == typ]

    def one(self, typ: str) -> Registered:
        (resource,) = self.of_type(typ)
        return resource


def resolve(value: Any) -> Any:
    """The plain value of an Output (or anything Output.from_input takes) under mocks."""
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def await_it() -> pulumi.Output:
        return pulumi.Output.from_input(value).apply(lambda plain: box.update(value=plain))

    await_it()
    return box["value"]


class ProgramRunner:
    """Runs the program; `registered` keeps the last run's resources even when it raised.

    `setattr` replaces a module attribute for the run (pytest's `monkeypatch.setattr`, or
    anything that restores it afterwards): the program's `pulumi.export`, and the server probe
    of its preflight, which would otherwise ask a real server.
    """

    def __init__(self, setattr: Callable[[Any, str, Any], None]) -> None:
        self.setattr = setattr
        self.registered: list[Registered] = []
        self.probed: list[str] = []

    def __call__(
        self,
        config: dict[str, Any] | None = None,
        vault: dict[str, str] | None = None,
        secret_keys: tuple[str, ...] = (),
        server: VaultServer = OPENBAO,
        program: Path = MAIN,
        **mock_options: Any,
    ) -> ProgramRun:
        """Run `program` (the stack program, unless another program using the component) with
        a stack config (camelCase keys) and provider config (`vault:` keys); `vault:token` and
        the full keys in `secret_keys` are held as secrets."""
        mocks = RecordingMocks(**mock_options)
        monitor = RecordingMonitor(mocks)
        self.registered = mocks.resources
        pulumi.runtime.set_mocks(
            mocks,
            project="nomad-vault-setup",
            stack="unit",
            organization="organization",
            preview=False,
            monitor=monitor,
        )
        provider = {"address": "https://vault.example.test:8200", "token": "unit", **(vault or {})}
        pulumi.runtime.set_all_config(
            {f"nomad-vault-setup:{key}": value for key, value in (config or {}).items()}
            | {f"vault:{key}": value for key, value in provider.items()},
            ["vault:token", *secret_keys],
        )
        exports: dict[str, Any] = {}
        self.setattr(pulumi, "export", exports.__setitem__)
        self.probed = []

        def probe(address: str, *_: Any, **__: Any) -> VaultServer:
            self.probed.append(address)
            return server

        self.setattr(preflight, "probe_server", probe)
        # A fresh program: no component of an earlier run has claimed anything.
        self.setattr(standalone, "_CLAIMED", {})
        # The token is accepted and may do anything (a root token's answer).
        self.setattr(token_access, "token_namespace", lambda session: "")
        self.setattr(
            token_access, "capabilities", lambda session, paths: {path: ["root"] for path in paths}
        )

        @pulumi.runtime.test
        def execute() -> pulumi.Output:
            runpy.run_path(str(program), run_name="__main__")
            return pulumi.Output.all(**exports).apply(exports.update)

        execute()
        return ProgramRun(mocks.resources, exports, monitor.options)
