"""Load generators: wrk with a Lua script when it is on PATH, else a Python one.

Both keep `connections` HTTP/1.1 keep-alive connections busy in a closed loop for a
bounded time (and at most `max_requests` requests), make a unique event id for every
event they send, and report which ids the service acknowledged with a 2xx, so the run can
check afterwards that every acknowledged event is in the export.

The Python generator runs one asyncio loop per process, in up to one process per core:
on this 2-core machine it competes with the server for the CPU, and so does wrk. Every
result carries the CPU seconds the generator itself used, so the report can say so.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, Literal

import orjson

from bench.events import TEMPLATE_COUNT, make_id, template_parts

Generator = Literal["wrk", "python"]


@dataclass(frozen=True)
class LoadSpec:
    """What to send. `batch`: -1 no body (GET), 0 one event per POST, n: n events per POST."""

    port: int
    path: str
    token: str
    connections: int
    duration_s: float
    method: str = "GET"
    batch: int = -1
    id_prefix: str = "ev"
    max_requests: int = 0
    timeout_s: float = 60.0
    host: str = "127.0.0.1"


@dataclass
class LoadResult:
    """What came back: counts by status, latencies, and the ids acknowledged."""

    generator: Generator
    connections: int
    requests: int
    seconds: float
    statuses: dict[int, int]
    transport_errors: int
    p50_ms: float
    p99_ms: float
    client_cpu_s: float
    acked_ids: list[str] = field(default_factory=list)
    bad_acks: int = 0

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def failures(self) -> int:
        """Responses that were not 2xx, requests that got no response, odd acknowledgements."""
        return self.non_2xx + self.transport_errors + self.bad_acks

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def choose_generator(wanted: str) -> Generator:
    if wanted == "wrk":
        if wrk_path() is None:
            raise SystemExit("--generator wrk: wrk is not on PATH (Debian package `wrk`)")
        return "wrk"
    if wanted == "python":
        return "python"
    return "wrk" if wrk_path() is not None else "python"


def describe_generator(generator: Generator) -> str:
    cores = os.cpu_count() or 1
    if generator == "wrk":
        version = subprocess.run(  # noqa: S603 - wrk as found on PATH, fixed arguments
            [wrk_path() or "wrk", "--version"], capture_output=True, text=True, check=False
        ).stdout.split(" Copyright")[0]
        return f"{version.strip()} with a Lua script, min(connections, {cores}) threads"
    return f"Python asyncio keep-alive client, min(connections, {cores}) processes"


def run_load(spec: LoadSpec, generator: Generator) -> LoadResult:
    """Drive the load and wait for it; bounded by `spec.duration_s` and `max_requests`."""
    if generator == "wrk":
        return _run_wrk(spec)
    return _run_python(spec)


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


# ---------------------------------------------------------------- the Python generator


def _request_head(spec: LoadSpec, body_length: int | None) -> bytes:
    lines = [
        f"{spec.method} {spec.path} HTTP/1.1",
        f"Host: {spec.host}:{spec.port}",
        f"Authorization: Bearer {spec.token}",
        "User-Agent: audit-bench",
    ]
    if body_length is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {body_length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = b"close" in value.lower()
    if chunked:
        pieces = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            pieces.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(pieces)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body, close = await reader.read(), True
    return status, body, close


class _Worker:
    """One process's share of the connections, on one asyncio loop."""

    def __init__(self, spec: LoadSpec, streams: list[int], budget: int) -> None:
        self.spec = spec
        self.streams = streams
        self.budget = budget  # 0: no count limit
        self.issued = 0
        self.parts = template_parts()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.errors = 0
        self.bad_acks = 0
        self.acked: list[str] = []
        self.deadline = 0.0

    def _body(self, stream: int, n: int) -> tuple[bytes | None, list[str], int]:
        spec = self.spec
        if spec.batch < 0:
            return None, [], n
        count = max(1, spec.batch)
        ids = [make_id(spec.id_prefix, stream, n + k) for k in range(1, count + 1)]
        events = [
            before + event_id.encode() + after
            for event_id, (before, after) in zip(
                ids,
                (self.parts[(n + k) % TEMPLATE_COUNT] for k in range(1, count + 1)),
                strict=True,
            )
        ]
        body = events[0] if spec.batch == 0 else b'{"events":[' + b",".join(events) + b"]}"
        return body, ids, n + count

    def _acknowledge(self, body: bytes, ids: list[str]) -> None:
        if self.spec.batch == 0:
            if f'"{ids[0]}"'.encode() in body:
                self.acked.append(ids[0])
            else:
                self.bad_acks += 1
            return
        try:
            returned = [item["id"] for item in orjson.loads(body)["events"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            returned = []
        if returned == ids:
            self.acked.extend(ids)
        else:
            self.bad_acks += 1

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.spec.host, self.spec.port, limit=1 << 20)

    async def _loop(
        self, stream: int, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    ) -> None:
        spec = self.spec
        reader, writer = conn
        n = 0
        while time.perf_counter() < self.deadline and (
            self.budget == 0 or self.issued < self.budget
        ):
            self.issued += 1
            body, ids, n = self._body(stream, n)
            request = _request_head(spec, None if body is None else len(body)) + (body or b"")
            started = time.perf_counter()
            try:
                writer.write(request)
                status, answer, close = await asyncio.wait_for(
                    _read_response(reader), spec.timeout_s
                )
            except (OSError, EOFError, ValueError, IndexError, TimeoutError):
                # asyncio.IncompleteReadError is an EOFError; LimitOverrunError a ValueError.
                self.errors += 1
                writer.close()
                try:
                    reader, writer = await self._connect()
                except OSError:
                    await asyncio.sleep(0.05)
                continue
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] += 1
            if 200 <= status < 300 and ids:
                self._acknowledge(answer, ids)
            if close:
                writer.close()
                reader, writer = await self._connect()
        writer.close()

    async def run(self, ready: Queue[int], go: MpEvent) -> dict[str, Any]:
        conns = [await self._connect() for _ in self.streams]
        ready.put(len(conns))
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        cpu = time.process_time()
        started = time.perf_counter()
        self.deadline = started + self.spec.duration_s
        await asyncio.gather(
            *(self._loop(stream, conn) for stream, conn in zip(self.streams, conns, strict=True))
        )
        return {
            "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
            "statuses": dict(self.statuses),
            "latencies": self.latencies,
            "errors": self.errors,
            "bad_acks": self.bad_acks,
            "acked": self.acked,
        }


