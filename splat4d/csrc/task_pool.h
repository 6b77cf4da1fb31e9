// A small pool of helper threads for the CPU rasterizer that shares a busy machine gracefully.
//
// Why not torch's at::parallel_for: in the pip builds it is OpenMP (libgomp), whose threads
// busy-wait at every barrier and for a while after every region unless OMP_WAIT_POLICY=PASSIVE
// was set before torch started. Next to other CPU-bound processes a spinning thread burns the
// time slices the others need, and a barrier waits for a thread the OS has descheduled. (The
// PyTorch ops around the kernel spin the same way, so the policy is still needed for fair
// sharing: benchmarks/cpu_sharing.py, benchmarks/RESULTS.md; this pool makes the kernel itself
// independent of it.)
//
// Here helpers sleep on a condition variable between jobs, and the caller works on the job
// itself: tasks are claimed from an atomic counter, and the caller waits only for helpers that
// have actually claimed work, never for one that has not been scheduled yet (a late helper
// finds the job gone and goes back to sleep). A job therefore never stalls on an absent thread
// longer than the one task it is running. After a fork() the child starts a new, empty pool
// (the parent's threads do not exist there); the caller alone then does all the work.

#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace splat4d_pool {

class TaskPool {
 public:
  // Runs fn(i) for every i in [0, n) on the caller and up to workers - 1 helpers, each i once.
  // Concurrent calls from several threads are safe (a call that finds the pool busy runs
  // inline on its own thread).
  void run(int64_t n, int workers, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> submit(submit_mutex_, std::try_to_lock);
    if (n <= 0) return;
    if (workers <= 1 || n == 1 || !submit.owns_lock()) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    Job job{fn, n};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_.size()) < workers - 1) threads_.emplace_back([this] { helper_loop(); });
      job_ = &job;
      ++generation_;
      wanted_ = workers - 1;
    }
    wake_.notify_all();
    job.work();
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = nullptr;  // late helpers no longer join
    done_.wait(lock, [&] { return job.joined == 0; });
  }

 private:
  struct Job {
    const std::function<void(int64_t)>& fn;
    int64_t n;
    std::atomic<int64_t> next{0};
    int joined = 0;  // helpers inside work() (guarded by the pool's mutex)
    void work() {
      for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
    }
  };

  void helper_loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      Job* job = job_;
      if (job == nullptr || wanted_ == 0) continue;
      --wanted_;
      ++job->joined;
      lock.unlock();
      job->work();
      lock.lock();
      if (--job->joined == 0) done_.notify_all();
    }
  }

  std::mutex submit_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;  // detached at exit (see pool())
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  int wanted_ = 0;  // helpers the current job still takes
};

// The process's pool. Never destroyed: its sleeping threads must not be joined or destroyed
// during static destruction at interpreter exit, and after fork() the child gets a fresh one.
inline TaskPool& pool() {
  static std::mutex m;
  static TaskPool* p = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(m);
  if (p == nullptr || owner != getpid()) {
    p = new TaskPool();  // (a parent's pool, inherited by a forked child, is abandoned)
    owner = getpid();
  }
  return *p;
}

// fn(first, last) over [0, n) in chunks of `chunk` items on up to `threads` threads of the
// pool, fewer when there are only `work` / `min_work_per_thread` units of work (waking a helper
// costs more than a small job).
template <typename Fn>
void for_each_chunk(int64_t n, int64_t chunk, int64_t threads, int64_t work, int64_t min_work_per_thread,
                    const Fn& fn) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>({threads, chunks, work / min_work_per_thread}));
  pool().run(chunks, static_cast<int>(workers), [&](int64_t i) { fn(i * chunk, std::min(n, (i + 1) * chunk)); });
}

}  // namespace splat4d_pool
