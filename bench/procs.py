"""Processes under test: a real ``grid worker`` or the baseline, with CPU and peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Usage:
    cpu_s: float
    peak_rss_mb: float


class Proc:
    """A subprocess whose CPU time (user+system) and peak RSS (VmHWM) can be read."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen([sys.executable, *args], env={**os.environ, **env},
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        self.ps = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return self.ps.memory_info().rss / 2**20  # pragma: no cover - non-Linux

    def usage_since(self, cpu0: float) -> Usage:
        return Usage(round(self.cpu_s() - cpu0, 2), round(self.peak_rss_mb(), 1))

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._out.close()


def worker(broker_url: str, app_id: str, tmp: Path, geodata: str | None, partitions: int,
           web_port: int, name: str | None = None, **extra: str) -> Proc:
    """A ``grid worker`` of ``app_id``; ``name`` (default: the app id) names its data
    directory and log, so several workers of one app can run side by side."""
    name = name or app_id
    env = {"GRID_BROKER": broker_url, "GRID_APP_ID": app_id, "GRID_WEB_PORT": str(web_port),
           "GRID_DATA_DIR": str(tmp / f"data-{name}"), "GRID_PARTITIONS": str(partitions),
           "GRID_CLOCK": "system", **extra}
    if geodata:
        env["GRID_GEODATA"] = geodata
    return Proc(["-m", "grid.cli", "worker"], env, tmp / f"worker-{name}.log")


class Group:
    """Several processes measured as one: CPU summed, peak RSS the largest, alive while
    all are."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.log = procs[0].log

    def alive(self) -> bool:
        return all(p.alive() for p in self.procs)

    def cpu_s(self) -> float:
        return sum(p.cpu_s() for p in self.procs)

    def peak_rss_mb(self) -> float:
        return max(p.peak_rss_mb() for p in self.procs)

    def usage_since(self, cpu0: float) -> Usage:
        return Usage(round(self.cpu_s() - cpu0, 2), round(self.peak_rss_mb(), 1))

    def tail(self, n: int = 40) -> str:
        return "\n\n".join(f"{p.log}:\n{p.tail(n)}" for p in self.procs)

    def stop(self, timeout: float = 15.0) -> None:
        for p in self.procs:
            p.stop(timeout)


def baseline(bootstrap: str, profile_path: Path, group: str, tmp: Path,
             mode: str = "plain") -> Proc:
    """``bench.baseline`` in ``mode`` (plain or transactional)."""
    return Proc(["-m", "bench.baseline", bootstrap, str(profile_path), group, mode], {},
                tmp / f"baseline-{mode}.log")


def passthrough(bootstrap: str, group: str, tmp: Path) -> Proc:
    return Proc(["-m", "bench.passthrough", bootstrap, group], {}, tmp / "passthrough.log")
