#include "mpi_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "terse/core/check.h"

namespace terse::cli {
namespace {

volatile sig_atomic_t g_child_pid = 0;
volatile sig_atomic_t g_pending_signal = 0;  // arrived before the child's pid was known

void forward_signal(int signal_number) {
  if (g_child_pid > 0) {
    ::kill(static_cast<pid_t>(g_child_pid), signal_number);
  } else {
    g_pending_signal = signal_number;
  }
}

// While alive, SIGINT/SIGTERM/SIGHUP to this process go to the child instead of ending it, so
// the launched job is never orphaned; the previous handlers come back on destruction.
class SignalForwarding {
 public:
  SignalForwarding() {
    g_child_pid = 0;
    g_pending_signal = 0;
    struct sigaction action {};
    action.sa_handler = forward_signal;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < kCount; ++i) ::sigaction(kSignals[i], &action, &old_[i]);
  }
  ~SignalForwarding() {
    for (size_t i = 0; i < kCount; ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
    g_child_pid = 0;
  }
  SignalForwarding(const SignalForwarding&) = delete;
  SignalForwarding& operator=(const SignalForwarding&) = delete;

  void set_child(pid_t pid) {
    g_child_pid = pid;
    if (g_pending_signal != 0) ::kill(pid, g_pending_signal);
  }

 private:
  static constexpr size_t kCount = 3;
  static constexpr int kSignals[kCount] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_[kCount] {};
};

}  // namespace

std::vector<std::string> strip_np_flag(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  out.reserve(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {  // everything after "--" is positional, never a flag
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (args[i] == "--np") {
      ++i;  // skip the value too
      continue;
    }
    if (args[i].rfind("--np=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

std::vector<std::string> mpirun_command(int np, const std::string& executable,
                                        const std::string& subcommand,
                                        const std::vector<std::string>& args, bool as_root) {
  std::vector<std::string> command = {"mpirun",          "-n",        std::to_string(np),
                                      "--oversubscribe", "--bind-to", "none"};
  if (as_root) command.push_back("--allow-run-as-root");
  command.push_back(executable);
  command.push_back(subcommand);
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

void prepare_rank_environment() { ::setenv("OMP_WAIT_POLICY", "PASSIVE", 0); }

std::string self_executable() {
  char buffer[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  TERSE_CHECK(n > 0, Error, "cannot resolve /proc/self/exe (", std::strerror(errno),
              "); run the ranks yourself: mpirun -n N terse train ...");
  return std::string(buffer, static_cast<size_t>(n));
}

int run_and_wait(const std::vector<std::string>& command, const std::string& install_hint) {
  TERSE_CHECK(!command.empty(), InvalidArgument, "empty command; pass the program to run");
  std::vector<char*> argv;
  for (const auto& word : command) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);

  // A pipe closed on exec tells the parent whether execvp succeeded, and errno if not.
  int status_pipe[2];
  SignalForwarding forwarding;  // from before fork: a signal at any time reaches the child
  TERSE_CHECK(::pipe2(status_pipe, O_CLOEXEC) == 0, Error, "pipe2 failed: ", std::strerror(errno),
              "; check the process's file descriptor limit");
  const pid_t pid = ::fork();
  TERSE_CHECK(pid >= 0, Error, "fork failed: ", std::strerror(errno),
              "; check the process limits (ulimit -u) and free memory");
  if (pid == 0) {
    ::close(status_pipe[0]);
    ::execvp(argv[0], argv.data());
    const int exec_errno = errno;
    [[maybe_unused]] const ssize_t written =
        ::write(status_pipe[1], &exec_errno, sizeof exec_errno);
    _exit(127);
  }
  ::close(status_pipe[1]);
  int exec_errno = 0;
  ssize_t got;
  do {
    got = ::read(status_pipe[0], &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    ::waitpid(pid, nullptr, 0);
    TERSE_THROW(Error, "cannot run '", command[0], "': ", std::strerror(exec_errno), "; ",
                install_hint);
  }

  forwarding.set_child(pid);
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace terse::cli
