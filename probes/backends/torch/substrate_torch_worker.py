#!/usr/bin/python3
"""substrated's reference external worker: GEMM and attention on any PyTorch device.

Started by substrated (config key `external_workers`, docs/external-workers.md) with its end of
a socketpair on fd 3; speaks the frames of docs/worker-protocol.md (4-byte big-endian length,
one JSON object with "v": 1 and "type") as described for external workers there:

  discover  -> devices    the torch devices this host has (cpu, cuda:N, xpu:N, npu:N, hpu:N, mps)
  generate  -> words      raw generator words: the daemon checks them against kernels/generator.hpp
  gemm      -> output     C = A.B with torch.matmul on the device
  attention -> output     softmax(Q K^T * scale) V: scaled_dot_product_attention on torch >= 2.0,
                          an explicit softmax on older torch (the kernel name says which)
  EOF on fd 3 -> exit 0

Inputs are generated on the host with the shared generator (a port of kernels/generator.hpp),
copied to the device in their storage dtype (exact there: the values are chosen to be), and
computed in fp32 (TF32 off unless --allow-tf32); the output goes back as f32 words after the
drill's XOR, if the request has one. The daemon computes the golden and checks: this file only
runs the device.

Usage: substrate_torch_worker.py [--allow-tf32]
"""

import base64
import hashlib
import json
import os
import platform
import signal
import struct
import sys
import time

import numpy as np

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 16 << 20  # worker::k_max_frame_bytes
CHANNEL_FD = 3  # worker::k_worker_fd

# --- the shared generator: a port of kernels/generator.hpp (keep the two in step; the parity
# test, tests/daemon/external_worker_test.cpp "generator parity", compares them word for word) ---
PHILOX_M0, PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)
STREAM_GEMM_A, STREAM_GEMM_B = 1, 2
STREAM_ATTENTION_Q, STREAM_ATTENTION_K, STREAM_ATTENTION_V = 3, 4, 5
MANTISSA_BITS = {"f32": 23, "f16": 10, "bf16": 7}


def random_bits(seed, stream, first, count):
    """gen::random_bits for indices first..first+count-1: word (index mod 4) of Philox4x32-10
    keyed by the seed's two 32-bit halves at counter (lo32(index / 4), hi32(index / 4), stream, 0)
    (kernels/generator.hpp, header comment). uint32 array."""
    index = np.arange(first, first + count, dtype=np.uint64)
    quad = index >> np.uint64(2)
    c0, c1 = quad & MASK32, quad >> np.uint64(32)
    c2 = np.full(count, stream, dtype=np.uint64)
    c3 = np.zeros(count, dtype=np.uint64)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for round_ in range(10):
        if round_ > 0:
            k0, k1 = (k0 + PHILOX_W0) & 0xFFFFFFFF, (k1 + PHILOX_W1) & 0xFFFFFFFF
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2  # 32 x 32 bits: exact in uint64
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & MASK32)
    words = np.stack([c0, c1, c2, c3])
    return words[(index & np.uint64(3)).astype(np.intp), np.arange(count)].astype(np.uint32)


def exact_values(bits, radius):
    """gen::exact_value: an integer in [-radius, radius], as float32."""
    return ((bits % np.uint32(2 * radius + 1)).astype(np.int64) - radius).astype(np.float32)


def random_values(bits, mantissa_bits):
    """gen::random_value: sign bit 31, magnitude in [0.25, 4), mantissa_bits kept, as float32."""
    exponent = (np.uint32(125) + ((bits >> np.uint32(23)) & np.uint32(3))) << np.uint32(23)
    keep = np.uint32(((1 << mantissa_bits) - 1) << (23 - mantissa_bits))
    return ((bits & np.uint32(0x80000000)) | exponent | (bits & keep)).view(np.float32)


def generate(seed, stream, count, dtype, mode, radius):
    """golden::generate: `count` input values of one stream as float32 (exact in `dtype`)."""
    bits = random_bits(seed, stream, 0, count)
    return exact_values(bits, radius) if mode == "exact" else random_values(bits, MANTISSA_BITS[dtype])


