"""``oshal connector keygen|sign|verify|trust``: publisher keys, manifest signatures and the local trust store.

Everything here is local files: keys in ``$OSHAL_HOME/keys`` (or ``--out``), signatures next to manifests
(``MANIFEST.sig.json``) and trusted publisher keys in ``$OSHAL_HOME/trust``. No API server is needed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Column, Table

from oshal.cli.client import JsonFlag, WideFlag, emit_json, err, load_settings, out, print_table, when
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.signing import Signature, sign_manifest, verify_manifest, write_keypair
from oshal.connectors.trust import TrustStore, validate_publisher
from oshal.errors import Forbidden, Invalid, NotFound

connector_app = typer.Typer(name="connector", no_args_is_help=True,
                            help="Connectors: keys, signatures and the trust store")

_MAX_ERRORS = 5


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise NotFound(f"{what} {path} does not exist", hint="check the path") from e
    except IsADirectoryError as e:
        raise Invalid(f"{what} {path} is a folder, not a file", hint="give the file's path") from e
    except OSError as e:
        raise Invalid(f"cannot read {what} {path}: {e.strerror}", hint="check the path and its permissions") from e


def load_manifest(path: Path) -> ConnectorManifest:
    """A ConnectorManifest from a JSON (``.json``) or YAML file; Invalid listing the first errors if it isn't one."""
    text = _read(path, "manifest").decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise Invalid(f"manifest {path} is not valid {kind}: {e}", hint="fix the syntax and retry") from e
    try:
        return ConnectorManifest.model_validate(data)
    except ValidationError as e:
        problems = e.errors()
        listed = "; ".join(f"{'.'.join(str(p) for p in x['loc']) or '(top)'}: {x['msg']}"
                           for x in problems[:_MAX_ERRORS])
        more = f" (and {len(problems) - _MAX_ERRORS} more)" if len(problems) > _MAX_ERRORS else ""
        raise Invalid(f"manifest {path} is not a valid connector manifest: {listed}{more}",
                      hint="fix those fields; the manifest model is oshal.connectors.manifest.ConnectorManifest"
                      ) from e


def _signature_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".sig.json")


def _store() -> TrustStore:
    return TrustStore.in_home(load_settings().home)


