"""Portal response times for every page and fragment, a 1M-request account beside a 1k one.

    python bench/load_requests.py                  # once: fills the gateway database
    python bench/portal_pages.py [--database-url URL] [--samples 20] [--throughput-seconds 10]

Starts the gateway on the loaded database and the portal (``python app.py``, waitress)
beside it, signs up one user per loaded account and links each to its account. Every
same-site link the signed-in pages offer (``href`` and ``hx-get``, two clicks deep from
the dashboard, request-log "next page" links included) is fetched ``--samples`` times as
a full page and again as an HTMX fragment (``HX-Request: true``), the two accounts' URLs
taking turns sample by sample. Times are measured by
a keep-alive client on the same machine, so they include about 0.2 ms of loopback and
client work on top of the server's own time. Then wrk measures dashboard throughput at
concurrency 16, and the 1M-row CSV export is downloaded while the portal's and the
gateway's resident memory are sampled.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from load import format_table, percentile, wrk_available  # noqa: E402
from load_requests import ACCOUNTS_FILE, loaded_accounts  # noqa: E402
from portal_session import sign_in, sign_up  # noqa: E402

DEFAULT_DB = f"sqlite:///{harness.RESULTS_DIR / 'data' / 'gateway.db'}"
SKIP_PREFIXES = ("/static/", "/logout", "/login", "/signup", "/reset", "/stripe/")
LINK_RE = re.compile(r'(?:href|hx-get)="([^"#]+)"')
HX_RE = re.compile(r'hx-get="([^"#]+)"')
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def link_user(database_url: str, email: str, account_id: str, tz: str) -> None:
    """Point the portal user at a loaded gateway account (and set the zone) in the portal database."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        # The sign-up made an empty account of its own; the loaded one takes its place.
        conn.execute(sa.text("UPDATE users SET account_id = NULL WHERE account_id = :a"), {"a": account_id})
        conn.execute(sa.text("UPDATE users SET account_id = :a, timezone = :tz WHERE email = :e"),
                     {"a": account_id, "tz": tz, "e": email})
    engine.dispose()


def set_usage_zone(gateway: harness.Service, account_id: str, tz: str) -> float:
    """Keep the account's daily sums in ``tz``, as the portal does when the user picks it; seconds taken."""
    started = time.perf_counter()
    status, body = harness.http_json("PATCH", f"{gateway.info['internal_url']}/internal/accounts/{account_id}", {"usage_tz": tz},
                                     gateway.info["token"], timeout=600)
    if status != 200:
        raise RuntimeError(f"moving the daily sums of {account_id} to {tz}: HTTP {status} {body}")
    return time.perf_counter() - started


def crawl(session: requests.Session, portal: str, depth: int, limit: int) -> dict[str, bool]:
    """Same-site GET links reachable from the dashboard; value: True when offered as ``hx-get``."""
    found: dict[str, bool] = {"/dashboard": False}
    frontier = ["/dashboard"]
    for _ in range(depth):
        next_frontier = []
        for path in frontier:
            resp = session.get(portal + path, timeout=120)
            if resp.status_code != 200 or "text/html" not in resp.headers.get("Content-Type", ""):
                continue
            hx = {h.replace("&amp;", "&") for h in HX_RE.findall(resp.text)}
            for raw in LINK_RE.findall(resp.text):
                link = raw.replace("&amp;", "&")
                url = urljoin(portal + path, link)
                if not url.startswith(portal):
                    continue
                rel = url[len(portal):] or "/"
                if rel.startswith(SKIP_PREFIXES) or ".csv" in rel:
                    continue
                if rel not in found and len(found) < limit:
                    found[rel] = link in hx
                    next_frontier.append(rel)
                elif rel in found and link in hx:
                    found[rel] = True
        frontier = next_frontier
    return found


def pattern(path: str) -> str:
    """A URL with its per-account parts (ids, cursors) replaced, to pair the two accounts' rows."""
    path = UUID_RE.sub("{id}", path)
    path = re.sub(r"cursor=[^&]+", "cursor={cursor}", path)
    return path


def time_urls(targets: dict[str, tuple[requests.Session, str]], samples: int, htmx: bool) -> dict[str, dict]:
    """p50/p99 of ``samples`` GETs of each (session, URL) after two warm-ups, and the status seen.

    The targets take turns, sample by sample, so a change in what else the machine is
    doing weighs on both accounts alike.
    """
    headers = {"HX-Request": "true"} if htmx else {}
    for session, url in targets.values():
        for _ in range(2):
            session.get(url, headers=headers, timeout=120)
    times: dict[str, list[float]] = {label: [] for label in targets}
    statuses: dict[str, set[int]] = {label: set() for label in targets}
    sizes: dict[str, int] = {}
    for _ in range(samples):
        for label, (session, url) in targets.items():
            start = time.perf_counter()
            resp = session.get(url, headers=headers, timeout=120)
            body = resp.content
            times[label].append((time.perf_counter() - start) * 1000)
            statuses[label].add(resp.status_code)
            sizes[label] = len(body)
    return {
        label: {"p50_ms": percentile(times[label], 50), "p99_ms": percentile(times[label], 99),
                "status": ",".join(str(s) for s in sorted(statuses[label])), "bytes": sizes[label]}
        for label in targets
    }