# --- frames ---
def read_exactly(channel, size):
    data = b""
    while len(data) < size:
        chunk = os.read(channel, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(channel):
    head = read_exactly(channel, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">I", head)
    if length > MAX_FRAME_BYTES:
        raise ValueError("frame of %d bytes exceeds the limit" % length)
    payload = read_exactly(channel, length)
    if payload is None:
        return None
    return json.loads(payload)


def write_frame(channel, message):
    message = dict(message, v=PROTOCOL_VERSION)
    payload = json.dumps(message, separators=(",", ":")).encode()
    data = struct.pack(">I", len(payload)) + payload
    while data:
        data = data[os.write(channel, data):]


class Unsupported(Exception):
    """The device cannot run this request (a dtype it lacks): the run is skipped, not failed."""


# --- torch ---
class TorchWorker:
    def __init__(self, allow_tf32):
        import torch  # noqa: PLC0415 (imported here: the generator above needs no torch)
        self.torch = torch
        self.allow_tf32 = allow_tf32
        # Determinism, so fingerprints are stable run to run: deterministic kernels only, no
        # autotuning, and (for cuBLAS) a fixed workspace, set before CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        # The arithmetic asked for, declared in every output: TF32 only when allowed.
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
        if hasattr(torch, "set_float32_matmul_precision"):
            torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
        self.allow_tf32_on_npu = allow_tf32  # torch_npu's HF32 (TF32's counterpart): set once it is imported
        self.sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
        script = open(os.path.abspath(__file__), "rb").read()
        self.build = hashlib.sha256(script + torch.__version__.encode()).hexdigest()[:16]

    def load_vendor_modules(self, wanted):
        """Out-of-tree device types register themselves when their module is imported."""
        for device_type, module in (("npu", "torch_npu"), ("hpu", "habana_frameworks.torch.core"),
                                    ("xpu", "intel_extension_for_pytorch")):
            if not wanted or device_type in wanted:
                try:
                    __import__(module)
                except ImportError:
                    pass
        npu = getattr(self.torch, "npu", None)
        if npu is not None and hasattr(getattr(npu, "matmul", None), "allow_hf32"):
            npu.matmul.allow_hf32 = self.allow_tf32_on_npu

    def devices(self, wanted):
        torch = self.torch
        wanted_types = {w.split(":")[0] for w in wanted}
        self.load_vendor_modules(wanted_types)
        found = [self.describe("cpu", "cpu")]
        for device_type in ("cuda", "xpu", "npu", "hpu"):
            module = getattr(torch, device_type, None)
            try:
                count = module.device_count() if module is not None and module.is_available() else 0
            except Exception:  # a vendor module that cannot reach its driver has no devices
                count = 0
            for i in range(count):
                found.append(self.describe("%s:%d" % (device_type, i), device_type))
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append(self.describe("mps", "mps"))
        return found

    def describe(self, device, device_type):
        torch = self.torch
        info = {"device": device, "driver": "torch " + torch.__version__, "api_version": device,
                "kernel_build": self.build, "device_type": "cpu" if device_type == "cpu" else "other",
                "vendor": "unknown", "name": device}
        if device_type == "cpu":
            info["name"] = "%s CPU (torch cpu)" % (platform.processor() or platform.machine())
            info["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            info["compute_units"] = torch.get_num_threads()
            return info
        module = getattr(torch, device_type)
        try:
            props = module.get_device_properties(int(device.split(":")[1]))
            info["name"] = "%s (torch %s)" % (props.name, device)
            info["memory_bytes"] = int(getattr(props, "total_memory", 0))
            info["compute_units"] = int(getattr(props, "multi_processor_count", 0))
            if getattr(props, "uuid", None) is not None:
                info["uuid"] = str(props.uuid)
        except Exception:
            pass
        if device_type == "cuda":
            info["vendor"] = "amd" if getattr(torch.version, "hip", None) else "nvidia"
            info["device_type"] = "discrete"
        return info

    def to_device(self, values, shape, dtype, device):
        """Host float32 values -> the device in the storage dtype -> fp32 for the compute."""
        torch = self.torch
        storage = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
        tensor = torch.from_numpy(values.reshape(shape))
        try:
            return tensor.to(device=device, dtype=storage).to(torch.float32)
        except (RuntimeError, TypeError) as e:
            raise Unsupported("%s cannot hold %s inputs: %s" % (device, dtype, e))

    def finish(self, out, request, kernel, started):
        """Output words, with the drill's XOR applied to the elements it names."""
        torch = self.torch
        if out.device.type != "cpu":
            getattr(torch, out.device.type).synchronize()
        seconds = time.perf_counter() - started
        words = out.detach().to("cpu", torch.float32).contiguous().numpy().reshape(-1).view(np.uint32).copy()
        inject = request.get("inject")
        if inject:
            # injection_hits (kernels/spec.hpp): element + i*stride for i < count, within the output.
            hits = np.arange(inject["element"], words.size, max(1, inject["stride"]), dtype=np.uint64)
            hits = hits[: min(inject["count"], hits.size)]
            words[hits] ^= np.uint32(inject["xor_mask"])
        return {"type": "output", "kernel": kernel, "device_seconds": seconds,
                "words": base64.b64encode(words.astype("<u4").tobytes()).decode(),
                "arithmetic": {"inputs": request["dtype"], "compute": "fp32", "tf32": self.allow_tf32,
                               "accumulation": "fp32"}}

    def gemm(self, r):
        m, n, k, dtype, mode = r["m"], r["n"], r["k"], r["dtype"], r["mode"]
        a = generate(r["seed"], STREAM_GEMM_A, m * k, dtype, mode, r["exact_radius"])
        b = generate(r["seed"], STREAM_GEMM_B, k * n, dtype, mode, r["exact_radius"])
        a, b = self.to_device(a, (m, k), dtype, r["device"]), self.to_device(b, (k, n), dtype, r["device"])
        started = time.perf_counter()
        return self.finish(self.torch.matmul(a, b), r, "torch.matmul", started)

    def attention(self, r):
        torch = self.torch
        length, heads, dim, dtype = r["seq_len"], r["heads"], r["head_dim"], r["dtype"]
        count = heads * length * dim
        q, k, v = (self.to_device(generate(r["seed"], stream, count, dtype, "random", 0), (heads, length, dim), dtype,
                                  r["device"])
                   for stream in (STREAM_ATTENTION_Q, STREAM_ATTENTION_K, STREAM_ATTENTION_V))
        scale = float(np.float32(1.0 / np.sqrt(float(dim))))  # golden::attention_scale
        started = time.perf_counter()
        if self.sdpa is not None:
            try:
                out = self.sdpa(q, k, v, is_causal=r["causal"], scale=scale)
            except TypeError:  # torch 2.0: no scale argument; its default is 1/sqrt(head_dim)
                out = self.sdpa(q, k, v, is_causal=r["causal"])
            return self.finish(out, r, "torch.scaled_dot_product_attention", started)
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        if r["causal"]:
            mask = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.finish(out, r, "torch.explicit_softmax_attention", started)


def serve(channel, allow_tf32):
    worker = None
    while True:
        request = read_frame(channel)
        if request is None:
            return 0
        if request.get("v") != PROTOCOL_VERSION:
            write_frame(channel, {"type": "error", "message": "this worker speaks protocol version %d, got %r"
                                  % (PROTOCOL_VERSION, request.get("v"))})
            return 2
        kind = request.get("type")
        try:
            if kind == "generate":
                words = random_bits(request["seed"], request["stream"], request["first"], request["count"])
                write_frame(channel, {"type": "words", "words": words.tolist()})
                continue
            if worker is None:
                worker = TorchWorker(allow_tf32)
            if kind == "discover":
                # Notes count as discovery problems (substrate_device_discovery_errors): none here;
                # which attention path runs is in each result's kernel name.
                write_frame(channel, {"type": "devices", "devices": worker.devices(request.get("devices", [])),
                                      "notes": []})
            elif kind in ("gemm", "attention"):
                write_frame(channel, getattr(worker, kind)(request))
            else:
                write_frame(channel, {"type": "error", "message": "unknown request type %r" % kind})
        except Unsupported as e:
            write_frame(channel, {"type": "error", "kind": "unsupported", "message": str(e)})
        except Exception as e:  # one bad request is that request's error, not the worker's end
            write_frame(channel, {"type": "error", "message": "%s: %s" % (type(e).__name__, e)})


def main():
    try:  # never outlive the process that started us (Linux: PR_SET_PDEATHSIG = 1)
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    allow_tf32 = "--allow-tf32" in sys.argv[1:]
    return serve(CHANNEL_FD, allow_tf32)


if __name__ == "__main__":
    sys.exit(main())
