#include "distributed/communicator.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// HISTOTRAIN_WITH_GLOO is decided by CMake (cmake/gloo.cmake) from LibTorch's build and Gloo's
// headers (Debian's libgloo-dev; PyTorch wheels ship none), never here: ccache must see it.
#ifdef HISTOTRAIN_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace histotrain {

namespace {

// An exception's message without LibTorch's C++ backtrace (c10::Error::what() appends one).
std::string reason(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = torch_error ? torch_error->what_without_backtrace() : e.what();
  const size_t backtrace = text.find("\nException raised from");
  if (backtrace != std::string::npos) text.resize(backtrace);
  return text;
}


using Milliseconds = std::chrono::milliseconds;

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0; }

// This host's address on the route to `host` (defined below).
std::string local_address_towards(const std::string& host, int port);

// Where rank 0's TCPStore listens: HISTOTRAIN_STORE_BIND when set, else loopback for a loopback
// master, else this host's address on the route to MASTER_ADDR (the one the other ranks reach).
std::string store_bind_address(const WorldInfo& world) {
  if (const char* bind = std::getenv("HISTOTRAIN_STORE_BIND"); bind && *bind) return bind;
  if (is_loopback(world.master_addr)) return "127.0.0.1";
  return local_address_towards(world.master_addr, world.master_port);
}

// A listening TCP socket on address:port (IPv4), for a TCPStore to serve on; throws Error.
int listen_on(const std::string& address, int port) {
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &where.sin_addr) != 1)
    throw UsageError("HISTOTRAIN_STORE_BIND / the store's address '" + address + "' is not an IPv4 address");
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int yes = 1;
  if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0 || ::listen(fd, 2048) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw Error("rank 0 cannot listen on " + address + ":" + std::to_string(port) + " for the rendezvous store (" + why +
                (why.find("in use") != std::string::npos ? "). Is the port taken by another job? Choose another MASTER_PORT."
                                                          : ")"));
  }
  return fd;
}

c10::intrusive_ptr<c10d::Store> open_file_store(const WorldInfo& world, std::chrono::seconds timeout) {
  try {
    auto store = c10::make_intrusive<c10d::FileStore>(world.store_file, world.world_size);
    store->setTimeout(timeout);
    return store;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(world.rank) + " cannot open the rendezvous file " + world.store_file + " (" +
                reason(e) + ")");
  }
}

c10::intrusive_ptr<c10d::Store> open_store(const WorldInfo& world, std::chrono::seconds timeout) {
  if (!world.store_file.empty()) return open_file_store(world, timeout);
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(world.master_port);
  options.isServer = world.rank == 0;
  options.numWorkers = static_cast<size_t>(world.world_size);
  options.waitWorkers = false;  // the backend's own rendezvous waits for everyone, with the timeout
  options.timeout = timeout;
  if (options.isServer) {
    const std::string bind = store_bind_address(world);
    if (!compat::tcp_store_takes_listening_socket(options))
      std::fprintf(stderr, "note: the rendezvous store listens on every interface of this host, port %d: LibTorch %s "
                           "cannot bind it to one (docs/security.md)\n", world.master_port, compat::torch_version().c_str());
    else if (!bind.empty())
      compat::give_tcp_store_listening_socket(options, listen_on(bind, world.master_port));
  }
  const std::string where = world.master_addr + ":" + std::to_string(world.master_port);
  try {
    return c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
  } catch (const std::exception& e) {
    if (world.rank == 0) {
      const std::string why = reason(e);
      const bool taken = why.find("in use") != std::string::npos;
      throw Error("rank 0 cannot open the rendezvous store at " + where + " (" + why + ")" +
                  (taken ? ". Is the port taken by another job? Choose another MASTER_PORT." : ""));
    }
    throw RankFailure("rank " + std::to_string(world.rank) + " cannot reach the rendezvous master (rank 0) at " + where +
                      " within " + std::to_string(timeout.count()) + " s: " + reason(e));
  }
}

// This host's address on the route to `host` (a UDP "connect" sends nothing; it only picks the
// route), or "" when there is none.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found) return "";
  std::string address;
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_in local{};
    socklen_t length = sizeof local;
    char text[INET_ADDRSTRLEN] = {};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0 &&
        ::inet_ntop(AF_INET, &local.sin_addr, text, sizeof text))
      address = text;
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  return address;
}

