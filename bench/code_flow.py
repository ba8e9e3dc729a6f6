"""Authorization code + PKCE round trips against a running Bastion; print one JSON object.

Run it with Bastion's interpreter, pinned to the load generator's core (``bench/run.py``
does, after registering a first-party public client and the bench user):

    taskset -c 1 .venv/bin/python bench/code_flow.py --base-url http://127.0.0.1:8000 \\
        --client-id CLIENT_ID --redirect-uri https://app.bench.example/callback \\
        --username bench_user --password-stdin --clients 8 --duration 5 --warmup 1

Each of ``--clients`` concurrent clients is one browser and its app, each with its own
connection, doing one full sign-in per round trip, as a person does on a fresh browser:

1. ``GET /authorize`` (response_type=code, a fresh S256 code_challenge, state, nonce;
   no cookies) → 200, the hosted login page, its form with the CSRF token;
2. ``POST /authorize`` with that form, the username and the password (the CSRF cookie
   of step 1) → 303 to the redirect URI with ``code``, the same ``state`` and ``iss``;
   a first-party client is asked for no consent;
3. ``POST /auth/token`` grant_type=authorization_code with the code, the redirect URI,
   the code_verifier and the client_id → 200 with an access token (and an id_token
   for ``openid``).

The redirect is read, never followed. wrk cannot do this (the CSRF token and the code
come from the previous answer), so this is a closed loop in asyncio with httpx, like
wrk's: ``--warmup`` seconds unmeasured, then ``--duration`` seconds in which every
round trip that completes is counted, with its latency (the three requests, end to
end). One round trip is made and checked before any client starts. Once the window
closes no round trip starts; those in flight finish, uncounted in the window but
counted in ``round_trips_total`` with the checked one and the warm-up ones, so that
server CPU read around the whole run divides by every round trip the server served.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import math
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx

STEPS = ("authorize", "login", "token")


class FormReader(HTMLParser):
    """The action and the fields (inputs with a name) of the page's first form."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action, self._in_form = named.get("action", ""), True
        elif tag == "input" and self._in_form and "name" in named:
            self.fields[named["name"]] = named.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


class FlowError(Exception):
    """A round trip that did not go as a sign-in goes; ``kind`` is its error counter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Setup:
    client_id: str
    redirect_uri: str
    username: str
    password: str
    scope: str
    issuer: str


@dataclass
class Tally:
    """What the clients saw: round trips in the window, all of them, errors."""

    window: tuple[float, float] = (0.0, 0.0)
    latencies_ms: list[float] = field(default_factory=list)
    steps_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    total: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    def error(self, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.first_error = self.first_error or message


def pkce() -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expect(answer: httpx.Response, status: int, step: str) -> None:
    if answer.status_code != status:
        raise FlowError("status", f"{step}: HTTP {answer.status_code}, not {status}: "
                                  f"{answer.text[:200]!r}")


async def round_trip(http: httpx.AsyncClient, setup: Setup) -> list[float]:
    """One sign-in from a fresh browser to the app's tokens; the seconds of each step."""
    http.cookies.clear()
    verifier, challenge = pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    marks = [time.perf_counter()]
    page = await http.get("/authorize", params={
        "response_type": "code", "client_id": setup.client_id,
        "redirect_uri": setup.redirect_uri, "scope": setup.scope, "state": state,
        "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256",
    })
    expect(page, 200, "GET /authorize")
    form = FormReader()
    form.feed(page.text)
    if form.fields.get("action") != "login" or "csrf_token" not in form.fields:
        raise FlowError("flow", f"GET /authorize: not the login form: {page.text[:200]!r}")
    marks.append(time.perf_counter())
    fields = {**form.fields, "username": setup.username, "password": setup.password}
    signed_in = await http.post(form.action or "/authorize", data=fields)
    expect(signed_in, 303, "POST /authorize")
    location = signed_in.headers.get("location", "")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if (not location.startswith(setup.redirect_uri + "?") or query.get("state") != state
            or query.get("iss") != setup.issuer or "code" not in query):
        raise FlowError("flow", f"POST /authorize: redirected to {location[:200]!r}")
    marks.append(time.perf_counter())
    tokens = await http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": query["code"],
        "redirect_uri": setup.redirect_uri, "code_verifier": verifier,
        "client_id": setup.client_id,
    })
    expect(tokens, 200, "POST /auth/token")
    body = tokens.json()
    if not body.get("access_token") or ("openid" in setup.scope.split()
                                        and not body.get("id_token")):
        raise FlowError("flow", f"POST /auth/token: no tokens in {tokens.text[:200]!r}")
    marks.append(time.perf_counter())
    return [after - before for before, after in itertools.pairwise(marks)]


