"""Operator commands: API keys and the audit trail. `python -m overdrive.admin --help`.

    python -m overdrive.admin keys new --id ingest --scopes signals:write,items:write [--expires 2027-01-01]
    python -m overdrive.admin keys list
    python -m overdrive.admin keys revoke --id ingest
    python -m overdrive.admin audit verify        # exit 1 if the chain is broken
    python -m overdrive.admin audit tail [--limit 20]

Keys go to `OVERDRIVE_API_KEYS_FILE` (or `--file`); the service re-reads the file within a second.
The audit commands read the deployment the settings name (the embedded data folder, or Redis),
while the service runs or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from overdrive.config import Settings, SettingsError, describe_error
from overdrive.domain.times import epoch_seconds
from overdrive.security.audit import AuditTrail
from overdrive.security.keys import KeyEntry, KeyFileError, append_key, key_digest, new_key, read_key_file, remove_key
from overdrive.security.principal import SCOPES
from overdrive.wiring import audit_trail

PROG = "python -m overdrive.admin"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="area", required=True)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="command", required=True)
    new = keys.add_parser("new", help="make a key, print it once, store its hash")
    new.add_argument("--id", required=True, help="a name for the key (audit records show it)")
    new.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    new.add_argument("--expires", help="ISO 8601 time or epoch seconds")
    new.add_argument("--rate", type=float, help="requests per second this key may make in each scope")
    new.add_argument("--burst", type=float, help="requests it may make at once (default: --rate)")
    for command in (new, keys.add_parser("list", help="the keys (ids, scopes, expiry; never keys)"),
                    revoke := keys.add_parser("revoke", help="remove a key")):
        command.add_argument("--file", type=Path, help="the keys file (default OVERDRIVE_API_KEYS_FILE)")
    revoke.add_argument("--id", required=True)
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="command", required=True)
    audit.add_parser("verify", help="check every record's hash and link; exit 1 at the first break")
    tail = audit.add_parser("tail", help="the newest records")
    tail.add_argument("--limit", type=int, default=20)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
    except ValidationError as exc:
        parser.exit(2, f"{PROG}: {describe_error(exc)}\n")
    except SettingsError as exc:
        parser.exit(2, f"{PROG}: {exc}\n")
    try:
        if args.area == "keys":
            return _keys(args, settings, parser)
        return asyncio.run(_audit(args, settings))
    except (KeyFileError, SettingsError, ValueError) as exc:
        parser.exit(2, f"{PROG}: {exc}\n")


def _keys(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    path = args.file or settings.api_keys_file
    if path is None:
        parser.error("no keys file: set OVERDRIVE_API_KEYS_FILE or pass --file")
    if args.command == "list":
        for entry in read_key_file(path).values():
            print(json.dumps({k: v for k, v in entry.to_json().items() if k != "sha256"}))
        return 0
    if args.command == "revoke":
        remove_key(path, args.id)
        print(f"key {args.id!r} removed from {path}")
        return 0
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        parser.error(f"--scopes: unknown {unknown}; valid: {', '.join(SCOPES)}")
    key = new_key()
    entry = KeyEntry(id=args.id, sha256=key_digest(key), scopes=frozenset(scopes),
                     expires_at=None if args.expires is None else epoch_seconds(args.expires, now=float("inf")),
                     rate=None if args.rate is None else (args.rate, args.burst or args.rate))
    append_key(path, entry)
    print(key)
    print(f"(shown once; its SHA-256 is stored in {path} as key {args.id!r})", file=sys.stderr)
    return 0


async def _audit(args: argparse.Namespace, settings: Settings) -> int:
    trail, close = audit_trail(settings)
    try:
        if args.command == "tail":
            for record in reversed(await trail.query(limit=args.limit)):
                print(json.dumps(record))
            return 0
        report = await asyncio.to_thread(AuditTrail.verify, trail)
    finally:
        await close()
    print(json.dumps(report))
    if not report["intact"]:
        print(f"{PROG}: the audit trail is broken at record {report['broken_at']}: {report['reason']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