#ifdef HISTOTRAIN_WITH_GLOO
// The network interface Gloo uses: GLOO_SOCKET_IFNAME when set (as in PyTorch); else the one
// that reaches the master, so that every rank is reachable at the address its route names
// (the host name may resolve to an address other ranks cannot reach).
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr, int master_port) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (is_loopback(master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  const std::string local = local_address_towards(master_addr, master_port);
  if (!local.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(local);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10::intrusive_ptr<compat::CollectiveBackend> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                        int world_size, const std::string& master_addr,
                                                        int master_port, std::chrono::seconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(Milliseconds(timeout));
  options->devices.push_back(gloo_device(master_addr, master_port));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
}
#else
c10::intrusive_ptr<compat::CollectiveBackend> make_gloo(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                                        const std::string&, int, std::chrono::seconds) {
  throw UsageError("--backend gloo: this histotrain was built without Gloo's headers (install libgloo-dev, or "
                   "put its include folder on CMAKE_PREFIX_PATH); use --backend nccl on GPUs");
}
#endif

c10::intrusive_ptr<compat::CollectiveBackend> make_nccl([[maybe_unused]] const c10::intrusive_ptr<c10d::Store>& store,
                                                        [[maybe_unused]] int rank, [[maybe_unused]] int world_size,
                                                        [[maybe_unused]] std::chrono::seconds timeout) {
#ifdef USE_C10D_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = Milliseconds(timeout);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
#else
  throw UsageError("--backend nccl: this histotrain is built against a LibTorch without NCCL (CPU-only); use gloo");
#endif
}

std::string choose_backend(const std::string& requested, const torch::Device& device) {
  const std::string backend = requested.empty() ? (device.is_cuda() ? "nccl" : "gloo") : requested;
  if (backend != "gloo" && backend != "nccl") throw UsageError("--backend must be gloo or nccl, not '" + backend + "'");
  if (backend == "nccl" && !device.is_cuda()) throw UsageError("--backend nccl needs --device cuda; use gloo on CPUs");
  return backend;
}

}  // namespace

std::string Communicator::available_backends() {
  std::string names;
#ifdef HISTOTRAIN_WITH_GLOO
  names += "gloo";
#endif
#ifdef USE_C10D_NCCL
  names += names.empty() ? "nccl" : " nccl";
#endif
  return names.empty() ? "none" : names;
}

std::string Communicator::nccl_version() {
#ifdef USE_C10D_NCCL
  return c10d::getNcclVersion();
#else
  return "";
#endif
}

std::unique_ptr<Communicator> Communicator::connect(const WorldInfo& world, const std::string& requested_backend,
                                                    const torch::Device& device, std::chrono::seconds timeout) {
  const std::string backend = choose_backend(requested_backend, device);
  auto store = open_store(world, timeout);
  c10::intrusive_ptr<compat::CollectiveBackend> group;
  try {
    group = backend == "nccl" ? make_nccl(store, world.rank, world.world_size, timeout)
                              : make_gloo(store, world.rank, world.world_size, world.master_addr, world.master_port, timeout);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw RankFailure("rank " + std::to_string(world.rank) + ": not all " + std::to_string(world.world_size) +
                      " ranks joined within " + std::to_string(timeout.count()) + " s (" + reason(e) + ")");
  }
  auto communicator = std::unique_ptr<Communicator>(
      new Communicator(store, group, world.rank, world.world_size, backend, timeout));
  if (backend == "nccl") communicator->host_values_via_ = device;
  return communicator;
}

Communicator::Communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, std::chrono::seconds timeout)
    : Communicator(store, make_gloo(store, rank, world_size, "127.0.0.1", 0, timeout), rank, world_size, "gloo",
                   timeout) {}

Communicator::Communicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<compat::CollectiveBackend> group,
                           int rank, int world_size, std::string backend, std::chrono::seconds timeout)
    : store_(std::move(store)),
      group_(std::move(group)),
      rank_(rank),
      world_size_(world_size),
      backend_(std::move(backend)),
      timeout_(timeout) {}

