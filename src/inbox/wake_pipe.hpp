// The pipe librdkafka writes to when a consumer queue becomes non-empty
// (rd_kafka_queue_io_event_enable), so a consumer process sleeps on its latch and this
// pipe instead of waiting inside librdkafka: a message wakes it at once. One pipe per
// process, shared by its consumers' queues. No PostgreSQL headers.
#pragma once

namespace pgc::inbox {

class WakePipe {
 public:
  WakePipe() = default;
  ~WakePipe();
  WakePipe(const WakePipe&) = delete;
  WakePipe& operator=(const WakePipe&) = delete;

  // Creates the pipe (both ends non-blocking, close-on-exec) unless it exists; false
  // when the system refused.
  bool open();
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }
  // Reads everything written so far (the wait is level-triggered).
  void drain();

 private:
  int fds_[2] = {-1, -1};
};

}  // namespace pgc::inbox