@connector_app.command("keygen")
def keygen(
    publisher: Annotated[str, typer.Option("--publisher", help="Publisher name: a-z 0-9 . _ - (e.g. acme-labs).")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for NAME.key and NAME.pub (default: $OSHAL_HOME/keys).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair of that name.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Generate a publisher's Ed25519 key pair: NAME.key (private, 0600) and NAME.pub (share it)."""
    validate_publisher(publisher)
    directory = out_dir if out_dir is not None else load_settings().home / "keys"
    files = write_keypair(directory, publisher, force=force)
    if as_json:
        emit_json(files.to_dict())
        return
    out.print(f"key [bold]{files.key_id}[/] for publisher [bold]{escape(publisher)}[/]")
    out.print(f"  private  {escape(str(files.private_path))}  [dim](0600; keep it secret)[/]")
    out.print(f"  public   {escape(str(files.public_path))}")
    err.print(f"[dim]next: oshal connector trust {escape(publisher)} {escape(str(files.public_path))}[/]")


@connector_app.command("sign")
def sign(
    manifest_path: Annotated[Path, typer.Argument(metavar="MANIFEST", help="Connector manifest (JSON or YAML).")],
    key: Annotated[Path, typer.Option("--key", help="The publisher's private key file (NAME.key).")],
    publisher: Annotated[str | None, typer.Option(
        "--publisher", help="Sign as this publisher (default: the manifest's); must match the manifest.")] = None,
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the signature (default: MANIFEST.sig.json next to it).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign a connector manifest: writes MANIFEST.sig.json over its canonical form."""
    manifest = load_manifest(manifest_path)
    signature = sign_manifest(manifest, _read(key, "private key"), publisher or manifest.publisher)
    target = out_path if out_path is not None else _signature_path(manifest_path)
    target.write_text(signature.to_json())
    trusted = _store().is_trusted(signature.publisher, signature.key_id)
    if as_json:
        emit_json({**signature.to_dict(), "manifest": str(manifest_path), "signature_file": str(target),
                   "manifest_id": manifest.id, "trusted_here": trusted})
        return
    out.print(f"signed [bold]{escape(manifest.id)}[/] {escape(manifest.version)} as "
              f"[bold]{escape(signature.publisher)}[/]")
    out.print(f"  digest     {signature.digest}")
    out.print(f"  key id     {signature.key_id}")
    out.print(f"  signature  {escape(str(target))}")
    if not trusted:
        err.print(f"[dim]note: key {signature.key_id} is not in this trust store; to verify here: "
                  f"oshal connector trust {escape(signature.publisher)} PUBFILE[/]")


@connector_app.command("verify")
def verify(
    manifest_path: Annotated[Path, typer.Argument(metavar="MANIFEST", help="Connector manifest (JSON or YAML).")],
    signature_path: Annotated[Path | None, typer.Option(
        "--signature", help="Signature file (default: MANIFEST.sig.json next to it).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify a manifest's signature against the trust store: exit 0 if good, 5 (with the reason) if not."""
    manifest = load_manifest(manifest_path)
    sig_file = signature_path if signature_path is not None else _signature_path(manifest_path)
    if not sig_file.exists():
        raise NotFound(f"no signature {sig_file} for manifest {manifest_path}",
                       hint="sign it with `oshal connector sign MANIFEST --key KEY`, or pass --signature FILE")
    signature = Signature.from_json(_read(sig_file, "signature").decode("utf-8", errors="replace"))
    result = verify_manifest(manifest, signature, _store())
    if as_json:
        emit_json({**dataclasses.asdict(result), "manifest": str(manifest_path), "signature_file": str(sig_file)})
    elif result.ok:
        out.print(f"[bold green]ok[/] {escape(result.message)}")
        out.print(f"  digest  {result.digest}")
    if not result.ok:
        raise Forbidden(f"{result.reason}: {result.message}", hint=result.hint)


def _render_keys(keys: list[dict[str, Any]], wide: bool) -> None:
    table = Table("publisher", Column("key id", no_wrap=True), "status", "trusted", "revoked",
                  Column("public key", no_wrap=True), title=f"trusted keys ({len(keys)})", title_justify="left")
    for k in keys:
        colour = "green" if k["status"] == "trusted" else "red"
        table.add_row(escape(k["publisher"]), k["key_id"], f"[{colour}]{k['status']}[/]", when(k["trusted_at"]),
                      when(k["revoked_at"]) if k["revoked_at"] else "-", k["public_key"])
    print_table(table, wide)


@connector_app.command("trust")
def trust(
    publisher: Annotated[str | None, typer.Argument(metavar="PUBLISHER", help="Publisher name.")] = None,
    target: Annotated[str | None, typer.Argument(
        metavar="PUBFILE|KEY_ID", help="Public key file to trust; with --revoke, the key id to revoke.")] = None,
    list_keys: Annotated[bool, typer.Option(
        "--list", help="List the trust store (of PUBLISHER only, if given).")] = False,
    revoke: Annotated[bool, typer.Option(
        "--revoke", help="Revoke PUBLISHER's key KEY_ID: its signatures no longer verify.")] = False,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Trust a publisher's public key (PUBLISHER PUBFILE), --list the store, or --revoke PUBLISHER KEY_ID."""
    store = _store()
    if list_keys:
        if revoke or target is not None:
            raise typer.BadParameter("--list takes at most a PUBLISHER (no key, no --revoke)")
        names = [validate_publisher(publisher)] if publisher is not None else store.publishers()
        keys = [k.to_dict() for name in names for k in store.keys(name)]
        if as_json:
            emit_json(keys)
        else:
            _render_keys(keys, wide)
        return
    if publisher is None or target is None:
        raise typer.BadParameter("give PUBLISHER PUBFILE to trust, --revoke PUBLISHER KEY_ID, or --list")
    if revoke:
        key = store.revoke(publisher, target)
        if as_json:
            emit_json(key.to_dict())
            return
        out.print(f"key [bold]{key.key_id}[/] of [bold]{escape(key.publisher)}[/] [red]revoked[/] "
                  f"at {key.revoked_at}; signatures made with it no longer verify")
        return
    pub_file = Path(target)
    key = store.trust(publisher, _read(pub_file, "public key file").decode("utf-8", errors="replace"))
    if as_json:
        emit_json(key.to_dict())
        return
    out.print(f"trusted key [bold]{key.key_id}[/] of publisher [bold]{escape(key.publisher)}[/]")
    out.print(f"  {key.public_key}")


def register(app: typer.Typer) -> None:
    app.add_typer(connector_app, name="connector")
