"""A fake ``cupy`` module for tests/test_cuda.py: just enough of CuPy for the CUDA backend
(blender_gsseg/core/raster/cuda_backend.py), with numpy arrays as "device" arrays (guard bytes around each, garbage
in ``empty``) and, as NVRTC, the kernels compiled for the CPU by the host emulator beside this file
(host_emulator.cpp: every CUDA thread a fiber, strict about barriers, warp collectives and argument types).

``install_fake_cupy()`` puts it in ``sys.modules["cupy"]``; the compiled kernels are cached by source digest in
the temporary folder.
"""

import contextlib
import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
import types
import weakref
from pathlib import Path

import numpy as np

EMULATOR = Path(__file__).resolve().parent / "host_emulator.cpp"


class _EmuFunction:
    _SCALARS = {"i32": np.int32, "u32": np.uint32, "i64": np.int64, "u64": np.uint64, "f32": np.float32,
                "f64": np.float64, "u8": np.uint8}
    _CTYPES = {"i32": ctypes.c_int32, "u32": ctypes.c_uint32, "i64": ctypes.c_int64, "u64": ctypes.c_uint64,
               "f32": ctypes.c_float, "f64": ctypes.c_double, "u8": ctypes.c_uint8}
    _POINTEES = {"f32": (np.float32, 1), "f64": (np.float64, 1), "i32": (np.int32, 1), "u32": (np.uint32, 1),
                 "i64": (np.int64, 1), "u64": (np.uint64, 1), "u8": (np.uint8, 1), "f32x2": (np.float32, 2),
                 "f32x4": (np.float32, 4), "i32x2": (np.int32, 2), "i32x4": (np.int32, 4)}

    def __init__(self, fake, lib, name):
        self.fake, self.lib, self.name = fake, lib, name
        out = ctypes.create_string_buffer(1024)
        if lib.emu_signature(name.encode(), out, 1024) != 0:
            raise RuntimeError(f"no kernel named {name} in the emulator")
        self.signature = out.value.decode().split(",")

    def __call__(self, grid, block, args, shared_mem=0):
        assert shared_mem == 0
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.signature)} parameters")
        holders = []
        for index, (code, arg) in enumerate(zip(self.signature, args, strict=True)):
            where = f"{self.name} argument {index} ({code})"
            if code.startswith("*"):
                if arg is None:
                    holders.append(ctypes.c_void_p(0))
                    continue
                if not isinstance(arg, np.ndarray):
                    raise TypeError(f"{where}: expected a device array, got {type(arg)}")
                dtype, width = self._POINTEES[code[1:]]
                if arg.dtype != dtype or not arg.flags.c_contiguous or (width > 1 and arg.shape[-1] != width):
                    raise TypeError(f"{where}: array of {arg.dtype} {arg.shape} does not fit")
                holders.append(ctypes.c_void_p(arg.ctypes.data if arg.size else 0))
            else:
                if type(arg) is not self._SCALARS[code]:
                    raise TypeError(f"{where}: expected {self._SCALARS[code].__name__}, got {type(arg).__name__} "
                                    "(CuPy passes a Python int as int64 and a float as float64)")
                holders.append(self._CTYPES[code](arg.item()))
        params = (ctypes.c_void_p * max(1, len(holders)))(
            *[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
        err = ctypes.create_string_buffer(2048)
        rc = self.lib.emu_launch(self.name.encode(), *[ctypes.c_uint(v) for v in grid + block], params, err, 2048)
        if rc != 0:
            raise RuntimeError(err.value.decode())
        self.fake.launches[self.name] = self.fake.launches.get(self.name, 0) + 1
        self.fake.check_guards(self.name)


class FakeCupy(types.ModuleType):
    """Just enough of CuPy for cuda_backend.py, with numpy arrays as "device" arrays and the emulator as NVRTC."""

    GUARD = 64
    GUARD_BYTE = 0xA7
    FILL_BYTE = 0x5C  # what cupy.empty returns: garbage, not zeros

    __version__ = "host-emulator"

    def __init__(self, build_dir, numpy_fallback=False):
        super().__init__("cupy")
        self.build_dir = Path(build_dir)
        self.launches = {}
        self._guarded = []
        self._numpy_fallback = numpy_fallback
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(
                getDeviceCount=lambda: 1, memGetInfo=lambda: (8 << 30, 16 << 30), deviceSynchronize=lambda: None,
                getDeviceProperties=lambda index: {"name": b"host emulator"}, runtimeGetVersion=lambda: 0),
            Device=lambda index=0: contextlib.nullcontext())
        fake = self

        class MemoryPool:
            def free_all_blocks(self):
                pass

            def total_bytes(self):
                return sum(n for ref, n in fake._guarded if ref() is not None)

        self._pool = MemoryPool()
        self.get_default_memory_pool = lambda: self._pool

        class RawModule:
            def __init__(self, code, options=()):
                self.lib = fake._compile(code, options)

            def get_function(self, name):
                return _EmuFunction(fake, self.lib, name)

        self.RawModule = RawModule

    def __getattr__(self, name):
        # bench/gpu.py's array code (meshgrid, linalg, ...) runs on numpy; the backend must not need this
        if self.__dict__.get("_numpy_fallback"):
            return getattr(np, name)
        raise AttributeError(f"the fake cupy has no {name}")

    # arrays
    def _alloc(self, shape, dtype, fill):
        dtype = np.dtype(dtype)
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        base = np.empty(nbytes + 2 * self.GUARD, dtype=np.uint8)
        base[:self.GUARD] = self.GUARD_BYTE
        base[self.GUARD + nbytes:] = self.GUARD_BYTE
        data = base[self.GUARD:self.GUARD + nbytes]
        data[:] = fill
        self._guarded.append((weakref.ref(base), nbytes))
        return data.view(dtype).reshape(shape)

    def check_guards(self, name):
        alive = []
        for ref, nbytes in self._guarded:
            base = ref()
            if base is None:
                continue
            alive.append((ref, nbytes))
            if (base[:self.GUARD] != self.GUARD_BYTE).any() or (base[self.GUARD + nbytes:] != self.GUARD_BYTE).any():
                raise RuntimeError(f"{name} wrote outside a buffer of {nbytes} bytes")
        self._guarded = alive

    def empty(self, shape, dtype=np.float64):
        return self._alloc(shape, dtype, self.FILL_BYTE)

    def zeros(self, shape, dtype=np.float64):
        return self._alloc(shape, dtype, 0)

    def asarray(self, a, dtype=None):
        a = np.asarray(a, dtype=dtype)
        out = self._alloc(a.shape, a.dtype, 0)
        out[...] = a
        return out

    @staticmethod
    def asnumpy(a):
        return np.array(a, copy=True)

    @staticmethod
    def sort(a):
        return np.sort(a)

    @staticmethod
    def cumsum(a, axis=None, dtype=None):
        return np.cumsum(a, axis=axis, dtype=dtype)

    def _compile(self, code, options):
        defines = [o for o in options if o.startswith("-D")]
        unknown = [o for o in options if not o.startswith("-D") and o != "--fmad=false"]
        assert not unknown, unknown
        digest = hashlib.sha256((code + "\0".join(defines) + EMULATOR.read_text()).encode()).hexdigest()[:16]
        self.build_dir.mkdir(parents=True, exist_ok=True)
        lib_path = self.build_dir / f"gsseg_emu_{digest}.so"
        if not lib_path.exists():
            source = self.build_dir / f"gsseg_kernels_{digest}.cu"
            source.write_text(code)
            tmp = lib_path.with_suffix(f".{os.getpid()}.tmp")
            cmd = ["g++", "-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
                   "-Wall", "-Werror", "-Wno-unused-function", f'-DGSSEG_EMU_SOURCE="{source}"', *defines,
                   "-o", str(tmp), str(EMULATOR)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError("emulator build failed:\n" + result.stderr)
            os.replace(tmp, lib_path)
        lib = ctypes.CDLL(str(lib_path))
        lib.emu_launch.restype = ctypes.c_int
        lib.emu_launch.argtypes = [ctypes.c_char_p] + [ctypes.c_uint] * 6 + [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int]
        lib.emu_signature.restype = ctypes.c_int
        lib.emu_signature.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        return lib


def install_fake_cupy(numpy_fallback=False):
    fake = FakeCupy(Path(tempfile.gettempdir()) / f"gsseg_emulator_{os.getuid()}", numpy_fallback)
    sys.modules["cupy"] = fake
    return fake
