"""`esign`: the client on the command line.

    esign --address https://esign.corp.example --ca-sha256 HEX login USER   (password asked)
    esign ... todo | show ID | code ID PARTY | sign ID PARTY CODE | download ID FILE

The token of `login` is kept in ~/.config/esign-client/token (mode 0600), or $ESIGN_TOKEN.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from esign_client.client import Client, ClientError
from esign_client.discovery import DiscoveryError, discover

TOKEN_FILE = Path.home() / ".config" / "esign-client" / "token"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="esign", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", required=True, help="the appliance's private-cloud address")
    parser.add_argument(
        "--ca-sha256", required=True, help="its root CA's fingerprint (from IT or the QR code)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("login").add_argument("username")
    commands.add_parser("todo")
    commands.add_parser("show").add_argument("contract", type=int)
    code = commands.add_parser("code")
    code.add_argument("contract", type=int)
    code.add_argument("party", type=int)
    sign = commands.add_parser("sign")
    sign.add_argument("contract", type=int)
    sign.add_argument("party", type=int)
    sign.add_argument("code")
    download = commands.add_parser("download")
    download.add_argument("contract", type=int)
    download.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        found = discover(args.address, args.ca_sha256)
        if args.command == "login":
            password = os.environ.get("ESIGN_PASSWORD") or getpass.getpass(f"Password for {args.username}: ")
            client = Client.login(found, args.username, password)
            TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
            TOKEN_FILE.touch(mode=0o600)
            TOKEN_FILE.write_text(client._http.headers["Authorization"].removeprefix("Bearer "))
            print(f"signed in to {found.document['name']} as {args.username}")
            return 0
        token = os.environ.get("ESIGN_TOKEN") or (
            TOKEN_FILE.read_text().strip() if TOKEN_FILE.exists() else ""
        )
        if not token:
            print("sign in first: esign ... login USER", file=sys.stderr)
            return 2
        client = Client(found, token)
        if args.command == "todo":
            for item in client.todo():
                print(f"{item['id']:>6}  {item['state']:<10} {item['title']}")
        elif args.command == "show":
            print(json.dumps(client.contract(args.contract), indent=2, ensure_ascii=False))
        elif args.command == "code":
            print(json.dumps(client.request_code(args.contract, args.party), ensure_ascii=False))
        elif args.command == "sign":
            print(f"signed; the contract is {client.sign(args.contract, args.party, args.code)['state']}")
        elif args.command == "download":
            args.file.write_bytes(client.download(args.contract))
            print(f"wrote {args.file}")
        return 0
    except (DiscoveryError, ClientError) as exc:
        print(f"esign: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