def dashboard_throughput(portal: str, session: requests.Session, seconds: float, concurrency: int) -> dict:
    """wrk on /dashboard with the session's cookie; requests per second and latency."""
    if not wrk_available():
        return {"skipped": "wrk is not installed"}
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    script = ('wrk.headers["Cookie"] = [====[' + cookie + ']====]\n'
              'done = function(s, l, r) io.write(string.format("WRKJSON %d %d %d %d %d\\n", s.requests, '
              's.duration, l:percentile(50), l:percentile(99), s.errors.status + s.errors.connect + '
              's.errors.read + s.errors.timeout)) end\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    try:
        out = subprocess.run(["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds:g}s", "--timeout", "30s",
                              "-s", lua, portal + "/dashboard"], capture_output=True, text=True,
                             timeout=seconds + 60).stdout
    finally:
        Path(lua).unlink(missing_ok=True)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        return {"skipped": f"wrk gave no result: {out[-300:]}"}
    requests_done, duration_us, p50, p99, errors = (int(v) for v in line.split()[1:])
    return {"rps": requests_done / (duration_us / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "errors": errors, "requests": requests_done}


def csv_export(session: requests.Session, portal: str, portal_pid: int, gateway_pid: int) -> dict:
    """Download /requests.csv while sampling both processes' RSS."""
    idle = {"portal_idle_mb": harness.rss_mb(portal_pid), "gateway_idle_mb": harness.rss_mb(gateway_pid)}
    rows = 0
    size = 0
    with harness.RssSampler(portal_pid) as portal_rss, harness.RssSampler(gateway_pid) as gateway_rss:
        start = time.perf_counter()
        first_byte = None
        with session.get(portal + "/requests.csv", stream=True, timeout=900) as resp:
            status = resp.status_code
            for chunk in resp.iter_content(65536):
                if first_byte is None:
                    first_byte = time.perf_counter() - start
                rows += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.perf_counter() - start
    return {**idle, "status": status, "rows": max(0, rows - 1), "mb": size / 1e6, "seconds": seconds,
            "first_byte_s": first_byte, "portal_peak_mb": portal_rss.peak_mb, "gateway_peak_mb": gateway_rss.peak_mb}


def main(argv: list[str] | None = None) -> None:
    """Command line: start gateway and portal on the loaded data, time everything, print tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DB, help="the gateway database load_requests.py filled")
    parser.add_argument("--samples", type=int, default=20, help="timed fetches per URL and mode")
    parser.add_argument("--depth", type=int, default=2, help="clicks away from the dashboard")
    parser.add_argument("--max-urls", type=int, default=60)
    parser.add_argument("--tz", default="Asia/Kolkata", help="the users' time zone")
    parser.add_argument("--throughput-seconds", type=float, default=10.0)
    parser.add_argument("--skip-csv", action="store_true")
    args = parser.parse_args(argv)
    loaded = loaded_accounts(args.database_url)
    if loaded is None:
        sys.exit(f"no loaded accounts recorded for {args.database_url} in {ACCOUNTS_FILE}: "
                 f"run python bench/load_requests.py --database-url ... first")
    harness.raise_fd_limit()
    harness.warn_if_busy()
    machine = harness.machine_description()
    fast_port, paced_port = harness.free_port(), harness.free_port()
    gateway = harness.start_gateway(harness.free_port(), harness.providers_file(fast_port, paced_port),
                                    args.database_url, name="gateway-portal")
    portal = None
    results: dict = {"machine": machine, "pages": {}, "throughput": {}, "csv": None, "zone_change": {}}
    try:
        portal = harness.start_portal(harness.free_port(), gateway)
        password = secrets.token_urlsafe(18)
        sessions = {}
        for label in ("small", "big"):
            email = f"bench-{label}-{int(time.time())}@example.com"
            sign_up(portal, email, password)
            link_user(portal.info["database_url"], email, loaded[label]["account_id"], args.tz)
            seconds = set_usage_zone(gateway, loaded[label]["account_id"], args.tz)
            results["zone_change"][label] = round(seconds, 2)
            print(f"{label}: daily sums in {args.tz} after {seconds:.2f} s", flush=True)
            sessions[label] = sign_in(portal.url, email, password)
        # URL -> offered as an htmx fragment, per account, keyed by the pattern pairing them.
        found: dict[str, dict[str, tuple[str, bool]]] = {}
        for label, session in sessions.items():
            urls = crawl(session, portal.url, args.depth, args.max_urls)
            print(f"{label}: {len(urls)} URLs", flush=True)
            found[label] = {pattern(path): (path, hx) for path, hx in urls.items()}
            results["pages"][label] = {}
        for key in sorted(set().union(*found.values())):
            for htmx in (False, True):
                targets = {label: (sessions[label], portal.url + paths[key][0])
                           for label, paths in found.items() if key in paths}
                for label, row in time_urls(targets, args.samples, htmx).items():
                    path, offered_as_fragment = found[label][key]
                    results["pages"][label][(key, htmx)] = {**row, "path": path, "fragment_link": offered_as_fragment}
                    print(f"  {label:<5} {'HX ' if htmx else '   '}{path[:90]:<90} {row['p50_ms']:8.1f} "
                          f"{row['p99_ms']:8.1f} ms  {row['status']}", flush=True)
        for label, session in sessions.items():
            results["throughput"][label] = dashboard_throughput(portal.url, session, args.throughput_seconds, 16)
            print(f"dashboard throughput ({label}): {results['throughput'][label]}", flush=True)
        if not args.skip_csv:
            results["csv"] = csv_export(sessions["big"], portal.url, portal.pid, gateway.pid)
            print(f"CSV export: {results['csv']}", flush=True)
    finally:
        if portal is not None:
            portal.stop()
        gateway.stop()
    print()
    print(report(results, loaded))
    harness.write_result("portal_pages", {
        "machine": machine, "throughput": results["throughput"], "csv": results["csv"],
        "zone_change_seconds": results["zone_change"],
        "pages": {label: [{"pattern": k[0], "htmx": k[1], **v} for k, v in rows.items()]
                  for label, rows in results["pages"].items()}})


def report(results: dict, loaded: dict) -> str:
    """The Markdown tables and target checks."""
    small = results["pages"].get("small", {})
    big = results["pages"].get("big", {})
    rows = []
    worst_ratio = 0.0
    over_budget = []
    for key in sorted(set(small) | set(big)):
        s, b = small.get(key), big.get(key)
        ratio = (b["p50_ms"] / s["p50_ms"]) if s and b and s["p50_ms"] else None
        if ratio is not None:
            worst_ratio = max(worst_ratio, ratio)
        if b and b["p50_ms"] >= 50:
            over_budget.append(key[0] + (" (HX)" if key[1] else ""))
        rows.append({"url": key[0].replace("|", "%7C"), "mode": "fragment" if key[1] else "page",
                     "small_p50": s["p50_ms"] if s else None, "small_p99": s["p99_ms"] if s else None,
                     "big_p50": b["p50_ms"] if b else None, "big_p99": b["p99_ms"] if b else None,
                     "ratio": ratio, "status": (b or s)["status"]})
    lines = [
        f"Accounts: big = {loaded['big']['requests']:,} requests, small = {loaded['small']['requests']:,}; "
        f"times in ms, client on the same machine; load {results['machine']['load_1min_at_start']} at start.", "",
        format_table(rows, [("url", "URL"), ("mode", "as"), ("small_p50", "small p50"), ("small_p99", "small p99"),
                            ("big_p50", "big p50"), ("big_p99", "big p99"), ("ratio", "big/small p50"),
                            ("status", "status")]),
        "",
    ]
    zone_change = results.get("zone_change") or {}
    if zone_change:
        lines += ["Moving the daily sums into the users' zone (PATCH usage_tz, a rebuild unless already there): "
                  + ", ".join(f"{label} {seconds} s" for label, seconds in zone_change.items()), ""]
    thr = results["throughput"]
    if thr:
        lines += ["Dashboard under waitress (8 threads), wrk at concurrency 16:", "",
                  format_table([{"account": k, **v} for k, v in thr.items()],
                               [("account", "account"), ("rps", "req/s"), ("p50_ms", "p50 ms"),
                                ("p99_ms", "p99 ms"), ("errors", "errors"), ("skipped", "note")]), ""]
    csv = results.get("csv")
    if csv:
        lines += ["CSV export of the big account:", "",
                  format_table([csv], [("status", "status"), ("rows", "rows"), ("mb", "MB"), ("seconds", "seconds"),
                                       ("first_byte_s", "first byte s"), ("portal_idle_mb", "portal idle RSS MB"),
                                       ("portal_peak_mb", "portal peak RSS MB"),
                                       ("gateway_idle_mb", "gateway idle RSS MB"),
                                       ("gateway_peak_mb", "gateway peak RSS MB")]), ""]
    lines.append("Targets:")
    lines.append(f"- big p50 within 1.5× of small on every URL: worst {worst_ratio:.2f}× — "
                 f"{'PASS' if worst_ratio <= 1.5 else 'FAIL'}")
    lines.append(f"- big p50 under 50 ms on every URL: {'PASS' if not over_budget else 'FAIL: ' + ', '.join(over_budget)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
