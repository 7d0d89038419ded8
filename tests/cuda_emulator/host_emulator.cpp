// A CPU emulator for the gsseg kernels, for tests on machines without a GPU (tests/test_cuda.py).
//
// It compiles cuda/gsseg_kernels.cu (or the file named by GSSEG_EMU_SOURCE) as plain C++ and runs a launch block by
// block; inside a block every CUDA thread is a fiber (ucontext) of one OS thread. Fibers switch only at
// __syncthreads* and at warp collectives, so a kernel that reads shared memory another thread has not written yet
// (a missing barrier) sees stale data, and a barrier that some threads never reach is reported as a deadlock.
// It is strict where CUDA says "undefined": every barrier and collective must be reached by all threads of the
// block / lanes of the warp at the same source line, and warp collectives must use the full mask.
//
// C interface (ctypes):
//   int emu_launch(name, gx, gy, gz, bx, by, bz, void** params, char* err, int err_len)  -> 0 or -1 (err set)
//   int emu_signature(name, char* out, int out_len)  -> 0 or -1; out = comma-separated parameter type codes
// params[i] points at the value of the i-th kernel argument (as cuLaunchKernel's kernelParams).

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};
uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace emu {

enum State { RUNNING, WAIT_BLOCK, WAIT_WARP, FINISHED };

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    uint3 tid;
    State state;
    unsigned long long wait_gen;
    int warp;
    int lane;
};

struct BlockBarrier {
    int arrived = 0;
    unsigned long long gen = 0;
    int sum[2] = {0, 0};
    int result[2] = {0, 0};
    int line = -1;
};

struct Warp {
    int lanes = 32;
    int arrived = 0;
    unsigned long long gen = 0;
    unsigned int payload[2][32];
    int line = -1;
    int kind = -1;
};

static std::vector<Fiber> fibers;
static std::vector<Warp> warps;
static BlockBarrier barrier;
static ucontext_t scheduler;
static int current = -1;
static std::string error;
static void (*entry)(void**) = nullptr;
static void** entry_params = nullptr;
static const size_t STACK_BYTES = 256 * 1024;

static void fail(const std::string& message) {
    if (error.empty()) error = message;
}

static void yield() { swapcontext(&fibers[current].ctx, &scheduler); }

static void fiber_main() {
    entry(entry_params);
    fibers[current].state = FINISHED;
    // returning resumes uc_link (the scheduler)
}

static std::string where() {
    const Fiber& f = fibers[current];
    char buf[128];
    snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z, f.tid.x,
             f.tid.y, f.tid.z);
    return buf;
}

// __syncthreads / __syncthreads_count
static int block_sync(int predicate, int line) {
    BlockBarrier& b = barrier;
    const int parity = (int)(b.gen & 1);
    if (b.arrived == 0) {
        b.line = line;
    } else if (b.line != line) {
        char buf[160];
        snprintf(buf, sizeof buf, "divergent __syncthreads: line %d and line %d, at ", b.line, line);
        fail(buf + where());
    }
    b.sum[parity] += predicate;
    b.arrived++;
    const unsigned long long gen = b.gen;
    if (b.arrived == (int)fibers.size()) {
        b.result[parity] = b.sum[parity];
        b.sum[parity] = 0;
        b.arrived = 0;
        b.gen++;
    } else {
        fibers[current].state = WAIT_BLOCK;
        fibers[current].wait_gen = gen;
        yield();
    }
    return b.result[parity];
}

enum WarpOp { OP_BALLOT, OP_SHFL_DOWN, OP_SHFL_IDX, OP_SHFL_XOR };

static unsigned int warp_op(int kind, unsigned int mask, unsigned int payload, int arg, int line) {
    Fiber& f = fibers[current];
    Warp& w = warps[f.warp];
    if (mask != 0xffffffffu || w.lanes != 32) {
        char buf[160];
        snprintf(buf, sizeof buf, "warp collective at line %d with mask %08x in a warp of %d lanes, at ", line, mask,
                 w.lanes);
        fail(buf + where());
    }
    const int parity = (int)(w.gen & 1);
    if (w.arrived == 0) {
        w.line = line;
        w.kind = kind;
    } else if (w.line != line || w.kind != kind) {
        char buf[160];
        snprintf(buf, sizeof buf, "divergent warp collective: line %d and line %d, at ", w.line, line);
        fail(buf + where());
    }
    w.payload[parity][f.lane] = payload;
    w.arrived++;
    const unsigned long long gen = w.gen;
    if (w.arrived == w.lanes) {
        w.arrived = 0;
        w.gen++;
    } else {
        f.state = WAIT_WARP;
        f.wait_gen = gen;
        yield();
    }
    const unsigned int* p = w.payload[parity];
    const int lane = fibers[current].lane;
    switch (kind) {
        case OP_BALLOT: {
            unsigned int bits = 0;
            for (int i = 0; i < w.lanes; i++)
                if (p[i]) bits |= 1u << i;
            return bits;
        }
        case OP_SHFL_DOWN:
            return lane + arg < 32 ? p[lane + arg] : p[lane];
        case OP_SHFL_IDX:
            return p[arg & 31];
        case OP_SHFL_XOR:
            return p[(lane ^ arg) & 31];
    }
    return 0;
}