def _python_worker(
    spec: LoadSpec,
    streams: list[int],
    budget: int,
    ready: Queue[int],
    go: MpEvent,
    results: Queue[dict[str, Any]],
) -> None:
    try:
        results.put(asyncio.run(_Worker(spec, streams, budget).run(ready, go)))
    except Exception as exc:  # the parent must hear of it rather than wait forever
        ready.put(0)
        results.put({"crash": f"{type(exc).__name__}: {exc}"})


def _run_python(spec: LoadSpec) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    processes = max(1, min(spec.connections, os.cpu_count() or 1))
    streams = [list(range(p, spec.connections, processes)) for p in range(processes)]
    budgets = [0] * processes
    if spec.max_requests:
        share, extra = divmod(spec.max_requests, processes)
        budgets = [share + (1 if p < extra else 0) for p in range(processes)]
    ready: Queue[int] = ctx.Queue()
    results: Queue[dict[str, Any]] = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(
            target=_python_worker,
            args=(spec, streams[p], budgets[p], ready, go, results),
            daemon=True,
        )
        for p in range(processes)
        if budgets[p] or not spec.max_requests
    ]
    for proc in procs:
        proc.start()
    limit = spec.duration_s + spec.timeout_s + 60
    for _ in procs:
        ready.get(timeout=60)
    go.set()
    parts = [results.get(timeout=limit) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    crashes = [p["crash"] for p in parts if "crash" in p]
    if crashes:
        raise RuntimeError(f"the Python load generator failed: {crashes[0]}")
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses: Counter[int] = Counter()
    for p in parts:
        statuses.update(p["statuses"])
    return LoadResult(
        generator="python",
        connections=spec.connections,
        requests=len(latencies),
        seconds=max(p["seconds"] for p in parts),
        statuses=dict(statuses),
        transport_errors=sum(p["errors"] for p in parts),
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        client_cpu_s=sum(p["cpu"] for p in parts),
        acked_ids=[i for p in parts for i in p["acked"]],
        bad_acks=sum(p["bad_acks"] for p in parts),
    )


# ---------------------------------------------------------------- wrk

_LUA = r"""
local PREFIX = "%(prefix)s"
local METHOD = "%(method)s"
local PATH = "%(path)s"
local BATCH = %(batch)d
local MAX_PER_THREAD = %(max_per_thread)d
local OUT = "%(out)s"
local ACKED = "%(acked)s"
local HEADERS = {["Authorization"] = "Bearer %(token)s", ["User-Agent"] = "audit-bench"}
if BATCH >= 0 then HEADERS["Content-Type"] = "application/json" end
local BEFORE = {%(before)s}
local AFTER = {%(after)s}
local K = %(templates)d

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads - 1)
end

function init(args)
  n = 0
  responses = 0
  statuses = {}
  acked = {}
  nacked = 0
  bad = 0
end

local function event(i)
  local t = i %% K + 1
  return BEFORE[t] .. PREFIX .. "t" .. tid .. "n" .. i .. AFTER[t]
end

function request()
  if BATCH < 0 then
    return wrk.format(METHOD, PATH, HEADERS)
  end
  if BATCH == 0 then
    n = n + 1
    return wrk.format(METHOD, PATH, HEADERS, event(n))
  end
  local parts = {}
  for k = 1, BATCH do
    n = n + 1
    parts[k] = event(n)
  end
  return wrk.format(METHOD, PATH, HEADERS, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  responses = responses + 1
  local s = tostring(status)
  statuses[s] = (statuses[s] or 0) + 1
  if BATCH >= 0 and status >= 200 and status < 300 then
    local found = 0
    for id in string.gmatch(body, '"(' .. PREFIX .. 't%%d+n%%d+)"') do
      nacked = nacked + 1
      acked[nacked] = id
      found = found + 1
    end
    if found ~= math.max(BATCH, 1) then bad = bad + 1 end
  end
  if MAX_PER_THREAD > 0 and responses >= MAX_PER_THREAD then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = {}
  local bad_total = 0
  local f = io.open(ACKED, "w")
  for _, t in ipairs(threads) do
    for s, c in pairs(t:get("statuses")) do total[s] = (total[s] or 0) + c end
    bad_total = bad_total + t:get("bad")
    for _, id in ipairs(t:get("acked")) do f:write(id, "\n") end
  end
  f:close()
  local parts = {}
  for s, c in pairs(total) do parts[#parts + 1] = '"' .. s .. '":' .. c end
  local e = summary.errors
  local out = io.open(OUT, "w")
  out:write(string.format(
    '{"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,' ..
    '"p50_us":%%f,"p99_us":%%f,"bad":%%d,"statuses":{%%s}}',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), bad_total, table.concat(parts, ",")))
  out:close()
end
"""

_SAFE = re.compile(r"^[A-Za-z0-9_.:/?=&%*-]*$")


def _lua_long_string(data: bytes) -> str:
    text = data.decode("ascii")
    if "]==]" in text:
        raise ValueError("a template contains the Lua long-string terminator")
    return f"[==[{text}]==]"


def _run_wrk(spec: LoadSpec) -> LoadResult:
    for value in (spec.id_prefix, spec.path, spec.token, spec.method):
        if not _SAFE.match(value):
            raise ValueError(f"unsafe value for the Lua script: {value!r}")
    threads = max(1, min(spec.connections, os.cpu_count() or 1))
    parts = template_parts()
    with tempfile.TemporaryDirectory(prefix="audit-bench-wrk-") as tmp:
        out, acked = Path(tmp) / "result.json", Path(tmp) / "acked.txt"
        script = Path(tmp) / "load.lua"
        script.write_text(
            _LUA
            % {
                "prefix": spec.id_prefix,
                "method": spec.method,
                "path": spec.path,
                "batch": spec.batch,
                "max_per_thread": math.ceil(spec.max_requests / threads),
                "out": out,
                "acked": acked,
                "token": spec.token,
                "before": ",".join(_lua_long_string(b) for b, _ in parts),
                "after": ",".join(_lua_long_string(a) for _, a in parts),
                "templates": TEMPLATE_COUNT,
            }
        )
        seconds = max(1, round(spec.duration_s))
        cmd = [
            wrk_path() or "wrk",
            "--threads",
            str(threads),
            "--connections",
            str(spec.connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            f"{max(1, round(spec.timeout_s))}s",
            "--script",
            str(script),
            f"http://{spec.host}:{spec.port}{spec.path}",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(  # noqa: S603 - wrk with arguments built here
            cmd, capture_output=True, text=True, timeout=seconds + spec.timeout_s + 60, check=False
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
        data = json.loads(out.read_text())
        ids = acked.read_text().split()
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return LoadResult(
        generator="wrk",
        connections=spec.connections,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        statuses={int(s): c for s, c in data["statuses"].items()},
        transport_errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        client_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        acked_ids=ids,
        bad_acks=data["bad"],
    )
