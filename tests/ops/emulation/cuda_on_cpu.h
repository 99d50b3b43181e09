// Just enough of CUDA to run csrc/mink_kernels.cuh on the CPU, strictly (C++20).
//
// A launch runs the blocks one after another, in a random order (so which block arrives last at
// the reduction's counter varies), each with one std::thread per CUDA thread. __syncthreads is a
// std::barrier over the block's threads and a warp shuffle a barrier over the warp's 32 lanes,
// both with no allowance for threads that have returned: a barrier some threads skip, or a
// shuffle without all 32 lanes, hangs, and a watchdog turns the hang into an exception.
// __shared__ variables become function statics, which is valid only because blocks run one at a
// time. What this cannot show: blocks running concurrently, the GPU's memory ordering (atomics
// and fences are sequentially consistent here), and the device's libm (expf, powf differ by ulps).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emulation {

// What the threads of the running block share.
struct Block {
  explicit Block(unsigned int threads) : sync(threads) {
    for (unsigned int w = 0; w < threads / 32; ++w) warps.push_back(std::make_unique<std::barrier<>>(32));
    lanes.resize(threads / 32);
  }
  std::barrier<> sync;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<std::array<unsigned char[8], 32>> lanes;  // the values a shuffle exchanges
  std::mutex mutex;
  std::condition_variable all_done;
  unsigned int done = 0;
};

inline thread_local Block* current = nullptr;

inline double watchdog_seconds = 20.0;

}  // namespace emulation

inline void __syncthreads() { emulation::current->sync.arrive_and_wait(); }

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
  return std::atomic_ref<unsigned int>(*address).fetch_add(value);
}

// Lane i gets lane i + delta's value (its own where i + delta > 31). Every lane of the warp must
// call it (the full mask is the only one the kernels use, and the only one accepted here).
template <typename T>
T __shfl_down_sync(unsigned int mask, T value, unsigned int delta) {
  static_assert(sizeof(T) <= 8, "shuffles of at most 8 bytes");
  if (mask != 0xffffffffu) throw std::logic_error("__shfl_down_sync: only the full mask is emulated");
  emulation::Block& b = *emulation::current;
  const unsigned int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  std::memcpy(b.lanes[warp][lane], &value, sizeof(T));
  b.warps[warp]->arrive_and_wait();
  T out = value;
  if (lane + delta < 32) std::memcpy(&out, b.lanes[warp][lane + delta], sizeof(T));
  b.warps[warp]->arrive_and_wait();  // nobody overwrites a slot before every lane has read it
  return out;
}

namespace emulation {

// Run kernel<<<grid, threads>>>(args...) on the CPU, blocks in an order drawn from `seed`.
// Throws std::runtime_error when a block does not finish within watchdog_seconds (its threads
// are then left blocked, and leaked: the process can go on, the kernel's results are garbage).
template <typename Kernel, typename... Args>
void launch(unsigned int grid, unsigned int threads, uint64_t seed, Kernel kernel, Args... args) {
  if (grid < 1 || threads < 32 || threads > 1024 || threads % 32)
    throw std::invalid_argument("launch: a grid of at least one block of 1 to 32 whole warps");
  std::vector<unsigned int> order(grid);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  for (unsigned int b : order) {
    auto block = std::make_shared<Block>(threads);
    std::vector<std::thread> pool;
    for (unsigned int t = 0; t < threads; ++t) {
      pool.emplace_back([=]() {
        current = block.get();
        threadIdx.x = t;
        blockIdx.x = b;
        blockDim.x = threads;
        gridDim.x = grid;
        kernel(args...);
        std::lock_guard<std::mutex> lock(block->mutex);
        if (++block->done == threads) block->all_done.notify_one();
      });
    }
    std::unique_lock<std::mutex> lock(block->mutex);
    const bool finished = block->all_done.wait_for(lock, std::chrono::duration<double>(watchdog_seconds),
                                                   [&] { return block->done == threads; });
    lock.unlock();
    if (!finished) {
      for (auto& th : pool) th.detach();
      throw std::runtime_error("watchdog: block " + std::to_string(b) + " did not finish in " +
                               std::to_string(watchdog_seconds) +
                               " s: a __syncthreads or warp shuffle that not every thread reaches");
    }
    for (auto& th : pool) th.join();
  }
}

}  // namespace emulation