template <typename T>
static unsigned int to_bits(T v) {
    static_assert(sizeof(T) == 4, "32-bit shuffles only");
    unsigned int u;
    std::memcpy(&u, &v, 4);
    return u;
}
template <typename T>
static T from_bits(unsigned int u) {
    T v;
    std::memcpy(&v, &u, 4);
    return v;
}

static bool runnable(const Fiber& f) {
    switch (f.state) {
        case RUNNING:
            return true;
        case WAIT_BLOCK:
            return barrier.gen > f.wait_gen;
        case WAIT_WARP:
            return warps[f.warp].gen > f.wait_gen;
        default:
            return false;
    }
}

static void run_block(unsigned int nthreads) {
    if (fibers.size() != nthreads) {
        fibers.clear();
        fibers.resize(nthreads);
    }
    const unsigned int n_warps = (nthreads + 31) / 32;
    warps.assign(n_warps, Warp());
    for (unsigned int w = 0; w < n_warps; w++) warps[w].lanes = (int)std::min(32u, nthreads - 32 * w);
    barrier = BlockBarrier();
    for (unsigned int t = 0; t < nthreads; t++) {
        Fiber& f = fibers[t];
        if (f.stack.empty()) f.stack.resize(STACK_BYTES);
        f.tid = uint3{t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
        f.state = RUNNING;
        f.wait_gen = 0;
        f.warp = (int)(t / 32);
        f.lane = (int)(t % 32);
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &scheduler;
        makecontext(&f.ctx, fiber_main, 0);
    }
    for (;;) {
        bool progressed = false, all_finished = true;
        for (unsigned int t = 0; t < nthreads && error.empty(); t++) {
            Fiber& f = fibers[t];
            if (f.state == FINISHED) continue;
            all_finished = false;
            if (!runnable(f)) continue;
            f.state = RUNNING;
            current = (int)t;
            threadIdx = f.tid;
            swapcontext(&scheduler, &f.ctx);
            progressed = true;
        }
        if (!error.empty() || all_finished) return;
        if (!progressed) {
            std::string msg = "deadlock in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) +
                              "): ";
            int finished = 0, at_block = 0, at_warp = 0;
            for (const Fiber& f : fibers) {
                finished += f.state == FINISHED;
                at_block += f.state == WAIT_BLOCK;
                at_warp += f.state == WAIT_WARP;
            }
            msg += std::to_string(finished) + " threads finished, " + std::to_string(at_block) +
                   " waiting at __syncthreads (line " + std::to_string(barrier.line) + "), " +
                   std::to_string(at_warp) + " at warp collectives";
            fail(msg);
            return;
        }
    }
}

template <typename... A, size_t... I>
static void call(void (*kernel)(A...), void** p, std::index_sequence<I...>) {
    kernel(*static_cast<typename std::remove_cv<A>::type*>(p[I])...);
}

template <typename... A>
static void launch(void (*kernel)(A...), void** p) {
    call(kernel, p, std::index_sequence_for<A...>{});
}

template <typename T>
struct Code;
#define EMU_CODE(T, s)                            \
    template <>                                   \
    struct Code<T> {                              \
        static std::string get() { return s; }    \
    };
EMU_CODE(float, "f32")
EMU_CODE(double, "f64")
EMU_CODE(int, "i32")
EMU_CODE(unsigned int, "u32")
EMU_CODE(long long, "i64")
EMU_CODE(unsigned long long, "u64")
EMU_CODE(unsigned char, "u8")
template <typename T>
struct Code<T*> {
    static std::string get() { return "*" + Code<typename std::remove_cv<T>::type>::get(); }
};

template <typename... A>
static std::string signature(void (*)(A...)) {
    std::string out;
    const std::string codes[] = {Code<typename std::remove_cv<A>::type>::get()..., ""};
    for (size_t i = 0; i < sizeof...(A); i++) out += (i ? "," : "") + codes[i];
    return out;
}

}  // namespace emu

