"""Interoperability paths of an in-process service (embedded SQLite, scheduler off, the app's lifespan running):

  mllp     PCD-01 ORU^R01 messages (ECG HR, SpO2, RR, NIBP sys/dia/mean: 6 OBX each, distinct times) sent one after
           another over one MLLP connection, each waiting for its ACK: messages/s and round-trip ms (median, p99)
  http     the same messages through ``POST /v1/hl7`` (Starlette's TestClient, no network): messages/s
  fhir     ``GET /fhir/Observation`` of one patient with 3 h of 1-a-second heart rate, scored at each of its 36
           window ends (36 heart-rate and 36 NEWS2 Observations), ``_count`` 50 and 1000, and
           ``GET /fhir/RiskAssessment?_count=50``: ms per request (median)

    python bench/bench_interop.py                # 500 messages, 50 reads each
    python bench/bench_interop.py --messages 2000 --reads 200
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.interop.mllp import END, frame
from app.main import create_app
from app.settings import Settings

KEY = "wt_bench-interop-every-role-0123456789"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def message(i: int, at: datetime) -> bytes:
    ts = at.strftime("%Y%m%d%H%M%S+0000")
    obx = [("147842^MDC_ECG_HEART_RATE^MDC", 80 + i % 7, "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
           ("150456^MDC_PULS_OXIM_SAT_O2^MDC", 96, "262688^MDC_DIM_PERCENT^MDC"),
           ("151562^MDC_RESP_RATE^MDC", 16, "264928^MDC_DIM_RESP_PER_MIN^MDC"),
           ("150021^MDC_PRESS_BLD_NONINV_SYS^MDC", 120, "266016^MDC_DIM_MMHG^MDC"),
           ("150022^MDC_PRESS_BLD_NONINV_DIA^MDC", 80, "266016^MDC_DIM_MMHG^MDC"),
           ("150023^MDC_PRESS_BLD_NONINV_MEAN^MDC", 93, "266016^MDC_DIM_MMHG^MDC")]
    segments = [f"MSH|^~\\&|GW^ACDE48234567ABCD^EUI-64||||{ts}||ORU^R01^ORU_R01|M{i}|P|2.6",
                f"PID|||bed-{i % 24:02d}^^^Ward^PI", f"OBR|1|||182777000^monitoring of patient^SNOMED-CT|||{ts}"]
    segments += [f"OBX|{n}|NM|{code}|1.1.1.{n}|{value}|{unit}|||||R|||{ts}"
                 for n, (code, value, unit) in enumerate(obx, 1)]
    return "\r".join(segments).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    start = T0 - timedelta(hours=3)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), demo_key=KEY, mllp_port=0, rate_limit_burst=10_000_000,
                                  rate_limit_per_s=1e9), clock=FixedClock(T0 + timedelta(minutes=1)),
                         cycle_interval_s=None)
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
            port = app.state.mllp.port
            trips = []
            with socket.create_connection(("127.0.0.1", port)) as sock:
                began = time.perf_counter()
                for i in range(args.messages):
                    t = time.perf_counter()
                    sock.sendall(frame(message(i, start + timedelta(seconds=i))))
                    data = b""
                    while not data.endswith(END):
                        data += sock.recv(65536)
                    assert b"MSA|AA|" in data, data
                    trips.append((time.perf_counter() - t) * 1000)
                mllp_s = time.perf_counter() - began
            began = time.perf_counter()
            for i in range(args.messages):
                response = client.post("/v1/hl7", content=message(i, start + timedelta(seconds=args.messages + i)),
                                       headers={"Content-Type": "application/hl7-v2"})
                assert response.status_code == 200, response.text
            http_s = time.perf_counter() - began

            hr = [{"patient_id": "fhir-1", "vital": "hr", "value": 80 + s % 5,
                   "ts": (start + timedelta(seconds=s)).isoformat()} for s in range(3 * 3600)]
            for i in range(0, len(hr), 10_000):
                assert client.post("/v1/readings", json={"readings": hr[i:i + 10_000]}).status_code == 200
            for k in range(1, 37):
                client.post("/v1/cycle", params={"window_end": (start + timedelta(minutes=5 * k)).isoformat()})
            reads = {}
            for name, path, params in (
                    ("Observation _count=50", "/fhir/Observation", {"subject": "Patient/fhir-1", "_count": 50}),
                    ("Observation _count=1000", "/fhir/Observation", {"subject": "Patient/fhir-1", "_count": 1000}),
                    ("RiskAssessment _count=50", "/fhir/RiskAssessment", {"subject": "Patient/fhir-1",
                                                                          "_count": 50})):
                times = []
                for _ in range(args.reads):
                    t = time.perf_counter()
                    response = client.get(path, params=params)
                    times.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200
                reads[name] = (statistics.median(times), response.json()["total"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"mllp: {args.messages} messages in {mllp_s:.2f} s = {args.messages / mllp_s:.0f} msg/s "
          f"({args.messages * 5 / mllp_s:.0f} readings/s); round trip median {statistics.median(trips):.2f} ms, "
          f"p99 {percentile(trips, 0.99):.2f} ms")
    print(f"http POST /v1/hl7: {args.messages / http_s:.0f} msg/s")
    for name, (ms, total) in reads.items():
        print(f"fhir {name}: median {ms:.1f} ms (total {total})")


if __name__ == "__main__":
    main()
