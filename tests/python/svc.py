"""Support for the Python tests: generate Python messages from proto/, start a real service
binary on a free loopback port and wait until it reports SERVING, stop it and check its exit
code. Not a test itself (the tests are the test_*.py files)."""
import importlib.util
import os
import socket
import subprocess
import sys
import time

import grpc


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def generate(proto_dir, out_dir, files):
    """protoc --python_out for `files` (relative to proto_dir); out_dir goes on sys.path."""
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out_dir] + files, check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)


def load(out_dir, rel_path, name):
    """Loads a generated module by path: modules under grpc/ would clash with the grpcio
    package, which owns that name."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(out_dir, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unary(channel, path, request, response_class, timeout=5, metadata=None):
    call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_class.FromString)
    return call(request, timeout=timeout, metadata=metadata)


class Service:
    """A service binary from the build tree, run as a child process."""

    def __init__(self, build_dir, name, env=None, log_path=None):
        """log_path: a file that receives the service's stdout (its JSON log lines)."""
        self.binary = os.path.join(build_dir, name, name)
        self.log_path = log_path
        self.name = name
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.env = {**os.environ, "LISTEN_ADDR": self.addr, "LOG_LEVEL": "warn",
                    "METRICS_ADDR": f"127.0.0.1:{self.metrics_port}", **(env or {})}
        self.proc = None

    def start(self, health_pb2, timeout_s=60):
        if self.log_path:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([self.binary], env=self.env, stdout=log)
        else:
            self.proc = subprocess.Popen([self.binary], env=self.env)
        deadline = time.time() + timeout_s
        # The port first, so that the channel does not start in reconnect back-off.
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} never listened")
                time.sleep(0.05)
        with grpc.insecure_channel(self.addr) as channel:
            while True:
                try:
                    resp = unary(channel, "/grpc.health.v1.Health/Check",
                                 health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.time() > deadline:
                    raise SystemExit(f"{self.name} never reported SERVING")
                time.sleep(0.1)

    def stop(self, timeout_s=30):
        """SIGTERM; asserts a graceful exit (0), which is also how sanitizer findings in the
        service fail the test."""
        if self.proc is None:
            return
        self.proc.terminate()
        rc = self.proc.wait(timeout=timeout_s)
        self.proc = None
        assert rc == 0, f"{self.name} exited {rc} after SIGTERM"