async def one_client(base: str, setup: Setup, tally: Tally, timeout: float) -> None:
    """One browser: round trips until the window closes."""
    start, end = tally.window
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as http:
        while time.perf_counter() < end:
            try:
                steps = await round_trip(http, setup)
            except FlowError as exc:
                tally.error(exc.kind, str(exc))
                continue
            except httpx.TimeoutException as exc:
                tally.error("timeout", repr(exc))
                continue
            except httpx.ConnectError as exc:
                tally.error("connect", repr(exc))
                await asyncio.sleep(0.1)
                continue
            except httpx.TransportError as exc:
                tally.error("read", repr(exc))
                continue
            done = time.perf_counter()
            tally.total += 1
            if start <= done <= end:
                tally.latencies_ms.append(sum(steps) * 1e3)
                for name, seconds in zip(STEPS, steps, strict=True):
                    tally.steps_ms[name].append(seconds * 1e3)


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile, as wrk reports it (no interpolation)."""
    ranked = sorted(values)
    return ranked[min(len(ranked), max(1, math.ceil(pct / 100 * len(ranked)))) - 1]


def summary(tally: Tally, clients: int) -> dict[str, object]:
    start, end = tally.window
    seconds = end - start
    lat = tally.latencies_ms
    figures: dict[str, object] = {
        "rps": round(len(lat) / seconds, 1),
        "requests": len(lat),
        "seconds": round(seconds, 2),
        "errors": tally.errors,
        "clients": clients,
        "http_requests_per_round_trip": len(STEPS),
        "round_trips_total": tally.total,
    }
    if lat:
        figures.update({
            "p50_ms": round(percentile(lat, 50), 3), "p90_ms": round(percentile(lat, 90), 3),
            "p99_ms": round(percentile(lat, 99), 3), "max_ms": round(max(lat), 3),
            "mean_ms": round(statistics.mean(lat), 3),
            "step_p50_ms": {name: round(percentile(v, 50), 3)
                            for name, v in tally.steps_ms.items()},
        })
    if tally.first_error:
        figures["first_error"] = tally.first_error[:300]
    return figures


async def run(args: argparse.Namespace, password: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=args.base_url, timeout=args.timeout) as http:
        discovery = await http.get("/.well-known/openid-configuration")
        expect(discovery, 200, "GET /.well-known/openid-configuration")
        setup = Setup(args.client_id, args.redirect_uri, args.username, password, args.scope,
                      discovery.json()["issuer"])
        await round_trip(http, setup)  # one that must work before any is timed
    now = time.perf_counter()
    tally = Tally(window=(now + args.warmup, now + args.warmup + args.duration), total=1)
    await asyncio.gather(*(one_client(args.base_url, setup, tally, args.timeout)
                           for _ in range(args.clients)))
    return summary(tally, args.clients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True, help="a first-party public client")
    parser.add_argument("--redirect-uri", required=True, help="registered for it")
    parser.add_argument("--scope", default="openid me")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-stdin", action="store_true", required=True,
                        help="read the password from the first line of standard input")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=5, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1, help="unmeasured seconds first")
    parser.add_argument("--timeout", type=float, default=10, help="per request, seconds")
    args = parser.parse_args()
    password = sys.stdin.readline().rstrip("\n")
    try:
        result = asyncio.run(run(args, password))
    except (FlowError, httpx.HTTPError) as exc:
        raise SystemExit(f"code flow: {exc}") from exc
    print(json.dumps(result))


if __name__ == "__main__":
    main()
