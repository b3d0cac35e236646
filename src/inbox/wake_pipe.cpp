#include "inbox/wake_pipe.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace pgc::inbox {

WakePipe::~WakePipe() {
  for (int fd : fds_)
    if (fd >= 0) close(fd);
}

bool WakePipe::open() {
  if (fds_[0] >= 0) return true;
  return pipe2(fds_, O_NONBLOCK | O_CLOEXEC) == 0 || (fds_[0] = fds_[1] = -1, false);
}

void WakePipe::drain() {
  char buf[256];
  if (fds_[0] < 0) return;
  while (read(fds_[0], buf, sizeof(buf)) > 0) {
  }
}

}  // namespace pgc::inbox
