"""ovms-car and ovms-app over the TLS port, trusting a self-signed certificate."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from tests.conftest import StartRelay
from tools import admin
from tools.car import CarConfig, SimCar
from tools.v2client import client_ssl_context


def make_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    assert admin.run(["selfsigned", "--cert", str(cert), "--key", str(key),
                      "--host", "127.0.0.1"]) == 0
    return cert, key


async def test_car_and_app_over_tls(
    start_relay: StartRelay, tmp_path: Path, nursery: trio.Nursery
) -> None:
    cert, key = make_cert(tmp_path)
    relay = await start_relay(tls_cert=str(cert), tls_key=str(key), v2_tls_port=0,
                              https_port=0)
    port = relay.handle.v2_tls_port
    assert port is not None
    car = SimCar(CarConfig(host="127.0.0.1", port=port, vehicleid="DEMO", carpass="DEMO",
                           idle_interval=30.0, connected_interval=30.0,
                           ssl_context=client_ssl_context(True, cafile=str(cert))))
    await nursery.start(car.run)
    result = await trio.run_process(
        [sys.executable, "-m", "tools.app_client", "--port", str(port), "--cafile", str(cert),
         "--vehicle", "DEMO", "--carpass", "DEMO", "--count", "3"],
        capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "Z  car connected"
    assert lines[1].startswith("F  firmware: ")
    # Without trusting the certificate, verification fails: exit 1 with one line.
    refused = await trio.run_process(
        [sys.executable, "-m", "tools.app_client", "--port", str(port), "--tls",
         "--vehicle", "DEMO", "--carpass", "DEMO", "--count", "1"],
        capture_stdout=True, capture_stderr=True, check=False)
    assert refused.returncode == 1
    assert len(refused.stderr.decode().strip().splitlines()) == 1