// ----- the CUDA surface the kernels use
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() ((void)emu::block_sync(0, __LINE__))
#define __syncthreads_count(p) emu::block_sync((p) ? 1 : 0, __LINE__)
#define __ballot_sync(m, p) emu::warp_op(emu::OP_BALLOT, (m), (p) ? 1u : 0u, 0, __LINE__)
#define __all_sync(m, p) (emu::warp_op(emu::OP_BALLOT, (m), (p) ? 1u : 0u, 0, __LINE__) == 0xffffffffu)
#define __any_sync(m, p) (emu::warp_op(emu::OP_BALLOT, (m), (p) ? 1u : 0u, 0, __LINE__) != 0u)
#define __shfl_down_sync(m, v, d) emu_shfl(emu::OP_SHFL_DOWN, (m), (v), (int)(d), __LINE__)
#define __shfl_sync(m, v, s) emu_shfl(emu::OP_SHFL_IDX, (m), (v), (int)(s), __LINE__)
#define __shfl_xor_sync(m, v, s) emu_shfl(emu::OP_SHFL_XOR, (m), (v), (int)(s), __LINE__)

template <typename T>
static inline T emu_shfl(int kind, unsigned int mask, T v, int arg, int line) {
    return emu::from_bits<T>(emu::warp_op(kind, mask, emu::to_bits(v), arg, line));
}
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline unsigned int __float_as_uint(float f) { return emu::to_bits(f); }
static inline float __uint_as_float(unsigned int u) { return emu::from_bits<float>(u); }
// One OS thread and no preemption inside a fiber: plain read-modify-write is atomic.
template <typename T>
static inline T atomicAdd(T* address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}
static inline int atomicCAS(int* address, int compare, int value) {
    int old = *address;
    if (old == compare) *address = value;
    return old;
}

#ifndef GSSEG_EMU_SOURCE
#define GSSEG_EMU_SOURCE "../../cuda/gsseg_kernels.cu"
#endif
#include GSSEG_EMU_SOURCE

namespace emu {
EMU_CODE(gs_float2, "f32x2")
EMU_CODE(gs_float4, "f32x4")
EMU_CODE(gs_int2, "i32x2")
EMU_CODE(gs_int4, "i32x4")
}  // namespace emu

namespace {
struct Entry {
    const char* name;
    void (*launch)(void**);
    std::string (*signature)();
};
#define EMU_KERNEL(k) \
    Entry { #k, [](void** p) { emu::launch(k, p); }, []() { return emu::signature(k); } }
const Entry kernels[] = {
    EMU_KERNEL(gsseg_cov3d),
    EMU_KERNEL(gsseg_project),
    EMU_KERNEL(gsseg_gather_touched),
    EMU_KERNEL(gsseg_duplicate_keys32),
    EMU_KERNEL(gsseg_duplicate_keys64),
    EMU_KERNEL(gsseg_tile_ranges32),
    EMU_KERNEL(gsseg_tile_ranges64),
    EMU_KERNEL(gsseg_accumulate_f32),
    EMU_KERNEL(gsseg_accumulate_f64),
    EMU_KERNEL(gsseg_render_colour),
    EMU_KERNEL(gsseg_render_alpha_depth),
};

const Entry* find(const char* name) {
    for (const Entry& e : kernels)
        if (std::strcmp(e.name, name) == 0) return &e;
    return nullptr;
}

void copy_out(const std::string& s, char* out, int len) {
    if (len <= 0) return;
    std::snprintf(out, (size_t)len, "%s", s.c_str());
}
}  // namespace

extern "C" int emu_signature(const char* name, char* out, int out_len) {
    const Entry* e = find(name);
    if (!e) return -1;
    copy_out(e->signature(), out, out_len);
    return 0;
}

extern "C" int emu_launch(const char* name, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                          unsigned int by, unsigned int bz, void** params, char* err, int err_len) {
    const Entry* e = find(name);
    if (!e) {
        copy_out(std::string("no kernel named ") + name, err, err_len);
        return -1;
    }
    if (bx * by * bz == 0 || bx * by * bz > 1024) {
        copy_out("bad block size", err, err_len);
        return -1;
    }
    emu::error.clear();
    emu::entry = e->launch;
    emu::entry_params = params;
    gridDim = dim3{gx, gy, gz};
    blockDim = dim3{bx, by, bz};
    for (unsigned int z = 0; z < gz; z++)
        for (unsigned int y = 0; y < gy; y++)
            for (unsigned int x = 0; x < gx; x++) {
                blockIdx = uint3{x, y, z};
                emu::run_block(bx * by * bz);
                if (!emu::error.empty()) {
                    copy_out(std::string(name) + ": " + emu::error, err, err_len);
                    return -1;
                }
            }
    return 0;
}
