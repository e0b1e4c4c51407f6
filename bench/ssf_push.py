"""Shared Signals push (issue 21): how long `clampdown serve` takes to accept one Security Event
Token (POST /api/v1/ssf/receivers/{name}/events: bearer, RS256 signature against the cached JWKS,
claims, jti replay check, subject resolved in three memory directories, a SecuritySignals row in
DuckDB, the jti and the audit event committed), one client after another, and the SETs per second
accepted from 8 clients at once. SQLite, a temporary directory; one JSON row per case into --results.

    flock -x /tmp/clampdown-bench.lock .venv/bin/python bench/ssf_push.py --sets 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import tomli_w
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

BEARER = "bench-bearer-token-0123456789abcdef"
AUDIENCE = "https://clampdown.bench/ssf"
EVENT = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _transmitter(key: rsa.RSAPrivateKey) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "use": "sig", "alg": "RS256"}
    documents = {
        "/.well-known/ssf-configuration/issuer": {"issuer": f"{base}/issuer", "jwks_uri": f"{base}/jwks"},
        "/jwks": {"keys": [jwk]},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(documents[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base


def _serve(folder: Path, issuer: str) -> tuple[subprocess.Popen[bytes], str]:
    providers = {
        p: {"connector": "clampdown.connectors.memory:MemoryConnector", "provider": p,
            "state_path": str(folder / f"{p}.db")}
        for p in ("ad", "entra", "okta")
    }  # fmt: skip
    config = folder / "clampdown.toml"
    receivers = {"bench": {"issuer": issuer, "audience": AUDIENCE, "bearer": BEARER}}
    config.write_text(tomli_w.dumps({
        "database": {"url": f"sqlite:///{folder / 'clampdown.db'}"}, "server": {"embedded_worker": False},
        "providers": providers, "ssf": {"receivers": receivers},
    }))  # fmt: skip
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    subprocess.run(
        [sys.executable, "-m", "clampdown", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clampdown", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("clampdown serve did not start")


def _set(key: rsa.RSAPrivateKey, issuer: str, n: int) -> str:
    claims = {"iss": issuer, "jti": uuid.uuid4().hex, "iat": int(time.time()), "aud": AUDIENCE,
              "sub_id": {"format": "email", "email": f"user{n % 50}@memory.test"},
              "events": {EVENT: {"credential_type": "password"}}}  # fmt: skip
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1", "typ": "secevent+jwt"})


async def _push_all(url: str, tokens: list[str], clients: int) -> tuple[list[float], float]:
    headers = {"Authorization": f"Bearer {BEARER}", "Content-Type": "application/secevent+jwt"}
    spent: list[float] = []
    queue = list(reversed(tokens))

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            token = queue.pop()
            started = time.perf_counter()
            response = await http.post(url, content=token, headers=headers)
            spent.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text

    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return spent, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=300)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "ssf_push.jsonl")
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    transmitter, tbase = _transmitter(key)
    with tempfile.TemporaryDirectory() as folder:
        proc, base = _serve(Path(folder), f"{tbase}/issuer")
        try:
            url = f"{base}/api/v1/ssf/receivers/bench/events"
            asyncio.run(_push_all(url, [_set(key, f"{tbase}/issuer", n) for n in range(20)], 1))  # warm
            with args.results.open("a", encoding="utf-8") as out:
                for clients in (1, 8):
                    tokens = [_set(key, f"{tbase}/issuer", n) for n in range(args.sets)]
                    spent, wall = asyncio.run(_push_all(url, tokens, clients))
                    spent.sort()
                    row = {"bench": "ssf_push", "clients": clients, "sets": args.sets,
                           "median_ms": round(statistics.median(spent), 2),
                           "p95_ms": round(spent[int(0.95 * (len(spent) - 1))], 2),
                           "sets_per_second": round(args.sets / wall, 1)}  # fmt: skip
                    print(json.dumps(row))
                    out.write(json.dumps(row) + "\n")
        finally:
            proc.terminate()
            proc.wait(15)
            transmitter.shutdown()


if __name__ == "__main__":
    main()
