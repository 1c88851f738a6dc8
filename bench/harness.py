"""Starting, preparing and stopping the processes the benchmarks measure.

Everything runs on 127.0.0.1: the fake upstreams, the gateway (``python -m gateway``
in a scratch instance directory), the LiteLLM proxy in its own virtualenv, and the
portal. Logs go to ``bench/results/logs/``; nothing here prints a secret.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LOG_DIR = RESULTS_DIR / "logs"
PROVIDERS_FILE = BENCH_DIR / "providers.toml"
LITELLM_VENV = Path(os.environ.get("LITELLM_VENV", BENCH_DIR / ".venv-litellm"))
PYTHON = sys.executable
# The fake upstream checks nothing, but the gateway wants the variable set.
FAKE_UPSTREAM_KEY_ENV = "FAKE_UPSTREAM_API_KEY"


def raise_fd_limit(wanted: int = 65536) -> None:
    """Lift the open-file limit so thousands of sockets fit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None,
              timeout: float = 30.0) -> tuple[int, dict]:
    """One JSON request with the standard library; returns (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw[:300].decode("latin-1")}


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
              headers: dict[str, str] | None = None) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last})")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        task_dir = Path(f"/proc/{current}/task")
        try:
            tasks = list(task_dir.iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                found.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def _status_kb(pid: int, field_name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def rss_mb(pid: int, tree: bool = True) -> float:
    """Resident memory of ``pid`` (and its descendants) in MB, now."""
    pids = process_tree(pid) if tree else [pid]
    return sum(_status_kb(p, "VmRSS") for p in pids) / 1024


def peak_rss_mb(pid: int, tree: bool = True) -> float:
    """The kernel's high-water mark of resident memory (VmHWM), summed over the tree, in MB."""
    pids = process_tree(pid) if tree else [pid]
    return sum(_status_kb(p, "VmHWM") for p in pids) / 1024


class RssSampler:
    """Samples a process tree's RSS on a thread; ``peak_mb`` is the largest sum seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb(self.pid))


@dataclass
class Service:
    """A started process, its log file and how to reach it."""

    name: str
    proc: subprocess.Popen
    url: str
    log_path: Path
    workdir: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The process id of the started command."""
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the service's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _spawn(name: str, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, Path]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}.log"
    log = open(log_path, "w")
    # A process group of its own, so stop() also ends workers it forks.
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return proc, log_path


def start_fake_upstream(port: int, latency_ms: float = 0.0, chunks: int = 8, chunk_interval_ms: float = 0.0,
                        processes: int = 1, name: str = "fake_upstream") -> Service:
    """Start bench/fake_upstream.py and wait until it answers."""
    argv = [PYTHON, str(BENCH_DIR / "fake_upstream.py"), "--port", str(port), "--latency-ms", str(latency_ms),
            "--chunks", str(chunks), "--chunk-interval-ms", str(chunk_interval_ms), "--processes", str(processes)]
    proc, log_path = _spawn(f"{name}-{port}", argv, dict(os.environ), REPO_DIR)
    url = f"http://127.0.0.1:{port}/v1"
    wait_http(url + "/models", 15, proc)
    return Service(name, proc, url, log_path)


def start_relay_floor(port: int, upstream_port: int, mode: str) -> Service:
    """Start bench/relay_floor.py in front of the fake on ``upstream_port`` and wait until it relays."""
    argv = [PYTHON, str(BENCH_DIR / "relay_floor.py"), "--port", str(port), "--upstream",
            f"127.0.0.1:{upstream_port}", "--mode", mode]
    proc, log_path = _spawn(f"relay-floor-{mode}-{port}", argv, dict(os.environ), REPO_DIR)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"relay_floor.py did not start; see {log_path}") from None
            time.sleep(0.1)
    return Service(f"relay-floor-{mode}", proc, f"http://127.0.0.1:{port}", log_path)


def providers_file(fast_port: int, paced_port: int) -> Path:
    """bench/providers.toml with the fakes' ports substituted (a copy under results/)."""
    text = PROVIDERS_FILE.read_text()
    if (fast_port, paced_port) == (9100, 9101):
        return PROVIDERS_FILE
    text = text.replace("127.0.0.1:9100/", f"127.0.0.1:{fast_port}/").replace("127.0.0.1:9101/", f"127.0.0.1:{paced_port}/")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"providers-{fast_port}-{paced_port}.toml"
    path.write_text(text)
    return path


@dataclass
class GatewayAccess:
    """An account on a running gateway and one of its API keys."""

    account_id: str
    key_id: str
    key: str