template <typename Launch>
Communicator::Work Communicator::start(const std::string& what, Launch launch) {
  try {
    return launch();
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

Communicator::Work Communicator::all_reduce_sum_async(torch::Tensor& tensor) {
  std::vector<at::Tensor> tensors{tensor};
  return start("all-reduce", [&] { return group_->allreduce(tensors); });
}

Communicator::Work Communicator::all_gather_async(std::vector<torch::Tensor>& outputs, torch::Tensor& input) {
  // Bytes are bytes: 2-byte values travel as fp16 (Gloo moves no int16), 4-byte ones as int32,
  // 8-byte ones as int64. A gather copies; nothing is summed, so the bits arrive as they left.
  auto as_bits = [](const torch::Tensor& t) {
    const auto size = t.element_size();
    return size == 1 ? t.view(torch::kByte)
           : size == 2 ? t.view(torch::kHalf)
           : size == 4 ? t.view(torch::kInt)
                       : t.view(torch::kLong);
  };
  std::vector<std::vector<at::Tensor>> gathered(1);
  for (auto& o : outputs) gathered[0].push_back(as_bits(o));
  std::vector<at::Tensor> inputs{as_bits(input)};
  return start("all-gather", [&] { return group_->allgather(gathered, inputs); });
}

template <typename Collective>
void Communicator::through_backend_device(torch::Tensor& tensor, Collective collective) {
  if (tensor.device() == host_values_via_ || host_values_via_.is_cpu()) {
    collective(tensor);
    return;
  }
  torch::Tensor staged = tensor.to(host_values_via_);
  collective(staged);
  torch::NoGradGuard no_grad;
  tensor.copy_(staged.to(tensor.device()));
}

void Communicator::all_reduce_sum(torch::Tensor& tensor) {
  through_backend_device(tensor, [this](torch::Tensor& t) { wait(all_reduce_sum_async(t), "all-reduce"); });
}

void Communicator::all_reduce_max(torch::Tensor& tensor) {
  through_backend_device(tensor, [this](torch::Tensor& t) {
    std::vector<at::Tensor> tensors{t};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::MAX;
    wait(start("all-reduce (max)", [&] { return group_->allreduce(tensors, options); }), "all-reduce (max)");
  });
}

void Communicator::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  // One flat buffer per dtype: few large messages instead of hundreds of small ones.
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_dtype;
  for (const auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  for (auto& [dtype, group] : by_dtype) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape(-1));
    std::vector<at::Tensor> flat{torch::cat(flat_parts)};
    through_backend_device(flat[0], [&](torch::Tensor& t) {
      std::vector<at::Tensor> buffer{t};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      wait(start("broadcast", [&] { return group_->broadcast(buffer, options); }), "broadcast");
    });
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (const auto& t : group) {
      const int64_t n = t.numel();
      torch::Tensor(t).copy_(flat[0].narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

Communicator::Work Communicator::send_async(torch::Tensor& tensor, int to_rank, int tag) {
  std::vector<at::Tensor> tensors{tensor};
  return start("send to rank " + std::to_string(to_rank), [&] { return group_->send(tensors, to_rank, tag); });
}

void Communicator::receive(torch::Tensor& tensor, int from_rank, int tag) {
  std::vector<at::Tensor> tensors{tensor};
  const std::string what = "receive from rank " + std::to_string(from_rank);
  wait(start(what, [&] { return group_->recv(tensors, from_rank, tag); }), what);
}

void Communicator::barrier() { barrier_with_timeout(timeout_, "barrier"); }

void Communicator::barrier_with_timeout(std::chrono::milliseconds timeout, const std::string& what) {
  c10d::BarrierOptions options;
  options.timeout = timeout;
  const Work work = start(what, [&] { return group_->barrier(options); });
  try {
    work->wait(timeout);  // its own timeout, longer than the collectives'
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Communicator::check_agreement(const std::string& what, const std::string& value) {
  const std::string prefix = "histotrain/agree/" + what + "/";
  std::vector<std::string> keys;
  for (int r = 0; r < world_size_; ++r) keys.push_back(prefix + std::to_string(r));
  std::vector<std::string> values;
  try {
    store_->set(keys[static_cast<size_t>(rank_)], std::vector<uint8_t>(value.begin(), value.end()));
    store_->wait(keys, timeout_);
    for (const auto& key : keys) {
      const auto bytes = store_->get(key);
      values.emplace_back(bytes.begin(), bytes.end());
    }
  } catch (const std::exception& e) {
    fail("comparing the " + what + " of all ranks", e);
  }
  const auto mine = parse_json_or_null(value);
  for (int r = 0; r < world_size_; ++r) {
    if (values[static_cast<size_t>(r)] == value) continue;
    std::string fields;
    const auto theirs = parse_json_or_null(values[static_cast<size_t>(r)]);
    if (mine.is_object() && theirs.is_object())
      for (const auto& [key, v] : mine.items())
        if (!theirs.contains(key) || theirs[key] != v)
          fields += (fields.empty() ? "" : ", ") + key + " " + v.dump() + " here, " +
                    (theirs.contains(key) ? theirs[key].dump() : "absent") + " there";
    throw Error("rank " + std::to_string(rank_) + ": the " + what + " differs from rank " + std::to_string(r) + "'s" +
                (fields.empty() ? "" : " (" + fields + ")") + "; every rank must run the same command");
  }
}

void Communicator::wait(const Work& work, const std::string& what) {
  try {
    work->wait(Milliseconds(timeout_));
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Communicator::fail(const std::string& what, const std::exception& cause) {
  throw RankFailure("rank " + std::to_string(rank_) + ": " + what + " failed: " + missing_ranks() + " (" + reason(cause) +
                    ")");
}

// Each surviving rank leaves a mark in the store and looks, for a few seconds, for the others'
// marks: a rank that leaves none is dead or stuck. If the store itself is gone, rank 0 (which
// serves it) is.
std::string Communicator::missing_ranks() {
  try {
    store_->set("histotrain/alive/" + std::to_string(rank_), std::vector<uint8_t>{1});
    std::vector<int> missing;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    do {
      missing.clear();
      for (int r = 0; r < world_size_; ++r)
        if (!store_->check({"histotrain/alive/" + std::to_string(r)})) missing.push_back(r);
      if (missing.empty()) break;
      std::this_thread::sleep_for(Milliseconds(200));
    } while (std::chrono::steady_clock::now() < deadline);
    if (missing.empty()) return "every rank is still alive; the collective timed out or the ranks disagree";
    std::string names;
    for (int r : missing) names += (names.empty() ? "" : ", ") + std::to_string(r);
    return (missing.size() == 1 ? "rank " : "ranks ") + names + " stopped answering (exited, killed or hung)";
  } catch (const std::exception&) {
    return "rank 0 stopped answering (it holds the rendezvous store: exited, killed or unreachable)";
  }
}

}  // namespace histotrain