def start_gateway(port: int, providers: Path, database_url: str | None = None, workers: int = 1,
                  extra_env: dict[str, str] | None = None, name: str = "gateway") -> Service:
    """Run ``python -m gateway`` in a scratch instance directory and wait for its health check.

    ``port`` is the public listener; the internal API gets a free port of its own
    (``info["internal_url"]``).
    """
    workdir = Path(tempfile.mkdtemp(prefix="samalink-bench-gw-"))
    token = secrets.token_urlsafe(32)
    internal_port = free_port()
    internal_url = f"http://127.0.0.1:{internal_port}"
    env = dict(os.environ)
    env.update({
        "GATEWAY_PORT": str(port),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_INTERNAL_PORT": str(internal_port),
        "GATEWAY_INTERNAL_HOST": "127.0.0.1",
        "GATEWAY_DATABASE_URL": database_url or f"sqlite:///{workdir / 'gateway.db'}",
        "INTERNAL_API_TOKEN": token,
        "PROVIDERS_FILE": str(providers),
        "GATEWAY_WORKERS": str(workers),
        "SAMALINK_INSTANCE_DIR": str(workdir),
        FAKE_UPSTREAM_KEY_ENV: "fake-upstream-key",
        "PYTHONPATH": str(REPO_DIR) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    env.update(extra_env or {})
    proc, log_path = _spawn(f"{name}-{port}", [PYTHON, "-m", "gateway"], env, workdir)
    url = f"http://127.0.0.1:{port}"
    service = Service(name, proc, url, log_path, workdir=workdir,
                      info={"token": token, "workers": workers, "internal_url": internal_url})
    try:
        wait_http(internal_url + "/internal/health", 90, proc, {"Authorization": f"Bearer {token}"})
    except RuntimeError:
        tail = service.log_tail()
        service.stop()
        raise RuntimeError(f"gateway did not start:\n{tail}") from None
    return service


def prepare_account(gateway: Service, label: str, credit_micro_p: int = 10**13,
                    keys: int = 1) -> tuple[str, list[GatewayAccess]]:
    """Create an account through the internal API, credit it, and create ``keys`` API keys."""
    token = gateway.info["token"]
    base = gateway.info["internal_url"] + "/internal"
    status, account = http_json("POST", base + "/accounts",
                                {"email": f"{label}@bench.invalid", "external_id": f"bench-{label}"}, token)
    if status not in (200, 201):
        raise RuntimeError(f"creating account {label}: HTTP {status} {account}")
    account_id = account["id"]
    status, body = http_json("POST", f"{base}/accounts/{account_id}/ledger", {
        "kind": "credit", "amount_micro_p": credit_micro_p,
        "idempotency_key": f"bench-credit-{label}", "description": "benchmark balance"}, token)
    if status not in (200, 201):
        raise RuntimeError(f"crediting account {label}: HTTP {status} {body}")
    access = []
    for index in range(keys):
        status, key = http_json("POST", f"{base}/accounts/{account_id}/keys", {"name": f"bench key {index + 1}"}, token)
        if status != 201:
            raise RuntimeError(f"creating a key for {label}: HTTP {status} {key}")
        access.append(GatewayAccess(account_id, key["id"], key["key"]))
    return account_id, access


LITELLM_MASTER_KEY = "sk-bench-" + "0123456789abcdef" * 2


def ensure_litellm_venv(venv: Path = LITELLM_VENV) -> Path:
    """Create the LiteLLM virtualenv on first use (``pip install 'litellm[proxy]'``); return its binary."""
    binary = venv / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"installing litellm[proxy] into {venv} (once) ...", flush=True)
    subprocess.run([PYTHON, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]", "prisma"], check=True)
    return binary


def litellm_config(fast_port: int, paced_port: int, database_url: str | None) -> str:
    """The LiteLLM proxy config: the same two fakes, by the same public model ids."""
    lines = ["model_list:"]
    for model, port in (("deepseek-v3.2", fast_port), ("paced-stream", paced_port)):
        lines += [f"  - model_name: {model}",
                  f"    litellm_params: {{model: openai/{model}-upstream, "
                  f"api_base: \"http://127.0.0.1:{port}/v1\", api_key: fake-upstream-key}}"]
    lines += ["general_settings:", f"  master_key: {LITELLM_MASTER_KEY}"]
    if database_url:
        lines.append(f"  database_url: \"{database_url}\"")
    return "\n".join(lines) + "\n"


def start_litellm(port: int, fast_port: int, paced_port: int, database_url: str | None = None,
                  name: str = "litellm", timeout: float = 240.0) -> Service:
    """Start the LiteLLM proxy against the fakes; raise RuntimeError with the log tail if it cannot."""
    binary = ensure_litellm_venv()
    workdir = Path(tempfile.mkdtemp(prefix="samalink-bench-litellm-"))
    config = workdir / "config.yaml"
    config.write_text(litellm_config(fast_port, paced_port, database_url))
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    proc, log_path = _spawn(f"{name}-{port}", [str(binary), "--config", str(config), "--host", "127.0.0.1",
                                               "--port", str(port)], env, workdir)
    service = Service(name, proc, f"http://127.0.0.1:{port}", log_path, workdir=workdir,
                      info={"token": LITELLM_MASTER_KEY})
    try:
        wait_http(service.url + "/health/liveliness", timeout, proc)
    except RuntimeError as exc:
        tail = service.log_tail(40)
        service.stop()
        raise RuntimeError(f"{exc}\n{tail}") from None
    return service


PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = BENCH_DIR / ".portkey"
# The version measured listens on this port whatever it is told.
PORTKEY_PORT = 8787


def start_portkey(timeout: float = 60.0) -> Service:
    """Start Portkey's gateway (npm ``@portkey-ai/gateway``, installed on first use) with node."""
    script = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: Portkey's gateway needs node and npm")
        subprocess.run([npm, "install", "--prefix", str(PORTKEY_DIR), f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
                       check=True, capture_output=True, timeout=600)
    try:
        socket.create_connection(("127.0.0.1", PORTKEY_PORT), timeout=1).close()
    except OSError:
        pass
    else:
        raise RuntimeError(f"port {PORTKEY_PORT} is taken; Portkey's gateway cannot listen elsewhere")
    proc, log_path = _spawn(f"portkey-{PORTKEY_PORT}", [shutil.which("node") or "node", str(script)],
                            dict(os.environ), PORTKEY_DIR)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", PORTKEY_PORT), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                service = Service("portkey", proc, "", log_path)
                tail = service.log_tail(20)
                service.stop()
                raise RuntimeError(f"Portkey's gateway did not start:\n{tail}") from None
            time.sleep(0.2)
    return Service("portkey", proc, f"http://127.0.0.1:{PORTKEY_PORT}", log_path)


def machine_description() -> dict:
    """nproc, memory, CPU model, Python and kernel, for the README."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_kb = _status_kb_meminfo()
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": sys.version.split()[0], "kernel": os.uname().release,
            "load_1min_at_start": round(os.getloadavg()[0], 2)}


def warn_if_busy(threshold: float = 0.5) -> None:
    """Say so when other work is running: every figure here assumes an idle machine."""
    load = os.getloadavg()[0]
    if load > threshold:
        print(f"warning: 1-minute load average is {load:.2f}; other processes will distort the figures",
              file=sys.stderr, flush=True)


def _status_kb_meminfo() -> int:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return 0
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def write_result(name: str, data: dict) -> Path:
    """Store a run's figures as JSON under bench/results/."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def start_portal(port: int, gateway: Service, database_url: str | None = None, threads: int = 8,
                 name: str = "portal") -> Service:
    """Run ``python app.py`` (waitress) against a running gateway and wait for its sign-in page."""
    workdir = Path(tempfile.mkdtemp(prefix="samalink-bench-portal-"))
    env = dict(os.environ)
    env.update({
        "PORT": str(port),
        "GATEWAY_URL": gateway.info["internal_url"],
        "GATEWAY_PUBLIC_URL": gateway.url + "/v1",
        "INTERNAL_API_TOKEN": gateway.info["token"],
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'portal.db'}",
        "SAMALINK_INSTANCE_DIR": str(workdir),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "PORTAL_THREADS": str(threads),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO_DIR) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    for unset in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "SMTP_HOST"):
        env.pop(unset, None)
    proc, log_path = _spawn(f"{name}-{port}", [PYTHON, str(REPO_DIR / "app.py")], env, workdir)
    service = Service(name, proc, f"http://127.0.0.1:{port}", log_path, workdir=workdir,
                      info={"database_url": env["DATABASE_URL"], "threads": threads})
    try:
        wait_http(service.url + "/login", 90, proc)
    except RuntimeError:
        tail = service.log_tail()
        service.stop()
        raise RuntimeError(f"portal did not start:\n{tail}") from None
    return service


def established_connections(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local port is ``port`` (from /proc/net/tcp*)."""
    wanted = f":{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "01":
                count += 1
    return count


class ConnectionSampler:
    """Samples, on a thread, the most ESTABLISHED connections a listening port had at once."""

    def __init__(self, port: int, interval: float = 0.1) -> None:
        self.port = port
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, established_connections(self.port))
            self._stop.wait(self.interval)

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU time consumed so far by ``pid`` (and its descendants), in seconds.

    Unlike wall-clock figures this does not grow when other work shares the machine,
    so CPU per request stays comparable on a busy host.
    """
    return sum(cpu_times(pid, tree))


def cpu_times(pid: int, tree: bool = True) -> tuple[float, float]:
    """(user, system) CPU seconds consumed so far by ``pid`` (and its descendants).

    System time is the kernel's work on the process's behalf: on 127.0.0.1 a socket
    send also carries the receiving side's TCP processing.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            # Fields after the parenthesised command name; utime and stime are 14th and 15th.
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / ticks, system / ticks
